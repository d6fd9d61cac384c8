"""Price paths: oracle prices and book depth per scenario, step and market."""
from __future__ import annotations

import numpy as np
import jax.numpy as jnp
from jax import Array

from ._pytree import pytree
from .errors import InputError, check_positive


@pytree
class Paths:
    """Scenario inputs, one row per scenario.

    Attributes:
      oracle: [S, T, A] oracle (index) price, USD per unit, > 0.
      depth: [S, T, A] USD notional the book absorbs on each side in one step
        (the liquidation orders of a step fill pro-rata up to it), ≥ 0.
    """

    oracle: Array
    depth: Array

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
                raise InputError(f"paths.{name}: expected [S scenarios, T steps, A markets], got shape {tuple(np.shape(x))}{hint}")
        if np.shape(self.depth) != np.shape(self.oracle):
            raise InputError(f"paths.depth: shape {tuple(np.shape(self.depth))} does not match paths.oracle {tuple(np.shape(self.oracle))}")
        s, t, a = np.shape(self.oracle)
        if s < 1 or t < 1:
            raise InputError(f"paths.oracle: needs at least one scenario and one step, got shape {(s, t, a)}")
        if n_markets is not None and a != n_markets:
            raise InputError(f"paths.oracle: has {a} markets but the book has {n_markets}")
        check_positive("paths.oracle", self.oracle)
        check_positive("paths.depth", self.depth, allow_zero=True)

    def astype(self, dtype) -> "Paths":
        return Paths(oracle=jnp.asarray(self.oracle, dtype), depth=jnp.asarray(self.depth, dtype))
