"""Stage 3, backstop: a vault takeover, or an insurance fund that pays deficits.

``vault`` (Hyperliquid): the liquidator vault (part of HLP) takes over rows
below ``backstop_ratio·MR``: their positions at mark and all their
remaining collateral; the maintenance buffer is not returned. The vault
considers candidates in row order and stops at the first one that would
leave its own ``AV`` below its own requirement.

``insurance`` (BitMEX, Binance, Bybit, dYdX): the fund pays the deficit
(``−AV``) of every trader row below zero, in row order, until it is empty.
"""
from __future__ import annotations

from functools import partial

import jax.numpy as jnp
from jax import Array

from ...model.pytree import pytree
from ..accounting import account_value, any_markets, below_zero, dust, maintenance, notional, requirement, trade
from ..config import DEFAULT, EngineConfig
from ...model.book import Book
from ...model.rows import VAULT, VAULT_AXIS, vault_row
from ..market import Market
from ..prefix import cumsum, first_rows
from ..skip import run_if
from ..smooth import above, both, count, hard, ratio, weigh
from ...model.venue import Params
from .margin import Margin, trader_rows, values


@pytree
class Report:
    """Stage 3 report (one scenario)."""

    notional: Array
    accounts: Array
    bad_debt: Array


def candidates(margin: Margin, params: Params, temperature: float = 0.0) -> Array:
    """[R] trader rows with ``AV < backstop_ratio·MR``: bool, or weights in the smooth mode.

    A row with no position but ``AV < 0`` (its position was filled below its
    bankruptcy price) is a candidate too: the vault absorbs the deficit.
    Smooth: ``above((ratio·MR − AV)/MR, τ)``, and ``−AV/|AV|`` for a row
    without a position (so such a row is a candidate exactly as in the hard rule).
    """
    rows = trader_rows(margin.av.shape[-1])
    if hard(temperature):
        return rows & (margin.av < params.backstop_ratio * margin.mr)
    scale = jnp.where(margin.mr > 0, margin.mr, jnp.abs(margin.av))
    return both(rows, above(ratio(params.backstop_ratio * margin.mr - margin.av, scale), temperature))


def insurance_candidates(book: Book, margin: Margin) -> Array:
    """[R] bool: trader rows below zero while the fund has money (the cheap test; the
    stage itself also requires ``AV`` below zero beyond rounding, see ``below_zero``)."""
    return trader_rows(margin.av.shape[-1]) & (margin.av < 0) & (book.insurance_fund > 0)


def run_insurance(book: Book, market: Market, params: Params, margin: Margin | None = None,
                  config: EngineConfig = DEFAULT) -> tuple[Book, Report]:
    """The insurance fund pays deficits in row order until it is empty.

    ``margin``: ``values(book, market, params)`` if the caller holds it (computed here otherwise).
    ``config`` (static): the engine's :class:`~adljax.engine.config.EngineConfig`.
    """
    margin = values(book, market, params, config) if margin is None else margin
    av = margin.av
    cand = insurance_candidates(book, margin) & below_zero(av, book.all_cash, book.size_am, book.entry_am, market.mark,
                                                           unrolled=config.unrolled_markets)
    deficit = jnp.where(cand, -av, 0.0)
    before = cumsum(deficit, config.prefix_block) - deficit
    left = book.insurance_fund - before
    # A fund left with dust by rounding is empty (docs/rules.md, "Dust").
    paid = jnp.where(left > dust(left) * book.insurance_fund, jnp.clip(left, 0.0, deficit), 0.0)
    total = jnp.sum(paid)
    report = Report(notional=jnp.zeros_like(total), accounts=jnp.sum(paid > 0).astype(total.dtype), bad_debt=total)
    fund = book.insurance_fund - total
    fund = jnp.where(fund <= dust(fund) * book.insurance_fund, 0.0, fund)   # emptied but for rounding
    return book.replace(all_cash=book.all_cash + paid, insurance_fund=fund), report


def run(book: Book, market: Market, params: Params, temperature: float = 0.0,
        config: EngineConfig = DEFAULT) -> tuple[Book, Report]:
    """The vault takes over the candidates it can carry: :func:`takeover` without the margin after."""
    new_book, report, _ = takeover(book, market, params, values(book, market, params, config), temperature, config)
    return new_book, report


def takeover(book: Book, market: Market, params: Params, margin: Margin,
             temperature: float = 0.0, config: EngineConfig = DEFAULT) -> tuple[Book, Report, Margin]:
    """The vault takes over the candidates it can carry; returns the book, the report and its margin.

    ``margin`` is ``values(book, market, params)``, which the engine already
    holds; ``config`` (static) the engine's :class:`~adljax.engine.config.EngineConfig`.
    The margin after is exact without a second pass over the book:
    a row taken over is left with nothing (value, requirement 0), only the
    vault's own row is revalued, and every other row is untouched. (In the
    smooth mode, where rows are taken in part, it is recomputed.)

    Smooth mode: a candidate of weight ``w`` that the vault carries with
    weight ``c`` (``above(AV_v/MR_v − 1, τ)`` after taking every candidate
    so far) is taken over by ``w·Π(1 − w_j·(1 − c_j))`` over the rows up to
    it: that share of its positions (at mark) and of its cash move to the vault.
    """
    m = market.mark
    size = book.size_am                                          # [A, R]
    cand, av = candidates(margin, params, temperature), margin.av
    n = av.shape[-1]
    rows = jnp.arange(n)
    is_vault = rows == vault_row(n)
    if hard(temperature):
        take = _vault_takes(cand, av, margin.mr, size, m, params, config)
    else:
        cum_av, cum_mr = _running(cand, av, size, m, params, config)
        carries = above(ratio(cum_av, cum_mr, jnp.where(cum_av >= 0, 2.0, -2.0)) - 1.0, temperature)
        take = cand * jnp.cumprod(1.0 - cand * (1.0 - carries))

    taken_size = weigh(take, size)
    v_size, v_entry, v_dcash = trade(size[:, VAULT], book.entry_am[:, VAULT], jnp.sum(taken_size, axis=1), m)
    cash = book.all_cash - weigh(take, book.all_cash)
    cash = cash + jnp.where(is_vault, jnp.sum(weigh(take, av)) + jnp.sum(v_dcash), 0.0)
    kept = size - taken_size
    new_size = jnp.where(is_vault, v_size[:, None], kept)
    new_entry = jnp.where(is_vault, v_entry[:, None], jnp.where(kept == 0, 0.0, book.entry_am))
    cooldown = book.cooldown - weigh(take, book.cooldown)
    report = Report(
        notional=jnp.sum(notional(taken_size, m)),
        accounts=count(take, m.dtype),
        bad_debt=jnp.sum(weigh(take, jnp.maximum(-av, 0.0))),
    )
    new_book = book.replace(all_cash=cash, size_am=new_size, entry_am=new_entry, cooldown=cooldown)
    u = config.unrolled_markets
    if not hard(temperature):
        return new_book, report, values(new_book, market, params, config)
    vs, ve = new_size[:, VAULT_AXIS], new_entry[:, VAULT_AXIS]
    after = lambda old, gone, vault: jnp.where(is_vault, vault[0], jnp.where(take, gone, old))
    return new_book, report, Margin(av=after(margin.av, 0.0, account_value(cash[VAULT_AXIS], vs, ve, m, unrolled=u)),
                                    mr=after(margin.mr, 0.0, maintenance(vs, m, params, unrolled=u)),
                                    has_position=after(margin.has_position, False, any_markets(vs != 0, unrolled=u)))


def _running(cand: Array, av: Array, size: Array, m: Array, params: Params,
             config: EngineConfig) -> tuple[Array, Array]:
    """([R], [R]) the vault's value and requirement after taking every candidate up to each row."""
    cum_av = av[VAULT] + cumsum(weigh(cand, av), config.prefix_block)
    cum_mr = maintenance(size[:, VAULT_AXIS] + cumsum(weigh(cand, size), config.prefix_block), m, params,
                         unrolled=config.unrolled_markets)
    return cum_av, cum_mr


def _walk(cand: Array, av: Array, size: Array, m: Array, params: Params, config: EngineConfig) -> Array:
    """[R] bool: the candidates before the first one the vault cannot carry (the rule itself)."""
    n = av.shape[-1]
    rows = jnp.arange(n)
    cum_av, cum_mr = _running(cand, av, size, m, params, config)
    return cand & (rows < jnp.min(jnp.where(cand & (cum_av < cum_mr), rows, n)))


def _walk_first(cand: Array, av: Array, size: Array, m: Array, params: Params, config: EngineConfig) -> Array:
    """:func:`_walk` over the first ``config.first_candidates`` candidates only, gathered by a running
    count of candidates and a binary search; over the whole book only when the vault carries
    them all and there are more."""
    n = av.shape[-1]
    rows = jnp.arange(n)
    k = min(n, config.first_candidates)
    at, real, count = first_rows(cand, k, config.prefix_block)           # [K] row of the j-th candidate
    k_av = av[VAULT] + jnp.cumsum(jnp.where(real, av[at], 0.0))
    k_mr = maintenance(size[:, VAULT_AXIS] + jnp.cumsum(jnp.where(real, size[:, at], 0.0), axis=1), m, params,
                       unrolled=config.unrolled_markets)
    refused = real & (k_av < k_mr)
    take = cand & (rows < jnp.min(jnp.where(refused, at, n)))
    return run_if(~jnp.any(refused) & (count > k), partial(_walk, config=config), take, cand, av, size, m, params)


def _vault_takes(cand: Array, av: Array, mr: Array, size: Array, m: Array, params: Params,
                 config: EngineConfig) -> Array:
    """[R] bool: the rows the vault takes over (hard rule), deciding cheaply where it can.

    Most steps need no walk at all: the vault refuses its first candidate (so
    takes nothing), or carries them all even if every loss came first and no
    position netted (so takes every one). Only a scenario in between walks
    (and a batch walks if any of its scenarios must).
    """
    n = av.shape[-1]
    rows = jnp.arange(n)
    first = jnp.minimum(jnp.min(jnp.where(cand, rows, n)), n - 1)
    refuses_first = av[VAULT] + av[first] < maintenance(size[:, VAULT_AXIS] + size[:, first][:, None], m, params,
                                                     unrolled=config.unrolled_markets)[0]
    worst_av = av[VAULT] + jnp.sum(jnp.where(cand, jnp.minimum(av, 0.0), 0.0))
    if params.tier_rates.shape[-1] == 0:
        worst_mr = mr[VAULT] + jnp.sum(jnp.where(cand, mr, 0.0))
    else:
        # A tiered requirement grows faster than the notional, so the candidates' own requirements do not
        # bound the vault's after it takes them; every position on one side of each market does.
        gross = jnp.abs(size[:, VAULT]) + jnp.sum(jnp.where(cand, jnp.abs(size), 0.0), axis=1)
        worst_mr = jnp.sum(requirement(gross[:, None], m, params))
    scale = jnp.abs(av[VAULT]) + jnp.sum(jnp.where(cand, jnp.abs(av), 0.0)) + worst_mr
    carries_all = worst_av - worst_mr > dust(scale) * scale
    decided = ~jnp.any(cand) | refuses_first | carries_all
    # (A book no longer than first_candidates rows walks whole: gathering every row is the whole book.)
    walk = partial(_walk_first if config.first_candidates < n else _walk, config=config)
    return run_if(~decided, walk, cand & ~refuses_first & carries_all, cand, av, size, m, params)
