"""Tiered maintenance margin worked by hand, in the fast engine and the reference engine alike.

A position of notional ``N`` in tier ``k`` (the last whose lower bound ``b_k ≤ N``) needs
``N·r_k − d_k``, ``d_k = d_{k−1} + b_k·(r_k − r_{k−1})`` (deduction mode), or ``N·r_k`` (step mode,
BitMEX). Every case runs one market with impact off, so the marks are the oracle's.
"""
from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import adljax
from adljax import Book, Paths, venues
from adljax.analysis import calibration, objectives
from adljax.engine.waterfall import prepare, run, scenario_keys

jax.config.update("jax_enable_x64", True)

BTC = ((0.0, 0.0125), (150e6, 0.025))       # Hyperliquid's BTC table: 40× to $150M, then 20×


def _both(venue, book, oracle, depth=1e12):
    """Outcomes of the fast and the reference engine on one scenario of the given oracle path [T]."""
    o = np.asarray(oracle, np.float64)[None, :, None]
    paths = Paths(oracle=o, depth=np.full_like(o, depth))
    return adljax.simulate(venue, book, paths, dt=1.0), adljax.reference.simulate(venue, book, paths, dt=1.0)


def _whale_book(cash):
    """A $200M BTC long (2,000 BTC at 100,000) against a deep short; a cash-only row; a deep vault."""
    return Book.from_accounts(np.array([cash, 50e6, 10.0]), np.array([[2000.0], [-2000.0], [0.0]]),
                              np.array([[100_000.0], [100_000.0], [0.0]]), vault_cash=1e9)


def test_the_hyperliquid_preset_carries_btcs_table():
    venue = venues.hyperliquid()
    bounds, rates = venue.tiers(3)
    np.testing.assert_array_equal(bounds, [[0, 150e6]] * 3)
    np.testing.assert_array_equal(rates, [[0.0125, 0.025]] * 3)
    # One tier per market again when max_leverage or maintenance_margin is given.
    assert venue.replace(max_leverage=20).margin_tiers is None
    np.testing.assert_array_equal(venue.replace(max_leverage=20).tiers(1)[1], [[0.025]])
    # Each coin's own table by name.
    eth, doge = venues.hyperliquid(markets=["ETH", "DOGE"]).margin_tiers
    assert eth == ((0.0, 0.02), (100e6, 1 / 30)) and doge == ((0.0, 0.05), (20e6, 0.1))


def test_a_200m_btc_long_needs_3_125m_and_is_liquidatable_only_because_of_its_tier():
    """MR = 200M·2.5 % − 150M·(2.5 % − 1.25 %) = 5M − 1.875M = 3.125M (one rate: 2.5M).

    The long's AV is its cash, 3.0M, at mark 100,000: below the tiered requirement, above the one-rate
    one. Hyperliquid sends 20 % of a position over $100k: 400 BTC = $40M, filled at the mark
    (slippage 0.01·40M/(2·1e12) is below a cent). The 30 s cooldown holds the next order.
    """
    book = _whale_book(3.0e6)
    venue = venues.hyperliquid(impact=0.0)
    params = venue.params(1)
    mr = adljax.engine.accounting.maintenance(jnp.array([[2000.0]]), jnp.array([100_000.0]), params)
    np.testing.assert_allclose(mr, [3.125e6], rtol=1e-12)
    for out in _both(venue, book, [100_000.0, 100_000.0]):
        m = {k: float(np.asarray(v)[0]) for k, v in out.metrics.items()}
        assert m["partial_liquidation_orders"] == 1
        np.testing.assert_allclose(m["market_liquidation_notional"], 40e6, rtol=1e-9)
        np.testing.assert_allclose(np.asarray(out.book.size)[0, 0, 0], 1600.0, rtol=1e-12)
    for out in _both(venue.replace(max_leverage=40), book, [100_000.0, 100_000.0]):
        assert float(np.asarray(out.metrics["market_liquidation_orders"])[0]) == 0


def test_the_vault_refuses_a_takeover_its_own_tier_cannot_carry():
    """The vault's own requirement is tiered too, and grows faster than the requirements it takes on.

    At mark 99,000 (depth 0: no liquidation order fills):
      vault: long 1,000 BTC at 100,000, cash 4.0M: AV = 4.0M − 1M = 3.0M.
      traders A and B: each long 500 BTC at 100,000, cash 0.5M: AV = 0 < 2/3·MR (49.5M·1.25 %): candidates.
    Taking A, the vault holds 1,500 BTC = $148.5M (under the $150M bound): MR = 1.25 % = 1.856M ≤ 3.0M.
    Taking B too, 2,000 BTC = $198M: tiered MR = 198M·2.5 % − 150M·1.25 % = 3.075M > 3.0M: it stops at B.
    One rate: MR = 198M·1.25 % = 2.475M ≤ 3.0M: it takes both. (The sum of the three rows' own
    requirements is 2.475M in either case: it does not bound the vault's tiered one.)
    """
    cash = np.array([0.5e6, 0.5e6, 1e9, 10.0])
    size = np.array([[500.0], [500.0], [-2000.0], [0.0]])
    entry = np.array([[100_000.0], [100_000.0], [100_000.0], [0.0]])
    book = Book.from_accounts(cash, size, entry, vault_cash=4.0e6, vault_size=[1000.0], vault_entry=[100_000.0])
    tiered = venues.hyperliquid(impact=0.0, slippage=0.0)
    for venue, taken in ((tiered, 1), (tiered.replace(max_leverage=40), 2)):
        for out in _both(venue, book, [99_000.0], depth=0.0):
            assert float(np.asarray(out.metrics["backstop_accounts"])[0]) == taken, venue.margin_tiers


def test_bitmex_steps_raise_the_whole_position_at_the_bound():
    """BitMEX's XBTUSD steps: 0.5 % below 19,569,952 USD, then 1 % of the whole position.

    A short of 190 XBT at 100,000, cash so that AV = 720,000 at 100,000.
      mark 102,999: N = 19,569,810 (below the bound), MR = 0.5 % = 97,849.05; AV = 720,000 − 190·2,999
        = 150,190: safe.
      mark 103,000: N = 19,570,000 (above), step: MR = 1 % = 195,700; AV = 150,000: liquidated, whole
        (BitMEX sends whole positions), 19.57M filled.
      Deduction mode with the same table: MR = 195,700 − 19,569,952·0.5 % = 97,850.24: safe.
    """
    cash = np.array([720_000.0, 1e9, 10.0])
    size = np.array([[-190.0], [190.0], [0.0]])
    entry = np.array([[100_000.0], [100_000.0], [0.0]])
    book = Book.from_accounts(cash, size, entry)
    step = venues.bitmex(impact=0.0, slippage=0.0, liquidation_fee=0.0)
    assert step.rules.tier_mode == "step"
    for out in _both(step, book, [100_000.0, 102_999.0]):
        assert float(np.asarray(out.metrics["market_liquidation_orders"])[0]) == 0
    for out in _both(step, book, [100_000.0, 102_999.0, 103_000.0]):
        m = {k: float(np.asarray(v)[0]) for k, v in out.metrics.items()}
        assert m["market_liquidation_orders"] == 1
        np.testing.assert_allclose(m["market_liquidation_notional"], 19_570_000.0, rtol=1e-12)
    for out in _both(step.replace(tier_mode="deduction"), book, [100_000.0, 102_999.0, 103_000.0]):
        assert float(np.asarray(out.metrics["market_liquidation_orders"])[0]) == 0


def test_a_tiered_bankrupt_row_is_deleveraged_at_its_bankruptcy_price():
    """The bankruptcy price leaves the row at exactly 0, ``p = m + D/size``: the tier decides when a row is
    liquidated, not the price at which it is made whole.

    Binance's brackets, no insurance fund, depth 0 (no liquidation order fills), at mark 90,000:
      long 100 BTC at 100,000 ($9M, bracket from $3M at 1 %), cash 500,000: AV = 500,000 − 1,000,000
      = −500,000, D = 500,000; p = 90,000 + 500,000/100 = 95,000.
      The short (100 BTC at 100,000, cash 1e8) closes 100 at 95,000 and realises 100·5,000 = 500,000.
    The bankrupt row ends flat with cash 500,000 − 100·5,000 = 0.
    """
    cash = np.array([500_000.0, 1e8, 10.0])
    size = np.array([[100.0], [-100.0], [0.0]])
    entry = np.array([[100_000.0], [100_000.0], [0.0]])
    book = Book.from_accounts(cash, size, entry)
    venue = venues.binance(impact=0.0, slippage=0.0, liquidation_fee=0.0)
    for out in _both(venue, book, [90_000.0], depth=0.0):
        fin = out.book
        np.testing.assert_allclose(np.asarray(fin.cash)[0, 0], 0.0, atol=1e-6)
        np.testing.assert_array_equal(np.asarray(fin.size)[0, :2, 0], [0.0, 0.0])
        np.testing.assert_allclose(np.asarray(fin.cash)[0, 1], 1e8 + 5e5, rtol=1e-12)


def test_margin_locked_and_its_gradient_reach_every_tier():
    """``margin_locked`` of the whale book is 3.125M + the short's 3.125M; d/d r_1 = Σ (N − b_1)⁺ = 2·50M,
    d/d r_0 = Σ min(N, b_1) = 2·150M."""
    venue = venues.hyperliquid()
    params = venue.params(1)
    book = _whale_book(3.0e6)
    mark = jnp.array([100_000.0])
    f = lambda r0, r1: objectives.margin_locked(
        dataclasses.replace(params, maintenance_margin=r0, tier_rates=r1), book, mark)
    np.testing.assert_allclose(f(params.maintenance_margin, params.tier_rates), 6.25e6, rtol=1e-12)
    g0, g1 = jax.grad(f, argnums=(0, 1))(params.maintenance_margin, params.tier_rates)
    np.testing.assert_allclose(g0, [300e6], rtol=1e-12)
    np.testing.assert_allclose(g1, [[100e6]], rtol=1e-12)


def test_the_smooth_engine_is_differentiable_in_a_tiers_rate():
    """d(market liquidation notional)/d r_1 of the smooth engine agrees with central differences.

    The whale of the test above with cash 3.0M is near its tiered threshold: a higher second-tier rate
    raises its requirement, its smooth liquidation weight and the notional sent.
    """
    venue = venues.hyperliquid(impact=0.0, temperature=0.3)
    book = _whale_book(3.0e6)
    o = np.full((1, 2, 1), 100_000.0)
    paths = Paths(oracle=o, depth=np.full_like(o, 1e12))
    params, _, paths = prepare(venue, book, paths, 1.0, batch=False)
    keys = scenario_keys(None, 1)
    rules = venue.rules.compiled()
    bb = adljax.engine.waterfall.batch_book(book, 1)

    @jax.jit
    def notional(r1):
        p = calibration.apply(params, book, {"margin_tier_rates": r1})[0]
        _, m, _ = run(p, bb, paths.oracle, paths.depth, keys, None, rules=rules, history=False)
        return m["market_liquidation_notional"][0]

    r1 = jnp.asarray(0.025)
    g = jax.grad(notional)(r1)
    h = 1e-5
    fd = (notional(r1 + h) - notional(r1 - h)) / (2 * h)
    assert abs(float(g)) > 1e6          # the tier's rate moves the outcome
    np.testing.assert_allclose(g, fd, rtol=1e-3)


def test_calibrated_tier_rates_come_back_as_the_venues_tables():
    """A calibration answer on a tiered venue is the venue's tables with the new rates, each rate at
    least the one below it (the engine's running maximum)."""
    venue = venues.hyperliquid(markets=["BTC", "DOGE"])
    book = Book.from_accounts(np.array([1e6]), np.zeros((1, 2)), np.zeros((1, 2)))
    start = calibration.start_values(venue, book, 2, ["margin_tier_rates"])
    np.testing.assert_array_equal(start["margin_tier_rates"], [[0.025], [0.1]])
    out, _ = calibration._apply_to_venue(venue, book, {"margin_tier_rates": np.array([[0.03], [0.04]]),
                                                       "maintenance_margin": np.array([0.01, 0.06])})
    assert out.margin_tiers == (((0.0, 0.01), (150e6, 0.03)), ((0.0, 0.06), (20e6, 0.06)))
    with pytest.raises(adljax.InputError, match="margin_tier_rates: the venue's markets have one margin tier"):
        calibration.start_values(venue.replace(max_leverage=20), book, 2, ["margin_tier_rates"])


@pytest.mark.parametrize("kw, match", [
    (dict(margin_tiers=[(0, 0.01), (1e6, 0.02)], maintenance_margin=0.01),
     "give margin_tiers or maintenance_margin, not both"),
    (dict(margin_tiers=[(1, 0.01)]), r"margin_tiers: the first tier's lower bound must be 0"),
    (dict(margin_tiers=[(0, 0.01), (0, 0.02)]), "margin_tiers: lower bounds must rise"),
    (dict(margin_tiers=[(0, 0.02), (1e6, 0.01)]), "margin_tiers: rates must not fall"),
    (dict(margin_tiers=[(0, 1.5)]), r"margin_tiers: rates are fractions of notional in \(0, 1\)"),
    (dict(margin_tiers=[(0, float("nan"))]), "margin_tiers: bounds and rates must be finite"),
    (dict(margin_tiers="BTC"), "margin_tiers: expected a table"),
    (dict(margin_tiers=[[(0, 0.01)], [(0, 0.02), (5, 0.01)]]), r"margin_tiers\[1\]: rates must not fall"),
    (dict(tier_mode="stairs"), "tier_mode: 'stairs' is not one of"),
])
def test_bad_tables_name_the_field(kw, match):
    with pytest.raises(adljax.InputError, match=match):
        venues.hyperliquid(**kw).params(2)


def test_a_table_per_market_must_match_the_markets():
    venue = venues.hyperliquid(margin_tiers=[[(0, 0.01)], [(0, 0.02)], [(0, 0.03)]])
    with pytest.raises(adljax.InputError, match=r"margin_tiers: expected one table for every market or 2 tables"):
        venue.params(2)
    with pytest.raises(adljax.InputError, match="no published Hyperliquid margin table for 'FOO'"):
        venues.hyperliquid(markets=["BTC", "FOO"])
