"""Stage 2, market liquidation: orders to the book, filled up to the step's depth.

Hyperliquid's partial rule: a position over ``partial_threshold`` notional
sends ``partial_fraction`` of itself, and its row then waits ``cooldown``
seconds; smaller positions close whole. Per market and side the book
absorbs at most ``depth`` USD; orders fill pro rata beyond that, all at one
average price with slippage. Fills go to the liquidity-provider row.
"""
from __future__ import annotations

import jax.numpy as jnp
from jax import Array

from .._pytree import pytree
from ..accounting import reduce_position, trade
from ..book import Book
from ..market import Market
from ..venue import Params


@pytree
class Report:
    """Stage 2 report (one scenario). ``flow`` [A] is the net filled notional, buys positive."""

    filled_notional: Array
    orders: Array
    partial_orders: Array
    flow: Array


def _side(requested: Array, depth: Array, mark: Array, slippage: Array, sign: float):
    """Fill ratio, filled notional and average price of one side of one market ([A] each)."""
    safe_req = jnp.where(requested > 0, requested, 1.0)
    phi = jnp.where(requested > 0, jnp.minimum(1.0, depth / safe_req), 0.0)
    filled = phi * requested
    safe_depth = jnp.where(depth > 0, depth, 1.0)
    price = mark * (1.0 + sign * jnp.where(depth > 0, slippage * filled / (2.0 * safe_depth), 0.0))
    return phi, filled, price


def run(book: Book, market: Market, params: Params, liquidatable: Array) -> tuple[Book, Report]:
    """Send, fill and settle the liquidation orders of ready rows (``liquidatable`` [R], cooldown over)."""
    m, depth = market.mark, market.depth
    size, entry = book.size_am, book.entry_am                    # [A, R]
    mc = m[:, None]
    ready = liquidatable & (book.cooldown <= 0)
    big = (jnp.abs(size) * mc > params.partial_threshold) & (size != 0)
    q = jnp.where(ready, size * jnp.where(big, params.partial_fraction, 1.0), 0.0)
    sell, buy = q > 0, q < 0

    phi_s, filled_s, p_sell = _side(jnp.sum(jnp.where(sell, q, 0.0), axis=1) * m, depth, m, params.slippage, -1.0)
    phi_b, filled_b, p_buy = _side(jnp.sum(jnp.where(buy, -q, 0.0), axis=1) * m, depth, m, params.slippage, +1.0)

    fill = q * jnp.where(sell, phi_s[:, None], phi_b[:, None])   # units each order closes [A, R]
    price = jnp.where(sell, p_sell[:, None], p_buy[:, None])
    new_size, new_entry, dcash = reduce_position(size, entry, fill, price)
    cash = book.all_cash + jnp.sum(dcash, axis=0)

    # The liquidity providers (last row) take the fills: the sell side first, then the buy side.
    lp_size, lp_entry = new_size[:, -1], new_entry[:, -1]
    lp_size, lp_entry, c1 = trade(lp_size, lp_entry, jnp.sum(jnp.where(sell, fill, 0.0), axis=1), p_sell)
    lp_size, lp_entry, c2 = trade(lp_size, lp_entry, jnp.sum(jnp.where(buy, fill, 0.0), axis=1), p_buy)
    is_lp = jnp.arange(cash.shape[-1]) == cash.shape[-1] - 1
    cash = cash + jnp.where(is_lp, jnp.sum(c1) + jnp.sum(c2), 0.0)
    new_size = jnp.where(is_lp, lp_size[:, None], new_size)
    new_entry = jnp.where(is_lp, lp_entry[:, None], new_entry)

    partial_row = ready & jnp.any(big, axis=0)
    cooldown = jnp.where(partial_row, params.cooldown, book.cooldown)
    report = Report(
        filled_notional=jnp.sum(filled_s + filled_b),
        orders=jnp.sum(q != 0).astype(m.dtype),
        partial_orders=jnp.sum((q != 0) & big).astype(m.dtype),
        flow=filled_b - filled_s,
    )
    return book.replace(all_cash=cash, size_am=new_size, entry_am=new_entry, cooldown=cooldown), report
