"""The ADL queue indicator exchanges show their users: each position's place in its market's queue, in fifths."""
from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from jax import Array

from ..engine.accounting import account_value
from ..engine.positions import accounting as position_accounting
from ..engine.positions import adl as position_adl
from ..model.book import Book
from ..model.errors import InputError, check_positive
from ..engine.stages.adl import score
from ..model.position_book import PositionBook
from ..model.rows import TRADERS
from ..model.venue import Venue


def _fifths(size: Array, entry: Array, cash: Array, mark: Array, venue_rules) -> Array:
    av = account_value(cash, size, entry, mark)
    s = score(venue_rules, size, entry, av, mark)                      # [A, R]
    out = jnp.zeros(size.shape, jnp.int32)
    for side in (size > 0, size < 0):
        key = jnp.where(side, -s, jnp.inf)                             # ascending = first to go
        qty = jnp.where(side, jnp.abs(size), 0.0)

        def ahead_of(k, q):
            order = jnp.argsort(k)
            cum = jnp.concatenate([jnp.zeros(1, q.dtype), jnp.cumsum(q[order])])
            return cum[jnp.searchsorted(k[order], k, side="left")]     # contracts strictly ahead

        through = jax.vmap(ahead_of)(key, qty) + qty                   # ... and one's own
        total = jnp.sum(qty, axis=1, keepdims=True)
        share = through / jnp.where(total > 0, total, 1.0)
        fifth = jnp.clip(jnp.ceil(5.0 * share * (1.0 - 1e-9)), 1, 5).astype(jnp.int32)
        out = jnp.where(side, fifth, out)
    return out


def _position_fifths(venue_rules, book: PositionBook, mark: Array) -> np.ndarray:
    """:func:`_fifths` on the position list: [P + 2A] fifths (system slots included), ranked within each
    market by a sort of the positions on (market, key), P log P."""
    lay = book.layout
    size, entry = book.position_size, book.position_entry
    av = position_accounting.account_value(lay, book.all_cash, size, entry, mark)        # [R]
    s = np.asarray(position_adl.score(venue_rules, lay, size, entry, av, mark), np.float64)  # [P + 2A]
    size = np.asarray(size, np.float64)
    mkt = np.asarray(lay.market)
    p = size.shape[0]
    out = np.zeros(p, np.int32)
    for side in (size > 0, size < 0):
        key = np.where(side, -s, np.inf)                               # ascending = first to go
        qty = np.where(side, np.abs(size), 0.0)
        order = np.lexsort((key, mkt))                                 # by market, then by key
        k, m, q = key[order], mkt[order], qty[order]
        start = np.searchsorted(m, np.arange(lay.n_markets + 1))       # each market's run in the sorted list
        # contracts strictly ahead: the market's running sum up to the first position of one's key
        # (equal keys share a place), summed market by market so that a small market keeps its precision
        ahead = np.zeros(p)
        for j in range(lay.n_markets):
            a, b = start[j], start[j + 1]
            if a == b:
                continue
            cum = np.concatenate([[0.0], np.cumsum(q[a:b])])
            first = np.searchsorted(k[a:b], k[a:b], side="left")
            ahead[a:b] = cum[first]
        through = np.empty(p)
        through[order] = ahead + q                                     # ... and one's own
        total = np.bincount(mkt, weights=qty, minlength=lay.n_markets)[mkt]
        share = through / np.where(total > 0, total, 1.0)
        fifth = np.clip(np.ceil(5.0 * share * (1.0 - 1e-9)), 1, 5).astype(np.int32)
        out = np.where(side, fifth, out)
    return out


def adl_queue(venue: Venue, book: Book | PositionBook, mark) -> np.ndarray:
    """Each trader position's place in its market's ADL queue, in fifths.

    ``1`` is the first fifth to be deleveraged (five lights lit on an
    exchange's indicator), ``5`` the last; ``0`` where there is no position.
    Positions are ranked against the other positions on the same side of
    the same market (all rows, system rows included) by the venue's
    ``adl_score`` at ``mark``, highest first; equal scores share a place.
    The fifth is BitMEX's published percentile: the contracts ahead in the
    queue plus one's own, as a share of the side's contracts, rounded up to
    the next 20 % (it reproduces every row of BitMEX's ADL example).

    Args:
      venue: gives the ranking (``venue.rules.adl_score``).
      book: a :class:`Book` or a :class:`~adljax.model.position_book.PositionBook` (one scenario).
      mark: [A] mark prices, USD.
    Returns:
      A :class:`Book`: [N, A] int array (0 where the row holds nothing in the market). A
      :class:`~adljax.model.position_book.PositionBook`: [P] int array, the fifth of each trader position
      (``book.position_size[:P]``, at row ``book.account`` in market ``book.market``; 0 where its size is
      0): the dense result at those cells, ``dense[book.account, book.market]``. It is ranked market by
      market on the position list (no [N, A] array), in work P log P.
    """
    mark = np.asarray(mark, dtype=np.float64)
    if mark.shape != (book.n_markets,):
        raise InputError(f"mark: expected [{book.n_markets}] (one price per market), got shape {mark.shape}")
    if book.all_cash.ndim != 1:
        raise InputError("book: adl_queue takes one scenario's book (no leading scenario axis)")
    check_positive("mark", mark)
    m = jnp.asarray(mark, book.all_cash.dtype)
    if isinstance(book, PositionBook):
        return _position_fifths(venue.rules, book, m)[:book.n_positions]
    f = jax.jit(_fifths, static_argnums=4)(book.size_am, book.entry_am, book.all_cash, m, venue.rules)
    return np.asarray(f).T[TRADERS]
