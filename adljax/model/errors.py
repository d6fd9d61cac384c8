"""Input checking: every bad input gets an error that names the field and the problem.

Checks run on concrete (host) values before anything is traced. When the
engine is itself being traced by a user's ``jit``, value checks are skipped
(they cannot be done on tracers) and only shapes and dtypes are checked.

Numbers are checked in the float dtype the engine runs in (:func:`float_dtype`,
float32 or float64), after the cast: a value finite in float64 may be infinite
in float32, and a positive one may round to zero. :func:`money_limit` is the
largest USD amount an input may add up to in a dtype.
"""
from __future__ import annotations

import dataclasses

import numpy as np
import jax
import jax.numpy as jnp

#: The float dtypes the engine runs in.
FLOAT_DTYPES = ("float32", "float64")

#: :func:`money_limit` is this fraction of ``sqrt(finfo(dtype).max)``, :func:`smallest_amount` this
#: multiple of ``sqrt(finfo(dtype).tiny)``.
MONEY_MARGIN = 1e-3


class InputError(ValueError):
    """A user input is malformed. The message names the field and the problem."""


def is_concrete(x) -> bool:
    return not isinstance(x, jax.core.Tracer)


def as_host(x) -> np.ndarray | None:
    """Host copy of ``x`` for value checks, or None if ``x`` is traced."""
    if not is_concrete(x):
        return None
    return np.asarray(x)


def arrays_from_lists(obj) -> None:
    """Turn the fields of a frozen dataclass given as Python lists or tuples into NumPy arrays, in place.

    JAX would take a list for a pytree of many leaves; as an array it is one leaf whose shape and values the
    checks see. A list that makes no regular array (rows of several lengths, tracers) is left as it is, for
    the checks to refuse.
    """
    for f in dataclasses.fields(obj):
        v = getattr(obj, f.name)
        if type(v) in (list, tuple):
            try:
                object.__setattr__(obj, f.name, np.asarray(v))
            except Exception:       # a ragged list, or tracers: refused by the checks by name
                pass


def float_dtype(name: str, dtype) -> np.dtype:
    """``dtype`` as a NumPy dtype, float32 or float64 only; ``None`` is JAX's default float."""
    if dtype is None:
        return np.dtype(jnp.result_type(float))
    try:
        d = np.dtype(dtype)
    except TypeError:
        raise InputError(f"{name}: must be float32 or float64, got {dtype!r}") from None
    if d.name not in FLOAT_DTYPES:
        raise InputError(f"{name}: must be float32 or float64, got {d.name}")
    return d


def money_limit(dtype) -> float:
    """The largest total of USD amounts (cash, funds, notional at any price, depth) accepted in ``dtype``.

    ``MONEY_MARGIN·sqrt(finfo(dtype).max)``: about 1.8e16 in float32 and 1.3e151 in float64. The
    square root because the engine multiplies two amounts of money in places (the bankruptcy price
    splits a deficit across markets as ``deficit·notional / Σ notional``); the margin leaves room for
    sums over rows and steps and for marks moved by impact.
    """
    return MONEY_MARGIN * float(np.sqrt(np.finfo(dtype).max))


def smallest_amount(dtype) -> float:
    """The smallest nonzero size, price or depth a new book or paths may hold in ``dtype``.

    ``sqrt(finfo(dtype).tiny) / MONEY_MARGIN``: about 1.1e-16 in float32 and 1.5e-151 in float64, so
    that a product of two such numbers (a notional ``size·price``, an average entry's ``size·entry``)
    stays a normal number instead of rounding to 0 (XLA on CPU flushes smaller results to zero).
    """
    return float(np.sqrt(np.finfo(dtype).tiny)) / MONEY_MARGIN


def check_above_floor(name: str, x, dtype) -> None:
    """Refuse a nonzero value below :func:`smallest_amount` of ``dtype`` in magnitude (skipped for a tracer)."""
    h = as_host(x)
    if h is None:
        return
    h = np.asarray(h, dtype=np.float64)
    floor = smallest_amount(dtype)
    small = (h != 0) & (np.abs(h) < floor)
    if small.any():
        idx = tuple(int(i) for i in np.argwhere(small)[0])
        raise InputError(f"{name}: {h[idx]:.4g} at index {idx} is below the smallest size, price or depth "
                         f"{floor:.3g} for {np.dtype(dtype).name} (1e3·sqrt of its smallest normal number, so that "
                         f"a product of two stays normal); {remedy(dtype, 'smaller')}")


def remedy(dtype, unit: str) -> str:
    """What to do about a number out of a dtype's range: float64 (when it is float32), or another unit."""
    other = f"count in a {unit} unit"
    return other if np.dtype(dtype) == np.float64 else f"use float64, or {other}"


def _short(v) -> str:
    """``repr`` of a value as the user wrote it (a NumPy scalar as its Python value), at most 40 characters."""
    if isinstance(v, np.generic):
        v = v.item()
    r = repr(v)
    return r if len(r) <= 40 else r[:37] + "..."


def _describe(a: np.ndarray) -> str:
    """A short description of what an array holds, for a message refusing it."""
    if a.dtype.kind == "b":
        return "True/False values"
    if a.dtype.kind in "iuf":
        return f"numbers ({_short(a.flat[0])})" if a.size else "numbers"
    if a.dtype.kind == "O":
        for v in a.flat:
            if not isinstance(v, (int, float, np.number)) or isinstance(v, (bool, np.bool_)):
                return f"a {type(v).__name__} ({_short(v)})"
        return "Python objects"
    if a.dtype.kind in "US":
        for v in a.flat:      # the first entry that is not a number written as text, else the first
            try:
                float(v)
            except ValueError:
                return f"text ({_short(v)})"
        return f"text ({_short(a.flat[0])})" if a.size else "text"
    return f"dtype {a.dtype}"


def as_numbers(name: str, x) -> np.ndarray:
    """``x`` as a NumPy array of numbers (ints or floats, unchanged dtype), or an InputError naming ``name``.

    Refuses text, booleans, complex numbers, objects (``None``, nested sequences of several lengths).
    """
    try:
        a = np.asarray(x)
    except (ValueError, TypeError) as err:
        first = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise InputError(f"{name}: expected numbers in a regular array ({first})") from None
    if a.dtype.kind not in "iuf":
        raise InputError(f"{name}: expected numbers, got {_describe(a)}")
    return a


def check_numeric(name: str, x) -> None:
    """Refuse a non-numeric array or value (its dtype is known even for a tracer)."""
    if not hasattr(x, "dtype"):
        as_numbers(name, x)
    elif np.dtype(x.dtype).kind not in "iuf":
        h = as_host(x)
        raise InputError(f"{name}: expected numbers, got {_describe(h) if h is not None else f'dtype {x.dtype}'}")


def check_bool(name: str, value) -> None:
    """Refuse anything but ``True`` or ``False`` (a string such as ``"no"`` would count as true)."""
    if not isinstance(value, (bool, np.bool_)):
        raise InputError(f"{name}: must be True or False, got {_short(value)}")


def check_first_scenario(first_scenario) -> None:
    """Refuse a ``first_scenario`` that is not a whole number >= 0 (it numbers the scenarios' keys)."""
    if isinstance(first_scenario, (bool, np.bool_)) or not isinstance(first_scenario, (int, np.integer)) \
            or first_scenario < 0:
        raise InputError(f"first_scenario: must be a whole number >= 0, got {_short(first_scenario)}")


def as_bools(name: str, x) -> np.ndarray:
    """``x`` as a NumPy bool array (booleans only: text, numbers and objects are refused)."""
    try:
        a = np.asarray(x)
    except (ValueError, TypeError):
        raise InputError(f"{name}: expected True/False values in a regular array") from None
    if a.dtype.kind != "b":
        raise InputError(f"{name}: expected True/False values, got {_describe(a)}")
    return a


def check_number(name: str, value, *, hint: str = "") -> None:
    """Refuse what is not one real number: text, booleans, ``None`` and sequences (a traced scalar passes).

    ``hint`` follows "expected one number" where a sequence or an array is given.
    """
    if isinstance(value, (bool, np.bool_)) or isinstance(value, str):
        raise InputError(f"{name}: expected a number, got {_short(value)}")
    if isinstance(value, (int, float, np.integer, np.floating)):
        return
    shape = getattr(value, "shape", None)
    dtype = getattr(value, "dtype", None)
    if shape is not None and dtype is not None:
        if tuple(shape) != ():
            raise InputError(f"{name}: expected one number{hint}, got an array of shape {tuple(shape)}")
        if np.dtype(dtype).kind not in "iuf":
            raise InputError(f"{name}: expected a number, got dtype {dtype}")
        return
    if isinstance(value, (list, tuple)):
        raise InputError(f"{name}: expected one number{hint}, got a {type(value).__name__} of {len(value)} values")
    raise InputError(f"{name}: expected a number, got {type(value).__name__}")


def check_representable(name: str, x, dtype, *, positive: str = "none") -> None:
    """Check float64 values ``x`` survive the cast to ``dtype``: finite there, and not flushed to zero.

    ``positive``: ``"none"`` (any finite value), ``"nonzero"`` (a nonzero value must keep its magnitude
    at or above the dtype's smallest normal number, so it neither becomes 0 nor loses its precision),
    ``"strict"`` (every value > 0 and at or above the smallest normal).
    """
    h = as_host(x)
    if h is None:
        return
    h = np.asarray(h, dtype=np.float64)
    check_finite(name, h)
    fi = np.finfo(dtype)
    big = np.abs(h) > float(fi.max)
    if big.any():
        idx = tuple(int(i) for i in np.argwhere(big)[0])
        raise InputError(f"{name}: {h[idx]:.4g} at index {idx} is infinite in {np.dtype(dtype).name} "
                         f"(largest {float(fi.max):.4g})")
    if positive == "strict":
        check_positive(name, h)
    if positive in ("strict", "nonzero"):
        small = (h != 0) & (np.abs(h) < float(fi.tiny))
        if small.any():
            idx = tuple(int(i) for i in np.argwhere(small)[0])
            raise InputError(f"{name}: {h[idx]:.4g} at index {idx} is below {np.dtype(dtype).name}'s smallest normal "
                             f"number {float(fi.tiny):.4g} (it would round to 0 or lose its precision)")


def check_below_limit(name: str, x, dtype) -> None:
    """Refuse a USD amount or price at or above :func:`money_limit` of ``dtype`` (skipped for a tracer)."""
    h = as_host(x)
    if h is None:
        return
    limit = money_limit(dtype)
    big = np.abs(np.asarray(h, dtype=np.float64)) >= limit
    if big.any():
        idx = tuple(int(i) for i in np.argwhere(big)[0])
        raise InputError(f"{name}: {float(np.asarray(h)[idx]):.4g} at index {idx} is above the limit {limit:.3g} for "
                         f"USD amounts in {np.dtype(dtype).name} (1e-3·sqrt of its largest number); "
                         f"{remedy(dtype, 'larger')}")


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
