"""Trader populations: books with a realistic shape, zero-sum by construction."""
from __future__ import annotations

import numpy as np
import jax
import jax.numpy as jnp

from ...model.book import Book
from ...model.position_book import PositionBook
from ...model.errors import InputError, as_numbers
from .prices import check_key


def population(key, n_accounts: int, start, max_leverage, *, long_share=0.5, tail: float = 1.3,
               median_notional: float = 20_000.0, leverage_mode: float = 3.0, entry_spread: float = 0.02,
               markets_per_account: float = 1, max_markets_per_account: int | None = None, popularity=None,
               notional_scale=None, vault_cash: float = 0.0, isolated_share: float = 0.0, dtype=None,
               positions: bool = False) -> Book | PositionBook:
    """Draw a book of ``n_accounts`` traders, cross-margin or isolated.

    Shape: position notional is Pareto-tailed (``tail`` index, median
    ``median_notional`` USD, times the market's ``notional_scale``), leverage is log-normal around
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

    Which markets an account trades: ``markets_per_account`` of them, chosen
    without replacement, uniformly by default. With ``popularity`` (a weight per
    market, ≥ 0) the choice is weighted: each account ranks the markets by
    ``E_a / popularity[a]`` with ``E_a`` independent unit exponentials and takes
    the first ones (an exponential race, the same as Gumbel-top-k on the log
    weights), so with one market an account, market ``a`` is chosen with
    probability ``popularity[a] / Σ popularity``; with more, the popular markets
    come first but an account never trades a market twice. A market of
    weight 0 is never chosen. With ``max_markets_per_account = k`` the number of
    markets varies by account: it is drawn from 1..k with ``P(n) ∝ q^(n−1)``
    (a geometric law cut at ``k``), ``q`` set so that its mean is
    ``markets_per_account`` (any number from 1 to ``k``: 1 gives one market
    each, ``(k + 1)/2`` a uniform draw, ``k`` all ``k``). Every market needs a
    long and a short: a market that fewer than two accounts chose is given to
    the first two accounts (by default) or, when ``popularity`` or
    ``max_markets_per_account`` is given, to accounts drawn at random among
    those that do not trade it, so that a small book of many markets does not
    pile every thin market on two accounts.

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
    Without ``popularity``, ``notional_scale`` and ``max_markets_per_account``
    the draws are exactly those of the uniform choice; the three options take
    their extra draws after all the others.

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
      markets_per_account: how many markets each account trades: an integer
        from 1 to A; with ``max_markets_per_account``, the mean, a number from 1 to it.
      max_markets_per_account: None (every account trades ``markets_per_account``
        markets), or the most markets an account trades (an integer from 1 to A,
        at most the number of markets of positive popularity).
      popularity: None (uniform), or [A] weights ≥ 0 of the markets' choice.
      notional_scale: None (1), or [A] factors > 0 on each market's position notional.
      vault_cash: USD in the backstop vault.
      isolated_share: share of accounts whose positions are isolated, in [0, 1].
      dtype: float dtype of the book.
      positions: return the book as an :class:`adljax.PositionBook` (the same rows and positions, the same
        draws), which :func:`adljax.simulate` runs on the position engine; its checks and the engine's arrays
        then grow with positions, not rows × markets (the draws themselves are still [N, A]).
    Returns:
      A :class:`Book` (every row with at least one position), or with ``positions`` a :class:`PositionBook`;
      it has N rows plus one extra row per isolated position beyond an isolated account's first.
    """
    start = np.asarray(start, dtype=np.float64)
    a = start.shape[0]
    lev_max = np.broadcast_to(np.asarray(max_leverage, dtype=np.float64), (a,))
    long_share = np.broadcast_to(np.asarray(long_share, dtype=np.float64), (a,))
    weights = _per_market("popularity", popularity, a, positive=False)
    scale = _per_market("notional_scale", notional_scale, a, positive=True)
    k_max = _check_counts(markets_per_account, max_markets_per_account, a, weights)
    if np.any((long_share <= 0) | (long_share >= 1)):
        raise InputError(f"long_share: must be in (0, 1), got {long_share.tolist()}")
    if not 0.0 <= isolated_share <= 1.0:
        raise InputError(f"isolated_share: must be in [0, 1], got {isolated_share!r}")
    if n_accounts < 2:
        raise InputError(f"n_accounts: need at least 2 (a long and a short), got {n_accounts!r}")
    check_key(key)
    data = jax.random.key_data(key) if jnp.issubdtype(key.dtype, jax.dtypes.prng_key) else key
    rng = np.random.default_rng([int(x) for x in np.asarray(data).ravel()])

    # Every draw of the uniform choice, in its order; the options' own draws come after them.
    pick = rng.random((n_accounts, a))
    pareto = rng.pareto(tail, (n_accounts, a))
    long_draw = rng.random((n_accounts, a))
    lev_draw = rng.normal(np.log(leverage_mode), 0.8, (n_accounts, a))
    entry_draw = rng.normal(0.0, entry_spread, (n_accounts, a))
    iso_draw = rng.permutation(n_accounts)
    shaped = weights is not None or k_max is not None

    # Which markets each account trades.
    if not shaped:
        order = np.argsort(pick, axis=1)[:, :markets_per_account]
        trades = np.zeros((n_accounts, a), dtype=bool)
        np.put_along_axis(trades, order, True, axis=1)
        for j in range(a):        # both sides of every market: the first two accounts
            if trades[:, j].sum() < 2:
                trades[:2, j] = True
    else:
        if k_max is None:
            counts = np.full(n_accounts, int(markets_per_account))
        else:
            counts = 1 + rng.choice(k_max, size=n_accounts, p=_count_law(float(markets_per_account), k_max))
        w = np.ones(a) if weights is None else weights
        with np.errstate(divide="ignore"):
            race = -np.log1p(-pick) / w          # unit exponentials over the weights; weight 0 never wins
        order = np.argsort(race, axis=1, kind="stable")
        trades = np.zeros((n_accounts, a), dtype=bool)
        np.put_along_axis(trades, order, np.arange(a)[None, :] < counts[:, None], axis=1)
        for j in range(a):        # both sides of every market: accounts drawn among those without it
            short = 2 - int(trades[:, j].sum())
            if short > 0:
                trades[rng.choice(np.flatnonzero(~trades[:, j]), size=short, replace=False), j] = True

    notional = median_notional * (pareto + 1.0) / 2 ** (1 / tail)
    if scale is not None:
        notional = notional * scale
    is_long = long_draw < long_share
    for j in range(a):  # at least one of each side
        idx = np.flatnonzero(trades[:, j])
        is_long[idx[0], j], is_long[idx[1], j] = True, False
    lev = np.minimum(np.exp(lev_draw), lev_max)
    lev = np.maximum(lev, 1.0)
    entry = start * np.exp(entry_draw)
    size = np.where(trades, np.where(is_long, 1.0, -1.0) * notional / entry, 0.0)
    margin = np.where(trades, notional * (start / entry) / lev, 0.0)

    # Scale shorts so that every market is exactly zero-sum.
    longs = np.where(size > 0, size, 0.0).sum(axis=0)
    shorts = -np.where(size < 0, size, 0.0).sum(axis=0)
    short_scale = np.where(size < 0, longs / shorts, 1.0)
    size = size * short_scale
    margin = margin * short_scale
    upnl = np.where(trades, size * (start - entry), 0.0)
    # Isolation: drawn last, so that it changes only the split into rows.
    iso_acc = np.zeros(n_accounts, dtype=bool)
    iso_acc[iso_draw[: int(round(isolated_share * n_accounts))]] = True
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
    if positions:
        if not isinstance(positions, bool):
            raise InputError(f"positions: expected True or False, got {positions!r}")
        rows, mkts = np.nonzero(row_size)
        return PositionBook.from_positions(rows, mkts, row_size[rows, mkts], row_entry[rows, mkts], row_cash,
                                           n_markets=a, vault_cash=vault_cash, isolated=iso_row, dtype=dtype)
    return Book.from_accounts(row_cash, row_size, row_entry, vault_cash=vault_cash, isolated=iso_row, dtype=dtype)


def _per_market(name: str, v, a: int, *, positive: bool):
    """None, or a checked float64 [A] array of finite numbers > 0 (``positive``) or ≥ 0."""
    if v is None:
        return None
    x = as_numbers(name, v).astype(np.float64)
    if x.shape != (a,):
        raise InputError(f"{name}: expected one number per market ({a}), got shape {x.shape}")
    bad = ~np.isfinite(x) | ((x <= 0) if positive else (x < 0))
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise InputError(f"{name}: must be finite and {'> 0' if positive else '>= 0'}, got {x[i]!r} for market {i}")
    if not positive and not (x > 0).any():
        raise InputError(f"{name}: at least one market needs a weight > 0")
    return x


def _check_counts(mean, k_max, a: int, weights) -> int | None:
    """Check ``markets_per_account`` and ``max_markets_per_account``; returns the latter (None if not given)."""
    chosen = a if weights is None else int((weights > 0).sum())   # the markets an account can choose
    if k_max is None:
        if isinstance(mean, bool) or not isinstance(mean, (int, np.integer)) or not 1 <= mean <= a:
            raise InputError(f"markets_per_account: must be an integer between 1 and {a}, got {mean!r}")
        if mean > chosen:
            raise InputError(f"markets_per_account: {mean} markets an account, but only {chosen} markets have a "
                             "popularity > 0")
        return None
    if isinstance(k_max, bool) or not isinstance(k_max, (int, np.integer)) or not 1 <= k_max <= chosen:
        raise InputError(f"max_markets_per_account: must be an integer between 1 and {chosen} (the markets "
                         f"{'of popularity > 0' if weights is not None else 'there are'}), got {k_max!r}")
    if isinstance(mean, bool) or not isinstance(mean, (int, float, np.integer, np.floating)) or \
            not 1 <= mean <= k_max:
        raise InputError(f"markets_per_account: with max_markets_per_account = {k_max} it is the mean number of "
                         f"markets an account, a number from 1 to {k_max}; got {mean!r}")
    return int(k_max)


def _count_law(mean: float, k: int) -> np.ndarray:
    """``P(n)`` for ``n = 1..k``, proportional to ``q^(n−1)`` with ``q`` such that the mean is ``mean``."""
    n = np.arange(1, k + 1, dtype=np.float64)
    if mean <= 1.0 or k == 1:
        return (n == 1).astype(np.float64)
    if mean >= k:
        return (n == k).astype(np.float64)

    def law(log_q: float) -> np.ndarray:
        z = (n - 1) * log_q
        p = np.exp(z - z.max())
        return p / p.sum()

    lo, hi = -60.0, 60.0               # the mean rises with log q, from 1 (q → 0) to k (q → ∞)
    for _ in range(200):
        mid = 0.5 * (lo + hi)
        lo, hi = (mid, hi) if law(mid) @ n < mean else (lo, mid)
    return law(0.5 * (lo + hi))
