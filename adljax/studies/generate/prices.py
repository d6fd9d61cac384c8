"""Price-path generators: [S, T, A] oracle prices from a ``jax.random.key``.

Volatilities and drifts are annualised (a year of 365 days, :data:`YEAR`
seconds); ``dt`` is in seconds, as everywhere in adljax. Step ``0`` of every
path is the start price, so a path of ``n_steps`` steps has ``n_steps − 1``
returns.

Reproducible in any batch split: scenario ``i`` of a call draws only from
``jax.random.fold_in(key, first_scenario + i)``, so generating scenarios
``[k, k + n)`` with ``first_scenario=k, n_scenarios=n`` gives exactly (bit for
bit) the rows ``k .. k+n−1`` of one big run. Inside a scenario every random
stream (diffusion, jump times, jump sizes) is its own ``fold_in`` of the
scenario key, so :func:`merton` with ``jump_rate=0`` is :func:`gbm`, and
:func:`~adljax.generate.garch.garch` with ``alpha=beta=0`` is too (to rounding).
Correlation is applied by an explicit sum over markets in a fixed order (not a
matrix product, whose summation order a backend may pick by batch size), so
every number of a scenario is independent of how many are generated with it.
"""
from __future__ import annotations

from functools import partial

import numpy as np
import jax
import jax.numpy as jnp
from jax import Array, lax

from ...model.errors import InputError, check_finite, check_positive

YEAR = 365.0 * 24 * 3600.0
"""Seconds in the year that annualised volatilities and drifts refer to."""

# Random streams inside one scenario: each is ``fold_in(scenario_key, stream)``.
DIFFUSION, JUMP_COUNTS, JUMP_SIZES, RESAMPLE = 0, 1, 2, 3


# ---- keys -------------------------------------------------------------------
def check_key(key) -> None:
    """Raise :class:`InputError` unless ``key`` is a JAX PRNG key (``jax.random.key(seed)``)."""
    if isinstance(key, jax.core.Tracer):
        return
    typed = hasattr(key, "dtype") and jnp.issubdtype(key.dtype, jax.dtypes.prng_key)
    raw = hasattr(key, "dtype") and key.dtype == np.uint32 and np.shape(key) == (2,)
    if not (typed and np.shape(key) == ()) and not raw:
        raise InputError(f"key: expected one JAX random key, e.g. jax.random.key(0), got {type(key).__name__}"
                         f"{' of shape ' + str(tuple(np.shape(key))) if hasattr(key, 'shape') else ''} {key!r:.60}")


def check_batch(n_scenarios, n_steps, first_scenario) -> None:
    """Check the batch arguments every generator takes (Python ints)."""
    for name, v, lo in (("n_scenarios", n_scenarios, 1), ("n_steps", n_steps, 1),
                        ("first_scenario", first_scenario, 0)):
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < lo:
            raise InputError(f"{name}: must be an integer >= {lo}, got {v!r}")
    if first_scenario + n_scenarios > 2**32:
        raise InputError(f"first_scenario: scenarios are numbered below 2**32; {first_scenario} + {n_scenarios} "
                         "is past it")


def check_dt(dt) -> None:
    """``dt``: seconds per step, a finite number > 0."""
    if (isinstance(dt, bool) or not isinstance(dt, (int, float, np.integer, np.floating)) or not np.isfinite(dt)
            or dt <= 0):
        raise InputError(f"dt: must be a number of seconds > 0, got {dt!r}")


def scenario_keys(key, n_scenarios: int, first_scenario: int = 0) -> Array:
    """Per-scenario keys [S]: ``fold_in(key, first_scenario + i)`` for ``i < n_scenarios``."""
    check_key(key)
    check_batch(n_scenarios, 1, first_scenario)
    idx = jnp.arange(n_scenarios, dtype=jnp.uint32) + jnp.uint32(first_scenario)
    return jax.vmap(jax.random.fold_in, in_axes=(None, 0))(key, idx)


# ---- correlation --------------------------------------------------------------
def _cholesky(corr, n_markets: int) -> Array:
    c = np.eye(n_markets) if corr is None else np.asarray(corr, dtype=np.float64)
    if c.shape != (n_markets, n_markets):
        raise InputError(f"corr: expected [{n_markets}, {n_markets}], got {c.shape}")
    if not np.all(np.isfinite(c)):
        raise InputError("corr: contains NaN or infinite values")
    if not np.allclose(c, c.T) or not np.allclose(np.diag(c), 1.0):
        raise InputError("corr: must be symmetric with ones on the diagonal")
    try:
        return jnp.asarray(np.linalg.cholesky(c))
    except np.linalg.LinAlgError:
        raise InputError(f"corr: not positive definite (eigenvalues "
                         f"{np.round(np.linalg.eigvalsh(c), 6).tolist()})") from None


def correlate(z: Array, chol: Array) -> Array:
    """``z @ chol.T`` over the last axis, summed market by market in a fixed order.

    Args:
      z: [..., A] independent standard normals.
      chol: [A, A] lower Cholesky factor of the correlation matrix.
    Returns:
      [..., A] normals with correlation ``chol @ chol.T``.
    """
    chol = chol.astype(z.dtype)
    a = chol.shape[0]

    def add(j, acc):
        zj = lax.dynamic_index_in_dim(z, j, axis=-1, keepdims=True)
        return acc + zj * lax.dynamic_index_in_dim(chol, j, axis=1, keepdims=False)

    return lax.fori_loop(0, a, add, jnp.zeros_like(z))


def correlated_normals(key, shape: tuple[int, int], corr, dtype=None, *, first_scenario: int = 0) -> Array:
    """Standard normals [S, T, A] with correlation ``corr`` [A, A] across markets.

    Args:
      key: ``jax.random.key``.
      shape: ``(S, T)``: scenarios and draws per scenario.
      corr: [A, A] correlation matrix, or None for one market.
      first_scenario: number of the first scenario; scenario ``i`` draws from
        ``fold_in(key, first_scenario + i)`` (its diffusion stream).
    """
    s, t = shape
    check_batch(s, max(t, 1), first_scenario)
    chol = _cholesky(corr, np.shape(corr)[0] if corr is not None else 1)
    dtype = jnp.dtype(dtype or jnp.result_type(float))
    keys = scenario_keys(key, s, first_scenario)
    return _normals(keys, chol.astype(dtype), t)


@partial(jax.jit, static_argnames=("n",))
def _normals(keys, chol, n):
    def one(k):
        z = jax.random.normal(jax.random.fold_in(k, DIFFUSION), (n, chol.shape[0]), chol.dtype)
        return correlate(z, chol)
    return jax.vmap(one)(keys)


# ---- shared helpers --------------------------------------------------------------
def market_vector(name: str, v, a: int, dtype, *, positive=False, allow_zero=True) -> Array:
    """Broadcast a scalar or [A] parameter to [A], checking it when it is concrete."""
    if np.ndim(v) > 1 or (np.ndim(v) == 1 and np.shape(v)[0] not in (1, a)):
        raise InputError(f"{name}: expected a scalar or [{a}] (one per market), got shape {tuple(np.shape(v))}")
    if positive:
        check_positive(name, v, allow_zero=allow_zero)
    else:
        check_finite(name, v)
    return jnp.broadcast_to(jnp.asarray(v, dtype), (a,))


def start_prices(start, dtype) -> Array:
    """[A] start prices, checked > 0."""
    dtype = jnp.dtype(dtype or jnp.result_type(float))
    if np.ndim(start) != 1 or np.shape(start)[0] < 1:
        raise InputError(f"start: expected [A markets] start prices, got shape {tuple(np.shape(start))}")
    check_positive("start", start)
    return jnp.asarray(start, dtype)


def prices_from_returns(start: Array, r: Array) -> Array:
    """``start · exp(cumsum r)`` with step 0 at ``start``: r [..., T−1, A] → [..., T, A]."""
    zero = jnp.zeros_like(r[..., :1, :])
    return start * jnp.exp(jnp.concatenate([zero, jnp.cumsum(r, axis=-2)], axis=-2))


# ---- generators -------------------------------------------------------------------
def checked_inputs(key, start, corr, n_scenarios, n_steps, dt, first_scenario, dtype):
    """The checks every path generator makes; returns ``(start [A], Cholesky factor [A, A])``."""
    check_key(key)
    check_batch(n_scenarios, n_steps, first_scenario)
    check_dt(dt)
    start = start_prices(start, dtype)
    return start, _cholesky(corr, start.shape[0]).astype(start.dtype)


def gbm(key, start, *, n_scenarios: int, n_steps: int, dt: float, vol, drift=0.0, corr=None, dtype=None,
        first_scenario: int = 0) -> Array:
    """Geometric Brownian motion with correlated markets.

    Each step's log return is ``(drift − vol²/2)·h + vol·√h·z`` with
    ``h = dt / YEAR`` and ``z`` standard normals correlated by ``corr``, so
    ``E[price_t] = start·exp(drift·t)``.

    Args:
      key: ``jax.random.key``.
      start: [A] start prices, USD.
      n_scenarios, n_steps: S and T (T counts step 0, the start).
      dt: seconds per step.
      vol, drift: [A] or scalar, annualised (vol ≥ 0).
      corr: [A, A] correlation matrix (positive definite); identity if None.
      dtype: float dtype (default: JAX's default float).
      first_scenario: number of the first scenario generated (for batches).
    Returns:
      [S, T, A] prices; ``[:, 0] == start``.
    """
    start, chol = checked_inputs(key, start, corr, n_scenarios, n_steps, dt, first_scenario, dtype)
    a = start.shape[0]
    vol = market_vector("vol", vol, a, start.dtype, positive=True)
    drift = market_vector("drift", drift, a, start.dtype)
    keys = scenario_keys(key, n_scenarios, first_scenario)
    return _gbm(keys, start, vol, drift, chol, jnp.asarray(dt / YEAR, start.dtype), n_steps)


def _diffusion(k, vol, drift, chol, h, n):
    z = correlate(jax.random.normal(jax.random.fold_in(k, DIFFUSION), (n, chol.shape[0]), chol.dtype), chol)
    return (drift - 0.5 * vol**2) * h + vol * jnp.sqrt(h) * z


@partial(jax.jit, static_argnames=("n_steps",))
def _gbm(keys, start, vol, drift, chol, h, n_steps):
    r = jax.vmap(lambda k: _diffusion(k, vol, drift, chol, h, n_steps - 1))(keys)
    return prices_from_returns(start, r)


def merton(key, start, *, n_scenarios: int, n_steps: int, dt: float, vol, drift=0.0, corr=None,
           jump_rate=0.0, jump_mean=0.0, jump_std=0.0, dtype=None, first_scenario: int = 0) -> Array:
    """Merton jump-diffusion: :func:`gbm` plus Poisson jumps with normal log-sizes.

    In each step and market the number of jumps is Poisson with mean
    ``jump_rate·dt/YEAR``; each jump multiplies the price by
    ``exp(N(jump_mean, jump_std²))``. Jumps hit markets independently (for a
    move that hits every market at once, apply a
    :mod:`~adljax.generate.stress` shape on top). ``drift`` is the diffusion's
    drift; the jumps add ``jump_rate·jump_mean`` per year to the mean log move.
    With ``jump_rate = 0`` the result equals :func:`gbm` with the same key.

    Args:
      key, start, n_scenarios, n_steps, dt, vol, drift, corr, dtype,
        first_scenario: as :func:`gbm`.
      jump_rate: [A] or scalar, jumps per year per market (≥ 0).
      jump_mean, jump_std: [A] or scalar, mean and standard deviation of a
        jump's log size (``jump_mean = −0.05`` is a 4.9 % fall).
    Returns:
      [S, T, A] prices; ``[:, 0] == start``.
    """
    start, chol = checked_inputs(key, start, corr, n_scenarios, n_steps, dt, first_scenario, dtype)
    a = start.shape[0]
    vol = market_vector("vol", vol, a, start.dtype, positive=True)
    drift = market_vector("drift", drift, a, start.dtype)
    rate = market_vector("jump_rate", jump_rate, a, start.dtype, positive=True)
    jmean = market_vector("jump_mean", jump_mean, a, start.dtype)
    jstd = market_vector("jump_std", jump_std, a, start.dtype, positive=True)
    keys = scenario_keys(key, n_scenarios, first_scenario)
    h = jnp.asarray(dt / YEAR, start.dtype)
    lam = rate * h
    terms = poisson_terms(lam)
    return _merton(keys, start, vol, drift, chol, h, lam, jmean, jstd, n_steps, terms)


def poisson_terms(lam) -> int:
    """How many terms of the Poisson distribution :func:`poisson_counts` needs for means ``lam`` (0: use JAX's sampler).

    A K with ``P(N > K) < 1e-17`` for the largest mean (a power of two, at
    least 16), when the means are concrete and at most 50; 0 otherwise
    (traced or large means).
    """
    try:
        top = float(np.max(np.asarray(lam, dtype=np.float64)))
    except (TypeError, jax.errors.ConcretizationTypeError, jax.errors.TracerArrayConversionError):
        return 0
    if top > 50.0:
        return 0
    # Past k ≥ 2·mean the terms at least halve, so P(N > k) ≤ P(N = k).
    k, logp = 0, -top
    while top > 0.0 and not (k >= 2 * top and logp < np.log(1e-17)):
        k += 1
        logp += np.log(top) - np.log(k)
    return max(16, 1 << (k - 1).bit_length())      # a power of two: fewer compiled variants


def poisson_counts(key, lam: Array, shape: tuple, terms: int, dtype) -> Array:
    """Poisson counts with means ``lam`` (broadcast to ``shape``), by inversion over ``terms`` terms.

    ``n = #{k < terms : u < P(N > k)}`` with ``u`` uniform: exact up to the
    mass beyond ``terms`` (below 1e-17, see :func:`poisson_terms`). The tail
    probabilities are sums of positive terms, so a jump probability of 1e-9
    per step is as accurate as one of 0.1 (in float32 the uniform comes from
    32 random bits, resolving probabilities down to 2**-32). With
    ``terms = 0`` it falls back to ``jax.random.poisson``.
    """
    if terms == 0:
        return jax.random.poisson(key, lam, shape).astype(dtype)
    lam = jnp.asarray(lam, dtype)
    j = jnp.arange(1, terms + 1, dtype=dtype)
    safe = jnp.where(lam > 0, lam, 1.0)[..., None]
    logp = -lam[..., None] + j * jnp.log(safe) - lax.lgamma(j + 1.0)          # [..., K] log P(N = j)
    p = jnp.where(lam[..., None] > 0, jnp.exp(logp), 0.0)
    tail = jnp.flip(jnp.cumsum(jnp.flip(p, -1), -1), -1)                        # [..., K] P(N > k), k = 0..K-1
    if jnp.dtype(dtype) == jnp.float64:
        u = jax.random.uniform(key, shape, dtype)
    else:
        bits = jax.random.bits(key, shape, jnp.uint32)
        u = (bits.astype(dtype) + 0.5) * (2.0 ** -32)
    return jnp.sum(u[..., None] < tail, axis=-1).astype(dtype)


@partial(jax.jit, static_argnames=("n_steps", "terms"))
def _merton(keys, start, vol, drift, chol, h, lam, jmean, jstd, n_steps, terms):
    def one(k):
        r = _diffusion(k, vol, drift, chol, h, n_steps - 1)
        shape = r.shape
        n = poisson_counts(jax.random.fold_in(k, JUMP_COUNTS), lam, shape, terms, r.dtype)
        eps = jax.random.normal(jax.random.fold_in(k, JUMP_SIZES), shape, r.dtype)
        return r + n * jmean + jnp.sqrt(n) * jstd * eps
    return prices_from_returns(start, jax.vmap(one)(keys))
