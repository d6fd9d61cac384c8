"""Stage 4 on a position book: auto-deleveraging (:mod:`adljax.engine.stages.adl`, both modes).

A row (trader or vault) with a position and ``AV < 0`` is bankrupt. Per market, bankrupt longs
are closed against candidate shorts (rows with ``AV ≥ 0``) and bankrupt shorts against candidate
longs, chosen by the venue's policy (``queue``, ``random_order``, ``pro_rata``) at the venue's ADL
price, or under ``socialized`` the deficit is charged per contract to every other position of the
market. The dense stage's rules, with its [A, R] sums over rows written as sums over each market's
positions (:meth:`~adljax.model.layout.Layout.markets`) and its sums over markets as sums over each
row's positions (:meth:`~adljax.model.layout.Layout.rows`): work and memory grow with P + R + A.

The queue's cut-off is the dense one's (:mod:`adljax.engine.stages.queue`: the largest value of an
order-preserving integer image of the score that still holds the need), found 4 bits at a time from
per-market histograms of the positions (:func:`_bisect`), so nothing is sorted. The smooth mode's
queue (:func:`take_soft`) bisects each market's cut-off of a ramp, with per-market sums over the
positions.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
from jax import Array, lax

from ...model.layout import Layout
from ...model.position_book import PositionBook
from ...model.rows import VAULT, lp_row
from ...model.venue import Params, Rules
from ..accounting import reduce_position
from ..config import DEFAULT, EngineConfig
from ..market import Market
from ..skip import run_if
from ..smooth import above, hard, negate, ratio, smoothstep, temperature_of, weigh
from ..stages.adl import POOL_TOLERANCE, Report, needed, random_order_score
from ..stages.adl import score as dense_score
from ..stages.queue import _smoothstep_slope, order_key
from .accounting import account_value, below_zero, has_position, maintenance

__all__ = ["needed", "bankrupt_rows", "score", "take_from_top", "take_soft", "socialize", "run"]


def bankrupt_rows(book: PositionBook, market: Market, params: Params | None = None,
                  temperature: float = 0.0) -> tuple[Array, Array, Array]:
    """``(bankrupt [R], AV [R] USD, candidate [R])`` at the stage's mark.

    Bankrupt: trader or vault rows with a position and ``AV < 0`` beyond rounding
    (:func:`~adljax.engine.positions.accounting.below_zero`). Candidate (may serve as an ADL
    counterparty): ``AV ≥ 0``. The liquidity providers' row is never bankrupt. Both bool, or in the
    smooth mode (``temperature`` τ > 0, ``params`` needed) weights: bankrupt by ``above(−AV/MR, τ)``,
    candidate by one minus that (:func:`adljax.engine.stages.adl.bankrupt_rows`).
    """
    lay, size, entry, cash = book.layout, book.position_size, book.position_entry, book.all_cash
    av = account_value(lay, cash, size, entry, market.mark)
    n = av.shape[-1]
    rows = (jnp.arange(n) < lp_row(n)) & has_position(lay, size)
    if not hard(temperature):
        negative = above(ratio(-av, maintenance(lay, size, market.mark, params), -1.0), temperature)
        return jnp.where(rows, negative, 0.0), av, 1.0 - negative
    negative = below_zero(lay, av, cash, size, entry, market.mark)
    return rows & negative, av, av >= 0


def score(rules: Rules, lay: Layout, size: Array, entry: Array, av: Array, mark: Array) -> Array:
    """Queue score of every position, [P] (higher is deleveraged first): size/entry [P], AV [R], mark [A].

    The dense :func:`adljax.engine.stages.adl.score`'s formulas, position by position: called on
    [P, 1] columns (each position a "market" of one row, its own mark and its row's AV), it is
    elementwise, so each score is the dense one's to the bit.
    """
    col = lambda x: x[:, None]
    return dense_score(rules, col(size), col(entry), col(lay.at_row(av)), lay.at_market(mark))[:, 0]


def take_from_top(lay: Layout, score: Array, weight: Array, need: Array,
                  config: EngineConfig = DEFAULT) -> Array:
    """Units each candidate closes when ``need`` units are taken from the top of each market's queue.

    The position form of :func:`adljax.engine.stages.queue.take_from_top`: candidates above the
    cut-off close whole, those exactly at it (equal scores) share the rest pro rata.

    Args:
      lay: the positions' layout.
      score: [P] ranking (higher goes first), finite or ±inf.
      weight: [P] units each position can give (0 for non-candidates).
      need: [A] units to take per market.
      config: (static) the :class:`~adljax.engine.config.EngineConfig`; its ``adl_digit_bits`` sets the
        cut-off search's passes (every value gives the same cut-off).
    Returns:
      [P] units taken from each position; per market they sum to ``min(need, Σ weight)``.
    """
    key = order_key(score)
    total = lay.markets(weight)
    # The cut-off is piecewise constant in every input: no gradient flows through it (smooth mode,
    # random_order).
    cut = lay.at_market(_bisect(lay, key, lax.stop_gradient(weight), lax.stop_gradient(need), config.adl_digit_bits))
    full = jnp.where(key > cut, weight, 0.0)
    tied = jnp.where(key == cut, weight, 0.0)
    rest = need - lay.markets(full)
    tied_total = lay.markets(tied)
    share = jnp.where(tied_total > 0, jnp.clip(rest / jnp.where(tied_total > 0, tied_total, 1.0), 0.0, 1.0), 0.0)
    taken = full + tied * lay.at_market(share)
    # When the need covers every candidate, each closes exactly its whole position.
    taken = jnp.where(lay.at_market(need >= total), weight, taken)
    return jnp.where(lay.at_market(need > 0), taken, 0.0)


def _bisect(lay: Layout, key: Array, weight: Array, need: Array, digit_bits: int) -> Array:
    """[A] the largest key ``c`` with ``Σ weight[key ≥ c] ≥ need`` in each market, a digit at a time.

    The answer of a bisection over the key's bits (:mod:`adljax.engine.stages.queue`), found
    ``digit_bits`` (static) bits per pass: with the higher digits fixed (``prefix``), one per-market histogram
    of the weights by the next digit (positions whose higher digits equal the prefix; those above it in one
    more bucket) gives ``Σ weight[key ≥ prefix | d·2^s]`` for every digit ``d`` at once, and the largest
    ``d`` that still holds ``need`` is kept. Each pass is one scatter over the positions, ``O(P)``; with
    4-bit digits, 8 of them for a 32-bit key, 16 for a 64-bit one (a bisection takes 32 or 64).
    """
    utype = key.dtype
    bits = jnp.iinfo(utype).bits
    nb = 1 << digit_bits
    total = lay.markets(weight)

    def search(lay, key, weight, need):
        a = lay.n_markets
        base = lay.market * (nb + 2)                                        # [P] each market's buckets
        digits = jnp.arange(nb)
        d = jnp.asarray(digit_bits, utype)

        def one_pass(i, prefix):
            shift = jnp.asarray(bits - digit_bits * (i + 1), utype)
            digit = ((key >> shift) & jnp.asarray(nb - 1, utype)).astype(jnp.int32)
            # The higher digits (two shifts, each less than the key's width; 0 in the first pass).
            high = (key >> shift) >> d
            fixed = lay.at_market((prefix >> shift) >> d)
            # bucket nb: the higher digits above the prefix (every one of them counts); nb + 1: below it
            digit = jnp.where(high == fixed, digit, jnp.where(high > fixed, nb, nb + 1))
            hist = jax.ops.segment_sum(weight, base + digit, a * (nb + 2)).reshape(a, nb + 2)
            # Σ weight[key ≥ prefix | d·2^shift] for each digit d: those above the prefix, and the digits ≥ d.
            held = hist[:, nb:nb + 1] + jnp.flip(jnp.cumsum(jnp.flip(hist[:, :nb], axis=1), axis=1), axis=1)
            best = jnp.max(jnp.where(held >= need[:, None], digits, 0), axis=1)
            return prefix | (best.astype(utype) << shift)

        # A loop rather than the passes written out: one pass compiled, not 8 or 16.
        prefix = lax.fori_loop(0, bits // digit_bits, one_pass, jnp.zeros(need.shape, utype))
        return prefix

    # The search is the stage's cost; a queue with nothing to cut (no need, or a need that
    # takes every candidate) skips it. The layout travels as an operand: it is unbatched under vmap.
    return run_if(jnp.any((need > 0) & (need < total)), search, jnp.zeros(need.shape, utype), lay, key, weight, need)


def take_soft(lay: Layout, score: Array, weight: Array, need: Array, temperature) -> Array:
    """The smooth mode's queue (:func:`adljax.engine.stages.queue.take_soft`) on a position list.

    Each candidate position closes ``weight·g((z − c)/τ)`` with ``z = asinh(score)`` and
    ``g(u) = smoothstep(u + 1/2)``; each market's cut-off ``c`` is set by bisection (60 halvings of a
    bracket, each one per-market sum over the positions, ``O(P)``) so that its candidates close ``need``
    in all. The cut-off's gradient is the implicit one (``Σ taken = need`` held fixed).

    Args: as :func:`take_from_top` (score, weight [P], need [A]), plus ``temperature`` (τ > 0,
    asinh-score units). Returns: [P] units taken; per market they sum to ``min(need, Σ weight)``.
    """
    tau = temperature
    z = jnp.arcsinh(jnp.clip(score, -1e30, 1e30))                           # [P]
    active = weight > 0
    total = lay.markets(weight)                                             # [A]
    ramp = lambda c: smoothstep((z - lay.at_market(c)) / tau + 0.5)
    F = lambda c: lay.markets(weight * ramp(c))

    # Each market's bracket: F(lo) = total, F(hi) = 0 (per-market extremes of the active scores).
    lo = jax.ops.segment_min(jnp.where(active, z, jnp.inf), lay.market, lay.n_markets) - tau
    hi = jax.ops.segment_max(jnp.where(active, z, -jnp.inf), lay.market, lay.n_markets) + tau
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
    u = (z - lay.at_market(c_star)) / tau + 0.5
    slope = lax.stop_gradient(lay.markets(weight * _smoothstep_slope(u)) / tau)      # −∂F/∂c ≥ 0, [A]
    c = c_star + jnp.where(slope > 0, (resid - lax.stop_gradient(resid)) / jnp.where(slope > 0, slope, 1.0), 0.0)
    taken = weight * ramp(c)
    # Rescale so the units taken sum to the target exactly (the bisection leaves ~1e-15).
    got = lay.markets(taken)
    taken = taken * lay.at_market(jnp.where(got > 0, target / jnp.where(got > 0, got, 1.0), 0.0))
    taken = jnp.where(lay.at_market(need >= total), weight, taken)
    return jnp.where(lay.at_market(need > 0), taken, 0.0)


def _allocate(rules: Rules, lay: Layout, scores: Array | None, capacity: Array, need: Array,
              config: EngineConfig) -> Array:
    """Units each candidate position closes, [P], from capacity [P] and need [A]."""
    if rules.adl_policy in ("queue", "random_order"):
        return take_from_top(lay, scores, capacity, need, config)
    if rules.adl_policy == "pro_rata":
        total = lay.markets(capacity)
        frac = jnp.where(total > 0, jnp.minimum(need, total) / jnp.where(total > 0, total, 1.0), 0.0)
        return capacity * lay.at_market(frac)
    raise ValueError(rules.adl_policy)


def _ratio(num: Array, den: Array) -> Array:
    return jnp.where(den > 0, num / jnp.where(den > 0, den, 1.0), 0.0)


def _deficit_share(lay: Layout, size: Array, av: Array, m: Array) -> Array:
    """[P] USD: each row's deficit ``max(−AV, 0)`` split across its positions by notional."""
    ntl = jnp.abs(size) * lay.at_market(m)
    row = lay.rows(ntl)
    return lay.at_row(jnp.maximum(-av, 0.0)) * ntl / lay.at_row(jnp.where(row > 0, row, 1.0))


def _report(new_book: PositionBook, m: Array, bankrupt: Array, av: Array, closed_c: Array, closed_b: Array,
            charged: Array, vault_units: Array | None = None) -> Report:
    """The dense stage's :class:`~adljax.engine.stages.adl.Report`; closes and charges [P], ``vault_units``
    [A] the units of the vault row's bankrupt positions closed (None: nothing closed, as under ``socialized``)."""
    lay = new_book.layout
    av_after = account_value(lay, new_book.all_cash, new_book.position_size, new_book.position_entry, m)
    is_bankrupt = bankrupt if bankrupt.dtype == jnp.bool_ else bankrupt > 0     # (smooth: any weight)
    covered = jnp.where(is_bankrupt, jnp.maximum(-av, 0.0) - jnp.maximum(-av_after, 0.0), 0.0)
    markets = lay.any_markets((closed_b != 0) | (charged != 0))           # [A]
    return Report(
        notional=jnp.sum(jnp.abs(closed_c) * lay.at_market(m)),
        vault_notional=jnp.zeros((), m.dtype) if vault_units is None else jnp.sum(vault_units * m),
        bad_debt=jnp.sum(covered),
        socialized=jnp.sum(charged),
        deleveraged=lay.any_rows((closed_c != 0) | (charged != 0)),
        bankrupt=is_bankrupt,
        any_fill=jnp.any(markets),
        markets=markets,
    )


def socialize(book: PositionBook, market: Market, params: Params | None = None,
              temperature: float = 0.0) -> tuple[PositionBook, Report]:
    """Drift's socialized loss: per market, ``Δ = loss / (open interest of the other rows)`` charged per contract.

    Each bankrupt row's deficit is split across its positions by notional; in each market every
    open position of a non-bankrupt row pays ``Δ·|size|`` USD and the bankrupt rows are credited
    their share (where someone pays). No position is closed. In the smooth mode (``temperature`` τ > 0)
    a row bankrupt by weight ``w`` is credited ``w`` of its share and pays ``1 − w`` of the charge.
    """
    lay, m, size = book.layout, market.mark, book.position_size
    bankrupt, av, _ = bankrupt_rows(book, market, params, temperature)
    b = lay.at_row(bankrupt)                                                # [P]
    loss = weigh(b, _deficit_share(lay, size, av, m))                      # [P] USD
    payers_oi = lay.markets(weigh(negate(b), jnp.abs(size)))
    can = payers_oi > 0
    delta = jnp.where(can, lay.markets(loss) / jnp.where(can, payers_oi, 1.0), 0.0)   # [A] USD per unit
    charged = weigh(negate(b), jnp.abs(size) * lay.at_market(delta))
    credit = lay.rows(jnp.where(lay.at_market(can), loss, 0.0))
    new_book = book.replace(all_cash=book.all_cash + credit - lay.rows(charged))
    zero = jnp.zeros_like(size)
    return new_book, _report(new_book, m, bankrupt, av, zero, zero, charged)


def run(book: PositionBook, market: Market, params: Params, rules: Rules,
        config: EngineConfig = DEFAULT) -> tuple[PositionBook, Report]:
    """Deleverage every bankrupt row of one scenario (all markets at once).

    ``rules`` (static) picks the policy, the queue's score, the ADL price and the mode; ``config`` (static) the
    queue's cut-off search (:func:`take_from_top`); ``params`` gives
    the smooth mode's temperature and requirements (unused in the hard mode). In the smooth mode the
    bankrupt rows and the candidates are weights, the queue is :func:`take_soft`, and a row that closes
    both ways closes at the average of its two prices (:func:`adljax.engine.stages.adl.run`). Returns the
    new book and the dense stage's :class:`~adljax.engine.stages.adl.Report` ([R] rows, [A] markets).
    """
    tau = temperature_of(params, rules)
    if rules.adl_policy == "socialized":
        return socialize(book, market, params, tau)
    lay = book.layout
    m = market.mark
    mc = lay.at_market(m)                                                   # [P] each position's mark
    size, entry = book.position_size, book.position_entry                   # [P]
    bankrupt, av, cand = bankrupt_rows(book, market, params, tau)
    b, c = lay.at_row(bankrupt), lay.at_row(cand)

    long_b = weigh(b, jnp.maximum(size, 0.0))
    short_b = weigh(b, jnp.maximum(-size, 0.0))
    cap_short = weigh(c, jnp.maximum(-size, 0.0))                           # serves bankrupt longs
    cap_long = weigh(c, jnp.maximum(size, 0.0))                             # serves bankrupt shorts
    q_long, q_short = lay.markets(long_b), lay.markets(short_b)             # [A] each
    c_long, c_short = lay.markets(cap_short), lay.markets(cap_long)
    # A pool whose two sides are equal but for rounding is matched whole on both sides,
    # so that no row is left holding dust (docs/rules.md, "dust").
    tol = POOL_TOLERANCE[jnp.dtype(m.dtype).name]
    whole_long = jnp.abs(c_long - q_long) <= tol * jnp.maximum(q_long, c_long)
    whole_short = jnp.abs(c_short - q_short) <= tol * jnp.maximum(q_short, c_short)
    matched_long = jnp.where(whole_long, q_long, jnp.minimum(q_long, c_long))
    matched_short = jnp.where(whole_short, q_short, jnp.minimum(q_short, c_short))
    f_long = jnp.where(whole_long, 1.0, _ratio(matched_long, q_long))
    f_short = jnp.where(whole_short, 1.0, _ratio(matched_short, q_short))
    closed_b = weigh(b, size * jnp.where(size > 0, lay.at_market(f_long), lay.at_market(f_short)))

    # ADL price of each bankrupt position: one per market [A] (`uniform`), or per position.
    uniform = {"previous_mark": market.prev_mark, "mark": m}.get(rules.adl_price)
    if rules.adl_price == "bankruptcy":
        # p_b = m + share/size with share = D·|size|·m/row, written without dividing by the size (as dense).
        row = lay.rows(jnp.abs(size) * mc)
        per = jnp.maximum(-av, 0.0) / jnp.where(row > 0, row, 1.0)          # [R] deficit per USD held
        p_b = mc + jnp.sign(size) * lay.at_row(per) * mc
    elif uniform is None:
        raise ValueError(rules.adl_price)

    if rules.adl_policy == "queue":
        scores = score(rules, lay, size, entry, av, m)
    elif rules.adl_policy == "random_order":
        scores = lay.at_row(random_order_score(av.shape[-1], market.adl_start, m.dtype))
    else:
        scores = None
    if rules.smooth:
        # (No skip: run_if is not differentiable, and the smooth mode is for gradients.)
        allocate = lambda cap, need: (take_soft(lay, scores, cap, need, tau) if rules.adl_policy == "queue"
                                      else _allocate(rules, lay, scores, cap, need, config))
    else:
        # A side of the book that no scenario of the batch asks anything of (in a crash, the
        # candidates of bankrupt shorts) skips the queue: its allocation is zero.
        queue = lambda ly, s, cp, n: _allocate(rules, ly, s, cp, n, config)
        allocate = lambda cap, need: run_if(jnp.any(need > 0), queue, jnp.zeros_like(cap), lay, scores, cap, need)
    # (A pool matched whole asks the queue for nothing: its allocation is its capacity.)
    take_short = jnp.where(lay.at_market(whole_long), cap_short,
                           allocate(cap_short, jnp.where(whole_long, 0.0, matched_long)))
    take_long = jnp.where(lay.at_market(whole_short), cap_long,
                          allocate(cap_long, jnp.where(whole_short, 0.0, matched_short)))
    closed_c = take_long - take_short                                       # signed units closed, like size
    closed = closed_b + closed_c

    if uniform is not None:
        # Every bankrupt position of a market closes at one price, and so do its counterparties.
        price = lay.at_market(uniform)
    else:
        # One price for all counterparties of a pool: the bankrupt side's average.
        def pool_price(side: Array) -> Array:
            units = jnp.where(side, jnp.abs(closed_b), 0.0)
            tot = lay.markets(units)
            return jnp.where(tot > 0, _ratio(lay.markets(units * p_b), tot), m)
        # (counterparties of bankrupt longs are shorts, and the other way round)
        p_c = jnp.where(size > 0, lay.at_market(pool_price(size < 0)), lay.at_market(pool_price(size > 0)))
        if not rules.smooth:
            price = jnp.where(b, p_b, p_c)
        else:  # a row partly bankrupt may close both ways: the average of its two prices
            nz = closed != 0
            price = jnp.where(nz, (closed_b * p_b + closed_c * p_c) / jnp.where(nz, closed, 1.0), p_c)
    new_size, new_entry, dcash = reduce_position(size, entry, closed, price)
    cash = book.all_cash + lay.rows(dcash)
    if rules.adl_price == "bankruptcy":
        # Closed whole at its bankruptcy price, a bankrupt row is at exactly 0 (not ±rounding).
        whole = bankrupt if not rules.smooth else bankrupt >= 1
        flat = whole & ~lay.any_rows(new_size != 0)
        cash = jnp.where(flat, 0.0, cash)
    new_book = book.replace(all_cash=cash, position_size=new_size, position_entry=new_entry)

    # The units closed against the vault's bankrupt positions: a bankrupt row is no candidate in the
    # hard mode, so they are the vault slots' change of size (as the dense stage takes them); in the
    # smooth mode, where the vault may be both, its bankrupt closes themselves.
    if rules.smooth:
        vault_units = jnp.abs(lay.vault(closed_b))
    else:
        vault_units = jnp.where(bankrupt[VAULT], jnp.abs(lay.vault(size) - lay.vault(new_size)), 0.0)
    return new_book, _report(new_book, m, bankrupt, av, closed_c, closed_b, jnp.zeros_like(size), vault_units)
