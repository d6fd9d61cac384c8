"""Running sums along the row axis, written for the CPU's speed.

The backstop's vault (and the insurance fund) consider rows in order, so
they need running sums over the rows. ``jnp.cumsum`` lowers on CPU to a
``reduce_window`` that measured 5.0 ms for a [32, 4, 4098] float32 array on
the 2-core CPU; the blocked form below, a product with a triangular matrix
within blocks of 64 and a short running sum of the block totals, 0.9 ms
(same rounding order class: each sum adds at most 64 + R/64 terms in a
tree rather than R in a line, so its error is no larger).
"""
from __future__ import annotations

import jax.numpy as jnp
from jax import Array, lax

BLOCK = 64


def cumsum(x: Array) -> Array:
    """Inclusive running sum along the last axis; any leading shape, any float dtype."""
    n = x.shape[-1]
    if n <= BLOCK:
        return jnp.cumsum(x, axis=-1)
    pad = (-n) % BLOCK
    xp = jnp.pad(x, [(0, 0)] * (x.ndim - 1) + [(0, pad)])
    blocks = xp.reshape(x.shape[:-1] + ((n + pad) // BLOCK, BLOCK))
    upper = jnp.triu(jnp.ones((BLOCK, BLOCK), x.dtype))
    within = jnp.matmul(blocks, upper, precision=lax.Precision.HIGHEST)
    totals = within[..., -1]
    running = jnp.cumsum(totals, axis=-1)
    before = jnp.concatenate([jnp.zeros_like(running[..., :1]), running[..., :-1]], axis=-1)
    return (within + before[..., None]).reshape(xp.shape)[..., :n]
