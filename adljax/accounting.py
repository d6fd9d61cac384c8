"""Position accounting shared by every stage: account value, requirement, and the one trade rule.

All functions are elementwise / per-scenario and jit-, vmap- and grad-friendly.
"""
from __future__ import annotations

import jax.numpy as jnp
from jax import Array


def account_value(cash: Array, size: Array, entry: Array, mark: Array) -> Array:
    """``AV = cash + Σ_a size·(mark − entry)``: cash [R], size/entry [R, A], mark [A] → [R] USD."""
    return cash + jnp.sum(size * (mark - entry), axis=-1)


def notional(size: Array, mark: Array) -> Array:
    """``|size|·mark`` per position, [R, A] USD."""
    return jnp.abs(size) * mark


def maintenance(size: Array, mark: Array, mm: Array) -> Array:
    """``MR = Σ_a |size|·mark·mm``: [R] USD."""
    return jnp.sum(notional(size, mark) * mm, axis=-1)


def trade(size: Array, entry: Array, q: Array, price: Array) -> tuple[Array, Array, Array]:
    """A row trading ``q`` units at ``price`` (elementwise; ``q > 0`` buys).

    Closes up to ``|size|`` of the existing position (realising ``x·(price − entry)``),
    opens the rest at ``price``; the entry of an enlarged position is the
    size-weighted average. Returns ``(new_size, new_entry, cash_delta)``.
    Changes the row's value at any mark ``m`` by exactly ``q·(m − price)``.
    """
    opposite = size * q < 0
    closed = jnp.where(opposite, jnp.sign(size) * jnp.minimum(jnp.abs(q), jnp.abs(size)), 0.0)
    cash_delta = closed * (price - entry)
    kept = size - closed
    opened = q + closed
    new_size = size + q
    w_kept = jnp.abs(kept)
    w_open = jnp.abs(opened)
    denom = w_kept + w_open
    avg = (w_kept * entry + w_open * price) / jnp.where(denom > 0, denom, 1.0)
    new_entry = jnp.where(opened == 0, entry, avg)
    new_entry = jnp.where(new_size == 0, 0.0, new_entry)
    return new_size, new_entry, cash_delta
