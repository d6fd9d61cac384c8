"""Trader populations: books with a realistic shape, zero-sum by construction."""
from __future__ import annotations

import numpy as np
import jax
import jax.numpy as jnp

from ...model.book import Book
from ...model.errors import InputError
from .prices import check_key


def population(key, n_accounts: int, start, max_leverage, *, long_share=0.5, tail: float = 1.3,
               median_notional: float = 20_000.0, leverage_mode: float = 3.0, entry_spread: float = 0.02,
               markets_per_account: int = 1, vault_cash: float = 0.0, isolated_share: float = 0.0,
               dtype=None) -> Book:
    """Draw a book of ``n_accounts`` traders, cross-margin or isolated.

    Shape: position notional is Pareto-tailed (``tail`` index, median
    ``median_notional`` USD), leverage is log-normal around
    ``leverage_mode`` (log-sd 0.8), at least 1× and capped at each market's
    ``max_leverage``; each account is long with probability ``long_share[a]``
    in each market it trades (the per-market skew); entries are spread
    log-normally (``entry_spread``) around the start price and collateral is
    set so that each position's leverage at the start price is the drawn one
    (a cross account's account value is the sum of its positions' margins,
    so its margin at every market's maximum leverage is covered). The short
    side of every market is then scaled (sizes and the shorts' collateral
    alike) so that the book is zero-sum, and the last short row of each market
    takes the float remainder: ``Σ_rows size[:, a]`` is zero to rounding.

    Isolated margin: exactly ``round(isolated_share · n_accounts)`` accounts,
    chosen at random, hold their positions isolated. Such an account becomes
    one row per position (``Book.isolated`` true), each row's cash being that
    position's margin; a cross account is one row. A trader's rows are
    consecutive, in account order, an isolated trader's in market order. The
    isolation is drawn after everything else, so the positions, entries and
    total cash do not depend on ``isolated_share``: only how they are split
    into rows.

    Deterministic from the key: the same key (and arguments) give the same
    book, on any machine (the draws are NumPy's PCG64 seeded by the key's data).

    Args:
      key: ``jax.random.key``.
      n_accounts: N traders (≥ 2).
      start: [A] start prices, USD.
      max_leverage: [A] or scalar.
      long_share: [A] or scalar, share of accounts long in each market, in (0, 1).
      tail: Pareto index of position notional (> 0; lower is fatter).
      median_notional: USD, median position notional.
      leverage_mode: centre of the leverage distribution (×).
      entry_spread: log-sd of entry prices around ``start``.
      markets_per_account: how many markets each account trades (≤ A).
      vault_cash: USD in the backstop vault.
      isolated_share: share of accounts whose positions are isolated, in [0, 1].
      dtype: float dtype of the book.
    Returns:
      A :class:`Book` (every row with at least one position); it has N rows
      plus one extra row per isolated position beyond an isolated account's first.
    """
    start = np.asarray(start, dtype=np.float64)
    a = start.shape[0]
    lev_max = np.broadcast_to(np.asarray(max_leverage, dtype=np.float64), (a,))
    long_share = np.broadcast_to(np.asarray(long_share, dtype=np.float64), (a,))
    if not 1 <= markets_per_account <= a:
        raise InputError(f"markets_per_account: must be between 1 and {a}, got {markets_per_account}")
    if np.any((long_share <= 0) | (long_share >= 1)):
        raise InputError(f"long_share: must be in (0, 1), got {long_share.tolist()}")
    if not 0.0 <= isolated_share <= 1.0:
        raise InputError(f"isolated_share: must be in [0, 1], got {isolated_share!r}")
    if n_accounts < 2:
        raise InputError(f"n_accounts: need at least 2 (a long and a short), got {n_accounts!r}")
    check_key(key)
    data = jax.random.key_data(key) if jnp.issubdtype(key.dtype, jax.dtypes.prng_key) else key
    rng = np.random.default_rng([int(x) for x in np.asarray(data).ravel()])

    # Which markets each account trades.
    order = np.argsort(rng.random((n_accounts, a)), axis=1)[:, :markets_per_account]
    trades = np.zeros((n_accounts, a), dtype=bool)
    np.put_along_axis(trades, order, True, axis=1)
    # Make sure both sides of every market exist.
    for j in range(a):
        if trades[:, j].sum() < 2:
            trades[:2, j] = True

    notional = median_notional * (rng.pareto(tail, (n_accounts, a)) + 1.0) / 2 ** (1 / tail)
    is_long = rng.random((n_accounts, a)) < long_share
    for j in range(a):  # at least one of each side
        idx = np.flatnonzero(trades[:, j])
        is_long[idx[0], j], is_long[idx[1], j] = True, False
    lev = np.minimum(np.exp(rng.normal(np.log(leverage_mode), 0.8, (n_accounts, a))), lev_max)
    lev = np.maximum(lev, 1.0)
    entry = start * np.exp(rng.normal(0.0, entry_spread, (n_accounts, a)))
    size = np.where(trades, np.where(is_long, 1.0, -1.0) * notional / entry, 0.0)
    margin = np.where(trades, notional * (start / entry) / lev, 0.0)

    # Scale shorts so that every market is exactly zero-sum.
    longs = np.where(size > 0, size, 0.0).sum(axis=0)
    shorts = -np.where(size < 0, size, 0.0).sum(axis=0)
    scale = np.where(size < 0, longs / shorts, 1.0)
    size = size * scale
    margin = margin * scale
    upnl = np.where(trades, size * (start - entry), 0.0)
    # Isolation: drawn last, so that it changes only the split into rows.
    iso_acc = np.zeros(n_accounts, dtype=bool)
    iso_acc[rng.permutation(n_accounts)[: int(round(isolated_share * n_accounts))]] = True
    cross_i = np.flatnonzero(~iso_acc)
    pos_i, pos_j = np.nonzero(trades & iso_acc[:, None])
    unit_i = np.concatenate([cross_i, pos_i])
    unit_j = np.concatenate([np.full(cross_i.size, -1), pos_j])
    order = np.lexsort((unit_j, unit_i))
    unit_i, unit_j = unit_i[order], unit_j[order]
    iso_row = unit_j >= 0
    one = np.zeros((unit_i.size, a), dtype=bool)
    one[np.flatnonzero(iso_row), unit_j[iso_row]] = True
    keep = np.where(iso_row[:, None], one, True)          # the row's positions
    row_size = np.where(keep, size[unit_i], 0.0)
    row_entry = np.where(keep, entry[unit_i], 0.0)
    row_cash = np.where(keep, margin[unit_i], 0.0).sum(axis=1) - np.where(keep, upnl[unit_i], 0.0).sum(axis=1)
    # Zero sum: the last short row of each market takes the float remainder.
    for j in range(a):
        last = np.flatnonzero(row_size[:, j] < 0)[-1]
        row_size[last, j] -= row_size[:, j].sum()
    return Book.from_accounts(row_cash, row_size, row_entry, vault_cash=vault_cash, isolated=iso_row, dtype=dtype)
