"""The ADL queue indicator exchanges show their users: each position's place in its market's queue, in fifths."""
from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from jax import Array

from ..engine.accounting import account_value
from ..model.book import Book
from ..model.errors import InputError, check_positive
from ..engine.stages.adl import score
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


def adl_queue(venue: Venue, book: Book, mark) -> np.ndarray:
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
      book: a :class:`Book` (one scenario).
      mark: [A] mark prices, USD.
    Returns:
      [N, A] int array.
    """
    mark = np.asarray(mark, dtype=np.float64)
    if mark.shape != (book.n_markets,):
        raise InputError(f"mark: expected [{book.n_markets}] (one price per market), got shape {mark.shape}")
    if book.all_cash.ndim != 1:
        raise InputError("book: adl_queue takes one scenario's book (no leading scenario axis)")
    check_positive("mark", mark)
    m = jnp.asarray(mark, book.all_cash.dtype)
    f = jax.jit(_fifths, static_argnums=4)(book.size_am, book.entry_am, book.all_cash, m, venue.rules)
    return np.asarray(f).T[:-2]
