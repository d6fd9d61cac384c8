"""The fast engine: one step composes the stages; ``simulate`` scans it over time.

The scan runs over the *batched* state (every scenario of a block at once) and maps the
stages over scenarios inside the step. That is what lets one batch-level
``lax.while_loop`` (run once or not at all) skip the later stages in steps where no scenario
needs them: under ``vmap`` a ``cond`` would run both branches. On CPU a batch runs as blocks
of :attr:`~adljax.engine.config.EngineConfig.cpu_block` scenarios one after another (:func:`run`):
a block's arrays stay in the caches, and a block skips what none of its own scenarios needs.

Every number that shapes the compiled program (block size, gathered-row limits, ...) comes from
one :class:`~adljax.engine.config.EngineConfig`, a static argument of :func:`run` that
:func:`step` passes on to the stages.
"""
from __future__ import annotations

from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
from jax import Array, lax

from ..model.pytree import pytree
from .accounting import account_value
from .config import DEFAULT, EngineConfig
from ..model.book import Book, check_inputs
from ..model.position_book import PositionBook
from ..model.rows import BUT_LP, SYSTEM, TRADERS, VAULT
from ..model.errors import InputError
from .market import Market
from ..model.outcome import METRICS
from ..model.paths import Paths
from ..parallel.sharding import pad_scenarios
from .skip import stage_if, zeros_like_output
from .state import State
from .smooth import smoothstep, temperature_of
from .stages import adl, backstop, liquidation, margin
from ..model.venue import Params, Rules, Venue


@pytree
class Carry:
    """Batched scan state; every field has a leading scenario axis S."""

    book: Book
    impact: Array        # [S, A] transient impact (log-price units)
    prev_mark: Array     # [S, A]
    acc: dict            # running metric sums, [S] each
    deleveraged: Array   # [S, R] bool, ever a counterparty of ADL
    bankrupt: Array      # [S, R] bool, ever bankrupt at the ADL stage
    adl_markets: Array   # [S, A] bool, ADL closed a position or charged a socialized loss there in some step
    value0: Array        # [S] Σ_rows AV at the start
    adl_scale: Array     # [S] USD: traders' mean position notional at the start (smooth P(ADL)'s unit)


_SUMS = ("market_liquidation_notional", "market_liquidation_orders", "partial_liquidation_orders",
         "liquidation_fees", "vault_unwind_notional", "backstop_notional", "backstop_accounts",
         "adl_notional", "adl_notional_vault", "socialized_loss", "adl_steps", "adl_indicator", "bad_debt_backstop",
         "bad_debt_adl", "conservation_error", "zero_sum_error", "vault_equity_min")


def adl_starts(keys: Array, t: Array, n_rows: int) -> Array:
    """[S] int: the ``random_order`` policy's first row in step ``t`` of each scenario."""
    return jax.vmap(lambda k: jax.random.randint(jax.random.fold_in(k, t), (), 0, n_rows))(keys)


def add_reports(acc: dict, liq, bs, ad, smooth: bool, tau, adl_scale: Array) -> dict:
    """The running metric sums ``acc`` ([S] each) with one step's stage reports added (both engines).

    ``adl_indicator`` keeps its largest value: whether ADL acted, or in the smooth mode ADL's size in the
    step in units of τ × a typical position (``adl_scale``), 1 from τ·scale up.
    """
    acc = dict(acc)
    dtype = ad.notional.dtype
    acc["market_liquidation_notional"] += liq.filled_notional
    acc["market_liquidation_orders"] += liq.orders
    acc["partial_liquidation_orders"] += liq.partial_orders
    acc["liquidation_fees"] += liq.fees
    acc["vault_unwind_notional"] += liq.unwind_notional
    acc["backstop_notional"] += bs.notional
    acc["backstop_accounts"] += bs.accounts
    acc["bad_debt_backstop"] += bs.bad_debt
    acc["adl_notional"] += ad.notional
    acc["adl_notional_vault"] += ad.vault_notional
    acc["socialized_loss"] += ad.socialized
    acc["bad_debt_adl"] += ad.bad_debt
    acc["adl_steps"] += ad.any_fill.astype(dtype)
    if smooth:
        amount = ad.notional + ad.socialized
        indicator = smoothstep(amount / (tau * jnp.where(adl_scale > 0, adl_scale, 1.0)))
    else:
        indicator = ad.any_fill.astype(dtype)
    acc["adl_indicator"] = jnp.maximum(acc["adl_indicator"], indicator)
    return acc


# ---- the stages (adljax.engine.state), one scenario ---------------------------------------------------------------
def liquidate(state: State, market: Market, params: Params, rules: Rules, config: EngineConfig,
              liquidatable: Array) -> tuple[State, liquidation.Report]:
    """Market liquidation of the ``liquidatable`` rows ([R], the margin check's: bool, or weights in the smooth
    mode), on the whole book."""
    book, report = liquidation.run(state.book, market, params, rules, liquidatable, state.margin.av)
    return State(book, margin.values(book, market, params, config)), report


def liquidate_gathered(state: State, market: Market, params: Params, rules: Rules,
                       config: EngineConfig) -> tuple[State, liquidation.Report]:
    """:func:`liquidate` on the liquidatable rows only, gathered (hard mode; at most
    :func:`~adljax.engine.stages.liquidation.gathered_rows` of them)."""
    book, report, after = liquidation.run_gathered(state.book, market, params, rules,
                                                   margin.liquidatable(state.margin), state.margin, config)
    return State(book, after), report


def take_over(state: State, market: Market, params: Params, rules: Rules,
              config: EngineConfig) -> tuple[State, backstop.Report]:
    """The backstop vault takes over the candidates it can carry."""
    book, report, after = backstop.takeover(state.book, market, params, state.margin,
                                            temperature_of(params, rules), config)
    return State(book, after), report


def insure(state: State, market: Market, params: Params, rules: Rules,
           config: EngineConfig) -> tuple[State, backstop.Report]:
    """The insurance fund pays deficits in row order (the paid rows' values recomputed from the book)."""
    book, report = backstop.run_insurance(state.book, market, params, state.margin, config)
    return State(book, margin.values(book, market, params, config)), report


def deleverage(state: State, market: Market, params: Params, rules: Rules, config: EngineConfig,
               rows=None) -> tuple[State, adl.Report]:
    """ADL of every bankrupt row (``rows``: the batch's :func:`adl.queue_rows`, or None); the margin is left as
    it was (the last stage)."""
    book, report = adl.run(state.book, market, params, rules, rows, config)
    return State(book, state.margin), report


def step(carry: Carry, inputs: tuple[Array, Array, Array], params: Params, rules: Rules, keys: Array,
         rows=None, *, config: EngineConfig):
    """One step for the whole batch: clock, margin check, liquidation, backstop, ADL, report.

    ``inputs`` is ``(t, oracle [S, A], depth [S, A], funding [S, A] or None)`` of this step; ``keys`` [S]
    one key a scenario; ``rows`` the batch's :func:`adl.queue_rows`, one set for every scenario (or None:
    the queue sweeps every row); ``config`` (static) the engine's :class:`~adljax.engine.config.EngineConfig`.
    Only the margin check runs every step; each later stage runs (for the
    whole batch) only in steps where some scenario needs it, and so does the
    conservation check, since a step in which no stage ran cannot move value.
    """
    t, oracle, depth, funding = inputs
    smooth = rules.smooth
    tau = temperature_of(params, rules)       # traced in the smooth mode: changing it does not recompile
    book = carry.book
    dt = params.dt
    book = book.replace(cooldown=jnp.maximum(book.cooldown - dt, 0.0))
    impact = carry.impact * jnp.exp2(-dt / params.impact_half_life)
    mark = oracle * jnp.exp(impact)
    if funding is not None:  # every position pays size·mark·rate (zero-sum per market)
        paid = jnp.sum(book.size_am * (mark * funding)[:, :, None], axis=1)
        book = book.replace(all_cash=book.all_cash - paid)
    n_rows = book.all_cash.shape[-1]
    start = (adl_starts(keys, t, n_rows) if rules.adl_policy == "random_order"
             else jnp.zeros(oracle.shape[0], jnp.int32))
    mkt = Market(mark=mark, prev_mark=carry.prev_mark, depth=depth, adl_start=start)
    vmap = lambda f: jax.vmap(f, in_axes=(0, 0, None))

    # Stage 1: margin check (always).
    liquidatable, mg = vmap(lambda b, mk, p: margin.run(b, mk, p, tau, config))(book, mkt, params)

    # Stages 2-4, each on the batch's state in the steps where some scenario needs it.
    batched = lambda stage: jax.vmap(lambda st, mk, *more: stage(st, mk, params, rules, config, *more))
    state = State(book, mg)

    # Stage 2: market liquidation, in steps where some row is liquidatable or the vault unwinds.
    unwinding = (params.vault_unwind > 0) & jnp.any(mg.has_position[:, VAULT])
    need_liq = jnp.any(liquidatable) | unwinding
    if smooth:
        state, liq = stage_if(need_liq, batched(liquidate), state, mkt, liquidatable, differentiable=True)
    else:
        # Only the rows the stage can change, gathered, when every scenario has few enough
        # (stages/liquidation.py); the whole book otherwise. One of the two runs, or neither.
        # A book whose trader rows all fit in the gathered run has only the whole-book path:
        # gathering them all would be the whole book, compiled twice.
        k = liquidation.gathered_rows(n_rows, config)
        if k < n_rows - SYSTEM:
            few = jnp.all(jnp.sum(liquidatable, axis=-1) <= k)
            # (The gathered stage takes the liquidatable rows again from the state's margin, which the loop carries:
            # XLA hoists work on values from outside a while loop out of it, and would run the gathering
            # every step.)
            state, liq = stage_if(need_liq & few, batched(liquidate_gathered), state, mkt)
            state, liq_whole = stage_if(need_liq & ~few, batched(liquidate), state, mkt, liquidatable)
            liq = jax.tree_util.tree_map(jnp.add, liq, liq_whole)   # one of the two reports is zeros
        else:
            state, liq = stage_if(need_liq, batched(liquidate), state, mkt, liquidatable)
    safe_depth = jnp.where(depth > 0, depth, 1.0)
    impact = impact + params.impact * jnp.where(depth > 0, liq.flow / safe_depth, 0.0)

    # Stage 3: backstop, in steps where some scenario has a candidate.
    if rules.backstop == "vault":
        need_bs = jnp.any(jax.vmap(lambda g, p: backstop.candidates(g, p, tau), in_axes=(0, None))(state.margin,
                                                                                                 params))
        state, bs = stage_if(need_bs, batched(take_over), state, mkt, differentiable=smooth)
    elif rules.backstop == "insurance":
        need_bs = jnp.any(jax.vmap(backstop.insurance_candidates)(state.book, state.margin))
        state, bs = stage_if(need_bs, batched(insure), state, mkt, differentiable=smooth)
    else:
        need_bs = jnp.asarray(False)
        bs = zeros_like_output(vmap(partial(backstop.run, config=config)), state.book, mkt, params)[1]

    # Stage 4: ADL, in steps where some scenario has a bankrupt row.
    need_adl = jnp.any(jax.vmap(lambda g: adl.needed(g, params, tau))(state.margin))
    # (Vmapped; on CPU the queue's bisection loops over scenarios inside: stages/queue.py.)
    deleverage_rows = jax.vmap(lambda st, mk: deleverage(st, mk, params, rules, config, rows))
    state, ad = stage_if(need_adl, deleverage_rows, state, mkt, differentiable=smooth)
    book = state.book

    # Report.
    acc = add_reports(carry.acc, liq, bs, ad, smooth, tau, carry.adl_scale)

    def drift(b):
        value = b.total_value() + b.insurance_fund
        return jnp.abs(value - carry.value0), jnp.max(jnp.abs(jnp.sum(b.size_am, axis=-1)), axis=-1)
    zeros = jnp.zeros_like(carry.value0)
    # A step in which no stage ran (and no funding was paid) cannot move value or sizes, so the
    # check is skipped there; the start book's own zero-sum error is counted at _init, so a
    # scenario's errors do not depend on the batch it runs in.
    moved = need_liq | need_bs | need_adl | (funding is not None)
    err_value, err_size = lax.cond(moved, drift, lambda b: (zeros, zeros), book)
    acc["conservation_error"] = jnp.maximum(acc["conservation_error"], err_value)
    acc["zero_sum_error"] = jnp.maximum(acc["zero_sum_error"], err_size)
    v = book.size_am[:, :, VAULT]
    vault_av = book.all_cash[:, VAULT] + jnp.sum(v * (mark - book.entry_am[:, :, VAULT]), axis=-1)
    acc["vault_equity_min"] = jnp.minimum(acc["vault_equity_min"], vault_av)

    new = Carry(book=book, impact=impact, prev_mark=mark, acc=acc,
                deleveraged=carry.deleveraged | ad.deleveraged, bankrupt=carry.bankrupt | ad.bankrupt,
                adl_markets=carry.adl_markets | ad.markets,
                value0=carry.value0, adl_scale=carry.adl_scale)
    hist = {
        "mark": mark,
        "vault_equity": vault_av,
        "market_liquidation_notional": liq.filled_notional,
        "backstop_notional": bs.notional,
        "adl_notional": ad.notional,
        "n_bankrupt": jnp.sum(ad.bankrupt, axis=-1).astype(mark.dtype),
    }
    return new, hist


def _init(book: Book, oracle0: Array, config: EngineConfig) -> Carry:
    s = book.all_cash.shape[0]
    dtype = book.all_cash.dtype
    value = partial(account_value, unrolled=config.unrolled_markets)
    av0 = jax.vmap(value)(book.all_cash, book.size_am, book.entry_am, oracle0)
    acc = {k: jnp.zeros(s, dtype) for k in _SUMS}
    acc["vault_equity_min"] = av0[:, VAULT]
    acc["zero_sum_error"] = jnp.max(jnp.abs(jnp.sum(book.size_am, axis=-1)), axis=-1)
    traders = book.size_am[..., TRADERS]
    n_pos = jnp.sum(traders != 0, axis=(-2, -1))
    adl_scale = jnp.sum(jnp.abs(traders) * oracle0[:, :, None], axis=(-2, -1)) / jnp.maximum(n_pos, 1)
    return Carry(book=book, impact=jnp.zeros_like(oracle0), prev_mark=oracle0, acc=acc,
                 deleveraged=jnp.zeros(book.all_cash.shape, bool), bankrupt=jnp.zeros(book.all_cash.shape, bool),
                 adl_markets=jnp.zeros(oracle0.shape, bool),
                 value0=book.total_value() + book.insurance_fund, adl_scale=adl_scale)


def _finish(carry: Carry, vault_av0: Array, config: EngineConfig) -> dict[str, Array]:
    book, dtype = carry.book, carry.book.all_cash.dtype
    value = partial(account_value, unrolled=config.unrolled_markets)
    av = jax.vmap(value)(book.all_cash, book.size_am, book.entry_am, carry.prev_mark)
    m = dict(carry.acc)
    m["bad_debt_residual"] = jnp.sum(jnp.maximum(-av[:, BUT_LP], 0.0), axis=-1)
    m["bad_debt"] = m["bad_debt_backstop"] + m["bad_debt_adl"] + m["bad_debt_residual"]
    m["vault_pnl"] = av[:, VAULT] - vault_av0
    m["n_adl_accounts"] = jnp.sum(carry.deleveraged, axis=-1).astype(dtype)
    m["n_bankrupt_accounts"] = jnp.sum(carry.bankrupt, axis=-1).astype(dtype)
    m["adl_markets"] = jnp.sum(carry.adl_markets, axis=-1).astype(dtype)
    return {k: m[k] for k in METRICS}


def segment_length(n_steps: int) -> int:
    """The divisor of ``n_steps`` nearest its square root (from below): the remat segment."""
    k = max(1, int(np.sqrt(n_steps)))
    while n_steps % k:
        k -= 1
    return k


def scan_remat(body, carry, xs, n_steps: int):
    """``lax.scan(body, carry, xs)`` for reverse-mode gradients through long horizons.

    Two-level checkpointing: the steps run in ``T/K`` segments of ``K``
    (:func:`segment_length`, ``K ≈ √T``); the backward pass keeps only the
    carry at each segment's start and at each step of the segment it is
    redoing, so memory is ``O((T/K + K)·|carry|)`` instead of ``O(T·|carry|)``,
    for one extra forward pass. The values are those of the plain scan.
    """
    k = segment_length(n_steps)
    split = lambda x: x.reshape((n_steps // k, k) + x.shape[1:])
    step_ckpt = jax.checkpoint(body)

    @jax.checkpoint
    def segment(c, seg):
        return lax.scan(step_ckpt, c, seg)

    carry, hist = lax.scan(segment, carry, jax.tree_util.tree_map(split, xs))
    hist = jax.tree_util.tree_map(lambda h: h.reshape((n_steps,) + h.shape[2:]), hist)
    return carry, hist


def blocks(n_scenarios: int, block: int) -> tuple[int, int]:
    """(blocks, scenarios per block) for ``n_scenarios`` run ``block`` or fewer at a time.

    The blocks are as even as they can be, so at most ``blocks − 1`` scenarios
    are padding: 9 scenarios in blocks of up to 8 run as 2 blocks of 5.
    """
    if isinstance(block, bool) or not isinstance(block, int) or block < 1:
        raise InputError(f"block: must be a whole number of scenarios >= 1, got {block!r}")
    n = -(-n_scenarios // block)
    return n, -(-n_scenarios // n)


@partial(jax.jit, static_argnames=("rules", "history", "queue_rows", "config"))
def run(params: Params, book: Book, oracle: Array, depth: Array, keys: Array, funding: Array | None = None, *,
        rules: Rules, history: bool = False, queue_rows: tuple[int | None, int | None] | None = None,
        config: EngineConfig = DEFAULT):
    """Compiled core: batched ``book`` [S, ...], ``oracle``/``depth``/``funding`` [S, T, A], ``keys`` [S].

    Returns ``(final book, metrics, history)``. ``rules`` is static (a new one compiles); the smooth
    mode's temperature is read from ``params.temperature``, so pass ``venue.rules.compiled()`` to share
    one program across temperatures.

    ``config`` (static): the :class:`~adljax.engine.config.EngineConfig`, every number that shapes the
    program. Its ``block`` is how many scenarios run through the time loop together
    (:meth:`~adljax.engine.config.EngineConfig.block_size`): with the default ``"auto"``, on CPU the
    batch runs in blocks of up to ``config.cpu_block`` scenarios, one block after another (a
    ``lax.map``), so that a block's state (8 × 4 markets × 4,096 rows × 4 bytes = 512 KiB an array)
    stays in the CPU's caches across the step's passes, and each block makes its own batch-level
    skips; on an accelerator the whole batch is what fills the device. A scenario's numbers are those
    of the whole batch up to the rounding of sums (which already depends on the batch a scenario runs
    in; docs/performance.md), and its draws come from its own key.

    ``queue_rows`` (static): :func:`adljax.engine.stages.adl.queue_sizes` of ``book.size_am`` (as
    :func:`adljax.simulate` passes it), so that the ADL queue's cut-off sweeps only the rows that
    can hold each side's candidates; it must come from this book (smaller sizes leave
    candidates out). ``None``: every row.
    """
    if not isinstance(config, EngineConfig):
        raise InputError(f"config: expected an adljax.engine.config.EngineConfig, got {type(config).__name__}")
    block = config.block_size()
    s = oracle.shape[0]
    # The queue sides' rows (adl.queue_sizes), once for the whole batch; the smooth queue sweeps all.
    rows = (adl.queue_rows(book.size_am, queue_rows)
            if queue_rows is not None and not rules.smooth and rules.adl_policy in ("queue", "random_order")
            else None)
    one = partial(_run, rules=rules, history=history, rows=rows, config=config)
    if block is None:
        return one(params, book, oracle, depth, keys, funding)
    n, b = blocks(s, block)
    if n == 1:
        return one(params, book, oracle, depth, keys, funding)
    inputs = (book, oracle, depth, keys, funding)
    # Padding repeats the last scenario; its copies' results are dropped.
    split = lambda x: pad_scenarios(x, n * b).reshape((n, b) + x.shape[1:])
    out = lax.map(lambda xs: one(params, *xs), jax.tree_util.tree_map(split, inputs))
    return jax.tree_util.tree_map(lambda y: y.reshape((n * b,) + y.shape[2:])[:s], out)


def _run(params: Params, book: Book, oracle: Array, depth: Array, keys: Array, funding: Array | None, *,
         rules: Rules, history: bool, rows, config: EngineConfig):
    """:func:`run` on one block of scenarios."""
    carry = _init(book, oracle[:, 0], config)
    vault_av0 = carry.acc["vault_equity_min"]
    time_major = lambda x: None if x is None else jnp.swapaxes(x, 0, 1)
    xs = (jnp.arange(oracle.shape[1]), time_major(oracle), time_major(depth), time_major(funding))

    def body(c, x):
        c, h = step(c, x, params, rules, keys, rows, config=config)
        return c, (h if history else None)

    if rules.smooth:
        carry, hist = scan_remat(body, carry, xs, oracle.shape[1])
    else:
        carry, hist = lax.scan(body, carry, xs)
    if history:
        hist = {k: jnp.swapaxes(v, 0, 1) for k, v in hist.items()}
    return carry.book, _finish(carry, vault_av0, config), hist


def prepare(venue: Venue, book: Book | PositionBook, paths: Paths, dt: float, *, batch: bool = True):
    """Check the inputs and bring them to one dtype (and, with ``batch``, a book batched like ``paths``).

    ``book`` a dense :class:`Book` or a :class:`~adljax.model.position_book.PositionBook`.
    """
    if not isinstance(venue, Venue):
        raise InputError(f"venue: expected an adljax.Venue (e.g. adljax.venues.hyperliquid()), "
                         f"got {type(venue).__name__}")
    dtype = check_inputs(book, paths)        # every entry point's checks (calibration calls prepare directly)
    s = paths.n_scenarios
    if np.ndim(book.all_cash) not in (1, 2) or (np.ndim(book.all_cash) == 2 and np.shape(book.all_cash)[0] != s):
        raise InputError(f"book: a batched book needs a leading axis of {s} scenarios (as paths), "
                         f"got cash shape {tuple(np.shape(book.all_cash))}")
    params = venue.params(book.n_markets, dt=dt, dtype=dtype)
    if batch:
        book = batch_book(book, s)
    return params, book, paths.astype(dtype)


def batch_book(book: Book | PositionBook, n_scenarios: int, first: int = 0) -> Book | PositionBook:
    """The book of scenarios ``[first, first + n)``: a single book repeated, or a batched one sliced."""
    if isinstance(book, PositionBook):       # (its layout is one for the batch)
        return book.scenarios(first, n_scenarios)
    if book.all_cash.ndim == 1:
        return jax.tree_util.tree_map(lambda x: jnp.broadcast_to(x, (n_scenarios,) + x.shape), book)
    return jax.tree_util.tree_map(lambda x: x[first:first + n_scenarios], book)


def scenario_keys(key, n_scenarios: int, first_scenario: int = 0) -> Array:
    """[S] keys, one a scenario: scenario ``i`` gets ``fold_in(key, first_scenario + i)``.

    A scenario's key depends on its index only, never on the batch it runs
    in, so a study run in chunks draws what it draws in one piece.
    ``key=None`` means ``jax.random.key(0)``.
    """
    if key is None:
        key = jax.random.key(0)
    if not (hasattr(key, "dtype") and jnp.issubdtype(key.dtype, jax.dtypes.prng_key)):
        raise InputError("key: expected a new-style key from jax.random.key(seed)")
    idx = first_scenario + jnp.arange(n_scenarios)
    return jax.vmap(lambda i: jax.random.fold_in(key, i))(idx)
