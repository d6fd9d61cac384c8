"""Trader populations: books with a realistic shape, zero-sum by construction."""
from __future__ import annotations

import numpy as np
import jax

from ..book import Book
from ..errors import InputError


def population(key, n_accounts: int, start, max_leverage, *, long_share=0.5, tail: float = 1.3,
               median_notional: float = 20_000.0, leverage_mode: float = 3.0, entry_spread: float = 0.02,
               markets_per_account: int = 1, vault_cash: float = 0.0, dtype=None) -> Book:
    """Draw a book of ``n_accounts`` cross-margin traders.

    Shape: position notional is Pareto-tailed (``tail`` index, median
    ``median_notional`` USD), leverage is log-normal around
    ``leverage_mode`` and capped at each market's ``max_leverage``; each
    account is long with probability ``long_share[a]`` in each market it
    trades; entries are spread log-normally (``entry_spread``) around the
    start price and collateral is set so that the account's leverage at the
    start price is the drawn one. The short side of every market is then
    scaled (sizes and the shorts' collateral alike) so that the book is
    exactly zero-sum.

    Args:
      key: ``jax.random.key``.
      n_accounts: N.
      start: [A] start prices, USD.
      max_leverage: [A] or scalar.
      long_share: [A] or scalar, share of accounts long in each market.
      markets_per_account: how many markets each account trades (≤ A).
      vault_cash: USD in the backstop vault.
    Returns:
      A :class:`Book` (every account with at least one position).
    """
    start = np.asarray(start, dtype=np.float64)
    a = start.shape[0]
    lev_max = np.broadcast_to(np.asarray(max_leverage, dtype=np.float64), (a,))
    long_share = np.broadcast_to(np.asarray(long_share, dtype=np.float64), (a,))
    if not 1 <= markets_per_account <= a:
        raise InputError(f"markets_per_account: must be between 1 and {a}, got {markets_per_account}")
    if np.any((long_share <= 0) | (long_share >= 1)):
        raise InputError(f"long_share: must be in (0, 1), got {long_share.tolist()}")
    seed = np.asarray(jax.random.key_data(key)).ravel()
    rng = np.random.default_rng([int(x) for x in seed])

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
    cash = margin.sum(axis=1) - upnl.sum(axis=1)
    # Exact zero sum: the last short of each market takes the float remainder.
    for j in range(a):
        last = np.flatnonzero(size[:, j] < 0)[-1]
        size[last, j] -= size[:, j].sum()
    return Book.from_accounts(cash, size, entry, vault_cash=vault_cash, dtype=dtype)
