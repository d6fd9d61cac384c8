"""``adljax inspect``: a book's ADL queue and how far prices must move to liquidate its largest accounts.

Distances are solved in closed form from the account-value formulas of
``docs/rules.md`` (no simulation). With every price of the moving markets
scaled by ``(1 + x)``, a moving position of size ``s`` at mark ``m`` has
notional ``n·(1 + x)``, ``n = |s|·m``, and::

    AV(x) = AV₀ + x·D          D = Σ_moving s·m        (net dollar exposure)
    MR(x) = MR_still + Σ_moving req(n·(1 + x))

where ``req`` is the market's tiered requirement (:mod:`adljax.model.tiers`):
``N·r_k − d_k`` (``"deduction"``) or ``N·r_k`` (``"step"``), tier ``k`` the
last whose lower bound ``b_k ≤ N``. A threshold ``AV < c·MR`` (``c = 1``:
liquidatable, ``c = backstop_ratio``: the vault takes over, ``c = 0``:
bankrupt) is crossed where ``g(x) = AV(x) − c·MR(x)`` first falls below 0.

Between breakpoints, the moves ``x = b_k/n − 1`` at which a moving position's
notional reaches a tier bound, every tier is fixed and ``g`` is linear::

    g(x) = α + β·x     α = AV₀ − c·MR_still − c·Σ_moving (n·R − δ·Δ)
                       β = D − c·Σ_moving n·R

with ``R = r₀ + Σ_{k on} (r_k − r_{k−1})`` the rate of the position's tier,
``Δ = Σ_{k on} b_k·(r_k − r_{k−1})`` its deduction ``d_k``, and ``δ = 1`` in
deduction mode, 0 in step mode. :func:`moves` walks these segments from
``x = 0`` upwards and downwards and takes, in each direction, the first
crossing: the root ``−α/β`` inside a segment, or, in step mode, a bound where
the requirement's jump alone takes ``g`` below 0 (a tier's bound belongs to
the tier above it, so the jump happens at the bound itself). The answer is
the crossing nearest 0 (a hedged row's rising requirement may cross on
both sides). In deduction mode ``g`` is continuous and, as the rates rise,
concave in ``x``. With one tier per market there is one segment and the
answer is ``x* = (c·MR₀ − AV₀)/(D − c·K)``, ``K = Σ_moving n·mm``. A
threshold that needs a price ≤ 0 (``x* ≤ −1``), or that no move reaches, is
never crossed. Fills, fees, impact and the waterfall's order are not
modelled: this is the distance at the given marks, as the venue's margin
check sees it.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np

from ..model.errors import InputError
from ..model.tiers import TIER_MODES, requirement

MOVE_MODES = ("together", "each")


def move_to(av0, mr0, d, k, c: float) -> np.ndarray:
    """Price move ``x`` (fraction, e.g. −0.08) at which ``AV < c·MR`` starts, with one rate per market.

    Args (each [N]): ``av0``, ``mr0`` at the current marks; ``d = Σ size·m`` and
    ``k = Σ |size|·m·mm`` over the markets that move. Returns 0 if already past; NaN if never.
    """
    av0, mr0, d, k = (np.asarray(v, dtype=np.float64) for v in (av0, mr0, d, k))
    g0 = av0 - c * mr0                 # AV − c·MR now
    b = d - c * k                      # its slope in x
    with np.errstate(divide="ignore", invalid="ignore"):
        x = np.where(b != 0, -g0 / b, np.nan)
    x = np.where(x <= -1.0, np.nan, x)               # would need a price ≤ 0
    x = np.where(np.abs(b) <= 1e-12 * np.maximum(np.abs(d), np.abs(c * k)), np.nan, x)
    return np.where(g0 < 0, 0.0, x)


def _walk(g0, beta0, s0, d, x, da, db, ds, c: float, up: bool) -> np.ndarray:
    """The first crossing of ``g < 0`` walking from ``x = 0`` in one direction; NaN where there is none.

    Args:
      g0, beta0, s0, d [N]: ``g(0)``, the slope ``β`` and ``S = Σ_moving n·R`` of the segment at 0, and ``D``.
      x [N, P]: the breakpoints met in this direction (padded with ``+∞`` up, ``−∞`` down).
      da, db, ds [N, P]: the change of ``α``, ``β`` and ``S`` when the walk passes each breakpoint.
      up: walk upwards (``x > 0``) or downwards.
    """
    order = np.argsort(x if up else -x, axis=1, kind="stable")
    order = order[:, :int(np.max(np.sum(np.isfinite(x), axis=1), initial=0))]    # the padding sorts last
    x, da, db, ds = (np.take_along_axis(v, order, axis=1) for v in (x, da, db, ds))
    acc = lambda v0, dv: np.concatenate([v0[:, None], v0[:, None] + np.cumsum(dv, axis=1)], axis=1)
    alpha, beta, s = acc(g0, da), acc(beta0, db), acc(s0, ds)             # [N, P + 1], one line a segment
    near = np.concatenate([np.zeros_like(g0)[:, None], x], axis=1)       # each segment's end nearer 0
    far = np.concatenate([x, np.full_like(g0, np.inf if up else -1.0)[:, None]], axis=1)
    if not up:
        far = np.maximum(far, -1.0)                  # a price ≤ 0 ends the walk down
    active = np.isfinite(near) & (near > -1.0)
    beta = np.where(np.abs(beta) <= 1e-12 * np.maximum(np.abs(d)[:, None], c * s), 0.0, beta)
    at = alpha + beta * np.where(active, near, 0.0)   # g at the near end (in step mode: after the jump)
    with np.errstate(divide="ignore", invalid="ignore"):
        r = -alpha / beta
    jump = active & (at < 0)
    if up:
        root = active & ~jump & (beta < 0) & (r < far)
        cand = np.where(jump, near, np.where(root, np.maximum(r, near), np.nan))
    else:
        root = active & ~jump & (beta > 0) & (r > far)
        cand = np.where(jump, near, np.where(root, np.minimum(r, near), np.nan))
    first = np.argmax(~np.isnan(cand), axis=1)
    return cand[np.arange(len(cand)), first]


def _crossing(g0, d, nr0, xb, on0, nstep, bstep, delta: float, c: float) -> np.ndarray:
    """Move to the crossing of ``AV < c·MR`` nearest 0, [N]; 0 if already past; NaN if never.

    Args:
      g0 [N]: ``AV − c·MR`` now. d [N]: ``D``. nr0 [N]: ``Σ_moving n·r₀``.
      xb, on0, nstep, bstep [N, P]: every tier bound above the first of the moving positions: its move
        ``b_k/n − 1`` (NaN where it does not count), whether the position is at or above it now,
        ``n·(r_k − r_{k−1})`` and ``b_k·(r_k − r_{k−1})``.
      delta: 1 in deduction mode, 0 in step mode.
    """
    counts = ~np.isnan(xb)
    on0 = on0 & counts
    s0 = nr0 + np.sum(np.where(on0, nstep, 0.0), axis=1)
    beta0 = d - c * s0
    # passing a bound upwards turns its tier on: g gains −c·(n·Δr·(1 + x) − δ·b·Δr); downwards turns it off
    da, db, ds = -c * (nstep - delta * bstep), -c * nstep, nstep
    up = _walk(g0, beta0, s0, d, np.where(counts & ~on0, xb, np.inf), da, db, ds, c, up=True)
    down = _walk(g0, beta0, s0, d, np.where(on0, xb, -np.inf), -da, -db, -ds, c, up=False)
    x = np.where(np.isnan(up) | (~np.isnan(down) & (-down <= up)), down, up)
    return np.where(g0 < 0, 0.0, x)


def _tables(mm, bounds, rates, n_markets: int) -> tuple[np.ndarray, np.ndarray]:
    """``(bounds [A, K], rates [A, K])`` from ``mm`` [A] (one tier each) or from the tables."""
    if mm is not None and (bounds is not None or rates is not None):
        raise InputError("mm: give mm (one rate per market) or bounds and rates (tiered), not both")
    if mm is not None:
        rates = np.broadcast_to(np.asarray(mm, dtype=np.float64), (n_markets,))[:, None]
        return np.zeros_like(rates), rates
    if bounds is None or rates is None:
        raise InputError("bounds: give mm (one rate per market) or both bounds and rates [markets, tiers]")
    bounds, rates = np.asarray(bounds, dtype=np.float64), np.asarray(rates, dtype=np.float64)
    if bounds.shape != rates.shape or bounds.ndim != 2 or bounds.shape[0] != n_markets or bounds.shape[1] < 1:
        raise InputError(f"bounds: bounds and rates must both be [markets, tiers] = [{n_markets}, K], got "
                         f"{bounds.shape} and {rates.shape}")
    if np.any(bounds[:, 0] != 0) or np.any(np.diff(bounds, axis=1) < 0) or np.any(np.diff(rates, axis=1) < 0):
        raise InputError("bounds: each market's first bound must be 0, and bounds and rates must not fall "
                         "(adljax.model.tiers.padded)")
    return bounds, rates


def moves(cash, size, entry, mark, mm=None, backstop_ratio: float | None = None, *, bounds=None, rates=None,
          tier_mode: str = "deduction", mode: str = "together") -> dict[str, np.ndarray]:
    """Price moves to each threshold (``liquidation``, ``backstop``, ``bankruptcy``) for every row.

    Args:
      cash [N], size [N, A], entry [N, A]: the rows.
      mark [A]: current prices.
      mm [A]: one maintenance fraction per market (one tier each); or, instead,
      bounds, rates [A, K]: every market's margin table (:func:`adljax.model.tiers.padded`,
        ``Venue.tiers``), applied by ``tier_mode`` (``"deduction"`` or ``"step"``).
      backstop_ratio: the vault takes over below ``backstop_ratio·MR``.
      mode: ``"together"`` — every market moves by the same percentage (a
        broad move): ``{threshold: [N]}``; ``"each"`` — one market moves, the
        others stay: ``{threshold: [N, A]}``.
    Returns:
      Fractions (−0.1 = prices 10 % lower), the crossing nearest 0 where moves
      both up and down reach the threshold; 0 where the row is already past
      it; NaN where no move of that kind reaches it, where it needs a price
      ≤ 0, or where the row has no position.
    """
    if backstop_ratio is None:
        raise InputError("backstop_ratio: required (the vault takes over below backstop_ratio·MR)")
    if mode not in MOVE_MODES:
        raise InputError(f"mode: 'together' or 'each', got {mode!r}")
    if tier_mode not in TIER_MODES:
        raise InputError(f"tier_mode: {tier_mode!r} is not one of {', '.join(map(repr, TIER_MODES))}")
    cash, size, entry = (np.asarray(v, dtype=np.float64) for v in (cash, size, entry))
    mark = np.asarray(mark, dtype=np.float64)
    bounds, rates = _tables(mm, bounds, rates, size.shape[1])
    delta = 1.0 if tier_mode == "deduction" else 0.0
    ntl = np.abs(size) * mark                                          # n [N, A]
    av0 = cash + np.sum(size * (mark - entry), axis=1)
    req0 = requirement(ntl, bounds, rates, tier_mode)                  # [N, A], the published formula
    dollars = size * mark                                              # [N, A]
    step = np.diff(rates, axis=1)                                      # [A, K − 1]
    upper = bounds[:, 1:]
    with np.errstate(divide="ignore", invalid="ignore"):
        xk = np.where((ntl[..., None] > 0) & (step > 0), upper / ntl[..., None] - 1.0, np.nan)   # [N, A, K − 1]
    on0 = ntl[..., None] >= upper
    nstep, bstep = ntl[..., None] * step, np.broadcast_to(upper * step, xk.shape)
    nr0 = ntl * rates[:, 0]
    has = np.any(size != 0, axis=1)
    n, a_count = size.shape
    cs = {"liquidation": 1.0, "backstop": float(backstop_ratio), "bankruptcy": 0.0}
    out = {}
    for name, c in cs.items():
        g0 = av0 - c * req0.sum(axis=1)
        if mode == "together":
            flat = lambda v: v.reshape(n, -1)
            x = _crossing(g0, dollars.sum(axis=1), nr0.sum(axis=1), flat(xk), flat(on0), flat(nstep), flat(bstep),
                          delta, c)
            out[name] = np.where(has, x, np.nan)
        else:
            x = np.stack([_crossing(g0, dollars[:, a], nr0[:, a], xk[:, a], on0[:, a], nstep[:, a], bstep[:, a],
                                    delta, c) for a in range(a_count)], axis=1)
            out[name] = np.where(has[:, None], x, np.nan)
    return out


def inspect_book(path, markets: Sequence[str], prices: Sequence[float], *, venue_name: str = "hyperliquid",
                 max_leverage=None, balance: bool = False, mode: str = "together", top: int = 10,
                 positions: bool = False) -> dict:
    """Everything ``adljax inspect`` prints, as plain data.

    Returns a dict with ``names`` [N], ``av``, ``notional``, ``mr`` [N] (the
    tiered requirement of the venue's ``margin_tiers``), ``size`` [N, A],
    ``fifths`` [N, A] (:func:`adljax.adl_queue`), ``moves`` (see
    :func:`moves`), ``largest`` (row indices by notional, at most ``top``),
    ``mm`` [A] (each market's first-tier rate), ``bounds`` and ``rates``
    [A, K] (``Venue.tiers``), ``tier_mode``, and the venue. With the
    ``hyperliquid`` preset and no ``max_leverage``, markets that are all coins
    with a published Hyperliquid table get each its own
    (``venues.hyperliquid(markets=...)``); otherwise the preset's tables.
    ``positions``: load the file as a :class:`~adljax.model.position_book.PositionBook`
    (``load_book(..., positions=True)``); the result is the same (:func:`inspect_loaded`).
    """
    from ..model import margin_tables, venues
    from ..studies.bookfile import load_book, row_names

    if venue_name not in venues.PRESETS:
        raise InputError(f"--venue: unknown venue {venue_name!r} (known: {', '.join(venues.PRESETS)})")
    a = len(markets)
    prices = np.asarray(prices, dtype=np.float64)
    if prices.shape != (a,):
        raise InputError(f"--prices: expected one price per market ({a}: {', '.join(markets)}), got {prices.size}")
    if not np.all(np.isfinite(prices) & (prices > 0)):
        raise InputError(f"--prices: must be > 0, got {', '.join(f'{p:g}' for p in prices)}")
    over = {} if max_leverage is None else {"max_leverage": np.asarray(max_leverage, dtype=np.float64)}
    if venue_name == "hyperliquid" and not over and all(m in margin_tables.HYPERLIQUID for m in markets):
        over = {"markets": list(markets)}     # each coin's published table, where Hyperliquid publishes them all
    venue = venues.PRESETS[venue_name](**over)
    venue.validate()
    book = load_book(path, markets=list(markets), balance=balance, dtype=np.float64, positions=positions)
    return inspect_loaded(book, row_names(path), markets, prices, venue, mode=mode, top=top)


def inspect_loaded(book, names: Sequence[str], markets: Sequence[str], prices, venue, *, mode: str = "together",
                   top: int = 10) -> dict:
    """:func:`inspect_book` for a book already loaded (an :class:`adljax.Book` or
    :class:`adljax.PositionBook` of ``len(markets)`` markets) and a :class:`adljax.Venue`; ``names`` names its rows.

    Inspection is per account: its results are [N] and [N, A] arrays, so a position book is read through
    its dense views, up to :data:`~adljax.model.position_book.DENSE_VIEW_LIMIT` numbers (above it:
    :class:`InputError`); the ADL fifths come from its position list (:func:`adljax.adl_queue`).
    """
    from ..model.position_book import DENSE_VIEW_LIMIT, PositionBook
    from .indicator import adl_queue

    a = len(markets)
    prices = np.asarray(prices, dtype=np.float64)
    bounds, rates = venue.tiers(a)
    tier_mode = venue.rules.tier_mode
    if isinstance(book, PositionBook) and book.n_accounts * book.n_markets > DENSE_VIEW_LIMIT:
        raise InputError(f"book: inspect reports per account ([N, A] arrays); this position book has "
                         f"{book.n_accounts:,} accounts × {book.n_markets} markets, above DENSE_VIEW_LIMIT "
                         f"({DENSE_VIEW_LIMIT:,} numbers): inspect fewer markets or accounts")
    cash = np.asarray(book.cash, dtype=np.float64)
    size = np.asarray(book.size, dtype=np.float64)
    entry = np.asarray(book.entry, dtype=np.float64)
    av = cash + np.sum(size * (prices - entry), axis=1)
    ntl_a = np.abs(size) * prices
    notional = ntl_a.sum(axis=1)
    mr = requirement(ntl_a, bounds, rates, tier_mode).sum(axis=1)
    fifths = adl_queue(venue, book, prices)
    if isinstance(book, PositionBook):                  # [P] at the positions' cells
        dense = np.zeros(size.shape, fifths.dtype)
        dense[np.asarray(book.account), np.asarray(book.market)] = fifths
        fifths = dense
    mv = moves(cash, size, entry, prices, backstop_ratio=venue.backstop_ratio, bounds=bounds, rates=rates,
               tier_mode=tier_mode, mode=mode)
    largest = [int(i) for i in np.argsort(-notional, kind="stable")[:top] if notional[i] > 0]
    return {"names": list(names), "markets": list(markets), "prices": prices, "venue": venue, "mm": rates[:, 0],
            "bounds": bounds, "rates": rates, "tier_mode": tier_mode, "cash": cash, "av": av, "notional": notional,
            "notional_by_market": ntl_a, "mr": mr, "size": size, "fifths": fifths, "moves": mv, "mode": mode,
            "largest": largest}


def inspect_hyperliquid(states, meta, *, markets: Sequence[str] | None = None, venue_name: str = "hyperliquid",
                        mode: str = "together", top: int = 10, positions: bool = False) -> dict:
    """:func:`inspect_book` for Hyperliquid's own files (:func:`adljax.studies.hyperliquid.load_hyperliquid`).

    The book comes from the ``clearinghouseState`` files ``states``, the prices from the ``meta`` file's
    marks, and each market's margin table and max leverage from the meta, set on the ``venue_name`` preset
    (default Hyperliquid's own rules). ``markets`` (default: the coins some state holds, in the universe's
    order) chooses the book's markets; a position in another coin is closed into its row's cash.
    ``positions``: load a :class:`~adljax.model.position_book.PositionBook`
    (``load_hyperliquid(..., positions=True)``); the result is the same.
    """
    from ..model import venues
    from ..studies import hyperliquid as hl

    if venue_name not in venues.PRESETS:
        raise InputError(f"--venue: unknown venue {venue_name!r} (known: {', '.join(venues.PRESETS)})")
    load = lambda mk: hl.load_hyperliquid(states, meta, markets=mk, dtype=np.float64, positions=positions)
    book, venue, marks = load(markets)
    names = list(markets) if markets is not None else list(hl.read_meta(meta).names)
    if markets is None:
        if positions:        # the markets some trader position is open in, from the list
            open_ = np.zeros(len(names), dtype=bool)
            open_[np.asarray(book.market)[np.asarray(book.position_size)[:book.n_positions] != 0]] = True
        else:
            open_ = np.any(np.asarray(book.size) != 0, axis=0)
        held = [m for a, m in enumerate(names) if open_[a]]
        if held and len(held) < len(names):
            names = held
            book, venue, marks = load(held)
    if venue_name != "hyperliquid":
        venue = hl.venue_from_meta(meta, names, venue=venues.PRESETS[venue_name]())
    venue.validate()
    return inspect_loaded(book, hl.row_names(states), names, marks, venue, mode=mode, top=top)
