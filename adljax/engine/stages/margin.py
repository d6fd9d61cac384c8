"""Stage 1, margin check: a trader row is liquidatable when ``AV < MR``."""
from __future__ import annotations

import jax.numpy as jnp
from jax import Array

from ...model.pytree import pytree
from ..accounting import account_value, any_markets, maintenance
from ..config import DEFAULT, EngineConfig
from ...model.book import Book
from ...model.rows import vault_row
from ..market import Market
from ..smooth import above, both, hard, ratio
from ...model.venue import Params


@pytree
class Margin:
    """Every row's standing at the step's mark (one scenario, [R] each).

    The engine keeps this alongside the book within a step so that the
    checks deciding whether a later stage must run cost nothing extra.
    """

    av: Array            # account value, USD
    mr: Array            # maintenance requirement, USD
    has_position: Array  # bool


def trader_rows(n_rows: int) -> Array:
    """[R] bool: True for trader rows (all but the vault and the LP rows)."""
    return jnp.arange(n_rows) < vault_row(n_rows)


def has_position(book: Book, config: EngineConfig = DEFAULT) -> Array:
    """[R] bool: the row holds any open position."""
    return any_markets(book.size_am != 0, unrolled=config.unrolled_markets)


def values(book: Book, market: Market, params: Params, config: EngineConfig = DEFAULT) -> Margin:
    """AV, MR and whether each row holds a position, at the step's mark."""
    u = config.unrolled_markets
    return Margin(
        av=account_value(book.all_cash, book.size_am, book.entry_am, market.mark, unrolled=u),
        mr=maintenance(book.size_am, market.mark, params, unrolled=u),
        has_position=has_position(book, config),
    )


def liquidatable(margin: Margin, temperature: float = 0.0) -> Array:
    """[R] trader rows with a position and ``AV < MR``: bool, or a weight in the smooth mode.

    Smooth: ``above(1 − AV/MR, τ)`` (:mod:`adljax.engine.smooth`); a row with a
    position always has ``MR > 0``.
    """
    rows = trader_rows(margin.av.shape[-1]) & margin.has_position
    if hard(temperature):
        return rows & (margin.av < margin.mr)
    return both(rows, above(1.0 - ratio(margin.av, margin.mr), temperature))


def run(book: Book, market: Market, params: Params, temperature: float = 0.0,
        config: EngineConfig = DEFAULT) -> tuple[Array, Margin]:
    """([R] liquidatable, :class:`Margin`) at the step's mark (bool, or weights when ``temperature > 0``).

    ``config`` (static): the engine's :class:`~adljax.engine.config.EngineConfig`.
    """
    m = values(book, market, params, config)
    return liquidatable(m, temperature), m
