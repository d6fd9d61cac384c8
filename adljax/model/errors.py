"""Input checking: every bad input gets an error that names the field and the problem.

Checks run on concrete (host) values before anything is traced. When the
engine is itself being traced by a user's ``jit``, value checks are skipped
(they cannot be done on tracers) and only shapes are checked.
"""
from __future__ import annotations

import numpy as np
import jax


class InputError(ValueError):
    """A user input is malformed. The message names the field and the problem."""


def is_concrete(x) -> bool:
    return not isinstance(x, jax.core.Tracer)


def as_host(x) -> np.ndarray | None:
    """Host copy of ``x`` for value checks, or None if ``x`` is traced."""
    if not is_concrete(x):
        return None
    return np.asarray(x)


def check_ndim(name: str, x, ndim: int, dims: str) -> None:
    if np.ndim(x) != ndim:
        raise InputError(f"{name}: expected {ndim} dimensions {dims}, got shape {tuple(np.shape(x))}")


def check_shape(name: str, x, shape: tuple, dims: str) -> None:
    if tuple(np.shape(x)) != tuple(shape):
        raise InputError(f"{name}: expected shape {tuple(shape)} {dims}, got {tuple(np.shape(x))}")


def check_finite(name: str, x) -> None:
    h = as_host(x)
    if h is None:
        return
    bad = ~np.isfinite(h)
    if bad.any():
        idx = tuple(int(i) for i in np.argwhere(bad)[0])
        kind = "NaN" if np.isnan(h[idx]) else "infinite value"
        raise InputError(f"{name}: {kind} at index {idx} ({int(bad.sum())} non-finite entries in all)")


def check_positive(name: str, x, *, allow_zero: bool = False) -> None:
    check_finite(name, x)
    h = as_host(x)
    if h is None:
        return
    bad = (h < 0) if allow_zero else (h <= 0)
    if bad.any():
        idx = tuple(int(i) for i in np.argwhere(bad)[0])
        what = "negative" if allow_zero else "non-positive"
        raise InputError(f"{name}: {what} value {h[idx]!r} at index {idx} (must be {'>= 0' if allow_zero else '> 0'})")


def check_range(name: str, value, lo: float, hi: float, *, lo_open=False, hi_open=False, allow_inf=False) -> None:
    h = as_host(value)
    if h is None:
        return
    h = np.asarray(h, dtype=float)
    if allow_inf and np.all(h == np.inf):
        return
    if not np.all(np.isfinite(h)):
        raise InputError(f"{name}: must be finite, got {h!r}")
    low_bad = (h <= lo) if lo_open else (h < lo)
    high_bad = (h >= hi) if hi_open else (h > hi)
    if np.any(low_bad | high_bad):
        lb = "(" if lo_open else "["
        hb = ")" if hi_open else "]"
        raise InputError(f"{name}: must be in {lb}{lo}, {hi}{hb}, got {h.tolist()!r}")
