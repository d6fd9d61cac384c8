"""Studies larger than a device's memory run in chunks of scenarios, with the same numbers."""
import numpy as np
import pytest

import adljax
from compiles import lowerings
from adljax.engine import waterfall as engine
from adljax.chunking import bytes_per_scenario, scenarios_per_chunk
from adljax.study import default_study


def thin(paths):
    """The paths with 1 % of their depth: liquidation fills little, and scenario 2's jump leaves bankrupt rows."""
    return adljax.Paths(paths.oracle, paths.depth * 0.01)


@pytest.fixture(scope="module")
def study():
    """A float64 default study under dYdX's random-order ADL (drawn from the scenario keys, so chunks must use
    the same keys) without a backstop, on thin books, and its run in one piece. Both tests run it in pieces of 2
    scenarios (scenario 2, the one with ADL, second in its piece): one program for each size."""
    st = default_study(n_scenarios=7, n_steps=40, n_accounts=60, dtype=np.float64)
    v = st.venue.replace(adl_policy="random_order", backstop="none")
    return st, v, adljax.simulate(v, st.book, thin(st.paths), key=st.key)


def test_the_compile_counter_sees_a_new_engine_program():
    """The counter the tests below rely on counts the engine's programs: a shape no other test runs lowers
    one, and the same call again lowers none."""
    st = default_study(n_scenarios=3, n_steps=11, n_accounts=23, dtype=np.float64)
    with lowerings("run") as first:
        adljax.simulate(st.venue, st.book, st.paths, key=st.key)
    with lowerings("run") as again:
        adljax.simulate(st.venue, st.book, st.paths, key=st.key)
    assert len(first) == 1 and again == []


def test_chunked_run_equals_one_run(study):
    st, v, whole = study
    # The first 6 scenarios in chunks of 2: the program for a chunk of 2 is compiled (or was already).
    even = adljax.simulate(v, st.book, thin(st.paths.scenarios(0, 6)), key=st.key, chunk=2)
    with lowerings("run") as new:
        parts = adljax.simulate(v, st.book, thin(st.paths), key=st.key, chunk=2)  # 2 + 2 + 2 + 1 (run as 2, filled up)
    assert new == []                                                    # the short last chunk compiled nothing new
    np.testing.assert_array_equal(np.asarray(even.metrics["vault_pnl"]), np.asarray(whole.metrics["vault_pnl"])[:6])
    for k in adljax.METRICS:
        np.testing.assert_array_equal(np.asarray(parts.metrics[k]), np.asarray(whole.metrics[k]), err_msg=k)
    np.testing.assert_array_equal(np.asarray(parts.book.all_cash), np.asarray(whole.book.all_cash))
    assert np.asarray(whole.metrics["adl_notional"]).sum() > 0   # ADL ran: its random order drew from the keys


def test_a_chunk_of_a_study_is_the_study_sliced(study):
    st, v, whole = study
    part = st.paths_for(1, 2)
    np.testing.assert_array_equal(np.asarray(part.oracle), np.asarray(st.paths.oracle)[1:3])
    alone = adljax.simulate(v, st.book, thin(part), key=st.key, first_scenario=1)
    for k in ("vault_pnl", "adl_notional", "market_liquidation_orders"):
        np.testing.assert_array_equal(np.asarray(alone.metrics[k]), np.asarray(whole.metrics[k])[1:3], err_msg=k)
    np.testing.assert_array_equal(np.asarray(alone.book.all_cash), np.asarray(whole.book.all_cash)[1:3])
    assert np.asarray(whole.metrics["adl_notional"])[2] > 0              # ADL's random order drew from the keys


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


def _program_bytes(n_steps: int, n_scenarios: int = 8, n_accounts: int = 60):
    """(XLA's bytes for the compiled engine: arguments + outputs + temporaries, its sizes) for a float64 study."""
    st = default_study(n_scenarios=n_scenarios, n_steps=n_steps, n_accounts=n_accounts, dtype=np.float64)
    params, book, paths = engine.prepare(st.venue, st.book, st.paths, 1.0)
    keys = engine.scenario_keys(st.key, n_scenarios)
    lowered = engine.run.lower(params, book, paths.oracle, paths.depth, keys, rules=st.venue.rules)
    m = lowered.compile().memory_analysis()
    total = m.argument_size_in_bytes + m.output_size_in_bytes + m.temp_size_in_bytes - m.alias_size_in_bytes
    return total, m.temp_size_in_bytes, (n_scenarios, n_accounts + 2, st.book.n_markets)


def test_engine_memory_is_flat_in_steps_and_within_the_chunk_estimate():
    """The compiled engine keeps only the current state through time: 4x the steps adds no more memory than
    the longer paths themselves (S x T x A numbers, not S x T x rows x A), and the estimate that sizes
    ``adljax.simulate``'s chunks to the device's memory holds more than the program uses."""
    short, short_temp, (s, r, a) = _program_bytes(10)
    long, long_temp, _ = _program_bytes(40)
    paths_growth = 2 * s * 30 * a * 8                  # oracle and depth: 30 more steps, float64
    assert long - short <= 4 * paths_growth            # a kept [T, S, R, A] state would add 62x paths_growth
    assert long_temp - short_temp <= 4 * paths_growth
    for t, total in ((10, short), (40, long)):
        assert total <= s * bytes_per_scenario(r, a, t, 8), (t, total)
