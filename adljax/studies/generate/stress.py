"""Stress shapes: deterministic price multipliers for gaps, V-shaped crashes and cross-market cascades.

A shape is an array ``m`` [T, A] (or [T, 1], for every market alike) of
price multipliers on the step grid ``t_k = k·dt`` seconds, ``k < n_steps``:
``m = 1`` before the event, ``m = 1 − drop`` once a fall of ``drop`` is
complete. Use one alone, from flat prices::

    oracle = stress_path(start, gap(0.3, over_s=60, at_s=120, n_steps=600, dt=1.0))

or on top of any generated path, multiplying every scenario::

    oracle = apply_stress(gbm(key, start, ...), cascade(drops, over_s=120, at_s=60, lags_s=lags,
                                                      n_steps=600, dt=1.0))

Shapes compose by multiplication (``gap(...) * v_crash(...)``). Multipliers,
not log multipliers, so that a completed drop is exactly ``1 − drop`` (the
price is exactly ``start·(1 − drop)``, with no ``exp(log(·))`` rounding).
Within a move the multiplier is geometric: every step of a fall has the same
log return. Event times are snapped to the grid: a time within a millionth of
a step of a grid point counts as that point, so ``at_s + over_s = k·dt`` hits
step ``k`` exactly even when ``k·dt`` rounds. A move that ends between grid
points is complete at the first step after it. Parameters may be traced
(e.g. differentiated); their checks run when they are concrete.
"""
from __future__ import annotations

from functools import partial

import numpy as np
import jax
import jax.numpy as jnp
from jax import Array

from ...model.errors import InputError, as_host, check_finite, check_positive

_SNAP = 1e-6   # a millionth of a step


def _dtype(dtype):
    return jnp.dtype(dtype or jnp.result_type(float))


def _check_grid(n_steps: int, dt: float) -> None:
    if isinstance(n_steps, bool) or not isinstance(n_steps, (int, np.integer)) or n_steps < 1:
        raise InputError(f"n_steps: must be an integer >= 1, got {n_steps!r}")
    if not np.isfinite(dt) or dt <= 0:
        raise InputError(f"dt: must be > 0 seconds, got {dt!r}")


def _param(name: str, v, dtype, *, lo=None, hi=None, lo_open=False, hi_open=False) -> Array:
    """A scalar or [A] parameter as a [1, A'] row, checked when concrete."""
    if np.ndim(v) > 1:
        raise InputError(f"{name}: expected a scalar or [A] (one per market), got shape {tuple(np.shape(v))}")
    check_finite(name, v)
    h = as_host(v)
    if h is not None:
        h = np.asarray(h, dtype=np.float64)
        if lo is not None and np.any((h <= lo) if lo_open else (h < lo)):
            raise InputError(f"{name}: must be {'>' if lo_open else '>='} {lo}, got {h.tolist()}")
        if hi is not None and np.any((h >= hi) if hi_open else (h > hi)):
            raise InputError(f"{name}: must be {'<' if hi_open else '<='} {hi}, got {h.tolist()}")
    return jnp.atleast_1d(jnp.asarray(v, dtype))[None, :]


def _ramp(k: Array, at: Array, over: Array) -> Array:
    """0 up to step ``at``, 1 from step ``at + over`` on, linear between; exact 0 and 1 (in steps)."""
    done = k >= at + over - _SNAP
    before = k <= at + _SNAP
    u = jnp.clip((k - at) / jnp.where(over > 0, over, 1.0), 0.0, 1.0)
    return jnp.where(done, 1.0, jnp.where(before, 0.0, u))


def _geometric(ramp: Array, lo: Array, hi: Array) -> Array:
    """``lo`` at ramp 0, ``hi`` at ramp 1 (both exact), constant log steps between."""
    between = jnp.exp(jnp.log(lo) + ramp * (jnp.log(hi) - jnp.log(lo)))
    return jnp.where(ramp >= 1, hi, jnp.where(ramp <= 0, lo, between))


def gap(drop, over_s, at_s, *, n_steps: int, dt: float, dtype=None) -> Array:
    """A fall of ``drop`` over ``over_s`` seconds starting at ``at_s``; the price stays down.

    Args:
      drop: [A] or scalar, fraction of the price lost (< 1; negative is a rise).
      over_s: [A] or scalar, seconds the fall takes (0: a jump between two steps).
      at_s: [A] or scalar, seconds from step 0 when the fall starts.
      n_steps: T, the number of steps (step k is at ``k·dt`` seconds).
      dt: seconds per step.
    Returns:
      [T, A] multipliers (A = 1 when every argument is a scalar): 1 up to
      ``at_s``, exactly ``1 − drop`` from ``at_s + over_s`` on.
    """
    dtype = _dtype(dtype)
    _check_grid(n_steps, dt)
    drop = _param("drop", drop, dtype, hi=1.0, hi_open=True)
    over = _param("over_s", over_s, dtype, lo=0.0)
    at = _param("at_s", at_s, dtype)
    return _gap(drop, over, at, jnp.asarray(dt, dtype), n_steps)


@partial(jax.jit, static_argnames=("n_steps",))
def _gap(drop, over, at, dt, n_steps):
    k = jnp.arange(n_steps, dtype=dt.dtype)[:, None]
    return _geometric(_ramp(k, at / dt, over / dt), jnp.ones_like(drop), 1.0 - drop)


def v_crash(drop, down_s, up_s, recover, at_s, *, n_steps: int, dt: float, dtype=None) -> Array:
    """A crash then a rebound: fall ``drop`` over ``down_s``, recover a share of the fall over ``up_s``.

    Args:
      drop: [A] or scalar, fraction lost at the bottom (0 ≤ drop < 1).
      down_s: [A] or scalar, seconds of the fall, starting at ``at_s``.
      up_s: [A] or scalar, seconds of the rebound, starting at the bottom.
      recover: [A] or scalar, share of the fall won back (0: none, 1: all of
        it; above 1 overshoots the start).
      at_s: [A] or scalar, seconds from step 0 when the fall starts.
      n_steps, dt: the step grid.
    Returns:
      [T, A] multipliers: exactly ``1 − drop`` at ``at_s + down_s`` and exactly
      ``1 − drop·(1 − recover)`` from ``at_s + down_s + up_s`` on.
    """
    dtype = _dtype(dtype)
    _check_grid(n_steps, dt)
    drop = _param("drop", drop, dtype, lo=0.0, hi=1.0, hi_open=True)
    down = _param("down_s", down_s, dtype, lo=0.0)
    up = _param("up_s", up_s, dtype, lo=0.0)
    recover = _param("recover", recover, dtype, lo=0.0)
    at = _param("at_s", at_s, dtype)
    return _v_crash(drop, down, up, recover, at, jnp.asarray(dt, dtype), n_steps)


@partial(jax.jit, static_argnames=("n_steps",))
def _v_crash(drop, down, up, recover, at, dt, n_steps):
    k = jnp.arange(n_steps, dtype=dt.dtype)[:, None]
    down, up, at = down / dt, up / dt, at / dt
    bottom, final = 1.0 - drop, 1.0 - drop * (1.0 - recover)
    fall = _geometric(_ramp(k, at, down), jnp.ones_like(bottom), bottom)
    rise = _geometric(_ramp(k, at + down, up), bottom, final)
    return jnp.where(k >= at + down - _SNAP, rise, fall)


def cascade(drops, over_s, at_s, lags_s, *, n_steps: int, dt: float, dtype=None) -> Array:
    """A multi-market cascade: market ``a`` falls ``drops[a]`` over ``over_s`` from ``at_s + lags_s[a]``.

    The shape of 10 Oct 2025: majors fall first and least, alts later and
    further. For BTC, ETH, SOL and two alts over a 12-minute window::

        cascade([0.07, 0.12, 0.2, 0.45, 0.7], over_s=[300, 300, 240, 180, 120],
                at_s=0, lags_s=[0, 20, 40, 90, 150], n_steps=721, dt=1.0)

    Args:
      drops: [A], fraction each market loses (< 1).
      over_s: [A] or scalar, seconds each fall takes.
      at_s: scalar, seconds from step 0 when the first market starts to fall.
      lags_s: [A] or scalar, each market's delay after ``at_s`` (≥ 0).
      n_steps, dt: the step grid.
    Returns:
      [T, A] multipliers; market ``a`` is exactly ``1 − drops[a]`` from
      ``at_s + lags_s[a] + over_s[a]`` on.
    """
    if np.ndim(drops) != 1:
        raise InputError(f"drops: expected [A] (one fall per market), got shape {tuple(np.shape(drops))}")
    if np.ndim(at_s) != 0:
        raise InputError(f"at_s: expected a scalar (the cascade's start; per-market delays go in lags_s), got shape "
                         f"{tuple(np.shape(at_s))}")
    a = np.shape(drops)[0]
    for name, v in (("over_s", over_s), ("lags_s", lags_s)):
        if np.ndim(v) > 1 or (np.ndim(v) == 1 and np.shape(v)[0] != a):
            raise InputError(f"{name}: expected a scalar or [{a}] (one per market, like drops), got shape "
                             f"{tuple(np.shape(v))}")
    check_positive("lags_s", lags_s, allow_zero=True)
    dtype = _dtype(dtype)
    at = jnp.asarray(at_s, dtype) + jnp.asarray(lags_s, dtype)
    return gap(drops, over_s, jnp.broadcast_to(at, (a,)), n_steps=n_steps, dt=dt, dtype=dtype)


def apply_stress(oracle, multiplier) -> Array:
    """Multiply every scenario's prices by a stress shape.

    Args:
      oracle: [S, T, A] prices.
      multiplier: [T, A], [T, 1] or [T] (every market alike), > 0.
    Returns:
      [S, T, A] prices ``oracle · multiplier``.
    """
    if np.ndim(oracle) != 3:
        raise InputError(f"oracle: expected [S scenarios, T steps, A markets], got shape {tuple(np.shape(oracle))}")
    m = _as_multiplier(multiplier, np.shape(oracle)[1], np.shape(oracle)[2])
    oracle = jnp.asarray(oracle)
    return oracle * m.astype(oracle.dtype)


def stress_path(start, multiplier, *, n_scenarios: int = 1) -> Array:
    """Prices that follow a stress shape from flat: ``start · multiplier``, repeated for S scenarios.

    Args:
      start: [A] start prices, USD (> 0).
      multiplier: [T, A], [T, 1] or [T], > 0.
      n_scenarios: S, copies of the path (for a batch of one shape).
    Returns:
      [S, T, A] prices.
    """
    if np.ndim(start) != 1:
        raise InputError(f"start: expected [A markets] start prices, got shape {tuple(np.shape(start))}")
    check_positive("start", start)
    if isinstance(n_scenarios, bool) or not isinstance(n_scenarios, (int, np.integer)) or n_scenarios < 1:
        raise InputError(f"n_scenarios: must be an integer >= 1, got {n_scenarios!r}")
    m = jnp.asarray(multiplier)
    a = np.shape(start)[0]
    m = _as_multiplier(m, m.shape[0] if m.ndim else 0, a)
    start = jnp.asarray(start, m.dtype)
    return jnp.broadcast_to(start * m, (n_scenarios, m.shape[0], a))


def _as_multiplier(multiplier, t: int, a: int) -> Array:
    m = jnp.asarray(multiplier)
    if m.ndim == 1:
        m = m[:, None]
    if m.ndim != 2 or m.shape[0] != t or m.shape[1] not in (1, a):
        raise InputError(f"multiplier: expected [{t}, {a}], [{t}, 1] or [{t}] (steps × markets), got shape "
                         f"{tuple(np.shape(multiplier))}")
    check_positive("multiplier", m)
    return m
