"""``adljax inspect``: a book file's ADL queue and the price moves that liquidate its largest accounts."""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from .common import UsageError, comma_list, enable_x64, int_at_least, money, stdout_console

INSPECT_EPILOG = """\
example:
  adljax inspect scenarios/books/example.csv --markets BTC,ETH --prices 100000,4000
  adljax inspect book.parquet --markets BTC,ETH --prices 95000,3600 --venue bitmex --move each
  adljax inspect --hyperliquid states/ meta.json        (Hyperliquid's own clearinghouseState and meta files)

Price moves are solved from AV = cash + Σ size·(m − entry) and MR = Σ req(|size|·m)
(docs/rules.md): req is the market's tiered maintenance requirement, N·r_k − d_k (or N·r_k
for a venue whose tier_mode is "step"), tier k the last whose lower bound is ≤ N; a market
with one rate mm needs N·mm. --move together (default) scales every market's price by the
same (1 + x); --move each moves one market at a time, the others staying put. The moves
are exact across tier bounds (MR is piecewise linear in x)."""


def add_parser(sub, fmt) -> None:
    """The ``inspect`` command's arguments."""
    p = sub.add_parser("inspect", help="ADL queue and liquidation distances of a book file",
                       description="Print each market's ADL queue (in fifths) for the largest positions of a book "
                                   "file, and the price moves that would make its largest accounts liquidatable, "
                                   "reach the backstop, and go bankrupt.",
                       epilog=INSPECT_EPILOG, formatter_class=fmt)
    p.add_argument("book", metavar="BOOK.csv", nargs="?", help="a book file (.csv or .parquet: account,market,size,"
                   "entry,cash[,isolated])")
    p.add_argument("--hyperliquid", nargs=2, metavar=("STATES", "META"), help="instead of a book file: Hyperliquid "
                   "clearinghouseState files (a .json, a folder of them, or a .jsonl) and a meta or metaAndAssetCtxs "
                   ".json; the prices are its marks and each market's margin tiers its tables "
                   "(adljax.studies.hyperliquid)")
    p.add_argument("--markets", type=comma_list(str, "market names"), help="market names in the file, e.g. BTC,ETH "
                   "(required with a book file; with --hyperliquid, default: the coins the states hold)")
    p.add_argument("--prices", type=comma_list(float, "prices"), help="current mark prices, one per market, e.g. "
                   "100000,4000 (required with a book file)")
    p.add_argument("--venue", default="hyperliquid", help="venue preset for margins and ADL ranking "
                   "(default hyperliquid)")
    p.add_argument("--max-leverage", type=comma_list(float, "numbers"), metavar="L[,L...]",
                   help="max leverage per market (sets maintenance = 1/(2·L), one tier; default: the venue "
                   "preset's margin)")
    p.add_argument("--move", choices=("together", "each"), default="together",
                   help="together (default): all markets move by the same %%; each: one market at a time")
    p.add_argument("--top", type=int_at_least(1), default=10, help="how many of the largest accounts (default 10)")
    p.add_argument("--balance", action="store_true", help="a book that is not zero-sum: give the rest to the "
                   "liquidity-provider row")
    p.add_argument("--positions", action="store_true", help="load the book as a list of positions "
                   "(adljax.PositionBook, load_book(positions=True)); the same report")
    p.set_defaults(func=main)


def _pct(x: float) -> str:
    if np.isnan(x):
        return "never"
    if x == 0:
        return "now"
    return f"{x * 100:+.1f} %"


def margin_text(markets, rates, bounds, tier_mode: str) -> str:
    """Each market's maintenance margin: its first rate, and its number of tiers when it has several,
    e.g. ``BTC 1.25% (2 tiers)``."""
    parts = []
    for a, m in enumerate(markets):
        k = 1 + int(np.sum(np.diff(bounds[a]) > 0))          # padding tiers repeat the last bound
        tiers = "" if k == 1 else f" ({k} tiers{', step' if tier_mode == 'step' else ''})"
        parts.append(f"{m} {rates[a][0]:.2%}{tiers}")
    return ", ".join(parts)


def _book_file(args, inspect_book):
    """A book file with --markets and --prices."""
    if args.book is None:
        raise UsageError("give a book file (BOOK.csv) or --hyperliquid STATES META")
    for flag, value in (("--markets", args.markets), ("--prices", args.prices)):
        if value is None:
            raise UsageError(f"{flag}: required with a book file")
    path = Path(args.book)
    if path.is_dir():
        raise UsageError(f"{path}: is a folder, not a book file")
    if not path.exists():
        raise UsageError(f"{path}: no such book file")
    if not os.access(path, os.R_OK):
        raise UsageError(f"{path}: cannot read the book file (permission denied)")
    if len(set(args.markets)) != len(args.markets):
        raise UsageError(f"--markets: names repeat: {', '.join(args.markets)}")
    if len(args.prices) != len(args.markets):
        raise UsageError(f"--prices: expected one price per market ({len(args.markets)}: {', '.join(args.markets)}), "
                         f"got {len(args.prices)}")
    if args.max_leverage is not None and len(args.max_leverage) not in (1, len(args.markets)):
        raise UsageError(f"--max-leverage: expected one value or one per market ({len(args.markets)}), "
                         f"got {len(args.max_leverage)}")
    return inspect_book(path, args.markets, args.prices, venue_name=args.venue, max_leverage=args.max_leverage,
                        balance=args.balance, mode=args.move, top=args.top, positions=args.positions), path.name


def _hyperliquid(args, inspect_hyperliquid):
    """``--hyperliquid STATES META``: the book, prices and margin tables from Hyperliquid's files."""
    if args.book is not None:
        raise UsageError(f"{args.book}: give a book file or --hyperliquid STATES META, not both")
    for flag, value, why in (("--prices", args.prices, "the prices are the meta's marks"),
                             ("--max-leverage", args.max_leverage, "the margin tables come from the meta"),
                             ("--balance", args.balance or None, "the liquidity-provider row always takes the rest")):
        if value is not None:
            raise UsageError(f"{flag}: not with --hyperliquid ({why})")
    states, meta = (Path(p) for p in args.hyperliquid)
    for what, p in (("states", states), ("meta", meta)):
        if not p.exists():
            raise UsageError(f"--hyperliquid: {p}: no such {what} file or folder")
    if args.markets is not None and len(set(args.markets)) != len(args.markets):
        raise UsageError(f"--markets: names repeat: {', '.join(args.markets)}")
    r = inspect_hyperliquid(states, meta, markets=args.markets, venue_name=args.venue, mode=args.move, top=args.top,
                            positions=args.positions)
    return r, states.name


def main(args) -> int:
    from rich.table import Table

    from ..analysis.inspection import inspect_book, inspect_hyperliquid

    enable_x64()
    if args.hyperliquid is not None:
        r, title = _hyperliquid(args, inspect_hyperliquid)
    else:
        r, title = _book_file(args, inspect_book)
    console = stdout_console()
    names, mk, venue = r["names"], r["markets"], r["venue"]
    lev = lambda i: (f"{r['notional'][i] / r['av'][i]:.1f}×" if r["av"][i] > 0 else "∞")
    console.print(f"{title}: {len(names)} accounts · {venue.name} rules · maintenance "
                  + margin_text(mk, r["rates"], r["bounds"], r["tier_mode"])
                  + " · at " + ", ".join(f"{m} ${p:,.6g}" for m, p in zip(mk, r["prices"])))
    lights = lambda f: "■" * (6 - f) + "□" * (f - 1)
    for a, m in enumerate(mk):
        held = [i for i in np.argsort(-r["notional_by_market"][:, a], kind="stable")[:args.top]
                if r["size"][i, a] != 0]
        table = Table(title=f"{m}: ADL queue of the {len(held)} largest positions (fifth 1 = first to be deleveraged; "
                            f"ranking: {venue.rules.adl_score} score)")
        for col in ("account", "side", "size", "notional", "leverage", "account value", "ADL fifth", ""):
            table.add_column(col, justify="left" if col in ("account", "side", "") else "right")
        for i in held:
            s = r["size"][i, a]
            f = int(r["fifths"][i, a])
            table.add_row(names[i], "long" if s > 0 else "short", f"{s:,.6g}", money(r["notional_by_market"][i, a]),
                          lev(i), money(r["av"][i]), f"{f}/5", lights(f))
        console.print(table)
    has_backstop = venue.rules.backstop == "vault"
    mv = r["moves"]
    if args.move == "together":
        table = Table(title="Price move that makes the largest accounts liquidatable, reach the backstop, go bankrupt "
                            "— all markets moving together by the same %")
        cols = ["account", "notional", "leverage", "AV", "MR", "liquidatable (AV < MR)"]
        if has_backstop:
            cols.append(f"backstop (AV < {venue.backstop_ratio:.3g}·MR)")
        cols.append("bankrupt (AV < 0)")
        for c in cols:
            table.add_column(c, justify="left" if c == "account" else "right")
        for i in r["largest"]:
            cells = [names[i], money(r["notional"][i]), lev(i), money(r["av"][i]), money(r["mr"][i]),
                     _pct(mv["liquidation"][i])]
            if has_backstop:
                cells.append(_pct(mv["backstop"][i]))
            cells.append(_pct(mv["bankruptcy"][i]))
            table.add_row(*cells)
        console.print(table)
    else:
        for a, m in enumerate(mk):
            table = Table(title=f"Price move of {m} alone (the other markets stay) that makes the largest accounts "
                                "liquidatable, reach the backstop, go bankrupt")
            cols = ["account", f"{m} size", "AV", "MR", "liquidatable"] + (["backstop"] if has_backstop else []) \
                + ["bankrupt"]
            for c in cols:
                table.add_column(c, justify="left" if c == "account" else "right")
            for i in r["largest"]:
                cells = [names[i], f"{r['size'][i, a]:,.6g}", money(r["av"][i]), money(r["mr"][i]),
                         _pct(mv["liquidation"][i, a])]
                if has_backstop:
                    cells.append(_pct(mv["backstop"][i, a]))
                cells.append(_pct(mv["bankruptcy"][i, a]))
                table.add_row(*cells)
            console.print(table)
    console.print("moves are % of today's price (− = down); 'now': already past it; 'never': no such move "
                  "reaches it (or prices would have to reach 0). Solved from AV and the tiered MR at mark "
                  "(docs/rules.md), without fills, fees or impact.")
    return 0
