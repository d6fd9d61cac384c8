"""Studies larger than a device's memory run in chunks of scenarios, with the same numbers."""
import numpy as np
import pytest

import adljax
from adljax import engine
from adljax.chunking import bytes_per_scenario, scenarios_per_chunk
from adljax.study import default_study


def test_chunked_run_equals_one_run():
    st = default_study(n_scenarios=7, n_steps=40, n_accounts=60, dtype=np.float64)
    v = st.venue.replace(adl_policy="random_order")   # draws from the key: chunks must use the same keys
    whole = adljax.simulate(v, st.book, st.paths, key=st.key)
    programs = engine.run._cache_size()
    parts = adljax.simulate(v, st.book, st.paths, key=st.key, chunk=3)  # 3 + 3 + 1 (run as 3, filled up)
    assert engine.run._cache_size() == programs + 1                      # one program for every chunk
    for k in adljax.METRICS:
        np.testing.assert_array_equal(np.asarray(parts.metrics[k]), np.asarray(whole.metrics[k]), err_msg=k)
    np.testing.assert_array_equal(np.asarray(parts.book.all_cash), np.asarray(whole.book.all_cash))
    assert np.asarray(whole.metrics["market_liquidation_orders"]).sum() > 0   # the paths do something


def test_a_chunk_of_a_study_is_the_study_sliced():
    st = default_study(n_scenarios=6, n_steps=30, n_accounts=40, dtype=np.float64)
    full = st.paths
    part = st.paths_for(2, 3)
    np.testing.assert_array_equal(np.asarray(part.oracle), np.asarray(full.oracle)[2:5])
    whole = adljax.simulate(st.venue, st.book, full, key=st.key)
    alone = adljax.simulate(st.venue, st.book, part, key=st.key, first_scenario=2)
    np.testing.assert_array_equal(np.asarray(alone.metrics["vault_pnl"]), np.asarray(whole.metrics["vault_pnl"])[2:5])


def test_chunk_size_is_linear_in_memory_and_flat_in_steps():
    a = scenarios_per_chunk(1002, 3, 600, 4, memory=1 << 30)
    assert scenarios_per_chunk(1002, 3, 600, 4, memory=2 << 30) in (2 * a, 2 * a + 1)
    # steps only enter through the paths themselves (3·T·A numbers a scenario)
    assert bytes_per_scenario(1002, 3, 6000, 4) - bytes_per_scenario(1002, 3, 600, 4) == 4 * 3 * 5400 * 3
    assert scenarios_per_chunk(10**7, 4, 600, 4, memory=1 << 20) == 1


def test_bad_chunk_is_named():
    st = default_study(n_scenarios=2, n_steps=5, n_accounts=10)
    with pytest.raises(adljax.InputError, match="chunk"):
        adljax.simulate(st.venue, st.book, st.paths, chunk=0)
