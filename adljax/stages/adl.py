"""Stage 4, auto-deleveraging: bankrupt rows are closed against opposite positions.

A row (trader or vault) with a position and ``AV < 0`` after the backstop is
bankrupt. Per market, bankrupt longs are closed against candidate shorts
(rows with ``AV ≥ 0``; the vault and liquidity providers included) and
bankrupt shorts against candidate longs, chosen by the venue's policy, at
the venue's ADL price. Under ``socialized`` (Drift) nothing is closed: the
deficit is charged per contract to every other open position of the market.
An account without a position is never a candidate: it cannot lose
anything to ADL.
"""
from __future__ import annotations

import jax.numpy as jnp
from jax import Array

from .._pytree import pytree
from ..accounting import account_value, below_zero, notional, reduce_position
from ..book import Book
from ..market import Market
from ..venue import Params, Rules
from .margin import has_position
from .queue import take_from_top


#: Relative difference under which an ADL pool's bankrupt quantity and its counterparties'
#: capacity count as equal (rounding), per dtype.
POOL_TOLERANCE = {"float64": 1e-12, "float32": 1e-5}


@pytree
class Report:
    """Stage 4 report (one scenario). ``deleveraged`` and ``bankrupt`` are [R] bool."""

    notional: Array
    bad_debt: Array
    socialized: Array
    deleveraged: Array
    bankrupt: Array
    any_fill: Array


def bankrupt_rows(book: Book, market: Market) -> tuple[Array, Array]:
    """([R] bool bankrupt, [R] AV): trader or vault rows with a position and ``AV < 0`` (beyond rounding)."""
    av = account_value(book.all_cash, book.size_am, book.entry_am, market.mark)
    not_lp = jnp.arange(av.shape[-1]) < av.shape[-1] - 1
    negative = below_zero(av, book.all_cash, book.size_am, book.entry_am, market.mark)
    return not_lp & has_position(book) & negative, av


def score(rules: Rules, size: Array, entry: Array, av: Array, mark: Array) -> Array:
    """Queue score of every position, [A, R] (higher is deleveraged first); ``mark`` [A], ``av`` [R]."""
    mark = mark[:, None]
    safe_entry = jnp.where(entry > 0, entry, 1.0)
    pos_av = av > 0
    safe_av = jnp.where(pos_av, av, 1.0)
    lev = jnp.where(pos_av, jnp.abs(size) * mark / safe_av, jnp.inf)
    if rules.adl_score == "hyperliquid":
        ratio = jnp.where(size > 0, mark / safe_entry, safe_entry / mark)
        return jnp.where(pos_av, ratio * lev, jnp.inf)
    if rules.adl_score == "bitmex":
        pnl_pct = jnp.sign(size) * (mark - entry) / safe_entry
        finite = jnp.isfinite(lev) & (lev > 0)
        losing = jnp.where(finite, pnl_pct / jnp.where(finite, lev, 1.0), 0.0)
        return jnp.where(pnl_pct > 0, pnl_pct * lev, losing)
    if rules.adl_score == "pnl":
        return size * (mark - entry)
    raise ValueError(rules.adl_score)


def random_order_score(n_rows: int, start: Array, dtype) -> Array:
    """dYdX v4's order as a score [R]: row ``start`` first, then ``start+1``, … wrapping around."""
    return -((jnp.arange(n_rows) - start) % n_rows).astype(dtype)


def _allocate(rules: Rules, scores: Array, capacity: Array, need: Array) -> Array:
    """Units each candidate closes: [A, R] from capacity [A, R] and need [A]."""
    if rules.adl_policy in ("queue", "random_order"):
        return take_from_top(scores, capacity, need)
    if rules.adl_policy == "pro_rata":
        total = jnp.sum(capacity, axis=-1)
        frac = jnp.where(total > 0, jnp.minimum(need, total) / jnp.where(total > 0, total, 1.0), 0.0)
        return capacity * frac[:, None]
    raise ValueError(rules.adl_policy)


def _ratio(num: Array, den: Array) -> Array:
    return jnp.where(den > 0, num / jnp.where(den > 0, den, 1.0), 0.0)


def _deficit_share(size: Array, av: Array, m: Array) -> Array:
    """[A, R]: each row's deficit ``max(−AV, 0)`` split across its markets by notional."""
    ntl = notional(size, m)
    row = jnp.sum(ntl, axis=0)
    return jnp.maximum(-av, 0.0) * ntl / jnp.where(row > 0, row, 1.0)


def _report(book: Book, new_book: Book, m: Array, bankrupt: Array, av: Array, closed_c: Array,
            closed_b: Array, charged: Array) -> Report:
    av_after = account_value(new_book.all_cash, new_book.size_am, new_book.entry_am, m)
    covered = jnp.where(bankrupt, jnp.maximum(-av, 0.0) - jnp.maximum(-av_after, 0.0), 0.0)
    return Report(
        notional=jnp.sum(notional(closed_c, m)),
        bad_debt=jnp.sum(covered),
        socialized=jnp.sum(charged),
        deleveraged=jnp.any((closed_c != 0) | (charged != 0), axis=0),
        bankrupt=bankrupt,
        any_fill=jnp.any(closed_b != 0) | jnp.any(charged != 0),
    )


def socialize(book: Book, market: Market) -> tuple[Book, Report]:
    """Drift's socialized loss: per market, ``Δ = loss / (long OI + short OI)`` charged per contract.

    Each bankrupt row's deficit is split across its markets by notional; in
    each market every open position of a non-bankrupt row pays ``Δ·|size|``
    and the bankrupt rows are credited their share. No position is closed.
    """
    m = market.mark
    size = book.size_am
    bankrupt, av = bankrupt_rows(book, market)
    loss = jnp.where(bankrupt, _deficit_share(size, av, m), 0.0)       # [A, R]
    payers_oi = jnp.sum(jnp.where(bankrupt, 0.0, jnp.abs(size)), axis=1)
    can = payers_oi > 0
    delta = jnp.where(can, jnp.sum(loss, axis=1) / jnp.where(can, payers_oi, 1.0), 0.0)
    charged = jnp.where(bankrupt, 0.0, jnp.abs(size) * delta[:, None])
    credit = jnp.sum(jnp.where(can[:, None], loss, 0.0), axis=0)
    new_book = book.replace(all_cash=book.all_cash + credit - jnp.sum(charged, axis=0))
    zero = jnp.zeros_like(size)
    return new_book, _report(book, new_book, m, bankrupt, av, zero, zero, charged)


def run(book: Book, market: Market, params: Params, rules: Rules) -> tuple[Book, Report]:
    """Deleverage every bankrupt row of one scenario (all markets at once)."""
    if rules.adl_policy == "socialized":
        return socialize(book, market)
    m = market.mark
    mc = m[:, None]
    size, entry = book.size_am, book.entry_am                   # [A, R]
    bankrupt, av = bankrupt_rows(book, market)
    cand = av >= 0

    long_b = jnp.where(bankrupt, jnp.maximum(size, 0.0), 0.0)
    short_b = jnp.where(bankrupt, jnp.maximum(-size, 0.0), 0.0)
    cap_short = jnp.where(cand, jnp.maximum(-size, 0.0), 0.0)   # serves bankrupt longs
    cap_long = jnp.where(cand, jnp.maximum(size, 0.0), 0.0)     # serves bankrupt shorts
    q_long, q_short = jnp.sum(long_b, axis=1), jnp.sum(short_b, axis=1)
    c_long, c_short = jnp.sum(cap_short, axis=1), jnp.sum(cap_long, axis=1)
    # A pool whose two sides are equal but for rounding is matched whole on both sides,
    # so that no row is left holding dust (docs/rules.md, "dust").
    tol = POOL_TOLERANCE[jnp.dtype(m.dtype).name]
    whole_long = jnp.abs(c_long - q_long) <= tol * jnp.maximum(q_long, c_long)
    whole_short = jnp.abs(c_short - q_short) <= tol * jnp.maximum(q_short, c_short)
    matched_long = jnp.where(whole_long, q_long, jnp.minimum(q_long, c_long))
    matched_short = jnp.where(whole_short, q_short, jnp.minimum(q_short, c_short))
    f_long = jnp.where(whole_long, 1.0, _ratio(matched_long, q_long))
    f_short = jnp.where(whole_short, 1.0, _ratio(matched_short, q_short))
    closed_b = jnp.where(bankrupt, size * jnp.where(size > 0, f_long[:, None], f_short[:, None]), 0.0)

    # ADL price of each bankrupt position.
    if rules.adl_price == "previous_mark":
        p_b = jnp.broadcast_to(market.prev_mark[:, None], size.shape)
    elif rules.adl_price == "mark":
        p_b = jnp.broadcast_to(mc, size.shape)
    elif rules.adl_price == "bankruptcy":
        p_b = mc + jnp.where(size != 0, _deficit_share(size, av, m) / jnp.where(size != 0, size, 1.0), 0.0)
    else:
        raise ValueError(rules.adl_price)

    # One price for all counterparties of a pool: the bankrupt side's average.
    def pool_price(side: Array) -> Array:
        units = jnp.where(side, jnp.abs(closed_b), 0.0)
        tot = jnp.sum(units, axis=1)
        return jnp.where(tot > 0, _ratio(jnp.sum(units * p_b, axis=1), tot), m)
    p_for_shorts = pool_price(size > 0)   # counterparties of bankrupt longs are shorts
    p_for_longs = pool_price(size < 0)

    if rules.adl_policy == "queue":
        scores = score(rules, size, entry, av, m)
    elif rules.adl_policy == "random_order":
        scores = jnp.broadcast_to(random_order_score(av.shape[-1], market.adl_start, m.dtype), size.shape)
    else:
        scores = None
    take_short = jnp.where(whole_long[:, None], cap_short, _allocate(rules, scores, cap_short, matched_long))
    take_long = jnp.where(whole_short[:, None], cap_long, _allocate(rules, scores, cap_long, matched_short))
    closed_c = take_long - take_short                          # signed units closed, like size

    closed = closed_b + closed_c
    price = jnp.where(bankrupt, p_b, jnp.where(size > 0, p_for_longs[:, None], p_for_shorts[:, None]))
    new_size, new_entry, dcash = reduce_position(size, entry, closed, price)
    cash = book.all_cash + jnp.sum(dcash, axis=0)
    if rules.adl_price == "bankruptcy":
        # Closed whole at its bankruptcy price, a bankrupt row is at exactly 0 (not ±rounding).
        flat = bankrupt & ~jnp.any(new_size != 0, axis=0)
        cash = jnp.where(flat, 0.0, cash)
    new_book = book.replace(all_cash=cash, size_am=new_size, entry_am=new_entry)

    return new_book, _report(book, new_book, m, bankrupt, av, closed_c, closed_b, jnp.zeros_like(size))
