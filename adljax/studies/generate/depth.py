"""Book depth that thins when prices move: the mechanism that turns a crash into bad debt."""
from __future__ import annotations

import numpy as np
import jax
import jax.numpy as jnp
from jax import Array

from ...model.errors import InputError, check_positive, check_range


def thinning_depth(oracle: Array, base_depth, *, calm_move, thinning: float = 1.0, floor: float = 0.02) -> Array:
    """Depth per step ``base·max(floor, 1/(1 + thinning·|r|/calm_move))``, ``r`` the step's log return.

    Works with the prices of any generator (:func:`~adljax.generate.gbm`,
    :func:`~adljax.generate.merton`, :func:`~adljax.generate.garch`,
    :func:`~adljax.generate.bootstrap`, a stress shape or a user's own [S, T, A]
    array): it only looks at each step's move. Step 0 has no move and gets the
    full ``base_depth``. Each scenario's depth depends on its own prices only,
    so batches split the same way as the prices. For a diffusion with
    annualised volatility ``vol`` a calm one-step move is
    ``calm_move = vol·sqrt(dt / YEAR)``.

    Args:
      oracle: [S, T, A] prices, > 0.
      base_depth: [A] or scalar, USD per side per step in calm markets (≥ 0).
      calm_move: [A] or scalar, the size of a calm one-step log return
        (> 0); a move of that size halves the depth when ``thinning = 1``.
      thinning: how fast depth falls with the size of the move (≥ 0).
      floor: the least share of ``base_depth`` that is left, in [0, 1].
    Returns:
      [S, T, A] USD, the ``depth`` of :class:`~adljax.model.paths.Paths`.
    """
    if np.ndim(oracle) != 3:
        raise InputError(f"oracle: expected [S scenarios, T steps, A markets], got shape {tuple(np.shape(oracle))}")
    a = np.shape(oracle)[2]
    for name, v in (("base_depth", base_depth), ("calm_move", calm_move)):
        if np.ndim(v) > 1 or (np.ndim(v) == 1 and np.shape(v)[0] not in (1, a)):
            raise InputError(f"{name}: expected a scalar or [{a}] (one per market), got shape {tuple(np.shape(v))}")
    check_positive("base_depth", base_depth, allow_zero=True)
    check_positive("calm_move", calm_move)
    check_positive("thinning", thinning, allow_zero=True)
    check_range("floor", floor, 0.0, 1.0)
    oracle = jnp.asarray(oracle)
    dtype = oracle.dtype
    return _thinning(oracle, jnp.asarray(base_depth, dtype), jnp.asarray(calm_move, dtype),
                     jnp.asarray(thinning, dtype), jnp.asarray(floor, dtype))


@jax.jit
def _thinning(oracle, base_depth, calm_move, thinning, floor):
    logp = jnp.log(oracle)
    r = jnp.concatenate([jnp.zeros_like(logp[:, :1]), jnp.diff(logp, axis=1)], axis=1)
    share = jnp.maximum(floor, 1.0 / (1.0 + thinning * jnp.abs(r) / calm_move))
    return base_depth * share
