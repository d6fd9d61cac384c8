"""Summary statistics of a study's per-scenario metrics (pure functions of ``{name: [S] array}``).

Each statistic has one definition, here, used by every command (``adljax run``'s table and
``summary.json``, the venue comparison, the figures, and calibration's objectives in
:mod:`adljax.objectives`). docs/metrics.md states them with worked examples.

Every statistic is over the S scenarios of a study, each scenario weighing the same:

- **quantile** ``Q_q(x)``: the empirical (inverted-CDF) quantile, the
  smallest value ``v`` among the ``x`` with ``P(x ≤ v) ≥ q``; with ``x``
  sorted ascending, ``x[ceil(q·S) − 1]`` (``numpy.quantile(x, q,
  method="inverted_cdf")``). It is always one of the observed values, so
  ``p50``/``p99`` of a metric are amounts some scenario actually had.
- **loss of the vault** ``L = −vault_pnl`` (USD; a gain is a negative loss).
- **VaR_q** = ``Q_q(L)``: the loss that a share ``q`` of the scenarios do not
  exceed.
- **ES_q** (expected shortfall, Acerbi & Tasche): the mean of the worst
  ``k = (1 − q)·S`` scenarios, taken exactly: with the losses sorted from
  the largest, ``ES_q = (x_1 + … + x_⌊k⌋ + (k − ⌊k⌋)·x_⌊k⌋+1) / k``, and the
  largest loss when ``k ≤ 1``. At S = 100, ES99 is the largest loss and ES95
  the mean of the five largest. The weights are :func:`tail_weights`, shared
  with the differentiable objective.
- **P(ADL)**: the share of scenarios in which ADL acted, ``adl_indicator >
  0`` (:data:`ADL_ACTED`): some step closed a position against a
  counterparty, or charged a socialized loss (Drift, where ADL closes no
  notional).
- **fired**: the share of scenarios in which a stage did anything (its
  "fired" metric > 0, see :data:`STAGES`); the ADL stage fires by the
  definition of P(ADL).
"""
from __future__ import annotations

import math
from typing import Mapping

import numpy as np

from ..model.errors import InputError

#: The per-scenario metric that says whether ADL acted. In the hard mode it is 1 when some step had an ADL fill
#: or a socialized charge (``any_fill`` of :mod:`adljax.engine.stages.adl`), else 0; in the smooth mode it is
#: relaxed into [0, 1] (the calibration objective ``p_adl`` is its mean).
ADL_ACTED = "adl_indicator"

#: The waterfall's stages as summarised: name -> (label, amount metric, "fired" metric, unit).
#: A stage fired in a scenario when its "fired" metric is > 0; ADL fires when it acted (:data:`ADL_ACTED`), which
#: under Drift's socialized loss happens with no ADL notional.
STAGES: dict[str, tuple[str, str, str, str]] = {
    "market_liquidation": ("market liquidation", "market_liquidation_notional", "market_liquidation_orders", "USD"),
    "partial_orders": ("partial liquidation orders", "partial_liquidation_orders", "partial_liquidation_orders",
                       "count"),
    "backstop": ("backstop takeover", "backstop_notional", "backstop_accounts", "USD"),
    "backstop_accounts": ("accounts backstopped", "backstop_accounts", "backstop_accounts", "count"),
    "adl": ("ADL (counterparty notional)", "adl_notional", ADL_ACTED, "USD"),
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


def tail_weights(n: int, level: float) -> tuple[np.ndarray, float]:
    """The expected shortfall's weights on ``n`` values sorted from the largest, and their sum ``k``.

    ``k = (1 − level)·n`` (the tail's size in scenarios, at least 1); value ``i`` (0-based) weighs
    ``clip(k − i, 0, 1)``: 1 for the ``⌊k⌋`` largest, ``k − ⌊k⌋`` for the next, 0 after. ``ES = Σ w·x / k``.
    With ``k < 1`` the formula gives the largest value whatever ``k`` (weight ``k``, divided by ``k``); ``k`` is
    taken as 1 there. ``k`` is rounded to 9 decimals, so that ``(1 − 0.99)·100`` is 1, not 1.0000000000000009
    (which would give the second largest a weight of 1e-15), and ``(1 − 0.85)·10`` is 1.5.

    Raises:
      InputError: ``level`` not in (0, 1).
    """
    if not 0 < level < 1:
        raise InputError(f"level: expected a probability in (0, 1), e.g. 0.99, got {level!r}")
    k = max(round((1.0 - level) * n, 9), 1.0)
    return np.clip(k - np.arange(n, dtype=np.float64), 0.0, 1.0), k


def expected_shortfall(loss, q: float) -> float:
    """Expected shortfall ``ES_q``: the mean of the worst ``(1 − q)·S`` losses, the boundary one fractionally.

    ``Σ w·x / k`` over the losses sorted from the largest, with :func:`tail_weights`; float64.
    """
    a = -np.sort(-_arr(loss))
    w, k = tail_weights(a.size, q)
    return float(np.sum(a * w) / k)


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
    """Per stage of :data:`STAGES`: how often it fired (share of scenarios) and how much (mean, p50, p99, max).

    ``fired`` and ``mean_when_fired`` use the stage's "fired" metric, so the ADL row agrees with P(ADL).
    """
    out = {}
    for key, (label, amount, fired, unit) in STAGES.items():
        if amount not in metrics:
            continue
        a = _arr(metrics[amount])
        on = _arr(metrics[fired]) > 0
        d = describe(a)
        d["fired"] = float(on.mean())
        d["mean_when_fired"] = float(a[on].mean()) if on.any() else 0.0
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


def adl_acted(metrics: Mapping[str, np.ndarray]) -> np.ndarray:
    """[S] bool: ADL acted in the scenario (``adl_indicator > 0``): a position closed against a counterparty, or a
    socialized loss charged (Drift)."""
    return _arr(metrics[ADL_ACTED]) > 0


def p_adl(metrics: Mapping[str, np.ndarray]) -> float:
    """P(ADL): the share of scenarios in which ADL acted (:func:`adl_acted`)."""
    return float(np.mean(adl_acted(metrics)))


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
