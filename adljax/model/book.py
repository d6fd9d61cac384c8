"""The book: every account of one scenario, as fixed-shape arrays.

Rows are margin units. Rows ``0..N-1`` are the traders, row ``N`` is the
backstop vault (e.g. Hyperliquid's HLP liquidator), row ``N+1`` is the
liquidity providers who absorb market-liquidation fills (named in
:mod:`adljax.model.rows`: ``VAULT``, ``LP``). Keeping the two
system rows in the same arrays is what lets every stage keep each market
zero-sum (``Σ_rows size[:, a] = 0``) and total value conserved.

A cross-margin account is one row; its positions share its cash. An isolated
position is a row of its own holding exactly one position, its cash being
that position's margin (``isolated=True`` marks and checks such rows). A trader
with both gives several rows.
"""
from __future__ import annotations

import numpy as np
import jax
import jax.numpy as jnp
from jax import Array

from .paths import Paths
from .pytree import pytree, replace
from .rows import LP, SYSTEM, TRADERS, VAULT
from ..engine.accounting import sum_markets
from .errors import (FLOAT_DTYPES, InputError, arrays_from_lists, as_bools, as_host, as_numbers, check_above_floor,
                     check_below_limit, check_finite, check_ndim, check_number, check_numeric, check_positive,
                     check_representable, check_shape, float_dtype, money_limit, remedy)


@pytree
class Book:
    """All accounts of one scenario (or of a batch, with a leading axis S).

    Stored fields cover every row, system rows included:
    ``all_cash`` [R] USD, ``size_am`` [A, R] signed base units,
    ``entry_am`` [A, R] USD per unit, ``cooldown`` [R] seconds until the row
    may send its next liquidation order, ``isolated`` [R] bool,
    ``insurance_fund`` [] USD. ``R = N + 2``. Positions are stored
    market-major ([A, R]: rows contiguous) because sums over a handful of
    markets then vectorise over rows; that layout measured 3.6× faster on
    CPU than [R, A] for the margin check.

    The views ``all_size``/``all_entry`` [R, A] and the trader, vault and
    liquidity-provider views (``cash``, ``size``, ``entry``, ``vault_cash``,
    ``vault_size``, ``vault_entry``, ``lp_cash``, ...) are properties; they
    work with or without a leading scenario axis.
    """

    all_cash: Array
    size_am: Array
    entry_am: Array
    cooldown: Array
    isolated: Array
    insurance_fund: Array

    def __post_init__(self):
        arrays_from_lists(self)

    @property
    def all_size(self) -> Array:
        """Every row's positions, [..., R, A]."""
        return jnp.swapaxes(self.size_am, -1, -2)

    @property
    def all_entry(self) -> Array:
        """Every row's entry prices, [..., R, A]."""
        return jnp.swapaxes(self.entry_am, -1, -2)

    # ---- views -------------------------------------------------------------
    @property
    def n_accounts(self) -> int:
        """N, the number of trader rows."""
        return self.all_cash.shape[-1] - SYSTEM

    @property
    def n_markets(self) -> int:
        return self.size_am.shape[-2]

    @property
    def cash(self) -> Array:
        """Traders' collateral, [..., N] USD."""
        return self.all_cash[..., TRADERS]

    @property
    def size(self) -> Array:
        """Traders' signed positions, [..., N, A] base units (+long, -short)."""
        return self.all_size[..., TRADERS, :]

    @property
    def entry(self) -> Array:
        """Traders' average entry prices, [..., N, A] USD (0 where flat)."""
        return self.all_entry[..., TRADERS, :]

    @property
    def vault_cash(self) -> Array:
        return self.all_cash[..., VAULT]

    @property
    def vault_size(self) -> Array:
        return self.all_size[..., VAULT, :]

    @property
    def vault_entry(self) -> Array:
        return self.all_entry[..., VAULT, :]

    @property
    def lp_cash(self) -> Array:
        return self.all_cash[..., LP]

    @property
    def lp_size(self) -> Array:
        return self.all_size[..., LP, :]

    @property
    def lp_entry(self) -> Array:
        return self.all_entry[..., LP, :]

    def account_value(self, mark: Array) -> Array:
        """``cash + Σ_a size·(mark − entry)`` for every row, [..., R] USD; ``mark`` [..., A]."""
        return self.all_cash + sum_markets(self.size_am * (mark[..., :, None] - self.entry_am), axis=-2)

    def total_value(self) -> Array:
        """``Σ_rows AV``. Mark-independent when every market is zero-sum: ``Σ cash − Σ size·entry``."""
        return jnp.sum(self.all_cash, axis=-1) - jnp.sum(self.size_am * self.entry_am, axis=(-2, -1))

    def replace(self, **changes) -> "Book":
        return replace(self, **changes)

    @classmethod
    def from_rows(cls, all_cash, all_size, all_entry, cooldown, isolated, insurance_fund) -> "Book":
        """Build from every row's arrays as the views give them (``all_size``/``all_entry`` [..., R, A])."""
        return cls(all_cash=all_cash, size_am=jnp.swapaxes(jnp.asarray(all_size), -1, -2),
                   entry_am=jnp.swapaxes(jnp.asarray(all_entry), -1, -2), cooldown=cooldown,
                   isolated=isolated, insurance_fund=insurance_fund)

    # ---- construction ------------------------------------------------------
    @classmethod
    def from_positions(cls, account, market, size, entry, cash, *, n_markets: int | None = None,
                       isolated=None, **kwargs) -> "Book":
        """Build and check a book from a list of positions, as venues publish them.

        Args:
          account: [P] int, each position's trader row, in ``0 .. N−1``.
          market: [P] int, each position's market, in ``0 .. A−1``.
          size: [P] signed sizes, base units (+long, −short).
          entry: [P] average entry prices, USD per unit (> 0).
          cash: [N] traders' collateral, USD; a row without positions holds cash only.
          n_markets: A, when the last markets hold no position (default: ``max(market) + 1``).
          isolated: [N] bool, rows that are isolated positions (one position each).
          **kwargs: as :meth:`from_accounts` (``vault_cash``, ``insurance_fund``, ``vault_size``,
            ``vault_entry``, ``lp_cash``, ``lp_size``, ``lp_entry``, ``dtype``).

        A row holds at most one position a market: a pair ``(account, market)`` given twice is refused
        (a venue's list never repeats one). A ``Book`` holds [R, A] arrays, ``(N + 2)·A`` numbers an array
        whatever ``P`` is; :meth:`adljax.PositionBook.from_positions` (same arguments) holds the list itself.

        Raises:
          InputError: naming the field, for indices that are not whole numbers or out of range,
            lengths that differ, a repeated pair, and everything :meth:`from_accounts` refuses.
        """
        cash, acc, mkt, size, entry, a = position_lists(account, market, size, entry, cash, n_markets)
        n = cash.shape[0]
        key = acc.astype(np.int64) * a + mkt
        uniq, first, counts = np.unique(key, return_index=True, return_counts=True)
        if np.any(counts > 1):
            k = int(uniq[np.argmax(counts > 1)])
            dup = np.flatnonzero(key == k)[:2]
            raise InputError(f"account, market: positions {int(dup[0])} and {int(dup[1])} are both account "
                             f"{k // a} in market {k % a}; a row holds one position a market")
        dense_size = np.zeros((n, a))
        dense_entry = np.zeros((n, a))
        dense_size[acc, mkt] = size
        dense_entry[acc, mkt] = entry
        return cls.from_accounts(cash, dense_size, dense_entry, isolated=isolated, **kwargs)

    @classmethod
    def from_accounts(
        cls,
        cash,
        size,
        entry,
        *,
        vault_cash=0.0,
        insurance_fund=0.0,
        vault_size=None,
        vault_entry=None,
        lp_cash=0.0,
        lp_size=None,
        lp_entry=None,
        isolated=None,
        dtype=None,
    ) -> "Book":
        """Build and check a book.

        Args:
          cash: [N] traders' collateral, USD.
          size: [N, A] signed positions, base units (+long, −short).
          entry: [N, A] average entry prices, USD per unit (> 0 where size ≠ 0).
          vault_cash: backstop vault collateral, USD (≥ 0).
          insurance_fund: insurance fund balance, USD (≥ 0).
          vault_size, vault_entry: [A] positions the vault already holds.
          lp_cash, lp_size, lp_entry: the liquidity-provider row's start.
          isolated: [N] bool, rows that are isolated positions (one position each).
          dtype: float dtype of every array, float32 or float64 (default: JAX's default float).

        Raises:
          InputError: naming the field, for text, booleans or objects where numbers are
            meant (and anything but booleans in ``isolated``), a shape mismatch, a NaN, a
            non-positive entry price on an open position, a negative vault or
            fund, an isolated row with several positions, a book that is not
            zero-sum per market (with the imbalance of each market), and numbers out of
            the dtype's range: infinite after the cast, a nonzero size or price below
            :func:`~adljax.model.errors.smallest_amount` (1.1e-16 in float32), a price at or
            above :func:`~adljax.model.errors.money_limit` (1.8e16 in float32), or money
            (:func:`check_money`) adding up to that limit.
        """
        dtype = jax.dtypes.canonicalize_dtype(float_dtype("dtype", dtype))
        cash = as_numbers("cash", cash).astype(np.float64)
        size = as_numbers("size", size).astype(np.float64)
        entry = as_numbers("entry", entry).astype(np.float64)
        check_ndim("cash", cash, 1, "[N accounts]")
        n = cash.shape[0]
        check_ndim("size", size, 2, "[N accounts, A markets]")
        if size.shape[0] != n:
            raise InputError(f"size: has {size.shape[0]} rows but cash has {n} accounts")
        a = size.shape[1]
        if a < 1:
            raise InputError("size: needs at least one market (A >= 1)")
        check_shape("entry", entry, (n, a), "[N accounts, A markets], like size")
        check_finite("cash", cash)
        check_finite("size", size)
        check_finite("entry", entry)
        open_ = size != 0
        if np.any(open_ & (entry <= 0)):
            i, j = (int(v) for v in np.argwhere(open_ & (entry <= 0))[0])
            raise InputError(f"entry: must be > 0 where a position is open; account {i} market {j} has size "
                             f"{size[i, j]} and entry {entry[i, j]}")
        entry = np.where(open_, entry, 0.0)

        vault_size, vault_entry, lp_size, lp_entry, vault_cash, insurance_fund, lp_cash = system_rows(
            a, vault_size, vault_entry, lp_size, lp_entry, vault_cash, insurance_fund, lp_cash)

        if isolated is None:
            iso = np.zeros(n, dtype=bool)
        else:
            iso = as_bools("isolated", isolated)
            check_shape("isolated", iso, (n,), "[N accounts]")
            npos = (size != 0).sum(axis=1)
            bad = iso & (npos > 1)
            if bad.any():
                i = int(np.argmax(bad))
                raise InputError(f"isolated: account {i} is isolated but holds {int(npos[i])} positions; an isolated "
                                 "position is a row with one position (split the trader into several rows)")

        # What the float64 values become in the engine's dtype, named as the caller wrote them.
        check_cast(dtype, cash=cash, size=size, entry=entry, vault_cash=vault_cash, insurance_fund=insurance_fund,
                   lp_cash=lp_cash, vault_size=vault_size, vault_entry=vault_entry, lp_size=lp_size,
                   lp_entry=lp_entry)
        all_cash = np.concatenate([cash, [vault_cash, lp_cash]])
        all_size = np.concatenate([size, vault_size[None], lp_size[None]], axis=0)
        all_entry = np.concatenate([entry, vault_entry[None], lp_entry[None]], axis=0)
        check_zero_sum(all_size)
        check_money(all_cash, np.asarray(insurance_fund), all_size.T, all_entry.T, None, dtype,
                    cash_name="cash", size_name="size", price_name="entry")
        book = cls(
            all_cash=jnp.asarray(all_cash, dtype=dtype),
            size_am=jnp.asarray(all_size.T, dtype=dtype),
            entry_am=jnp.asarray(all_entry.T, dtype=dtype),
            cooldown=jnp.zeros(n + 2, dtype=dtype),
            isolated=jnp.asarray(np.concatenate([iso, [False, False]])),
            insurance_fund=jnp.asarray(insurance_fund, dtype=dtype),
        )
        book.validate()
        return book

    # ---- checks --------------------------------------------------------------
    def checked_dtype(self) -> np.dtype:
        """The float dtype every stage runs in (the cash's); checks that every field agrees with it.

        Raises:
          InputError: naming the field, for a field that is not an array of the book's dtype
            (float32 or float64; ``isolated`` bool).
        """
        for name in ("all_cash", "size_am", "entry_am", "cooldown", "isolated", "insurance_fund"):
            if not hasattr(getattr(self, name), "dtype"):
                check_numeric(f"book.{name}", getattr(self, name))
                raise InputError(f"book.{name}: expected an array, got {type(getattr(self, name)).__name__} "
                                 "(build books with Book.from_accounts)")
        dtype = np.dtype(self.all_cash.dtype)
        if dtype.name not in FLOAT_DTYPES:
            raise InputError(f"book.all_cash: dtype {dtype.name}; a book's numbers are float32 or float64 "
                             "(Book.from_accounts(..., dtype=...))")
        for name in ("size_am", "entry_am", "cooldown", "insurance_fund"):
            d = np.dtype(getattr(self, name).dtype)
            if d != dtype:
                raise InputError(f"book.{name}: dtype {d.name} differs from the book's {dtype.name} (book.all_cash); "
                                 "every number of a book has one dtype")
        if np.dtype(self.isolated.dtype).kind != "b":
            raise InputError(f"book.isolated: expected True/False per row, got dtype {np.dtype(self.isolated.dtype)}")
        return dtype

    def validate(self, paths=None) -> None:
        """Check a book however it was built (:meth:`from_accounts`, :meth:`replace`, a run's final books).

        Shapes and dtypes always; values where the fields are concrete (not traced): every number
        finite in the book's dtype, each open position's entry price > 0, every nonzero size and entry
        at or above the dtype's smallest normal number, cooldowns and the insurance fund >= 0, at most
        one position on an isolated row, every market zero-sum, and the book's money
        (:func:`check_money`) and open entries below :func:`~adljax.model.errors.money_limit`.
        (:meth:`from_accounts` also holds a new book's sizes and prices at or above
        :func:`~adljax.model.errors.smallest_amount`; here only the smallest normal number is
        required, so that a run's final books, which may hold a fill's dust, are valid books.) With ``paths``
        (:class:`~adljax.model.paths.Paths`), also the paths (:meth:`Paths.validate` in the book's
        dtype), and the money at the highest oracle price of each market.

        Raises:
          InputError: naming the field (``book.all_cash``, ``book.size_am``, ...) and the problem.
        """
        dtype = self.checked_dtype()
        lead = tuple(np.shape(self.all_cash))[:-1]
        if np.ndim(self.all_cash) not in (1, 2):
            raise InputError(f"book.all_cash: expected [R rows] or [S scenarios, R rows], got shape "
                             f"{tuple(np.shape(self.all_cash))}")
        r = np.shape(self.all_cash)[-1]
        if r < 2:
            raise InputError(f"book.all_cash: needs the vault and LP rows (R = N + 2 >= 2), got R = {r}")
        if np.ndim(self.size_am) != len(lead) + 2 or tuple(np.shape(self.size_am))[:len(lead)] != lead \
                or np.shape(self.size_am)[-1] != r or np.shape(self.size_am)[-2] < 1:
            raise InputError(f"book.size_am: expected shape {lead + ('A markets', r)} (market-major, like "
                             f"book.all_cash {tuple(np.shape(self.all_cash))}), got {tuple(np.shape(self.size_am))}")
        a = np.shape(self.size_am)[-2]
        for name, shape in (("entry_am", lead + (a, r)), ("cooldown", lead + (r,)), ("isolated", lead + (r,)),
                            ("insurance_fund", lead)):
            check_shape(f"book.{name}", getattr(self, name), shape, "(as book.all_cash and book.size_am)")
        prices = None
        if paths is not None:
            paths.validate(a, dtype)
            prices = paths.max_price()

        cash, size, entry, cooldown, iso, fund = (as_host(getattr(self, f)) for f in (
            "all_cash", "size_am", "entry_am", "cooldown", "isolated", "insurance_fund"))
        for name, v in (("all_cash", cash), ("size_am", size), ("entry_am", entry), ("cooldown", cooldown),
                        ("insurance_fund", fund)):
            if v is not None:
                check_representable(f"book.{name}", v, dtype)
        if cooldown is not None:
            check_positive("book.cooldown", cooldown, allow_zero=True)
        if fund is not None:
            check_positive("book.insurance_fund", fund, allow_zero=True)
        if size is not None:
            check_representable("book.size_am", size, dtype, positive="nonzero")
            check_zero_sum(np.swapaxes(size, -1, -2), "book.size_am")
        if size is not None and entry is not None:
            bad = (size != 0) & (entry <= 0)
            if bad.any():
                idx = tuple(int(i) for i in np.argwhere(bad)[0])
                raise InputError(f"book.entry_am: must be > 0 where a position is open; at index {idx} (market "
                                 f"{idx[-2]}, row {idx[-1]}) size is {size[idx]} and entry {entry[idx]}")
            open_entry = np.where(size != 0, entry, 0.0)
            check_representable("book.entry_am", open_entry, dtype, positive="nonzero")
            check_below_limit("book.entry_am", open_entry, dtype)
        if size is not None and iso is not None:
            npos = (size != 0).sum(axis=-2)
            bad = iso & (npos > 1)
            if bad.any():
                idx = tuple(int(i) for i in np.argwhere(bad)[0])
                raise InputError(f"book.isolated: row {idx[-1]} is isolated but holds {int(npos[idx])} positions; "
                                 "an isolated position is a row with one position")
        if cash is not None and size is not None and entry is not None and fund is not None:
            check_money(cash, fund, size, entry, prices, dtype)


def position_lists(account, market, size, entry, cash, n_markets):
    """A list of positions checked: ``(cash [N], account [P], market [P], size [P], entry [P], A)``, host float64
    and int64; the errors name ``account``, ``market``, ``size``, ``entry``, ``cash`` and ``n_markets``."""
    cash = as_numbers("cash", cash)
    check_ndim("cash", cash, 1, "[N accounts]")
    n = cash.shape[0]
    acc = _indices("account", account, n, "N accounts (the length of cash)")
    p = acc.shape[0]
    mkt = _indices("market", market, None, "")
    check_shape("market", mkt, (p,), "[P positions], like account")
    if n_markets is None:
        if p == 0:
            raise InputError("n_markets: give the number of markets of a book without positions")
        a = int(mkt.max()) + 1
    else:
        if isinstance(n_markets, bool) or not isinstance(n_markets, (int, np.integer)) or n_markets < 1:
            raise InputError(f"n_markets: must be a whole number >= 1, got {n_markets!r}")
        a = int(n_markets)
        if p and int(mkt.max()) >= a:
            k = int(np.argmax(mkt >= a))
            raise InputError(f"market: position {k} is in market {int(mkt[k])}, but n_markets is {a}")
    size = as_numbers("size", size).astype(np.float64)
    entry = as_numbers("entry", entry).astype(np.float64)
    check_shape("size", size, (p,), "[P positions], like account")
    check_shape("entry", entry, (p,), "[P positions], like account")
    return cash.astype(np.float64), acc, mkt, size, entry, a


def system_rows(a: int, vault_size, vault_entry, lp_size, lp_entry, vault_cash, insurance_fund, lp_cash):
    """The vault's and the liquidity providers' start, checked: ``[A]`` sizes and entries (entries 0 where
    flat) and the cash and fund as floats; the errors name each argument."""
    def vec(name, v, default):
        v = np.full(a, default) if v is None else as_numbers(name, v).astype(np.float64)
        check_shape(name, v, (a,), "[A markets]")
        check_finite(name, v)
        return v

    vault_size, vault_entry = vec("vault_size", vault_size, 0.0), vec("vault_entry", vault_entry, 0.0)
    lp_size, lp_entry = vec("lp_size", lp_size, 0.0), vec("lp_entry", lp_entry, 0.0)
    for nm, s, e in (("vault_entry", vault_size, vault_entry), ("lp_entry", lp_size, lp_entry)):
        if np.any((s != 0) & (e <= 0)):
            raise InputError(f"{nm}: must be > 0 where the row holds a position")
    vault_entry = np.where(vault_size != 0, vault_entry, 0.0)
    lp_entry = np.where(lp_size != 0, lp_entry, 0.0)
    for nm, v in (("vault_cash", vault_cash), ("insurance_fund", insurance_fund), ("lp_cash", lp_cash)):
        check_number(nm, v)
    vault_cash, insurance_fund, lp_cash = float(vault_cash), float(insurance_fund), float(lp_cash)
    for nm, v in (("vault_cash", vault_cash), ("insurance_fund", insurance_fund)):
        check_positive(nm, np.asarray(v), allow_zero=True)
    check_finite("lp_cash", np.asarray(lp_cash))
    return vault_size, vault_entry, lp_size, lp_entry, vault_cash, insurance_fund, lp_cash


#: How :func:`check_cast` checks each named value: any finite value, or a nonzero one that keeps its magnitude.
_CAST_KIND = {"size": "nonzero", "entry": "nonzero", "vault_size": "nonzero", "vault_entry": "nonzero",
              "lp_size": "nonzero", "lp_entry": "nonzero"}
_PRICES = ("entry", "vault_entry", "lp_entry")


def check_cast(dtype, **values) -> None:
    """What host float64 values become in ``dtype``, each error naming its argument: finite and not flushed to
    zero (sizes and prices), prices below the money limit, and no nonzero size or price below the dtype's floor."""
    for nm, v in values.items():
        check_representable(nm, np.asarray(v), dtype, positive=_CAST_KIND.get(nm, "none"))
    for nm in _PRICES:
        if nm in values:
            check_below_limit(nm, values[nm], dtype)
    for nm, v in values.items():
        if nm in _CAST_KIND:
            check_above_floor(nm, v, dtype)


def _indices(name: str, x, n: int | None, what: str) -> np.ndarray:
    """``x`` as a [P] array of whole numbers in ``0 .. n−1`` (``n`` None: any ≥ 0), or an error naming ``name``."""
    a = np.asarray(x)
    if a.ndim != 1:
        raise InputError(f"{name}: expected [P positions] whole numbers, got shape {a.shape}")
    if a.dtype == bool or not (np.issubdtype(a.dtype, np.integer) or np.issubdtype(a.dtype, np.floating)):
        raise InputError(f"{name}: expected whole numbers (row or market indices), got {a.dtype}")
    if np.issubdtype(a.dtype, np.floating):
        if not np.all(np.isfinite(a)) or np.any(a != np.round(a)):
            k = int(np.argmax(~np.isfinite(a) | (a != np.round(a))))
            raise InputError(f"{name}: expected whole numbers, got {float(a[k])!r} at position {k}")
    a = a.astype(np.int64)
    if a.size and (a.min() < 0 or (n is not None and a.max() >= n)):
        k = int(np.argmax((a < 0) | ((a >= n) if n is not None else False)))
        limit = f"0 .. {n - 1} ({what})" if n is not None else ">= 0"
        raise InputError(f"{name}: position {k} has {name} {int(a[k])}, outside {limit}")
    return a


def check_inputs(book, paths) -> np.dtype:
    """The checks every entry point runs on the book and paths it is given, however they were built.

    Types, then :meth:`Book.validate` with the paths (their values in the book's dtype). Host NumPy,
    once per call; values that are traced (the engine run under a user's ``jit`` or ``grad``) are
    skipped, their shapes and dtypes checked. Returns the book's dtype.
    """
    from .position_book import PositionBook

    if not isinstance(book, (Book, PositionBook)):
        raise InputError(f"book: expected an adljax.Book (build one with Book.from_accounts) or an "
                         f"adljax.PositionBook, got {type(book).__name__}")
    if not isinstance(paths, Paths):
        raise InputError(f"paths: expected an adljax.Paths(oracle, depth), got {type(paths).__name__}")
    book.validate(paths)
    return book.checked_dtype()


def check_money(cash, fund, size, entry, prices, dtype, *, cash_name: str = "book.all_cash",
                size_name: str = "book.size_am", price_name: str = "book.entry_am") -> None:
    """Refuse a book whose money could overflow ``dtype`` in the engine's sums.

    The book's money is ``Σ|cash| + insurance fund + Σ|size|·P[a]`` per scenario, ``P[a]`` the
    highest price market ``a`` has: its open positions' entries, and ``prices[a]`` (the highest
    oracle price of the run) when given. It must stay below
    :func:`~adljax.model.errors.money_limit` (float32: about 1.8e16 USD). Host arrays, float64:
    ``cash`` [..., R], ``fund`` [...], ``size``/``entry`` [..., A, R], ``prices`` [A] or None.
    The message names the largest part: ``cash_name``, ``insurance_fund`` or ``size_name``.
    """
    with np.errstate(over="ignore"):      # an overflow is what is refused below
        _check_money(cash, fund, size, entry, prices, dtype, cash_name, size_name, price_name)


def _check_money(cash, fund, size, entry, prices, dtype, cash_name, size_name, price_name) -> None:
    cash = np.abs(np.asarray(cash, dtype=np.float64))
    size = np.abs(np.asarray(size, dtype=np.float64))
    entry = np.asarray(entry, dtype=np.float64)
    fund = np.abs(np.asarray(fund, dtype=np.float64))
    # the highest price of each market, over rows and (for a batched book) scenarios
    price = np.max(np.where(size != 0, entry, 0.0).reshape((-1,) + size.shape[-2:]), axis=(0, 2))
    source = np.full(price.shape, price_name, dtype=object)
    if prices is not None:
        prices = np.asarray(prices, dtype=np.float64)
        source = np.where(prices > price, "paths.oracle", source)
        price = np.maximum(price, prices)
    parts = {cash_name: cash.sum(axis=-1), "insurance_fund": fund,
             size_name: (size * price[:, None]).sum(axis=(-2, -1))}
    total = sum(parts.values())
    limit = money_limit(dtype)
    if np.all(total < limit):
        return
    s = int(np.argmax(total))
    biggest = max(parts, key=lambda k: float(np.ravel(parts[k])[s]))
    what = {cash_name: "Σ|cash|", "insurance_fund": "the insurance fund",
            size_name: f"Σ|size|·price (highest price {price.max():.4g}, from {source[np.argmax(price)]})"}[biggest]
    raise InputError(f"{biggest}: the book's money (Σ|cash| + insurance fund + Σ|size|·price) comes to "
                     f"{float(np.ravel(total)[s]):.4g} USD, mostly {what}, above the limit {limit:.3g} for "
                     f"{np.dtype(dtype).name} (1e-3·sqrt of its largest number); {remedy(dtype, 'larger')}")


def check_zero_sum(all_size, name: str = "size", dtype=None) -> None:
    """Raise if some market's positions (all rows) do not sum to zero, naming each market's imbalance.

    ``all_size`` is [..., R, A]; ``dtype``: the book's float dtype, whose rounding is allowed (default: the array's).
    """
    h = as_host(all_size)
    if h is None:
        return
    rel = 1e-9 if np.dtype(dtype or h.dtype) == np.float64 else 1e-6   # the rounding of a float32 book
    h = np.asarray(h, dtype=np.float64)
    net = h.sum(axis=-2)
    scale = np.abs(h).sum(axis=-2)
    tol = rel * np.maximum(scale, 1.0)
    bad = np.abs(net) > tol
    if np.any(bad):
        net2 = net.reshape(-1, net.shape[-1])
        bad2 = bad.reshape(-1, bad.shape[-1])
        parts = []
        for s in range(net2.shape[0]):
            for j in np.flatnonzero(bad2[s]):
                parts.append(f"market {j}: {net2[s, j]:+.6g}" + (f" (scenario {s})" if net2.shape[0] > 1 else ""))
        raise InputError(
            f"{name}: the book is not zero-sum; net size per market (longs − shorts, all rows) is "
            + ", ".join(parts[:8]) + (" ..." if len(parts) > 8 else "")
            + ". Every long needs a short: give the remainder to the liquidity-provider row with lp_size/lp_entry."
        )


def stack(books: list[Book]) -> Book:
    """Stack single-scenario books along a new leading scenario axis."""
    import jax

    return jax.tree_util.tree_map(lambda *xs: jnp.stack(xs), *books)
