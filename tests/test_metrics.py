"""One definition per statistic: what `adljax run` reports (adljax.analysis.metrics) and what calibration
constrains (adljax.analysis.objectives) are the same numbers, worked by hand.

- P(ADL) is the share of scenarios in which ADL acted (``adl_indicator > 0``): a position closed against a
  counterparty, or a socialized loss charged (Drift, where ADL closes no notional).
- ES_q (Acerbi & Tasche) is the mean of the worst ``k = (1 − q)·S`` losses, the boundary one with weight
  ``k − ⌊k⌋``: ``(x_1 + … + x_⌊k⌋ + (k − ⌊k⌋)·x_⌊k⌋+1) / k`` with the losses sorted from the largest, and
  the largest loss when ``k ≤ 1``.
"""
import jax.numpy as jnp
import numpy as np
import pytest

import adljax
from adljax import METRICS, Book, Paths, venues
from adljax.analysis import metrics, objectives
from adljax.analysis.calibration import assess
from adljax.model.errors import InputError
from adljax.study import Study

BIG = 1e12   # depth that never binds


def _shuffled(s: int, seed: int = 3) -> np.ndarray:
    """The losses 1, 2, …, s in a shuffled order (so the sort matters)."""
    return np.random.default_rng(seed).permutation(np.arange(1.0, s + 1.0))


@pytest.mark.parametrize("s, level, want", [
    (100, 0.99, 100.0),                           # k = 1: the largest
    (100, 0.95, (100 + 99 + 98 + 97 + 96) / 5),   # k = 5: the mean of the five largest, 98
    (10, 0.95, 10.0),                             # k = 0.5: (0.5·10)/0.5, the largest
    (8, 0.75, (8 + 7) / 2),                       # k = 2: the mean of the two largest
    (10, 0.85, (10 + 0.5 * 9) / 1.5),             # k = 1.5: the second largest weighs 0.5
    (10, 0.5, (10 + 9 + 8 + 7 + 6) / 5),          # k = 5
    (4, 0.3, (4 + 3 + 0.8 * 2) / 2.8),            # k = 2.8
])
def test_expected_shortfall_by_hand_in_the_summary_and_the_objective(s, level, want):
    x = _shuffled(s)
    assert metrics.expected_shortfall(x, level) == pytest.approx(want, rel=1e-14)
    assert float(objectives.expected_shortfall(jnp.asarray(x), level)) == pytest.approx(want, rel=1e-14)


def test_tail_weights_by_hand():
    w, k = metrics.tail_weights(10, 0.85)
    assert k == 1.5 and w.tolist() == [1.0, 0.5] + [0.0] * 8
    w, k = metrics.tail_weights(100, 0.99)              # (1 − 0.99)·100 is 1.0000000000000009 in floats
    assert k == 1.0 and w.tolist() == [1.0] + [0.0] * 99
    w, k = metrics.tail_weights(100, 0.95)
    assert k == 5.0 and w.tolist() == [1.0] * 5 + [0.0] * 95
    w, k = metrics.tail_weights(10, 0.95)               # k = 0.5 gives the largest value: taken as 1
    assert k == 1.0 and w.tolist() == [1.0] + [0.0] * 9
    for bad in (0.0, 1.0, 1.5):
        with pytest.raises(InputError, match="level"):
            metrics.tail_weights(10, bad)


def test_es_lies_between_the_var_and_the_largest_loss():
    x = np.random.default_rng(0).standard_t(3, size=257) * 1e6
    for q in (0.5, 0.9, 0.95, 0.99, 0.999):
        assert metrics.var(x, q) <= metrics.expected_shortfall(x, q) <= x.max()


def _zeros(s: int) -> dict:
    return {k: np.zeros(s) for k in METRICS}


@pytest.mark.parametrize("s", [100, 256, 37])
def test_the_es99_adljax_run_writes_is_calibrations_vault_loss_es(s):
    m = _zeros(s)
    m["vault_pnl"] = np.random.default_rng(s).normal(0.0, 1e6, s)
    summary = metrics.summarize(m)["vault_loss"]
    mj = {k: jnp.asarray(v) for k, v in m.items()}
    assert summary["es99"] == pytest.approx(float(objectives.vault_loss_es(mj, 0.99)), rel=1e-12)
    assert summary["es95"] == pytest.approx(float(objectives.vault_loss_es(mj, 0.95)), rel=1e-12)
    if s == 100:
        assert summary["es99"] == -m["vault_pnl"].min()                          # the largest loss
        assert summary["es95"] == pytest.approx(np.sort(-m["vault_pnl"])[-5:].mean(), rel=1e-12)


def test_p_adl_counts_acting_not_notional():
    # Scenarios: ADL closed 400 (acted), socialized 30 with no notional (acted), nothing, nothing, nothing.
    m = _zeros(5)
    m["adl_indicator"] = np.array([1.0, 1.0, 0.0, 0.0, 0.0])
    m["adl_notional"] = np.array([400.0, 0.0, 0.0, 0.0, 0.0])
    m["socialized_loss"] = np.array([0.0, 30.0, 0.0, 0.0, 0.0])
    s = metrics.summarize(m)
    assert s["p_adl"] == 0.4 and metrics.p_adl(m) == 0.4
    assert float(objectives.p_adl({k: jnp.asarray(v) for k, v in m.items()})) == 0.4
    assert s["stages"]["adl"]["fired"] == 0.4                    # the table's ADL row agrees with P(ADL)
    assert s["stages"]["adl"]["mean"] == 80.0 and s["stages"]["adl"]["mean_when_fired"] == 200.0
    assert s["stages"]["socialized_loss"]["fired"] == 0.2
    assert metrics.comparison({"v": s})[0]["p_adl"] == 0.4


def _drift_crash_study() -> Study:
    """Drift, an empty insurance fund, one market, four scenarios of two steps: 100 → 90 in scenarios 0 and 2,
    100 → 99 in 1 and 3; no depth in the second step, so nothing is liquidated at market.

    X (long 20 @100, cash 100) is at AV 100 + 20·(90 − 100) = −100 at 90: bankrupt, nothing in the fund, so
    the socialized loss charges its 100 to the open positions of the other rows (shorts 5 + 10 + 15 and the
    long L 10: 2.5 a contract) and closes nothing. At 99, X has AV 80 ≥ MR 20·99·2.5 % = 49.5: nothing happens.
    """
    book = Book.from_accounts(cash=[100.0, 100.0, 500.0, 2000.0, 10_000.0, 777.0],
                              size=[[20.0], [-5.0], [-10.0], [-15.0], [10.0], [0.0]],
                              entry=[[100.0], [110.0], [100.0], [90.0], [100.0], [0.0]],
                              insurance_fund=0.0, dtype=np.float64)
    venue = venues.drift(impact=0.0, slippage=0.0)
    end = np.array([90.0, 99.0, 90.0, 99.0])

    def make_paths(first, n):
        last = end[first:first + n]
        oracle = np.stack([np.full_like(last, 100.0), last], axis=1)[:, :, None]       # [S, 2, 1]
        depth = np.broadcast_to(np.array([BIG, 0.0])[None, :, None], oracle.shape).copy()
        return Paths(oracle=oracle, depth=depth)

    return Study("drift-crash", venue, book, 1.0, 4, 2, make_paths, ("BTC",))


def test_a_drift_socialized_loss_counts_as_adl_in_run_and_in_calibration():
    study = _drift_crash_study()
    out = adljax.simulate(study.venue, study.book, study.paths, dt=study.dt)
    m = {k: np.asarray(v, dtype=np.float64) for k, v in out.metrics.items()}
    # The engine's own numbers, by hand: ADL closed nothing but charged 100 in scenarios 0 and 2.
    assert m["adl_notional"].tolist() == [0.0, 0.0, 0.0, 0.0]
    np.testing.assert_allclose(m["socialized_loss"], [100.0, 0.0, 100.0, 0.0], rtol=1e-12)
    s = metrics.summarize(m)
    assert s["p_adl"] == 0.5                                      # 2 of 4 scenarios
    assert s["stages"]["adl"]["fired"] == 0.5
    assert s["stages"]["socialized_loss"]["fired"] == 0.5 and s["stages"]["socialized_loss"]["mean"] == 50.0
    assert s["bad_debt"]["split"]["adl"]["share"] == pytest.approx(1.0)   # the socialized loss covered it all
    assert metrics.comparison({"drift": s})[0]["p_adl"] == 0.5
    # Calibration's hard-mode objective: the same definition, the same number.
    assert float(objectives.p_adl(out.metrics)) == 0.5
    assert assess(study)["p_adl"] == 0.5
