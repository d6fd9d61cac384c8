"""On CPU the engine runs a batch in blocks of scenarios (``EngineConfig.block``), with the same numbers.

A block's state stays in the CPU's caches and each block skips the stages
none of its scenarios needs (docs/performance.md). What a block
must not change: a scenario's numbers (up to the rounding of sums, which
already depends on the batch a scenario runs in), its random draws (they
come from its own key), or the number of scenarios out. The gradient through
blocks is checked against finite differences in test_smooth.py (24 scenarios:
three blocks of 8).
"""
import jax
import numpy as np
import pytest

import adljax
from adljax.engine.config import EngineConfig
from adljax.engine.waterfall import blocks, prepare, run, scenario_keys
from adljax.model.errors import InputError
from adljax.study import default_study

# Money sums in float64: relative to the study's scale. The two error metrics are rounding
# themselves (their value is ~1e-9 of the scale, and so are their differences).
ERRORS = ("conservation_error", "zero_sum_error")


def test_blocks_are_even_and_pad_little():
    assert blocks(16, 8) == (2, 8)
    assert blocks(9, 8) == (2, 5)          # 10 rows of which 1 is padding, not 16 of which 7
    assert blocks(17, 8) == (3, 6)
    assert blocks(3, 8) == (1, 3)
    assert blocks(1, 1) == (1, 1)
    for s in range(1, 40):
        for b in (1, 2, 3, 4, 8):
            n, per = blocks(s, b)
            assert per <= b and n * per >= s and n * per - s < n, (s, b, n, per)


@pytest.mark.parametrize("bad", [0, -1, 2.5, True])
def test_bad_block_is_named(bad):
    with pytest.raises(InputError, match="block"):
        blocks(10, bad)


@pytest.mark.parametrize("bad", [0, -2, "fast", 11.5, 1e9])     # (11.5 and 1e9 hold all 11 scenarios: still named)
def test_run_names_a_bad_block(study, bad):
    st, go, book, p, keys, whole = study
    with pytest.raises(InputError, match="block"):
        go(book, p, keys, bad)


@pytest.mark.parametrize("field, bad", [("block", 0), ("block", "fast"), ("cpu_block", 0), ("gathered_rows", 2.5),
                                        ("first_candidates", True), ("unrolled_markets", -1), ("prefix_block", None),
                                        ("queue_rows_round", 0), ("adl_digit_bits", 3), ("adl_digit_bits", True)])
def test_bad_config_is_named(field, bad):
    with pytest.raises(InputError, match=f"config.{field}"):
        EngineConfig(**{field: bad})
    with pytest.raises(InputError, match=f"config.{field}"):
        EngineConfig().replace(**{field: bad})


def test_simulate_names_a_config_that_is_not_one():
    st = default_study(n_scenarios=2, n_steps=5, n_accounts=10)
    with pytest.raises(InputError, match="config"):
        adljax.simulate(st.venue, st.book, st.paths, config={"block": 3})


def test_cpu_runs_in_blocks_by_default():
    assert jax.default_backend() == "cpu"
    default = EngineConfig()
    assert default.block == "auto" and default.block_size() == default.block_size("cpu") == 8
    assert default.block_size("gpu") is None and default.block_size("tpu") is None    # the whole batch
    assert EngineConfig(cpu_block=3).block_size() == 3
    assert EngineConfig(block=None).block_size("cpu") is None
    assert EngineConfig(block=5, cpu_block=3).block_size("gpu") == 5


@pytest.fixture(scope="module")
def study():
    """11 float64 scenarios (not a multiple of any block but 1) on thin books under dYdX's random-order
    ADL, whose draws come from each scenario's key: a block that mixed up keys would change them."""
    st = default_study(n_scenarios=11, n_steps=40, n_accounts=60, dtype=np.float64)
    venue = st.venue.replace(adl_policy="random_order", backstop="none")
    paths = adljax.Paths(st.paths.oracle, st.paths.depth * 0.01)
    params, book, p = prepare(venue, st.book, paths, 1.0)
    keys = scenario_keys(st.key, 11)
    go = lambda b, p_, k, block: run(params, b, p_.oracle, p_.depth, k, rules=venue.rules, history=True,
                                     config=EngineConfig(block=block))
    return st, go, book, p, keys, go(book, p, keys, None)


def _same(got, want, scale, what):
    for k in want[1]:
        w, g = np.asarray(want[1][k], np.float64), np.asarray(got[1][k], np.float64)
        assert g.shape == w.shape, (what, k)
        tol = 1e-9 * scale if k in ERRORS else 1e-12 * scale
        np.testing.assert_allclose(g, w, rtol=1e-12, atol=tol, err_msg=f"{what}: {k}")
    for k in want[2]:
        np.testing.assert_allclose(np.asarray(got[2][k]), np.asarray(want[2][k]), rtol=1e-12, atol=1e-12 * scale,
                                   err_msg=f"{what}: history {k}")
    np.testing.assert_allclose(np.asarray(got[0].all_cash), np.asarray(want[0].all_cash), rtol=1e-12,
                               atol=1e-12 * scale)
    np.testing.assert_array_equal(np.asarray(got[0].all_size) == 0, np.asarray(want[0].all_size) == 0)


@pytest.mark.parametrize("block", [3, 8])
def test_blocked_run_is_the_whole_batch(study, block):
    st, go, book, p, keys, whole = study
    m = whole[1]
    assert np.sum(np.asarray(m["adl_notional"]) > 0) >= 3        # ADL drew its random order in several scenarios
    assert np.sum(np.asarray(m["adl_notional"]) == 0) >= 1        # ... and not in every one
    scale = float(np.abs(np.asarray(book.all_cash)).sum(axis=-1).max())
    got = go(book, p, keys, block)
    assert got[1]["adl_notional"].shape == (11,) and got[0].all_cash.shape == whole[0].all_cash.shape
    _same(got, whole, scale, f"blocks of {block}")
    # Zero sum per market in every final book, blocked as unblocked.
    assert np.abs(np.asarray(got[0].all_size).sum(axis=-2)).max() <= 1e-9 * np.abs(np.asarray(book.all_size)).max()


def test_a_scenario_in_a_block_is_the_scenario_alone(study):
    """Scenario 9 is in the second of two blocks of 6 (padded with a copy of scenario 10); run alone it is the same."""
    st, go, book, p, keys, whole = study
    sl = lambda t: jax.tree_util.tree_map(lambda x: x[9:10], t)
    alone = go(sl(book), adljax.Paths(p.oracle[9:10], p.depth[9:10]), keys[9:10], None)
    blocked = go(book, p, keys, 8)
    scale = float(np.abs(np.asarray(book.all_cash)).sum(axis=-1).max())
    _same(jax.tree_util.tree_map(lambda x: x[9:10], blocked), alone, scale, "scenario 9")


def test_blocks_in_float32():
    st = default_study(n_scenarios=10, n_steps=30, n_accounts=80, dtype=np.float32)
    params, book, p = prepare(st.venue, st.book, adljax.Paths(st.paths.oracle, st.paths.depth * 0.02), 1.0)
    keys = scenario_keys(st.key, 10)
    whole, got = (run(params, book, p.oracle, p.depth, keys, rules=st.venue.rules, config=EngineConfig(block=b))
                  for b in (None, 4))
    assert np.asarray(whole[1]["backstop_notional"]).sum() > 0
    scale = float(np.abs(np.asarray(book.all_cash, np.float64)).sum(axis=-1).max())
    for k in whole[1]:
        w, g = np.asarray(whole[1][k], np.float64), np.asarray(got[1][k], np.float64)
        assert np.asarray(got[1][k]).dtype == np.float32, k
        np.testing.assert_allclose(g, w, rtol=1e-5, atol=1e-5 * scale, err_msg=k)
