"""The position engine's smooth mode against the dense engine's: values, history, final book and gradients.

The smooth mode (docs/rules.md, "Smooth mode") makes every decision a weight; the position engine
(adljax.engine.positions) runs the same relaxation on a list of positions. Drawn cases run as dense books
and as position books at a temperature; every metric, the history and the final book must agree at 1e-9
of each quantity's scale (float64), and so must the gradients of smooth objectives (to 1e-7 relative).
"""
from __future__ import annotations

import dataclasses
import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import HealthCheck, given, note, settings, strategies as st

import adljax
from adljax import Outcome, Paths, PositionBook, venues
from adljax.engine import positions
from adljax.engine import waterfall
from adljax.engine.waterfall import batch_book, scenario_keys
from adljax.generate import merton, population, thinning_depth
from adljax.generate.prices import YEAR
from adljax.study import seed_keys

from strategies import COUNTS, SHAPES, cases, compare_outcomes

#: Count metrics that are sums of weights in the smooth mode (compared as numbers, not exactly).
WEIGHTED = ("market_liquidation_orders", "partial_liquidation_orders", "backstop_accounts")

#: Smooth rule sets, each smooth branch in one of them: the soft queue at bankruptcy prices (a row partly
#: bankrupt closes at the average of its two prices) with the vault's takeover; the socialized loss with
#: the "wait" cooldown; the random order (the hard queue's cut-off inside the smooth mode) at the mark with
#: the insurance fund (pro rata: test_each_smooth_stage_...). (Not the socialized loss after the insurance
#: fund: the fund leaves a row it paid at AV = 0 but for rounding, which the smooth mode counts as half
#: bankrupt, and the sign of that rounding decides whether its loss of ~1e-13 USD is charged: ADL's counts
#: can then differ between any two orders of the sums.)
SMOOTH_RULES = (
    dict(adl_policy="queue", adl_score="hyperliquid", adl_price="bankruptcy", backstop="vault"),
    dict(adl_policy="random_order", adl_score="hyperliquid", adl_price="mark", backstop="insurance"),
    dict(adl_policy="socialized", adl_score="hyperliquid", adl_price="previous_mark", backstop="vault",
         cooldown_mode="wait"),
)
FULL = os.environ.get("ADLJAX_FULL_TESTS") == "1"
#: The suite runs the first rule set (the other smooth stages are checked stage by stage below);
#: ADLJAX_FULL_TESTS=1 all three, and the whole-run gradients.
RUN_RULES = SMOOTH_RULES if FULL else SMOOTH_RULES[:1]


def _as_dense(out: Outcome) -> Outcome:
    return Outcome(book=out.book.to_book(), metrics=out.metrics, history=out.history)


def _compare(case, pos, dense) -> list[str]:
    bad = [line for line in compare_outcomes(case, pos, dense)
           if not any(line.startswith(f"metric {k}") for k in WEIGHTED)]
    for k in WEIGHTED:
        g, w = np.asarray(pos.metrics[k]), np.asarray(dense.metrics[k])
        if not np.allclose(g, w, rtol=1e-9, atol=1e-9):
            bad.append(f"metric {k}: {g!r} vs {w!r}")
    return bad


@pytest.mark.parametrize("rules", RUN_RULES, ids=lambda r: "-".join(str(v) for v in r.values()))
@settings(max_examples=2, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(data=st.data())
def test_smooth_position_engine_matches_dense_engine(rules, data):
    assert set(WEIGHTED) <= set(COUNTS)
    case = data.draw(cases(shapes=(SHAPES[1],), n_scenarios=3, rules=(rules,)), label="case")
    tau = data.draw(st.sampled_from([0.05, 0.2, 0.5]), label="temperature")
    venue = case.venue.replace(temperature=tau)
    note(case.describe())
    book, paths = case.book(), case.paths()
    dense = adljax.simulate(venue, book, paths, dt=case.dt, history=True)
    pos = _as_dense(adljax.simulate(venue, PositionBook.from_book(book), paths, dt=case.dt, history=True))
    bad = _compare(case, pos, dense)
    assert not bad, "position and dense engines disagree (smooth):\n" + "\n".join(bad)


# ---- gradients ------------------------------------------------------------------------------

START = np.array([100_000.0, 4_000.0])
LEV = np.array([40.0, 25.0])
N_SCENARIOS, N_STEPS = 3, 12


@pytest.fixture(scope="module")
def crash():
    """Two markets, 10 accounts, thin books and downward jumps: a small crash study in which every stage
    acts (the smooth test study of tests/test_smooth.py, cut down)."""
    kb, kp, _ = seed_keys(5)
    book = population(kb, 10, START, LEV, long_share=[0.7, 0.7], median_notional=50_000.0, leverage_mode=15.0,
                      markets_per_account=2, vault_cash=1e4, dtype=np.float64)
    vol = np.array([0.8, 1.0])
    o = merton(kp, START, n_scenarios=N_SCENARIOS, n_steps=N_STEPS, dt=1.0, vol=vol, corr=[[1, 0.8], [0.8, 1]],
               jump_rate=3.0 / (N_STEPS / YEAR), jump_mean=-0.06, jump_std=0.03, dtype=np.float64)
    paths = Paths(o, thinning_depth(o, [3e5, 1e5], calm_move=vol * np.sqrt(1 / YEAR), thinning=0.5))
    return book, paths


OBJECTIVES = ("bad_debt", "adl_indicator", "adl_notional", "vault_pnl")


def _objectives(engine: str, book, paths, venue):
    """x = (maintenance margins [2], vault cash, temperature) → the mean of each of OBJECTIVES [4]."""
    params0 = venue.params(2, dt=1.0, dtype=jnp.float64)
    rules = venue.rules.compiled()
    keys = scenario_keys(jax.random.key(0), N_SCENARIOS)
    pos = PositionBook.from_book(book)
    oracle, depth = jnp.asarray(paths.oracle), jnp.asarray(paths.depth)

    def f(x):
        p = dataclasses.replace(params0, maintenance_margin=x[:2], temperature=x[3])
        if engine == "dense":
            b = batch_book(book.replace(all_cash=book.all_cash.at[-2].set(x[2])), N_SCENARIOS)
            _, m, _ = waterfall.run(p, b, oracle, depth, keys, None, rules=rules)
        else:
            b = pos.replace(all_cash=pos.all_cash.at[-2].set(x[2])).batched(N_SCENARIOS)
            _, m, _ = positions.run(p, b, oracle, depth, keys, None, rules=rules)
        return jnp.stack([jnp.mean(m[k]) for k in OBJECTIVES])
    return f


@pytest.mark.skipif(not FULL, reason="whole-run gradients compile two reverse-mode programs (~20 s): "
                    "ADLJAX_FULL_TESTS=1; the suite checks each stage's Jacobian (below)")
def test_smooth_gradients_match_the_dense_engine(crash):
    """d (bad debt, P(ADL), ADL notional, vault PnL) / d (maintenance margins, vault cash, temperature):
    the position engine's reverse-mode gradients are the dense engine's, at two vault capitals (one
    program: the capital is an input), one where ADL is at its edge, one where the takeover is."""
    book, paths = crash
    venue = venues.hyperliquid(max_leverage=LEV, temperature=0.2)
    f_dense, f_pos = (_objectives(e, book, paths, venue) for e in ("dense", "positions"))
    # (One program an engine: the values come with the Jacobian, as its auxiliary output.)
    jac_dense, jac_pos = (jax.jit(jax.jacrev(lambda x, f=f: (f(x), f(x)), has_aux=True)) for f in (f_dense, f_pos))
    seen = []
    for vault in (1e3, 1e4):
        x0 = jnp.array([0.0125, 0.02, vault, 0.2])
        (j_dense, v_dense), (j_pos, v_pos) = jac_dense(x0), jac_pos(x0)
        np.testing.assert_allclose(v_pos, v_dense, rtol=1e-9, atol=1e-9)
        j_dense, j_pos = np.asarray(j_dense), np.asarray(j_pos)
        note = f"vault {vault}: values {np.asarray(v_dense)}\ndense {j_dense}\npositions {j_pos}"
        assert np.all(np.isfinite(j_pos)), note
        # Per objective, with a floor of 1e-9 of its largest entry (the inputs' units differ by 1e6).
        floor = 1e-9 * np.max(np.abs(j_dense), axis=1, keepdims=True)
        assert np.all(np.abs(j_pos - j_dense) <= 1e-7 * np.abs(j_dense) + floor), note
        seen.append(j_dense != 0)
    # Not vacuous: between the two points bad debt, ADL notional and the vault's PnL respond to the margins,
    # bad debt to the vault's cash, and all four to the temperature.
    want = np.array([[1, 1, 1, 1], [0, 0, 0, 1], [1, 1, 0, 1], [1, 1, 0, 1]], bool)
    assert np.all((seen[0] | seen[1])[want]), seen


def test_simulate_runs_a_smooth_venue_on_a_position_book(crash):
    book, paths = crash
    venue = venues.hyperliquid(max_leverage=LEV, temperature=0.1)
    out = adljax.simulate(venue, PositionBook.from_book(book), paths)
    assert isinstance(out.book, PositionBook)
    want = adljax.simulate(venue, book, paths).metrics
    for k, v in want.items():
        np.testing.assert_allclose(out.metrics[k], v, rtol=1e-9, atol=1e-6, err_msg=k)
    assert float(np.max(out.metrics["adl_notional"])) > 0


# ---- one stage at a time ----------------------------------------------------------------------

def _stage_book(vault_cash: float = 40.0):
    """8 traders in 2 markets around every smooth band at τ = 0.5: AV/MR from −0.3 to 1.4 (liquidatable,
    backstop candidate and bankrupt by fractions), notionals around the partial threshold, cooldowns under
    way, longs and shorts bankrupt in the same market (rows partly bankrupt close both ways). ``vault_cash``:
    40 leaves the vault bankrupt by a fraction, 100 able to carry about one candidate."""
    rng = np.random.default_rng(11)
    n, a = 8, 2
    size = rng.normal(0.0, 1.0, (n, a)) * np.array([20.0, 40.0])
    size[rng.random((n, a)) < 0.25] = 0.0
    size[0] = [15.0, -30.0]
    entry = np.where(size != 0, np.array([100.0, 50.0]) * rng.uniform(0.97, 1.03, (n, a)), 0.0)
    mark = np.array([96.0, 52.0])
    mr = np.sum(np.abs(size) * mark * np.array([0.0125, 0.02]), axis=1)
    pnl = np.sum(size * (mark - entry), axis=1)
    cash = mr * np.linspace(-0.3, 1.4, n) - pnl
    book = adljax.Book.from_accounts(cash, size, entry, vault_cash=vault_cash, vault_size=[3.0, -5.0],
                                     vault_entry=[99.0, 51.0], lp_size=-size.sum(0) - [3.0, -5.0],
                                     lp_entry=[100.0, 50.0], insurance_fund=25.0, dtype=jnp.float64)
    book = book.replace(cooldown=jnp.asarray(np.r_[rng.uniform(0.0, 12.0, n) * (rng.random(n) < 0.6), 0.0, 0.0]))
    market = adljax.engine.market.Market(mark=jnp.asarray(mark), prev_mark=jnp.asarray([98.0, 51.0]),
                                         depth=jnp.asarray([2_000.0, 1_500.0]), adl_start=jnp.asarray(3))
    return book, market


def _stage(stage: str, rules: adljax.Rules, dense: bool, lay):
    """x = (mark [2], maintenance margins [2], temperature) → the stage's book ([R] cash, [P] sizes and
    entries, [R] cooldowns) and report leaves, one vector; dense or on positions."""
    from adljax.engine import positions as pe
    from adljax.engine.stages import adl, backstop, liquidation, margin

    def f(x, book, market, params):
        market = dataclasses.replace(market, mark=x[:2])
        params = dataclasses.replace(params, maintenance_margin=x[2:4], temperature=x[4])
        tau = x[4]
        if stage == "liquidation":
            if dense:
                liq, mg = margin.run(book, market, params, tau)
                out, rep = liquidation.run(book, market, params, rules, liq, mg.av)
            else:
                liq, mg = pe.margin.run(book, market, params, tau)
                out, rep = pe.liquidation.run(book, market, params, rules, liq, mg.av)
        elif stage == "takeover":
            if dense:
                out, rep, _ = backstop.takeover(book, market, params, margin.values(book, market, params), tau)
            else:
                out, rep, _ = pe.backstop.takeover(book, market, params, pe.margin.values(book, market, params), tau)
        else:
            out, rep = (adl if dense else pe.adl).run(book, market, params, rules)
        if dense:
            size, entry = out.size_am[lay.market, lay.row], out.entry_am[lay.market, lay.row]
        else:
            size, entry = out.position_size, out.position_entry
        leaves = [jnp.ravel(jnp.asarray(v, x.dtype)) for v in jax.tree_util.tree_leaves(rep)]
        y = jnp.concatenate([out.all_cash, size, entry, out.cooldown, out.insurance_fund[None], *leaves])
        return y, y
    return jax.jit(jax.jacrev(f, has_aux=True))


STAGES = (
    ("liquidation", dict(cooldown_mode="wait")),
    ("liquidation", dict()),
    ("takeover", dict()),
    ("adl", dict(adl_policy="queue", adl_score="hyperliquid", adl_price="bankruptcy")),
    ("adl", dict(adl_policy="socialized")),
    ("adl", dict(adl_policy="pro_rata", adl_price="previous_mark")),
)


@pytest.mark.parametrize("stage", STAGES, ids=lambda s: s[0] + "-" + "-".join(s[1].values()))
def test_each_smooth_stage_and_its_gradient_match_the_dense_stage(stage):
    name, rules = stage
    book, market = _stage_book(100.0 if name == "takeover" else 40.0)
    venue = venues.hyperliquid(temperature=0.5, partial_threshold=1_500.0, cooldown=20.0, liquidation_fee=0.01,
                               vault_unwind=0.1, **rules)
    params = venue.params(2, dt=1.0, dtype=jnp.float64)
    pb = PositionBook.from_book(book)
    x0 = jnp.array([96.0, 52.0, 0.0125, 0.02, 0.5])
    j_dense, y_dense = _stage(name, venue.rules.compiled(), True, pb.layout)(x0, book, market, params)
    j_pos, y_pos = _stage(name, venue.rules.compiled(), False, pb.layout)(x0, pb, market, params)
    scale = float(np.max(np.abs(y_dense)))
    np.testing.assert_allclose(y_pos, y_dense, rtol=1e-9, atol=1e-12 * scale)
    np.testing.assert_allclose(j_pos, j_dense, rtol=1e-7, atol=1e-9 * float(np.max(np.abs(j_dense))))
    assert np.sum(np.abs(np.asarray(j_dense)) > 0) > 10            # the weights are fractional: gradients flow
