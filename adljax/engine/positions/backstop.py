"""Stage 3 on a position book: a vault takeover, or an insurance fund that pays deficits.

The position forms of :mod:`adljax.engine.stages.backstop` (same rules, same :class:`Report`):

- :func:`takeover` (Hyperliquid): the vault takes over the candidates (``AV < backstop_ratio·MR``) in row
  order and stops at the first it cannot carry; a taken row's positions move to the vault at mark and its
  value (cash and PnL) to the vault's cash.
- :func:`run_insurance` (BitMEX, Binance, Bybit, dYdX): the fund pays every trader row's deficit (``−AV``)
  in row order until it is empty.

In the smooth mode the takeover takes weighted shares of rows (as the dense stage does); the insurance
fund's rule is the hard one in both modes (the dense engine's too).

Per scenario: positions [P], rows [R], markets [A]; work and memory grow with ``P + R + A``.
"""
from __future__ import annotations

import jax.numpy as jnp
from jax import Array

from ...model.layout import Layout
from ...model.position_book import PositionBook
from ...model.rows import VAULT, vault_row
from ...model.venue import Params
from ..accounting import dust, trade
from ..market import Market
from ..prefix import cumsum
from ..skip import run_if
from ..smooth import above, hard, ratio
from ..stages.backstop import Report, candidates, insurance_candidates
from ..stages.margin import Margin
from .accounting import below_zero, market_requirement, requirement
from .margin import values


def run_insurance(book: PositionBook, market: Market, params: Params,
                  margin: Margin | None = None) -> tuple[PositionBook, Report]:
    """The insurance fund pays deficits in row order until it is empty (the hard rule, in both modes).

    ``margin``: :func:`adljax.engine.positions.margin.values` of ``book`` if the caller holds it (computed
    here otherwise). Returns the book (``all_cash`` [R] raised by what each row was paid, the fund [] lowered)
    and the :class:`Report` (``bad_debt``: USD paid, ``accounts``: rows paid, ``notional`` 0).
    """
    margin = values(book, market, params) if margin is None else margin
    lay, av = book.layout, margin.av
    # insurance_candidates reads only the fund and the margin, so it serves a position book as it is.
    cand = insurance_candidates(book, margin) & below_zero(lay, av, book.all_cash, book.position_size,
                                                           book.position_entry, market.mark)
    deficit = jnp.where(cand, -av, 0.0)                                   # [R] USD
    before = cumsum(deficit) - deficit                                    # deficits of the rows before, [R]
    left = book.insurance_fund - before
    # A fund left with dust by rounding is empty (docs/rules.md, "Dust").
    paid = jnp.where(left > dust(left) * book.insurance_fund, jnp.clip(left, 0.0, deficit), 0.0)
    total = jnp.sum(paid)
    report = Report(notional=jnp.zeros_like(total), accounts=jnp.sum(paid > 0).astype(total.dtype), bad_debt=total)
    fund = book.insurance_fund - total
    fund = jnp.where(fund <= dust(fund) * book.insurance_fund, 0.0, fund)   # emptied but for rounding
    return book.replace(all_cash=book.all_cash + paid, insurance_fund=fund), report


def takeover(book: PositionBook, market: Market, params: Params, margin: Margin,
             temperature: float = 0.0) -> tuple[PositionBook, Report, Margin]:
    """The vault takes over the candidates it can carry; returns the book, the report and its margin.

    ``margin`` is :func:`adljax.engine.positions.margin.values` of ``book`` (the engine holds it). A taken
    row ends with every position 0 (entry 0), cash 0 and cooldown 0; the per-market sum of its positions
    trades onto the vault's slots at mark, and its ``AV`` goes to the vault's cash. The margin after is
    exact without a second pass over the book: a taken row is left with nothing (``AV``, ``MR`` 0, no
    position), only the vault's row is revalued, and every other row is untouched.

    Smooth mode (``temperature`` τ > 0, :func:`adljax.engine.stages.backstop.takeover`): a candidate of
    weight ``w`` that the vault carries with weight ``c`` (``above(AV_v/MR_v − 1, τ)`` after taking every
    candidate so far) is taken over by ``w·Π(1 − w_j·(1 − c_j))`` over the rows up to it: that share of its
    positions (at mark), cash and cooldown moves; the margin after is recomputed from the book.
    """
    if not hard(temperature):
        return _takeover_smooth(book, market, params, margin, temperature)
    lay = book.layout
    cand = candidates(margin, params)                                      # [R]
    take = _vault_takes(lay, cand, margin.av, margin.mr, book.position_size, market.mark, params)   # [R] bool
    # In most steps of a crash the vault takes no one (it refuses its first candidate): the move, a few
    # passes over the list, runs only where some scenario of the batch takes a row.
    zero = jnp.zeros((), market.mark.dtype)
    skipped = (book.values(), Report(notional=zero, accounts=zero, bad_debt=zero), margin)
    values, report, after = run_if(jnp.any(take), _move, skipped, lay, book.values(), market.mark, params, margin,
                                   take)
    return PositionBook(**values, layout=lay), report, after


def _move(lay: Layout, values: dict, m: Array, params: Params, margin: Margin,
          take: Array) -> tuple[dict, Report, Margin]:
    """The hard takeover of the rows ``take`` [R]: the book's values, the report and the margin after."""
    book = PositionBook(**values, layout=lay)
    size, entry = book.position_size, book.position_entry                  # [P]
    av = margin.av
    n = av.shape[-1]
    is_vault = jnp.arange(n) == vault_row(n)
    taken_size = jnp.where(lay.at_row(take), size, 0.0)                   # [P]
    v_size, v_entry, v_dcash = trade(lay.vault(size), lay.vault(entry), lay.markets(taken_size), m)
    cash = book.all_cash - jnp.where(take, book.all_cash, 0.0)
    cash = cash + jnp.where(is_vault, jnp.sum(jnp.where(take, av, 0.0)) + jnp.sum(v_dcash), 0.0)
    kept = size - taken_size
    new_size = lay.with_system(kept, vault=v_size)
    new_entry = lay.with_system(jnp.where(kept == 0, 0.0, entry), vault=v_entry)
    cooldown = book.cooldown - jnp.where(take, book.cooldown, 0.0)
    report = Report(notional=jnp.sum(jnp.abs(taken_size) * lay.at_market(m)),
                    accounts=jnp.sum(take.astype(m.dtype)),
                    bad_debt=jnp.sum(jnp.where(take, jnp.maximum(-av, 0.0), 0.0)))
    new_book = book.replace(all_cash=cash, position_size=new_size, position_entry=new_entry, cooldown=cooldown)

    v_av = cash[VAULT] + jnp.sum(v_size * (m - v_entry))
    v_mr = jnp.sum(market_requirement(v_size, m, params))
    after = lambda old, gone, vault: jnp.where(is_vault, vault, jnp.where(take, gone, old))
    return new_book.values(), report, Margin(av=after(margin.av, 0.0, v_av), mr=after(margin.mr, 0.0, v_mr),
                                             has_position=after(margin.has_position, False, jnp.any(v_size != 0)))


def _takeover_smooth(book: PositionBook, market: Market, params: Params, margin: Margin,
                     temperature) -> tuple[PositionBook, Report, Margin]:
    """:func:`takeover` in the smooth mode: ``take`` [R] weights instead of the hard walk."""
    lay, m = book.layout, market.mark
    size, entry = book.position_size, book.position_entry                  # [P]
    cand, av = candidates(margin, params, temperature), margin.av          # [R] weights, USD
    n = av.shape[-1]
    is_vault = jnp.arange(n) == vault_row(n)
    cum_av, cum_mr = _running(lay, cand, av, margin.mr, size, m, params)
    carries = above(ratio(cum_av, cum_mr, jnp.where(cum_av >= 0, 2.0, -2.0)) - 1.0, temperature)
    take = cand * jnp.cumprod(1.0 - cand * (1.0 - carries))                # [R] share of each row taken

    taken_size = lay.at_row(take) * size                                   # [P]
    v_size, v_entry, v_dcash = trade(lay.vault(size), lay.vault(entry), lay.markets(taken_size), m)
    cash = book.all_cash - take * book.all_cash
    cash = cash + jnp.where(is_vault, jnp.sum(take * av) + jnp.sum(v_dcash), 0.0)
    kept = size - taken_size
    new_size = lay.with_system(kept, vault=v_size)
    new_entry = lay.with_system(jnp.where(kept == 0, 0.0, entry), vault=v_entry)
    cooldown = book.cooldown - take * book.cooldown
    report = Report(notional=jnp.sum(jnp.abs(taken_size) * lay.at_market(m)),
                    accounts=jnp.sum(take),
                    bad_debt=jnp.sum(take * jnp.maximum(-av, 0.0)))
    new_book = book.replace(all_cash=cash, position_size=new_size, position_entry=new_entry, cooldown=cooldown)
    return new_book, report, values(new_book, market, params)


def _running(lay: Layout, cand: Array, av: Array, mr: Array, size: Array, m: Array,
             params: Params) -> tuple[Array, Array]:
    """([R], [R]) the vault's value and requirement after taking every candidate up to each row, USD.

    The requirement grows position by position: a candidate's position in market ``a`` adds
    ``req(v_a + cum_a) − req(v_a + cum_a − size)``, with ``cum_a`` the running sum (row order, inclusive)
    of the candidates' sizes in market ``a``; summed per row and run over the rows in order, these
    differences telescope to the dense form ``Σ_a req(v_a + cum_a(row))`` less the vault's own ``MR``.
    """
    # (cand [R] bool, or the smooth mode's weights: a candidate's share of its positions.)
    x = jnp.where(lay.at_row(cand), size, 0.0) if cand.dtype == jnp.bool_ else lay.at_row(cand) * size
    cum = lay.market_cumsum(x)
    v = lay.at_market(lay.vault(size))
    delta = jnp.where(x != 0, requirement(lay, v + cum, m, params) - requirement(lay, v + cum - x, m, params), 0.0)
    cum_av = av[VAULT] + cumsum(jnp.where(cand, av, 0.0) if cand.dtype == jnp.bool_ else cand * av)
    cum_mr = mr[VAULT] + cumsum(lay.rows(delta))
    return cum_av, cum_mr


def _walk(lay: Layout, cand: Array, av: Array, mr: Array, size: Array, m: Array, params: Params) -> Array:
    """[R] bool: the candidates before the first one the vault cannot carry (the rule itself)."""
    n = av.shape[-1]
    rows = jnp.arange(n)
    cum_av, cum_mr = _running(lay, cand, av, mr, size, m, params)
    return cand & (rows < jnp.min(jnp.where(cand & (cum_av < cum_mr), rows, n)))


def _vault_takes(lay: Layout, cand: Array, av: Array, mr: Array, size: Array, m: Array, params: Params) -> Array:
    """[R] bool: the rows the vault takes over, deciding cheaply where it can (as the dense stage does).

    Most steps need no walk: the vault refuses its first candidate (so takes nothing), or carries them all
    even if every loss came first and no position netted (so takes every one). The first candidate's
    positions are gathered from its run in the list (at most one a market); the bound for carrying them
    all (a few passes over the list) is taken only where some scenario's vault accepts its first candidate,
    and the walk only where some scenario is left undecided. The dense stage's walk over the first
    candidates gathered is not ported: the whole walk here costs ``O(P + R)``.
    """
    n = av.shape[-1]
    a = lay.n_markets
    rows = jnp.arange(n)
    v_size = lay.vault(size)                                                # [A]
    first = jnp.min(jnp.where(cand, rows, n))
    some = first < n
    first = jnp.minimum(first, n - 1)
    at, real, _ = lay.positions_of(first[None], some[None], min(a, lay.n_trader_positions))
    first_size = jnp.zeros(a, size.dtype).at[lay.market[at]].add(jnp.where(real, size[at], 0.0))   # [A]
    accepts_first = some & (av[VAULT] + av[first] >= jnp.sum(market_requirement(v_size + first_size, m, params)))
    return run_if(accepts_first, _past_the_first, jnp.zeros(n, bool), lay, cand, av, mr, size, m, params)


def _past_the_first(lay: Layout, cand: Array, av: Array, mr: Array, size: Array, m: Array, params: Params) -> Array:
    """:func:`_vault_takes` once the vault accepts its first candidate: every candidate where it carries them
    all, else the walk."""
    v_size = lay.vault(size)
    worst_av = av[VAULT] + jnp.sum(jnp.where(cand, jnp.minimum(av, 0.0), 0.0))
    if params.tier_rates.shape[-1] == 0:
        worst_mr = mr[VAULT] + jnp.sum(jnp.where(cand, mr, 0.0))
    else:
        # A tiered requirement grows faster than the notional, so the candidates' own requirements do not
        # bound the vault's after it takes them; every position on one side of each market does.
        gross = jnp.abs(v_size) + lay.markets(jnp.where(lay.at_row(cand), jnp.abs(size), 0.0))
        worst_mr = jnp.sum(market_requirement(gross, m, params))
    scale = jnp.abs(av[VAULT]) + jnp.sum(jnp.where(cand, jnp.abs(av), 0.0)) + worst_mr
    carries_all = worst_av - worst_mr > dust(scale) * scale
    return run_if(~carries_all, _walk, cand, lay, cand, av, mr, size, m, params)
