"""Hyperliquid's own formats: a book from ``clearinghouseState`` responses, a venue from ``meta``.

Hyperliquid's info endpoint (``POST /info``) answers ``{"type": "clearinghouseState", "user": ...}`` with one
user's perpetuals account and ``{"type": "meta"}`` / ``{"type": "metaAndAssetCtxs"}`` with the markets.
:func:`load_hyperliquid` reads files of those responses, as the endpoint returns them, into a
:class:`~adljax.model.book.Book`, a Hyperliquid :class:`~adljax.model.venue.Venue` with each market's margin
table, and the start marks.

``states``, one of:

- a ``.json`` file: one user's ``clearinghouseState``; the user is the file's stem (``0xab12....json``);
- a folder of such ``.json`` files, read in the order of their names (a ``meta`` or ``metaAndAssetCtxs``
  file in the folder is recognised and skipped, so the meta may sit with the states);
- a ``.jsonl`` (or ``.ndjson``) file, one ``{"user": "0x...", "state": {clearinghouseState}}`` record a
  line, read in line order (blank lines skipped).

The fields read from a state (numbers are decimal strings, or JSON numbers)::

    {"marginSummary": {"accountValue": "93.322406", ...},             # every position, cross and isolated
     "crossMarginSummary": {"accountValue": "88.35458", "totalRawUsd": "300.0", ...},
     "assetPositions": [{"type": "oneWay", "position": {
         "coin": "BTC", "szi": "-0.00785", "entryPx": "26951.0", "positionValue": "211.64542",
         "marginUsed": "10.582271", "leverage": {"type": "cross", "value": 20}}},
        {"type": "oneWay", "position": {"coin": "ETH", "szi": "0.0335", "entryPx": "2986.3",
         "positionValue": "100.02765", "marginUsed": "4.967826",
         "leverage": {"type": "isolated", "value": 20, "rawUsd": "-95.059824"}}}]}

``szi`` is the signed size (+ long), ``positionValue`` is ``|szi|·mark`` at the moment the state was taken
(so ``positionValue/|szi|`` is that moment's mark), ``entryPx`` the average entry price. Hyperliquid keeps
each margin unit as a USD balance ``rawUsd`` of which the positions' notional is already taken out: a unit's
value is ``rawUsd + Σ szi·mark`` (cross: ``crossMarginSummary.totalRawUsd``; isolated: the position's
``leverage.rawUsd``, and its ``marginUsed`` is that value). A position listed with ``szi`` 0 is closed and
skipped. The other fields are not read.

Rows of the book, user by user: the user's cross account (always, if only its free USDC), then each
isolated position as a row of its own (``isolated=True``). A row's cash is the balance at the entry
prices, ``cash = rawUsd + Σ szi·entryPx``, so that ``cash + Σ szi·(mark − entryPx) = rawUsd + Σ szi·mark``
is the unit's value at any mark, whatever rounding ``entryPx`` carries. :func:`row_names` names the rows:
the user for its cross row, ``user/COIN`` for an isolated one.
``load_hyperliquid(..., positions=True)`` gives the same book as a
:class:`~adljax.model.position_book.PositionBook`, built from the positions as the states list them (no dense
users × markets array).

``meta``: a ``meta`` response ``{"universe": [...], "marginTables": [...]}`` or a ``metaAndAssetCtxs`` one,
``[meta, [assetCtx, ...]]`` (one context per universe entry, in its order). Read from each universe entry:
``name``, ``maxLeverage`` and ``marginTableId`` (optional); from ``marginTables``, ``[[id, {"description":
..., "marginTiers": [{"lowerBound": "0.0", "maxLeverage": 40}, ...]}], ...]``; from each asset context
``markPx``, ``oraclePx``, ``openInterest`` (base units, one side) and ``funding`` (each optional). A coin's
margin table is its ``marginTableId``'s in ``marginTables``; an id under 50 that is not listed is one tier
at the coin's ``maxLeverage`` (in the 2025-11-12 mainnet response every one of the 220 coins on such an id
has ``marginTableId == maxLeverage``, and third-party SDKs read ids under 50 as "a single tier at that
leverage"); a missing ``marginTableId`` (older responses) is that one tier too; an unlisted id of 50 or more
is an error. A tier's maintenance rate is ``1/(2·maxLeverage)`` (:func:`adljax.model.tiers.from_leverage`).

Markets are the universe's coins in its order, or the ``markets`` given (a subset, in their order). A
position in a coin left out is closed into its row's cash at that coin's mark (``cash += szi·(mark −
entryPx)``): the row keeps its value but not that position's margin requirement; an isolated row left with
no position becomes a cash-only row. Marks: ``markPx``, else ``oraclePx``, else the coin's size-weighted
mean entry over the states.

Checks (each an :class:`~adljax.model.errors.InputError` naming the file, user, coin and field): a malformed
file, a missing field, a number that is not one (or not finite), a coin not in the universe, a coin twice
in one state, a nonpositive ``entryPx`` or negative ``positionValue`` on an open position, and the values
recomputed from the positions against the state's own: each isolated position's ``rawUsd + szi·mark``
against its ``marginUsed``, the cross account's ``totalRawUsd + Σ szi·mark`` against
``crossMarginSummary.accountValue``, and their sum against ``marginSummary.accountValue`` (marks from
``positionValue``, so a state and a meta taken at different moments still agree). They must agree within
:data:`RTOL` (1e-6) of the unit's gross money (``|rawUsd| + Σ positionValue``) plus :data:`ATOL` (1e-5
USD): Hyperliquid writes USD amounts with up to 6 decimals (micro-USDC), so a sum of the fields is off by
a few 1e-6 USD (ATOL); the relative part allows for amounts written to fewer digits and for float64 sums,
and a millionth of the gross money is still far below a dropped position, a flipped sign or a wrong
balance of any consequence. (The example above: cross ``300 − 211.64542 = 88.35458``; isolated
``−95.059824 + 100.02765 = 4.967826``, its ``marginUsed``; together ``93.322406``.)
With ``complete=True`` the states are taken to be every account of the venue, and each coin's long and
short sizes must each sum to the context's ``openInterest`` (within :data:`RTOL` of it: its strings carry
float noise such as ``"1652902.9400000002"``); a subset of the users cannot match, so the check is off by
default.

The states are a subset of the venue's users, so the book is not zero-sum by itself: the liquidity-provider
row takes the remainder as :func:`~adljax.bookfile.load_book` ``(balance=True)`` gives it (per market
``lp_size = −Σ size`` at the traders' size-weighted mean entry, ``lp_cash = Σ |lp_size|·lp_entry``).
Not modelled: spot balances and a unified or portfolio-margin account's collateral held in spot (only the
perp clearinghouse's own ``rawUsd`` counts), and pending funding.
"""
from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from ..model import tiers as _tiers
from ..model import venues
from ..model.book import Book
from ..model.position_book import PositionBook
from ..model.errors import InputError
from ..model.venue import Venue

#: Relative tolerance of the account-value and open-interest checks (see the module docstring).
RTOL = 1e-6
#: Absolute tolerance, USD, of the account-value checks: a few micro-USDC of rounding in each field.
ATOL = 1e-5
#: A ``marginTableId`` under this that ``marginTables`` does not list is one tier at the coin's maxLeverage.
FLAT_TABLES_BELOW = 50
#: Extensions of a JSON-lines states file.
JSONL = (".jsonl", ".ndjson")


@dataclasses.dataclass(frozen=True)
class HyperliquidMeta:
    """What :func:`read_meta` takes from a ``meta`` or ``metaAndAssetCtxs`` file, one entry per universe coin.

    Attributes:
      source: the file's name, for messages.
      names: the universe's coin names, in its order.
      max_leverage: [U] each coin's ``maxLeverage``.
      leverage_tables: per coin, its ``(lower_bound_usd, max_leverage)`` tiers.
      mark_px, oracle_px, open_interest, funding: [U] from the asset contexts, NaN where not given (a
        ``meta`` file has none). ``funding`` is the context's rate as given (Hyperliquid's hourly rate).
    """

    source: str
    names: tuple[str, ...]
    max_leverage: np.ndarray
    leverage_tables: tuple[tuple[tuple[float, float], ...], ...]
    mark_px: np.ndarray
    oracle_px: np.ndarray
    open_interest: np.ndarray
    funding: np.ndarray

    def margin_tiers(self, markets: Sequence[str] | None = None) -> tuple[tuple[tuple[float, float], ...], ...]:
        """One ``(lower_bound_usd, maintenance_rate)`` table per market (default: every coin, in order)."""
        idx = self.indices(markets)
        return tuple(_tiers.from_leverage(self.leverage_tables[i]) for i in idx)

    def indices(self, markets: Sequence[str] | None = None) -> list[int]:
        """Universe index of each of ``markets`` (default: all), refusing an unknown or repeated name."""
        if markets is None:
            return list(range(len(self.names)))
        if isinstance(markets, str) or not all(isinstance(m, str) for m in markets):
            raise InputError(f"markets: expected a list of coin names, got {markets!r}")
        names = list(markets)
        if not names:
            raise InputError("markets: expected at least one coin name, got an empty list")
        if len(set(names)) != len(names):
            raise InputError(f"markets: names repeat: {names}")
        index = {c: i for i, c in enumerate(self.names)}
        unknown = [m for m in names if m not in index]
        if unknown:
            shown = ", ".join(self.names[:20]) + (f", ... ({len(self.names)} coins)" if len(self.names) > 20 else "")
            raise InputError(f"markets: {unknown[0]!r} is not a coin of {self.source}'s universe (it has {shown})")
        return [index[m] for m in names]


# ---- JSON values --------------------------------------------------------------------------------------------
def _load_json(path: Path) -> Any:
    try:
        with open(path, "rb") as f:
            return json.load(f)
    except json.JSONDecodeError as err:
        raise InputError(f"{path.name}: not valid JSON ({err})") from None
    except UnicodeDecodeError as err:
        raise InputError(f"{path.name}: not a JSON text file ({err})") from None
    except OSError as err:
        raise InputError(f"{path.name}: cannot read the file ({err.strerror or err})") from None


def _number(d: Any, key: str, where: str, field: str) -> float:
    """``d[key]`` as a finite float: a JSON number or a decimal string (Hyperliquid writes most numbers as text)."""
    if not isinstance(d, dict):
        raise InputError(f"{where}: field {field.rpartition('.')[0] or field}: expected a JSON object, "
                         f"got {type(d).__name__}")
    if d.get(key) is None:
        raise InputError(f"{where}: field {field}: missing")
    v = d[key]
    if isinstance(v, bool) or not isinstance(v, (int, float, str)):
        raise InputError(f"{where}: field {field}: {v!r} is not a number")
    try:
        x = float(v.strip()) if isinstance(v, str) else float(v)
    except ValueError:
        raise InputError(f"{where}: field {field}: {v!r} is not a number") from None
    if not math.isfinite(x):
        raise InputError(f"{where}: field {field}: {v!r} is not a finite number")
    return x


def _optional_number(d: dict, key: str, where: str, field: str) -> float:
    """``d[key]`` as a float, NaN where the key is missing or null."""
    return math.nan if d.get(key) is None else _number(d, key, where, field)


def _object(d: Any, key: str, where: str, field: str) -> dict:
    if not isinstance(d, dict):
        raise InputError(f"{where}: field {field.rpartition('.')[0] or field}: expected a JSON object, "
                         f"got {type(d).__name__}")
    v = d.get(key)
    if v is None:
        raise InputError(f"{where}: field {field}: missing")
    if not isinstance(v, dict):
        raise InputError(f"{where}: field {field}: expected a JSON object, got {type(v).__name__}")
    return v


def _text(d: dict, key: str, where: str, field: str) -> str:
    v = d.get(key)
    if v is None:
        raise InputError(f"{where}: field {field}: missing")
    if not isinstance(v, str) or not v.strip():
        raise InputError(f"{where}: field {field}: expected a non-empty string, got {v!r}")
    return v


# ---- meta ---------------------------------------------------------------------------------------------------
def _is_meta(doc: Any) -> bool:
    """Whether a parsed JSON document is a ``meta`` or ``metaAndAssetCtxs`` response."""
    return (isinstance(doc, dict) and "universe" in doc) or (
        isinstance(doc, list) and len(doc) == 2 and isinstance(doc[0], dict) and "universe" in doc[0])


def read_meta(meta) -> HyperliquidMeta:
    """Read a ``meta`` or ``metaAndAssetCtxs`` JSON file (see the module docstring).

    Raises:
      InputError: naming the file, the coin and the field: a missing or malformed field, a repeated coin,
        a margin table that is not one (bounds not rising from 0, leverage rising), an unlisted
        ``marginTableId`` of 50 or more, a number of asset contexts other than the universe's.
    """
    if isinstance(meta, HyperliquidMeta):
        return meta
    path = Path(meta)
    src = path.name
    if not path.is_file():
        raise InputError(f"meta: {'is a folder, not a file' if path.is_dir() else 'no such file'}: {str(path)!r}")
    doc = _load_json(path)
    ctxs = None
    if isinstance(doc, list) and len(doc) == 2 and isinstance(doc[0], dict) and isinstance(doc[1], list):
        doc, ctxs = doc
    if not isinstance(doc, dict) or "universe" not in doc:
        raise InputError(f"{src}: expected a Hyperliquid meta response {{\"universe\": [...], \"marginTables\": "
                         f"[...]}} or a metaAndAssetCtxs one [meta, [assetCtx, ...]]; found no 'universe'")
    universe = doc["universe"]
    if not isinstance(universe, list) or not universe:
        raise InputError(f"{src}: field universe: expected a non-empty list of coins, got {universe!r:.80}")
    tables = _margin_tables(doc.get("marginTables", []), src)
    if ctxs is not None and len(ctxs) != len(universe):
        raise InputError(f"{src}: {len(ctxs)} asset contexts for {len(universe)} universe coins; "
                         "metaAndAssetCtxs gives one context per coin, in the universe's order")
    u = len(universe)
    names, lev, lev_tables = [], np.empty(u), []
    ctx_cols = {k: np.full(u, np.nan) for k in ("markPx", "oraclePx", "openInterest", "funding")}
    seen: dict[str, int] = {}
    for i, entry in enumerate(universe):
        where = f"{src}: universe[{i}]"
        if not isinstance(entry, dict):
            raise InputError(f"{where}: expected a JSON object, got {entry!r:.80}")
        name = _text(entry, "name", where, f"universe[{i}].name")
        where = f"{src}: coin {name!r}"
        if name in seen:
            raise InputError(f"{where}: field universe[{i}].name: the coin is also universe[{seen[name]}]")
        seen[name] = i
        lev[i] = _number(entry, "maxLeverage", where, f"universe[{i}].maxLeverage")
        if lev[i] < 1:
            raise InputError(f"{where}: field universe[{i}].maxLeverage: must be >= 1, got {entry['maxLeverage']!r}")
        table_id = entry.get("marginTableId")
        if table_id is not None and (isinstance(table_id, bool) or not isinstance(table_id, int)):
            raise InputError(f"{where}: field universe[{i}].marginTableId: expected an integer, got {table_id!r}")
        if table_id in tables:
            pairs = tables[table_id]
        elif table_id is None or table_id < FLAT_TABLES_BELOW:
            pairs = ((0.0, float(lev[i])),)
        else:
            raise InputError(f"{where}: field universe[{i}].marginTableId: {table_id} is not in marginTables "
                             f"(listed: {', '.join(map(str, tables)) or 'none'}); an id of {FLAT_TABLES_BELOW} or "
                             "more names a listed table")
        names.append(name)
        lev_tables.append(pairs)
        if ctxs is not None:
            ctx = ctxs[i]
            if not isinstance(ctx, dict):
                raise InputError(f"{where}: asset context {i}: expected a JSON object, got {ctx!r:.80}")
            for k, col in ctx_cols.items():
                col[i] = _optional_number(ctx, k, where, f"assetCtxs[{i}].{k}")
    return HyperliquidMeta(src, tuple(names), lev, tuple(lev_tables), ctx_cols["markPx"], ctx_cols["oraclePx"],
                           ctx_cols["openInterest"], ctx_cols["funding"])


def _margin_tables(value, src: str) -> dict[int, tuple[tuple[float, float], ...]]:
    """``marginTables`` as ``{id: ((lower_bound, max_leverage), ...)}``, each table checked."""
    if not isinstance(value, list):
        raise InputError(f"{src}: field marginTables: expected a list of [id, table] pairs, got {value!r:.80}")
    out: dict[int, tuple[tuple[float, float], ...]] = {}
    for k, item in enumerate(value):
        field = f"marginTables[{k}]"
        if not (isinstance(item, list) and len(item) == 2 and isinstance(item[0], int)
                and not isinstance(item[0], bool) and isinstance(item[1], dict)):
            raise InputError(f"{src}: field {field}: expected [id, {{\"description\": ..., \"marginTiers\": "
                             f"[...]}}], got {item!r:.80}")
        table_id, table = item
        where = f"{src}: margin table {table_id}"
        tiers = table.get("marginTiers")
        if not isinstance(tiers, list) or not tiers:
            raise InputError(f"{where}: field {field}[1].marginTiers: expected a non-empty list of tiers, "
                             f"got {tiers!r:.80}")
        pairs = []
        for j, tier in enumerate(tiers):
            f = f"{field}[1].marginTiers[{j}]"
            bound = _number(tier, "lowerBound", where, f + ".lowerBound")
            lev = _number(tier, "maxLeverage", where, f + ".maxLeverage")
            if lev < 1:
                raise InputError(f"{where}: field {f}.maxLeverage: must be >= 1, got {tier['maxLeverage']!r}")
            pairs.append((bound, lev))
        try:
            _tiers.table("marginTiers", _tiers.from_leverage(pairs))
        except InputError as err:
            raise InputError(f"{where}: field {field}[1].{err} (as maintenance rates 1/(2·maxLeverage); "
                             f"the table's (lowerBound, maxLeverage) tiers are {pairs})") from None
        if table_id in out:
            raise InputError(f"{where}: field {field}: the id is listed twice")
        out[table_id] = tuple(pairs)
    return out


def venue_from_meta(meta, markets: Sequence[str] | None = None, venue: Venue | None = None) -> Venue:
    """``venue`` (default :func:`adljax.venues.hyperliquid`) with the meta's margin table and max leverage per market.

    Args:
      meta: a ``meta``/``metaAndAssetCtxs`` file or a :class:`HyperliquidMeta`.
      markets: the book's coins, in its market order (default: the universe's).
      venue: the venue whose ``margin_tiers`` and ``max_leverage`` to replace.
    """
    m = read_meta(meta)
    idx = m.indices(markets)
    venue = venues.hyperliquid() if venue is None else venue
    return venue.replace(margin_tiers=m.margin_tiers(markets),
                         max_leverage=tuple(float(m.max_leverage[i]) for i in idx))


# ---- states -------------------------------------------------------------------------------------------------
@dataclasses.dataclass
class _Position:
    coin: str
    field: str             # "assetPositions[i].position", for messages
    size: float
    entry: float


@dataclasses.dataclass
class _Account:
    user: str
    where: str             # the file (and line) it came from
    cross_cash: float
    cross: list[_Position]
    isolated: list[tuple[_Position, float]]     # (position, its row's cash)


def _states(states) -> list[_Account]:
    """Every user's account from the ``states`` path, in the order described in the module docstring."""
    path = Path(states)
    accounts: list[_Account] = []
    if path.is_dir():
        files = sorted(p for p in path.iterdir() if p.is_file() and p.suffix.lower() == ".json")
        for f in files:
            doc = _load_json(f)
            if not _is_meta(doc):
                accounts.append(_account(doc, f.stem, f.name))
        if not accounts:
            raise InputError(f"states: no clearinghouseState .json files in the folder {str(path)!r}")
    elif not path.exists():
        raise InputError(f"states: no such file or folder: {str(path)!r}")
    elif path.suffix.lower() in JSONL:
        try:
            lines = path.read_text().splitlines()
        except (OSError, UnicodeDecodeError) as err:
            raise InputError(f"{path.name}: cannot read the file ({err})") from None
        for k, line in enumerate(lines, start=1):
            if not line.strip():
                continue
            where = f"{path.name} line {k}"
            try:
                rec = json.loads(line)
            except json.JSONDecodeError as err:
                raise InputError(f"{where}: not valid JSON ({err})") from None
            if not isinstance(rec, dict) or set(rec) - {"user", "state"} or "state" not in rec:
                raise InputError(f"{where}: expected a record {{\"user\": \"0x...\", \"state\": "
                                 f"{{clearinghouseState}}}}, got {line.strip()[:80]!r}")
            user = _text(rec, "user", where, "user")
            accounts.append(_account(rec["state"], user, where))
        if not accounts:
            raise InputError(f"{path.name}: no records (one {{\"user\": ..., \"state\": ...}} a line)")
    elif path.suffix.lower() == ".json":
        accounts.append(_account(_load_json(path), path.stem, path.name))
    else:
        raise InputError(f"states: {path.name!r} has an unknown extension {path.suffix!r}; give a .json file "
                         f"(one user's clearinghouseState), a {' or '.join(JSONL)} file or a folder of .json files")
    first: dict[str, str] = {}
    for acc in accounts:
        if acc.user in first:
            raise InputError(f"{acc.where}: user {acc.user!r} is also in {first[acc.user]}; give each user once")
        first[acc.user] = acc.where
    return accounts


def _tolerance(gross: float) -> float:
    return RTOL * gross + ATOL


def _account(state: Any, user: str, src: str) -> _Account:
    """One user's rows from its ``clearinghouseState``, with the account-value checks."""
    where = f"{src}: user {user!r}"
    if not isinstance(state, dict):
        raise InputError(f"{where}: expected a clearinghouseState JSON object (marginSummary, "
                         f"crossMarginSummary, assetPositions), got {type(state).__name__}")
    summary = _object(state, "marginSummary", where, "marginSummary")
    cross_summary = _object(state, "crossMarginSummary", where, "crossMarginSummary")
    account_value = _number(summary, "accountValue", where, "marginSummary.accountValue")
    cross_value = _number(cross_summary, "accountValue", where, "crossMarginSummary.accountValue")
    cross_raw = _number(cross_summary, "totalRawUsd", where, "crossMarginSummary.totalRawUsd")
    listed = state.get("assetPositions")
    if listed is None:
        raise InputError(f"{where}: field assetPositions: missing")
    if not isinstance(listed, list):
        raise InputError(f"{where}: field assetPositions: expected a list, got {type(listed).__name__}")
    cross: list[_Position] = []
    isolated: list[tuple[_Position, float]] = []
    cross_signed_value = 0.0            # Σ szi·mark over the cross positions
    cross_gross = abs(cross_raw)        # |totalRawUsd| + Σ positionValue over the cross positions
    gross = abs(cross_raw)              # the same over every position, with each isolated |rawUsd|
    total_iso = 0.0
    seen: dict[str, str] = {}
    for i, item in enumerate(listed):
        field = f"assetPositions[{i}].position"
        pos = _object(item, "position", where, field)
        coin = _text(pos, "coin", where, field + ".coin")
        at = f"{where}, coin {coin!r}"
        if coin in seen:
            raise InputError(f"{at}: field {field}.coin: the coin is also {seen[coin]}; a user holds one "
                             "position per coin")
        seen[coin] = field
        size = _number(pos, "szi", at, field + ".szi")
        if size == 0:
            continue                    # a closed position, still listed
        entry = _number(pos, "entryPx", at, field + ".entryPx")
        if entry <= 0:
            raise InputError(f"{at}: field {field}.entryPx: must be > 0 on an open position (szi {pos['szi']!r}), "
                             f"got {pos['entryPx']!r}")
        value = _number(pos, "positionValue", at, field + ".positionValue")
        if value < 0:
            raise InputError(f"{at}: field {field}.positionValue: |szi|·mark is >= 0, got {pos['positionValue']!r}")
        signed_value = math.copysign(value, size)
        lev = _object(pos, "leverage", at, field + ".leverage")
        kind = lev.get("type")
        p = _Position(coin, field, size, entry)
        if kind == "cross":
            cross.append(p)
            cross_signed_value += signed_value
            cross_gross += value
            gross += value
        elif kind == "isolated":
            raw = _number(lev, "rawUsd", at, field + ".leverage.rawUsd")
            used = _number(pos, "marginUsed", at, field + ".marginUsed")
            got = raw + signed_value
            tol = _tolerance(abs(raw) + value)
            if abs(got - used) > tol:
                raise InputError(
                    f"{at}: field {field}.marginUsed: {pos['marginUsed']!r} USD, but the isolated position's value "
                    f"from its fields is leverage.rawUsd + szi·mark = {raw:.10g} {'+' if size > 0 else '−'} "
                    f"{value:.10g} = {got:.10g} USD (mark = positionValue/|szi|), {abs(got - used):.3g} USD off, "
                    f"more than the tolerance {tol:.3g} USD")
            isolated.append((p, raw + size * entry))
            total_iso += got
            gross += abs(raw) + value
        elif kind is None:
            raise InputError(f"{at}: field {field}.leverage.type: missing")
        else:
            raise InputError(f"{at}: field {field}.leverage.type: {kind!r} is neither 'cross' nor 'isolated'")
    got = cross_raw + cross_signed_value
    tol = _tolerance(cross_gross)
    coins = ", ".join(p.coin for p in cross) or "none"
    if abs(got - cross_value) > tol:
        raise InputError(
            f"{where}, coins {coins}: field crossMarginSummary.accountValue: {cross_summary['accountValue']!r} USD, "
            f"but the cross account's value from its fields is totalRawUsd + Σ szi·mark = {cross_raw:.10g} + "
            f"{cross_signed_value:.10g} = {got:.10g} USD (mark = positionValue/|szi|), {abs(got - cross_value):.3g} "
            f"USD off, more than the tolerance {tol:.3g} USD")
    got += total_iso
    tol = _tolerance(gross)
    if abs(got - account_value) > tol:
        all_coins = ", ".join([p.coin for p in cross] + [p.coin for p, _ in isolated]) or "none"
        raise InputError(
            f"{where}, coins {all_coins}: field marginSummary.accountValue: {summary['accountValue']!r} USD, but the "
            f"cross account and the isolated positions are worth {got:.10g} USD together (crossMarginSummary."
            f"totalRawUsd + each isolated leverage.rawUsd + Σ szi·mark), {abs(got - account_value):.3g} USD off, "
            f"more than the tolerance {tol:.3g} USD")
    cross_cash = cross_raw + sum(p.size * p.entry for p in cross)
    return _Account(user, src, cross_cash, cross, isolated)


# ---- the book -----------------------------------------------------------------------------------------------
def row_names(states) -> list[str]:
    """The book's row labels, in :func:`load_hyperliquid`'s row order: the user (its cross row), then
    ``user/COIN`` for each of its isolated positions."""
    names = []
    for acc in _states(states):
        names.append(acc.user)
        names.extend(f"{acc.user}/{p.coin}" for p, _ in acc.isolated)
    return names


def load_hyperliquid(states, meta, *, markets: Sequence[str] | None = None, vault_cash=0.0, insurance_fund=0.0,
                     complete: bool = False, dtype=None,
                     positions: bool = False) -> tuple[Book | PositionBook, Venue, np.ndarray]:
    """Read Hyperliquid ``clearinghouseState`` files and a ``meta`` file into a book, a venue and start marks.

    See the module docstring for the formats, the rows and their cash, and the checks.

    Args:
      states: a user's ``.json`` state, a folder of them, or a ``.jsonl`` file of ``{"user", "state"}``
        records.
      meta: a ``meta`` or ``metaAndAssetCtxs`` ``.json`` file.
      markets: coins of the universe to make the book's markets, in this order (default: every coin of
        the universe, in its order). A position in another coin is closed into its row's cash at its mark.
      vault_cash: USD in the backstop vault (>= 0).
      insurance_fund: USD in the insurance fund (>= 0).
      complete: the states are every account of the venue: check each coin's summed long and short sizes
        against ``openInterest``.
      dtype: float dtype of the book (default: JAX's default float).
      positions: give the book as a :class:`~adljax.model.position_book.PositionBook`, built from the
        states' position lists (:meth:`~adljax.model.position_book.PositionBook.from_positions`) without any
        dense [N, A] array; its ``to_book()`` equals the dense book.
    Returns:
      ``(book, venue, marks)``: the :class:`~adljax.model.book.Book` (``positions=True``: the
      :class:`~adljax.model.position_book.PositionBook`; rows as :func:`row_names` names them;
      the liquidity-provider row holding the remainder of every market), :func:`adljax.venues.hyperliquid`
      with the meta's margin table and ``maxLeverage`` per market, and the marks [A] (float64): ``markPx``,
      else ``oraclePx``, else the coin's size-weighted mean entry.
    Raises:
      InputError: naming the file, user, coin and field (module docstring), or a market with no mark.
    """
    m = read_meta(meta)
    accounts = _states(states)
    index = {c: i for i, c in enumerate(m.names)}
    sel = m.indices(markets)
    names = [m.names[i] for i in sel]
    col = np.full(len(m.names), -1)
    col[sel] = np.arange(len(sel))

    # Rows and positions, over the whole universe.
    cash, iso, pos_row, pos_coin, pos_size, pos_entry = [], [], [], [], [], []

    def add(acc: _Account, p: _Position, row: int) -> None:
        if p.coin not in index:
            shown = ", ".join(m.names[:20]) + (f", ... ({len(m.names)} coins)" if len(m.names) > 20 else "")
            raise InputError(f"{acc.where}: user {acc.user!r}, coin {p.coin!r}: field {p.field}.coin: not a coin "
                             f"of {m.source}'s universe ({shown})")
        pos_row.append(row)
        pos_coin.append(index[p.coin])
        pos_size.append(p.size)
        pos_entry.append(p.entry)

    for acc in accounts:
        row = len(cash)
        cash.append(acc.cross_cash)
        iso.append(False)
        for p in acc.cross:
            add(acc, p, row)
        for p, c in acc.isolated:
            cash.append(c)
            iso.append(True)
            add(acc, p, len(cash) - 1)
    cash = np.asarray(cash, dtype=np.float64)
    iso = np.asarray(iso, dtype=bool)
    pos_row = np.asarray(pos_row, dtype=np.int64)
    pos_coin = np.asarray(pos_coin, dtype=np.int64)
    pos_size = np.asarray(pos_size, dtype=np.float64)
    pos_entry = np.asarray(pos_entry, dtype=np.float64)
    u = len(m.names)

    if complete:
        _check_open_interest(m, pos_coin, pos_size)

    # Marks: markPx, else oraclePx, else the size-weighted mean entry.
    weight = np.bincount(pos_coin, weights=np.abs(pos_size), minlength=u)
    mean_entry = np.bincount(pos_coin, weights=np.abs(pos_size) * pos_entry, minlength=u)
    mean_entry = np.where(weight > 0, mean_entry / np.where(weight > 0, weight, 1.0), np.nan)
    mark = np.where(m.mark_px > 0, m.mark_px, np.where(m.oracle_px > 0, m.oracle_px, mean_entry))
    missing = [i for i in sel if not mark[i] > 0]
    if missing:
        raise InputError(f"{m.source}: coin {m.names[missing[0]]!r}: no mark: no assetCtx markPx or oraclePx "
                         "(a meta file has no asset contexts; metaAndAssetCtxs has) and no position in the states "
                         "to take a mean entry from; leave the coin out of markets or give metaAndAssetCtxs")

    # Positions in coins left out: closed into their rows' cash at the mark.
    out = col[pos_coin] < 0
    np.add.at(cash, pos_row[out], pos_size[out] * (mark[pos_coin[out]] - pos_entry[out]))
    keep = ~out
    n, a = len(cash), len(sel)
    rows, cols, size, entry = pos_row[keep], col[pos_coin[keep]], pos_size[keep], pos_entry[keep]   # [P]
    held = np.zeros(n, dtype=bool)
    held[rows[size != 0]] = True
    iso &= held

    # The remainder of each market to the liquidity providers, as load_book(balance=True) gives it.
    per_market = lambda w: np.bincount(cols, weights=w, minlength=a)        # [A], summed in row order
    net = per_market(size)
    w = per_market(np.abs(size))
    lp_entry = np.where(w > 0, per_market(np.abs(size) * entry) / np.where(w > 0, w, 1.0), 0.0)
    # A net size within float64 rounding of the decimal sizes' sum is zero.
    lp_size = np.where(np.abs(net) > 1e-12 * np.maximum(w, 1.0), -net, 0.0)
    lp_cash = float(np.sum(np.abs(lp_size) * lp_entry))
    from .bookfile import _build

    book = _build(cash, rows, cols, size, entry, a, positions=positions, isolated=iso, vault_cash=vault_cash,
                  insurance_fund=insurance_fund, lp_size=lp_size, lp_entry=lp_entry, lp_cash=lp_cash, dtype=dtype)
    venue = venue_from_meta(m, names)
    return book, venue, mark[sel].astype(np.float64)


def _check_open_interest(m: HyperliquidMeta, pos_coin: np.ndarray, pos_size: np.ndarray) -> None:
    """Each coin's summed long and short sizes against the asset context's ``openInterest`` (complete=True)."""
    u = len(m.names)
    longs = np.bincount(pos_coin, weights=np.maximum(pos_size, 0.0), minlength=u)
    shorts = np.bincount(pos_coin, weights=np.maximum(-pos_size, 0.0), minlength=u)
    for i in np.flatnonzero(np.isfinite(m.open_interest)):
        oi = m.open_interest[i]
        tol = RTOL * max(oi, longs[i], shorts[i])
        if abs(longs[i] - oi) > tol or abs(shorts[i] - oi) > tol:
            raise InputError(f"{m.source}: coin {m.names[i]!r}: field assetCtxs[{i}].openInterest: {oi:.10g}, but the "
                             f"states hold {longs[i]:.10g} long and {shorts[i]:.10g} short (complete=True says they "
                             "are every account of the venue; leave it off for a subset of users)")
