"""Summary statistics (adljax.analysis.metrics) against numbers worked by hand.

Definitions under test (adljax.analysis.metrics' docstring):
  quantile Q_q(x) = x_sorted[ceil(q·S) − 1]   (the smallest observed v with share(x ≤ v) ≥ q)
  VaR_q = Q_q(loss),   loss = −vault_pnl,
  ES_q = the mean of the worst k = (1 − q)·S losses, the boundary one with weight k − ⌊k⌋ (the largest if k ≤ 1).
"""
import numpy as np
import pytest

from adljax import METRICS

from adljax.analysis import metrics as results

LOSS = [100.0, -5.0, 0.0, 20.0, 1.0, 0.0, 3.0, 10.0, 2.0, 4.0]   # sorted: −5 0 0 1 2 3 4 10 20 100


def test_quantile_is_an_observed_value_by_the_inverted_cdf():
    assert results.quantile(LOSS, 0.5) == 2.0          # ceil(5) − 1 = 4th (0-based) of the sorted losses
    assert results.quantile(LOSS, 0.9) == 20.0         # ceil(9) − 1 = 8
    assert results.quantile(LOSS, 0.91) == 100.0       # ceil(9.1) − 1 = 9
    assert results.quantile(LOSS, 0.95) == 100.0
    assert results.quantile(LOSS, 0.0) == -5.0
    assert results.quantile(LOSS, 1.0) == 100.0
    assert results.quantile(list(range(1, 101)), 0.99) == 99.0   # 0.99·100 is 99 exactly, not 99.00000000000001
    for q in (0.1, 0.37, 0.5, 0.99):
        assert results.quantile(LOSS, q) == np.quantile(LOSS, q, method="inverted_cdf")


def test_var_and_es():
    assert results.var(LOSS, 0.9) == 20.0
    assert results.expected_shortfall(LOSS, 0.9) == 100.0            # k = 1: the largest
    assert results.expected_shortfall(LOSS, 0.5) == pytest.approx((100 + 20 + 10 + 4 + 3) / 5)   # k = 5
    assert results.expected_shortfall(LOSS, 0.95) == 100.0           # k = 0.5: the largest
    assert results.expected_shortfall(LOSS, 0.85) == pytest.approx((100 + 0.5 * 20) / 1.5)       # k = 1.5


def test_es_weighs_ties_at_the_boundary_like_any_loss():
    loss = [1.0, 2.0, 2.0, 2.0, 5.0]
    assert results.var(loss, 0.5) == 2.0                              # ceil(2.5) − 1 = 2
    assert results.expected_shortfall(loss, 0.5) == 3.2              # k = 2.5: (5 + 2 + 0.5·2) / 2.5


def test_describe():
    d = results.describe([0.0, 0.0, 3.0, 5.0])
    assert d == {"fired": 0.5, "mean": 2.0, "p50": 0.0, "p99": 5.0, "max": 5.0, "mean_when_fired": 4.0}
    assert results.describe([0.0, 0.0])["mean_when_fired"] == 0.0


def _metrics():
    """Four scenarios worked by hand."""
    m = {k: np.zeros(4) for k in METRICS}
    m["market_liquidation_notional"] = np.array([0.0, 1000.0, 3000.0, 8000.0])
    m["market_liquidation_orders"] = np.array([0.0, 1.0, 2.0, 5.0])
    m["backstop_notional"] = np.array([0.0, 0.0, 500.0, 1500.0])
    m["backstop_accounts"] = np.array([0.0, 0.0, 1.0, 2.0])
    m["adl_notional"] = np.array([0.0, 0.0, 0.0, 400.0])
    m["n_adl_accounts"] = np.array([0.0, 0.0, 0.0, 3.0])
    m["adl_indicator"] = np.array([0.0, 0.0, 0.0, 1.0])
    m["adl_steps"] = np.array([0.0, 0.0, 0.0, 2.0])
    m["bad_debt_backstop"] = np.array([0.0, 0.0, 50.0, 100.0])
    m["bad_debt_adl"] = np.array([0.0, 0.0, 0.0, 40.0])
    m["bad_debt_residual"] = np.array([0.0, 0.0, 0.0, 10.0])
    m["bad_debt"] = m["bad_debt_backstop"] + m["bad_debt_adl"] + m["bad_debt_residual"]   # 0 0 50 150
    m["vault_pnl"] = np.array([30.0, 0.0, -50.0, -250.0])                               # loss −30 0 50 250
    m["conservation_error"] = np.array([1e-6, 0.0, 2e-6, 3e-6])
    m["zero_sum_error"] = np.array([0.0, 1e-9, 0.0, 0.0])
    return m


def test_summarize_by_hand():
    s = results.summarize(_metrics())
    assert s["scenarios"] == 4
    assert s["p_adl"] == 0.25
    assert s["p_bad_debt"] == 0.5
    ml = s["stages"]["market_liquidation"]
    assert (ml["fired"], ml["mean"], ml["p50"], ml["p99"], ml["max"]) == (0.75, 3000.0, 1000.0, 8000.0, 8000.0)
    bs = s["stages"]["backstop"]
    assert (bs["fired"], bs["mean"], bs["p50"], bs["p99"]) == (0.5, 500.0, 0.0, 1500.0)
    assert s["stages"]["adl"]["fired"] == 0.25 and s["stages"]["adl"]["mean"] == 100.0
    assert s["stages"]["adl_accounts"]["mean"] == 0.75
    assert s["bad_debt"]["mean"] == 50.0                                  # (50 + 150) / 4
    split = s["bad_debt"]["split"]
    assert split["backstop"]["mean"] == 37.5 and split["backstop"]["share"] == 0.75      # 150 of 200
    assert split["adl"]["mean"] == 10.0 and split["adl"]["share"] == 0.2                 # 40 of 200
    assert split["residual"]["mean"] == 2.5 and split["residual"]["share"] == 0.05       # 10 of 200
    assert sum(p["share"] for p in split.values()) == pytest.approx(1.0)
    v = s["vault_loss"]
    # losses sorted: −30 0 50 250; Q_0.95: ceil(3.8) − 1 = 3 → 250; Q_0.5: ceil(2) − 1 = 1 → 0;
    # ES95, ES99: k = 0.2, 0.04 < 1 → the largest loss
    assert v["mean"] == 67.5 and v["p_loss"] == 0.5 and v["max"] == 250.0
    assert v["var95"] == 250.0 and v["es95"] == 250.0
    assert v["var99"] == 250.0 and v["es99"] == 250.0
    assert results.var(-_metrics()["vault_pnl"], 0.5) == 0.0
    assert results.expected_shortfall(-_metrics()["vault_pnl"], 0.5) == 150.0            # k = 2: (250 + 50) / 2
    assert s["max_conservation_error"] == 3e-6 and s["max_zero_sum_error"] == 1e-9


def test_a_vault_that_did_nothing_has_no_negative_zero_loss():
    m = _metrics()
    m["vault_pnl"] = np.zeros(4)
    v = results.vault_loss(m)
    assert all(not np.signbit(v[k]) for k in ("mean", "var95", "es99", "max"))


def test_no_bad_debt_gives_zero_shares():
    m = _metrics()
    for k in ("bad_debt", "bad_debt_backstop", "bad_debt_adl", "bad_debt_residual"):
        m[k] = np.zeros(4)
    assert all(p["share"] == 0.0 for p in results.bad_debt_split(m).values())


def test_comparison_rows():
    s = results.summarize(_metrics())
    rows = results.comparison({"a": s, "b": s})
    assert [r["venue"] for r in rows] == ["a", "b"]
    assert rows[0]["p_adl"] == 0.25 and rows[0]["bad_debt"] == 50.0 and rows[0]["adl_notional"] == 100.0
    assert rows[0]["vault_loss_es99"] == 250.0
    assert rows[0]["bad_debt_backstop"] + rows[0]["bad_debt_adl"] + rows[0]["bad_debt_residual"] == 50.0


# ---- figures (adljax.analysis.plots): readable at the shipped studies' sizes --------------------------------------
def _drawn(monkeypatch, draw, *args):
    """The figure ``draw`` makes, drawn but not saved."""
    from adljax.analysis import plots

    monkeypatch.setattr(plots, "_save", lambda fig, path: fig)
    fig = draw(*args, "unused.png", "title")
    fig.canvas.draw()
    return fig


def _visible_ticks(axis):
    lo, hi = sorted(axis.get_view_interval())
    return [t for t in axis.get_major_ticks() if lo <= t.get_loc() <= hi and t.label1.get_visible()]


def test_adl_steps_axis_has_a_few_whole_numbers_not_a_label_a_bar(monkeypatch):
    from adljax.analysis import plots

    m = {k: np.zeros(256) for k in METRICS}
    m["adl_steps"] = 93.0 + np.arange(256) % 24                 # 93 … 116, as scenarios/oct10_cascade.toml gives
    m["adl_indicator"] = np.ones(256)
    m["adl_notional"] = np.full(256, 5.5e7)
    fig = _drawn(monkeypatch, plots.adl, m)
    ticks = _visible_ticks(fig.axes[0].xaxis)
    assert 3 <= len(ticks) <= 10
    assert all(float(t.get_loc()).is_integer() for t in ticks)


def test_usd_ticks_tell_close_amounts_apart():
    from adljax.analysis import plots

    f = plots.usd_formatter()
    locs = [5_000_000.0 + 100.0 * i for i in range(-1, 7)]       # the oct10 study's vault losses: $5M ± a few $100
    f.set_locs(locs)
    labels = [f(x) for x in locs]
    assert len(set(labels)) == len(locs) and f.get_offset() == "+ $5M"
    assert labels[:3] == ["−$100", "$0", "+$100"]
    f.set_locs([0.0, 5e5, 1e6])                                    # far apart: plain 3-digit amounts, no offset
    assert [f(x) for x in (0.0, 5e5, 1e6)] == ["$0", "$500k", "$1M"] and f.get_offset() == ""
    assert plots.usd_labels([5_000_000.0, 5_000_136.0, 5_000_367.0]) == ["$5,000,000", "$5,000,136", "$5,000,367"]


def test_adl_figure_shows_the_socialized_loss_when_adl_closes_nothing(monkeypatch):
    from adljax.analysis import plots

    m = {k: np.zeros(4) for k in METRICS}
    m["adl_indicator"] = np.array([1.0, 0.0, 1.0, 0.0])           # Drift: ADL acted, closed no notional
    m["adl_steps"] = np.array([1.0, 0.0, 2.0, 0.0])
    m["socialized_loss"] = np.array([100.0, 0.0, 300.0, 0.0])
    fig = _drawn(monkeypatch, plots.adl, m)
    assert "P(ADL) = 50.0%" in fig.axes[0].get_title()
    assert fig.axes[1].get_xlabel().startswith("socialized loss") and "$200 with ADL" in fig.axes[1].get_title()
