"""``adljax inspect``: a book's ADL queue and how far prices must move to liquidate its largest accounts.

Distances are solved in closed form from the account-value formulas of
``docs/rules.md`` (no simulation). With every price of the moving markets
scaled by ``(1 + x)``::

    AV(x) = AV₀ + x·D      D = Σ_moving size·m         (net dollar exposure)
    MR(x) = MR₀ + x·K      K = Σ_moving |size|·m·mm

and a threshold ``AV < c·MR`` (``c = 1``: liquidatable, ``c = backstop_ratio``:
the vault takes over, ``c = 0``: bankrupt) is crossed at
``x* = (c·MR₀ − AV₀) / (D − c·K)``, on the side where ``AV − c·MR`` falls
(down for a net long, up for a net short). A threshold that needs a price
≤ 0 (``x* ≤ −1``), or that the move cannot reach (``D = c·K``), is never
crossed. Fills, fees, impact and the waterfall's order are not modelled:
this is the distance at the given marks, as the venue's margin check sees it.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np


def move_to(av0, mr0, d, k, c: float) -> np.ndarray:
    """Price move ``x`` (fraction, e.g. −0.08) at which ``AV < c·MR`` starts; 0 if already; NaN if never.

    Args (each [N]): ``av0``, ``mr0`` at the current marks; ``d = Σ size·m`` and
    ``k = Σ |size|·m·mm`` over the markets that move.
    """
    av0, mr0, d, k = (np.asarray(v, dtype=np.float64) for v in (av0, mr0, d, k))
    g0 = av0 - c * mr0                 # AV − c·MR now
    b = d - c * k                      # its slope in x
    with np.errstate(divide="ignore", invalid="ignore"):
        x = np.where(b != 0, -g0 / b, np.nan)
    x = np.where(x <= -1.0, np.nan, x)               # would need a price ≤ 0
    x = np.where(np.abs(b) <= 1e-12 * np.maximum(np.abs(d), np.abs(c * k)), np.nan, x)
    return np.where(g0 < 0, 0.0, x)


def moves(cash, size, entry, mark, mm, backstop_ratio: float, *, mode: str = "together") -> dict[str, np.ndarray]:
    """Price moves to each threshold (``liquidation``, ``backstop``, ``bankruptcy``) for every row.

    Args:
      cash [N], size [N, A], entry [N, A]: the rows.
      mark [A]: current prices. mm [A]: maintenance fractions.
      mode: ``"together"`` — every market moves by the same percentage (a
        broad move): ``{threshold: [N]}``; ``"each"`` — one market moves, the
        others stay: ``{threshold: [N, A]}``.
    Returns:
      Fractions (−0.1 = prices 10 % lower); 0 where the row is already past
      the threshold; NaN where no move of that kind reaches it (or the row has
      no position).
    """
    cash, size, entry = (np.asarray(v, dtype=np.float64) for v in (cash, size, entry))
    mark, mm = np.asarray(mark, dtype=np.float64), np.asarray(mm, dtype=np.float64)
    av0 = cash + np.sum(size * (mark - entry), axis=1)
    mr0 = np.sum(np.abs(size) * mark * mm, axis=1)
    d_a = size * mark                                  # [N, A]
    k_a = np.abs(size) * mark * mm
    has = np.any(size != 0, axis=1)
    cs = {"liquidation": 1.0, "backstop": float(backstop_ratio), "bankruptcy": 0.0}
    out = {}
    for name, c in cs.items():
        if mode == "together":
            x = move_to(av0, mr0, d_a.sum(axis=1), k_a.sum(axis=1), c)
            out[name] = np.where(has, x, np.nan)
        elif mode == "each":
            x = np.stack([move_to(av0, mr0, d_a[:, a], k_a[:, a], c) for a in range(size.shape[1])], axis=1)
            out[name] = np.where(has[:, None], x, np.nan)
        else:
            raise ValueError(f"mode: 'together' or 'each', got {mode!r}")
    return out


def inspect_book(path, markets: Sequence[str], prices: Sequence[float], *, venue_name: str = "hyperliquid",
                 max_leverage=None, balance: bool = False, mode: str = "together", top: int = 10) -> dict:
    """Everything ``adljax inspect`` prints, as plain data.

    Returns a dict with ``names`` [N], ``av``, ``notional``, ``mr`` [N], ``size``
    [N, A], ``fifths`` [N, A] (:func:`adljax.adl_queue`), ``moves`` (see
    :func:`moves`), ``largest`` (row indices by notional, at most ``top``), and
    the venue.
    """
    from ..model import venues
    from ..model.errors import InputError
    from ..studies.bookfile import load_book, row_names
    from .indicator import adl_queue

    if venue_name not in venues.PRESETS:
        raise InputError(f"--venue: unknown venue {venue_name!r} (known: {', '.join(venues.PRESETS)})")
    a = len(markets)
    prices = np.asarray(prices, dtype=np.float64)
    if prices.shape != (a,):
        raise InputError(f"--prices: expected one price per market ({a}: {', '.join(markets)}), got {prices.size}")
    if not np.all(np.isfinite(prices) & (prices > 0)):
        raise InputError(f"--prices: must be > 0, got {', '.join(f'{p:g}' for p in prices)}")
    over = {} if max_leverage is None else {"max_leverage": np.asarray(max_leverage, dtype=np.float64)}
    venue = venues.PRESETS[venue_name](**over)
    venue.validate()
    mm = venue.maintenance(a)
    book = load_book(path, markets=list(markets), balance=balance, dtype=np.float64)
    names = row_names(path)
    cash = np.asarray(book.cash, dtype=np.float64)
    size = np.asarray(book.size, dtype=np.float64)
    entry = np.asarray(book.entry, dtype=np.float64)
    av = cash + np.sum(size * (prices - entry), axis=1)
    ntl_a = np.abs(size) * prices
    notional = ntl_a.sum(axis=1)
    mr = np.sum(ntl_a * mm, axis=1)
    fifths = adl_queue(venue, book, prices)
    mv = moves(cash, size, entry, prices, mm, venue.backstop_ratio, mode=mode)
    largest = [int(i) for i in np.argsort(-notional, kind="stable")[:top] if notional[i] > 0]
    return {"names": names, "markets": list(markets), "prices": prices, "venue": venue, "mm": mm, "cash": cash,
            "av": av, "notional": notional, "notional_by_market": ntl_a, "mr": mr, "size": size, "fifths": fifths,
            "moves": mv, "mode": mode, "largest": largest}
