"""GARCH(1,1) price paths: volatility that clusters, as it does before and during crashes."""
from __future__ import annotations

from functools import partial

import numpy as np
import jax
import jax.numpy as jnp
from jax import Array, lax

from ...model.errors import InputError, as_host
from .prices import DIFFUSION, YEAR, checked_inputs, correlate, market_vector, prices_from_returns, scenario_keys


def garch(key, start, *, n_scenarios: int, n_steps: int, dt: float, vol, alpha, beta, drift=0.0, corr=None,
          start_vol=None, dtype=None, first_scenario: int = 0) -> Array:
    """GARCH(1,1) log returns with correlated shocks.

    Per market, with ``h = dt / YEAR`` and ``v = vol²·h`` the long-run
    variance of one step's return::

        ε_t  = σ_t · z_t                                  (z correlated by corr)
        r_t  = drift·h − σ_t²/2 + ε_t                     (the step's log return)
        σ²_{t+1} = v·(1 − α − β) + α·ε_t² + β·σ_t²

    A large move raises the next steps' variance (``α``) and the raise decays
    at rate ``α + β`` per step: volatility clusters. The unconditional
    variance of a step's return is ``v`` (``vol`` is the long-run annualised
    volatility), and with ``start_vol = vol`` (the default) ``E[σ_t²] = v`` at
    every step. The lag-1 autocorrelation of ``ε²`` is
    ``α·(1 − αβ − β²) / (1 − 2αβ − β²)`` (finite when ``β² + 2αβ + 3α² < 1``).
    With ``α = β = 0`` this is :func:`~adljax.generate.prices.gbm` with the
    same key (to rounding). Parameters are per step, so the clustering's time scale is
    ``dt / (1 − α − β)`` seconds: choose them for the ``dt`` you simulate.

    Args:
      key: ``jax.random.key``.
      start: [A] start prices, USD.
      n_scenarios, n_steps: S and T (T counts step 0, the start).
      dt: seconds per step.
      vol: [A] or scalar, long-run annualised volatility (> 0).
      alpha, beta: [A] or scalar, ≥ 0 with ``alpha + beta < 1``.
      drift: [A] or scalar, annualised.
      corr: [A, A] correlation of the shocks ``z``; identity if None.
      start_vol: [A] or scalar, annualised volatility of the first step
        (default ``vol``): start high to begin inside a storm.
      dtype: float dtype (default: JAX's default float).
      first_scenario: number of the first scenario generated (for batches).
    Returns:
      [S, T, A] prices; ``[:, 0] == start``.
    """
    start, chol = checked_inputs(key, start, corr, n_scenarios, n_steps, dt, first_scenario, dtype)
    a = start.shape[0]
    vol = market_vector("vol", vol, a, start.dtype, positive=True, allow_zero=False)
    alpha = market_vector("alpha", alpha, a, start.dtype, positive=True)
    beta = market_vector("beta", beta, a, start.dtype, positive=True)
    drift = market_vector("drift", drift, a, start.dtype)
    start_vol = vol if start_vol is None else market_vector("start_vol", start_vol, a, start.dtype, positive=True)
    persistence = as_host(alpha + beta)
    if persistence is not None and np.any(persistence >= 1):
        raise InputError(f"alpha, beta: need alpha + beta < 1 in every market (stationary variance), got "
                         f"{np.asarray(persistence).tolist()}")
    keys = scenario_keys(key, n_scenarios, first_scenario)
    h = jnp.asarray(dt / YEAR, start.dtype)
    return _garch(keys, start, vol**2 * h, alpha, beta, drift * h, start_vol**2 * h, chol, n_steps)


@partial(jax.jit, static_argnames=("n_steps",))
def _garch(keys, start, v, alpha, beta, mu, var0, chol, n_steps):
    omega = v * (1.0 - alpha - beta)

    def one(k):
        z = correlate(jax.random.normal(jax.random.fold_in(k, DIFFUSION), (n_steps - 1, chol.shape[0]), chol.dtype),
                      chol)

        def step(var, zt):
            eps = jnp.sqrt(var) * zt
            return omega + alpha * eps**2 + beta * var, mu - 0.5 * var + eps

        _, r = lax.scan(step, var0, z)
        return r

    return prices_from_returns(start, jax.vmap(one)(keys))
