"""Properties of the fast engine over random books × violent paths: batching, jit, float32.

The invariants of :mod:`invariants` (zero sum per market, conserved value, no
loss to rows without positions, ...) are checked on every case of
test_differential.py, in float64, for both engines; here in float32.

Every ``simulate`` call with a new (shape, rules, dtype, history) compiles,
so the cases are drawn from the few shapes of ``strategies.SHAPES`` and the
static rules from ``strategies.RULE_SETS``, and the checks are grouped into
a few tests.
"""
from __future__ import annotations

import numpy as np
import jax
from hypothesis import HealthCheck, assume, given, note, settings

import adljax
from adljax import METRICS, Paths

from invariants import REL, check_invariants, metrics_np
from strategies import COUNTS, RULE_SETS, SHAPES, cases, compare_outcomes, kind_of_metric, tolerance

#: derandomize: the same cases every run (CI stays reproducible; a longer random run is how to hunt).
SETTINGS = dict(deadline=None, derandomize=True,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


def assert_outcomes_close(case, got, want, what: str):
    """Every metric, book field and history series of two outcomes agree to 1e-9 (floors tied to the case's scale)."""
    bad = compare_outcomes(case, got, want, REL)
    assert not bad, f"{what}:\n" + "\n".join(bad)


def simulate(case, dtype=np.float64, scenarios=slice(None), history=False):
    return adljax.simulate(case.venue, case.book(dtype), case.paths(dtype, scenarios), dt=case.dt, history=history)


# --------------------------------------------------------------------------- batching
@settings(max_examples=3, **SETTINGS)
@given(cases(shapes=(SHAPES[2],), n_scenarios=3, rules=RULE_SETS[:1]))
def test_scenario_alone_matches_batch(case):
    """Scenario i simulated alone gives what it gives inside a batch of three.

    Hyperliquid's rules only (each rule set compiles two programs more): what couples a batch is
    the stages it skips or runs for all its scenarios at once, the same under every rule set.
    Keys drawn per scenario (random-order ADL) are checked by test_chunking.py and test_sharding.py."""
    note(case.describe())
    batch = simulate(case, history=True)
    for i in range(3):
        alone = simulate(case, scenarios=slice(i, i + 1), history=True)
        one = jax.tree_util.tree_map(lambda x: x[i:i + 1], batch)
        assert_outcomes_close(case, alone, one, f"scenario {i} alone vs in the batch")


# --------------------------------------------------------------------------- jit vs no jit
def _stages_acted(out) -> dict[str, bool]:
    """Whether each stage of the waterfall acted in some scenario of ``out``."""
    m = metrics_np(out)
    return {"market liquidation": bool(np.any(m["market_liquidation_orders"] > 0)),
            "partial liquidation": bool(np.any(m["partial_liquidation_orders"] > 0)),
            "backstop": bool(np.any(m["backstop_accounts"] > 0)),
            "ADL": bool(np.any(m["adl_notional"] > 0))}


@settings(max_examples=1, **SETTINGS)
@given(cases(shapes=(SHAPES[0],), n_scenarios=3, rules=RULE_SETS[:1]))
def test_no_jit_matches_jit(case):
    """The engine gives the same results run op by op, on the first drawn case in which every stage acts
    (Hyperliquid's rules: vault backstop, queue ADL); slow, so one case (the hand-worked tests run every
    case both ways)."""
    note(case.describe())
    jitted = simulate(case, history=True)
    assume(all(_stages_acted(jitted).values()))
    with jax.disable_jit():
        plain = simulate(case, history=True)
    assert all(_stages_acted(plain).values())
    assert_outcomes_close(case, plain, jitted, "disable_jit vs jit")


# --------------------------------------------------------------------------- float32
F32_SHAPES = (SHAPES[1],)


@settings(max_examples=5, **SETTINGS)
@given(cases(shapes=F32_SHAPES, n_scenarios=3))
def test_float32_runs_and_conserves(case):
    """The same case in float32 runs, stays finite, conserves value to ~1e-5 of the scale."""
    note(case.describe())
    out = simulate(case, dtype=np.float32, history=True)
    assert out.book.all_cash.dtype == np.float32
    for k, v in out.metrics.items():
        assert v.dtype == np.float32, k
    check_invariants(case, out, rel=1e-5, dtype=np.float32)


def _counts(out):
    m = metrics_np(out)
    return {k: m[k].tolist() for k in COUNTS}


@settings(max_examples=3, **SETTINGS)
@given(cases(shapes=F32_SHAPES, n_scenarios=3, rules=RULE_SETS[:1], calm=True))
def test_float32_close_to_float64_on_calm_case(case):
    """On calm paths with deep books, float32 metrics are close to float64's.

    One rule set (Hyperliquid's): the cases compared have no bankrupt row, so the
    ADL rules, most of what differs between the rule sets, never act; each
    further rule set would compile the engine twice more.

    Only cases in which market liquidation acts in some scenario compare (a case that liquidates
    nothing compares little), and only cases without knife-edge decisions: a case whose float64
    counts change under a 1e-6 relative nudge of the prices is skipped, and
    so is one with a bankrupt row (ADL of a row that takes all the opposite
    interest of a market is a knife edge in float32, where the book is
    zero-sum only to float32 rounding: the row is left with dust and is
    deleveraged again a step later).
    """
    note(case.describe())
    want = simulate(case, history=True)
    assume(np.all(metrics_np(want)["n_bankrupt_accounts"] == 0))
    assume(_stages_acted(want)["market liquidation"])      # compare cases in which liquidation acts
    for nudge in (1 + 1e-6, 1 - 1e-6):
        nudged = adljax.simulate(case.venue, case.book(), Paths(case.oracle * nudge, case.depth), dt=case.dt,
                                 history=True)
        assume(_counts(nudged) == _counts(want))
    got = simulate(case, dtype=np.float32, history=True)
    gm, wm = metrics_np(got), metrics_np(want)
    note({k: (gm[k].tolist(), wm[k].tolist()) for k in METRICS})
    assert _counts(got) == _counts(want)
    for k in METRICS:
        if k in COUNTS:
            continue
        atol = tolerance(case, kind_of_metric(k), 1e-5)
        np.testing.assert_allclose(gm[k], wm[k], rtol=1e-4, atol=atol, err_msg=f"float32 vs float64: {k}")
