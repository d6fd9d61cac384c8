"""Stage 2, market liquidation: orders to the book, filled up to the step's depth.

Hyperliquid's partial rule: a position over ``partial_threshold`` notional
sends ``partial_fraction`` of itself and starts a ``cooldown`` of its row;
smaller positions close whole. During the cooldown the row's orders are for
whole positions (``cooldown_mode="whole"``, Hyperliquid's published rule)
or it sends none (``"wait"``). The vault, when ``vault_unwind > 0``,
also sells what it took over, up to that share of the step's depth. Per
market and side the book absorbs at most ``depth`` USD; orders fill pro rata
beyond that, all at one average price with slippage. Fills go to the
liquidity-provider row. Liquidated rows pay ``liquidation_fee`` of their
filled notional (never more than their remaining positive value) to the
insurance fund, or to the vault when the backstop is the vault.
"""
from __future__ import annotations

import jax.numpy as jnp
from jax import Array

from ...model.pytree import pytree
from ..accounting import dust, reduce_position, trade
from ..config import DEFAULT, EngineConfig
from ...model.book import Book
from ...model.rows import LP, SYSTEM, VAULT, lp_row, vault_row
from ..prefix import first_rows
from ..smooth import above, ratio, temperature_of
from ..market import Market
from ...model.venue import Params, Rules
from .margin import Margin, values

@pytree
class Report:
    """Stage 2 report (one scenario). ``flow`` [A] is the net filled notional, buys positive."""

    filled_notional: Array
    orders: Array
    partial_orders: Array
    unwind_notional: Array
    fees: Array
    flow: Array


def _side(requested: Array, depth: Array, mark: Array, slippage: Array, sign: float):
    """Fill ratio, filled notional and average price of one side of one market ([A] each)."""
    safe_req = jnp.where(requested > 0, requested, 1.0)
    phi = jnp.where(requested > 0, jnp.minimum(1.0, depth / safe_req), 0.0)
    filled = phi * requested
    safe_depth = jnp.where(depth > 0, depth, 1.0)
    price = mark * (1.0 + sign * jnp.where(depth > 0, slippage * filled / (2.0 * safe_depth), 0.0))
    return phi, filled, price


def run(book: Book, market: Market, params: Params, rules: Rules, liquidatable: Array,
        av: Array) -> tuple[Book, Report]:
    """Send, fill and settle the liquidation orders of ready rows.

    ``liquidatable`` [R] from the margin check, ``av`` [R] the values it saw.
    """
    m, depth = market.mark, market.depth
    size, entry = book.size_am, book.entry_am                    # [A, R]
    mc = m[:, None]
    n = av.shape[-1]
    rows = jnp.arange(n)
    is_vault, is_lp = rows == vault_row(n), rows == lp_row(n)
    tau = temperature_of(params, rules)
    if not rules.smooth:
        cooling = book.cooldown > 0
        ready = liquidatable & ~cooling if rules.cooldown_mode == "wait" else liquidatable
        big = (jnp.abs(size) * mc > params.partial_threshold) & (size != 0) & ready & ~cooling
        q = jnp.where(ready, size * jnp.where(big, params.partial_fraction, 1.0), 0.0)
    else:
        # Smooth mode (adljax.engine.smooth): in cooldown by cooldown/(τ·cooldown), liquidatable and
        # over the partial threshold by weights; the order is the weighted mix of the two sizes.
        cooling = jnp.clip(ratio(book.cooldown, tau * params.cooldown), 0.0, 1.0)
        ready = liquidatable * (1.0 - cooling) if rules.cooldown_mode == "wait" else liquidatable
        over = above(ratio(jnp.abs(size) * mc, params.partial_threshold, 2.0) - 1.0, tau) * (1.0 - cooling)
        big = jnp.where(size != 0, over * ready, 0.0)
        q = ready * size * (1.0 - over * (1.0 - params.partial_fraction))
    v_size = size[:, VAULT]
    unwind = jnp.sign(v_size) * jnp.minimum(jnp.abs(v_size), params.vault_unwind * depth / m)
    q = jnp.where(is_vault, unwind[:, None], q)
    sell, buy = q > 0, q < 0

    phi_s, filled_s, p_sell = _side(jnp.sum(jnp.where(sell, q, 0.0), axis=1) * m, depth, m, params.slippage, -1.0)
    phi_b, filled_b, p_buy = _side(jnp.sum(jnp.where(buy, -q, 0.0), axis=1) * m, depth, m, params.slippage, +1.0)

    fill = q * jnp.where(sell, phi_s[:, None], phi_b[:, None])   # units each order closes [A, R]
    price = jnp.where(sell, p_sell[:, None], p_buy[:, None])
    new_size, new_entry, dcash = reduce_position(size, entry, fill, price)
    cash = book.all_cash + jnp.sum(dcash, axis=0)

    # Fees, from what the liquidated row has left (its value moved by fill·(price − mark)).
    fill_ntl = jnp.abs(fill) * mc
    av_after = av + jnp.sum(fill * (price - mc), axis=0)
    fee = jnp.where(is_vault, 0.0,
                    jnp.minimum(params.liquidation_fee * jnp.sum(fill_ntl, axis=0), jnp.maximum(av_after, 0.0)))
    fees = jnp.sum(fee)
    cash = cash - fee
    # A fee that takes all a flat row has left leaves it at exactly 0, not at ±rounding
    # (which would decide whether the backstop takes it over: docs/rules.md).
    flat = ~jnp.any(new_size != 0, axis=0)
    takes_all = (av_after > 0) & (fee == av_after) & flat
    cash = jnp.where(takes_all, 0.0, cash)
    # A close that leaves a trader row flat at cash 0 but for the close's own rounding leaves it at exactly 0
    # (docs/rules.md, "Dust"): a flat row's only scale is |cash|, so the sign of that rounding would decide
    # whether the insurance fund pays it.
    scale = jnp.abs(book.all_cash) + jnp.sum(jnp.abs(fill) * (price + jnp.abs(entry)), axis=0)
    closed_flat = flat & jnp.any(fill != 0, axis=0) & ~is_vault & ~is_lp
    cash = jnp.where(closed_flat & (jnp.abs(cash) <= dust(cash) * scale), 0.0, cash)
    fund = book.insurance_fund
    if rules.backstop == "vault":
        cash = cash + jnp.where(is_vault, fees, 0.0)
    else:
        fund = fund + fees

    # The liquidity providers (row LP) take the fills: the sell side first, then the buy side.
    lp_size, lp_entry = new_size[:, LP], new_entry[:, LP]
    lp_size, lp_entry, c1 = trade(lp_size, lp_entry, jnp.sum(jnp.where(sell, fill, 0.0), axis=1), p_sell)
    lp_size, lp_entry, c2 = trade(lp_size, lp_entry, jnp.sum(jnp.where(buy, fill, 0.0), axis=1), p_buy)
    cash = cash + jnp.where(is_lp, jnp.sum(c1) + jnp.sum(c2), 0.0)
    new_size = jnp.where(is_lp, lp_size[:, None], new_size)
    new_entry = jnp.where(is_lp, lp_entry[:, None], new_entry)

    if not rules.smooth:
        cooldown = jnp.where(jnp.any(big, axis=0), params.cooldown, book.cooldown)
        trader_order = (q != 0) & ~is_vault
    else:
        cooldown = jnp.maximum(book.cooldown, jnp.max(big, axis=0) * params.cooldown)
        trader_order = jnp.where((size != 0) & ~is_vault, ready, 0.0)
    vault_ntl = jnp.sum(fill_ntl[:, VAULT])
    report = Report(
        filled_notional=jnp.sum(jnp.where(is_vault, 0.0, fill_ntl)),   # traders' fills (not the vault's unwind)
        orders=jnp.sum(trader_order.astype(m.dtype)),
        partial_orders=jnp.sum(big.astype(m.dtype)),
        unwind_notional=vault_ntl,
        fees=fees,
        flow=filled_b - filled_s,
    )
    new_book = book.replace(all_cash=cash, size_am=new_size, entry_am=new_entry, cooldown=cooldown, insurance_fund=fund)
    return new_book, report


def gathered_rows(n_rows: int, config: EngineConfig = DEFAULT) -> int:
    """How many liquidatable rows :func:`run_gathered` handles in a book of ``n_rows`` rows:
    :attr:`~adljax.engine.config.EngineConfig.gathered_rows`, at most the book's trader rows."""
    return max(1, min(n_rows - SYSTEM, config.gathered_rows))


def run_gathered(book: Book, market: Market, params: Params, rules: Rules, liquidatable: Array,
                 margin: Margin, config: EngineConfig = DEFAULT) -> tuple[Book, Report, Margin]:
    """:func:`run` on the only rows it can change, and the margin after (hard mode, one scenario).

    A row that is not liquidatable sends no order and keeps its position,
    cash and cooldown; so the stage runs on the liquidatable rows (found by
    a running count and a binary search) with the vault and the liquidity
    providers, and writes them back. The margin after is the step's margin
    with those rows revalued: exact, with no pass over the rest of the book.
    The caller must see that at most :func:`gathered_rows` rows are
    liquidatable (the engine runs :func:`run` on the whole book otherwise).

    Args: as :func:`run`, with ``margin`` the step's :class:`~adljax.engine.stages.margin.Margin`
    and ``config`` (static) the engine's :class:`~adljax.engine.config.EngineConfig`.
    Returns: ``(book, report, margin after)``.
    """
    n = margin.av.shape[-1]
    at, real, _ = first_rows(liquidatable, gathered_rows(n, config), config.prefix_block)   # [K] liquidatable rows
    g = jnp.concatenate([at, jnp.array([vault_row(n), lp_row(n)], at.dtype)])           # ... then the vault and the LPs
    real = jnp.concatenate([real, jnp.array([True, True])])
    sel = jnp.where(real, g, n)                                              # padding: row n, dropped on write
    pick = lambda x: jnp.where(real, x[..., g], jnp.zeros((), x.dtype))
    sub = book.replace(all_cash=pick(book.all_cash), size_am=pick(book.size_am), entry_am=pick(book.entry_am),
                       cooldown=pick(book.cooldown), isolated=pick(book.isolated))
    new_sub, report = run(sub, market, params, rules, liquidatable[g] & real, pick(margin.av))
    put = lambda full, part: full.at[..., sel].set(part, mode="drop")       # padding (row n) is dropped
    new_book = book.replace(all_cash=put(book.all_cash, new_sub.all_cash), size_am=put(book.size_am, new_sub.size_am),
                            entry_am=put(book.entry_am, new_sub.entry_am),
                            cooldown=put(book.cooldown, new_sub.cooldown),
                            insurance_fund=new_sub.insurance_fund)
    sub_margin = values(new_sub, market, params, config)
    new_margin = Margin(av=put(margin.av, sub_margin.av), mr=put(margin.mr, sub_margin.mr),
                        has_position=put(margin.has_position, sub_margin.has_position))
    return new_book, report, new_margin
