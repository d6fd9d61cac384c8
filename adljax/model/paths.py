"""Price paths: oracle prices and book depth per scenario, step and market."""
from __future__ import annotations

import numpy as np
import jax
import jax.numpy as jnp
from jax import Array

from .pytree import pytree
from .errors import InputError, as_host, check_finite, check_positive


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
    """

    oracle: Array
    depth: Array
    funding: Array | None = None

    @property
    def n_scenarios(self) -> int:
        return self.oracle.shape[0]

    @property
    def n_steps(self) -> int:
        return self.oracle.shape[1]

    @property
    def n_markets(self) -> int:
        return self.oracle.shape[2]

    def validate(self, n_markets: int | None = None) -> None:
        """Raise :class:`InputError` naming the field for bad shapes or values."""
        for name in ("oracle", "depth"):
            x = getattr(self, name)
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
            if np.shape(self.funding) != np.shape(self.oracle):
                raise InputError(f"paths.funding: shape {tuple(np.shape(self.funding))} does not match paths.oracle "
                                 f"{tuple(np.shape(self.oracle))}")
            check_finite("paths.funding", self.funding)
            h = as_host(self.funding)
            if h is not None and np.any(np.abs(h) >= 1):
                idx = tuple(int(i) for i in np.argwhere(np.abs(h) >= 1)[0])
                raise InputError(f"paths.funding: rate {h[idx]!r} at index {idx} is a fraction of notional per step "
                                 "and must be in (-1, 1)")

    def astype(self, dtype) -> "Paths":
        funding = None if self.funding is None else jnp.asarray(self.funding, dtype)
        return Paths(oracle=jnp.asarray(self.oracle, dtype), depth=jnp.asarray(self.depth, dtype), funding=funding)

    def scenarios(self, first: int, n: int) -> "Paths":
        """Scenarios ``[first, first + n)`` of these paths."""
        return jax.tree_util.tree_map(lambda x: x[first:first + n], self)
