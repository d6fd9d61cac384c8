"""Position accounting shared by every stage: account value, requirement, and the one trade rule.

All functions are per scenario and jit-, vmap- and grad-friendly. Positions
are market-major: ``size`` and ``entry`` are [A, R] (see :class:`~adljax.Book`).
A sum over the market axis takes ``unrolled``, the engine's
:attr:`~adljax.engine.config.EngineConfig.unrolled_markets` (static; its default by default).
"""
from __future__ import annotations

import jax.numpy as jnp
from jax import Array, lax

from .config import DEFAULT


def _over_markets(op, x: Array, axis: int):
    """``op``-fold of ``x`` over its market axis, market by market: ``op(op(x0, x1), x2)…``."""
    n = x.shape[axis]
    take = lambda a: lax.index_in_dim(x, a, axis, keepdims=False)
    out = take(0)
    for a in range(1, n):
        out = op(out, take(a))
    return out


def sum_markets(x: Array, axis: int = 0, unrolled: int = DEFAULT.unrolled_markets) -> Array:
    """``Σ_a x[a]`` over the market axis (``axis``, of length A) as A − 1 elementwise adds.

    XLA compiles a reduction over the market axis to a kernel of its own, which reads its
    operands from memory again; written as adds (A ≤ ``unrolled``, static), the sum fuses
    into the kernels around it: fewer passes over the book and fewer kernels to compile and
    launch (docs/performance.md). Above ``unrolled`` markets, ``jnp.sum``. Rounding may
    differ from ``jnp.sum``'s order.
    """
    if x.shape[axis] > unrolled:
        return jnp.sum(x, axis=axis)
    return _over_markets(jnp.add, x, axis)


def any_markets(x: Array, axis: int = 0, unrolled: int = DEFAULT.unrolled_markets) -> Array:
    """``x`` [A, ...] bool: true where any market's is (:func:`sum_markets`'s elementwise form)."""
    if x.shape[axis] > unrolled:
        return jnp.any(x, axis=axis)
    return _over_markets(jnp.logical_or, x, axis)


def account_value(cash: Array, size: Array, entry: Array, mark: Array,
                  unrolled: int = DEFAULT.unrolled_markets) -> Array:
    """``AV = cash + Σ_a size·(mark − entry)``: cash [R], size/entry [A, R], mark [A] → [R] USD."""
    return cash + sum_markets(size * (mark[:, None] - entry), unrolled=unrolled)


def notional(size: Array, mark: Array) -> Array:
    """``|size|·mark`` per position, [A, R] USD."""
    return jnp.abs(size) * mark[:, None]


def requirement(size: Array, mark: Array, params) -> Array:
    """Each position's maintenance requirement, [A, R] USD: size [A, R], mark [A].

    ``params`` (:class:`~adljax.Params`) gives the rates: ``|size|·mark·mm`` in a market of one tier, and
    in a tiered market (:mod:`adljax.model.tiers`) each further tier's rate step on the notional above its
    bound, ``Σ_k (r_k − r_{k−1})·max(N − b_k, 0)`` (``tier_mode`` ``"deduction"``, continuous in size), or
    on the whole notional from its bound on, ``(r_k − r_{k−1})·N·[N ≥ b_k]`` (``"step"``). The step is a hard
    decision in the smooth mode too: a requirement in step mode jumps at each bound.
    """
    out = jnp.abs(size) * (mark * params.maintenance_margin)[:, None]
    n_tiers = params.tier_rates.shape[-1]
    if n_tiers == 0:
        return out
    ntl = notional(size, mark)
    prev = params.maintenance_margin
    for k in range(n_tiers):
        rate, bound = params.tier_rates[:, k], params.tier_bounds[:, k]
        step = (rate - prev)[:, None]
        if params.tier_mode == "step":
            out = out + step * jnp.where(ntl >= bound[:, None], ntl, 0.0)
        else:
            out = out + step * jnp.maximum(ntl - bound[:, None], 0.0)
        prev = rate
    return out


def maintenance(size: Array, mark: Array, params, unrolled: int = DEFAULT.unrolled_markets) -> Array:
    """``MR = Σ_a`` each position's :func:`requirement`: size [A, R], mark [A] → [R] USD.

    ``params``: the :class:`~adljax.Params` (its ``maintenance_margin`` and margin tiers).
    """
    return sum_markets(requirement(size, mark, params), unrolled=unrolled)


#: Dust: a trade that would leave at most this share of the row's position
#: (``|size + q| ≤ DUST·|size|``) closes the position exactly instead; such a
#: remainder can only be rounding (docs/rules.md, "Dust"). Per dtype name.
DUST = {"float64": 1e-12, "float32": 1e-5}


def dust(x: Array) -> float:
    """:data:`DUST` for ``x``'s dtype: the share of a quantity below which a remainder is rounding."""
    return DUST[jnp.dtype(x.dtype).name]


def below_zero(av: Array, cash: Array, size: Array, entry: Array, mark: Array,
               unrolled: int = DEFAULT.unrolled_markets) -> Array:
    """[R] bool: ``AV`` below zero by more than its own rounding (docs/rules.md, "Dust").

    ``AV < −DUST·(|cash| + Σ_a |size|·(mark + entry))``: the scale is what
    the sum that makes ``AV`` adds up, so a row whose deficit was just paid
    (``AV = 0`` but for rounding) is not below zero in any evaluation order.
    """
    scale = jnp.abs(cash) + sum_markets(jnp.abs(size) * (mark[:, None] + jnp.abs(entry)), unrolled=unrolled)
    return av < -dust(av) * scale


def trade(size: Array, entry: Array, q: Array, price: Array) -> tuple[Array, Array, Array]:
    """A row trading ``q`` units at ``price`` (elementwise; ``q > 0`` buys).

    Closes up to ``|size|`` of the existing position (realising ``x·(price − entry)``),
    opens the rest at ``price``; the entry of an enlarged position is the
    size-weighted average. Returns ``(new_size, new_entry, cash_delta)``.
    Changes the row's value at any mark ``m`` by exactly ``q·(m − price)``.
    A trade that would leave dust (see :data:`DUST`) closes the position
    exactly: ``q`` becomes ``−size``.
    """
    q = jnp.where(jnp.abs(size + q) <= dust(size) * jnp.abs(size), -size, q)
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


def reduce_position(size: Array, entry: Array, closed: Array, price: Array) -> tuple[Array, Array, Array]:
    """Close ``closed`` units (same sign as ``size``, ``|closed| ≤ |size|``) at ``price``.

    The special case of :func:`trade` with ``q = −closed`` that every trader
    row meets (liquidation, ADL): no averaging, so no division. Returns
    ``(new_size, new_entry, cash_delta)``. A close that would leave dust
    (see :data:`DUST`) closes the whole position.
    """
    closed = jnp.where(jnp.abs(size - closed) <= dust(size) * jnp.abs(size), size, closed)
    new_size = size - closed
    return new_size, jnp.where(new_size == 0, 0.0, entry), closed * (price - entry)
