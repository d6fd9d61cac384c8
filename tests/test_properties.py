"""Invariants of the fast engine over random books × violent paths × venues.

Every ``simulate`` call with a new (shape, rules, dtype, history) compiles,
so the cases are drawn from the few shapes of ``strategies.SHAPES`` and the
static rules from ``strategies.RULE_SETS``, and the checks are grouped into
a few tests.
"""
from __future__ import annotations

import numpy as np
import jax
from hypothesis import HealthCheck, assume, given, note, settings

import adljax
from adljax import METRICS, Paths

from strategies import BOOK_FIELDS, COUNTS, SHAPES, cases, compare_outcomes

REL = 1e-9
NOTIONALS = ("market_liquidation_notional", "backstop_notional", "adl_notional")
BAD_DEBT = ("bad_debt", "bad_debt_backstop", "bad_debt_adl", "bad_debt_residual")

#: derandomize: the same cases every run (CI stays reproducible; a longer random run is how to hunt).
SETTINGS = dict(deadline=None, derandomize=True,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


def metrics_np(out) -> dict[str, np.ndarray]:
    return {k: np.asarray(v, dtype=np.float64) for k, v in out.metrics.items()}


def book_np(out) -> dict[str, np.ndarray]:
    return {f: np.asarray(getattr(out.book, f)) for f in BOOK_FIELDS}


def account_value(cash, size, entry, mark):
    """AV of every row, float64 numpy: cash [..., R], size/entry [..., R, A], mark [..., A]."""
    return cash + np.sum(size * (mark[..., None, :] - entry), axis=-1)


def assert_outcomes_close(case, got, want, what: str):
    """Every metric, book field and history series of two outcomes agree to 1e-9 (floors tied to the case's scale)."""
    bad = compare_outcomes(case, got, want, REL)
    assert not bad, f"{what}:\n" + "\n".join(bad)


def simulate(case, dtype=np.float64, scenarios=slice(None), history=False):
    return adljax.simulate(case.venue, case.book(dtype), case.paths(dtype, scenarios), dt=case.dt, history=history)


# --------------------------------------------------------------------------- the invariants
def check_invariants(case, out, *, rel: float, dtype=np.float64):
    """Invariants that hold in any float width (``rel`` is the relative tolerance of sums).

    The start book is taken as built in ``dtype`` (float32 rounds the drawn numbers).
    """
    bc = case.bc
    n, a = bc.n_accounts, bc.n_markets
    s, t, _ = case.oracle.shape
    scale = case.scale
    m = metrics_np(out)
    b = book_np(out)
    cash, size, entry = (b[f].astype(np.float64) for f in ("all_cash", "all_size", "all_entry"))
    start = case.book(dtype)
    cash0, size0, entry0 = (np.asarray(getattr(start, f), dtype=np.float64) for f in ("all_cash", "all_size", "all_entry"))

    # Shapes and finiteness.
    assert set(m) == set(METRICS)
    for k, v in m.items():
        assert v.shape == (s,), k
        assert np.all(np.isfinite(v)), f"metric {k} not finite: {v}"
    for f, v in b.items():
        assert np.all(np.isfinite(v.astype(np.float64))), f"book.{f} not finite"
    assert cash.shape == (s, n + 2) and size.shape == (s, n + 2, a)
    if out.history is not None:
        for k, v in out.history.items():
            assert np.all(np.isfinite(np.asarray(v))), f"history {k} not finite"

    # Zero sum per market and conserved total value after every step (the metrics are maxima over steps).
    assert np.all(m["zero_sum_error"] <= rel * case.size_scale), m["zero_sum_error"]
    assert np.all(m["conservation_error"] <= rel * scale), (m["conservation_error"], scale)
    # ... and recomputed from the final book.
    net = np.abs(size.sum(axis=1))
    assert np.all(net <= rel * case.size_scale), net
    # (Σ size·m is the same at any common mark because every market sums to zero; the
    # insurance fund is part of the total: fees go in, deficits are paid out.)
    value0 = cash0.sum() - np.sum(size0 * entry0) + case.bc.insurance_fund
    value = cash.sum(axis=1) - np.sum(size * entry, axis=(1, 2)) + np.asarray(b["insurance_fund"], dtype=np.float64)
    assert np.all(np.abs(value - value0) <= rel * scale), (value, value0)
    assert np.all(m["conservation_error"] >= np.abs(value - value0) - rel * scale)
    assert np.all(m["zero_sum_error"] >= net.max(axis=1) - rel * case.size_scale)

    # Traders' positions never flip sign and never grow (elementwise, exactly).
    fs, ss = size[:, :n], np.broadcast_to(size0[:n], size[:, :n].shape)
    assert np.all(fs * ss >= 0), f"a trader position flipped sign:\nstart={size0[:n]}\nfinal={fs}"
    assert np.all(np.abs(fs) <= np.abs(ss)), f"a trader position grew:\nstart={size0[:n]}\nfinal={fs}"
    # A flat position has entry 0; entries stay positive where open.
    assert np.all(np.where(size == 0, entry == 0, entry > 0)), "entry must be 0 exactly where flat, > 0 where open"

    # Rows without a position at the start end exactly as they started.
    flat = ~np.any(size0[:n] != 0, axis=1)
    if flat.any():
        np.testing.assert_array_equal(cash[:, :n][:, flat], np.broadcast_to(cash0[:n][flat], (s, int(flat.sum()))),
                                      err_msg="a row without positions lost or gained cash")
        assert np.all(size[:, :n][:, flat] == 0)

    # Cooldowns stay within [0, venue cooldown]; flags and the fund are untouched.
    assert np.all(b["cooldown"] >= 0) and np.all(b["cooldown"] <= case.venue.cooldown * (1 + rel))
    assert np.all(b["cooldown"][:, n:] == 0), "the vault and LP rows never cool down"
    np.testing.assert_array_equal(b["isolated"], np.broadcast_to(np.concatenate([bc.isolated, [False, False]]), (s, n + 2)))

    # Bad debt decomposes, every part non-negative.
    tiny = rel * scale
    for k in BAD_DEBT:
        if k == "bad_debt_adl" and case.venue.rules.adl_price == "previous_mark":
            continue   # closing at the previous mark can deepen a deficit when the price moved (Hyperliquid's rule)
        assert np.all(m[k] >= -tiny), (k, m[k])
    np.testing.assert_allclose(m["bad_debt"], m["bad_debt_backstop"] + m["bad_debt_adl"] + m["bad_debt_residual"],
                               rtol=rel, atol=tiny)
    for k in NOTIONALS:
        assert np.all(m[k] >= 0), (k, m[k])

    # Counts are non-negative integers with sensible bounds.
    for k in COUNTS:
        assert np.all(m[k] >= 0) and np.all(m[k] == np.round(m[k])), (k, m[k])
    n_open = int(np.sum(np.any(size0[:n] != 0, axis=1)))
    assert np.all(m["partial_liquidation_orders"] <= m["market_liquidation_orders"])
    assert np.all(m["market_liquidation_orders"] <= t * int(np.sum(size0[:n] != 0)))
    if case.venue.rules.backstop == "vault":   # (an insurance fund may pay the same row in several steps)
        assert np.all(m["backstop_accounts"] <= n_open), "a row can be taken over once: it never reopens a position"
    assert np.all(m["n_bankrupt_accounts"] <= n_open + 1)
    assert np.all(m["n_adl_accounts"] <= n + 2)
    assert np.all(m["adl_steps"] <= t)
    # Activity implies its count and vice versa.
    assert np.all((m["backstop_notional"] > 0) <= (m["backstop_accounts"] > 0))
    assert np.all((m["adl_notional"] > 0) <= (m["n_adl_accounts"] > 0))
    assert np.all((m["adl_notional"] > 0) <= (m["n_bankrupt_accounts"] > 0))
    assert np.all((m["market_liquidation_notional"] > 0) <= (m["market_liquidation_orders"] > 0))

    # Vault equity: the minimum is below the start and the end values.
    vault_av0 = account_value(cash0, size0, entry0, case.oracle[:, 0])[:, -2]
    assert np.all(m["vault_equity_min"] <= vault_av0 + tiny)

    if out.history is not None:
        h = {k: np.asarray(v, dtype=np.float64) for k, v in out.history.items()}
        mark = h["mark"]
        assert mark.shape == (s, t, a) and np.all(mark > 0)
        np.testing.assert_allclose(mark[:, 0], case.oracle[:, 0], rtol=rel, err_msg="step 0 marks at the oracle")
        if case.venue.impact == 0:
            np.testing.assert_allclose(mark, case.oracle, rtol=rel, err_msg="no impact: mark is the oracle")
        # Metrics recomputed from the final book at the last mark.
        av = account_value(cash, size, entry, mark[:, -1])
        np.testing.assert_allclose(m["bad_debt_residual"], np.sum(np.maximum(-av[:, :-1], 0.0), axis=1),
                                   rtol=rel, atol=tiny, err_msg="bad_debt_residual")
        np.testing.assert_allclose(m["vault_pnl"], av[:, -2] - vault_av0, rtol=rel, atol=tiny, err_msg="vault_pnl")
        np.testing.assert_allclose(h["vault_equity"][:, -1], av[:, -2], rtol=rel, atol=tiny)
        np.testing.assert_allclose(m["vault_equity_min"], np.minimum(vault_av0, h["vault_equity"].min(axis=1)),
                                   rtol=rel, atol=tiny, err_msg="vault_equity_min")
        for k in NOTIONALS:
            np.testing.assert_allclose(m[k], h[k].sum(axis=1), rtol=rel, atol=tiny, err_msg=f"history {k}")
        assert np.all((h["adl_notional"] > 0).sum(axis=1) <= m["adl_steps"])
        assert np.all(h["n_bankrupt"].max(axis=1) <= m["n_bankrupt_accounts"])


@settings(max_examples=12, **SETTINGS)
@given(cases(n_scenarios=3))
def test_invariants(case):
    note(case.describe())
    out = simulate(case, history=True)
    note({k: v.tolist() for k, v in metrics_np(out).items()})
    check_invariants(case, out, rel=REL)


# --------------------------------------------------------------------------- batching
@settings(max_examples=3, **SETTINGS)
@given(cases(shapes=(SHAPES[2],), n_scenarios=3))
def test_scenario_alone_matches_batch(case):
    """Scenario i simulated alone gives what it gives inside a batch of three."""
    note(case.describe())
    batch = simulate(case, history=True)
    for i in range(3):
        alone = simulate(case, scenarios=slice(i, i + 1), history=True)
        one = jax.tree_util.tree_map(lambda x: x[i:i + 1], batch)
        assert_outcomes_close(case, alone, one, f"scenario {i} alone vs in the batch")


# --------------------------------------------------------------------------- jit vs no jit
@settings(max_examples=1, **SETTINGS)
@given(cases(shapes=(SHAPES[0],), n_scenarios=3))
def test_no_jit_matches_jit(case):
    """The engine gives the same results run op by op (slow: one drawn case; the hand-worked tests run every case both ways)."""
    note(case.describe())
    jitted = simulate(case, history=True)
    with jax.disable_jit():
        plain = simulate(case, history=True)
    assert_outcomes_close(case, plain, jitted, "disable_jit vs jit")


# --------------------------------------------------------------------------- float32
F32_SHAPES = (SHAPES[1],)


@settings(max_examples=5, **SETTINGS)
@given(cases(shapes=F32_SHAPES, n_scenarios=3))
def test_float32_runs_and_conserves(case):
    """The same case in float32 runs, stays finite, conserves value to ~1e-5 of the scale."""
    note(case.describe())
    out = simulate(case, dtype=np.float32, history=True)
    assert out.book.all_cash.dtype == np.float32
    for k, v in out.metrics.items():
        assert v.dtype == np.float32, k
    check_invariants(case, out, rel=1e-5, dtype=np.float32)


def _counts(out):
    m = metrics_np(out)
    return {k: m[k].tolist() for k in COUNTS}


@settings(max_examples=3, **SETTINGS)
@given(cases(shapes=F32_SHAPES, n_scenarios=3, calm=True))
def test_float32_close_to_float64_on_calm_case(case):
    """On calm paths with deep books, float32 metrics are close to float64's.

    Only cases without knife-edge decisions compare: a case whose float64
    counts change under a 1e-6 relative nudge of the prices is skipped, and
    so is one with a bankrupt row (ADL of a row that takes all the opposite
    interest of a market is a knife edge in float32, where the book is
    zero-sum only to float32 rounding: the row is left with dust and is
    deleveraged again a step later).
    """
    note(case.describe())
    want = simulate(case, history=True)
    assume(np.all(metrics_np(want)["n_bankrupt_accounts"] == 0))
    for nudge in (1 + 1e-6, 1 - 1e-6):
        nudged = adljax.simulate(case.venue, case.book(), Paths(case.oracle * nudge, case.depth), dt=case.dt, history=True)
        assume(_counts(nudged) == _counts(want))
    got = simulate(case, dtype=np.float32, history=True)
    gm, wm = metrics_np(got), metrics_np(want)
    note({k: (gm[k].tolist(), wm[k].tolist()) for k in METRICS})
    assert _counts(got) == _counts(want)
    for k in METRICS:
        if k in COUNTS:
            continue
        atol = 1e-5 * (case.size_scale if k == "zero_sum_error" else case.scale)
        np.testing.assert_allclose(gm[k], wm[k], rtol=1e-4, atol=atol, err_msg=f"float32 vs float64: {k}")
