"""Scenario generators: statistics against the model's hand-derived moments, reproducibility, stress shapes,
bootstrap, depth, populations.

Statistical checks use a tolerance of 4 standard errors of the estimate (a
false alarm about once in 16,000 runs per check); each test's seed is fixed,
so a run is deterministic anyway.
"""
from pathlib import Path

import numpy as np
import jax
import jax.numpy as jnp
import pytest

from adljax.model.errors import InputError
from adljax.generate import (YEAR, apply_stress, bootstrap, cascade, correlated_normals, gap, garch, gbm,
                             load_prices_csv, merton, population, stress_path, thinning_depth, v_crash)

DATA = Path(__file__).parent / "data"
KEY = jax.random.key(20251010)
CORR3 = np.array([[1.0, 0.7, 0.3], [0.7, 1.0, 0.5], [0.3, 0.5, 1.0]])


def log_returns(p):
    return np.diff(np.log(np.asarray(p)), axis=1)


# ---- GBM ---------------------------------------------------------------------------
def test_gbm_has_the_requested_drift_volatility_and_correlation():
    s, t, dt = 4000, 51, 86400.0                       # 4000 paths of 50 daily steps
    vol, drift = np.array([0.5, 1.0, 2.0]), np.array([0.0, 2.0, -3.0])
    p = gbm(KEY, [100.0, 10.0, 1.0], n_scenarios=s, n_steps=t, dt=dt, vol=vol, drift=drift, corr=CORR3)
    assert p.shape == (s, t, 3)
    np.testing.assert_array_equal(p[:, 0], np.broadcast_to([100.0, 10.0, 1.0], (s, 3)))
    r = log_returns(p).reshape(-1, 3)
    n, h = r.shape[0], dt / YEAR
    # Mean of a step's log return: (drift − vol²/2)·h, standard error vol·√h/√n.
    want_mean = (drift - 0.5 * vol**2) * h
    assert np.all(np.abs(r.mean(0) - want_mean) < 4 * vol * np.sqrt(h / n))
    # Variance vol²·h; the sample variance of normals has standard error var·√(2/(n−1)).
    var = vol**2 * h
    assert np.all(np.abs(r.var(0, ddof=1) - var) < 4 * var * np.sqrt(2 / (n - 1)))
    # Correlation: standard error (1 − ρ²)/√n.
    c = np.corrcoef(r.T)
    iu = np.triu_indices(3, 1)
    assert np.all(np.abs(c[iu] - CORR3[iu]) < 4 * (1 - CORR3[iu] ** 2) / np.sqrt(n))


# ---- Merton -----------------------------------------------------------------------
def test_merton_jumps_arrive_at_the_requested_rate_and_size():
    s, t, dt = 2000, 101, 60.0
    rate = np.array([0.02, 0.005]) * YEAR / dt            # a 2 % and a 0.5 % chance of a jump per step
    p = merton(KEY, [100.0, 50.0], n_scenarios=s, n_steps=t, dt=dt, vol=0.0, jump_rate=rate,
               jump_mean=[-0.05, 0.03], jump_std=[0.0, 0.02])
    r = log_returns(p)
    # Market 0, no diffusion and fixed jumps: each return is (number of jumps)·(−0.05).
    k = r[..., 0] / -0.05
    np.testing.assert_allclose(k, np.round(k), atol=1e-9)
    counts = np.array([np.round(k).sum(), (r[..., 1] != 0).sum()])
    expected = rate * dt / YEAR * s * (t - 1)              # Poisson counts: variance = mean
    # Market 1 counts steps with a jump; two in one step (probability 1.2e-5) would count once.
    assert np.all(np.abs(counts - expected) < 4 * np.sqrt(expected)), (counts, expected)
    # Market 1's jump log-sizes: mean 0.03, sd 0.02.
    x = r[..., 1][r[..., 1] != 0]
    assert abs(x.mean() - 0.03) < 4 * 0.02 / np.sqrt(x.size)
    assert abs(x.std() - 0.02) < 4 * 0.02 / np.sqrt(2 * x.size)


def test_merton_without_jumps_is_gbm_with_the_same_key():
    kw = dict(n_scenarios=6, n_steps=12, dt=1.0, vol=[0.7, 1.2], corr=[[1, 0.5], [0.5, 1]])
    np.testing.assert_array_equal(merton(KEY, [100.0, 5.0], jump_rate=0.0, **kw), gbm(KEY, [100.0, 5.0], **kw))


# ---- GARCH ------------------------------------------------------------------------
def _acf1_of_squares(r, burn):
    """Pooled lag-1 autocorrelation of r² after ``burn`` steps, and its standard error across scenarios."""
    x = r[:, burn:] ** 2                                    # [S, T']
    mu = x.mean()
    a, b = x[:, :-1] - mu, x[:, 1:] - mu
    num = (a * b).mean(axis=1)                              # per scenario
    den = (a * a).mean(axis=1)
    rho = num.mean() / den.mean()
    # Delta method for a ratio of means: var(num − ρ·den)/S / den².
    se = np.std(num - rho * den, ddof=1) / np.sqrt(x.shape[0]) / den.mean()
    return rho, se


GARCH_RUN = dict(n_scenarios=200, n_steps=1201, dt=60.0, vol=[0.8, 0.5], corr=[[1.0, 0.6], [0.6, 1.0]])


def test_garch_clusters_volatility_around_the_long_run_level():
    vol, alpha, beta = np.array([0.8, 0.5]), np.array([0.10, 0.05]), np.array([0.85, 0.90])
    p = garch(KEY, [100.0, 10.0], alpha=alpha, beta=beta, **GARCH_RUN)
    r = log_returns(p)
    v = vol**2 * GARCH_RUN["dt"] / YEAR
    # Unconditional variance: E[σ_t²] = v at every step (started at v); E[r²] = v + (v/2)².
    per_scenario = (r**2).mean(axis=1)                      # [S, A]
    se = per_scenario.std(axis=0, ddof=1) / np.sqrt(r.shape[0])
    assert np.all(np.abs(per_scenario.mean(0) - (v + v**2 / 4)) < 4 * se), (per_scenario.mean(0), v)
    # Clustering: lag-1 autocorrelation of r² is α(1 − αβ − β²)/(1 − 2αβ − β²) (0.179 and 0.0725 here).
    want = alpha * (1 - alpha * beta - beta**2) / (1 - 2 * alpha * beta - beta**2)
    for j in range(2):
        rho, se = _acf1_of_squares(r[..., j], burn=200)
        assert rho > 4 * se, (j, rho, se)
        assert abs(rho - want[j]) < 4 * se + 0.01, (j, rho, want[j], se)


def test_garch_without_arch_terms_has_no_clustering():
    r = log_returns(garch(KEY, [100.0, 10.0], alpha=0.0, beta=0.0, **GARCH_RUN))
    for j in range(2):
        rho, se = _acf1_of_squares(r[..., j], burn=0)
        assert abs(rho) < 4 * se + 1e-3                      # the estimator's bias is about −1/(S·T)


def test_garch_rejects_nonstationary_parameters():
    with pytest.raises(InputError, match="alpha, beta"):
        garch(KEY, [1.0], n_scenarios=2, n_steps=3, dt=1.0, vol=0.5, alpha=0.2, beta=0.8)
    with pytest.raises(InputError, match="alpha"):
        garch(KEY, [1.0], n_scenarios=2, n_steps=3, dt=1.0, vol=0.5, alpha=-0.1, beta=0.5)


# ---- Reproducibility --------------------------------------------------------------
HIST = np.exp(np.cumsum(np.random.default_rng(7).normal(0.0, 0.01, (60, 2)), axis=0)) * [100.0, 5.0]
GENERATORS = {
    "gbm": lambda key, **b: gbm(key, [100.0, 5.0], n_steps=12, dt=1.0, vol=[0.7, 1.2], corr=[[1, 0.5], [0.5, 1]], **b),
    "merton": lambda key, **b: merton(key, [100.0, 5.0], n_steps=12, dt=1.0, vol=[0.7, 1.2], jump_rate=0.2 * YEAR,
                                      jump_mean=-0.03, jump_std=0.02, corr=[[1, 0.5], [0.5, 1]], **b),
    "garch": lambda key, **b: garch(key, [100.0, 5.0], n_steps=12, dt=1.0, vol=[0.7, 1.2], alpha=0.1, beta=0.8,
                                    corr=[[1, 0.5], [0.5, 1]], **b),
    "bootstrap": lambda key, **b: bootstrap(key, HIST, n_steps=12, block=4, **b),
    "correlated_normals": lambda key, n_scenarios, first_scenario=0: correlated_normals(
        key, (n_scenarios, 11), [[1, 0.5], [0.5, 1]], first_scenario=first_scenario),
}


@pytest.mark.parametrize("name", list(GENERATORS))
def test_same_seed_same_scenarios_in_any_batch_split(name):
    g = GENERATORS[name]
    full = np.asarray(g(KEY, n_scenarios=6))
    np.testing.assert_array_equal(full, np.asarray(g(jax.random.key(20251010), n_scenarios=6)))   # rerun
    # One scenario at a time (the smallest batch) gives exactly the rows of the batch of six.
    ones = [np.asarray(g(KEY, n_scenarios=1, first_scenario=k)) for k in range(6)]
    np.testing.assert_array_equal(np.concatenate(ones), full)
    assert not np.array_equal(np.asarray(g(jax.random.key(1), n_scenarios=6)), full)        # another seed
    assert len({full[i].tobytes() for i in range(6)}) == 6                                  # scenarios differ


def test_generators_reject_bad_batch_arguments():
    with pytest.raises(InputError, match="key"):
        gbm(0, [1.0], n_scenarios=2, n_steps=3, dt=1.0, vol=0.5)
    with pytest.raises(InputError, match="first_scenario"):
        gbm(KEY, [1.0], n_scenarios=2, n_steps=3, dt=1.0, vol=0.5, first_scenario=-1)
    with pytest.raises(InputError, match="n_steps"):
        merton(KEY, [1.0], n_scenarios=2, n_steps=0, dt=1.0, vol=0.5)
    with pytest.raises(InputError, match="vol"):
        gbm(KEY, [1.0, 2.0], n_scenarios=2, n_steps=3, dt=1.0, vol=[0.5, 0.5, 0.5])
    with pytest.raises(InputError, match="corr: not positive definite"):
        gbm(KEY, [1.0, 2.0], n_scenarios=2, n_steps=3, dt=1.0, vol=0.5, corr=[[1, 1.2], [1.2, 1]])


# ---- Stress shapes ----------------------------------------------------------------
def test_gap_falls_by_the_drop_exactly_when_asked():
    m = np.asarray(gap(0.3, over_s=60.0, at_s=120.0, n_steps=301, dt=1.0))
    assert m.shape == (301, 1)
    assert np.all(m[:121] == 1.0)                        # flat up to and at the start of the fall
    assert np.all(m[180:] == 1.0 - 0.3)                  # the whole drop at 120 + 60 s, and it stays
    r = np.diff(np.log(m[120:181, 0]))                   # a steady fall: equal log steps of log(0.7)/60
    np.testing.assert_allclose(r, np.log(0.7) / 60, rtol=1e-9)
    # Off-integer seconds: 0.1 s steps, the fall ends at 18 s = step 180 although 180·0.1 rounds.
    m = np.asarray(gap(0.3, over_s=6.0, at_s=12.0, n_steps=200, dt=0.1))
    assert m[120, 0] == 1.0 and m[119, 0] == 1.0 and m[121, 0] < 1.0
    assert m[180, 0] == 1.0 - 0.3 and m[179, 0] > 0.7
    # A jump: over_s = 0 is the whole drop at at_s.
    m = np.asarray(gap([0.1, 0.5], over_s=0.0, at_s=5.0, n_steps=10, dt=1.0))
    np.testing.assert_array_equal(m[:5], 1.0)
    np.testing.assert_array_equal(m[5:], np.broadcast_to([0.9, 0.5], (5, 2)))


def test_v_crash_bottoms_and_recovers_the_requested_share():
    drop, recover = 0.4, 0.75
    m = np.asarray(v_crash(drop, down_s=30.0, up_s=90.0, recover=recover, at_s=10.0, n_steps=200, dt=1.0))[:, 0]
    assert np.all(m[:11] == 1.0)
    assert m[40] == 1.0 - drop and m.min() == 1.0 - drop and np.argmin(m) == 40
    assert np.all(np.diff(m[10:41]) < 0) and np.all(np.diff(m[40:131]) > 0)
    assert np.all(m[130:] == 1.0 - drop * (1.0 - recover))                   # 0.9: three quarters of 40 % won back
    np.testing.assert_allclose(np.diff(np.log(m[40:131])), np.log(0.9 / 0.6) / 90, rtol=1e-9)


def test_cascade_hits_each_market_later_and_harder():
    drops, lags = np.array([0.07, 0.3, 0.7]), np.array([0.0, 60.0, 120.0])
    m = np.asarray(cascade(drops, over_s=[120.0, 90.0, 60.0], at_s=30.0, lags_s=lags, n_steps=400, dt=1.0))
    assert m.shape == (400, 3)
    for j, (start, end) in enumerate([(30, 150), (90, 180), (150, 210)]):
        assert np.all(m[: start + 1, j] == 1.0) and m[start + 1, j] < 1.0
        assert np.all(m[end:, j] == 1.0 - drops[j]) and m[end - 1, j] > 1.0 - drops[j]


def test_stress_alone_and_on_top_of_a_path():
    start = np.array([100_000.0, 200.0])
    shape = cascade([0.07, 0.5], over_s=4.0, at_s=2.0, lags_s=[0.0, 2.0], n_steps=12, dt=1.0)
    alone = np.asarray(stress_path(start, shape, n_scenarios=2))
    assert alone.shape == (2, 12, 2)
    assert np.all(alone[:, 6, 0] == start[0] * (1 - 0.07))                   # BTC's fall ends at 2 + 4 s
    np.testing.assert_allclose(alone[:, 6, 1], start[1] * np.sqrt(0.5), rtol=1e-14)  # the alt is half-way, 4..8 s
    np.testing.assert_array_equal(alone[:, 8:], np.broadcast_to(start * (1 - np.array([0.07, 0.5])), (2, 4, 2)))
    base = GENERATORS["gbm"](KEY, n_scenarios=6)
    out = np.asarray(apply_stress(base, shape))
    np.testing.assert_array_equal(out, np.asarray(base) * np.asarray(shape))
    # Shapes compose by product; a [T] shape applies to every market.
    both = apply_stress(base, gap(0.1, 0.0, 3.0, n_steps=12, dt=1.0)[:, 0] * shape[:, 1])
    np.testing.assert_allclose(np.asarray(both)[:, 10], np.asarray(base)[:, 10] * 0.9 * 0.5, rtol=1e-15)
    with pytest.raises(InputError, match="multiplier"):
        apply_stress(base, shape[:10])
    with pytest.raises(InputError, match="drop"):
        gap(1.2, 1.0, 0.0, n_steps=5, dt=1.0)


def test_stress_shapes_can_be_differentiated():
    final = jax.grad(lambda d: stress_path(jnp.array([100.0]), gap(d, 10.0, 0.0, n_steps=20, dt=1.0))[0, -1, 0])
    assert float(final(0.2)) == pytest.approx(-100.0)


# ---- Bootstrap ----------------------------------------------------------------------
def test_bootstrap_reuses_historical_returns_in_whole_blocks():
    hist = load_prices_csv(DATA / "prices_1min.csv")
    assert hist.markets == ("BTC", "ETH", "SOL") and hist.prices.shape == (40, 3)
    assert hist.times[0] == "2025-10-10T21:00:00Z" and hist.prices[0, 2] == 218.0
    R = np.diff(np.log(hist.prices), axis=0)                  # 39 historical steps
    block = 5
    p = np.asarray(bootstrap(KEY, hist.prices, n_scenarios=200, n_steps=23, block=block))
    np.testing.assert_array_equal(p[:, 0], np.broadcast_to(hist.prices[-1], (200, 3)))   # starts at the last price
    r = log_returns(p)                                         # [200, 22, 3]
    dist = np.abs(r[:, :, None, :] - R[None, None]).max(-1)     # [200, 22, 39] distance to each historical step
    idx = dist.argmin(-1)
    assert np.all(dist.min(-1) < 1e-12)                        # every step is one historical step, all markets at once
    nxt = idx[:, 1:] - idx[:, :-1]                             # within a block the history runs on
    assert np.all(nxt[:, (np.arange(1, 22) % block) != 0] == 1)
    assert np.all(idx[:, ::block] <= 39 - block)               # a block starts where it fits
    assert len(np.unique(idx[:, ::block])) == 39 - block + 1   # and every window is drawn (200·5 draws of 35)


def test_bootstrap_start_and_checks():
    p = bootstrap(KEY, HIST, n_scenarios=2, n_steps=5, block=1, start=[1.0, 2.0])
    np.testing.assert_array_equal(p[:, 0], [[1.0, 2.0], [1.0, 2.0]])
    with pytest.raises(InputError, match="block"):
        bootstrap(KEY, HIST, n_scenarios=2, n_steps=5, block=60)
    with pytest.raises(InputError, match="prices"):
        bootstrap(KEY, HIST[:1], n_scenarios=2, n_steps=5)
    bad = HIST.copy()
    bad[3, 1] = np.nan
    with pytest.raises(InputError, match=r"prices: NaN at index \(3, 1\)"):
        bootstrap(KEY, bad, n_scenarios=2, n_steps=5)


def _csv(tmp_path, text):
    f = tmp_path / "p.csv"
    f.write_text(text)
    return f


def test_load_prices_csv_picks_named_markets_in_order(tmp_path):
    f = _csv(tmp_path, "volume,SOL,timestamp,BTC\n1,200,t0,100000\n2,190,t1,99000\n3,180.5,t2,98000\n")
    h = load_prices_csv(f, markets=["BTC", "SOL"])
    np.testing.assert_array_equal(h.prices, [[100000, 200], [99000, 190], [98000, 180.5]])
    assert h.markets == ("BTC", "SOL") and list(h.times) == ["t0", "t1", "t2"]


@pytest.mark.parametrize("text, markets, match", [
    ("time,BTC\nt0,1\nt1,2\n", ["BTC", "ETH"], r"missing column 'ETH'.*\['time', 'BTC'\]"),
    ("time,BTC,ETH\nt0,1,2\nt1,NaN,2\nt2,1,2\n", None, r"column 'BTC': NaN price at row 2 \(line 3\)"),
    ("time,BTC,ETH\nt0,1,2\nt1,1,2\nt2,1,-3\n", None, r"column 'ETH': price must be finite and > 0, got -3 at row 3"),
    ("time,BTC,ETH\nt0,1,2\nt1,1,0\n", None, r"column 'ETH': price must be .* got 0 at row 2"),
    ("time,BTC\nt0,1\nt1,\n", None, r"column 'BTC': empty price at row 2"),
    ("time,BTC\nt0,1\nt1,abc\n", None, r"column 'BTC': 'abc' is not a number at row 2"),
    ("time,BTC\nt0,1\n", None, r"at least 2 rows of prices .* found 1"),
    ("", None, r"empty"),
])
def test_load_prices_csv_errors_name_the_column_and_row(tmp_path, text, markets, match):
    with pytest.raises(InputError, match=match):
        load_prices_csv(_csv(tmp_path, text), markets=markets)


# ---- Depth ------------------------------------------------------------------------
def test_thinning_depth_follows_the_move_of_any_path():
    calm, base = 0.001, np.array([5e6, 1e6])
    prices = stress_path([100.0, 10.0], gap([0.3, 0.0], 60.0, 10.0, n_steps=100, dt=1.0))
    d = np.asarray(thinning_depth(prices, base, calm_move=calm, thinning=0.5, floor=0.02))
    r = abs(np.log(0.7) / 60)                                  # the fall's steady one-step move
    np.testing.assert_allclose(d[0, 11:71, 0], 5e6 / (1 + 0.5 * r / calm), rtol=1e-12)
    np.testing.assert_array_equal(d[0, :11, 0], 5e6)           # calm before and after
    np.testing.assert_array_equal(d[0, 71:, 0], 5e6)
    np.testing.assert_array_equal(d[0, :, 1], 1e6)             # a market that does not move keeps its depth
    # A jump far above calm_move hits the floor.
    jump = stress_path([100.0], gap(0.5, 0.0, 3.0, n_steps=6, dt=1.0))
    np.testing.assert_allclose(np.asarray(thinning_depth(jump, 1e6, calm_move=calm))[0, 3, 0], 0.02e6)
    # Generated paths of every kind: [S, T, A], the full depth at step 0, never above base, split like the paths.
    for name, g in GENERATORS.items():
        if name == "correlated_normals":
            continue
        p = g(KEY, n_scenarios=6)
        d = np.asarray(thinning_depth(p, base, calm_move=0.01))
        assert d.shape == p.shape and np.all(d[:, 0] == base) and np.all((d > 0) & (d <= base))
        np.testing.assert_array_equal(np.asarray(thinning_depth(p[2:], base, calm_move=0.01)), d[2:])
    with pytest.raises(InputError, match="calm_move"):
        thinning_depth(prices, base, calm_move=0.0)


# ---- Population -------------------------------------------------------------------
START = np.array([100_000.0, 4_000.0, 200.0])
LEV = np.array([40.0, 25.0, 10.0])


def _account_values(book, mark):
    return np.asarray(book.cash) + np.sum(np.asarray(book.size) * (mark - np.asarray(book.entry)), axis=1)


def test_population_is_zero_sum_skewed_and_within_leverage():
    n = 2000
    book = population(jax.random.key(5), n, START, LEV, long_share=[0.8, 0.5, 0.2], markets_per_account=2,
                      leverage_mode=8.0)
    size = np.asarray(book.all_size)
    assert np.all(np.abs(size.sum(0)) <= 1e-12 * np.abs(size).sum(0))              # zero-sum per market
    # Each account trades 2 of 3 markets: ~1333 positions per market, long with the requested share.
    longs, opens = (size[:-2] > 0).sum(0), (size[:-2] != 0).sum(0)
    share = np.array([0.8, 0.5, 0.2])
    assert np.all(np.abs(longs / opens - share) < 4 * np.sqrt(share * (1 - share) / opens)), longs / opens
    # Leverage at the start price: positions need at most the account value at each market's maximum.
    av = _account_values(book, START)
    need = (np.abs(np.asarray(book.size)) * START / LEV).sum(1)
    assert np.all(need <= av * (1 + 1e-9))
    lev = np.abs(np.asarray(book.size)) * START / av[:, None]
    assert np.all(lev.max(0) <= LEV * (1 + 1e-9)) and np.all(lev.max(0) > 0.8 * LEV)    # the cap is reached


def test_population_isolated_rows():
    n = 200
    kw = dict(long_share=[0.6, 0.5, 0.4], markets_per_account=2, leverage_mode=5.0, vault_cash=1e6)
    cross = population(jax.random.key(9), n, START, LEV, **kw)
    mixed = population(jax.random.key(9), n, START, LEV, isolated_share=0.25, **kw)
    iso = np.asarray(mixed.isolated)[:-2]
    size, npos = np.asarray(mixed.size), (np.asarray(mixed.size) != 0).sum(1)
    # 50 accounts isolated, each trading at least 2 markets: 150 cross rows, ≥ 100 isolated rows of one position each.
    assert (~iso).sum() == 150 and iso.sum() >= 100 and np.all(npos[iso] == 1)
    assert mixed.n_accounts == 150 + iso.sum()
    assert np.all(np.abs(size.sum(0)) <= 1e-12 * np.abs(size).sum(0))
    # The same positions and money, split into more rows: sorted sizes per market and total cash agree.
    for j in range(3):
        a, b = np.asarray(cross.size)[:, j], size[:, j]
        np.testing.assert_allclose(np.sort(a[a != 0]), np.sort(b[b != 0]), rtol=1e-12)
    assert float(mixed.cash.sum()) == pytest.approx(float(cross.cash.sum()), rel=1e-12)
    assert float(mixed.vault_cash) == 1e6
    # An isolated row's leverage at start is within its market's maximum.
    av = _account_values(mixed, START)
    lev = (np.abs(size) * START).sum(1) / av
    j = np.argmax(size != 0, axis=1)
    assert np.all(lev[iso] <= LEV[j[iso]] * (1 + 1e-9))
    # Deterministic from the key.
    again = population(jax.random.key(9), n, START, LEV, isolated_share=0.25, **kw)
    for f in ("all_cash", "size_am", "entry_am", "isolated"):
        np.testing.assert_array_equal(np.asarray(getattr(again, f)), np.asarray(getattr(mixed, f)))
    other = population(jax.random.key(10), n, START, LEV, isolated_share=0.25, **kw)
    assert other.n_accounts != mixed.n_accounts or not np.array_equal(np.asarray(other.all_cash),
                                                                      np.asarray(mixed.all_cash))
    with pytest.raises(InputError, match="isolated_share"):
        population(jax.random.key(9), n, START, LEV, isolated_share=1.5)
