"""Tiered maintenance margin: a market's requirement as a function of a position's notional.

Every real venue raises the maintenance rate as a position grows. A market's table is a sequence of
``(lower_bound_usd, rate)`` pairs, the first bound 0, bounds rising, rates not falling. A position of
notional ``N`` is in tier ``k``, the last whose lower bound ``b_k ≤ N``, and needs

- ``"deduction"`` mode (Hyperliquid, Binance, Bybit): ``N·r_k − d_k`` with ``d_0 = 0`` and
  ``d_k = d_{k−1} + b_k·(r_k − r_{k−1})``, so the requirement is continuous in ``N``. Written as a sum over
  tiers it is ``N·r_0 + Σ_{k≥1} (r_k − r_{k−1})·max(N − b_k, 0)``, the form the engine evaluates: each tier's
  rate applies to the part of the notional above its bound.
- ``"step"`` mode (BitMEX risk limits): ``N·r_k``, the whole position at its tier's rate, no deduction; the
  requirement jumps at each bound. Engine form: ``N·r_0 + Σ_{k≥1} (r_k − r_{k−1})·N·[N ≥ b_k]``.

A market with one pair ``(0, r)`` needs ``N·r`` in either mode: the one-rate requirement
(``maintenance_margin``, or ``1/(2·max_leverage)``).

Tables for a book of A markets are padded to the longest one's K tiers (:func:`padded`): a padding tier
repeats the market's last bound and rate, so its rate step is 0 and it adds nothing.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np

from .errors import InputError

TIER_MODES = ("deduction", "step")


def table(name: str, value) -> np.ndarray:
    """One market's table as a checked [K, 2] float64 array of ``(lower_bound_usd, rate)`` rows.

    Raises :class:`InputError` naming ``name`` unless the first bound is 0, the bounds rise and are finite,
    and the rates are in (0, 1) and do not fall.
    """
    try:
        t = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError):
        raise InputError(f"{name}: expected a sequence of (lower_bound_usd, rate) pairs, got {value!r}") from None
    if t.ndim != 2 or t.shape[1] != 2 or t.shape[0] < 1:
        raise InputError(f"{name}: expected a sequence of (lower_bound_usd, rate) pairs, e.g. "
                         f"[(0, 0.0125), (150e6, 0.025)], got {value!r}")
    bounds, rates = t[:, 0], t[:, 1]
    if not np.all(np.isfinite(t)):
        raise InputError(f"{name}: bounds and rates must be finite, got {value!r}")
    if bounds[0] != 0:
        raise InputError(f"{name}: the first tier's lower bound must be 0 (every position is in some tier), "
                         f"got {bounds[0]:g}")
    if np.any(np.diff(bounds) <= 0):
        raise InputError(f"{name}: lower bounds must rise from tier to tier, got {', '.join(f'{b:g}' for b in bounds)}")
    if np.any(rates <= 0) or np.any(rates >= 1):
        raise InputError(f"{name}: rates are fractions of notional in (0, 1), got "
                         f"{', '.join(f'{r:g}' for r in rates)}")
    if np.any(np.diff(rates) < 0):
        raise InputError(f"{name}: rates must not fall as the bounds rise (a larger position never needs a "
                         f"smaller rate), got {', '.join(f'{r:g}' for r in rates)}")
    return t


def per_market(value, n_markets: int, name: str = "margin_tiers") -> list[np.ndarray]:
    """``margin_tiers`` for ``n_markets`` markets: one table for every market, or one table per market.

    ``value`` is a table (a sequence of ``(lower_bound_usd, rate)`` pairs, used by every market) or a
    sequence of ``n_markets`` tables. Returns one checked [K_a, 2] table per market.
    """
    if is_table(value):
        t = table(name, value)
        return [t] * n_markets
    try:
        tables = list(value)
    except TypeError:
        raise InputError(f"{name}: expected a table of (lower_bound_usd, rate) pairs or one table per market, "
                         f"got {value!r}") from None
    if len(tables) != n_markets:
        raise InputError(f"{name}: expected one table for every market or {n_markets} tables (one per market), "
                         f"got {len(tables)}")
    return [table(f"{name}[{a}]", t) for a, t in enumerate(tables)]


def is_table(value) -> bool:
    """Whether ``value`` is one table (pairs of numbers), not a sequence of tables."""
    try:
        first = value[0]
        return len(first) == 2 and all(np.ndim(x) == 0 for x in first)
    except (TypeError, IndexError, KeyError):
        return False


def padded(tables: Sequence[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """``(bounds [A, K], rates [A, K])``: the tables padded to the longest one's K tiers.

    A padding tier repeats the market's last bound and rate: its rate step is 0, so it adds nothing in
    either mode.
    """
    k = max(len(t) for t in tables)
    bounds = np.empty((len(tables), k))
    rates = np.empty((len(tables), k))
    for a, t in enumerate(tables):
        n = len(t)
        bounds[a, :n], rates[a, :n] = t[:, 0], t[:, 1]
        bounds[a, n:], rates[a, n:] = t[-1, 0], t[-1, 1]
    return bounds, rates


def deductions(bounds: np.ndarray, rates: np.ndarray) -> np.ndarray:
    """``d_k`` of the deduction mode, [..., K] USD: ``d_0 = 0``, ``d_k = d_{k−1} + b_k·(r_k − r_{k−1})``."""
    bounds, rates = np.asarray(bounds, np.float64), np.asarray(rates, np.float64)
    steps = bounds[..., 1:] * np.diff(rates, axis=-1)
    return np.concatenate([np.zeros(bounds.shape[:-1] + (1,)), np.cumsum(steps, axis=-1)], axis=-1)


def requirement(notional, bounds, rates, mode: str = "deduction") -> np.ndarray:
    """Maintenance requirement of positions of ``notional`` (USD, ≥ 0), by the published formula (host, NumPy).

    Args:
      notional: [..., A] USD, each position's ``|size|·mark``.
      bounds, rates: [A, K] (:func:`padded`).
      mode: ``"deduction"`` (``N·r_k − d_k``) or ``"step"`` (``N·r_k``).
    Returns:
      [..., A] USD.
    """
    n = np.asarray(notional, np.float64)
    bounds, rates = np.asarray(bounds, np.float64), np.asarray(rates, np.float64)
    k = np.sum(n[..., None] >= bounds, axis=-1) - 1                     # tier index, [..., A]
    k = np.maximum(k, 0)
    r = np.take_along_axis(np.broadcast_to(rates, n.shape + rates.shape[-1:]), k[..., None], -1)[..., 0]
    if mode == "step":
        return n * r
    if mode != "deduction":
        raise InputError(f"tier_mode: {mode!r} is not one of {', '.join(map(repr, TIER_MODES))}")
    d_all = deductions(bounds, rates)
    d = np.take_along_axis(np.broadcast_to(d_all, n.shape + d_all.shape[-1:]), k[..., None], -1)[..., 0]
    return n * r - d


def from_leverage(pairs) -> tuple[tuple[float, float], ...]:
    """``(lower_bound_usd, max_leverage)`` pairs as ``(lower_bound_usd, 1/(2·max_leverage))`` pairs.

    Hyperliquid publishes its margin tables by maximum leverage; the maintenance rate of a tier is half
    the initial margin at that leverage.
    """
    out = []
    for b, lev in pairs:
        lev = float(lev)
        if not np.isfinite(lev) or lev < 1:
            raise InputError(f"margin_tiers: a tier's max_leverage must be a number >= 1, got {lev!r}")
        out.append((float(b), 1.0 / (2.0 * lev)))
    return tuple(out)
