"""The hard engine's shortcuts give the rule's answers: skipped work, cheap decisions, running sums.

The engine skips work no scenario needs (``adljax.engine.skip.run_if``), decides
the vault's takeover without walking the book where it can, walks only the
first candidates where that decides, and computes running sums in blocks
(``adljax.engine.prefix``). Each shortcut is checked here against the plain rule,
in batches whose scenarios take different paths.
"""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import adljax
from adljax import Book, Paths, venues
from adljax.engine.config import EngineConfig
from adljax.engine.prefix import cumsum, first_rows
from adljax.engine.skip import run_if, stage_if
from adljax.engine.stages.margin import Margin
from adljax.engine.state import State
from adljax.engine.market import Market
from adljax.engine.stages import adl
from adljax.engine.stages.queue import take_from_top


# --- stage_if ---------------------------------------------------------------------------------

def _pay(state, price, units):
    """A stage by hand: every row pays ``price · units`` [S, R] and counts as having a position; the report is the
    total paid."""
    paid = price[:, None] * units
    book = {"cash": state.book["cash"] - paid}
    margin = Margin(av=state.margin.av - paid, mr=state.margin.mr,
                    has_position=jnp.ones_like(state.margin.has_position))
    return State(book, margin), {"paid": jnp.sum(paid, axis=-1)}


@pytest.mark.parametrize("differentiable", [False, True])
@pytest.mark.parametrize("use_jit", [True, False])
def test_stage_if_runs_the_stage_or_leaves_the_state_and_reports_zeros(use_jit, differentiable):
    cash = jnp.array([[100.0, 50.0], [10.0, 0.0]])                     # [S=2, R=2]
    state = State({"cash": cash}, Margin(av=cash, mr=jnp.full((2, 2), 5.0), has_position=jnp.zeros((2, 2), bool)))
    price, units = jnp.array([2.0, 3.0]), jnp.array([[1.0, 4.0], [2.0, 0.5]])
    call = lambda p, st: stage_if(p, _pay, st, price, units, differentiable=differentiable)
    f = jax.jit(call) if use_jit else call
    ran, report = f(jnp.asarray(True), state)
    # paid = [[2, 8], [6, 1.5]]: cash [[98, 42], [4, -1.5]], reports [10, 7.5]
    np.testing.assert_array_equal(ran.book["cash"], [[98.0, 42.0], [4.0, -1.5]])
    np.testing.assert_array_equal(ran.margin.av, [[98.0, 42.0], [4.0, -1.5]])
    assert bool(jnp.all(ran.margin.has_position))
    np.testing.assert_array_equal(report["paid"], [10.0, 7.5])
    kept, zero = f(jnp.asarray(False), state)
    np.testing.assert_array_equal(kept.book["cash"], cash)
    np.testing.assert_array_equal(kept.margin.av, cash)
    assert not bool(jnp.any(kept.margin.has_position))
    np.testing.assert_array_equal(zero["paid"], [0.0, 0.0])
    if differentiable:   # reverse mode through the stage that runs: d Σ paid / d price = Σ units
        grad = jax.grad(lambda pr: jnp.sum(stage_if(True, _pay, state, pr, units, differentiable=True)[1]["paid"]))
        np.testing.assert_array_equal(grad(price), [5.0, 2.5])


# --- run_if -----------------------------------------------------------------------------------

def _double(x, y):
    return {"a": 2.0 * x, "b": x + y}


@pytest.mark.parametrize("use_jit", [True, False])
def test_run_if_single_and_batched(use_jit):
    default = {"a": jnp.full(3, -1.0), "b": jnp.full(3, -2.0)}
    call = lambda p, x, y: run_if(p, _double, default, x, y)
    f = jax.jit(call) if use_jit else call
    x, y = jnp.arange(3.0), jnp.ones(3)
    np.testing.assert_array_equal(f(True, x, y)["a"], [0.0, 2.0, 4.0])
    np.testing.assert_array_equal(f(False, x, y)["b"], [-2.0, -2.0, -2.0])
    # A batch whose members disagree: each member gets fn's output or its default.
    preds = jnp.array([True, False, True, False])
    xs = jnp.arange(12.0).reshape(4, 3)
    out = jax.vmap(f, in_axes=(0, 0, None))(preds, xs, y)
    for i, p in enumerate([True, False, True, False]):
        want_a = 2.0 * xs[i] if p else default["a"]
        np.testing.assert_array_equal(out["a"][i], want_a)
    # No member needs it: every member gets the default.
    out = jax.vmap(f, in_axes=(0, 0, None))(jnp.zeros(4, bool), xs, y)
    np.testing.assert_array_equal(out["b"], np.full((4, 3), -2.0))
    # Batched twice (scenarios × something), and with an unbatched predicate.
    out = jax.vmap(jax.vmap(f, in_axes=(0, 0, None)), in_axes=(0, 0, None))(
        preds.reshape(2, 2), xs.reshape(2, 2, 3), y)
    np.testing.assert_array_equal(out["a"].reshape(4, 3)[1], default["a"])
    np.testing.assert_array_equal(out["a"].reshape(4, 3)[2], 2.0 * xs[2])
    out = jax.vmap(f, in_axes=(None, 0, None))(True, xs, y)
    np.testing.assert_array_equal(out["b"], xs + 1.0)


# --- running sums -----------------------------------------------------------------------------

@pytest.mark.parametrize("n", [1, 5, 63, 64, 65, 130, 4098])
def test_blocked_cumsum_is_the_running_sum(n):
    x = np.random.default_rng(n).normal(size=(3, 2, n))
    got64 = np.asarray(cumsum(jnp.asarray(x)))
    want = np.cumsum(x, axis=-1)
    np.testing.assert_allclose(got64, want, rtol=0, atol=1e-12 * np.sqrt(n))
    got32 = np.asarray(cumsum(jnp.asarray(x, jnp.float32)))
    assert got32.dtype == np.float32
    # float32: each sum adds at most 64 + n/64 terms; error within a few ulps of the running magnitude
    scale = np.cumsum(np.abs(x), axis=-1)
    assert np.all(np.abs(got32 - want) <= 1e-6 * scale + 1e-6)
    # whole numbers (the backstop's count of candidates) are exact in float32
    ones = (np.arange(n) % 3 == 0).astype(np.float32)
    np.testing.assert_array_equal(np.asarray(cumsum(jnp.asarray(ones))), np.cumsum(ones))


@pytest.mark.parametrize("n,block", [(1, 4), (5, 4), (64, 64), (130, 8), (1001, 64)])
def test_first_rows_are_the_first_rows_where_the_mask_holds(n, block):
    """The first k rows of a mask, with fewer (padded with the last row, not real) and more rows than k,
    batched and alone."""
    rng = np.random.default_rng(n)
    masks = np.stack([rng.random(n) < p for p in (0.0, 0.05, 0.5, 1.0)])
    for k in (1, 17):
        rows, real, count = jax.vmap(lambda m: first_rows(m, k, block))(jnp.asarray(masks))
        for i, mask in enumerate(masks):
            want = np.flatnonzero(mask)[:k]
            assert int(count[i]) == mask.sum()
            np.testing.assert_array_equal(np.asarray(real[i]), np.arange(k) < want.size)
            np.testing.assert_array_equal(np.asarray(rows[i]), np.concatenate([want, np.full(k - want.size, n - 1)]))
        alone = first_rows(jnp.asarray(masks[2]), k, block)
        np.testing.assert_array_equal(np.asarray(alone[0]), np.asarray(rows[2]))


# --- the ADL queue, batched -------------------------------------------------------------------

def test_queue_batched_is_each_scenario_alone():
    """Under vmap the queue's cut-off is looped per scenario on CPU, and skipped where a
    scenario needs no cut; each scenario must get what it gets alone."""
    rng = np.random.default_rng(0)
    s, a, r = 6, 3, 50
    score = rng.normal(size=(s, a, r)).round(1)          # ties on purpose
    weight = np.where(rng.random((s, a, r)) < 0.5, rng.random((s, a, r)), 0.0)
    total = weight.sum(-1)
    need = total * rng.random((s, a))
    need[1] = 0.0                                          # nothing to take
    need[2] = total[2] + 1.0                               # takes every candidate
    need[3, 0] = 0.0
    batched = np.asarray(jax.jit(jax.vmap(take_from_top))(score, weight, need))
    for i in range(s):
        alone = np.asarray(take_from_top(jnp.asarray(score[i]), jnp.asarray(weight[i]), jnp.asarray(need[i])))
        np.testing.assert_array_equal(batched[i], alone)
        np.testing.assert_allclose(batched[i].sum(-1), np.minimum(need[i], total[i]), rtol=1e-12)
    np.testing.assert_array_equal(batched[1], 0.0)
    np.testing.assert_array_equal(batched[2], weight[2])
    # hand-worked: scores 3 > 2 = 2 > 1, weights 1, 2, 2, 5, need 3 -> 1 whole, the tie shares 2 pro rata
    got = take_from_top(jnp.array([[2.0, 3.0, 1.0, 2.0]]), jnp.array([[2.0, 1.0, 5.0, 2.0]]), jnp.array([3.0]))
    np.testing.assert_allclose(np.asarray(got), [[1.0, 1.0, 0.0, 1.0]])


def _crash_book(sign):
    """test_handworked's ADL book in market 0 (sign +1), or its mirror (-1): X (row 0) holds 20 @100
    with cash 100, three counterparties hold 5 @110, 10 @100, 15 @90 the other way, a fifth row 10 @100
    X's way. In market 1, whose price does not move, rows 1 and 2 hold 3 and -3 @100: ADL asks nothing there."""
    return Book.from_accounts(cash=[100.0, 100.0, 500.0, 2000.0, 10_000.0, 777.0],
                              size=[[20.0 * sign, 0.0], [-5.0 * sign, 3.0], [-10.0 * sign, -3.0], [-15.0 * sign, 0.0],
                                    [10.0 * sign, 0.0], [0.0, 0.0]],
                              entry=[[100.0, 100.0], [110.0, 100.0], [100.0, 100.0], [90.0, 0.0], [100.0, 0.0],
                                     [0.0, 0.0]],
                              dtype=np.float64)


def test_adl_skips_a_queue_side_no_scenario_asks_anything_of():
    """Each ADL queue side (candidates for bankrupt longs, for bankrupt shorts) runs only for a batch in
    which some scenario asks it for something; every scenario must get what it gets alone."""
    v = venues.hyperliquid(max_leverage=10, impact=0.0, slippage=0.0, backstop="none")
    params = v.params(2, dtype=jnp.float64)
    stage = jax.jit(jax.vmap(lambda b, mk: adl.run(b, mk, params, v.rules)))
    # Scenario 0: a crash to 90 (X long is bankrupt: only the short side is asked); 1: the mirror, a
    # rise to 110 (X short: only the long side); 2: no move (nothing asked of either side).
    books = [_crash_book(1.0), _crash_book(-1.0), _crash_book(1.0)]
    marks = [90.0, 110.0, 100.0]
    market = lambda i: Market(mark=jnp.array([marks[i], 100.0]), prev_mark=jnp.array([100.0, 100.0]),
                              depth=jnp.array([0.0, 0.0]), adl_start=jnp.array(0))
    stack = lambda xs: jax.tree_util.tree_map(lambda *x: jnp.stack(x), *xs)
    alone = [stage(stack([books[i]]), stack([market(i)])) for i in range(3)]
    for batch in ([0, 1, 2], [0, 2], [1, 2], [2]):
        got = stage(stack([books[i] for i in batch]), stack([market(i) for i in batch]))
        for j, i in enumerate(batch):
            for g, a in zip(jax.tree_util.tree_leaves(got), jax.tree_util.tree_leaves(alone[i])):
                np.testing.assert_array_equal(np.asarray(g)[j], np.asarray(a)[0])
    # Hand-worked (test_handworked): the queue S1, S2, S3 closes 5, 10, 5 at the previous mark 100,
    # and the long row 4 is untouched; in the mirror, the same rows the other way.
    for i, sign in ((0, 1.0), (1, -1.0)):
        size = np.asarray(alone[i][0].size_am)[0]
        np.testing.assert_allclose(size[0, :6], sign * np.array([0.0, 0.0, 0.0, -10.0, 10.0, 0.0]), atol=1e-12)
        np.testing.assert_array_equal(size[1, :6], [0.0, 3.0, -3.0, 0.0, 0.0, 0.0])
        np.testing.assert_allclose(np.asarray(alone[i][1].notional)[0], 20 * marks[i], rtol=1e-12)
    np.testing.assert_array_equal(np.asarray(alone[2][0].size_am), np.asarray(stack([books[2]]).size_am))

# --- the vault's takeover ---------------------------------------------------------------------

def _vault_books(vault_cash):
    """Three longs 10 @100 with cash 110, 120, 125 and one short 30 @100; one book per vault."""
    books = [Book.from_accounts(cash=[110.0, 120.0, 125.0, 1e5], size=[[10.0], [10.0], [10.0], [-30.0]],
                                entry=[[100.0]] * 4, vault_cash=v, dtype=np.float64) for v in vault_cash]
    return jax.tree_util.tree_map(lambda *xs: jnp.stack(xs), *books)


# (Without jit the backstop is checked by test_handworked's takeover test; here jit only, for time.)
@pytest.mark.parametrize("first_candidates", [256, 3, 1])
def test_vault_walks_in_row_order_and_stops_at_the_first_it_cannot_carry(first_candidates):
    # @90, no depth: each long has AV = cash − 100 = 10, 20, 25 and MR = 10·90·5 % = 45, all below
    # 2/3·MR = 30, so all three are candidates, in row order.
    # Vault 70: +row 0 -> AV 80 ≥ MR 45; +row 1 -> 100 ≥ 90; +row 2 -> 125 < 135: refused, and the
    #   walk stops: rows 0 and 1 are taken (the vault keeps cash 70 + 10 + 20 = 100, 20 @90).
    # Vault 30: +row 0 -> 40 < 45: refuses its first candidate, takes nothing.
    # Vault 1000: carries all three (1055 ≥ 135) without a walk.
    # The book has 6 rows: with first_candidates=256 (no fewer than the rows) the vault walks the
    # whole book; with 3 it walks its first 3 candidates, gathered, and that decides; with 1 the
    # gathered walk decides nothing for vault 70 (it carries its one candidate and there are
    # more) and the whole-book walk runs.
    v = venues.hyperliquid(max_leverage=10, impact=0.0, slippage=0.0)
    o = np.array([[100.0, 90.0]] * 3)[..., None]
    d = np.array([[1e12, 0.0]] * 3)[..., None]
    out = adljax.simulate(v, _vault_books([70.0, 30.0, 1000.0]), Paths(o, d),
                          config=EngineConfig(first_candidates=first_candidates))
    np.testing.assert_array_equal(np.asarray(out.metrics["backstop_accounts"]), [2, 0, 3])
    np.testing.assert_allclose(np.asarray(out.metrics["backstop_notional"]), [1800.0, 0.0, 2700.0], rtol=1e-12)
    np.testing.assert_allclose(np.asarray(out.book.vault_cash), [100.0, 30.0, 1055.0], rtol=1e-12)
    np.testing.assert_allclose(np.asarray(out.book.vault_size)[:, 0], [20.0, 0.0, 30.0])
    size = np.asarray(out.book.size)[..., 0]
    np.testing.assert_array_equal(size[0, :3], [0.0, 0.0, 10.0])      # row 2 keeps its position
    np.testing.assert_array_equal(size[1, :3], [10.0, 10.0, 10.0])
    np.testing.assert_array_equal(size[2, :3], [0.0, 0.0, 0.0])
    assert np.all(np.asarray(out.metrics["conservation_error"]) < 1e-9)


def test_vault_walk_matches_the_reference_engine():
    v = venues.hyperliquid(max_leverage=10, impact=0.0, slippage=0.0)
    o = np.array([[100.0, 90.0]] * 3)[..., None]
    d = np.array([[1e12, 0.0]] * 3)[..., None]
    for vault in (70.0, 30.0, 1000.0):
        book = jax.tree_util.tree_map(lambda x: x[0], _vault_books([vault]))
        ref = adljax.reference.simulate(v, book, Paths(o[:1], d[:1]))
        fast = adljax.simulate(v, book, Paths(o[:1], d[:1]))
        np.testing.assert_allclose(np.asarray(fast.book.vault_cash), np.asarray(ref.book.vault_cash), rtol=1e-12)
        assert float(fast.metrics["backstop_accounts"][0]) == float(ref.metrics["backstop_accounts"][0])


# --- liquidation on gathered rows -------------------------------------------------------------

def _crash_study(n_scenarios=4, n_accounts=60, n_steps=12):
    from adljax.generate import gbm, population
    book = population(jax.random.key(3), n_accounts, [100.0, 10.0], [20.0, 10.0], long_share=[0.7, 0.4],
                      leverage_mode=6.0, markets_per_account=2, vault_cash=2e4, dtype=np.float64)
    oracle = np.asarray(gbm(jax.random.key(4), [100.0, 10.0], n_scenarios=n_scenarios, n_steps=n_steps, dt=1.0,
                            vol=2.0, dtype=np.float64))
    oracle = oracle * np.linspace(1.0, 0.8, n_steps)[None, :, None]          # a 20 % fall on top
    depth = np.full(oracle.shape, 3e4)
    depth[1] = 1e3                                                            # one thin scenario
    return book, Paths(oracle, depth)


@pytest.mark.parametrize("rows", [2])
def test_gathered_liquidation_is_the_whole_book_liquidation(rows):
    """The hard engine liquidates on the liquidatable rows gathered when every scenario has at most
    ``EngineConfig.gathered_rows`` of them, else on the whole book. Whatever the mix of the two over
    steps, the run is the one on the whole book in every step (which is what a book of at most
    ``gathered_rows`` trader rows compiles), and the reference engine's."""
    book, paths = _crash_study()
    v = venues.hyperliquid(max_leverage=[20.0, 10.0])
    whole = adljax.simulate(v, book, paths)                                  # 60 trader rows <= 256
    mixed = adljax.simulate(v, book, paths, config=EngineConfig(gathered_rows=rows))
    ref = adljax.reference.simulate(v, book, paths)
    assert float(np.min(np.asarray(whole.metrics["market_liquidation_orders"]))) > 2 * rows  # both paths ran
    for name in ("market_liquidation_notional", "market_liquidation_orders", "partial_liquidation_orders",
                 "liquidation_fees", "backstop_notional", "adl_notional", "bad_debt", "vault_pnl"):
        a, b, r = (np.asarray(o.metrics[name]) for o in (whole, mixed, ref))
        np.testing.assert_allclose(b, a, rtol=1e-9, atol=1e-6, err_msg=name)
        np.testing.assert_allclose(a, r, rtol=1e-9, atol=1e-6, err_msg=name)
    for field in ("all_cash", "size_am", "entry_am", "cooldown"):
        np.testing.assert_allclose(np.asarray(getattr(mixed.book, field)), np.asarray(getattr(whole.book, field)),
                                   rtol=1e-9, atol=1e-6, err_msg=field)


# --- the queue's cut-off over the rows that can hold a side ----------------------------------

def test_queue_sizes_count_each_sides_rows_and_leave_a_side_that_is_every_row():
    size = np.zeros((2, 22))                              # 2 markets, 20 traders + the vault and LP rows
    size[0, :3], size[0, 3:13] = -1.0, 1.0                # market 0: 3 shorts, 10 longs
    size[1, :5], size[1, 5:7] = -2.0, 2.0                 # market 1: 5 shorts, 2 longs
    size[0, 20], size[1, 21] = 7.0, -7.0                  # system rows are always in the sets, not counted
    assert adl.queue_sizes(size) == (8, 16)               # shorts: 5 + 2 -> 8; longs: 10 + 2 -> 16
    other = size.copy()
    other[1, :5], other[1, 7:12] = 0.0, -2.0              # scenario 2's market-1 shorts are other rows
    assert adl.queue_sizes(np.stack([size, other])) == (16, 16)  # a batch: one set, the union (10 + 2 -> 16)
    everyone_long = np.concatenate([np.ones((2, 20)), np.zeros((2, 2))], axis=-1)
    assert adl.queue_sizes(everyone_long) == (8, None)    # 20 + 2 rows round to 24 > 22: the whole book
    assert adl.queue_sizes(np.ones((1, 6))) is None       # neither side gains anything
    short, long = adl.queue_rows(jnp.asarray(size), (8, 16))
    index, valid = short
    np.testing.assert_array_equal(np.asarray(index[0])[np.asarray(valid[0])], [0, 1, 2, 20, 21])
    np.testing.assert_array_equal(np.asarray(index[1])[np.asarray(valid[1])], [0, 1, 2, 3, 4, 20, 21])
    index, valid = long
    np.testing.assert_array_equal(np.asarray(index[1])[np.asarray(valid[1])], [5, 6, 20, 21])
    (index, valid), _ = adl.queue_rows(jnp.asarray(np.stack([size, other])), (16, 16))
    np.testing.assert_array_equal(np.asarray(index[1])[np.asarray(valid[1])], [0, 1, 2, 3, 4, 7, 8, 9, 10, 11, 20, 21])


def _v_study(n_scenarios=8, n_accounts=120, n_steps=40):
    """A crash and a rally past the start: the vault and LP rows take positions in the crash and are
    then counterparties of the rally's bankrupt shorts."""
    from adljax.generate import gbm, population
    book = population(jax.random.key(5), n_accounts, [100.0, 10.0], [20.0, 10.0], long_share=[0.7, 0.4],
                      leverage_mode=8.0, markets_per_account=2, vault_cash=2e4, dtype=np.float64)
    oracle = np.asarray(gbm(jax.random.key(6), [100.0, 10.0], n_scenarios=n_scenarios, n_steps=n_steps, dt=1.0,
                            vol=2.0, dtype=np.float64))
    v = np.interp(np.arange(n_steps), [0, n_steps // 3, n_steps - 1], [1.0, 0.7, 1.4])
    return book, Paths(oracle * v[None, :, None], np.full(oracle.shape, 2e4))


@pytest.mark.parametrize("venue", ["hyperliquid", "dydx_v4"])
def test_queue_over_the_rows_that_can_hold_a_side_is_the_whole_queue(venue):
    """The ADL queue's cut-off found among the rows that held a position on that side at the start (and
    the vault and LP rows) gives every output of the run over all rows, step by step."""
    from adljax.engine.waterfall import prepare, run, scenario_keys
    book, paths = _v_study()
    v = getattr(venues, venue)(max_leverage=[20.0, 10.0])
    params, bb, p = prepare(v, book, paths, 1.0)
    sizes = adl.queue_sizes(book.size_am)
    assert sizes is not None and all(k < book.size_am.shape[-1] for k in sizes)     # both sides gathered
    keys = scenario_keys(jax.random.key(0), p.n_scenarios)
    whole, some = (run(params, bb, p.oracle, p.depth, keys, rules=v.rules, history=True, queue_rows=q)
                   for q in (None, sizes))
    adl_steps = np.asarray(whole[1]["adl_steps"])
    assert adl_steps.min() > 0                                                         # ADL in every scenario
    for name, a, b in zip(("book", "metrics", "history"), whole, some):
        for x, y in zip(jax.tree_util.tree_leaves(a), jax.tree_util.tree_leaves(b)):
            np.testing.assert_allclose(np.asarray(y), np.asarray(x), rtol=1e-12, atol=1e-9, err_msg=name)
    assert np.asarray(whole[0].size_am)[:, :, -2:].any()                               # system rows hold positions
