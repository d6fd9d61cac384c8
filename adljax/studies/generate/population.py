"""Trader populations: books with a realistic shape, zero-sum by construction."""
from __future__ import annotations

import numpy as np
import jax
import jax.numpy as jnp

from ...model.book import Book
from ...model.position_book import PositionBook
from ...model.errors import InputError, as_numbers
from .prices import check_key

CHUNK_ROWS = 8192
"""Accounts whose [rows, A] draws are held at once (any size gives the same book: only memory and speed change)."""


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
        then grow with positions, not rows × markets, and so does the generation: the [N, A] draws are taken
        :data:`CHUNK_ROWS` accounts at a time and the book is built from its list of positions, so the memory
        is the positions, [N] and [A] vectors and one chunk of draws (without ``positions`` the dense
        :class:`Book` is laid out from the same list at the end).
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
    if positions and not isinstance(positions, bool):
        raise InputError(f"positions: expected True or False, got {positions!r}")
    check_key(key)
    data = jax.random.key_data(key) if jnp.issubdtype(key.dtype, jax.dtypes.prng_key) else key
    rng = np.random.default_rng([int(x) for x in np.asarray(data).ravel()])
    n = n_accounts
    shaped = weights is not None or k_max is not None

    # The five [N, A] families of draws (pick, pareto, long, leverage, entry), then the isolation; the options'
    # own draws come after them. NumPy fills an array element by element in C order, so a family drawn in row
    # chunks is the same stream as drawn whole, and no [N, A] array is held. The pick chunks give each
    # account's candidate markets (the first of its order); the other four families are needed only at the
    # trades, which are final only after the later draws (the counts, the thin markets' traders): so each
    # family's start is saved, the stream is run through it, and the family is drawn again from its start once
    # the trades are known. Running through uses a draw that takes the same numbers from the stream, element by
    # element, at less cost: a Pareto number is expm1 of a standard exponential over the index, a normal
    # number loc + scale times a standard normal.
    first = k_max if k_max is not None else int(markets_per_account)
    cand = _candidates(rng, n, a, first, weights, shaped)
    families = ((lambda g, rows: g.pareto(tail, (rows, a)), "standard_exponential"),
                (lambda g, rows: g.random((rows, a)), "random"),
                (lambda g, rows: g.normal(np.log(leverage_mode), 0.8, (rows, a)), "standard_normal"),
                (lambda g, rows: g.normal(0.0, entry_spread, (rows, a)), "standard_normal"))
    saved = []
    buf = np.empty((min(CHUNK_ROWS, n), a))
    for _, run_through in families:
        saved.append(rng.bit_generator.state)
        for r0 in range(0, n, CHUNK_ROWS):
            getattr(rng, run_through)(out=buf[:min(CHUNK_ROWS, n - r0)])
    del buf
    iso_draw = rng.permutation(n)
    acc, mkt = _trades(rng, cand, n, a, markets_per_account, k_max, shaped)
    del cand
    pareto, long_draw, lev_draw, entry_draw = (_gather(rng, state, draw, acc, mkt, n)
                                               for state, (draw, _) in zip(saved, families))

    # One entry per (account, market) trade, in row order then market order, as np.nonzero of the [N, A] mask.
    notional = median_notional * (pareto + 1.0) / 2 ** (1 / tail)
    if scale is not None:
        notional = notional * scale[mkt]
    is_long = long_draw < long_share[mkt]
    by_mkt = np.lexsort((acc, mkt))
    lo = np.searchsorted(mkt[by_mkt], np.arange(a))
    is_long[by_mkt[lo]], is_long[by_mkt[lo + 1]] = True, False   # at least one of each side: the first two accounts
    lev = np.minimum(np.exp(lev_draw), lev_max[mkt])
    lev = np.maximum(lev, 1.0)
    entry = start[mkt] * np.exp(entry_draw)
    size = np.where(is_long, 1.0, -1.0) * notional / entry
    margin = notional * (start[mkt] / entry) / lev

    # Scale shorts so that every market is exactly zero-sum.
    longs = _axis0_sums(acc, mkt, np.where(size > 0, size, 0.0), n, a)
    shorts = -_axis0_sums(acc, mkt, np.where(size < 0, size, 0.0), n, a)
    short_scale = np.where(size < 0, (longs / shorts)[mkt], 1.0)
    size = size * short_scale
    margin = margin * short_scale
    upnl = size * (start[mkt] - entry)
    # Isolation: drawn last, so that it changes only the split into rows. A cross account is one row; an
    # isolated one is a row per position, in market order.
    iso_acc = np.zeros(n, dtype=bool)
    iso_acc[iso_draw[: int(round(isolated_share * n))]] = True
    npos = np.bincount(acc, minlength=n)
    units = np.where(iso_acc, npos, 1)
    first_row = np.cumsum(units) - units
    rank = np.arange(acc.size) - (np.cumsum(npos) - npos)[acc]        # the trade's place among its account's
    row = first_row[acc] + np.where(iso_acc[acc], rank, 0)
    n_rows = int(units.sum())
    iso_row = np.repeat(iso_acc, units)
    row_cash = _row_sums(row, mkt, margin, n_rows, a) - _row_sums(row, mkt, upnl, n_rows, a)
    # Zero sum: the last short row of each market takes the float remainder.
    remainder = _column_sums(row, mkt, size, n_rows, a)
    short_by_mkt = by_mkt[size[by_mkt] < 0]              # each market's shorts, in row order
    last = short_by_mkt[np.searchsorted(mkt[short_by_mkt], np.arange(a), side="right") - 1]
    size[last] -= remainder
    if positions:
        held = size != 0
        return PositionBook.from_positions(row[held], mkt[held], size[held], entry[held], row_cash, n_markets=a,
                                           vault_cash=vault_cash, isolated=iso_row, dtype=dtype)
    row_size = np.zeros((n_rows, a))                     # the dense book: the same list, laid out as [rows, A]
    row_entry = np.zeros((n_rows, a))
    row_size[row, mkt] = size
    row_entry[row, mkt] = entry
    return Book.from_accounts(row_cash, row_size, row_entry, vault_cash=vault_cash, isolated=iso_row, dtype=dtype)


def _candidates(rng, n: int, a: int, first: int, weights, shaped: bool) -> np.ndarray:
    """[N, first] the first markets of each account's order, from the pick draws (one [N, A] family, drawn
    in row chunks): the order of the picks (uniform choice), or with ``shaped`` the stable order of the
    exponential race ``−log(1 − pick) / weight``."""
    cand = np.empty((n, first), dtype=np.int16 if a < 2 ** 15 else np.int32)
    w = np.ones(a) if weights is None else weights
    for r0 in range(0, n, CHUNK_ROWS):
        pick = rng.random((min(CHUNK_ROWS, n - r0), a))
        if not shaped:
            order = np.argsort(pick, axis=1)
        else:
            with np.errstate(divide="ignore"):
                race = -np.log1p(-pick) / w          # unit exponentials over the weights; weight 0 never wins
            order = np.argsort(race, axis=1, kind="stable")
        cand[r0:r0 + pick.shape[0]] = order[:, :first]
    return cand


def _trades(rng, cand, n: int, a: int, markets_per_account, k_max, shaped: bool):
    """The (account, market) trades, sorted by account then market: each account's first markets (how many:
    ``markets_per_account``, or a draw from the count law), then two traders for every market that fewer than
    two accounts chose: the first two accounts (uniform choice), or accounts drawn among those without it."""
    if k_max is None:
        counts = np.full(n, int(markets_per_account))
    else:
        counts = 1 + rng.choice(k_max, size=n, p=_count_law(float(markets_per_account), k_max))
    acc = np.repeat(np.arange(n), counts)
    mkt = cand[np.arange(cand.shape[1])[None, :] < counts[:, None]].astype(np.intp)
    held = np.bincount(mkt, minlength=a)
    cells = [acc * a + mkt]                              # a trade as one number, sorted as (account, market)
    for j in np.flatnonzero(held < 2):                   # in market order, as the draws are taken
        if not shaped:
            given = np.array([0, 1])
        else:
            without = np.setdiff1d(np.arange(n), acc[mkt == j])      # ascending, as np.flatnonzero of the mask
            given = rng.choice(without, size=2 - int(held[j]), replace=False)
        cells.append(given * a + j)
    cells = np.unique(np.concatenate(cells))             # a first account may already trade the thin market
    return cells // a, cells % a


def _gather(rng, state, draw, acc, mkt, n: int) -> np.ndarray:
    """One family of [N, A] draws at the trades: drawn again in row chunks from its saved start ``state``."""
    g = np.random.Generator(type(rng.bit_generator)())
    g.bit_generator.state = state
    out = np.empty(acc.size)
    bounds = np.searchsorted(acc, np.arange(0, n + CHUNK_ROWS, CHUNK_ROWS))
    for c, r0 in enumerate(range(0, n, CHUNK_ROWS)):
        x = draw(g, min(CHUNK_ROWS, n - r0))
        lo, hi = bounds[c], bounds[c + 1]
        out[lo:hi] = x[acc[lo:hi] - r0, mkt[lo:hi]]
    return out


def _axis0_sums(row, mkt, values, n_rows: int, a: int) -> np.ndarray:
    """[A] ``dense.sum(axis=0)`` of the [n_rows, A] array that holds ``values`` at (row, mkt), bit for bit, from
    the list sorted by row: NumPy adds the rows of a C-order array one after another, as ``np.bincount`` adds
    the list in its order; a single column (A = 1) is summed pairwise instead."""
    if a == 1:
        return _column_sums(row, mkt, values, n_rows, a)
    return np.bincount(mkt, weights=values, minlength=a)


def _row_sums(row, mkt, values, n_rows: int, a: int) -> np.ndarray:
    """[n_rows] ``dense.sum(axis=1)`` of the [n_rows, A] array that holds ``values`` at (row, mkt), bit for bit.
    A sum of one or two numbers does not depend on the order, so ``np.bincount`` gives those rows; NumPy sums
    a row pairwise, where the places of the zeros matter, so rows of three positions or more are summed as
    dense rows, ``CHUNK_ROWS`` at a time."""
    out = np.bincount(row, weights=values, minlength=n_rows)
    npos = np.bincount(row, minlength=n_rows)
    many = np.flatnonzero(npos > 2)
    sel = np.flatnonzero(npos[row] > 2)                  # their positions, in row order
    local = np.searchsorted(many, row[sel])
    bounds = np.searchsorted(local, np.arange(0, many.size + CHUNK_ROWS, CHUNK_ROWS))
    for c, r0 in enumerate(range(0, many.size, CHUNK_ROWS)):
        lo, hi = bounds[c], bounds[c + 1]
        dense = np.zeros((min(CHUNK_ROWS, many.size - r0), a))
        dense[local[lo:hi] - r0, mkt[sel[lo:hi]]] = values[sel[lo:hi]]
        out[many[r0:r0 + dense.shape[0]]] = dense.sum(axis=1)
    return out


def _column_sums(row, mkt, values, n_rows: int, a: int) -> np.ndarray:
    """[A] ``dense[:, j].sum()`` for each market ``j`` of the [n_rows, A] array that holds ``values`` at (row, mkt),
    bit for bit: NumPy sums a column pairwise, where the places of the zeros matter, so each column is laid out
    in turn in one [n_rows] buffer."""
    out = np.zeros(a)
    buf = np.zeros(n_rows)
    by_mkt = np.argsort(mkt, kind="stable")
    bounds = np.searchsorted(mkt[by_mkt], np.arange(a + 1))
    for j in range(a):
        k = by_mkt[bounds[j]:bounds[j + 1]]
        buf[row[k]] = values[k]
        out[j] = buf.sum()
        buf[row[k]] = 0.0
    return out


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
