"""The book as a list of positions: a venue's book, sparse over accounts × markets.

A real venue's accounts hold a few markets each (Hyperliquid on 10 Oct 2025: ~221k positions over
~437k accounts and 182 markets, 0.3 % of the grid). :class:`PositionBook` holds exactly those
positions, in the order :class:`~adljax.model.layout.Layout` describes, with the vault's and the
liquidity providers' one slot a market; :func:`adljax.simulate` runs it on the position engine
(:mod:`adljax.engine.positions`), whose work and memory grow with positions, not with rows × markets.
"""
from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
from jax import Array

from .book import Book, check_cast, check_money, check_zero_sum, position_lists, system_rows
from .errors import (InputError, as_bools, as_host, check_finite,
                     check_positive, check_representable, check_shape, float_dtype)
from .layout import Layout
from .rows import LP, SYSTEM, TRADERS, VAULT

#: The most numbers (scenarios × trader rows × markets) the dense views ``size``/``entry`` of a
#: position book build; above it they refuse, pointing to ``position_size``/``position_entry``.
DENSE_VIEW_LIMIT = 50_000_000

_VALUES = ("all_cash", "position_size", "position_entry", "cooldown", "isolated", "insurance_fund")


def _host_take(x, idx) -> Array:
    """``x[..., idx]`` taken on the host (numpy) and returned as a JAX array: the moves of a book's arrays
    around a run (idle rows, padding) as eager ``jnp`` operations would each compile a program for every new
    book's shapes."""
    return jnp.asarray(np.asarray(x)[..., idx])


@dataclasses.dataclass(frozen=True)
class PositionBook:
    """All accounts of one scenario (or a batch, leading axis S) as a list of positions.

    Attributes:
      all_cash: [..., R] USD, every row's collateral (traders, then the vault, then the LPs; R = N + 2).
      position_size: [..., P] signed base units of each position (+long, −short; 0 once closed).
      position_entry: [..., P] USD per unit, each position's average entry (0 where flat).
      cooldown: [..., R] seconds until the row may send its next liquidation order.
      isolated: [..., R] bool, rows that are isolated positions.
      insurance_fund: [...] USD.
      layout: the :class:`~adljax.model.layout.Layout` (each position's row and market), one for the batch.
    """

    all_cash: Array
    position_size: Array
    position_entry: Array
    cooldown: Array
    isolated: Array
    insurance_fund: Array
    layout: Layout

    def replace(self, **changes) -> "PositionBook":
        return dataclasses.replace(self, **changes)

    # ---- sizes and views --------------------------------------------------------------
    @property
    def n_accounts(self) -> int:
        """N, the number of trader rows."""
        return self.layout.n_traders

    @property
    def n_markets(self) -> int:
        return self.layout.n_markets

    @property
    def n_positions(self) -> int:
        """P, the traders' positions (the list without the vault's and LPs' slots)."""
        return self.layout.n_trader_positions

    @property
    def account(self) -> Array:
        """[P] each trader position's row."""
        return self.layout.row[:self.n_positions]

    @property
    def market(self) -> Array:
        """[P] each trader position's market."""
        return self.layout.market[:self.n_positions]

    @property
    def cash(self) -> Array:
        """Traders' collateral, [..., N] USD."""
        return self.all_cash[..., TRADERS]

    @property
    def vault_cash(self) -> Array:
        return self.all_cash[..., VAULT]

    @property
    def lp_cash(self) -> Array:
        return self.all_cash[..., LP]

    @property
    def vault_size(self) -> Array:
        """[..., A] the vault's positions."""
        return self.layout.vault(self.position_size)

    @property
    def vault_entry(self) -> Array:
        return self.layout.vault(self.position_entry)

    @property
    def lp_size(self) -> Array:
        return self.layout.lp(self.position_size)

    @property
    def lp_entry(self) -> Array:
        return self.layout.lp(self.position_entry)

    def _dense(self, x: Array, name: str) -> Array:
        lead = tuple(np.shape(x))[:-1]
        n, a = self.n_accounts, self.n_markets
        cells = int(np.prod(lead, dtype=np.int64)) * n * a
        if cells > DENSE_VIEW_LIMIT:
            raise InputError(f"book.{name}: the dense view [..., N, A] would hold {cells:,} numbers, above "
                             f"{DENSE_VIEW_LIMIT:,} (adljax.model.position_book.DENSE_VIEW_LIMIT); read the "
                             f"positions instead: book.position_{name} [..., P] with book.account and book.market")
        p = self.n_positions
        try:         # on the host: an eager scatter would compile a program for every new shape
            out = np.zeros(lead + (n, a), np.asarray(x).dtype)
            out[..., np.asarray(self.account), np.asarray(self.market)] = np.asarray(x)[..., :p]
            return jnp.asarray(out)
        except jax.errors.TracerArrayConversionError:       # (inside a traced function)
            return jnp.zeros(lead + (n, a), x.dtype).at[..., self.account, self.market].set(x[..., :p])

    @property
    def size(self) -> Array:
        """Traders' positions as a dense [..., N, A] array (small books only: :data:`DENSE_VIEW_LIMIT`)."""
        return self._dense(self.position_size, "size")

    @property
    def entry(self) -> Array:
        """Traders' entry prices as a dense [..., N, A] array (small books only)."""
        return self._dense(self.position_entry, "entry")

    def account_value(self, mark: Array) -> Array:
        """``cash + Σ size·(mark − entry)`` for every row, [..., R] USD; ``mark`` [..., A]."""
        lay = self.layout
        pnl = self.position_size * (jnp.take(mark, lay.market, axis=-1) - self.position_entry)
        if pnl.ndim == 1:
            return self.all_cash + lay.rows(pnl)
        return self.all_cash + jax.vmap(lay.rows)(pnl.reshape(-1, pnl.shape[-1])).reshape(self.all_cash.shape)

    def total_value(self) -> Array:
        """``Σ_rows AV`` (mark-independent when every market is zero-sum): ``Σ cash − Σ size·entry``."""
        return jnp.sum(self.all_cash, axis=-1) - jnp.sum(self.position_size * self.position_entry, axis=-1)

    # ---- batches ----------------------------------------------------------------------
    def batched(self, n_scenarios: int) -> "PositionBook":
        """The book repeated for ``n_scenarios`` scenarios (a batched book is returned as it is)."""
        if np.ndim(self.all_cash) == 2:
            return self
        return self.replace(**{f: jnp.broadcast_to(getattr(self, f), (n_scenarios,) + np.shape(getattr(self, f)))
                               for f in _VALUES})

    def scenarios(self, first: int, n: int) -> "PositionBook":
        """Scenarios ``[first, first + n)`` of a batched book (a single book: repeated ``n`` times)."""
        if np.ndim(self.all_cash) == 1:
            return self.batched(n)
        return self.replace(**{f: getattr(self, f)[first:first + n] for f in _VALUES})

    def values(self) -> dict:
        """The per-scenario arrays (every field but the layout)."""
        return {f: getattr(self, f) for f in _VALUES}

    def astype(self, dtype) -> "PositionBook":
        return self.replace(**{f: jnp.asarray(getattr(self, f), dtype) for f in _VALUES if f != "isolated"})

    def without_idle_rows(self):
        """The book without the trader rows no stage can change, and the map back to this book's shape.

        A trader row that holds no position slot, with cash ≥ 0 and no cooldown (in every scenario), is idle:
        it has nothing to liquidate, take over or deleverage, no deficit to cover, and pays no funding, so in
        the hard rules it ends as it starts. (A venue's book has many such accounts: on 10 Oct 2025 about half of
        Hyperliquid's ~437k accounts held no position.) Returns ``(book, expand)``: ``book`` with only the
        other rows (this book itself when none is idle), and ``expand(final)``, which puts a final book of the
        compact one (batched, [S, ...]) back into this book's rows and position order.
        """
        lay = self.layout
        r, a = lay.n_rows, lay.n_markets
        busy = np.zeros(r, bool)
        busy[np.asarray(lay.row)] = True
        cash = np.asarray(self.all_cash).reshape(-1, r)
        cooldown = np.asarray(self.cooldown).reshape(-1, r)
        busy |= np.any(cash < 0, axis=0) | np.any(cooldown > 0, axis=0)
        busy[VAULT] = busy[LP] = True
        if busy.all():
            return self, lambda final: final
        keep = np.flatnonzero(busy)
        remap = np.full(r, -1, np.int64)
        remap[keep] = np.arange(keep.size)
        p_tr = lay.n_trader_positions
        rows, mkts = np.asarray(lay.row)[:p_tr], np.asarray(lay.market)[:p_tr]
        layout, perm = _relaid(remap[rows], mkts, keep.size, a, np.arange(p_tr, lay.n_positions))
        inverse = np.argsort(perm)
        compact = PositionBook(all_cash=_host_take(self.all_cash, keep),
                               position_size=_host_take(self.position_size, perm),
                               position_entry=_host_take(self.position_entry, perm),
                               cooldown=_host_take(self.cooldown, keep), isolated=_host_take(self.isolated, keep),
                               insurance_fund=self.insurance_fund, layout=layout)

        def expand(final: "PositionBook") -> "PositionBook":
            s = np.shape(final.all_cash)[0]

            def rows_of(full, part):
                out = np.array(np.broadcast_to(np.asarray(full), (s, r)))
                out[:, keep] = np.asarray(part)
                return jnp.asarray(out)
            return PositionBook(all_cash=rows_of(self.all_cash, final.all_cash),
                                position_size=_host_take(final.position_size, inverse),
                                position_entry=_host_take(final.position_entry, inverse),
                                cooldown=rows_of(np.zeros(np.shape(self.cooldown), np.asarray(self.cooldown).dtype),
                                                 final.cooldown),
                                isolated=rows_of(self.isolated, final.isolated),
                                insurance_fund=final.insurance_fund, layout=lay)
        return compact, expand

    def padded(self, n_traders: int, n_positions: int):
        """The book padded to ``n_traders`` trader rows and ``n_positions`` trader positions (at least its
        own), and the map back to this book's shape.

        The pad rows follow the traders (before the vault and the LPs) with no cash, cooldown or isolation;
        the pad positions, of size 0, are theirs, one a market a row, handed out in turn (so every pad row
        holds one when the list starts with the plane, which needs ``n_positions − P >= n_traders − N``;
        and ``(n_traders − N)·A >= n_positions − P``). A position of size 0 on a row of value 0 is never
        liquidated, taken over, deleveraged or charged, so the run's numbers are this book's, but for the
        order of sums of zeros. Padding books to a few sizes lets books of similar size share one compiled
        program (:meth:`adljax.engine.config.EngineConfig.capacity`).

        Returns ``(book, unpad)``: the padded book (this book itself when nothing is to add), and
        ``unpad(final)``, which takes a final book of the padded one (batched, [S, ...]) back to this
        book's rows and position order.
        """
        lay = self.layout
        n, p, a = lay.n_traders, lay.n_trader_positions, lay.n_markets
        extra_rows, extra = int(n_traders) - n, int(n_positions) - p
        plane = lay.n_plane > 0
        if extra_rows < 0 or extra < 0 or extra > extra_rows * a or (plane and extra < extra_rows):
            raise InputError(f"padded: cannot pad {n} trader rows and {p} positions over {a} markets to "
                             f"{n_traders} rows and {n_positions} positions")
        if extra_rows == 0 and extra == 0:
            return self, lambda final: final
        j = np.arange(extra)
        rows = np.concatenate([np.asarray(lay.row)[:p], n + j % max(extra_rows, 1)])
        mkts = np.concatenate([np.asarray(lay.market)[:p], j // max(extra_rows, 1)])
        # indices into [this list's trader slots, the pads, this list's system slots]
        layout, perm = _relaid(rows, mkts, n_traders + SYSTEM, a, np.arange(p, p + 2 * a) + extra)
        back = np.argsort(perm)[np.concatenate([np.arange(p), np.arange(p, p + 2 * a) + extra])]
        # On the host (numpy): as eager jnp operations each move would compile a program for every new book's shapes.
        lead = tuple(np.shape(self.position_size))[:-1]

        def pad_values(x):
            x = np.asarray(x)
            return jnp.asarray(np.concatenate([x[..., :p], np.zeros(lead + (extra,), x.dtype), x[..., p:]],
                                              axis=-1)[..., perm])
        lead_r = tuple(np.shape(self.all_cash))[:-1]

        def pad_rows(x):
            x = np.asarray(x)
            return jnp.asarray(np.concatenate([x[..., TRADERS], np.zeros(lead_r + (extra_rows,), x.dtype),
                                               x[..., VAULT:]], axis=-1))
        book = PositionBook(all_cash=pad_rows(self.all_cash), position_size=pad_values(self.position_size),
                            position_entry=pad_values(self.position_entry), cooldown=pad_rows(self.cooldown),
                            isolated=pad_rows(self.isolated), insurance_fund=self.insurance_fund, layout=layout)
        keep_rows = np.concatenate([np.arange(n), n_traders + np.arange(SYSTEM)])

        def unpad(final: "PositionBook") -> "PositionBook":
            return PositionBook(all_cash=_host_take(final.all_cash, keep_rows),
                                position_size=_host_take(final.position_size, back),
                                position_entry=_host_take(final.position_entry, back),
                                cooldown=_host_take(final.cooldown, keep_rows),
                                isolated=_host_take(final.isolated, keep_rows),
                                insurance_fund=final.insurance_fund, layout=lay)
        return book, unpad

    # ---- conversion -------------------------------------------------------------------
    @classmethod
    def from_book(cls, book: Book) -> "PositionBook":
        """The positions of a dense :class:`Book` (single or batched): every (row, market) cell that holds
        a position in some scenario, in row order, with the vault's and the LPs' slots."""
        if not isinstance(book, Book):
            raise InputError(f"book: expected an adljax.Book, got {type(book).__name__}")
        size = np.asarray(book.size_am)                                       # [..., A, R]
        a, r = size.shape[-2:]
        held = np.any(size.reshape((-1, a, r))[..., TRADERS] != 0, axis=0).T  # [N, A]
        rows, mkts = np.nonzero(held)
        layout, order = Layout.build(rows, mkts, r, a)
        rows, mkts = rows[order], mkts[order]
        take = lambda x: np.concatenate([x[..., mkts, rows], x[..., :, VAULT], x[..., :, LP]], axis=-1)
        return cls(all_cash=book.all_cash, position_size=jnp.asarray(take(size)),
                   position_entry=jnp.asarray(take(np.asarray(book.entry_am))), cooldown=book.cooldown,
                   isolated=book.isolated, insurance_fund=book.insurance_fund, layout=layout)

    def to_book(self) -> Book:
        """The dense :class:`Book` of the same positions (small books only: :data:`DENSE_VIEW_LIMIT`)."""
        dense = lambda x, name: jnp.concatenate(
            [self._dense(x, name), self.layout.vault(x)[..., None, :], self.layout.lp(x)[..., None, :]], axis=-2)
        size, entry = dense(self.position_size, "size"), dense(self.position_entry, "entry")
        return Book.from_rows(self.all_cash, size, entry, self.cooldown, self.isolated, self.insurance_fund)

    @classmethod
    def from_positions(cls, account, market, size, entry, cash, *, n_markets: int | None = None, isolated=None,
                       vault_cash=0.0, insurance_fund=0.0, vault_size=None, vault_entry=None, lp_cash=0.0,
                       lp_size=None, lp_entry=None, dtype=None) -> "PositionBook":
        """Build and check a position book from a list of positions, as venues publish them.

        Args:
          account: [P] int, each position's trader row, in ``0 .. N−1``.
          market: [P] int, each position's market, in ``0 .. A−1``.
          size: [P] signed sizes, base units (+long, −short).
          entry: [P] average entry prices, USD per unit (> 0 where the size is not 0).
          cash: [N] traders' collateral, USD; a row without positions holds cash only.
          n_markets: A, when the last markets hold no position (default: ``max(market) + 1``).
          isolated: [N] bool, rows that are isolated positions (one position each).
          vault_cash, insurance_fund, vault_size, vault_entry, lp_cash, lp_size, lp_entry, dtype: as
            :meth:`adljax.Book.from_accounts` (the vault's and LPs' positions [A]).

        No dense [N, A] array is built: memory grows with P + N + A.

        Raises:
          InputError: naming the field, as :meth:`adljax.Book.from_positions` (indices, lengths, a repeated
            pair) and :meth:`adljax.Book.from_accounts` (numbers, entries, zero sum, isolated rows, money).
        """
        dtype = jax.dtypes.canonicalize_dtype(float_dtype("dtype", dtype))
        cash, acc, mkt, size, entry, a = position_lists(account, market, size, entry, cash, n_markets)
        n, p = cash.shape[0], acc.shape[0]
        for name, v in (("cash", cash), ("size", size), ("entry", entry)):
            check_finite(name, v)
        order = np.lexsort((mkt, acc))
        key = acc[order] * a + mkt[order]
        if p > 1 and np.any(key[1:] == key[:-1]):
            k = int(np.argmax(key[1:] == key[:-1]))
            i, j = sorted((int(order[k]), int(order[k + 1])))
            raise InputError(f"account, market: positions {i} and {j} are both account {int(acc[i])} in market "
                             f"{int(mkt[i])}; a row holds one position a market")
        open_ = size != 0
        if np.any(open_ & (entry <= 0)):
            k = int(np.argmax(open_ & (entry <= 0)))
            raise InputError(f"entry: must be > 0 where a position is open; position {k} (account {int(acc[k])}, "
                             f"market {int(mkt[k])}) has size {size[k]} and entry {entry[k]}")
        entry = np.where(open_, entry, 0.0)

        vault_size, vault_entry, lp_size, lp_entry, vault_cash, insurance_fund, lp_cash = system_rows(
            a, vault_size, vault_entry, lp_size, lp_entry, vault_cash, insurance_fund, lp_cash)
        if isolated is None:
            iso = np.zeros(n, dtype=bool)
        else:
            iso = as_bools("isolated", isolated)
            check_shape("isolated", iso, (n,), "[N accounts]")
            npos = np.bincount(acc[open_], minlength=n)
            bad = iso & (npos > 1)
            if bad.any():
                i = int(np.argmax(bad))
                raise InputError(f"isolated: account {i} is isolated but holds {int(npos[i])} positions; an isolated "
                                 "position is a row with one position (split the trader into several rows)")
        check_cast(dtype, cash=cash, size=size, entry=entry, vault_cash=vault_cash, insurance_fund=insurance_fund,
                   lp_cash=lp_cash, vault_size=vault_size, vault_entry=vault_entry, lp_size=lp_size,
                   lp_entry=lp_entry)
        acc, mkt, size, entry = acc[order], mkt[order], size[order], entry[order]
        layout, order = Layout.build(acc, mkt, n + SYSTEM, a)
        all_size = np.concatenate([size[order], vault_size, lp_size])
        all_entry = np.concatenate([entry[order], vault_entry, lp_entry])
        all_cash = np.concatenate([cash, [vault_cash, lp_cash]])
        _check_values(layout, all_cash, all_size, all_entry, np.asarray(insurance_fund), dtype,
                      ("cash", "size", "entry"))
        return cls(all_cash=jnp.asarray(all_cash, dtype), position_size=jnp.asarray(all_size, dtype),
                   position_entry=jnp.asarray(all_entry, dtype), cooldown=jnp.zeros(n + SYSTEM, dtype),
                   isolated=jnp.asarray(np.concatenate([iso, [False, False]])),
                   insurance_fund=jnp.asarray(insurance_fund, dtype), layout=layout)

    # ---- checks -----------------------------------------------------------------------
    def checked_dtype(self) -> np.dtype:
        """The float dtype every stage runs in (the cash's), with every field checked to agree."""
        dtype = np.dtype(self.all_cash.dtype)
        if dtype.name not in ("float32", "float64"):
            raise InputError(f"book.all_cash: dtype {dtype.name}; a book's numbers are float32 or float64")
        for name in ("position_size", "position_entry", "cooldown", "insurance_fund"):
            d = np.dtype(getattr(self, name).dtype)
            if d != dtype:
                raise InputError(f"book.{name}: dtype {d.name} differs from the book's {dtype.name} (book.all_cash)")
        if np.dtype(self.isolated.dtype).kind != "b":
            raise InputError(f"book.isolated: expected True/False per row, got dtype {np.dtype(self.isolated.dtype)}")
        return dtype

    def validate(self, paths=None) -> None:
        """Check shapes and dtypes, and (where concrete) what :meth:`adljax.Book.validate` checks of values:
        finite numbers, open entries > 0, cooldowns and fund >= 0, one position on an isolated row, every
        market zero-sum, the book's money below the dtype's limit (at the paths' highest prices with ``paths``).

        Raises:
          InputError: naming the field (``book.all_cash``, ``book.position_size``, ...) and the problem.
        """
        dtype = self.checked_dtype()
        lay = self.layout
        if not isinstance(lay, Layout):
            raise InputError(f"book.layout: expected an adljax.model.layout.Layout, got {type(lay).__name__}")
        if np.ndim(self.all_cash) not in (1, 2):
            raise InputError(f"book.all_cash: expected [R rows] or [S scenarios, R rows], got shape "
                             f"{tuple(np.shape(self.all_cash))}")
        lead = tuple(np.shape(self.all_cash))[:-1]
        r, p = lay.n_rows, lay.n_positions
        for name, shape in (("all_cash", lead + (r,)), ("position_size", lead + (p,)),
                            ("position_entry", lead + (p,)), ("cooldown", lead + (r,)), ("isolated", lead + (r,)),
                            ("insurance_fund", lead)):
            check_shape(f"book.{name}", getattr(self, name), shape, "(as book.all_cash and book.layout)")
        prices = None
        if paths is not None:
            paths.validate(lay.n_markets, dtype)
            prices = paths.max_price()
        vals = [as_host(getattr(self, f)) for f in ("all_cash", "position_size", "position_entry", "cooldown",
                                                    "isolated", "insurance_fund")]
        cash, size, entry, cooldown, iso, fund = vals
        for name, v in (("all_cash", cash), ("position_size", size), ("position_entry", entry),
                        ("cooldown", cooldown), ("insurance_fund", fund)):
            if v is not None:
                check_representable(f"book.{name}", v, dtype)
        if cooldown is not None:
            check_positive("book.cooldown", cooldown, allow_zero=True)
        if fund is not None:
            check_positive("book.insurance_fund", fund, allow_zero=True)
        if size is None or entry is None or cash is None or fund is None:
            return
        bad = (size != 0) & (entry <= 0)
        if bad.any():
            idx = tuple(int(i) for i in np.argwhere(bad)[0])
            raise InputError(f"book.position_entry: must be > 0 where a position is open; position {idx[-1]} "
                             f"has size {size[idx]} and entry {entry[idx]}")
        if iso is not None:
            row = np.asarray(lay.row)
            npos = np.stack([np.bincount(row, weights=(s != 0), minlength=r)
                             for s in size.reshape(-1, p)]).reshape(lead + (r,))
            bad = iso & (npos > 1)
            if bad.any():
                idx = tuple(int(i) for i in np.argwhere(bad)[0])
                raise InputError(f"book.isolated: row {idx[-1]} is isolated but holds {int(npos[idx])} positions; "
                                 "an isolated position is a row with one position")
        _check_values(lay, cash, size, entry, fund, dtype, ("book.all_cash", "book.position_size",
                                                            "book.position_entry"), prices)





def _relaid(rows, mkts, n_rows: int, n_markets: int, system) -> tuple[Layout, np.ndarray]:
    """The layout of trader slots at ``rows``/``mkts`` (host integers, any order) and ``perm``: each new slot's
    index into the source arrays, the trader slots' (their index in ``rows``) then ``system`` (the source
    indices of the vault's and LPs' ``2A`` slots)."""
    first = np.lexsort((mkts, rows))
    layout, order = Layout.build(rows[first], mkts[first], n_rows, n_markets)
    return layout, np.concatenate([first[order], system])


def _check_values(lay: Layout, cash, size, entry, fund, dtype, names, prices=None) -> None:
    """Zero sum per market and the book's money, from per-market totals (no dense grid)."""
    mkt = np.asarray(lay.market)
    a = lay.n_markets
    size = np.asarray(size, np.float64).reshape(-1, size.shape[-1])
    entry = np.asarray(entry, np.float64).reshape(-1, entry.shape[-1])
    longs = np.stack([np.bincount(mkt, weights=np.maximum(s, 0.0), minlength=a) for s in size])
    shorts = np.stack([np.bincount(mkt, weights=np.minimum(s, 0.0), minlength=a) for s in size])
    check_zero_sum(np.stack([longs, shorts], axis=-2).reshape(np.shape(cash)[:-1] + (2, a)), names[1],
                   dtype)
    gross = (longs - shorts)                                                    # [S', A]
    top = np.zeros((size.shape[0], a))
    for i in range(size.shape[0]):
        np.maximum.at(top[i], mkt, np.where(size[i] != 0, entry[i], 0.0))
    shape = np.shape(cash)[:-1]
    check_money(cash, fund, gross.reshape(shape + (a, 1)), top.reshape(shape + (a, 1)), prices, dtype,
                cash_name=names[0], size_name=names[1], price_name=names[2])


jax.tree_util.register_dataclass(PositionBook, data_fields=list(_VALUES) + ["layout"], meta_fields=[])
