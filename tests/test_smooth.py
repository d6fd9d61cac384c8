"""The smooth mode: its limit is the hard engine, its gradients are right, its books stay sound.

Gradients of every objective against central finite
differences of the smooth engine (float64, relative error < 1e-2); smooth
outcomes converging to the hard engine's as the temperature falls; the
invariants of the hard engine (zero sum, conservation, no loss to flat
accounts) holding at every temperature.
"""
from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import adljax
from compiles import lowerings
from adljax import objectives, venues
from adljax.analysis.calibration import apply
from adljax.engine.waterfall import batch_book, prepare, run, scan_remat, scenario_keys, segment_length
from adljax.generate import merton, population, thinning_depth
from adljax.generate.prices import YEAR
from adljax.engine.smooth import above, smoothstep
from adljax.engine.stages.queue import take_from_top, take_soft
from adljax.study import Study, seed_keys

jax.config.update("jax_enable_x64", True)

START = np.array([100_000.0, 4_000.0])
LEV = np.array([40.0, 25.0])


def crash_study(n_accounts=60, vault=3e5, n_scenarios=24, n_steps=40, seed=3, dtype=np.float64, venue=None):
    """Two markets, thin books, frequent downward jumps, a small vault: every stage fires, ADL in ~40 % of scenarios."""
    kb, kp, _ = seed_keys(seed)
    book = population(kb, n_accounts, START, LEV, long_share=[0.7, 0.7], median_notional=50_000.0,
                      leverage_mode=15.0, markets_per_account=2, vault_cash=vault, dtype=dtype)
    vol = np.array([0.8, 1.0])

    def make_paths(first, n):
        o = merton(kp, START, n_scenarios=n, n_steps=n_steps, dt=1.0, vol=vol, corr=[[1, 0.8], [0.8, 1]],
                   jump_rate=1.5 / (n_steps / YEAR), jump_mean=-0.05, jump_std=0.03, dtype=dtype, first_scenario=first)
        return adljax.Paths(o, thinning_depth(o, [3e5, 1e5], calm_move=vol * np.sqrt(1 / YEAR), thinning=0.5))

    venue = venue or venues.hyperliquid(max_leverage=LEV)
    return Study("crash", venue, book, 1.0, n_scenarios, n_steps, make_paths, ("BTC", "ETH"), seed)


@pytest.fixture(scope="module")
def study():
    return crash_study()


@pytest.fixture(scope="module")
def paths(study):
    return study.paths


def _metrics(venue, study, paths):
    return {k: np.asarray(v) for k, v in adljax.simulate(venue, study.book, paths, key=study.key).metrics.items()}


# ---- the relaxation itself ------------------------------------------------------------------

def test_smoothstep_is_a_c2_ramp():
    u = jnp.linspace(-0.5, 1.5, 2001)
    s = smoothstep(u)
    assert float(s[0]) == 0.0 and float(s[-1]) == 1.0 and float(smoothstep(0.5)) == 0.5
    assert np.all(np.diff(np.asarray(s)) >= 0)
    d1 = jax.vmap(jax.grad(smoothstep))(jnp.array([0.0, 1.0, 0.5]))
    d2 = jax.vmap(jax.grad(jax.grad(smoothstep)))(jnp.array([0.0, 1.0]))
    np.testing.assert_allclose(d1, [0.0, 0.0, 1.875])          # 30·u²(1−u)² at 1/2
    np.testing.assert_allclose(d2, [0.0, 0.0], atol=1e-12)
    # above(): hard at τ = 0, a band of width τ around 0 otherwise.
    x = jnp.array([-0.06, -0.05, 0.0, 0.05, 0.06])
    assert above(x, 0.0).dtype == jnp.bool_
    np.testing.assert_allclose(above(x, 0.1), [0.0, 0.0, 0.5, 1.0, 1.0])


def test_soft_queue_limit_is_the_hard_queue_and_sums_to_need():
    # BitMEX's example: a short of 20 meets longs ranked 10, 20, ...: the first closes 10, the second 10.
    score = jnp.array([[5.0, 3.0, 1.0, 0.5]])
    weight = jnp.array([[10.0, 20.0, 30.0, 5.0]])
    need = jnp.array([20.0])
    hard = take_from_top(score, weight, need)
    np.testing.assert_allclose(hard, [[10.0, 10.0, 0.0, 0.0]])
    soft = take_soft(score, weight, need, 1e-4)
    np.testing.assert_allclose(soft, hard, atol=1e-9)
    warm = take_soft(score, weight, need, 0.5)
    np.testing.assert_allclose(jnp.sum(warm), 20.0, rtol=1e-12)
    assert np.all(np.asarray(warm) <= np.asarray(weight) + 1e-12)
    # Whole capacity when need exceeds it; nothing when need is 0.
    np.testing.assert_allclose(take_soft(score, weight, jnp.array([100.0]), 0.3), weight)
    np.testing.assert_allclose(take_soft(score, weight, jnp.array([0.0]), 0.3), 0.0)


def test_soft_queue_gradient_through_the_ranking_matches_finite_differences():
    score = jnp.array([[5.0, 3.1, 3.0, 0.5]])
    weight = jnp.array([[10.0, 20.0, 30.0, 5.0]])
    need = jnp.array([25.0])
    # Units the second candidate closes, as a function of its own score: the hard queue's
    # derivative is 0 (a ranking), the soft queue's is not, and it is the true derivative.
    f = lambda s1: take_soft(score.at[0, 1].set(s1), weight, need, 0.2)[0, 1]
    g = jax.grad(f)(3.1)
    h = 1e-6
    fd = (f(3.1 + h) - f(3.1 - h)) / (2 * h)
    assert abs(float(g)) > 1.0
    np.testing.assert_allclose(g, fd, rtol=1e-4)
    assert float(jax.grad(lambda s1: take_from_top(score.at[0, 1].set(s1), weight, need)[0, 1])(3.1)) == 0.0


def test_scan_remat_gives_the_plain_scan_and_its_gradient():
    assert [segment_length(t) for t in (1, 7, 12, 100, 600)] == [1, 1, 3, 10, 24]
    xs = jnp.linspace(0.0, 1.0, 12)
    body = lambda c, x: (jnp.sin(c) * 1.1 + x, c * x)
    f_plain = lambda c: jnp.sum(jax.lax.scan(body, c, xs)[1]) + jax.lax.scan(body, c, xs)[0]
    f_remat = lambda c: jnp.sum(scan_remat(body, c, xs, 12)[1]) + scan_remat(body, c, xs, 12)[0]
    np.testing.assert_allclose(f_remat(0.3), f_plain(0.3), rtol=1e-14)
    np.testing.assert_allclose(jax.grad(f_remat)(0.3), jax.grad(f_plain)(0.3), rtol=1e-12)


# ---- the smooth engine ----------------------------------------------------------------------

def test_the_study_exercises_every_stage(study, paths):
    m = _metrics(study.venue, study, paths)
    assert np.mean(m["market_liquidation_notional"] > 0) > 0.5
    assert np.mean(m["backstop_notional"] > 0) > 0.5
    assert 0.2 < np.mean(m["adl_indicator"]) < 0.8
    np.testing.assert_array_equal(m["adl_indicator"], (m["adl_steps"] > 0).astype(float))


def test_smooth_outcomes_converge_to_the_hard_engine(study, paths):
    """As τ → 0 the smooth engine's metrics approach the hard engine's on the same scenarios."""
    hard = _metrics(study.venue, study, paths)
    keys = ("market_liquidation_notional", "backstop_notional", "adl_notional", "adl_notional_vault", "bad_debt",
            "vault_pnl")
    scale = {k: np.mean(np.abs(hard[k])) for k in keys}
    assert all(v > 0 for v in scale.values()), scale      # every one of them happens in the study
    err = {}
    for tau in (0.3, 1e-3, 1e-6):               # (one compiled program for the three: Rules.compiled)
        m = _metrics(study.venue.replace(temperature=tau), study, paths)
        err[tau] = max(np.mean(np.abs(m[k] - hard[k])) / scale[k] for k in keys)
    assert err[0.3] > 1e-3                      # the relaxation does something at a high temperature
    assert err[1e-3] < err[0.3]
    assert err[1e-6] < 1e-6, err                # and its limit is the hard engine


def test_a_new_temperature_reuses_the_compiled_engine_and_runs_at_its_own_value(study, paths):
    """Runs at two temperatures share one program (the value travels in Params.temperature); each
    gives the numbers of a program compiled for its temperature alone (the rules as given), so no
    stage reads the temperature's value from the static rules."""
    small = paths.scenarios(0, 4)
    hot, cool = study.venue.replace(temperature=0.3), study.venue.replace(temperature=0.02)
    m_hot = _metrics(hot, study, small)                 # compiles the smooth program for these shapes (or reuses it)
    with lowerings("run") as new:
        m_cool = _metrics(cool, study, small)
    assert new == []                                    # the second temperature compiled nothing new
    for venue, m in ((hot, m_hot), (cool, m_cool)):
        params, bb, p = prepare(venue, study.book, small, study.dt)
        keys = scenario_keys(study.key, small.n_scenarios)
        _, alone, _ = run(params, bb, p.oracle, p.depth, keys, p.funding, rules=venue.rules)
        for k in ("market_liquidation_notional", "backstop_notional", "adl_notional", "bad_debt", "adl_indicator"):
            np.testing.assert_allclose(m[k], np.asarray(alone[k]), rtol=1e-12, atol=1e-9, err_msg=k)
    assert not np.allclose(m_hot["market_liquidation_notional"], m_cool["market_liquidation_notional"])


def test_smooth_mode_keeps_the_books_sound(study, paths):
    v = study.venue.replace(temperature=0.2)
    out = adljax.simulate(v, study.book, paths, key=study.key)
    m = out.metrics
    assert float(np.max(m["zero_sum_error"])) < 1e-9
    assert float(np.max(m["conservation_error"])) < 1e-6
    assert float(np.mean(m["adl_notional"])) > 0
    ind = np.asarray(m["adl_indicator"])
    assert np.all((ind >= 0) & (ind <= 1))     # a relaxed indicator (fractional near the edge: see the gradient test)


def test_accounts_without_positions_lose_nothing_in_the_smooth_mode(study, paths):
    book = study.book
    n = book.n_accounts
    flat = np.zeros(book.all_cash.shape, bool)
    flat[: n][::7] = True                        # make every 7th trader flat, with cash
    size = np.where(flat[None, :], 0.0, np.asarray(book.size_am))
    entry = np.where(flat[None, :], 0.0, np.asarray(book.entry_am))
    lp_fix = -np.sum(size[:, :-1], axis=1)       # rebalance into the LP row
    size[:, -1] = lp_fix
    entry[:, -1] = np.where(lp_fix != 0, np.asarray(paths.oracle)[0, 0], 0.0)
    b = book.replace(size_am=jnp.asarray(size), entry_am=jnp.asarray(entry))
    out = adljax.simulate(study.venue.replace(temperature=0.2, adl_policy="queue"), b, paths, key=study.key)
    cash0 = np.asarray(b.all_cash)[flat]
    final = np.asarray(out.book.all_cash)[:, flat]
    assert float(np.mean(out.metrics["adl_notional"])) > 0
    np.testing.assert_array_equal(final, np.broadcast_to(cash0, final.shape))
    assert not np.any(np.asarray(out.book.size_am)[:, :, flat])


@pytest.mark.parametrize("policy", ["pro_rata", "socialized"])
def test_smooth_mode_runs_every_policy_soundly(study, paths, policy):
    v = study.venue.replace(temperature=0.1, adl_policy=policy)
    m = adljax.simulate(v, study.book, paths.scenarios(0, 8), key=study.key).metrics
    assert float(np.max(m["zero_sum_error"])) < 1e-9 and float(np.max(m["conservation_error"])) < 1e-6
    assert float(np.sum(m["adl_notional"] + m["socialized_loss"])) > 0


def test_float32_smooth_mode_reports_its_conservation_error(study):
    st32 = crash_study(dtype=np.float32, n_scenarios=8)
    m = adljax.simulate(st32.venue.replace(temperature=0.1), st32.book, st32.paths, key=st32.key).metrics
    value = float(np.sum(np.abs(np.asarray(st32.book.all_cash))))
    assert np.all(np.isfinite(m["bad_debt"]))
    assert float(np.max(m["conservation_error"])) < 1e-5 * value


# ---- gradients ------------------------------------------------------------------------------

def test_gradients_of_every_objective_match_finite_differences(study, paths):
    """d objective / d (maintenance margins, vault capital) against central differences, float64."""
    v = study.venue.replace(temperature=0.2)
    params0, _, _ = prepare(v, study.book, paths, 1.0, batch=False)
    keys = scenario_keys(study.key, paths.n_scenarios)
    names = list(objectives.OBJECTIVES)

    @jax.jit
    def objs(x):
        p, b = apply(params0, study.book, {"maintenance_margin": x[:2], "vault_capital": x[2]})
        bb = batch_book(b, paths.n_scenarios)
        _, m, _ = run(p, bb, paths.oracle, paths.depth, keys, None, rules=v.rules)
        return jnp.stack([objectives.evaluate(n, m, p, bb, paths.oracle[:, 0], 0.9) for n in names])

    # P(ADL) has a gradient only where some scenario is at the edge of ADL; find a vault capital
    # that puts one there (bisection on the smooth P(ADL), continuous in the capital).
    p_of = lambda vault: float(objs(jnp.array([0.0125, 0.02, vault]))[0])
    lo, hi = 3e5, 2e6
    p_lo, p_hi = p_of(lo), p_of(hi)
    assert p_lo > p_hi
    goal = 0.5 * (p_lo + p_hi) + 0.25 / paths.n_scenarios      # not a whole number of scenarios
    for _ in range(24):                      # to within 0.1 USD of capital
        mid = 0.5 * (lo + hi)
        lo, hi = (mid, hi) if p_of(mid) > goal else (lo, mid)
    x0 = jnp.array([0.0125, 0.02, 0.5 * (lo + hi)])
    jac = np.asarray(jax.jit(jax.jacrev(objs))(x0))
    at_x0 = np.asarray(objs(x0))
    for j in range(3):
        h = float(x0[j]) * 1e-6              # the engine has kinks (min, max) at coarser scales
        e = jnp.zeros(3).at[j].set(h)
        fd = np.asarray((objs(x0 + e) - objs(x0 - e)) / (2 * h))
        for i, name in enumerate(names):
            if abs(fd[i]) < 1e-9 * max(1.0, abs(float(at_x0[i]))) / float(x0[j]):
                assert abs(jac[i, j]) < 1e-6 * max(1.0, abs(float(at_x0[i]))) / float(x0[j]), (name, j)
                continue
            assert abs(jac[i, j] - fd[i]) <= 1e-2 * abs(fd[i]), (name, j, jac[i, j], fd[i])
    # Not vacuous: the tail objectives respond to the margins, the ADL ones to the vault too.
    for name in ("bad_debt", "vault_loss_es", "adl_notional", "margin_locked"):
        assert abs(jac[names.index(name), 0]) > 0, name
    for name in ("p_adl", "adl_notional", "vault_capital"):
        assert abs(jac[names.index(name), 2]) > 0, name
    assert jac[names.index("p_adl"), 2] < 0          # more vault capital, less ADL


def test_expected_shortfall_by_hand():
    x = jnp.array([1.0, 5.0, 2.0, 9.0, 3.0])
    assert float(objectives.expected_shortfall(x, 0.8)) == 9.0          # worst 20 % of 5 = 1 scenario
    assert float(objectives.expected_shortfall(x, 0.6)) == 7.0          # worst 2: (9 + 5)/2
    np.testing.assert_allclose(objectives.expected_shortfall(x, 0.5), (9 + 5 + 0.5 * 3) / 2.5)
    np.testing.assert_allclose(jax.grad(lambda y: objectives.expected_shortfall(y, 0.5))(x),
                               [0, 0.4, 0, 0.4, 0.2])
    with pytest.raises(adljax.InputError, match="level"):
        objectives.expected_shortfall(x, 1.0)


def test_margin_locked_by_hand():
    book = adljax.Book.from_accounts(cash=[1000.0, 1000.0], size=[[2.0, -10.0], [-2.0, 10.0]],
                                     entry=[[100.0, 10.0], [100.0, 10.0]], vault_cash=0.0)
    params = venues.hyperliquid().params(2, dtype=jnp.float64)
    params = dataclasses.replace(params, maintenance_margin=jnp.array([0.01, 0.05]))
    mark = jnp.array([110.0, 8.0])
    # 2·110·0.01 + 10·8·0.05 = 2.2 + 4, for each of the two traders
    np.testing.assert_allclose(objectives.margin_locked(params, book, mark), 2 * (2.2 + 4.0))


# ---- errors ---------------------------------------------------------------------------------

def test_bad_temperature_and_smooth_reference_are_refused(study, paths):
    for bad in (-0.1, 2.0, float("nan"), "warm"):
        with pytest.raises(adljax.InputError, match="temperature"):
            study.venue.replace(temperature=bad)
    with pytest.raises(adljax.InputError, match="temperature"):
        adljax.reference.simulate(study.venue.replace(temperature=0.1), study.book, paths.scenarios(0, 1))
