"""Summary statistics of a study's per-scenario metrics (pure functions of ``{name: [S] array}``).

Definitions (every statistic is over the S scenarios of a study, each
scenario weighing the same):

- **quantile** ``Q_q(x)``: the empirical (inverted-CDF) quantile, the
  smallest value ``v`` among the ``x`` with ``P(x ≤ v) ≥ q``; with ``x``
  sorted ascending, ``x[ceil(q·S) − 1]`` (``numpy.quantile(x, q,
  method="inverted_cdf")``). It is always one of the observed values, so
  ``p50``/``p99`` of a metric are amounts some scenario actually had.
- **loss of the vault** ``L = −vault_pnl`` (USD; a gain is a negative loss).
- **VaR_q** = ``Q_q(L)``: the loss that a share ``q`` of the scenarios do not
  exceed.
- **ES_q** (expected shortfall) = the mean of the losses ``L ≥ VaR_q``
  (the tail at and beyond the VaR, ties included).
- **fired**: the share of scenarios in which a stage did anything (its
  metric > 0, see :data:`STAGES`). ``P(ADL)`` is the share with
  ``adl_notional > 0``.
"""
from __future__ import annotations

import math
from typing import Mapping

import numpy as np

#: The waterfall's stages as summarised: name -> (label, amount metric, "fired" metric, unit).
#: A stage fired in a scenario when its "fired" metric is > 0.
STAGES: dict[str, tuple[str, str, str, str]] = {
    "market_liquidation": ("market liquidation", "market_liquidation_notional", "market_liquidation_orders", "USD"),
    "partial_orders": ("partial liquidation orders", "partial_liquidation_orders", "partial_liquidation_orders",
                       "count"),
    "backstop": ("backstop takeover", "backstop_notional", "backstop_accounts", "USD"),
    "backstop_accounts": ("accounts backstopped", "backstop_accounts", "backstop_accounts", "count"),
    "adl": ("ADL (counterparty notional)", "adl_notional", "adl_notional", "USD"),
    "adl_accounts": ("accounts deleveraged", "n_adl_accounts", "n_adl_accounts", "count"),
    "socialized_loss": ("socialized loss", "socialized_loss", "socialized_loss", "USD"),
    "bad_debt": ("bad debt", "bad_debt", "bad_debt", "USD"),
}

#: The parts bad debt splits into (they sum to ``bad_debt``).
BAD_DEBT_PARTS = {"backstop": "bad_debt_backstop", "adl": "bad_debt_adl", "residual": "bad_debt_residual"}

#: Levels of vault-loss VaR and ES reported.
LEVELS = (0.95, 0.99)


def _arr(x) -> np.ndarray:
    a = np.asarray(x, dtype=np.float64).reshape(-1)
    if a.size == 0:
        raise ValueError("no scenarios")
    return a


def quantile(x, q: float) -> float:
    """Empirical quantile: the smallest observed ``v`` with ``share(x ≤ v) ≥ q``, ``x_sorted[ceil(q·S) − 1]``."""
    a = np.sort(_arr(x))
    if not 0.0 <= q <= 1.0:
        raise ValueError(f"q must be in [0, 1], got {q}")
    i = max(math.ceil(q * a.size - 1e-9) - 1, 0)
    return float(a[i])


def var(loss, q: float) -> float:
    """Value at risk: ``VaR_q = Q_q(loss)``, the q-quantile of the loss (see :func:`quantile`)."""
    return quantile(loss, q)


def expected_shortfall(loss, q: float) -> float:
    """Expected shortfall: ``ES_q`` = mean of the losses ``≥ VaR_q`` (ties at the VaR included)."""
    a = _arr(loss)
    return float(a[a >= var(a, q)].mean())


def describe(x) -> dict[str, float]:
    """``fired`` (share > 0), ``mean``, ``p50``, ``p99``, ``max``, and ``mean_when_fired`` (0 if it never fired)."""
    a = _arr(x)
    pos = a > 0
    return {
        "fired": float(pos.mean()),
        "mean": float(a.mean()),
        "p50": quantile(a, 0.5),
        "p99": quantile(a, 0.99),
        "max": float(a.max()),
        "mean_when_fired": float(a[pos].mean()) if pos.any() else 0.0,
    }


def stage_stats(metrics: Mapping[str, np.ndarray]) -> dict[str, dict[str, float]]:
    """Per stage of :data:`STAGES`: how often it fired (share of scenarios) and how much (mean, p50, p99, max)."""
    out = {}
    for key, (label, amount, fired, unit) in STAGES.items():
        if amount not in metrics:
            continue
        d = describe(metrics[amount])
        d["fired"] = float(np.mean(_arr(metrics[fired]) > 0))
        d["metric"], d["unit"], d["label"] = amount, unit, label
        out[key] = d
    return out


def bad_debt_split(metrics: Mapping[str, np.ndarray]) -> dict[str, dict[str, float]]:
    """Bad debt per scenario covered by the backstop, by ADL, and left over: each part's :func:`describe` statistics
    and ``share``, the part's sum over scenarios divided by total bad debt's sum (0 when there is no bad debt)."""
    total = float(_arr(metrics["bad_debt"]).sum())
    out = {}
    for part, name in BAD_DEBT_PARTS.items():
        a = _arr(metrics[name])
        out[part] = {**describe(a), "share": float(a.sum() / total) if total > 0 else 0.0, "metric": name}
    return out


def vault_loss(metrics: Mapping[str, np.ndarray]) -> dict[str, float]:
    """The vault's loss ``L = −vault_pnl``: mean, ``P(L > 0)``, and VaR/ES at :data:`LEVELS`."""
    loss = 0.0 - _arr(metrics["vault_pnl"])          # 0.0 − x: no −0.0 for a vault that did nothing
    out = {"mean": float(loss.mean()), "p_loss": float(np.mean(loss > 0)), "max": float(loss.max())}
    for q in LEVELS:
        tag = f"{round(q * 100):d}"
        out[f"var{tag}"] = var(loss, q)
        out[f"es{tag}"] = expected_shortfall(loss, q)
    return out


def p_adl(metrics: Mapping[str, np.ndarray]) -> float:
    """Share of scenarios in which ADL closed anything (``adl_notional > 0``)."""
    return float(np.mean(_arr(metrics["adl_notional"]) > 0))


def summarize(metrics: Mapping[str, np.ndarray]) -> dict:
    """Every statistic of a study, JSON-able: stages, bad-debt split, P(ADL), vault loss VaR/ES, error bounds."""
    m = {k: _arr(v) for k, v in metrics.items()}
    return {
        "scenarios": int(next(iter(m.values())).size),
        "p_adl": p_adl(m),
        "p_bad_debt": float(np.mean(m["bad_debt"] > 0)),
        "stages": stage_stats(m),
        "bad_debt": {"mean": float(m["bad_debt"].mean()), "p99": quantile(m["bad_debt"], 0.99),
                     "split": bad_debt_split(m)},
        "vault_loss": vault_loss(m),
        "max_conservation_error": float(m["conservation_error"].max()),
        "max_zero_sum_error": float(m["zero_sum_error"].max()),
    }


#: Columns of a venue comparison: (key, header, how to read it from :func:`summarize`'s dict, unit).
#: Amounts are means per scenario.
COMPARISON = (
    ("p_adl", "P(ADL)", lambda s: s["p_adl"], "share"),
    ("p_bad_debt", "P(bad debt)", lambda s: s["p_bad_debt"], "share"),
    ("bad_debt", "bad debt", lambda s: s["bad_debt"]["mean"], "USD"),
    ("bad_debt_backstop", "… by backstop", lambda s: s["bad_debt"]["split"]["backstop"]["mean"], "USD"),
    ("bad_debt_adl", "… by ADL", lambda s: s["bad_debt"]["split"]["adl"]["mean"], "USD"),
    ("bad_debt_residual", "… left over", lambda s: s["bad_debt"]["split"]["residual"]["mean"], "USD"),
    ("adl_notional", "ADL notional", lambda s: s["stages"]["adl"]["mean"], "USD"),
    ("socialized_loss", "socialized loss", lambda s: s["stages"]["socialized_loss"]["mean"], "USD"),
    ("vault_loss_es99", "vault ES99", lambda s: s["vault_loss"]["es99"], "USD"),
)


def comparison(summaries: Mapping[str, dict]) -> list[dict]:
    """One row per venue (``{venue: summarize(...)}``): ``venue`` and the :data:`COMPARISON` keys."""
    return [{"venue": v, **{k: f(s) for k, _, f, _ in COMPARISON}} for v, s in summaries.items()]
