"""The smooth mode worked by hand, and its gradients in the backstop ratio, partial fraction and insurance fund.

A row exactly at its maintenance requirement has the smooth liquidation
weight 1/2 and sends half the order the hard rule sends a liquidatable row;
and the derivatives of every objective (:mod:`adljax.objectives`) with
respect to ``backstop_ratio``, ``partial_fraction`` (Params) and
``insurance_fund`` (the book) agree with central finite differences of the
smooth engine (float64, relative error < 1e-2) for a vault venue and an
insurance-fund venue.

Every run goes through one compiled program per venue's rules: the
objectives' reverse-mode Jacobian in those three fields, with the
objectives, metrics, final book and history alongside (``has_aux``), and
with the Params, book and paths as arguments, so that the hand-worked book
(padded to the gradient study's shape) and the finite differences reuse it.
"""
from __future__ import annotations

from functools import lru_cache

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import adljax
from adljax import objectives, venues
from adljax.analysis.calibration import apply
from adljax.engine.waterfall import batch_book, prepare, run, scenario_keys
from test_smooth import LEV, crash_study

jax.config.update("jax_enable_x64", True)

FIELDS = ("backstop_ratio", "partial_fraction", "insurance_fund")
NAMES = tuple(objectives.OBJECTIVES)
N_ACCOUNTS, N_SCENARIOS, N_STEPS = 24, 8, 16      # 24 trader rows (cross margin), 2 markets


@lru_cache(maxsize=None)
def _program(rules):
    """``x -> (d objectives / d x, (objectives, metrics, final book, history))``, jitted, for ``rules``.

    ``x`` is ``(backstop_ratio, partial_fraction, insurance_fund)``, set into
    the Params and the start book by :func:`adljax.analysis.calibration.apply`.
    """
    def objs(x, params, book, oracle, depth, keys):
        p, b = apply(params, book, dict(zip(FIELDS, x)))
        bb = batch_book(b, oracle.shape[0])
        final, m, hist = run(p, bb, oracle, depth, keys, None, rules=rules, history=True)
        y = jnp.stack([objectives.evaluate(n, m, p, bb, oracle[:, 0], 0.9) for n in NAMES])
        return y, (y, m, final, hist)

    return jax.jit(jax.jacrev(objs, has_aux=True))


def _engine(venue, book, paths, key=None):
    """The program for ``venue`` (smooth) bound to ``book`` and ``paths``: a function of ``x``."""
    params, _, paths = prepare(venue, book, paths, 1.0, batch=False)
    keys = scenario_keys(key, paths.n_scenarios)
    prog = _program(venue.rules.compiled())
    return lambda x: prog(jnp.asarray(x, params.dt.dtype), params, book, paths.oracle, paths.depth, keys)


# ---- a row at the threshold, by hand ---------------------------------------------------------

def test_a_row_exactly_at_its_maintenance_requirement_sends_half_its_order():
    """Liquidation weight ``smoothstep((1 − AV/MR)/τ + 1/2)`` is exactly 1/2 at ``AV = MR``.

    One market (BTC) at mark 96,000; mm = 1/(2·32) = 1/64 (exact in binary).
      A: long 0.5 at 100,000, cash 2,750: AV = 2,750 − 0.5·4,000 = 750, MR = 0.5·96,000/64 = 750.
         AV/MR = 1: weight 1/2. The hard rule (AV < MR) sends nothing at AV = MR and A's whole 0.5
         just below it (its notional 48,000 is under the 100,000 partial threshold); the smooth
         order at the threshold is half of that, 0.25.
      B: long 0.25 at 100,000, cash 1,250: AV = 250, MR = 375, (1 − 250/375)/0.1 + 1/2 > 1: weight 1,
         its whole 0.25, as the hard rule.
      C: short 0.75 at 100,000, cash 1e6: far in profit, weight 0.
    Orders: sells 0.25 + 0.25 = 0.5 BTC = 48,000 USD, depth 96,000: all fill (φ = 1) at
      p = 96,000·(1 − 0.01·48,000/(2·96,000)) = 96,000·0.9975 = 95,760.
    A: cash 2,750 + 0.25·(95,760 − 100,000) = 1,690, keeps 0.25 at entry 100,000.
    B: cash 1,250 − 1,060 = 190, flat. LP: long 0.5 at 95,760, cash 0.
    Impact: flow −48,000 over depth 96,000 moves log-mark by 0.01·(−0.5) = −0.005, which decays by
      2^(−1/60) before step 2: mark₂ = 96,000·exp(−0.005·2^(−1/60)).
    Step 2 on: A has AV/MR ≈ 1.5 (half its position gone), outside the band: nothing more is sent.
    """
    n_traders = N_ACCOUNTS
    cash = np.full(n_traders, 777.0)                      # padding rows: cash, no position
    size = np.zeros((n_traders, 2))
    entry = np.zeros((n_traders, 2))
    cash[:3] = [2_750.0, 1_250.0, 1e6]
    size[:3, 0] = [0.5, 0.25, -0.75]
    entry[:3, 0] = 100_000.0
    book = adljax.Book.from_accounts(cash=cash, size=size, entry=entry, vault_cash=1e6, dtype=np.float64)
    oracle = np.broadcast_to([96_000.0, 4_000.0], (N_SCENARIOS, N_STEPS, 2)).copy()
    depth = np.broadcast_to([96_000.0, 1e5], (N_SCENARIOS, N_STEPS, 2)).copy()
    venue = venues.hyperliquid(max_leverage=32.0).replace(temperature=0.1)
    f = _engine(venue, book, adljax.Paths(oracle, depth))
    _, (_, m, final, hist) = f([venue.backstop_ratio, venue.partial_fraction, 0.0])
    m = {k: np.asarray(v) for k, v in m.items()}

    np.testing.assert_allclose(m["market_liquidation_notional"], 48_000.0, rtol=1e-12)   # 0.25 + 0.25 BTC at 96,000
    np.testing.assert_allclose(m["market_liquidation_orders"], 1.5, rtol=1e-12)          # weights 1/2 + 1
    for k in ("partial_liquidation_orders", "backstop_notional", "adl_notional", "bad_debt", "liquidation_fees"):
        np.testing.assert_array_equal(m[k], 0.0, err_msg=k)
    assert float(np.max(m["conservation_error"])) < 1e-8

    cash_f = np.asarray(final.all_cash)
    size_f = np.asarray(final.size_am)[:, 0]              # BTC, [S, R]
    entry_f = np.asarray(final.entry_am)[:, 0]
    np.testing.assert_allclose(size_f[:, :3], np.broadcast_to([0.25, 0.0, -0.75], (N_SCENARIOS, 3)), atol=1e-15)
    np.testing.assert_allclose(cash_f[:, :3], np.broadcast_to([1_690.0, 190.0, 1e6], (N_SCENARIOS, 3)), rtol=1e-12)
    np.testing.assert_allclose(entry_f[:, 0], 100_000.0, rtol=1e-15)
    np.testing.assert_allclose(size_f[:, -1], 0.5, rtol=1e-12)              # the liquidity providers
    np.testing.assert_allclose(entry_f[:, -1], 95_760.0, rtol=1e-12)
    np.testing.assert_allclose(cash_f[:, -1], 0.0, atol=1e-9)
    np.testing.assert_array_equal(cash_f[:, 3:-2], 777.0)

    mark = np.asarray(hist["mark"])[:, :, 0]
    np.testing.assert_array_equal(mark[:, 0], 96_000.0)
    np.testing.assert_allclose(mark[:, 1], 96_000.0 * np.exp(-0.005 * 2.0 ** (-1.0 / 60.0)), rtol=1e-12)
    filled = np.asarray(hist["market_liquidation_notional"])
    np.testing.assert_allclose(filled[:, 0], 48_000.0, rtol=1e-12)
    np.testing.assert_array_equal(filled[:, 1:], 0.0)


# ---- gradients ------------------------------------------------------------------------------

# The venue, the start vault, the insurance fund, and which objectives must respond to which field.
# The vault venue (Hyperliquid, a small vault: ADL in one of the 8 scenarios) has no use for the fund;
# the fund venue (Drift, partial orders above 100k as Hyperliquid's) none for the backstop ratio.
CASES = {
    "vault": (lambda: venues.hyperliquid(max_leverage=LEV), 5e4, 2e3,
              {"backstop_ratio": ("bad_debt", "vault_loss_es", "adl_notional"),
               "partial_fraction": ("bad_debt", "vault_loss_es", "adl_notional")}),
    "insurance": (lambda: venues.drift(max_leverage=LEV, partial_threshold=1e5), 3e5, 2e3,
                  {"partial_fraction": ("p_adl", "bad_debt"), "insurance_fund": ("p_adl", "bad_debt")}),
}


@pytest.mark.parametrize("case", list(CASES))
def test_gradients_in_backstop_ratio_partial_fraction_and_fund_match_finite_differences(case):
    """d objective / d (backstop_ratio, partial_fraction, insurance_fund) by jacrev, against central differences."""
    make_venue, vault, fund, responds = CASES[case]
    st = crash_study(n_accounts=N_ACCOUNTS, vault=vault, n_scenarios=N_SCENARIOS, n_steps=N_STEPS,
                     venue=make_venue())
    venue = st.venue.replace(temperature=0.2)
    assert venue.rules.backstop == case
    f = _engine(venue, st.book, st.paths, st.key)
    x0 = np.array([venue.backstop_ratio, venue.partial_fraction, fund])
    jac, (y0, _, _, _) = f(x0)
    jac, y0 = np.asarray(jac), np.asarray(y0)
    scale = np.maximum(1.0, np.abs(y0))
    for j, field in enumerate(FIELDS):
        h = x0[j] * 1e-6                        # the engine has kinks (min, max, clip) at coarser scales
        e = np.zeros(3)
        e[j] = h
        fd = (np.asarray(f(x0 + e)[1][0]) - np.asarray(f(x0 - e)[1][0])) / (2 * h)
        for i, name in enumerate(NAMES):
            if abs(fd[i]) < 1e-9 * scale[i] / x0[j]:
                assert abs(jac[i, j]) < 1e-6 * scale[i] / x0[j], (field, name, jac[i, j], fd[i])
                continue
            assert abs(jac[i, j] - fd[i]) <= 1e-2 * abs(fd[i]), (field, name, jac[i, j], fd[i])
        # Not vacuous: the objectives the field moves have a gradient; the others, none at all.
        for i, name in enumerate(NAMES):
            if name in responds.get(field, ()):
                assert abs(jac[i, j]) > 1e-6 * scale[i] / x0[j], (field, name, jac[i, j])
            elif field not in responds or name in ("margin_locked", "vault_capital"):
                assert jac[i, j] == 0.0, (field, name, jac[i, j])
    if case == "insurance":                     # a larger fund, less ADL (here: socialized loss)
        assert jac[NAMES.index("p_adl"), FIELDS.index("insurance_fund")] < 0
