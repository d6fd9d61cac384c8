"""Stage 1 on a position book: AV, MR and open positions per row (:mod:`adljax.engine.stages.margin`), both modes."""
from __future__ import annotations

import jax.numpy as jnp
import numpy as np
from jax import Array

from ...model.position_book import PositionBook
from ...model.rows import lp_row
from ..market import Market
from ..stages.margin import Margin, liquidatable
from ...model.venue import Params
from .accounting import account_value, has_position, maintenance


def values(book: PositionBook, market: Market, params: Params) -> Margin:
    """Every row's :class:`~adljax.engine.stages.margin.Margin` at the step's mark."""
    lay, size = book.layout, book.position_size
    return Margin(av=account_value(lay, book.all_cash, size, book.position_entry, market.mark),
                  mr=maintenance(lay, size, market.mark, params),
                  has_position=has_position(lay, size))


def run(book: PositionBook, market: Market, params: Params, temperature: float = 0.0) -> tuple[Array, Margin]:
    """([R] liquidatable, :class:`~adljax.engine.stages.margin.Margin`) at the step's mark.

    ``temperature``: 0 (the hard rule, a bool [R]) or the smooth mode's τ (weights in [0, 1],
    :func:`adljax.engine.stages.margin.liquidatable`).
    """
    m = values(book, market, params)
    return liquidatable(m, temperature), m


def row_reach(book: PositionBook, market: Market, params: Params, margin: Margin) -> Array:
    """[R] each row's reach: the move of the marks, ``max_a |mark'_a − mark_a| / mark_a``, below which the row
    cannot become liquidatable, a backstop candidate or bankrupt (hard mode), with the book as it is and
    ``margin`` its values at ``market.mark``; ``inf`` for the liquidity providers' row (not margin-checked).

    A row's ``AV − MR`` moves by at most ``Σ |size|·|Δmark|·(1 + r)`` over its positions, ``r`` its market's
    highest maintenance rate (a tier's requirement grows by at most its rate times the notional), so by at
    most ``δ·G`` with ``G = Σ |size|·mark·(1 + r)``: a row with slack ``AV − MR`` above the rounding of both
    sums stays above its requirement for ``δ < slack / G``. Step tiers (``tier_mode="step"``) jump at their
    bounds, so there the slack is taken against ``Σ |size|·mark·r``, which no step exceeds. A row without an
    open position has no limit (``inf``) unless its cash is below 0 (the insurance fund pays it: 0). 0 for a
    row at or below its requirement.
    """
    lay, size = book.layout, book.position_size
    m = market.mark
    rate = params.maintenance_margin
    if params.tier_rates.shape[-1]:
        rate = jnp.maximum(rate, jnp.max(params.tier_rates, axis=-1))
    at = lay.at_market(m * (1.0 + rate))
    g = lay.rows(jnp.abs(size) * at)
    mr = margin.mr if params.tier_mode != "step" else lay.rows(jnp.abs(size) * lay.at_market(m * rate))
    # The rounding of AV − MR, computed now and again at the moved marks: a sum of at most A + 2 terms a row,
    # each within an ulp, of magnitude at most |cash| + Σ |size|·(mark·(1 + r) + |entry|).
    scale = jnp.abs(book.all_cash) + lay.rows(jnp.abs(size) * (at + jnp.abs(book.position_entry)))
    eps = float(np.finfo(np.dtype(m.dtype)).eps)
    slack = margin.av - mr - 4.0 * (lay.n_markets + 2) * eps * scale
    open_ = g > 0
    per_row = jnp.where(open_, jnp.maximum(slack, 0.0) / jnp.where(open_, g, 1.0),
                        jnp.where(book.all_cash >= 0, jnp.inf, 0.0))
    n = per_row.shape[-1]
    return jnp.where(jnp.arange(n) < lp_row(n), per_row, jnp.inf)


def reach(book: PositionBook, market: Market, params: Params, margin: Margin) -> Array:
    """[] the book's reach: the smallest :func:`row_reach` of its rows, the move of the marks below which no
    row can become liquidatable or bankrupt. 0 when some row is at or below its requirement."""
    return jnp.min(row_reach(book, market, params, margin))
