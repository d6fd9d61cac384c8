"""Quiet steps (EngineConfig.skip_quiet_steps): the position engine skips the margin check while every mark stays
within the book's reach of the last check's. The reach by hand, and the same numbers, bit for bit, as the run that
checks every step."""
from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import adljax
from adljax import EngineConfig, Paths, PositionBook, venues
from adljax.engine.market import Market
from adljax.engine.positions import margin

EVERY_STEP = EngineConfig(skip_quiet_steps=False)


def _reach(venue, book, mark):
    m = jnp.asarray(mark, book.all_cash.dtype)
    params = venue.params(book.n_markets, dt=1.0, dtype=book.all_cash.dtype)
    market = Market(mark=m, prev_mark=m, depth=m, adl_start=0)
    return float(margin.reach(book, market, params, margin.values(book, market, params)))


def test_reach_by_hand():
    """Trader 0 long 10 @ 100 with $50, trader 1 short 10 @ 100 with $10,000 (maintenance 1 %). At 100, trader 0's
    slack is AV − MR = 50 − 10 = 40 against G = 10·100·1.01 = 1,010: reach 40/1,010; trader 1's is far larger."""
    venue = venues.hyperliquid(maintenance_margin=0.01)
    book = PositionBook.from_positions([0, 1], [0, 0], [10.0, -10.0], [100.0, 100.0], [50.0, 10_000.0],
                                       dtype=jnp.float64)
    assert _reach(venue, book, [100.0]) == pytest.approx(40.0 / 1_010.0, rel=1e-12)
    # At 97: AV 20, MR 9.7, G = 979.7.
    assert _reach(venue, book, [97.0]) == pytest.approx(10.3 / 979.7, rel=1e-12)
    # At or under its requirement (AV 10 = MR 10 at 100 with $10 of cash): 0.
    low = PositionBook.from_positions([0, 1], [0, 0], [10.0, -10.0], [100.0, 100.0], [10.0, 10_000.0],
                                      dtype=jnp.float64)
    assert _reach(venue, low, [100.0]) == 0.0
    # A row without a position but with cash below 0 (the insurance fund pays it): 0; with cash >= 0: no limit.
    owes = PositionBook.from_positions([0, 1], [0, 0], [10.0, -10.0], [100.0, 100.0], [50.0, 10_000.0, -1.0],
                                       dtype=jnp.float64)
    assert _reach(venue, owes, [100.0]) == 0.0
    idle = PositionBook.from_positions([0, 1], [0, 0], [10.0, -10.0], [100.0, 100.0], [50.0, 10_000.0, 0.0],
                                       dtype=jnp.float64)
    assert _reach(venue, idle, [100.0]) == pytest.approx(40.0 / 1_010.0, rel=1e-12)
    # Tiers: the highest rate bounds the requirement's growth. 1 % to $500 of notional, 5 % above: at 100 the
    # requirement is 1,000·5 % − 500·4 % = 30 (slack 20), and G = 1,000·1.05.
    tiered = venues.hyperliquid(margin_tiers=[(0.0, 0.01), (500.0, 0.05)], tier_mode="deduction")
    assert _reach(tiered, book, [100.0]) == pytest.approx(20.0 / 1_050.0, rel=1e-12)


def _drift_then_crash(dtype, n_steps=60):
    """A two-market population, marks drifting down slowly (the first steps within reach), then falling 40 %."""
    book = adljax.generate.population(jax.random.key(5), 60, [100_000.0, 4_000.0], [50.0, 30.0],
                                      median_notional=50_000.0, leverage_mode=20.0, markets_per_account=2,
                                      vault_cash=5e3, dtype=dtype, positions=True)
    t = np.arange(n_steps)
    fall = np.where(t < 30, 0.001 * t, 0.03 + 0.37 * (t - 30) / (n_steps - 30))
    oracle = np.array([100_000.0, 4_000.0]) * (1.0 - fall[None, :, None] * np.array([1.0, 1.2])) * np.ones((3, 1, 1))
    oracle[1] *= 1.0 + 0.004 * np.sin(t)[:, None]                       # a scenario that wiggles
    return book, Paths(np.asarray(oracle, dtype), np.full(oracle.shape, 2e5, dtype))


def test_quiet_steps_give_the_numbers_of_checking_every_step():
    # float32, whose rounding the reach's margin must cover (float64's is 2**29 times finer).
    book, paths = _drift_then_crash(np.float32)
    venue = venues.hyperliquid()
    # The first steps are quiet: the start book's reach is above the first steps' moves.
    compact = book.without_idle_rows()[0]
    first_moves = np.max(np.abs(np.asarray(paths.oracle[:, 1:5]) / np.asarray(paths.oracle[:, :1]) - 1.0))
    assert _reach(venue, compact, np.asarray(paths.oracle[0, 0])) > first_moves
    lazy = adljax.simulate(venue, book, paths, history=True)
    full = adljax.simulate(venue, book, paths, history=True, config=EVERY_STEP)
    m = {k: float(np.sum(v)) for k, v in full.metrics.items()}
    assert m["market_liquidation_orders"] > 0 and m["backstop_accounts"] > 0 and m["adl_notional"] > 0
    for k in full.metrics:
        np.testing.assert_array_equal(lazy.metrics[k], full.metrics[k], err_msg=k)
    for k in full.history:
        np.testing.assert_array_equal(lazy.history[k], full.history[k], err_msg=k)
    for f in ("all_cash", "position_size", "position_entry", "cooldown", "insurance_fund"):
        np.testing.assert_array_equal(getattr(lazy.book, f), getattr(full.book, f), err_msg=f)


def test_step_tiers_jump_and_are_bounded_by_their_highest_rate():
    """BitMEX's XBTUSD steps (0.5 % below 19,569,952 USD of notional, then 1 % of the whole position, up to 2 %
    from 48.9M): a short of 190 XBT with AV 720,000 at 100,000 is safe at 102,999 (MR 97,849) and liquidated whole
    at 103,000 (MR 195,700, AV 150,000). The reach takes the slack against the top rate, 2 % of the notional:
    (720,000 − 380,000) / (19,000,000·1.02) at 100,000. Against the requirement below the bound (95,000) it would
    be 0.032, and the step at 103,000 (a move of 0.0299 from 100,000) would be skipped."""
    venue = venues.bitmex(impact=0.0, slippage=0.0, liquidation_fee=0.0)
    book = PositionBook.from_positions([0, 1], [0, 0], [-190.0, 190.0], [100_000.0, 100_000.0], [720_000.0, 1e9, 10.0],
                                       dtype=jnp.float64)
    assert _reach(venue, book, [100_000.0]) == pytest.approx(340_000.0 / 19_380_000.0, rel=1e-12)
    oracle = np.array([[[100_000.0], [100_500.0], [101_000.0], [102_999.0], [103_000.0]]])
    paths = Paths(oracle, np.full_like(oracle, 1e12))
    for config in (EngineConfig(), EVERY_STEP):
        out = adljax.simulate(venue, book, paths, history=True, config=config)
        np.testing.assert_array_equal(np.asarray(out.history["market_liquidation_notional"][0]) > 0,
                                      [False, False, False, False, True])
        assert float(out.metrics["market_liquidation_notional"][0]) == pytest.approx(19_570_000.0, rel=1e-12)


def test_skip_quiet_steps_is_a_bool():
    with pytest.raises(adljax.InputError, match="config.skip_quiet_steps"):
        EngineConfig(skip_quiet_steps=1)


def test_a_vault_that_unwinds_checks_every_step():
    """The vault sells its position into each step's depth (``vault_unwind``) though no row is near its requirement:
    a stage acts in every step, so none is quiet, and the unwind goes on as when every step is checked."""
    venue = venues.hyperliquid(maintenance_margin=0.01, vault_unwind=0.01, impact=0.0)
    book = PositionBook.from_positions([0, 1], [0, 0], [10.0, -10.0], [100.0, 100.0], [5_000.0, 10_000.0],
                                       vault_cash=1e6, vault_size=[50.0], vault_entry=[100.0], lp_size=[-50.0],
                                       lp_entry=[100.0], dtype=jnp.float64)
    oracle = np.full((1, 20, 1), 100.0)
    paths = Paths(oracle, np.full_like(oracle, 1_000.0))            # $10 a step: 0.1 units of the vault's 50
    lazy = adljax.simulate(venue, book, paths, history=True)
    full = adljax.simulate(venue, book, paths, history=True, config=EVERY_STEP)
    assert float(full.book.vault_size[0, 0]) == pytest.approx(50.0 - 20 * 0.1)
    np.testing.assert_array_equal(lazy.book.position_size, full.book.position_size)
    np.testing.assert_array_equal(lazy.history["market_liquidation_notional"],
                                  full.history["market_liquidation_notional"])
