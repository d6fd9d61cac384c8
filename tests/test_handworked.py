"""Hand-worked books: every number below is computed by hand in the comments.

Each test runs on the compiled engine and the reference engine; one test per
stage also runs the same engine without jit (``sim_all``): the code is the
same under jit and without, and op by op each test costs 15–40 s, so running
every case both ways would take the suite over its time limit.
``test_properties.test_no_jit_matches_jit`` compares the two on a drawn case.
"""
import jax
import numpy as np
import pytest

import adljax
from adljax import Book, Paths, venues


def _nojit(*args, **kwargs):
    with jax.disable_jit():
        return adljax.simulate(*args, **kwargs)


ENGINES = {"jit": adljax.simulate, "nojit": _nojit, "reference": adljax.reference.simulate}


@pytest.fixture(params=["jit", "reference"])
def sim(request):
    return ENGINES[request.param]


@pytest.fixture(params=list(ENGINES))
def sim_all(request):
    """Also without jit: for one test per stage."""
    return ENGINES[request.param]


def paths(oracle, depth):
    """One scenario from [T, A] lists."""
    o = np.asarray(oracle, dtype=np.float64)
    d = np.asarray(depth, dtype=np.float64)
    if o.ndim == 1:
        o = o[:, None]
        d = d[:, None] if d.ndim == 1 else d
    d = np.broadcast_to(d, o.shape)
    return Paths(oracle=o[None], depth=np.array(d)[None])


def m(out, name):
    return float(np.asarray(out.metrics[name])[0])


BIG = 1e12  # depth that never binds


def test_partial_liquidation_then_whole_orders_during_the_cooldown(sim):
    # Hyperliquid's published rule: after a partial liquidation, orders during the 30 s
    # cooldown are for the entire position.
    book = Book.from_accounts(cash=[20_000.0, 1e6], size=[[2000.0], [-2000.0]], entry=[[100.0], [100.0]],
                              dtype=np.float64)
    v = venues.hyperliquid(max_leverage=10, impact=0.0, slippage=0.0)
    out = sim(v, book, paths([100, 94, 93.5], BIG), dt=10.0)
    # step 1 @94: 20 % = 400 units (as below): cash 17600, size 1600, cooldown 30.
    # step 2 @93.5, cooling: AV 7200 < MR 7480 -> the whole 1600 at 93.5: cash 17600 - 10400 = 7200.
    np.testing.assert_allclose(np.asarray(out.book.cash)[0, 0], 7200.0, rtol=1e-12)
    assert np.asarray(out.book.size)[0, 0, 0] == 0.0
    assert m(out, "market_liquidation_orders") == 2 and m(out, "partial_liquidation_orders") == 1
    np.testing.assert_allclose(np.asarray(out.book.lp_entry)[0, 0], (400 * 94 + 1600 * 93.5) / 2000, rtol=1e-12)


def test_partial_liquidation_and_cooldown(sim_all):
    sim = sim_all
    # A: long 2000 @100 (notional 200k > 100k threshold), cash 20k; B the short side.
    # max_leverage 10 -> mm 5 %. dt = 10 s, cooldown 30 s, and the row *waits* during the
    # cooldown (cooldown_mode="wait"): orders at steps 1 and 4 only.
    book = Book.from_accounts(cash=[20_000.0, 1e6], size=[[2000.0], [-2000.0]], entry=[[100.0], [100.0]],
                              dtype=np.float64)
    v = venues.hyperliquid(max_leverage=10, impact=0.0, slippage=0.0, cooldown_mode="wait")
    out = sim(v, book, paths([100, 94, 93.5, 93, 92.5], BIG), dt=10.0)
    # step 1 @94: AV = 20000 - 12000 = 8000 < MR = 2000*94*.05 = 9400 -> 20 % = 400 units at 94:
    #   cash 20000 + 400*(94-100) = 17600, size 1600, cooldown 30.
    # step 2 @93.5 (cooldown 20): AV 7200 < MR 7480 but waiting; 7200 > 2/3 MR -> no backstop.
    # step 3 @93 (cooldown 10): AV 6400 < MR 7440, waiting.
    # step 4 @92.5 (cooldown 0): AV 5600 < MR 7400; notional 148k > 100k -> 320 units at 92.5:
    #   cash 17600 + 320*(92.5-100) = 15200, size 1280, cooldown 30 again.
    b = out.book
    np.testing.assert_allclose(np.asarray(b.cash)[0], [15_200.0, 1e6], rtol=1e-12)
    np.testing.assert_allclose(np.asarray(b.size)[0, :, 0], [1280.0, -2000.0], rtol=1e-12)
    np.testing.assert_allclose(np.asarray(b.entry)[0, :, 0], [100.0, 100.0], rtol=1e-12)
    np.testing.assert_allclose(np.asarray(b.cooldown)[0, 0], 30.0)
    # The liquidity providers bought 400 @94 and 320 @92.5: 720 @ 67200/720.
    np.testing.assert_allclose(np.asarray(b.lp_size)[0, 0], 720.0, rtol=1e-12)
    np.testing.assert_allclose(np.asarray(b.lp_entry)[0, 0], 67_200.0 / 720.0, rtol=1e-12)
    assert m(out, "market_liquidation_orders") == 2
    assert m(out, "partial_liquidation_orders") == 2
    np.testing.assert_allclose(m(out, "market_liquidation_notional"), 400 * 94 + 320 * 92.5, rtol=1e-12)
    assert m(out, "backstop_accounts") == 0 and m(out, "adl_notional") == 0


def test_cooldown_counts_seconds_not_steps(sim):
    # Same book, dt = 1 s, a 10 s cooldown: after the first partial order at step 1 the next can go at step 11.
    book = Book.from_accounts(cash=[20_000.0, 1e6], size=[[2000.0], [-2000.0]], entry=[[100.0], [100.0]],
                              dtype=np.float64)
    v = venues.hyperliquid(max_leverage=10, impact=0.0, slippage=0.0, backstop="none", cooldown_mode="wait",
                           cooldown=10.0)
    # price 94 then 93.5 held: liquidatable throughout (AV 7200 < MR 7480 after the first order).
    oracle = [100.0, 94.0] + [93.5] * 10
    out = sim(v, book, paths(oracle, BIG), dt=1.0)   # steps 0..11
    assert m(out, "market_liquidation_orders") == 2   # steps 1 and 11
    # step 11 @93.5: 20 % of 1600 = 320 units: cash 17600 + 320*(93.5-100) = 15520.
    np.testing.assert_allclose(np.asarray(out.book.cash)[0, 0], 15_520.0, rtol=1e-12)
    out10 = sim(v, book, paths(oracle[:-1], BIG), dt=1.0)   # steps 0..10: still waiting
    assert m(out10, "market_liquidation_orders") == 1


def test_cooldown_is_per_row_across_its_markets(sim):
    # The cooldown belongs to the row (Hyperliquid: "all market liquidation orders for that user"):
    # a partial order in one market makes the row's later orders whole in every market, also in a
    # market that never sent a partial order. dt = 10 s, cooldown 30 s, mm 5 %.
    # X (one cross row): long 2000 BTC @100 and short 9500 ETH @10, cash 10,000; B and C the other sides.
    book = Book.from_accounts(cash=[10_000.0, 1e6, 1e6], size=[[2000.0, -9500.0], [-2000.0, 0.0], [0.0, 9500.0]],
                              entry=[[100.0, 10.0], [100.0, 0.0], [0.0, 10.0]], dtype=np.float64)
    v = venues.hyperliquid(max_leverage=10, impact=0.0, slippage=0.0)
    out = sim(v, book, paths([[100, 10], [100, 11]], [[BIG, 0.0], [BIG, BIG]]), dt=10.0)
    # step 0 @(100, 10): AV 10,000 < MR 0.05*(200,000 + 95,000) = 14,750. BTC 200k > 100k: partial,
    #   400 units at 100 (cash +0, 1600 left); ETH 95k: a whole order, but no ETH depth: unfilled.
    #   Cooldown 30. After: AV 10,000 >= 2/3 MR = 2/3*0.05*(160,000 + 95,000) = 8,500: no takeover.
    # step 1 @(100, 11), cooldown 20: AV 10,000 - 9500*(11-10) = 500 < MR 0.05*(160,000 + 104,500) = 13,225.
    #   Cooling: both orders are whole, ETH's too although its 104,500 is over 100k.
    #   BTC sells 1600 @100: +0. ETH buys back 9500 @11: 9500*(10-11) = -9500 -> cash 500, flat.
    # (A cooldown per position would cool BTC only: ETH would send 20 % = 1900 units, cash 10,000 - 1900
    # = 8,100 and 7600 short left.)
    b = out.book
    np.testing.assert_allclose(np.asarray(b.cash)[0, 0], 500.0, rtol=1e-12)
    np.testing.assert_array_equal(np.asarray(b.size)[0, 0], [0.0, 0.0])
    np.testing.assert_allclose(np.asarray(b.cooldown)[0, 0], 20.0)       # not restarted: no partial at step 1
    np.testing.assert_allclose(np.asarray(b.lp_size)[0], [2000.0, -9500.0], rtol=1e-12)
    np.testing.assert_allclose(np.asarray(b.lp_entry)[0], [100.0, 11.0], rtol=1e-12)
    assert m(out, "market_liquidation_orders") == 4 and m(out, "partial_liquidation_orders") == 1
    np.testing.assert_allclose(m(out, "market_liquidation_notional"), 400 * 100 + 1600 * 100 + 9500 * 11,
                               rtol=1e-12)
    assert m(out, "backstop_accounts") == 0 and m(out, "adl_notional") == 0


def test_slippage_and_price_impact(sim):
    # A: long 10 @100, cash 60. At 97: AV 30 < MR 48.5 -> whole order of 10 (970 < 100k).
    book = Book.from_accounts(cash=[60.0, 1e4], size=[[10.0], [-10.0]], entry=[[100.0], [100.0]], dtype=np.float64)
    v = venues.hyperliquid(max_leverage=10, impact=0.5, impact_half_life=60.0, slippage=0.02)
    out = sim(v, book, paths([100, 97, 97], 10_000.0), dt=1.0, history=True)
    # filled 970 of depth 10000: price 97*(1 - 0.02*970/20000) = 96.90591
    p = 97 * (1 - 0.02 * 970 / 20_000)
    np.testing.assert_allclose(np.asarray(out.book.cash)[0, 0], 60 + 10 * (p - 100), rtol=1e-12)
    np.testing.assert_allclose(np.asarray(out.book.lp_entry)[0, 0], p, rtol=1e-12)
    # impact after step 1: 0.5 * (-970)/10000; step 2 mark = 97 * exp(impact * 2**(-1/60)).
    mark2 = 97 * np.exp(0.5 * -970 / 10_000 * 2 ** (-1 / 60))
    np.testing.assert_allclose(np.asarray(out.history["mark"])[0, :, 0], [100, 97, mark2], rtol=1e-12)


def test_backstop_takeover(sim_all):
    sim = sim_all
    # A: long 100 @100, cash 1000; no depth at the crash so the market cannot take it.
    # @93: AV = 300, MR = 465, 2/3 MR = 310 > 300 -> the vault (cash 50k) takes over.
    book = Book.from_accounts(cash=[1000.0, 1e5], size=[[100.0], [-100.0]], entry=[[100.0], [100.0]],
                              vault_cash=50_000.0, dtype=np.float64)
    v = venues.hyperliquid(max_leverage=10, impact=0.0, slippage=0.0)
    out = sim(v, book, paths([100, 93], [BIG, 0.0]))
    b = out.book
    assert np.asarray(b.cash)[0, 0] == 0.0 and np.asarray(b.size)[0, 0, 0] == 0.0   # left with nothing
    np.testing.assert_allclose(np.asarray(b.vault_cash)[0], 50_300.0, rtol=1e-12)
    np.testing.assert_allclose(np.asarray(b.vault_size)[0, 0], 100.0)
    np.testing.assert_allclose(np.asarray(b.vault_entry)[0, 0], 93.0, rtol=1e-12)
    np.testing.assert_allclose(m(out, "backstop_notional"), 9300.0, rtol=1e-12)
    assert m(out, "backstop_accounts") == 1
    assert m(out, "bad_debt_backstop") == 0.0
    np.testing.assert_allclose(m(out, "vault_pnl"), 300.0, rtol=1e-9)   # the kept buffer
    assert m(out, "market_liquidation_orders") == 1 and m(out, "market_liquidation_notional") == 0.0


def test_backstop_absorbs_deficit_and_refuses_when_it_cannot_carry(sim):
    book_kw = dict(cash=[1000.0, 1e5], size=[[100.0], [-100.0]], entry=[[100.0], [100.0]], dtype=np.float64)
    v = venues.hyperliquid(max_leverage=10, impact=0.0, slippage=0.0)
    # @88: AV = -200 -> taken over, the vault pays the 200 deficit.
    out = sim(v, Book.from_accounts(vault_cash=50_000.0, **book_kw), paths([100, 88], [BIG, 0.0]))
    np.testing.assert_allclose(np.asarray(out.book.vault_cash)[0], 49_800.0, rtol=1e-12)
    np.testing.assert_allclose(m(out, "bad_debt_backstop"), 200.0, rtol=1e-12)
    np.testing.assert_allclose(m(out, "bad_debt"), 200.0, rtol=1e-12)
    # @93 with a vault of 100: 100 + 300 = 400 < its new MR 465 -> refused; A keeps its position.
    out = sim(v, Book.from_accounts(vault_cash=100.0, **book_kw), paths([100, 93], [BIG, 0.0]))
    assert m(out, "backstop_accounts") == 0
    np.testing.assert_allclose(np.asarray(out.book.size)[0, 0, 0], 100.0)
    np.testing.assert_allclose(np.asarray(out.book.vault_cash)[0], 100.0)


def test_vault_unwind_shares_the_sell_side_with_a_liquidation(sim):
    # The vault holds 100 long @95 (taken over before the run) and unwinds (vault_unwind 0.5) in the
    # step in which trader A's long is liquidated: both orders sell into the same side of the book.
    # A: long 90 @100, cash 1200; B the short side. mm 5 %, slippage 0.02, no depth at step 0.
    book = Book.from_accounts(cash=[1200.0, 1e5], size=[[90.0], [-190.0]], entry=[[100.0], [100.0]],
                              vault_cash=10_000.0, vault_size=[100.0], vault_entry=[95.0], dtype=np.float64)
    v = venues.hyperliquid(max_leverage=10, impact=0.0, slippage=0.02, vault_unwind=0.5)
    out = sim(v, book, paths([100, 90], [0.0, 5400.0]))
    # step 0 @100: A healthy (AV 1200 >= MR 450); the vault's order is min(100, 0.5*0/100) = 0.
    # step 1 @90, depth 5400: A AV 1200 - 900 = 300 < MR 405 -> whole order of 90 (8100 < 100k).
    #   The vault: min(100, 0.5*5400/90) = 30 units. Sell side: O = (90 + 30)*90 = 10,800 > 5400:
    #   phi = 1/2, F = 5400; one price for both, p = 90*(1 - 0.02*5400/(2*5400)) = 89.1.
    #   A sells 45 @89.1: 1200 + 45*(89.1 - 100) = 709.5, 45 @100 left.
    #   The vault sells 15 @89.1: 10,000 + 15*(89.1 - 95) = 9,911.5, 85 @95 left.
    #   The LP buys 60 @89.1. (Alone, the vault's 2700 of 5400 would fill whole at 90*(1 - 0.005) = 89.55.)
    #   A after: AV 709.5 - 450 = 259.5 >= 2/3 MR = 2/3*202.5 = 135: no takeover.
    p = 90 * (1 - 0.02 * 5400 / (2 * 5400))
    b = out.book
    np.testing.assert_allclose(np.asarray(b.cash)[0], [1200 + 45 * (p - 100), 1e5], rtol=1e-12)
    np.testing.assert_allclose(np.asarray(b.size)[0, :, 0], [45.0, -190.0], rtol=1e-12)
    np.testing.assert_allclose(np.asarray(b.entry)[0, 0, 0], 100.0, rtol=1e-12)
    np.testing.assert_allclose(np.asarray(b.vault_cash)[0], 10_000 + 15 * (p - 95), rtol=1e-12)
    np.testing.assert_allclose(np.asarray(b.vault_size)[0, 0], 85.0, rtol=1e-12)
    np.testing.assert_allclose(np.asarray(b.vault_entry)[0, 0], 95.0, rtol=1e-12)
    np.testing.assert_allclose(np.asarray(b.lp_size)[0, 0], 60.0, rtol=1e-12)
    np.testing.assert_allclose(np.asarray(b.lp_entry)[0, 0], p, rtol=1e-12)
    np.testing.assert_allclose(m(out, "market_liquidation_notional"), 45 * 90.0, rtol=1e-12)
    np.testing.assert_allclose(m(out, "vault_unwind_notional"), 15 * 90.0, rtol=1e-12)
    assert m(out, "market_liquidation_orders") == 1 and m(out, "backstop_accounts") == 0
    # vault_pnl: at 90, 9,911.5 + 85*(90 - 95) = 9,486.5, against 10,000 + 100*(100 - 95) = 10,500 at the start.
    np.testing.assert_allclose(m(out, "vault_pnl"), 10_000 + 15 * (p - 95) - 425 - 10_500, rtol=1e-9)


def test_vault_bankrupt_is_deleveraged(sim):
    # The vault (cash 200) takes A's long over at 93 as in test_backstop_takeover; the price goes on
    # falling, the vault's value goes below zero and ADL closes its position against B's short.
    book = Book.from_accounts(cash=[1000.0, 1e5], size=[[100.0], [-100.0]], entry=[[100.0], [100.0]],
                              vault_cash=200.0, dtype=np.float64)
    v = venues.hyperliquid(max_leverage=10, impact=0.0, slippage=0.0)
    out = sim(v, book, paths([100, 93, 85], [BIG, 0.0, 0.0]))
    # step 1 @93, no depth: A AV 300 < 2/3 MR = 310; the vault: 200 + 300 = 500 >= MR 465 -> taken over:
    #   vault cash 500, long 100 @93; A left with nothing.
    # step 2 @85: the vault's AV = 500 + 100*(85 - 93) = -300 < 0: bankrupt (it is never market-liquidated).
    #   B (short 100 @100, AV 101,500) is the only candidate: 100 units against 100, closed whole at
    #   the previous mark 93. The vault sells 100 @93: cash 500 + 0 = 500, flat (AV -300 -> 500).
    #   B buys 100 @93: 1e5 + 100*(100 - 93) = 100,700.
    b = out.book
    np.testing.assert_allclose(np.asarray(b.size)[0, :, 0], 0.0, atol=1e-12)
    np.testing.assert_allclose(np.asarray(b.vault_size)[0, 0], 0.0, atol=1e-12)
    np.testing.assert_allclose(np.asarray(b.cash)[0], [0.0, 100_700.0], rtol=1e-12)
    np.testing.assert_allclose(np.asarray(b.vault_cash)[0], 500.0, rtol=1e-12)
    assert m(out, "backstop_accounts") == 1 and m(out, "bad_debt_backstop") == 0.0
    assert m(out, "n_bankrupt_accounts") == 1 and m(out, "n_adl_accounts") == 1 and m(out, "adl_steps") == 1
    np.testing.assert_allclose(m(out, "adl_notional"), 100 * 85.0, rtol=1e-12)
    # All of it is closed against the vault: its own 100 units closed × m 85 = 8,500; one market.
    np.testing.assert_allclose(m(out, "adl_notional_vault"), 100 * 85.0, rtol=1e-12)
    assert m(out, "adl_markets") == 1
    np.testing.assert_allclose(m(out, "bad_debt_adl"), 300.0, rtol=1e-12)
    assert m(out, "bad_debt_residual") == 0.0
    np.testing.assert_allclose(m(out, "vault_pnl"), 300.0, rtol=1e-12)          # 500 - 200
    # Measured after each step's ADL: 200 at the start, 500 after steps 1 and 2.
    np.testing.assert_allclose(m(out, "vault_equity_min"), 200.0, rtol=1e-12)


def adl_book():
    # X long 20 @100 cash 100 (goes bankrupt); shorts S1 5 @110, S2 10 @100, S3 15 @90;
    # L long 10 @100 (healthy); E holds cash only.
    return Book.from_accounts(
        cash=[100.0, 100.0, 500.0, 2000.0, 10_000.0, 777.0],
        size=[[20.0], [-5.0], [-10.0], [-15.0], [10.0], [0.0]],
        entry=[[100.0], [110.0], [100.0], [90.0], [100.0], [0.0]],
        dtype=np.float64,
    )


def test_adl_hyperliquid_queue_at_previous_mark(sim_all):
    sim = sim_all
    # @90, no depth, no backstop: X has AV = 100 + 20*(90-100) = -100 -> bankrupt.
    # Short candidates at 90: S1 AV 200, S2 AV 600, S3 AV 2000.
    # Scores (entry/m)*(ntl/AV): S1 (110/90)(450/200) = 2.75, S2 (100/90)(900/600) = 1.667,
    # S3 (90/90)(1350/2000) = 0.675. Queue S1, S2, S3: they close 5, 10, 5 (of 15).
    # Fill at the previous mark, 100.
    v = venues.hyperliquid(max_leverage=10, impact=0.0, slippage=0.0, backstop="none")
    out = sim(v, adl_book(), paths([100, 90], [BIG, 0.0]))
    b = out.book
    np.testing.assert_allclose(np.asarray(b.size)[0, :, 0], [0, 0, 0, -10, 10, 0], atol=1e-12)
    # X sells 20 @100: cash 100. S1 buys 5 @100: +5*(110-100) = +50 -> 150.
    # S2 buys 10 @100: +0 -> 500. S3 buys 5 @100: -5*(100-90) = -50 -> 1950.
    np.testing.assert_allclose(np.asarray(b.cash)[0], [100, 150, 500, 1950, 10_000, 777], rtol=1e-12)
    np.testing.assert_allclose(np.asarray(b.entry)[0, 3, 0], 90.0)
    np.testing.assert_allclose(m(out, "adl_notional"), 20 * 90.0, rtol=1e-12)
    assert m(out, "n_adl_accounts") == 3 and m(out, "n_bankrupt_accounts") == 1 and m(out, "adl_steps") == 1
    # Only the trader X was bankrupt: nothing closed against the vault; ADL acted in the one market.
    assert m(out, "adl_notional_vault") == 0.0 and m(out, "adl_markets") == 1
    np.testing.assert_allclose(m(out, "bad_debt_adl"), 100.0, rtol=1e-12)
    assert m(out, "bad_debt_residual") == 0.0


def test_adl_hyperliquid_ranks_shorts_by_entry_over_mark(sim):
    # Hyperliquid's score takes the price ratio in the profitable direction: entry/mark for a short.
    # X long 20 @100, cash 100: @90 AV = -100, bankrupt (no depth, no backstop).
    # Shorts A 20 @108 (cash 540) and B 20 @81 (cash 1080): at 90 both have AV 900 and notional 1800
    # (AV: 540 + 20*(108-90) = 900; 1080 - 20*(90-81) = 900), so only the ratio orders them:
    # A (108/90)(1800/900) = 2.4, B (81/90)(1800/900) = 1.8. A closes all 20 X needs; B keeps its short.
    # (With mark/entry for shorts B would come first: (90/81)*2 = 2.22 > (90/108)*2 = 1.67.)
    book = Book.from_accounts(
        cash=[100.0, 540.0, 1080.0, 10_000.0, 777.0, 5.0],
        size=[[20.0], [-20.0], [-20.0], [20.0], [0.0], [0.0]],
        entry=[[100.0], [108.0], [81.0], [100.0], [0.0], [0.0]],
        dtype=np.float64,
    )
    v = venues.hyperliquid(max_leverage=10, impact=0.0, slippage=0.0, backstop="none")
    out = sim(v, book, paths([100, 90], [BIG, 0.0]))
    np.testing.assert_allclose(np.asarray(out.book.size)[0, :, 0], [0, 0, -20, 20, 0, 0], atol=1e-12)
    # A buys back 20 @ the previous mark 100: +20*(108-100) = +160 -> 700; B untouched.
    np.testing.assert_allclose(np.asarray(out.book.cash)[0, 1:], [700, 1080, 10_000, 777, 5], rtol=1e-12)
    assert m(out, "n_adl_accounts") == 1


def test_adl_at_the_mark_leaves_the_deficit_as_residual_bad_debt(sim):
    # The adl_book crash priced at the current mark, 90, instead of the previous one: the queue is
    # the same (S1, S2, S3 close 5, 10, 5). X sells 20 @90: cash 100 + 20*(90-100) = -100, flat.
    # S1 buys 5 @90: 100 + 5*(110-90) = 200; S2 10 @90: 500 + 10*(100-90) = 600; S3 5 @90: 2000 + 0.
    # Closing at the mark moves no value, so ADL covers nothing: X's deficit of 100 is left over.
    v = venues.hyperliquid(max_leverage=10, impact=0.0, slippage=0.0, backstop="none", adl_price="mark")
    out = sim(v, adl_book(), paths([100, 90], [BIG, 0.0]))
    np.testing.assert_allclose(np.asarray(out.book.size)[0, :, 0], [0, 0, 0, -10, 10, 0], atol=1e-12)
    np.testing.assert_allclose(np.asarray(out.book.cash)[0], [-100, 200, 600, 2000, 10_000, 777], rtol=1e-12)
    np.testing.assert_allclose(m(out, "bad_debt_adl"), 0.0, atol=1e-9)
    np.testing.assert_allclose(m(out, "bad_debt_residual"), 100.0, rtol=1e-12)
    np.testing.assert_allclose(m(out, "bad_debt"), 100.0, rtol=1e-12)


def test_adl_by_pnl_takes_the_largest_dollar_profit_first(sim):
    # X long 10 @100, cash 60: @90 AV = 60 - 100 = -40, bankrupt (no depth, no backstop).
    # P short 100 @95 (cash 100,000): PnL at 90 = 500, leverage 9000/100,500; Q short 10 @100 (cash 100):
    # PnL 100, leverage 900/200. By PnL P comes first (500 > 100) and closes 10 of its 100; Hyperliquid's
    # score would take Q first ((100/90)*4.5 = 5.0 against (95/90)*0.09 = 0.09).
    # At the previous mark 100: P pays 10*(100-95) = 50 -> 99,950, keeps 90 @95; Q untouched.
    book = Book.from_accounts(
        cash=[60.0, 100_000.0, 100.0, 100_000.0, 777.0, 5.0],
        size=[[10.0], [-100.0], [-10.0], [100.0], [0.0], [0.0]],
        entry=[[100.0], [95.0], [100.0], [100.0], [0.0], [0.0]],
        dtype=np.float64,
    )
    v = venues.hyperliquid(max_leverage=10, impact=0.0, slippage=0.0, backstop="none", adl_score="pnl")
    out = sim(v, book, paths([100, 90], [BIG, 0.0]))
    np.testing.assert_allclose(np.asarray(out.book.size)[0, :, 0], [0, -90, -10, 100, 0, 0], atol=1e-12)
    np.testing.assert_allclose(np.asarray(out.book.cash)[0], [60, 99_950, 100, 100_000, 777, 5], rtol=1e-12)
    np.testing.assert_allclose(np.asarray(out.book.entry)[0, 1, 0], 95.0, rtol=1e-12)
    assert m(out, "n_adl_accounts") == 1


def test_adl_at_bankruptcy_price(sim):
    # Same crash; X's bankruptcy price 90 + 100/20 = 95 leaves it at exactly 0.
    v = venues.hyperliquid(max_leverage=10, impact=0.0, slippage=0.0, backstop="none", adl_price="bankruptcy")
    out = sim(v, adl_book(), paths([100, 90], [BIG, 0.0]))
    # S1: -5*(95-110) = +75 -> 175; S2: -10*(95-100) = +50 -> 550; S3: -5*(95-90) = -25 -> 1975.
    np.testing.assert_allclose(np.asarray(out.book.cash)[0], [0, 175, 550, 1975, 10_000, 777], rtol=1e-12, atol=1e-9)
    np.testing.assert_allclose(m(out, "bad_debt_adl"), 100.0, rtol=1e-12)


def test_adl_pro_rata(sim):
    # Pro rata by contracts: 20 of 30 short contracts -> every short closes 2/3, at the previous mark 100.
    v = venues.hyperliquid(max_leverage=10, impact=0.0, slippage=0.0, backstop="none", adl_policy="pro_rata")
    out = sim(v, adl_book(), paths([100, 90], [BIG, 0.0]))
    np.testing.assert_allclose(np.asarray(out.book.size)[0, :, 0], [0, -5 / 3, -10 / 3, -5, 10, 0],
                               rtol=1e-12, atol=1e-12)
    # S1 closes 10/3 @100: +10/3*10; S2 +0; S3 closes 10 @100: -10*10.
    np.testing.assert_allclose(np.asarray(out.book.cash)[0], [100, 100 + 100 / 3, 500, 1900, 10_000, 777], rtol=1e-12)


def test_adl_with_too_few_counterparties_leaves_residual_bad_debt(sim):
    # Candidates are rows with AV >= 0; a short held by a bankrupt row serves no one, so X's long
    # meets less than it needs. Markets BTC, ETH; mm 5 %; the vault has no cash, so it carries no one.
    # X: long 20 BTC @102, cash 160. Y: short 15 BTC @100 and long 100 ETH @10.5, cash 180.
    # Z: short 5 BTC @104 and short 100 ETH @10, cash 1000.
    # At (100, 10) AV 120, 130, 1020: all at or above MR (100, 125, 75).
    book = Book.from_accounts(cash=[160.0, 180.0, 1000.0], size=[[20.0, 0.0], [-15.0, 100.0], [-5.0, -100.0]],
                              entry=[[102.0, 0.0], [100.0, 10.5], [104.0, 10.0]], dtype=np.float64)
    v = venues.hyperliquid(max_leverage=10, impact=0.0, slippage=0.0)
    out = sim(v, book, paths([[100, 10], [90, 7]], [[BIG, BIG], [0.0, 0.0]]))
    # step 1 @(90, 7), no depth: X AV = 160 - 240 = -80; Y AV = 180 + 150 - 350 = -20; Z AV = 1370.
    #   X and Y send 3 orders, none fills; the vault (0 + -80 < X's MR 90) refuses X and stops.
    # ADL at the previous mark (100, 10); bankrupt X and Y, the only candidate Z.
    #   BTC, bankrupt longs: X's 20 against Z's 5 (Y's 15 is bankrupt): M = 5, f = 1/4.
    #     X sells 5 @100: 160 + 5*(100 - 102) = 150, 15 @102 left. Z buys 5 @100: 1000 + 5*(104 - 100) = 1020.
    #   BTC, bankrupt shorts: Y's 15, no candidate long (X is bankrupt): Y keeps them.
    #   ETH, bankrupt longs: Y's 100 against Z's 100: whole, @10. Y: 180 + 100*(10 - 10.5) = 130.
    #     Z: 1020 + 100*(10 - 10) = 1020, flat.
    # After, at (90, 7): X AV = 150 + 15*(90 - 102) = -30 (covered 50); Y AV = 130 + 15*(100 - 90) = 280
    # (covered its 20); Z 1020. bad_debt_adl = 50 + 20 = 70, residual 30 (X's), total 100.
    b = out.book
    np.testing.assert_allclose(np.asarray(b.size)[0, :3], [[15.0, 0.0], [-15.0, 0.0], [0.0, 0.0]], atol=1e-12)
    np.testing.assert_allclose(np.asarray(b.entry)[0, :2, 0], [102.0, 100.0], rtol=1e-12)
    np.testing.assert_allclose(np.asarray(b.cash)[0], [150.0, 130.0, 1020.0], rtol=1e-12)
    assert m(out, "market_liquidation_orders") == 3 and m(out, "backstop_accounts") == 0
    np.testing.assert_allclose(m(out, "adl_notional"), 5 * 90 + 100 * 7.0, rtol=1e-12)
    assert m(out, "n_bankrupt_accounts") == 2 and m(out, "n_adl_accounts") == 1 and m(out, "adl_steps") == 1
    # ADL closed in both markets (X's 5 BTC, Y's 100 ETH), none of it against the vault (it took no one over).
    assert m(out, "adl_markets") == 2 and m(out, "adl_notional_vault") == 0.0
    np.testing.assert_allclose(m(out, "bad_debt_adl"), 70.0, rtol=1e-12)
    np.testing.assert_allclose(m(out, "bad_debt_residual"), 30.0, rtol=1e-12)
    np.testing.assert_allclose(m(out, "bad_debt"), 100.0, rtol=1e-12)
    assert m(out, "bad_debt_backstop") == 0.0


def test_accounts_without_positions_untouched_by_a_crash(sim):
    # A crash through every stage: cash-only rows (index 1 and 4) keep their cash exactly.
    book = Book.from_accounts(
        cash=[1000.0, 5000.0, 300.0, 20_000.0, 1.0],
        size=[[100.0], [0.0], [50.0], [-150.0], [0.0]],
        entry=[[100.0], [0.0], [100.0], [100.0], [0.0]],
        vault_cash=500.0, dtype=np.float64,
    )
    v = venues.hyperliquid(max_leverage=20)
    out = sim(v, book, paths([100, 95, 80, 60, 50], [1000.0, 500.0, 0.0, 0.0, 100.0]))
    assert m(out, "adl_notional") > 0   # the crash did reach ADL
    np.testing.assert_array_equal(np.asarray(out.book.cash)[0, [1, 4]], [5000.0, 1.0])
    np.testing.assert_array_equal(np.asarray(out.book.size)[0, [1, 4]], 0.0)


def test_cross_margin_two_markets_bankruptcy_split_by_notional(sim):
    # X: long 10 BTC @100 and short 100 ETH @10, cash 150 (one cross account).
    # @ (90, 11): AV = 150 - 100 - 100 = -50; no depth; D = 50 split by notional
    # (900 BTC, 1100 ETH): BTC 22.5 -> 90 + 22.5/10 = 92.25; ETH 27.5 -> 11 - 27.5/100 = 10.725.
    book = Book.from_accounts(
        cash=[150.0, 10_000.0, 10_000.0],
        size=[[10.0, -100.0], [-10.0, 0.0], [0.0, 100.0]],
        entry=[[100.0, 10.0], [100.0, 0.0], [0.0, 10.0]],
        dtype=np.float64,
    )
    v = venues.hyperliquid(max_leverage=10, impact=0.0, slippage=0.0, backstop="none", adl_price="bankruptcy")
    out = sim(v, book, paths([[100, 10], [90, 11]], [[BIG, BIG], [0.0, 0.0]]))
    b = out.book
    np.testing.assert_allclose(np.asarray(b.size)[0], 0.0, atol=1e-12)
    # X ends at exactly 0; B buys 10 @92.25: +77.5; C sells 100 @10.725: +72.5.
    np.testing.assert_allclose(np.asarray(b.cash)[0], [0.0, 10_077.5, 10_072.5], rtol=1e-12, atol=1e-9)
    np.testing.assert_allclose(m(out, "adl_notional"), 10 * 90 + 100 * 11, rtol=1e-12)
    np.testing.assert_allclose(m(out, "bad_debt_adl"), 50.0, rtol=1e-12)
    # Cross margin: at (95, 10.4) the BTC loss alone (50) would not liquidate X, the two together do.
    out = sim(v, book, paths([[100, 10], [95, 10.4]], BIG))
    # AV = 150 - 50 - 40 = 60 < MR = 0.05*(950 + 1040) = 99.5 -> both positions close whole at mark.
    np.testing.assert_allclose(np.asarray(out.book.cash)[0, 0], 60.0, rtol=1e-12)
    assert m(out, "market_liquidation_orders") == 2


def test_isolated_position_does_not_touch_cross_cash(sim):
    # One trader as two rows: row 0 cross (cash 10k, long 1 BTC @100), row 1 isolated ETH long 100 @10 with 60 margin.
    book = Book.from_accounts(
        cash=[10_000.0, 60.0, 1e6],
        size=[[1.0, 0.0], [0.0, 100.0], [-1.0, -100.0]],
        entry=[[100.0, 0.0], [0.0, 10.0], [100.0, 10.0]],
        isolated=[False, True, False], dtype=np.float64,
    )
    v = venues.hyperliquid(max_leverage=10, impact=0.0, slippage=0.0)
    out = sim(v, book, paths([[100, 10], [100, 9.6]], BIG))
    # isolated: AV = 60 - 40 = 20 < MR 48 -> closed at 9.6: margin 20 left; the cross row is untouched.
    np.testing.assert_allclose(np.asarray(out.book.cash)[0, :2], [10_000.0, 20.0], rtol=1e-12)
    np.testing.assert_allclose(np.asarray(out.book.size)[0, 0], [1.0, 0.0])


def test_a_flat_close_at_zero_but_for_rounding_leaves_cash_exactly_zero(sim):
    """Dust: a market liquidation that leaves a row flat at cash 0 but for the close's rounding leaves 0.

    Long 1 at entry 1.0, cash 0.3, mark 0.7: AV = 0.3 + (0.7 − 1.0) = 0.3 − 0.30000000000000004 = −5.6e-17
    in binary floating point: below its requirement (liquidated whole: an insurance venue), not below zero
    beyond rounding (scale 0.3 + 1.7 = 2.0). The close at 0.7 (slippage 0) leaves cash −5.6e-17 and no
    position: within dust of the close's scale, so exactly 0, and the insurance fund pays nothing.
    """
    assert 0.3 + (0.7 - 1.0) < 0            # the rounding this test is about
    book = Book.from_accounts(np.array([0.3, 10.0]), np.array([[1.0], [-1.0]]), np.array([[1.0], [1.0]]),
                              insurance_fund=100.0)
    venue = venues.binance(impact=0.0, slippage=0.0, liquidation_fee=0.0)
    out = sim(venue, book, paths([0.7], [BIG]), dt=1.0)
    assert m(out, "market_liquidation_orders") == 1
    assert m(out, "backstop_accounts") == 0
    assert float(np.asarray(out.book.cash)[0, 0]) == 0.0
    assert float(np.asarray(out.book.insurance_fund)[0]) == 100.0
