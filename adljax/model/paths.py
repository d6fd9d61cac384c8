"""Price paths: oracle prices and book depth per scenario, step and market."""
from __future__ import annotations

import numpy as np
import jax
import jax.numpy as jnp
from jax import Array

from .pytree import pytree
from .errors import (InputError, arrays_from_lists, as_host, check_finite, check_numeric, check_positive,
                     check_above_floor, check_below_limit, check_representable, float_dtype)


@pytree
class Paths:
    """Scenario inputs, one row per scenario.

    Attributes:
      oracle: [S, T, A] oracle (index) price, USD per unit, > 0.
      depth: [S, T, A] USD notional the book absorbs on each side in one step
        (the liquidation orders of a step fill pro-rata up to it), ≥ 0.
      funding: optional [S, T, A] funding rate of each step, as a fraction
        of notional: every position pays ``size·mark·funding`` of cash at the
        start of the step (longs pay shorts when positive). Zero-sum within
        each market. ``None`` (the default) means no funding.

    Each may be given as a NumPy or JAX array, or as nested Python lists
    (turned into a NumPy array).
    """

    oracle: Array
    depth: Array
    funding: Array | None = None

    def __post_init__(self):
        arrays_from_lists(self)

    @property
    def n_scenarios(self) -> int:
        return self.oracle.shape[0]

    @property
    def n_steps(self) -> int:
        return self.oracle.shape[1]

    @property
    def n_markets(self) -> int:
        return self.oracle.shape[2]

    def validate(self, n_markets: int | None = None, dtype=None) -> None:
        """Raise :class:`InputError` naming the field for bad shapes or values.

        Args:
          n_markets: the book's market count, which the paths must match.
          dtype: the float dtype the engine runs in (the book's). With it, the values are checked as
            they will be after the cast: finite there, and every price and nonzero depth from
            :func:`~adljax.model.errors.smallest_amount` up to (not including)
            :func:`~adljax.model.errors.money_limit` of the dtype (float32: 1.1e-16 to 1.8e16), so that
            no positive price rounds to 0 and no notional or sum of money overflows.
        """
        for name in ("oracle", "depth"):
            x = getattr(self, name)
            check_numeric(f"paths.{name}", x)
            if np.ndim(x) != 3:
                hint = " (for one scenario, add a leading axis: x[None])" if np.ndim(x) == 2 else ""
                raise InputError(f"paths.{name}: expected [S scenarios, T steps, A markets], got shape "
                                 f"{tuple(np.shape(x))}{hint}")
        if np.shape(self.depth) != np.shape(self.oracle):
            raise InputError(f"paths.depth: shape {tuple(np.shape(self.depth))} does not match paths.oracle "
                             f"{tuple(np.shape(self.oracle))}")
        s, t, a = np.shape(self.oracle)
        if s < 1 or t < 1:
            raise InputError(f"paths.oracle: needs at least one scenario and one step, got shape {(s, t, a)}")
        if n_markets is not None and a != n_markets:
            raise InputError(f"paths.oracle: has {a} markets but the book has {n_markets}")
        check_positive("paths.oracle", self.oracle)
        check_positive("paths.depth", self.depth, allow_zero=True)
        if self.funding is not None:
            check_numeric("paths.funding", self.funding)
            if np.shape(self.funding) != np.shape(self.oracle):
                raise InputError(f"paths.funding: shape {tuple(np.shape(self.funding))} does not match paths.oracle "
                                 f"{tuple(np.shape(self.oracle))}")
            check_finite("paths.funding", self.funding)
            h = as_host(self.funding)
            if h is not None and np.any(np.abs(h) >= 1):
                idx = tuple(int(i) for i in np.argwhere(np.abs(h) >= 1)[0])
                raise InputError(f"paths.funding: rate {h[idx]!r} at index {idx} is a fraction of notional per step "
                                 "and must be in (-1, 1)")
        if dtype is None:
            return
        dtype = float_dtype("dtype", dtype)
        for name, kind in (("oracle", "strict"), ("depth", "nonzero")):
            check_representable(f"paths.{name}", getattr(self, name), dtype, positive=kind)
            check_below_limit(f"paths.{name}", getattr(self, name), dtype)
            check_above_floor(f"paths.{name}", getattr(self, name), dtype)

    def max_price(self) -> np.ndarray | None:
        """The highest oracle price of each market over scenarios and steps, [A] float64 (None if traced)."""
        h = as_host(self.oracle)
        return None if h is None else np.asarray(h, dtype=np.float64).max(axis=(0, 1))

    def astype(self, dtype) -> "Paths":
        funding = None if self.funding is None else jnp.asarray(self.funding, dtype)
        return Paths(oracle=jnp.asarray(self.oracle, dtype), depth=jnp.asarray(self.depth, dtype), funding=funding)

    def scenarios(self, first: int, n: int) -> "Paths":
        """Scenarios ``[first, first + n)`` of these paths."""
        return jax.tree_util.tree_map(lambda x: x[first:first + n], self)
