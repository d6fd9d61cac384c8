"""Stage 2 on a position book: liquidation orders to the book, filled up to the step's depth.

The rules are :mod:`adljax.engine.stages.liquidation`'s: partial orders over
``partial_threshold`` with a cooldown, the vault's unwind, per market and side a pro-rata fill
up to ``depth`` at one price with slippage, fills to the liquidity providers' slots, fees. In the
smooth mode (``rules.smooth``) the cooldown, the partial rule and ``liquidatable`` are weights, as
in the dense stage.
"""
from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
from jax import Array

from ..accounting import dust, reduce_position, trade
from ..config import DEFAULT, EngineConfig
from ..market import Market
from ..prefix import first_rows
from ..smooth import above, ratio, temperature_of
from ..stages.liquidation import Report, _side
from ...model.layout import Layout
from ...model.position_book import PositionBook
from ...model.rows import SYSTEM, lp_row, vault_row
from ...model.venue import Params, Rules
from ..stages.margin import Margin
from .margin import values


def run(book: PositionBook, market: Market, params: Params, rules: Rules, liquidatable: Array,
        av: Array) -> tuple[PositionBook, Report]:
    """Send, fill and settle the liquidation orders of ready rows (one scenario).

    ``liquidatable`` [R] from the margin check (bool, or weights in [0, 1] in the smooth mode),
    ``av`` [R] USD the values it saw.
    """
    lay = book.layout
    m, depth = market.mark, market.depth
    size, entry = book.position_size, book.position_entry                  # [P]
    mc = lay.at_market(m)
    n = av.shape[-1]
    rows = jnp.arange(n)
    is_vault, is_lp = rows == vault_row(n), rows == lp_row(n)
    at_vault = lay.is_vault()
    if not rules.smooth:
        cooling = book.cooldown > 0                                        # [R]
        ready = liquidatable & ~cooling if rules.cooldown_mode == "wait" else liquidatable
        ready_p, cooling_p = lay.at_row(ready), lay.at_row(cooling)
        big = (jnp.abs(size) * mc > params.partial_threshold) & (size != 0) & ready_p & ~cooling_p
        q = jnp.where(ready_p, size * jnp.where(big, params.partial_fraction, 1.0), 0.0)
    else:
        # Smooth mode (adljax.engine.smooth): in cooldown by cooldown/(τ·cooldown), liquidatable and
        # over the partial threshold by weights; the order is the weighted mix of the two sizes.
        tau = temperature_of(params, rules)
        cooling = jnp.clip(ratio(book.cooldown, tau * params.cooldown), 0.0, 1.0)       # [R]
        ready = liquidatable * (1.0 - cooling) if rules.cooldown_mode == "wait" else liquidatable
        ready_p, cooling_p = lay.at_row(ready), lay.at_row(cooling)
        over = above(ratio(jnp.abs(size) * mc, params.partial_threshold, 2.0) - 1.0, tau) * (1.0 - cooling_p)
        big = jnp.where(size != 0, over * ready_p, 0.0)                    # [P] weights
        q = ready_p * size * (1.0 - over * (1.0 - params.partial_fraction))
    v_size = lay.vault(size)
    unwind = jnp.sign(v_size) * jnp.minimum(jnp.abs(v_size), params.vault_unwind * depth / m)
    q = lay.with_system(q, vault=unwind)
    sell, buy = q > 0, q < 0

    phi_s, filled_s, p_sell = _side(lay.markets(jnp.where(sell, q, 0.0)) * m, depth, m, params.slippage, -1.0)
    phi_b, filled_b, p_buy = _side(lay.markets(jnp.where(buy, -q, 0.0)) * m, depth, m, params.slippage, +1.0)

    fill = q * jnp.where(sell, lay.at_market(phi_s), lay.at_market(phi_b))      # units each order closes [P]
    price = jnp.where(sell, lay.at_market(p_sell), lay.at_market(p_buy))
    new_size, new_entry, dcash = reduce_position(size, entry, fill, price)
    cash = book.all_cash + lay.rows(dcash)

    # Fees, from what the liquidated row has left (its value moved by fill·(price − mark)).
    fill_ntl = jnp.abs(fill) * mc
    av_after = av + lay.rows(fill * (price - mc))
    fee = jnp.where(is_vault, 0.0,
                    jnp.minimum(params.liquidation_fee * lay.rows(fill_ntl), jnp.maximum(av_after, 0.0)))
    fees = jnp.sum(fee)
    cash = cash - fee
    # A fee that takes all a flat row has left leaves it at exactly 0 (docs/rules.md, "Dust").
    flat = ~lay.any_rows(new_size != 0)
    cash = jnp.where((av_after > 0) & (fee == av_after) & flat, 0.0, cash)
    # A close that leaves a trader row flat at cash 0 but for the close's own rounding leaves it at exactly 0.
    scale = jnp.abs(book.all_cash) + lay.rows(jnp.abs(fill) * (price + jnp.abs(entry)))
    closed_flat = flat & lay.any_rows(fill != 0) & ~is_vault & ~is_lp
    cash = jnp.where(closed_flat & (jnp.abs(cash) <= dust(cash) * scale), 0.0, cash)
    fund = book.insurance_fund
    if rules.backstop == "vault":
        cash = cash + jnp.where(is_vault, fees, 0.0)
    else:
        fund = fund + fees

    # The liquidity providers' slots take the fills: the sell side first, then the buy side.
    lp_size, lp_entry = lay.lp(new_size), lay.lp(new_entry)
    lp_size, lp_entry, c1 = trade(lp_size, lp_entry, lay.markets(jnp.where(sell, fill, 0.0)), p_sell)
    lp_size, lp_entry, c2 = trade(lp_size, lp_entry, lay.markets(jnp.where(buy, fill, 0.0)), p_buy)
    cash = cash + jnp.where(is_lp, jnp.sum(c1) + jnp.sum(c2), 0.0)
    new_size = lay.with_system(new_size, lp=lp_size)
    new_entry = lay.with_system(new_entry, lp=lp_entry)

    if not rules.smooth:
        cooldown = jnp.where(lay.any_rows(big), params.cooldown, book.cooldown)
        trader_order = (q != 0) & ~at_vault
    else:
        # A row's cooldown starts at its largest partial weight (of all its positions) times the cooldown.
        most = jnp.maximum(jax.ops.segment_max(big, lay.row, lay.n_rows), 0.0)          # [R]
        cooldown = jnp.maximum(book.cooldown, most * params.cooldown)
        trader_order = jnp.where((size != 0) & ~at_vault, ready_p, 0.0)
    report = Report(
        filled_notional=jnp.sum(jnp.where(at_vault, 0.0, fill_ntl)),   # traders' fills (not the vault's unwind)
        orders=jnp.sum(trader_order.astype(m.dtype)),
        partial_orders=jnp.sum(big.astype(m.dtype)),
        unwind_notional=jnp.sum(lay.vault(fill_ntl)),
        fees=fees,
        flow=filled_b - filled_s,
    )
    new_book = book.replace(all_cash=cash, position_size=new_size, position_entry=new_entry, cooldown=cooldown,
                            insurance_fund=fund)
    return new_book, report


def gathered_sizes(lay: Layout, config: EngineConfig = DEFAULT) -> tuple[int, int]:
    """(rows, positions) that :func:`run_gathered` handles: :attr:`~adljax.engine.config.EngineConfig.gathered_rows`
    rows (at most the book's trader rows) and four positions a row (at most the book's trader positions)."""
    rows = max(1, min(lay.n_traders, config.gathered_rows))
    return rows, max(1, min(lay.n_trader_positions, 4 * rows))


class Gathered(NamedTuple):
    """Where a small book of some rows (:func:`gather`) sits in the whole one: its rows ``row_idx`` [K + 2] and
    positions ``pos_idx`` [k_pos + 2A] in the whole book, and which of them are real (``row_real``,
    ``pos_real``; padding is not)."""

    row_idx: Array
    row_real: Array
    pos_idx: Array
    pos_real: Array

    def put_rows(self, full: Array, part: Array) -> Array:
        """``full`` [R] with the small book's rows ``part`` [K + 2] written back (padding dropped)."""
        return full.at[jnp.where(self.row_real, self.row_idx, full.shape[-1])].set(part, mode="drop")

    def put_positions(self, full: Array, part: Array) -> Array:
        """``full`` [P] with the small book's positions ``part`` written back (padding dropped)."""
        return full.at[jnp.where(self.pos_real, self.pos_idx, full.shape[-1])].set(part, mode="drop")

    def put_book(self, book: PositionBook, sub: PositionBook) -> PositionBook:
        """``book`` with the small book ``sub``'s cash, positions and cooldowns, and its fund, written back."""
        return book.replace(all_cash=self.put_rows(book.all_cash, sub.all_cash),
                            position_size=self.put_positions(book.position_size, sub.position_size),
                            position_entry=self.put_positions(book.position_entry, sub.position_entry),
                            cooldown=self.put_rows(book.cooldown, sub.cooldown), insurance_fund=sub.insurance_fund)

    def put_margin(self, margin: Margin, sub: Margin) -> Margin:
        """``margin`` [R] with the small book's rows' values ``sub`` written back."""
        return Margin(av=self.put_rows(margin.av, sub.av), mr=self.put_rows(margin.mr, sub.mr),
                      has_position=self.put_rows(margin.has_position, sub.has_position))


def gather(book: PositionBook, rows_at: Array, rows_real: Array, k_pos: int) -> tuple[PositionBook, Gathered]:
    """A small position book of the trader rows ``rows_at`` [K] (ascending; ``rows_real`` [K] marks those that
    count), then the vault's and the LPs' rows with all their slots; and where it sits in ``book``.

    The rows' positions come from each row's run in the list (:meth:`~adljax.model.layout.Layout.positions_of`,
    no pass over the list), at most ``k_pos`` (static) of them: the caller must see that they fit. Each one's
    row in the small book is the rank of its row among ``rows_at``; padding holds size 0 in the last trader
    row, which changes nothing.
    """
    lay = book.layout
    a, r = lay.n_markets, lay.n_rows
    k_rows = rows_at.shape[-1]
    p_tr = lay.n_trader_positions
    pos_at, pos_real, sub_row = lay.positions_of(rows_at, rows_real, k_pos)                # [k_pos]
    sub_row = jnp.where(pos_real, sub_row, k_rows - 1)
    sys = jnp.arange(p_tr, lay.n_positions)
    idx = jnp.concatenate([pos_at, sys])
    real = jnp.concatenate([pos_real, jnp.ones(SYSTEM * a, bool)])
    sub_lay = Layout(row=jnp.concatenate([sub_row, jnp.full(a, k_rows), jnp.full(a, k_rows + 1)]).astype(jnp.int32),
                     market=jnp.where(real, lay.market[idx], 0), by_market=None, market_start=None,
                     n_rows=k_rows + SYSTEM, n_markets=a)
    row_idx = jnp.concatenate([rows_at, jnp.array([vault_row(r), lp_row(r)], rows_at.dtype)])
    row_real = jnp.concatenate([rows_real, jnp.array([True, True])])
    at = Gathered(row_idx, row_real, idx, real)
    on_rows = lambda x: jnp.where(row_real, x[row_idx], jnp.zeros((), x.dtype))
    on_pos = lambda x: jnp.where(real, x[idx], jnp.zeros((), x.dtype))
    sub = PositionBook(all_cash=on_rows(book.all_cash), position_size=on_pos(book.position_size),
                       position_entry=on_pos(book.position_entry), cooldown=on_rows(book.cooldown),
                       isolated=on_rows(book.isolated), insurance_fund=book.insurance_fund, layout=sub_lay)
    return sub, at


def run_gathered(book: PositionBook, market: Market, params: Params, rules: Rules, liquidatable: Array,
                 margin: Margin, config: EngineConfig = DEFAULT) -> tuple[PositionBook, Report, Margin]:
    """:func:`run` on the only rows it can change, and the margin after (hard mode, one scenario).

    A row that is not liquidatable sends no order and keeps its positions, cash and cooldown; so the stage
    runs on a small position book made of the liquidatable rows' positions (the rows found by a running count),
    the vault's and the LPs' slots (:func:`gather`), and writes them back. The margin after is the step's margin
    with those rows revalued. The caller must see that at most :func:`gathered_sizes` rows and positions
    are involved (the engine runs :func:`run` on the whole book otherwise).
    """
    k_rows, k_pos = gathered_sizes(book.layout, config)
    rows_at, rows_real, _ = first_rows(liquidatable, k_rows, config.prefix_block)          # [k_rows] ascending
    sub, at = gather(book, rows_at, rows_real, k_pos)
    on_rows = lambda x: jnp.where(at.row_real, x[at.row_idx], jnp.zeros((), x.dtype))
    new_sub, report = run(sub, market, params, rules, on_rows(liquidatable), on_rows(margin.av))
    return at.put_book(book, new_sub), report, at.put_margin(margin, values(new_sub, market, params))
