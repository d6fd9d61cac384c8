"""Stage 1, margin check: a trader row is liquidatable when ``AV < MR``."""
from __future__ import annotations

import jax.numpy as jnp
from jax import Array

from ..accounting import account_value, maintenance
from ..book import Book
from ..market import Market
from ..venue import Params


def trader_rows(n_rows: int) -> Array:
    """[R] bool: True for trader rows (all but the vault and the LP rows)."""
    return jnp.arange(n_rows) < n_rows - 2


def has_position(book: Book) -> Array:
    """[R] bool: the row holds any open position."""
    return jnp.any(book.size_am != 0, axis=0)


def run(book: Book, market: Market, params: Params) -> tuple[Array, Array]:
    """([R] bool liquidatable, [R] AV): trader rows with a position and ``AV < MR`` at the step's mark."""
    av = account_value(book.all_cash, book.size_am, book.entry_am, market.mark)
    mr = maintenance(book.size_am, market.mark, params.maintenance_margin)
    return trader_rows(av.shape[-1]) & has_position(book) & (av < mr), av
