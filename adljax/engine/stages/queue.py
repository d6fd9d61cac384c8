"""Taking ``need`` units from the top of a ranked queue without sorting it.

ADL closes counterparties highest score first, each up to its whole
position, the last one partially. Sorting every scenario's book in every
step with ADL is what made a first prototype ~70× slower than the rest of
the step (DESIGN.md §3). Instead we find the score cut-off by bisection over
the bits of an order-preserving integer image of the score: ``nbits``
masked sums (32 in float32, 64 in float64), each ``O(R)``, or ``O(K)`` over
the K rows that can hold the side's candidates when the caller gathers them
(``rows``; :func:`adljax.engine.stages.adl.queue_rows`). Candidates above the
cut-off close whole; those exactly at it (equal scores) share the rest pro
rata. The allocation is exactly that of walking the sorted queue.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
from jax import Array, custom_batching, lax

from ..skip import run_if
from ..smooth import smoothstep


def order_key(score: Array) -> Array:
    """Unsigned integers with the same order as the float ``score`` (NaN-free), same width."""
    bits = {jnp.dtype("float32"): 32, jnp.dtype("float64"): 64}[score.dtype]
    utype = jnp.uint32 if bits == 32 else jnp.uint64
    # −0.0 and +0.0 are the same score, so a zero is written as +0.0 before the bitcast (else a tie
    # of two zero scores would become an order). `score + 0.0` would not do it: XLA simplifies x + 0 to x.
    b = lax.bitcast_convert_type(jnp.where(score == 0, jnp.zeros_like(score), score), utype)
    sign = jnp.asarray(1, utype) << jnp.asarray(bits - 1, utype)
    negative = (b & sign) != 0
    return jnp.where(negative, ~b, b | sign)


def take_from_top(score: Array, weight: Array, need: Array, rows: tuple[Array, Array] | None = None) -> Array:
    """Units each candidate closes when ``need`` units are taken from the top of the queue.

    Args:
      score: [..., A, R] ranking (higher goes first), finite or ±inf.
      weight: [..., A, R] units each candidate can give (0 for non-candidates).
      need: [..., A] units to take per market (queue).
      rows: optional ``(index, valid)`` from :func:`rows_of`, [..., A, K] each: rows that hold
        every positive ``weight`` of their market (a row outside them must have weight 0).
        The cut-off's bisection then sweeps those K rows instead of all R; the answer is
        the same (up to the rounding of its sums, which run in another order).
    Returns:
      [..., A, R] units taken from each candidate; sums to ``min(need, Σ weight)``.
    """
    key = order_key(score)
    total = jnp.sum(weight, axis=-1)
    # The cut-off is piecewise constant in every input: no gradient flows through it (and
    # the CPU's looped batching below cannot be differentiated).
    if rows is None:
        cutoff = _cutoff(key, lax.stop_gradient(weight), lax.stop_gradient(need))
    else:
        idx, valid = rows
        some_key = jnp.take_along_axis(key, idx, axis=-1)
        some_weight = jnp.where(valid, jnp.take_along_axis(lax.stop_gradient(weight), idx, axis=-1), 0.0)
        cutoff = _cutoff(some_key, some_weight, lax.stop_gradient(need))
    cut = cutoff[..., None]
    full = jnp.where(key > cut, weight, 0.0)
    tied = jnp.where(key == cut, weight, 0.0)
    rest = need - jnp.sum(full, axis=-1)
    tied_total = jnp.sum(tied, axis=-1)
    share = jnp.where(tied_total > 0, jnp.clip(rest / jnp.where(tied_total > 0, tied_total, 1.0), 0.0, 1.0), 0.0)
    taken = full + tied * share[..., None]
    # When the need covers every candidate, each closes exactly its whole position.
    taken = jnp.where((need >= total)[..., None], weight, taken)
    return jnp.where(need[..., None] > 0, taken, 0.0)


def rows_of(mask: Array, k: int) -> tuple[Array, Array]:
    """``(index [A, K] int32, valid [A, K] bool)``: the first ``k`` rows where ``mask`` [A, R] holds, per market.

    ``valid`` marks the entries that are such rows (a market with fewer than
    ``k`` has the rest pointing at row 0, not valid). ``k`` (static) must be at
    least the largest count, or rows are left out.
    """
    index = jax.vmap(lambda m: jnp.nonzero(m, size=k, fill_value=0)[0])(mask).astype(jnp.int32)
    return index, jnp.arange(k) < jnp.sum(mask, axis=-1, dtype=jnp.int32)[:, None]


def _bisect(key: Array, weight: Array, need: Array) -> Array:
    """[..., A] the largest key ``c`` with ``Σ weight[key ≥ c] ≥ need``, bit by bit."""
    utype = key.dtype
    bits = jnp.iinfo(utype).bits
    total = jnp.sum(weight, axis=-1)

    def search(key, weight, need):
        def body(i, cutoff):
            trial = cutoff | (jnp.asarray(1, utype) << (jnp.asarray(bits - 1, utype) - jnp.asarray(i, utype)))
            above = jnp.sum(jnp.where(key >= trial[..., None], weight, 0.0), axis=-1)
            return jnp.where(above >= need, trial, cutoff)
        return lax.fori_loop(0, bits, body, jnp.zeros(need.shape, utype))

    # The bisection is the stage's cost; a queue with nothing to cut (no need, or a need
    # that takes every candidate, e.g. the side of a crash with no bankrupt rows) skips it.
    return run_if(jnp.any((need > 0) & (need < total)), search, jnp.zeros(need.shape, utype), key, weight, need)


# Batched over scenarios, the bisection's 32–64 sweeps of a [S, A, R] array run from
# memory; one scenario's [A, R] stays in the CPU's cache across them. So on CPU a batch is
# looped one scenario at a time (custom batching rule), and each skips its own sweeps when
# it has nothing to cut. 32 × 4098 × 4, float32, 2-core CPU, the ADL stage on a mid-cascade
# book: vmapped with the looped cut-off 7.9 ms, looping the whole stage 10–11 ms, vmapping
# all of it 31 ms (a one-off timing, docs/performance.md). On accelerators the batch is
# what fills the device.
_looped_bisect = custom_batching.sequential_vmap(_bisect)


def _cutoff(key: Array, weight: Array, need: Array) -> Array:
    # Op by op (``jax.disable_jit``) the looped bisection's scenarios would each be compiled as
    # one program (a custom_vmap's rule is traced, and its conditional compiled whole).
    looped = jax.default_backend() == "cpu" and not jax.config.jax_disable_jit
    return (_looped_bisect if looped else _bisect)(key, weight, need)


def take_soft(score: Array, weight: Array, need: Array, temperature: float) -> Array:
    """The smooth mode's queue: ``take_from_top`` with the cut-off made a ramp.

    Each candidate closes ``weight·g((z − c)/τ)`` with ``z = asinh(score)``
    and ``g(u) = smoothstep(u + 1/2)`` (:mod:`adljax.engine.smooth`); the cut-off
    ``c`` is set by bisection so that the candidates close ``need`` in all.
    Candidates whose ``z`` is above ``c + τ/2`` close whole, those below
    ``c − τ/2`` nothing, and the band between shares the rest: as ``τ → 0``
    this is the hard queue. The cut-off's gradient is the implicit one
    (``Σ taken = need`` held fixed), so the allocation responds smoothly to
    changes of scores, capacities and need.

    Args: as :func:`take_from_top`, plus ``temperature`` (> 0, asinh-score units).
    Returns: [..., A, R] units taken; sums to ``min(need, Σ weight)``.
    """
    tau = temperature
    z = jnp.arcsinh(jnp.clip(score, -1e30, 1e30))
    active = weight > 0
    total = jnp.sum(weight, axis=-1)
    ramp = lambda c: smoothstep((z - c[..., None]) / tau + 0.5)
    F = lambda c: jnp.sum(weight * ramp(c), axis=-1)

    lo = jnp.min(jnp.where(active, z, jnp.inf), axis=-1) - tau       # F(lo) = total
    hi = jnp.max(jnp.where(active, z, -jnp.inf), axis=-1) + tau      # F(hi) = 0
    lo = jnp.where(jnp.isfinite(lo), lo, 0.0)
    hi = jnp.where(jnp.isfinite(hi), hi, 0.0)
    target = jnp.minimum(need, total)

    def body(_, bounds):
        a, b = bounds
        mid = 0.5 * (a + b)
        enough = F(mid) >= target
        return jnp.where(enough, mid, a), jnp.where(enough, b, mid)

    a, b = lax.fori_loop(0, 60, body, (lax.stop_gradient(lo), lax.stop_gradient(hi)))
    c_star = lax.stop_gradient(0.5 * (a + b))
    # Implicit gradient of the cut-off: dc = (dF − d need)/(−∂F/∂c), value unchanged.
    resid = F(c_star) - target
    u = (z - c_star[..., None]) / tau + 0.5
    slope = jnp.sum(weight * _smoothstep_slope(u), axis=-1) / tau    # −∂F/∂c ≥ 0
    slope = lax.stop_gradient(slope)
    c = c_star + jnp.where(slope > 0, (resid - lax.stop_gradient(resid)) / jnp.where(slope > 0, slope, 1.0), 0.0)
    taken = weight * ramp(c)
    # Rescale so the units taken sum to the target exactly (the bisection leaves ~1e-15).
    got = jnp.sum(taken, axis=-1)
    taken = taken * jnp.where(got > 0, target / jnp.where(got > 0, got, 1.0), 0.0)[..., None]
    taken = jnp.where((need >= total)[..., None], weight, taken)
    return jnp.where(need[..., None] > 0, taken, 0.0)


def _smoothstep_slope(u: Array) -> Array:
    """d smoothstep/du = 30u²(1 − u)² on [0, 1], 0 outside."""
    u = jnp.clip(u, 0.0, 1.0)
    return 30.0 * u * u * (1.0 - u) * (1.0 - u)
