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
import numpy as np
from jax import Array

from ...model.pytree import pytree
from ..accounting import account_value, any_markets, below_zero, maintenance, notional, reduce_position, sum_markets
from ..config import DEFAULT, EngineConfig
from ...model.book import Book
from ...model.rows import TRADERS, VAULT, lp_row, vault_row
from ..market import Market
from ...model.venue import Params, Rules
from .margin import has_position
from ..smooth import above, hard, negate, ratio, temperature_of, weigh
from .queue import rows_of, take_from_top, take_soft
from ..skip import run_if


#: Relative difference under which an ADL pool's bankrupt quantity and its counterparties'
#: capacity count as equal (rounding), per dtype.
POOL_TOLERANCE = {"float64": 1e-12, "float32": 1e-5}


@pytree
class Report:
    """Stage 4 report (one scenario). ``deleveraged`` and ``bankrupt`` are [R] bool, ``markets`` [A] bool.

    ``vault_notional``: USD at mark, the part of ``notional`` closed against the vault row's
    bankrupt positions (counterparties close exactly the bankrupt side's units, so the vault's
    own closed units are what was closed against it). ``markets``: the markets in which a
    bankrupt position was closed or a socialized loss charged (in the smooth mode: any nonzero
    weighted close).
    """

    notional: Array
    vault_notional: Array
    bad_debt: Array
    socialized: Array
    deleveraged: Array
    bankrupt: Array
    any_fill: Array
    markets: Array


def bankrupt_rows(book: Book, market: Market, params: Params | None = None,
                  temperature: float = 0.0, config: EngineConfig = DEFAULT) -> tuple[Array, Array, Array]:
    """([R] bankrupt, [R] AV, [R] candidate) at the stage's mark.

    Bankrupt: trader or vault rows with a position and ``AV < 0`` (beyond
    rounding). Candidate (may serve as an ADL counterparty): ``AV ≥ 0``.
    Both bool, or in the smooth mode weights: bankrupt by
    ``above(−AV/MR, τ)``, candidate by one minus that.
    """
    u = config.unrolled_markets
    av = account_value(book.all_cash, book.size_am, book.entry_am, market.mark, unrolled=u)
    not_lp = jnp.arange(av.shape[-1]) < av.shape[-1] - 1
    rows = not_lp & has_position(book, config)
    if hard(temperature):
        negative = below_zero(av, book.all_cash, book.size_am, book.entry_am, market.mark, unrolled=u)
        return rows & negative, av, av >= 0
    mr = maintenance(book.size_am, market.mark, params, unrolled=u)
    negative = above(ratio(-av, mr, -1.0), temperature)
    return weigh(rows, negative), av, negate(negative)


def needed(margin, params: Params, temperature: float = 0.0) -> Array:
    """[R] bool: rows the stage would act on, from the step's :class:`~adljax.engine.stages.margin.Margin`
    (the cheap test that decides whether the stage runs at all): a position and
    ``AV < 0``, or in the smooth mode a bankruptcy weight above 0."""
    n = margin.av.shape[-1]
    rows = (jnp.arange(n) < lp_row(n)) & margin.has_position
    if hard(temperature):
        return rows & (margin.av < 0)
    return rows & (ratio(-margin.av, margin.mr, -1.0) > -0.5 * temperature)


def score(rules: Rules, size: Array, entry: Array, av: Array, mark: Array) -> Array:
    """Queue score of every position, [A, R] (higher is deleveraged first); ``mark`` [A], ``av`` [R]."""
    mark = mark[:, None]
    safe_entry = jnp.where(entry > 0, entry, 1.0)
    pos_av = av > 0
    safe_av = jnp.where(pos_av, av, 1.0)
    # Leverage is infinite where AV <= 0; kept finite inside the arithmetic (and the infinity
    # put back by the outer where), so that gradients in the smooth mode are not 0·inf = NaN.
    lev = jnp.where(pos_av, jnp.abs(size) * mark / safe_av, 0.0)
    if rules.adl_score == "hyperliquid":
        ratio = jnp.where(size > 0, mark / safe_entry, safe_entry / mark)
        return jnp.where(pos_av, ratio * lev, jnp.inf)
    if rules.adl_score == "bitmex":
        pnl_pct = jnp.sign(size) * (mark - entry) / safe_entry
        finite = pos_av & (lev > 0)
        losing = jnp.where(finite, pnl_pct / jnp.where(finite, lev, 1.0), 0.0)
        return jnp.where(pnl_pct > 0, jnp.where(pos_av, pnl_pct * lev, jnp.inf), losing)
    if rules.adl_score == "pnl":
        return size * (mark - entry)
    raise ValueError(rules.adl_score)


def queue_sizes(size: Array, round_to: int = DEFAULT.queue_rows_round) -> tuple[int | None, int | None] | None:
    """Static sizes ``(K_short, K_long)`` of the queue sides' row sets for a book's ``size_am``.

    ``size`` [..., A, R], concrete (the starting book, one or a batch). A side's
    candidates can only be rows that hold a position on that side at the start,
    or the vault and LP rows: a trader row's position only ever shrinks toward
    zero (liquidation and ADL close part or all of it, :func:`reduce_position`),
    and only the vault (backstop takeovers) and the LP (the other side of market
    liquidations) take positions on. So each side's bisection needs to sweep only
    those rows, the same set for every scenario of a batch (their union, so that it
    is found once a batch: :func:`queue_rows`): K = the most such rows in any market,
    rounded up to a multiple of ``round_to`` rows
    (:attr:`~adljax.engine.config.EngineConfig.queue_rows_round`, so that books of similar
    shape share one program). A side whose K would be all R rows gets
    ``None`` (it sweeps the whole book); ``None`` when both do.
    """
    size = np.asarray(size)
    r = size.shape[-1]
    traders = size.reshape((-1,) + size.shape[-2:])[..., TRADERS]

    def k(mask):
        most = int(mask.any(axis=0).sum(axis=-1).max(initial=0)) + 2
        k = -(-most // round_to) * round_to
        return k if k < r else None
    sizes = (k(traders < 0), k(traders > 0))
    return None if sizes == (None, None) else sizes


def queue_rows(size: Array, sizes: tuple[int | None, int | None]):
    """Per side, the ``(index, valid)`` [A, K] row sets of :func:`queue_sizes` for a starting ``size`` [..., A, R].

    ``(short side, long side)``: the rows that may serve bankrupt longs (short
    positions in some scenario of the batch), and bankrupt shorts (long
    positions), with the vault and LP rows; a side of size ``None`` is ``None``.
    One set for the whole batch: a row in it that holds nothing on that side in
    a scenario has no weight there.
    """
    size = size.reshape((-1,) + size.shape[-2:])
    system = jnp.arange(size.shape[-1]) >= vault_row(size.shape[-1])      # the vault and LP rows
    side = lambda mask, k: None if k is None else rows_of(jnp.any(mask, axis=0) | system, k)
    return side(size < 0, sizes[0]), side(size > 0, sizes[1])


def random_order_score(n_rows: int, start: Array, dtype) -> Array:
    """dYdX v4's order as a score [R]: row ``start`` first, then ``start+1``, … wrapping around."""
    return -((jnp.arange(n_rows) - start) % n_rows).astype(dtype)


def _allocate(rules: Rules, scores: Array, capacity: Array, need: Array, rows=None) -> Array:
    """Units each candidate closes: [A, R] from capacity [A, R] and need [A]."""
    if rules.adl_policy in ("queue", "random_order"):
        return take_from_top(scores, capacity, need, rows)
    if rules.adl_policy == "pro_rata":
        total = jnp.sum(capacity, axis=-1)
        frac = jnp.where(total > 0, jnp.minimum(need, total) / jnp.where(total > 0, total, 1.0), 0.0)
        return capacity * frac[:, None]
    raise ValueError(rules.adl_policy)


def _ratio(num: Array, den: Array) -> Array:
    return jnp.where(den > 0, num / jnp.where(den > 0, den, 1.0), 0.0)


def _deficit_share(size: Array, av: Array, m: Array, config: EngineConfig) -> Array:
    """[A, R]: each row's deficit ``max(−AV, 0)`` split across its markets by notional."""
    ntl = notional(size, m)
    row = sum_markets(ntl, unrolled=config.unrolled_markets)
    return jnp.maximum(-av, 0.0) * ntl / jnp.where(row > 0, row, 1.0)


def _report(new_book: Book, m: Array, bankrupt: Array, av: Array, closed_c: Array,
            closed_b: Array, charged: Array, config: EngineConfig, vault_units: Array | None = None) -> Report:
    """The stage's report; ``vault_units`` [A]: the units of the vault row's bankrupt positions closed
    (None: nothing closed, as under ``socialized``)."""
    u = config.unrolled_markets
    av_after = account_value(new_book.all_cash, new_book.size_am, new_book.entry_am, m, unrolled=u)
    is_bankrupt = bankrupt if bankrupt.dtype == jnp.bool_ else bankrupt > 0
    covered = jnp.where(is_bankrupt, jnp.maximum(-av, 0.0) - jnp.maximum(-av_after, 0.0), 0.0)
    markets = jnp.any((closed_b != 0) | (charged != 0), axis=-1)          # [A]
    return Report(
        notional=jnp.sum(notional(closed_c, m)),
        vault_notional=jnp.zeros((), m.dtype) if vault_units is None else jnp.sum(vault_units * m),
        bad_debt=jnp.sum(covered),
        socialized=jnp.sum(charged),
        deleveraged=any_markets((closed_c != 0) | (charged != 0), unrolled=u),
        bankrupt=is_bankrupt,
        any_fill=jnp.any(markets),
        markets=markets,
    )


def socialize(book: Book, market: Market, params: Params | None = None, temperature: float = 0.0,
              config: EngineConfig = DEFAULT) -> tuple[Book, Report]:
    """Drift's socialized loss: per market, ``Δ = loss / (long OI + short OI)`` charged per contract.

    Each bankrupt row's deficit is split across its markets by notional; in
    each market every open position of a non-bankrupt row pays ``Δ·|size|``
    and the bankrupt rows are credited their share. No position is closed.
    """
    m = market.mark
    size = book.size_am
    u = config.unrolled_markets
    bankrupt, av, _ = bankrupt_rows(book, market, params, temperature, config)
    loss = weigh(bankrupt, _deficit_share(size, av, m, config))         # [A, R]
    payers_oi = jnp.sum(weigh(negate(bankrupt), jnp.abs(size)), axis=1)
    can = payers_oi > 0
    delta = jnp.where(can, jnp.sum(loss, axis=1) / jnp.where(can, payers_oi, 1.0), 0.0)
    charged = weigh(negate(bankrupt), jnp.abs(size) * delta[:, None])
    credit = sum_markets(jnp.where(can[:, None], loss, 0.0), unrolled=u)
    new_book = book.replace(all_cash=book.all_cash + credit - sum_markets(charged, unrolled=u))
    zero = jnp.zeros_like(size)
    return new_book, _report(new_book, m, bankrupt, av, zero, zero, charged, config)


def run(book: Book, market: Market, params: Params, rules: Rules, rows=None,
        config: EngineConfig = DEFAULT) -> tuple[Book, Report]:
    """Deleverage every bankrupt row of one scenario (all markets at once).

    ``rows``: optional :func:`queue_rows` of the study's starting book; the hard
    queue's cut-off is then found among those rows only (same allocation).
    ``config`` (static): the engine's :class:`~adljax.engine.config.EngineConfig`.
    """
    tau = temperature_of(params, rules)
    if rules.adl_policy == "socialized":
        return socialize(book, market, params, tau, config)
    m = market.mark
    mc = m[:, None]
    size, entry = book.size_am, book.entry_am                   # [A, R]
    bankrupt, av, cand = bankrupt_rows(book, market, params, tau, config)

    long_b = weigh(bankrupt, jnp.maximum(size, 0.0))
    short_b = weigh(bankrupt, jnp.maximum(-size, 0.0))
    cap_short = weigh(cand, jnp.maximum(-size, 0.0))            # serves bankrupt longs
    cap_long = weigh(cand, jnp.maximum(size, 0.0))              # serves bankrupt shorts
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
    closed_b = weigh(bankrupt, size * jnp.where(size > 0, f_long[:, None], f_short[:, None]))

    # ADL price of each bankrupt position: one per market [A] (`uniform`), or per position.
    uniform = {"previous_mark": market.prev_mark, "mark": m}.get(rules.adl_price)
    if rules.adl_price == "bankruptcy":
        # p_b = m + share/size with share = D·|size|·m/row, written without dividing by the size: XLA
        # rewrites share/size as a division by row·size, which underflows to 0 (0/0) for tiny positions.
        row = sum_markets(notional(size, m), unrolled=config.unrolled_markets)
        per = jnp.maximum(-av, 0.0) / jnp.where(row > 0, row, 1.0)                 # [R] deficit per USD held
        p_b = mc + jnp.sign(size) * per[None, :] * mc
    elif uniform is None:
        raise ValueError(rules.adl_price)

    if rules.adl_policy == "queue":
        scores = score(rules, size, entry, av, m)
    elif rules.adl_policy == "random_order":
        scores = jnp.broadcast_to(random_order_score(av.shape[-1], market.adl_start, m.dtype), size.shape)
    else:
        scores = None
    if rules.smooth:
        allocate = lambda cap, need, rw: (take_soft(scores, cap, need, tau) if rules.adl_policy == "queue"
                                          else _allocate(rules, scores, cap, need, rw))
    else:
        # A side of the book that no scenario of the batch asks anything of (in a crash, the
        # candidates of bankrupt shorts) skips the queue: its allocation is zero.
        allocate = lambda cap, need, rw: run_if(jnp.any(need > 0), lambda s, c, n, r: _allocate(rules, s, c, n, r),
                                                jnp.zeros_like(cap), scores, cap, need, rw)
    short_rows, long_rows = rows if rows is not None else (None, None)    # serve bankrupt longs, shorts
    # (A pool matched whole asks the queue for nothing: its allocation is its capacity.)
    take_short = jnp.where(whole_long[:, None], cap_short,
                           allocate(cap_short, jnp.where(whole_long, 0.0, matched_long), short_rows))
    take_long = jnp.where(whole_short[:, None], cap_long,
                          allocate(cap_long, jnp.where(whole_short, 0.0, matched_short), long_rows))
    closed_c = take_long - take_short                          # signed units closed, like size

    closed = closed_b + closed_c
    if uniform is not None:
        # Every bankrupt position of a market closes at one price, so its pools' average (the
        # counterparties' price, below) is that price too, and every row that closes anything
        # closes at it (a row that closes nothing is unchanged by its price). The same
        # allocation as the general case; it saves the pools' passes over the book.
        price = jnp.broadcast_to(uniform[:, None], size.shape)
    else:
        # One price for all counterparties of a pool: the bankrupt side's average.
        def pool_price(side: Array) -> Array:
            units = jnp.where(side, jnp.abs(closed_b), 0.0)
            tot = jnp.sum(units, axis=1)
            return jnp.where(tot > 0, _ratio(jnp.sum(units * p_b, axis=1), tot), m)
        # (counterparties of bankrupt longs are shorts, and the other way round)
        p_c = jnp.where(size > 0, pool_price(size < 0)[:, None], pool_price(size > 0)[:, None])
        if not rules.smooth:
            price = jnp.where(bankrupt, p_b, p_c)
        else:  # a row partly bankrupt may close both ways: the average of its two prices
            nz = closed != 0
            price = jnp.where(nz, (closed_b * p_b + closed_c * p_c) / jnp.where(nz, closed, 1.0), p_c)
    new_size, new_entry, dcash = reduce_position(size, entry, closed, price)
    cash = book.all_cash + sum_markets(dcash, unrolled=config.unrolled_markets)
    if rules.adl_price == "bankruptcy":
        # Closed whole at its bankruptcy price, a bankrupt row is at exactly 0 (not ±rounding).
        whole = bankrupt if not rules.smooth else bankrupt >= 1
        flat = whole & ~any_markets(new_size != 0, unrolled=config.unrolled_markets)
        cash = jnp.where(flat, 0.0, cash)
    new_book = book.replace(all_cash=cash, size_am=new_size, entry_am=new_entry)

    # The vault's (row VAULT) bankrupt closes, |closed_b[:, VAULT]|: counterparties close exactly the bankrupt
    # side's units, so these are the units closed against the vault. A bankrupt row is no candidate in the
    # hard mode (AV < 0), so there they are the vault's change of size, taken from the book: reading
    # closed_b's column there changes how XLA fuses the closes, and with it the last bits of bad_debt_adl,
    # differently for different batch shapes (tests/test_sharding.py compares 1 and 4 devices bitwise).
    if rules.smooth:
        vault_units = jnp.abs(closed_b[:, VAULT])
    else:
        vault_units = jnp.where(bankrupt[VAULT], jnp.abs(size[:, VAULT] - new_size[:, VAULT]), 0.0)
    return new_book, _report(new_book, m, bankrupt, av, closed_c, closed_b, jnp.zeros_like(size), config,
                             vault_units)
