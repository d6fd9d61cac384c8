"""Book depth that thins when prices move: the mechanism that turns a crash into bad debt."""
from __future__ import annotations

import jax.numpy as jnp
from jax import Array


def thinning_depth(oracle: Array, base_depth, *, calm_move: float, thinning: float = 1.0, floor: float = 0.02) -> Array:
    """Depth per step ``base·max(floor, 1/(1 + thinning·|r|/calm_move))``.

    Args:
      oracle: [S, T, A] prices.
      base_depth: [A] or scalar, USD per side per step in calm markets.
      calm_move: the size of a calm one-step log return (e.g. the step's
        volatility); a move of that size halves the depth when ``thinning = 1``.
      thinning: how fast depth falls with the size of the move.
      floor: the least share of ``base_depth`` that is left.
    Returns:
      [S, T, A] USD.
    """
    logp = jnp.log(oracle)
    r = jnp.concatenate([jnp.zeros_like(logp[:, :1]), jnp.diff(logp, axis=1)], axis=1)
    share = jnp.maximum(floor, 1.0 / (1.0 + thinning * jnp.abs(r) / calm_move))
    return jnp.asarray(base_depth, oracle.dtype) * share
