"""Taking ``need`` units from the top of a ranked queue without sorting it.

ADL closes counterparties highest score first, each up to its whole
position, the last one partially. Sorting every scenario's book in every
step with ADL is what made a first prototype ~70× slower than the rest of
the step (DESIGN.md §3). Instead we find the score cut-off by bisection over
the bits of an order-preserving integer image of the score: ``nbits``
masked sums (32 in float32, 64 in float64), each ``O(R)``. Candidates above
the cut-off close whole; those exactly at it (equal scores) share the rest
pro rata. The allocation is exactly that of walking the sorted queue.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
from jax import Array, lax


def order_key(score: Array) -> Array:
    """Unsigned integers with the same order as the float ``score`` (NaN-free), same width."""
    bits = {jnp.dtype("float32"): 32, jnp.dtype("float64"): 64}[score.dtype]
    utype = jnp.uint32 if bits == 32 else jnp.uint64
    b = lax.bitcast_convert_type(score + 0.0, utype)  # + 0.0 turns −0.0 into +0.0
    sign = jnp.asarray(1, utype) << jnp.asarray(bits - 1, utype)
    negative = (b & sign) != 0
    return jnp.where(negative, ~b, b | sign)


def take_from_top(score: Array, weight: Array, need: Array) -> Array:
    """Units each candidate closes when ``need`` units are taken from the top of the queue.

    Args:
      score: [..., A, R] ranking (higher goes first), finite or ±inf.
      weight: [..., A, R] units each candidate can give (0 for non-candidates).
      need: [..., A] units to take per market (queue).
    Returns:
      [..., A, R] units taken from each candidate; sums to ``min(need, Σ weight)``.
    """
    key = order_key(score)
    utype = key.dtype
    bits = jnp.iinfo(utype).bits

    def body(i, cutoff):
        trial = cutoff | (jnp.asarray(1, utype) << (jnp.asarray(bits - 1, utype) - jnp.asarray(i, utype)))
        above = jnp.sum(jnp.where(key >= trial[..., None], weight, 0.0), axis=-1)
        return jnp.where(above >= need, trial, cutoff)

    cutoff = lax.fori_loop(0, bits, body, jnp.zeros(need.shape, utype))
    cut = cutoff[..., None]
    full = jnp.where(key > cut, weight, 0.0)
    tied = jnp.where(key == cut, weight, 0.0)
    rest = need - jnp.sum(full, axis=-1)
    tied_total = jnp.sum(tied, axis=-1)
    share = jnp.where(tied_total > 0, jnp.clip(rest / jnp.where(tied_total > 0, tied_total, 1.0), 0.0, 1.0), 0.0)
    taken = full + tied * share[..., None]
    # When the need covers every candidate, each closes exactly its whole position.
    taken = jnp.where((need >= jnp.sum(weight, axis=-1))[..., None], weight, taken)
    return jnp.where(need[..., None] > 0, taken, 0.0)
