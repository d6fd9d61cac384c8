"""Books in files: read a venue's positions from CSV or Parquet, write a book back.

The format is one line per (account, market) position::

    account,market,size,entry,cash,isolated
    alice,BTC,0.5,98000,12000,false
    alice,ETH,-4,3900,12000,false
    bob,BTC,-0.5,99000,2500,true
    carol,,0,,800,false

- ``account``: any text naming the trader.
- ``market``: one of the ``markets`` the book is built for; empty only on a
  cash-only line (``size`` 0).
- ``size``: signed base units (+ long, − short).
- ``entry``: average entry price, USD per unit; > 0 where ``size ≠ 0``,
  may be empty where ``size = 0``.
- ``cash``: the account's collateral, USD (cross margin: shared by its
  cross positions, so repeat it on each of their lines, or give it on one
  line and leave the others empty; repeated values must agree). On an
  isolated line it is that position's own margin.
- ``isolated`` (optional, default false): ``true``/``false`` (also
  ``1/0``, ``yes/no``; empty is false). An isolated position is a row of its
  own in the :class:`~adljax.model.book.Book`.

Rows of the book come in the order the file first names them: one per
account with cross positions (or cash only), one per isolated line. Lines are
counted from 1 after the header in error messages ("row 3" is the third
position line). The file carries traders only; the backstop vault's cash and
the insurance fund are arguments of :func:`load_book`. ``load_book(...,
positions=True)`` gives the same book as a
:class:`~adljax.model.position_book.PositionBook` (a list of positions,
without any dense accounts × markets array).

Hyperliquid's own info-endpoint responses (``clearinghouseState`` per user and
``meta``/``metaAndAssetCtxs``) are read by :func:`load_hyperliquid`, from
:mod:`adljax.studies.hyperliquid`, into a book, a venue and start marks.
"""
from __future__ import annotations

import csv
from pathlib import Path
from typing import Sequence

import numpy as np

from ..model.book import Book
from ..model.errors import InputError
from ..model.position_book import PositionBook
from ..model.rows import TRADERS

REQUIRED = ("account", "market", "size", "entry", "cash")
OPTIONAL = ("isolated",)
_TRUE = {"true", "t", "1", "yes", "y"}
_FALSE = {"false", "f", "0", "no", "n", ""}


# ---- reading -------------------------------------------------------------------
def _kind(path: Path) -> str:
    ext = path.suffix.lower()
    if ext == ".csv":
        return "csv"
    if ext in (".parquet", ".pq"):
        return "parquet"
    raise InputError(f"path: {path.name!r} has an unknown extension {ext!r}; use .csv or .parquet")


def _read_table(path: Path):
    import pyarrow as pa

    kind = _kind(path)
    if not path.is_file():
        raise InputError(f"path: no book file at {str(path)!r}")
    try:
        if kind == "csv":
            import pyarrow.csv as pcsv

            cols = REQUIRED + OPTIONAL
            return pcsv.read_csv(path, convert_options=pcsv.ConvertOptions(
                column_types={c: pa.string() for c in cols}, strings_can_be_null=False))
        import pyarrow.parquet as pq

        return pq.read_table(path)
    except (pa.ArrowInvalid, OSError) as e:
        raise InputError(f"{path.name}: cannot read the {kind} book file: {e}") from None


def _texts(table, name: str) -> list[str]:
    return ["" if v is None else str(v).strip() for v in table.column(name).to_pylist()]


def _numbers(table, name: str, where: str) -> tuple[np.ndarray, np.ndarray]:
    """A numeric column as (float64 values with NaN where empty, empty mask)."""
    import pyarrow as pa

    col = table.column(name)
    if pa.types.is_integer(col.type) or pa.types.is_floating(col.type) or pa.types.is_decimal(col.type):
        empty = np.asarray(col.is_null().to_numpy(zero_copy_only=False), dtype=bool)
        values = np.asarray(col.cast(pa.float64()).fill_null(np.nan).to_numpy(zero_copy_only=False), dtype=np.float64)
        return values, empty
    if not (pa.types.is_string(col.type) or pa.types.is_large_string(col.type)):
        raise InputError(f"{where}: column {name!r} must hold numbers, found type {col.type}")
    texts = _texts(table, name)
    empty = np.array([t == "" for t in texts], dtype=bool)
    values = np.full(len(texts), np.nan)
    for i, t in enumerate(texts):
        if t:
            try:
                values[i] = float(t)
            except ValueError:
                raise InputError(f"{where}: column {name!r}: {t!r} is not a number at row {i + 1}") from None
    return values, empty


def _flags(table, name: str, where: str) -> np.ndarray:
    import pyarrow as pa

    n = table.num_rows
    if name not in table.column_names:
        return np.zeros(n, dtype=bool)
    col = table.column(name)
    if pa.types.is_boolean(col.type) or pa.types.is_integer(col.type):
        vals = col.to_pylist()
        bad = [i for i, v in enumerate(vals) if v not in (None, True, False, 0, 1)]
        if bad:
            raise InputError(f"{where}: column 'isolated': {vals[bad[0]]!r} at row {bad[0] + 1} is not true or false")
        return np.array([bool(v) for v in vals], dtype=bool)
    out = np.zeros(n, dtype=bool)
    for i, t in enumerate(_texts(table, name)):
        t = t.lower()
        if t in _TRUE:
            out[i] = True
        elif t not in _FALSE:
            raise InputError(f"{where}: column 'isolated': {t!r} at row {i + 1} is not true or false "
                             "(use true/false, 1/0 or yes/no)")
    return out


def _fmt(x: float) -> str:
    return f"{x:,.6g}"


def load_book(path, *, markets: Sequence[str], vault_cash=0.0, insurance_fund=0.0, max_leverage=None, mark=None,
              balance: bool = False, dtype=None, positions: bool = False) -> Book | PositionBook:
    """Read a book from a CSV or Parquet file (chosen by the extension) in the format above.

    Args:
      path: ``.csv``, ``.parquet`` or ``.pq`` file.
      markets: the A market names, in the book's market order.
      vault_cash: USD in the backstop vault (≥ 0).
      insurance_fund: USD in the insurance fund (≥ 0).
      max_leverage: [A] or scalar, optional. When given, every row's
        positions must fit: ``Σ_a |size_a|·mark_a / max_leverage_a ≤`` the
        row's account value at ``mark`` (a single position: leverage
        ``notional / account value ≤ max_leverage``).
      mark: [A] prices for that check (default: each position's own entry
        price, where the account value is its cash).
      balance: when the positions are not zero-sum, give the remainder to the
        liquidity-provider row instead of raising: per market
        ``lp_size = −Σ size``, at ``lp_entry`` = the traders' size-weighted
        mean entry, and ``lp_cash = Σ_a |lp_size_a|·lp_entry_a`` (the LP row
        fully collateralised at 1×: it is never liquidated, and its account
        value stays ≥ 0 until a price moves 100 % against it).
      dtype: float dtype of the book (default: JAX's default float). For
        float32 a book need only be zero-sum to float32 rounding (relative
        1e-6, e.g. a float32 book saved by :func:`save_book`): the last short
        row of each market then takes the remainder, as in
        :func:`~adljax.generate.population`.
      positions: return a :class:`~adljax.model.position_book.PositionBook`
        (:meth:`~adljax.model.position_book.PositionBook.from_positions`: one
        entry a file line with a position, the same rows, cash, LP remainder
        and checks) instead of a dense Book. No [N, A] array is built, so
        memory grows with the lines, not with accounts × markets; its
        ``to_book()`` equals the dense load.
    Returns:
      The :class:`~adljax.model.book.Book` (``positions=True``: the
      :class:`~adljax.model.position_book.PositionBook`).
    Raises:
      InputError: naming the column or argument and the problem: a missing
        column, an unknown market (listing the known ones), an empty
        account, a non-number, NaN or infinite value, an entry ≤ 0 on an
        open position, cash values of one account that disagree or are all
        missing, an isolated line without cash or position, the same
        (account, market) twice, a leverage above the market's maximum
        (naming the account, market and leverage), or a book that is not
        zero-sum (the net size of each market, in units) without ``balance``.
    """
    path = Path(path)
    where = path.name
    names = [str(m) for m in markets] if not isinstance(markets, str) else None
    if not names:
        raise InputError(f"markets: expected a list of market names, got {markets!r}")
    if len(set(names)) != len(names):
        raise InputError(f"markets: names repeat: {names}")
    a = len(names)
    index = {m: j for j, m in enumerate(names)}
    table = _read_table(path)
    missing = [c for c in REQUIRED if c not in table.column_names]
    if missing:
        raise InputError(f"{where}: missing column{'s' if len(missing) > 1 else ''} "
                         f"{', '.join(repr(c) for c in missing)} (the file has {table.column_names}; a book file "
                         f"needs {', '.join(REQUIRED)}, and optionally isolated)")
    n_lines = table.num_rows
    if n_lines == 0:
        raise InputError(f"{where}: the book file has no rows")

    account = _texts(table, "account")
    market = _texts(table, "market")
    size, size_empty = _numbers(table, "size", where)
    entry, entry_empty = _numbers(table, "entry", where)
    cash, cash_empty = _numbers(table, "cash", where)
    iso = _flags(table, "isolated", where)

    def at(i: int) -> str:
        return f"row {i + 1} (account {account[i]!r}{', market ' + repr(market[i]) if market[i] else ''})"

    for i in range(n_lines):
        if not account[i]:
            raise InputError(f"{where}: column 'account': empty at row {i + 1}")
        if size_empty[i]:
            raise InputError(f"{where}: column 'size': empty at {at(i)}")
    for name, v, empty in (("size", size, size_empty), ("entry", entry, entry_empty), ("cash", cash, cash_empty)):
        bad = np.flatnonzero(~empty & ~np.isfinite(v))
        if bad.size:
            i = int(bad[0])
            raise InputError(f"{where}: column {name!r}: {'NaN' if np.isnan(v[i]) else 'infinite value'} at {at(i)}")
    open_ = size != 0
    for i in range(n_lines):
        if market[i] and market[i] not in index:
            raise InputError(f"{where}: column 'market': unknown market {market[i]!r} at row {i + 1}; "
                             f"the known markets are {', '.join(names)}")
        if not market[i] and open_[i]:
            raise InputError(f"{where}: column 'market': empty at {at(i)}, which has size {float(size[i])!r}")
        if open_[i] and (entry_empty[i] or entry[i] <= 0):
            raise InputError(f"{where}: column 'entry': must be > 0 on an open position; {at(i)} has size "
                             f"{float(size[i])!r} and entry {'(empty)' if entry_empty[i] else repr(float(entry[i]))}")
        if iso[i] and not open_[i]:
            raise InputError(f"{where}: column 'isolated': {at(i)} is isolated but holds no position (size 0)")
        if iso[i] and cash_empty[i]:
            raise InputError(f"{where}: column 'cash': {at(i)} is isolated and needs its own margin in cash")

    # Rows of the book, in order of first appearance: (account, None) for cross, (account, line) for isolated.
    units: dict[tuple, int] = {}
    row_of = np.empty(n_lines, dtype=np.int64)
    seen: dict[tuple[str, str], int] = {}
    for i in range(n_lines):
        if market[i]:
            k = (account[i], market[i])
            if k in seen:
                raise InputError(f"{where}: account {account[i]!r} has two lines for market {market[i]!r} "
                                 f"(rows {seen[k] + 1} and {i + 1}); give one line per (account, market)")
            seen[k] = i
        unit = (account[i], i) if iso[i] else (account[i], None)
        row_of[i] = units.setdefault(unit, len(units))
    n = len(units)
    row_cash = np.full(n, np.nan)
    cash_line = np.full(n, -1)
    for i in range(n_lines):
        if cash_empty[i]:
            continue
        r = row_of[i]
        if cash_line[r] < 0:
            row_cash[r], cash_line[r] = cash[i], i
        elif not np.isclose(cash[i], row_cash[r], rtol=1e-12, atol=0.0):
            raise InputError(f"{where}: column 'cash': account {account[i]!r} has different cash on its lines: "
                             f"{float(row_cash[r])!r} (row {cash_line[r] + 1}) and {float(cash[i])!r} (row {i + 1}); "
                             "cash is the account's collateral: repeat the same value on each of its lines, or give "
                             "it once")
    if np.any(cash_line < 0):
        r = int(np.flatnonzero(cash_line < 0)[0])
        acc = next(u[0] for u, k in units.items() if k == r)
        raise InputError(f"{where}: column 'cash': account {acc!r} has no cash on any of its lines")
    # The book's positions as lists [P], one a line with an open position, in row order (within a row by
    # market, as the dense grid's sums run): every check below works on them, and only the dense Book is
    # scattered into [N, A] at the end.
    lines = np.flatnonzero(open_)
    pos_row = row_of[lines]
    pos_col = np.array([index[market[i]] for i in lines], dtype=np.int64)
    order = np.lexsort((pos_col, pos_row))
    pos_row, pos_col, lines = pos_row[order], pos_col[order], lines[order]
    pos_size, pos_entry = size[lines].copy(), entry[lines].copy()
    row_iso = np.zeros(n, dtype=bool)
    row_iso[row_of[iso]] = True
    row_name = [u[0] for u in units]

    if max_leverage is not None:
        _check_leverage(where, row_name, row_cash, pos_row, pos_col, pos_size, pos_entry, names, max_leverage, mark)

    per_market = lambda w: np.bincount(pos_col, weights=w, minlength=a)       # [A]
    net = per_market(pos_size)
    scale = per_market(np.abs(pos_size))
    import jax.numpy as jnp

    single = jnp.dtype(dtype or jnp.result_type(float)) == jnp.float32
    off = np.abs(net) > (1e-6 if single else 1e-9) * np.maximum(scale, 1.0)
    lp = {}
    if single and not off.any():
        # A float32 book is zero-sum to float32 rounding only (its sizes were rounded one by one):
        # as in generate.population, the last short (by row) of each market takes the float64 remainder.
        for j in np.flatnonzero(net):
            shorts = np.flatnonzero((pos_col == j) & (pos_size < 0))
            if shorts.size:
                pos_size[shorts[-1]] -= pos_size[pos_col == j].sum()
        net = per_market(pos_size)
    if balance:
        w = per_market(np.abs(pos_size))
        lp_entry = np.where(w > 0, per_market(np.abs(pos_size) * pos_entry) / np.where(w > 0, w, 1.0), 0.0)
        lp_size = -net
        lp = dict(lp_size=lp_size, lp_entry=lp_entry, lp_cash=float(np.sum(np.abs(lp_size) * lp_entry)))
    elif np.any(off):
        parts = ", ".join(f"{names[j]} {net[j]:+.10g} units" for j in np.flatnonzero(off))
        raise InputError(f"{where}: column 'size': the book is not zero-sum; net size (longs − shorts) per market: "
                         f"{parts}. Every long needs a short: add the missing positions, or pass balance=True to "
                         "give the remainder to the liquidity-provider row")
    return _build(row_cash, pos_row, pos_col, pos_size, pos_entry, a, positions=positions, isolated=row_iso,
                  vault_cash=vault_cash, insurance_fund=insurance_fund, dtype=dtype, **lp)


def _build(cash, pos_row, pos_col, pos_size, pos_entry, n_markets: int, *, positions: bool,
           **kw) -> Book | PositionBook:
    """The book of rows with ``cash`` [N] and positions at (``pos_row``, ``pos_col``) [P]: a
    :class:`PositionBook` built from the lists (``positions``), or a dense :class:`Book` ([N, A] scattered
    from them). ``kw``: :meth:`Book.from_accounts`'s keywords (isolated, vault, fund, LP, dtype)."""
    if positions:
        return PositionBook.from_positions(pos_row, pos_col, pos_size, pos_entry, cash, n_markets=n_markets, **kw)
    size = np.zeros((cash.shape[0], n_markets))
    entry = np.zeros((cash.shape[0], n_markets))
    size[pos_row, pos_col] = pos_size
    entry[pos_row, pos_col] = pos_entry
    return Book.from_accounts(cash, size, entry, **kw)


def row_names(path) -> list[str]:
    """The book file's row labels, in :func:`load_book`'s row order: an account's name for its cross row, and
    ``name [MARKET iso]`` for an isolated position's row."""
    path = Path(path)
    table = _read_table(path)
    account, market = _texts(table, "account"), _texts(table, "market")
    iso = _flags(table, "isolated", path.name)
    units: dict[tuple, str] = {}
    for i in range(table.num_rows):
        unit = (account[i], i) if iso[i] else (account[i], None)
        if unit not in units:
            units[unit] = f"{account[i]} [{market[i]} iso]" if iso[i] else account[i]
    return list(units.values())


def _check_leverage(where, row_name, cash, pos_row, pos_col, size, entry, names, max_leverage, mark) -> None:
    """Every row's positions within the markets' maximum leverage; positions as lists [P] sorted by row."""
    n, a = cash.shape[0], len(names)
    lev_max = np.asarray(max_leverage, dtype=np.float64)
    if lev_max.ndim > 1 or (lev_max.ndim == 1 and lev_max.shape[0] not in (1, a)):
        raise InputError(f"max_leverage: expected a scalar or [{a}] (one per market), got shape {lev_max.shape}")
    lev_max = np.broadcast_to(lev_max, (a,))
    if not np.all(np.isfinite(lev_max) & (lev_max > 0)):
        raise InputError(f"max_leverage: must be finite and > 0, got {lev_max.tolist()}")
    if mark is None:
        m = entry                                   # the lists hold open positions only
    else:
        mk = np.asarray(mark, dtype=np.float64)
        if mk.shape != (a,) or not np.all(np.isfinite(mk) & (mk > 0)):
            raise InputError(f"mark: expected [{a}] prices > 0 (one per market), got {mk.tolist()}")
        m = mk[pos_col]
    ntl = np.abs(size) * m                                                       # [P]
    av = cash + np.bincount(pos_row, weights=size * (m - entry), minlength=n)    # [N]
    need = np.bincount(pos_row, weights=ntl / lev_max[pos_col], minlength=n)
    bad = (need > 0) & (need > av + 1e-9 * np.maximum(np.abs(av), need))
    if not bad.any():
        return
    r = int(np.flatnonzero(bad)[0])
    mine = pos_row == r
    held = pos_col[mine]                            # its markets, in market order
    total = float(ntl[mine].sum())
    lev = f"{total / av[r]:.4g}×" if av[r] > 0 else "infinite (account value ≤ 0)"
    at = "entry prices" if mark is None else "the given mark"
    others = f" ({int(bad.sum()) - 1} more rows are over too)" if bad.sum() > 1 else ""
    if held.size == 1:
        j = int(held[0])
        raise InputError(f"max_leverage: account {row_name[r]!r} market {names[j]} has leverage {lev} "
                         f"(notional {_fmt(total)} USD on account value {_fmt(av[r])} USD at {at}), above the "
                         f"market's maximum {lev_max[j]:g}×{others}")
    mk = ", ".join(f"{names[j]} {lev_max[j]:g}×" for j in held)
    raise InputError(f"max_leverage: account {row_name[r]!r} markets {', '.join(names[j] for j in held)} has leverage "
                     f"{lev} (notional {_fmt(total)} USD on account value {_fmt(av[r])} USD at {at}); at the markets' "
                     f"maximum leverage ({mk}) its positions need {_fmt(need[r])} USD of margin{others}")


# ---- writing -------------------------------------------------------------------
def save_book(book: Book, path, markets: Sequence[str]) -> None:
    """Write a single-scenario book's traders to ``path`` (.csv or .parquet) in the format above.

    Every book row becomes an account named by its row number (``"0"``,
    ``"1"``, ...): a cross row is one line per open position (its cash
    repeated) or one cash-only line, an isolated row one line marked
    ``isolated``. :func:`load_book` with the same ``markets``, ``vault_cash``
    and ``insurance_fund`` gives the book back (floats are written in full
    precision). The vault and liquidity-provider rows are not in the format:
    a book in which they hold positions raises :class:`InputError`.
    """
    path = Path(path)
    kind = _kind(path)
    names = [str(m) for m in markets] if not isinstance(markets, str) else []
    if np.ndim(book.all_cash) != 1:
        raise InputError(f"book: save one scenario's book at a time, got a batch with shape "
                         f"{tuple(np.shape(book.all_cash))}")
    if len(names) != book.n_markets:
        raise InputError(f"markets: the book has {book.n_markets} markets, got {len(names)} names {names}")
    for nm in ("vault_size", "lp_size"):
        if np.any(np.asarray(getattr(book, nm)) != 0):
            raise InputError(f"book.{nm}: the {'vault' if nm[0] == 'v' else 'liquidity-provider'} row holds positions, "
                             "which a book file cannot carry (it lists traders only)")
    cash = np.asarray(book.cash, dtype=np.float64)
    size = np.asarray(book.size, dtype=np.float64)
    entry = np.asarray(book.entry, dtype=np.float64)
    iso = np.asarray(book.isolated)[TRADERS]
    rows = []
    for r in range(cash.shape[0]):
        held = np.flatnonzero(size[r] != 0)
        if held.size == 0:
            rows.append((str(r), "", 0.0, 0.0, float(cash[r]), bool(iso[r])))
        for j in held:
            rows.append((str(r), names[j], float(size[r, j]), float(entry[r, j]), float(cash[r]), bool(iso[r])))
    cols = REQUIRED + OPTIONAL
    path.parent.mkdir(parents=True, exist_ok=True)
    if kind == "csv":
        with open(path, "w", newline="") as f:
            w = csv.writer(f)
            w.writerow(cols)
            for acc, mk, s, e, c, i in rows:
                w.writerow([acc, mk, repr(s), repr(e), repr(c), "true" if i else "false"])
        return
    import pyarrow as pa
    import pyarrow.parquet as pq

    data = list(zip(*rows)) if rows else [[] for _ in cols]
    types = [pa.string(), pa.string(), pa.float64(), pa.float64(), pa.float64(), pa.bool_()]
    pq.write_table(pa.table({c: pa.array(list(v), type=t) for c, v, t in zip(cols, data, types)}), path)


from .hyperliquid import load_hyperliquid  # noqa: E402,F401  (re-export: adljax.bookfile.load_hyperliquid)
