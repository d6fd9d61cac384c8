"""Price-path generators: [S, T, A] oracle prices from a ``jax.random.key``.

Volatilities and drifts are annualised (a year of 365 days); ``dt`` is in
seconds, as everywhere in adljax. Step ``0`` of every path is the start price.
"""
from __future__ import annotations

import numpy as np
import jax
import jax.numpy as jnp
from jax import Array

from ..errors import InputError

YEAR = 365.0 * 24 * 3600.0


def _cholesky(corr, n_markets: int) -> Array:
    c = np.eye(n_markets) if corr is None else np.asarray(corr, dtype=np.float64)
    if c.shape != (n_markets, n_markets):
        raise InputError(f"corr: expected [{n_markets}, {n_markets}], got {c.shape}")
    if not np.allclose(c, c.T) or not np.allclose(np.diag(c), 1.0):
        raise InputError("corr: must be symmetric with ones on the diagonal")
    try:
        return jnp.asarray(np.linalg.cholesky(c))
    except np.linalg.LinAlgError:
        raise InputError(f"corr: not positive definite (eigenvalues {np.round(np.linalg.eigvalsh(c), 6).tolist()})") from None


def correlated_normals(key, shape: tuple[int, int], corr, dtype=None) -> Array:
    """Standard normals [S, T, A] with correlation ``corr`` [A, A] across markets."""
    s, t = shape
    chol = _cholesky(corr, np.shape(corr)[0] if corr is not None else 1)
    a = chol.shape[0]
    z = jax.random.normal(key, (s, t, a), dtype=dtype or jnp.result_type(float))
    return z @ chol.T.astype(z.dtype)


def gbm(key, start, *, n_scenarios: int, n_steps: int, dt: float, vol, drift=0.0, corr=None, dtype=None) -> Array:
    """Geometric Brownian motion with correlated markets.

    Args:
      key: ``jax.random.key``.
      start: [A] start prices, USD.
      n_scenarios, n_steps: S and T.
      dt: seconds per step.
      vol, drift: [A] or scalar, annualised.
      corr: [A, A] correlation matrix (positive definite); identity if None.
    Returns:
      [S, T, A] prices; ``[:, 0] == start``.
    """
    start = jnp.asarray(start, dtype=dtype or jnp.result_type(float))
    a = start.shape[0]
    corr = np.eye(a) if corr is None else corr
    h = dt / YEAR
    vol = jnp.broadcast_to(jnp.asarray(vol, start.dtype), (a,))
    drift = jnp.broadcast_to(jnp.asarray(drift, start.dtype), (a,))
    z = correlated_normals(key, (n_scenarios, n_steps - 1), corr, start.dtype)
    r = (drift - 0.5 * vol**2) * h + vol * np.sqrt(h) * z
    logp = jnp.concatenate([jnp.zeros((n_scenarios, 1, a), start.dtype), jnp.cumsum(r, axis=1)], axis=1)
    return start * jnp.exp(logp)


def merton(key, start, *, n_scenarios: int, n_steps: int, dt: float, vol, drift=0.0, corr=None,
           jump_rate=0.0, jump_mean=0.0, jump_std=0.0, dtype=None) -> Array:
    """Merton jump-diffusion: GBM plus Poisson jumps with normal log-sizes.

    ``jump_rate`` is jumps per year per market; a jump multiplies the price by
    ``exp(N(jump_mean, jump_std))``. Jumps hit markets independently.
    """
    k1, k2, k3 = jax.random.split(key, 3)
    p = gbm(k1, start, n_scenarios=n_scenarios, n_steps=n_steps, dt=dt, vol=vol, drift=drift, corr=corr, dtype=dtype)
    a = p.shape[-1]
    lam = jnp.broadcast_to(jnp.asarray(jump_rate, p.dtype), (a,)) * dt / YEAR
    n = jax.random.poisson(k2, lam, (n_scenarios, n_steps - 1, a)).astype(p.dtype)
    sizes = n * jump_mean + jnp.sqrt(n) * jump_std * jax.random.normal(k3, n.shape, p.dtype)
    logj = jnp.concatenate([jnp.zeros((n_scenarios, 1, a), p.dtype), jnp.cumsum(sizes, axis=1)], axis=1)
    return p * jnp.exp(logj)
