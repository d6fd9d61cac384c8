"""What a simulation returns: final books, per-scenario metrics, optional history."""
from __future__ import annotations

from typing import Mapping

import numpy as np
from jax import Array

from .pytree import pytree
from .book import Book

#: Every per-scenario metric, its unit and meaning. All are [S] arrays.
METRICS: dict[str, str] = {
    "market_liquidation_notional": "USD at mark: notional filled by market-liquidation orders (stage 2)",
    "market_liquidation_orders": "count: liquidation orders sent (one per row, market and step)",
    "partial_liquidation_orders": "count: of those, orders for a partial_fraction of a position over partial_threshold",
    "liquidation_fees": "USD: liquidation fees paid by liquidated rows (to the insurance fund or the vault)",
    "vault_unwind_notional": "USD at mark: notional the vault sold into the book to unwind positions it took over",
    "backstop_notional": "USD at mark: notional of positions taken over by the backstop vault (stage 3)",
    "backstop_accounts": "count: rows taken over by the vault, or paid by the insurance fund (per step)",
    "adl_notional": "USD at mark: notional of counterparty positions closed by ADL (stage 4)",
    "adl_notional_vault": ("USD at mark: of adl_notional, the notional closed against the vault row's bankrupt "
                           "positions (the vault took rows over and could not carry them)"),
    "socialized_loss": "USD: loss charged to open positions by the socialized policy",
    "n_adl_accounts": "count: distinct rows that lost to ADL at least once (closed as counterparty, or charged)",
    "n_bankrupt_accounts": "count: distinct rows (traders or vault) that reached ADL with AV < 0",
    "adl_steps": "count: steps in which ADL closed a position or charged a socialized loss",
    "adl_markets": ("count: markets in which ADL closed a position or charged a socialized loss in some step "
                    "(in the smooth mode: markets with any nonzero weighted close)"),
    "adl_indicator": ("1 if ADL closed or charged anything, else 0; in the smooth mode smoothstep(ADL notional of a "
                      "step / (temperature × traders' mean position notional at the start)), its largest over steps "
                      "(in [0, 1]; its mean is the relaxed P(ADL))"),
    "bad_debt": "USD: deficit resolved = bad_debt_backstop + bad_debt_adl + bad_debt_residual",
    "bad_debt_backstop": "USD: deficits (−AV) of rows the vault took over, or paid by the insurance fund",
    "bad_debt_adl": ("USD: reduction of bankrupt rows' deficits by their ADL fills (negative when closing at the "
                     "previous mark deepened them)"),
    "bad_debt_residual": "USD: Σ max(−AV, 0) over traders and vault at the end (left over)",
    "vault_pnl": "USD: vault account value at the end minus at the start",
    "vault_equity_min": "USD: lowest vault account value after any step (start included)",
    "conservation_error": "USD: max over steps of |Σ_rows AV + insurance fund − its start| (should be float rounding)",
    "zero_sum_error": "base units: max over steps and markets of |Σ_rows size| (should be float rounding)",
}

#: Per-step series kept when ``simulate(..., history=True)``: name -> shape, meaning.
HISTORY: dict[str, str] = {
    "mark": "[S, T, A] USD: mark price used in the step",
    "vault_equity": "[S, T] USD: vault account value after the step",
    "market_liquidation_notional": "[S, T] USD: filled in the step",
    "backstop_notional": "[S, T] USD: taken over in the step",
    "adl_notional": "[S, T] USD: counterparty notional closed in the step",
    "n_bankrupt": "[S, T] count: rows bankrupt at the ADL stage of the step",
}


@pytree
class Outcome:
    """Result of :func:`adljax.simulate`.

    Attributes:
      book: the final book of every scenario (leading axis S): a :class:`Book`, or a
        :class:`~adljax.PositionBook` when the run started from one.
      metrics: ``{name: [S] array}``, names and units in :data:`METRICS`.
      history: ``{name: array}`` per step (see :data:`HISTORY`) or ``None``.
    """

    book: Book
    metrics: Mapping[str, Array]
    history: Mapping[str, Array] | None = None

    def summary(self) -> dict[str, float]:
        """Batch summary: mean of every metric, plus ``p_adl`` (the share of scenarios in which ADL acted,
        :func:`adljax.analysis.metrics.p_adl`, as every command reports it)."""
        from ..analysis.metrics import p_adl

        out = {k: float(np.mean(np.asarray(v))) for k, v in self.metrics.items()}
        out["p_adl"] = p_adl(self.metrics)
        return out
