"""The position engine: one step composes the stages on a position book; :func:`run` scans it over time.

The same waterfall as :mod:`adljax.engine.waterfall` (its order, its batch-level skips of the stages
no scenario needs, its reports and metrics), on a :class:`~adljax.model.position_book.PositionBook`:
every stage works on the list of positions with segment sums to rows and markets
(:class:`~adljax.model.layout.Layout`), so a step costs ``O(P + R + A)`` where the dense engine's
costs ``O(R·A)``. Both modes: the hard rules, and the smooth mode (``rules.smooth``, temperature
``params.temperature``: :mod:`adljax.engine.smooth`), whose stages are skipped through ``lax.cond`` and
whose scan is checkpointed (:func:`adljax.engine.waterfall.scan_remat`) so that reverse-mode gradients
run through it, as in the dense engine.

The scan carries each scenario's values (cash, sizes, entries, cooldowns, fund); the layout is one
for the batch, passed into every stage unbatched.
"""
from __future__ import annotations

from functools import partial

import jax
import jax.numpy as jnp
from jax import Array, lax

from ...model.layout import Layout
from ...model.outcome import METRICS
from ...model.position_book import PositionBook
from ...model.pytree import pytree
from ...model.rows import BUT_LP, VAULT
from ...model.venue import Params, Rules
from ...parallel.sharding import pad_scenarios
from ..config import DEFAULT, EngineConfig
from ..market import Market
from ..stages import adl as dense_adl
from ..stages import backstop as dense_backstop
from ..stages import liquidation as dense_liquidation
from ..stages import margin as dense_margin
from ..state import State
from ..smooth import temperature_of
from ..skip import stage_if, zeros_like_output
from ..waterfall import _SUMS, add_reports, adl_starts, blocks, scan_remat
from . import adl, backstop, liquidation, margin
from .accounting import account_value


@pytree
class Carry:
    """Batched scan state; every field has a leading scenario axis S."""

    values: dict         # PositionBook.values(): all_cash [S, R], position_size/entry [S, P], ...
    impact: Array        # [S, A]
    prev_mark: Array     # [S, A]
    acc: dict            # running metric sums, [S] each
    deleveraged: Array   # [S, R] bool
    bankrupt: Array      # [S, R] bool
    adl_markets: Array   # [S, A] bool
    value0: Array        # [S]
    adl_scale: Array     # [S] USD: traders' mean position notional at the start (smooth P(ADL)'s unit)
    ref_mark: Array      # [S, A] the marks of the last full margin check after which nothing moved
    reach: Array         # [S] the move from ref_mark below which a step is quiet (margin.reach); 0: check; −1:
                         # a stage acted in the last step (check, and leave the reach for the step after)


# ---- the stages (adljax.engine.state), one scenario; the trailing argument is the batch's layout ------------
def liquidate(state: State, market: Market, params: Params, rules: Rules, config: EngineConfig, lay: Layout,
              liquidatable: Array) -> tuple[State, dense_liquidation.Report]:
    """Market liquidation of the ``liquidatable`` rows ([R], the margin check's: bool, or weights in the smooth
    mode), on the whole list."""
    book, report = liquidation.run(_book(state.book, lay), market, params, rules, liquidatable, state.margin.av)
    return State(book.values(), margin.values(book, market, params)), report


def liquidate_gathered(state: State, market: Market, params: Params, rules: Rules, config: EngineConfig,
                       lay: Layout) -> tuple[State, dense_liquidation.Report]:
    """:func:`liquidate` on the liquidatable rows' positions only (hard mode; at most
    :func:`~adljax.engine.positions.liquidation.gathered_sizes` of them)."""
    book, report, after = liquidation.run_gathered(_book(state.book, lay), market, params, rules,
                                                   dense_margin.liquidatable(state.margin), state.margin, config)
    return State(book.values(), after), report


def take_over(state: State, market: Market, params: Params, rules: Rules, config: EngineConfig,
              lay: Layout) -> tuple[State, dense_backstop.Report]:
    """The backstop vault takes over the candidates it can carry."""
    book, report, after = backstop.takeover(_book(state.book, lay), market, params, state.margin,
                                            temperature_of(params, rules))
    return State(book.values(), after), report


def insure(state: State, market: Market, params: Params, rules: Rules, config: EngineConfig,
           lay: Layout) -> tuple[State, dense_backstop.Report]:
    """The insurance fund pays deficits in row order (the paid rows' values recomputed from the book)."""
    book, report = backstop.run_insurance(_book(state.book, lay), market, params, state.margin)
    return State(book.values(), margin.values(book, market, params)), report


def deleverage(state: State, market: Market, params: Params, rules: Rules, config: EngineConfig,
               lay: Layout) -> tuple[State, dense_adl.Report]:
    """ADL of every bankrupt row; the margin is left as it was (the last stage)."""
    book, report = adl.run(_book(state.book, lay), market, params, rules, config)
    return State(book.values(), state.margin), report


def _book(values: dict, lay: Layout) -> PositionBook:
    return PositionBook(**values, layout=lay)


def _batched(stage, params: Params, rules: Rules, lay: Layout, config: EngineConfig):
    """``stage`` over the batch: ``(state [S, ...], market [S, ...], *more [S, ...]) -> (state, report [S, ...])``."""
    return jax.vmap(lambda st, mk, *more: stage(st, mk, params, rules, config, lay, *more))


def step(carry: Carry, inputs, params: Params, rules: Rules, keys: Array, lay: Layout,
         config: EngineConfig = DEFAULT, row_positions: Array | None = None):
    """One step for the whole batch: clock, margin check, liquidation, backstop, ADL, report.

    ``inputs`` is ``(t, oracle [S, A], depth [S, A], funding [S, A] or None)``; ``keys`` [S].
    """
    t, oracle, depth, funding = inputs
    smooth = rules.smooth
    tau = temperature_of(params, rules)       # traced in the smooth mode: changing it does not recompile
    vals = dict(carry.values)
    dt = params.dt
    vals["cooldown"] = jnp.maximum(vals["cooldown"] - dt, 0.0)
    impact = carry.impact * jnp.exp2(-dt / params.impact_half_life)
    mark = oracle * jnp.exp(impact)
    if funding is not None:  # every position pays size·mark·rate (zero-sum per market)
        paid = jax.vmap(lambda s, r: lay.rows(s * lay.at_market(r)))(vals["position_size"], mark * funding)
        vals["all_cash"] = vals["all_cash"] - paid
    n_rows = lay.n_rows
    start = (adl_starts(keys, t, n_rows) if rules.adl_policy == "random_order"
             else jnp.zeros(oracle.shape[0], jnp.int32))
    mkt = Market(mark=mark, prev_mark=carry.prev_mark, depth=depth, adl_start=start)

    # Stage 1: margin check, but in a quiet step (EngineConfig.skip_quiet_steps): every scenario's marks within
    # its reach of the last check's, so that no row can be liquidatable or bankrupt and every stage skips.
    lazy = config.skip_quiet_steps and not smooth and funding is None

    def check(v, mk, settled):
        liq, g = margin.run(_book(v, lay), mk, params, tau)
        if not lazy:
            return liq, g, jnp.zeros((), mark.dtype)
        r = lax.cond(settled, lambda: margin.reach(_book(v, lay), mk, params, g), lambda: jnp.zeros((), mark.dtype))
        return liq, g, r
    settled = jnp.all(carry.reach >= 0)          # nothing moved in the last step: this check's reach holds
    checked = jax.vmap(check, in_axes=(0, 0, None))
    if lazy:
        moved_by = jnp.max(jnp.abs(mark - carry.ref_mark) / carry.ref_mark, axis=-1)           # [S]
        quiet = jnp.all(moved_by < carry.reach)
        liquidatable, mg, reach = lax.cond(quiet, lambda v, mk, st: zeros_like_output(checked, v, mk, st),
                                           checked, vals, mkt, settled)
    else:
        liquidatable, mg, reach = checked(vals, mkt, settled)

    # Stages 2-4, each on the batch's state in the steps where some scenario needs it.
    batched = lambda stage: _batched(stage, params, rules, lay, config)
    state = State(vals, mg)

    # Stage 2: market liquidation, in steps where some row is liquidatable or the vault unwinds.
    unwinding = (params.vault_unwind > 0) & jnp.any(mg.has_position[:, VAULT])
    need_liq = jnp.any(liquidatable) | unwinding
    k_rows, k_pos = liquidation.gathered_sizes(lay, config)
    if smooth or row_positions is None or k_rows >= lay.n_traders:
        state, liq = stage_if(need_liq, batched(liquidate), state, mkt, liquidatable, differentiable=smooth)
    else:
        # Only the liquidatable rows' positions, gathered, when every scenario has few enough of them
        # (liquidation.run_gathered); the whole list otherwise. One of the two runs, or neither. (The gathered
        # stage takes the liquidatable rows again from the state's margin, so that XLA does not hoist the
        # gathering out of the loop that skips it.)
        few = jnp.all((jnp.sum(liquidatable, axis=-1) <= k_rows)
                      & (jnp.sum(jnp.where(liquidatable, row_positions, 0), axis=-1) <= k_pos))
        state, liq = stage_if(need_liq & few, batched(liquidate_gathered), state, mkt)
        state, liq_whole = stage_if(need_liq & ~few, batched(liquidate), state, mkt, liquidatable)
        liq = jax.tree_util.tree_map(jnp.add, liq, liq_whole)       # one of the two reports is zeros
    safe_depth = jnp.where(depth > 0, depth, 1.0)
    impact = impact + params.impact * jnp.where(depth > 0, liq.flow / safe_depth, 0.0)

    # Stage 3: backstop, in steps where some scenario has a candidate.
    if rules.backstop == "vault":
        need_bs = jnp.any(jax.vmap(lambda g: dense_backstop.candidates(g, params, tau))(state.margin))
        state, bs = stage_if(need_bs, batched(take_over), state, mkt, differentiable=smooth)
    elif rules.backstop == "insurance":
        need_bs = jnp.any(jax.vmap(lambda v, g: dense_backstop.insurance_candidates(_book(v, lay), g))(
            state.book, state.margin))
        state, bs = stage_if(need_bs, batched(insure), state, mkt, differentiable=smooth)
    else:
        need_bs = jnp.asarray(False)
        zero = jnp.zeros(oracle.shape[0], mark.dtype)
        bs = dense_backstop.Report(notional=zero, accounts=zero, bad_debt=zero)

    # Stage 4: ADL, in steps where some scenario has a bankrupt row.
    need_adl = jnp.any(jax.vmap(lambda g: dense_adl.needed(g, params, tau))(state.margin))
    state, ad = stage_if(need_adl, batched(deleverage), state, mkt, differentiable=smooth)
    vals = state.book

    acc = add_reports(carry.acc, liq, bs, ad, smooth, tau, carry.adl_scale)

    def drift(v):
        value = _total_value(v) + v["insurance_fund"]
        net = jax.vmap(lay.markets)(v["position_size"])
        return jnp.abs(value - carry.value0), jnp.max(jnp.abs(net), axis=-1)
    zeros = jnp.zeros_like(carry.value0)
    moved = need_liq | need_bs | need_adl | (funding is not None)
    err_value, err_size = lax.cond(moved, drift, lambda v: (zeros, zeros), vals)
    acc["conservation_error"] = jnp.maximum(acc["conservation_error"], err_value)
    acc["zero_sum_error"] = jnp.maximum(acc["zero_sum_error"], err_size)
    vault_av = _vault_value(vals, lay, mark)
    acc["vault_equity_min"] = jnp.minimum(acc["vault_equity_min"], vault_av)

    if lazy:
        acted = need_liq | need_bs | need_adl
        ref_mark = jnp.where(quiet, carry.ref_mark, mark)
        reach = jnp.where(quiet, carry.reach, jnp.where(acted, -1.0, reach))
    else:
        ref_mark, reach = carry.ref_mark, carry.reach
    new = Carry(values=vals, impact=impact, prev_mark=mark, acc=acc,
                deleveraged=carry.deleveraged | ad.deleveraged, bankrupt=carry.bankrupt | ad.bankrupt,
                adl_markets=carry.adl_markets | ad.markets, value0=carry.value0, adl_scale=carry.adl_scale,
                ref_mark=ref_mark, reach=reach)
    hist = {
        "mark": mark,
        "vault_equity": vault_av,
        "market_liquidation_notional": liq.filled_notional,
        "backstop_notional": bs.notional,
        "adl_notional": ad.notional,
        "n_bankrupt": jnp.sum(ad.bankrupt, axis=-1).astype(mark.dtype),
    }
    return new, hist


def _total_value(v: dict) -> Array:
    return jnp.sum(v["all_cash"], axis=-1) - jnp.sum(v["position_size"] * v["position_entry"], axis=-1)


def _vault_value(v: dict, lay: Layout, mark: Array) -> Array:
    """[S] the vault's account value at ``mark`` [S, A]."""
    size, entry = lay.vault(v["position_size"]), lay.vault(v["position_entry"])
    return v["all_cash"][:, VAULT] + jnp.sum(size * (mark - entry), axis=-1)


def _init(vals: dict, lay: Layout, oracle0: Array) -> Carry:
    s = vals["all_cash"].shape[0]
    dtype = vals["all_cash"].dtype
    acc = {k: jnp.zeros(s, dtype) for k in _SUMS}
    acc["vault_equity_min"] = _vault_value(vals, lay, oracle0)
    acc["zero_sum_error"] = jnp.max(jnp.abs(jax.vmap(lay.markets)(vals["position_size"])), axis=-1)
    r = lay.n_rows
    # The smooth P(ADL)'s unit: the traders' mean open position notional at the start.
    size = vals["position_size"]
    traders = lay.is_trader() & (size != 0)                                   # [S, P]
    ntl = jnp.abs(size) * jax.vmap(lay.at_market)(oracle0)
    adl_scale = jnp.sum(jnp.where(traders, ntl, 0.0), axis=-1) / jnp.maximum(jnp.sum(traders, axis=-1), 1)
    return Carry(values=vals, impact=jnp.zeros_like(oracle0), prev_mark=oracle0, acc=acc,
                 deleveraged=jnp.zeros((s, r), bool), bankrupt=jnp.zeros((s, r), bool),
                 adl_markets=jnp.zeros(oracle0.shape, bool),
                 value0=_total_value(vals) + vals["insurance_fund"], adl_scale=adl_scale,
                 ref_mark=oracle0, reach=jnp.zeros(s, dtype))


def _finish(carry: Carry, lay: Layout, vault_av0: Array) -> dict[str, Array]:
    v = carry.values
    av = jax.vmap(lambda c, s, e, m: account_value(lay, c, s, e, m))(
        v["all_cash"], v["position_size"], v["position_entry"], carry.prev_mark)
    m = dict(carry.acc)
    dtype = av.dtype
    m["bad_debt_residual"] = jnp.sum(jnp.maximum(-av[:, BUT_LP], 0.0), axis=-1)
    m["bad_debt"] = m["bad_debt_backstop"] + m["bad_debt_adl"] + m["bad_debt_residual"]
    m["vault_pnl"] = av[:, VAULT] - vault_av0
    m["n_adl_accounts"] = jnp.sum(carry.deleveraged, axis=-1).astype(dtype)
    m["n_bankrupt_accounts"] = jnp.sum(carry.bankrupt, axis=-1).astype(dtype)
    m["adl_markets"] = jnp.sum(carry.adl_markets, axis=-1).astype(dtype)
    return {k: m[k] for k in METRICS}


@partial(jax.jit, static_argnames=("rules", "history", "config"))
def run(params: Params, book: PositionBook, oracle: Array, depth: Array, keys: Array, funding: Array | None = None,
        *, rules: Rules, history: bool = False, config: EngineConfig = DEFAULT):
    """Compiled core: batched position ``book`` [S, ...], ``oracle``/``depth``/``funding`` [S, T, A], ``keys`` [S].

    Returns ``(final book, metrics, history)`` as :func:`adljax.engine.waterfall.run` does; ``rules``
    (static; the smooth mode's temperature is read from ``params.temperature``, so pass
    ``venue.rules.compiled()`` to share one program across temperatures), ``config`` (static): its
    ``block`` is how many scenarios run through the time loop together
    (:meth:`~adljax.engine.config.EngineConfig.block_size`).
    """
    lay = book.layout
    vals = book.values()
    s = oracle.shape[0]
    one = partial(_run, lay=lay, rules=rules, history=history, config=config)
    block = config.block_size()
    if block is None or blocks(s, block)[0] == 1:
        vals, metrics, hist = one(params, vals, oracle, depth, keys, funding)
    else:
        n, b = blocks(s, block)
        split = lambda x: pad_scenarios(x, n * b).reshape((n, b) + x.shape[1:])
        out = lax.map(lambda xs: one(params, *xs), jax.tree_util.tree_map(split, (vals, oracle, depth, keys, funding)))
        vals, metrics, hist = jax.tree_util.tree_map(lambda y: y.reshape((n * b,) + y.shape[2:])[:s], out)
    return _book(vals, lay), metrics, hist


def _run(params, vals, oracle, depth, keys, funding, *, lay: Layout, rules: Rules, history: bool,
         config: EngineConfig = DEFAULT):
    carry = _init(vals, lay, oracle[:, 0])
    row_positions = lay.rows(jnp.ones(lay.n_positions, jnp.int32))      # [R] each row's slots
    vault_av0 = carry.acc["vault_equity_min"]
    time_major = lambda x: None if x is None else jnp.swapaxes(x, 0, 1)
    xs = (jnp.arange(oracle.shape[1]), time_major(oracle), time_major(depth), time_major(funding))

    def body(c, x):
        c, h = step(c, x, params, rules, keys, lay, config, row_positions)
        return c, (h if history else None)

    if rules.smooth:   # checkpointed, for reverse-mode gradients through long horizons
        carry, hist = scan_remat(body, carry, xs, oracle.shape[1])
    else:
        carry, hist = lax.scan(body, carry, xs)
    if history:
        hist = {k: jnp.swapaxes(v, 0, 1) for k, v in hist.items()}
    return carry.values, _finish(carry, lay, vault_av0), hist
