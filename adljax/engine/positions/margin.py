"""Stage 1 on a position book: AV, MR and open positions per row (:mod:`adljax.engine.stages.margin`), both modes."""
from __future__ import annotations

from jax import Array

from ...model.position_book import PositionBook
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
