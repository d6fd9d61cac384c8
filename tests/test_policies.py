"""Every ADL policy, fill price and backstop mode on hand-worked books (fast engine and reference; the
insurance fund and the socialized loss also without jit)."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import adljax
from adljax import Book, Paths, venues

from test_handworked import BIG, ENGINES, adl_book, m, paths  # noqa: F401  (sim fixture below)


@pytest.fixture(params=["jit", "reference"])
def sim(request):
    return ENGINES[request.param]


@pytest.fixture(params=list(ENGINES))
def sim_all(request):
    """Also without jit (test_handworked's docstring says why only some tests)."""
    return ENGINES[request.param]


BASE = dict(max_leverage=10, impact=0.0, slippage=0.0)


def test_socialized_loss_charges_every_open_position_per_contract(sim_all):
    sim = sim_all
    # X (long 20) is at AV -100 at 90. Drift's rule: D = 100 over the open interest of the
    # rows that can pay: shorts 5 + 10 + 15 and the long L 10 = 40 contracts -> 2.5 each.
    v = venues.hyperliquid(**BASE, backstop="none", adl_policy="socialized")
    out = sim(v, adl_book(), paths([100, 90], [BIG, 0.0]))
    b = out.book
    np.testing.assert_allclose(np.asarray(b.size)[0, :, 0], [20, -5, -10, -15, 10, 0])   # nothing closed
    np.testing.assert_allclose(np.asarray(b.cash)[0], [200, 87.5, 475, 1962.5, 9975, 777], rtol=1e-12)
    np.testing.assert_allclose(m(out, "socialized_loss"), 100.0, rtol=1e-12)
    np.testing.assert_allclose(m(out, "bad_debt_adl"), 100.0, rtol=1e-12)
    assert m(out, "adl_notional") == 0.0 and m(out, "n_adl_accounts") == 4
    assert m(out, "adl_markets") == 1 and m(out, "adl_notional_vault") == 0.0    # one market charged, none closed


def test_insurance_fund_pays_first_then_adl_takes_the_rest(sim_all):
    sim = sim_all
    # Fund 60 pays 60 of X's 100 deficit: X cash 160, AV -40. Then the queue at X's
    # bankruptcy price 90 + 40/20 = 92: S1 closes 5 (+5*18 = 90), S2 10 (+10*8 = 80), S3 5 (-5*2 = -10).
    book = Book.from_accounts(cash=[100.0, 100.0, 500.0, 2000.0, 10_000.0, 777.0],
                              size=[[20.0], [-5.0], [-10.0], [-15.0], [10.0], [0.0]],
                              entry=[[100.0], [110.0], [100.0], [90.0], [100.0], [0.0]],
                              insurance_fund=60.0, dtype=np.float64)
    v = venues.hyperliquid(**BASE, backstop="insurance", adl_price="bankruptcy")
    out = sim(v, book, paths([100, 90], [BIG, 0.0]))
    np.testing.assert_allclose(np.asarray(out.book.cash)[0], [0, 190, 580, 1990, 10_000, 777], rtol=1e-12, atol=1e-9)
    np.testing.assert_allclose(np.asarray(out.book.insurance_fund)[0], 0.0, atol=1e-12)
    np.testing.assert_allclose(m(out, "bad_debt_backstop"), 60.0, rtol=1e-12)
    np.testing.assert_allclose(m(out, "bad_debt_adl"), 40.0, rtol=1e-12)
    assert m(out, "conservation_error") < 1e-9


#: key seed -> (the first row of step 1, the three shorts' sizes after ADL). The start is
#: randint(fold_in(fold_in(key, 0), t=1), 0, R) by docs/rules.md, R = 6 traders + vault + LP = 8;
#: from it rows are taken in index order, wrapping, each closing up to its whole short, until the
#: bankrupt X's 20 units are matched (shorts S1 5 @ row 1, S2 10 @ row 2, S3 15 @ row 3). The starts
#: are 64-bit JAX's (the tests enable x64, and randint then draws int64).
RANDOM_STARTS = {
    10: (2, [-5.0, 0.0, -5.0]),      # S2 10, S3 10; S1 never reached
    17: (3, [0.0, -10.0, 0.0]),      # S3 15, then rows 4..7 and 0 hold no short, then S1 5
    9: (1, [0.0, 0.0, -10.0]),       # S1 5, S2 10, S3 5: the queue's own answer
}
# (three keys, three different allocations: an engine that ignored the key or started at row 0 fails two)


@pytest.mark.parametrize("seed", sorted(RANDOM_STARTS))
def test_dydx_random_order_from_the_key(sim, seed):
    start, shorts_after = RANDOM_STARTS[seed]
    key = jax.random.key(seed)
    assert int(jax.random.randint(jax.random.fold_in(jax.random.fold_in(key, 0), 1), (), 0, 8)) == start
    v = venues.hyperliquid(**BASE, backstop="none", adl_policy="random_order")
    out = sim(v, adl_book(), paths([100, 90], [BIG, 0.0]), key=key)
    np.testing.assert_allclose(np.asarray(out.book.size)[0, 1:4, 0], shorts_after, atol=1e-12)
    np.testing.assert_allclose(np.asarray(out.book.size)[0, 0, 0], 0.0, atol=1e-12)
    # Reproducible from the key.
    again = sim(v, adl_book(), paths([100, 90], [BIG, 0.0]), key=key)
    np.testing.assert_array_equal(np.asarray(again.book.size), np.asarray(out.book.size))


def test_liquidation_fee_goes_to_the_fund_and_never_creates_bad_debt(sim):
    # A: long 10 @100, cash 60; at 97 it closes whole at 97: AV 30 left.
    book = Book.from_accounts(cash=[60.0, 1e4], size=[[10.0], [-10.0]], entry=[[100.0], [100.0]], dtype=np.float64)
    v = venues.hyperliquid(**BASE, backstop="insurance", liquidation_fee=0.01)
    out = sim(v, book, paths([100, 97], BIG))
    # fee 1 % of 970 = 9.7 -> cash 20.3; the fund gets 9.7.
    np.testing.assert_allclose(np.asarray(out.book.cash)[0, 0], 20.3, rtol=1e-12)
    np.testing.assert_allclose(np.asarray(out.book.insurance_fund)[0], 9.7, rtol=1e-12)
    np.testing.assert_allclose(m(out, "liquidation_fees"), 9.7, rtol=1e-12)
    # 5 % would be 48.5 > the 30 left: the fee takes the 30, nothing more.
    out = sim(v.replace(liquidation_fee=0.05), book, paths([100, 97], BIG))
    np.testing.assert_allclose(np.asarray(out.book.cash)[0, 0], 0.0, atol=1e-12)
    np.testing.assert_allclose(np.asarray(out.book.insurance_fund)[0], 30.0, rtol=1e-12)
    assert m(out, "bad_debt") == 0.0
    # With the vault as backstop the fee goes to the vault.
    out = sim(venues.hyperliquid(**BASE, liquidation_fee=0.01), book, paths([100, 97], BIG))
    np.testing.assert_allclose(np.asarray(out.book.vault_cash)[0], 9.7, rtol=1e-12)


def test_vault_unwinds_at_a_rate_bounded_by_depth(sim):
    # The vault holds 100 long @93. vault_unwind 0.5 of depth 1000 USD at 100: 5 units a step.
    book = Book.from_accounts(cash=[1e6], size=[[-100.0]], entry=[[100.0]], vault_cash=1000.0,
                              vault_size=[100.0], vault_entry=[93.0], dtype=np.float64)
    v = venues.hyperliquid(**BASE, vault_unwind=0.5)
    out = sim(v, book, paths([100, 100, 100], 1000.0))
    np.testing.assert_allclose(np.asarray(out.book.vault_size)[0, 0], 85.0, rtol=1e-12)
    np.testing.assert_allclose(np.asarray(out.book.vault_cash)[0], 1000.0 + 15 * 7.0, rtol=1e-12)
    np.testing.assert_allclose(m(out, "vault_unwind_notional"), 1500.0, rtol=1e-12)
    assert m(out, "market_liquidation_notional") == 0.0
    held = sim(v.replace(vault_unwind=0.0), book, paths([100, 100, 100], 1000.0))
    np.testing.assert_allclose(np.asarray(held.book.vault_size)[0, 0], 100.0)


def test_adl_queue_indicator_in_fifths():
    # At 90: shorts S1 (score 2.75, 5 contracts), S2 (1.667, 10), S3 (0.675, 15) of 30:
    # through S1 5/30 -> 1st fifth; through S2 15/30 = 50 % -> 3rd; S3 100 % -> 5th.
    # Longs: X (AV < 0: infinite leverage, first) 20/30 -> 4th; L 30/30 -> 5th. E: no position.
    q = adljax.adl_queue(venues.hyperliquid(), adl_book(), [90.0])
    np.testing.assert_array_equal(q[:, 0], [4, 1, 3, 5, 5, 0])
    # By PnL instead: S1 and S2 tie (+100 each): nothing is strictly ahead of either, so
    # 5/30 -> 1st and 10/30 -> 2nd; S3 (pnl 0) has both ahead: 30/30 -> 5th.
    q = adljax.adl_queue(venues.hyperliquid(adl_score="pnl"), adl_book(), [90.0])
    np.testing.assert_array_equal(q[1:4, 0], [1, 2, 5])


def _bitmex_example_book():
    # BitMEX's published ADL example: six longs, scores 3, 6, 1, 4, 5, 2 and quantities
    # 10, 10, 20, 30, 20, 10 (accounts 1..6); a short of 20 liquidated at its bankruptcy price 650.
    # BitMEX publishes only the scores; we pick inputs that give them: mark 700, entry 690
    # (PnL% = 10/690 for all), effective leverage 6 x score, so AV = qty*700/leverage.
    qty = np.array([10, 10, 20, 30, 20, 10], dtype=np.float64)
    lev = 6.0 * np.array([3, 6, 1, 4, 5, 2], dtype=np.float64)
    av = qty * 700.0 / lev
    cash = np.concatenate([av - qty * 10.0, [1000.0, 1e6]])   # + X (short 20 @600) and Y (short 80 @700)
    size = np.concatenate([qty, [-20.0, -80.0]])[:, None]
    entry = np.concatenate([np.full(6, 690.0), [600.0, 700.0]])[:, None]
    return Book.from_accounts(cash=cash, size=size, entry=entry, dtype=np.float64), cash


def test_bitmex_published_adl_example(sim):
    # X: AV = 1000 - 20*100 = -1000 at 700 -> bankruptcy price 700 + 1000/(-20) = 650.
    book, cash = _bitmex_example_book()
    out = sim(venues.bitmex(impact=0.0, slippage=0.0), book, paths([700.0], 0.0))
    size = np.asarray(out.book.size)[0, :, 0]
    # "Account 2 will have their entire position of 10 contracts closed, account 5 10 of their 20."
    np.testing.assert_allclose(size, [10, 0, 20, 30, 10, 10, 0, -80], atol=1e-12)
    got = np.asarray(out.book.cash)[0]
    want = cash.copy()
    want[[1, 4]] += 10 * (650.0 - 690.0)     # both close 10 at 650
    want[6] = 0.0                            # X ends at exactly zero
    np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-9)
    # Published percentiles 80, 20, 100, 60, 40, 80 % -> fifths 4, 1, 5, 3, 2, 4.
    q = adljax.adl_queue(venues.bitmex(), book, [700.0])
    np.testing.assert_array_equal(q[:6, 0], [4, 1, 5, 3, 2, 4])


@pytest.mark.parametrize("name", list(venues.PRESETS))
def test_every_preset_conserves_value_and_spares_flat_accounts(name):
    from adljax.generate import population
    book = population(jax.random.key(3), 60, [100.0, 10.0], 20.0, long_share=[0.7, 0.3], markets_per_account=2,
                      leverage_mode=12.0, vault_cash=2000.0, dtype=np.float64)
    # Two cash-only rows appended (they must not lose a cent), and an insurance fund.
    flat = Book.from_accounts(cash=np.concatenate([np.asarray(book.cash), [123.0, 456.0]]),
                              size=np.concatenate([np.asarray(book.size), np.zeros((2, 2))]),
                              entry=np.concatenate([np.asarray(book.entry), np.zeros((2, 2))]),
                              vault_cash=2000.0, insurance_fund=500.0, dtype=np.float64)
    t = 40
    crash = np.linspace(0.0, -0.35, t)
    oracle = np.stack([100 * np.exp(crash), 10 * np.exp(-crash * 0.8)], axis=-1)[None]
    depth = np.full_like(oracle, 3000.0)
    depth[:, 10:20] = 0.0
    out = adljax.simulate(venues.PRESETS[name](max_leverage=20.0), flat, Paths(oracle, depth), key=jax.random.key(1))
    scale = float(np.abs(np.asarray(flat.all_cash)).sum()
                  + (np.abs(np.asarray(flat.all_size)) * np.asarray(flat.all_entry)).sum())
    assert m(out, "conservation_error") <= 1e-9 * scale
    assert m(out, "zero_sum_error") <= 1e-9 * np.abs(np.asarray(flat.all_size)).sum()
    np.testing.assert_array_equal(np.asarray(out.book.cash)[0, -2:], [123.0, 456.0])
    assert m(out, "market_liquidation_orders") > 0
    for k, v in out.metrics.items():
        assert np.all(np.isfinite(np.asarray(v))), k


def test_funding_is_paid_by_longs_to_shorts_each_step(sim):
    # A long 10 @100, B short 10 @100; rate 0.001 of notional a step, then -0.002.
    # step 0 @100: A pays 10*100*0.001 = 1.00; step 1 @110: A pays 10*110*0.001 = 1.10;
    # step 2 @110: rate -0.002: A receives 10*110*0.002 = 2.20. A: 1000 - 1 - 1.1 + 2.2 = 1000.1.
    book = Book.from_accounts(cash=[1000.0, 1000.0], size=[[10.0], [-10.0]], entry=[[100.0], [100.0]], dtype=np.float64)
    p = paths([100, 110, 110], BIG)
    p = Paths(p.oracle, p.depth, funding=np.array([0.001, 0.001, -0.002])[None, :, None])
    out = sim(venues.hyperliquid(**BASE), book, p)
    np.testing.assert_allclose(np.asarray(out.book.cash)[0], [1000.1, 999.9], rtol=1e-12)
    np.testing.assert_allclose(np.asarray(out.book.vault_cash)[0], 0.0)
    assert m(out, "conservation_error") < 1e-9


def test_funding_can_push_an_account_into_liquidation(sim):
    # A long 100 @100 with cash 600: MR at 100 = 100*100*0.05 = 500. A rate of 0.002 costs
    # 20 a step: 600 -> 580 (step 0) -> 560 -> ... AV < MR after six payments (480 < 500),
    # so step 5 liquidates the whole position (notional 10k < 100k) at 100.
    book = Book.from_accounts(cash=[600.0, 1e6], size=[[100.0], [-100.0]], entry=[[100.0], [100.0]], dtype=np.float64)
    p = paths([100] * 7, BIG)
    p = Paths(p.oracle, p.depth, funding=np.full((1, 7, 1), 0.002))
    out = sim(venues.hyperliquid(**BASE), book, p, history=True)
    liq = np.asarray(out.history["market_liquidation_notional"])[0]
    np.testing.assert_allclose(liq, [0, 0, 0, 0, 0, 10_000.0, 0])
    np.testing.assert_allclose(np.asarray(out.book.cash)[0, 0], 480.0, rtol=1e-12)


def test_a_trade_that_would_leave_dust_closes_the_position_exactly():
    # docs/rules.md, "Dust": |s + q| <= 1e-12 |s| closes exactly; 1e-9 of a position is kept.
    from adljax.engine.accounting import reduce_position, trade
    s, e = jnp.array([1.0, 1.0, -3.0]), jnp.array([100.0, 100.0, 50.0])
    q = jnp.array([-(1.0 - 1e-14), -(1.0 - 1e-9), 3.0 * (1 - 1e-13)])
    new_size, new_entry, dcash = trade(s, e, q, jnp.array([110.0, 110.0, 40.0]))
    np.testing.assert_array_equal(np.asarray(new_size)[[0, 2]], [0.0, 0.0])
    np.testing.assert_allclose(np.asarray(new_size)[1], 1e-9, rtol=1e-6)
    np.testing.assert_allclose(np.asarray(dcash), [10.0, 10.0 * (1 - 1e-9), 30.0], rtol=1e-12)
    np.testing.assert_array_equal(np.asarray(new_entry)[[0, 2]], [0.0, 0.0])
    closed = jnp.array([1.0 - 1e-14, 1.0 - 1e-9, -3.0 * (1 - 1e-13)])
    new_size, _, _ = reduce_position(s, e, closed, jnp.array([110.0, 110.0, 40.0]))
    np.testing.assert_array_equal(np.asarray(new_size)[[0, 2]], [0.0, 0.0])
    assert adljax.reference.trade(1.0, 100.0, 0.0, -(1.0 - 1e-14), 110.0) == (0.0, 0.0, 10.0)


def test_an_insurance_fund_paid_out_is_exactly_empty(sim):
    # Found by the 300-case differential run: fund 100 pays 19.616120449547108 to A, then
    # the rest to B; the sum of the two payments came to 100 - 3.4e-13, and in the next
    # step the fund "paid" C 3.4e-13 (backstop_accounts 3 instead of 2). docs/rules.md (Dust):
    # a fund left with dust is empty.
    a = 19.616120449547108
    book = Book.from_accounts(cash=[-a, -12082.786943022300, -5.0, 1000.0], size=[[0.0], [0.0], [0.0], [1.0]],
                              entry=[[0.0], [0.0], [0.0], [100.0]], lp_size=[-1.0], lp_entry=[100.0], lp_cash=1e6,
                              insurance_fund=100.0, dtype=np.float64)
    out = sim(venues.bitmex(max_leverage=10), book, paths([100, 100, 100], BIG))
    assert float(np.asarray(out.book.insurance_fund)[0]) == 0.0
    assert m(out, "backstop_accounts") == 2.0
    np.testing.assert_allclose(np.asarray(out.book.cash)[0, :3], [0.0, -12082.7869430223 + 100 - a, -5.0], rtol=1e-12)
