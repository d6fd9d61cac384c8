"""The venues' published maintenance-margin tier tables in adljax.model.margin_tables match their sources.

Every expected number is written out here from the source named beside it (docs/venues.md, "Margin tiers", holds
the quotes), never read from the module: Hyperliquid's margin-tiers page and `meta` response, Binance's
leverageBracket response of 2026-09-02 (its `cum` column), Bybit's margin-parameters page (its risk limits and MM
deductions), BitMEX's XBTUSD risk-limit steps. Plain Python and NumPy: no JAX program is compiled.
"""
from __future__ import annotations

import math

import numpy as np
import pytest

from adljax.model import margin_tables as mt
from adljax.model import tiers

ALL_TABLES = {
    **{f"HYPERLIQUID[{coin}]": t for coin, t in mt.HYPERLIQUID.items()},
    "BINANCE_BTCUSDT": mt.BINANCE_BTCUSDT,
    "BYBIT_BTCUSDT": mt.BYBIT_BTCUSDT,
    "BITMEX_XBTUSD_XBT": mt.BITMEX_XBTUSD_XBT,
    "BITMEX_XBTUSD": mt.BITMEX_XBTUSD,
}


def requirement(table, notional: float) -> float:
    """Deduction mode, written independently of the module: each tier's rate on the part of N above its bound."""
    bounds = [b for b, _ in table] + [math.inf]
    total = 0.0
    for k, (bound, rate) in enumerate(table):
        total += rate * max(0.0, min(notional, bounds[k + 1]) - bound)
    return total


def step_rate(table, notional: float) -> float:
    """Step mode: the rate of the last tier whose lower bound the position reaches."""
    return [rate for bound, rate in table if bound <= notional][-1]


# --- shape of every table ---------------------------------------------------------------------------------

@pytest.mark.parametrize("name", sorted(ALL_TABLES))
def test_every_table_starts_at_zero_rises_and_its_rates_never_fall(name):
    table = ALL_TABLES[name]
    bounds = [b for b, _ in table]
    rates = [r for _, r in table]
    assert all(isinstance(x, float) for pair in table for x in pair), name
    assert bounds[0] == 0.0, name
    assert all(b1 > b0 for b0, b1 in zip(bounds, bounds[1:])), name
    assert all(r1 >= r0 for r0, r1 in zip(rates, rates[1:])), name
    assert all(0.0 < r < 1.0 for r in rates), name


@pytest.mark.parametrize("name", sorted(ALL_TABLES))
def test_every_table_is_accepted_by_the_engine_s_table_check(name):
    checked = tiers.table(name, ALL_TABLES[name])
    assert checked.shape == (len(ALL_TABLES[name]), 2)


# --- Hyperliquid ------------------------------------------------------------------------------------------

def test_hyperliquid_tables_are_the_margin_tiers_page_at_half_the_initial_margin():
    # margin-tiers page: "BTC 0-150M 40 >150M 20" -> 1/80 = 1.25 %, 1/40 = 2.5 %; "ETH 0-100M 25 >100M 15";
    # "SOL 0-70M 20 >70M 10"; "XRP 0-40M 20 >40M 10"; "DOGE ... HYPE ... 0-20M 10 >20M 5";
    # "OP, ARB ... 0-3M 10 >3M 5".
    assert mt.HYPERLIQUID["BTC"] == ((0.0, 0.0125), (150e6, 0.025))
    np.testing.assert_allclose(mt.HYPERLIQUID["ETH"], [(0.0, 0.02), (100e6, 1 / 30)], rtol=1e-15, atol=0)
    assert mt.HYPERLIQUID["SOL"] == ((0.0, 0.025), (70e6, 0.05))
    assert mt.HYPERLIQUID["XRP"] == ((0.0, 0.025), (40e6, 0.05))
    for coin in ("DOGE", "HYPE", "SUI", "LINK", "AVAX", "kPEPE", "FARTCOIN"):
        assert mt.HYPERLIQUID[coin] == ((0.0, 0.05), (20e6, 0.10)), coin
    for coin in ("OP", "ARB", "BNB", "LDO", "TON", "DOT", "kSHIB"):
        assert mt.HYPERLIQUID[coin] == ((0.0, 0.05), (3e6, 0.10)), coin


def test_hyperliquid_tables_are_meta_s_margin_tables_by_id():
    # `meta` (SwellNetwork/hyperliquid-go-sdk perp.go, 2025-11-12): marginTables [[51, {"description":
    # "tiered 10x", "marginTiers": [{"lowerBound": "0.0", "maxLeverage": 10}, {"lowerBound": "3000000.0",
    # "maxLeverage": 5}]}], [52, ... "20000000.0" ...], [53, 20x/"40000000.0"/10], [54, 20x/"70000000.0"/10],
    # [55, 25x/"100000000.0"/15], [56, 40x/"150000000.0"/20]]; BTC 56, ETH 55, SOL 54, XRP 53, DOGE 52, BNB 51.
    assert mt.HYPERLIQUID_MARGIN_TABLES == {
        51: ((0.0, 10), (3e6, 5)), 52: ((0.0, 10), (20e6, 5)), 53: ((0.0, 20), (40e6, 10)),
        54: ((0.0, 20), (70e6, 10)), 55: ((0.0, 25), (100e6, 15)), 56: ((0.0, 40), (150e6, 20)),
    }
    ids = {"BTC": 56, "ETH": 55, "SOL": 54, "XRP": 53, "DOGE": 52, "HYPE": 52, "ZEC": 52, "BNB": 51, "OP": 51,
           "XPL": 51}
    assert {coin: mt.HYPERLIQUID_TABLE_ID[coin] for coin in ids} == ids


def test_hyperliquid_coins_the_sources_disagree_on_are_left_out():
    # MKR is delisted in the 2025-11-12 `meta`; WIF and POPCAT sit on single tiers in a later copy.
    for coin in ("MKR", "WIF", "POPCAT"):
        assert coin not in mt.HYPERLIQUID


@pytest.mark.parametrize("coin, notional, expected", [
    ("BTC", 200e6, 3_125_000.0),   # 0.025*200M - 150M*(0.025 - 0.0125)
    ("BTC", 100e6, 1_250_000.0),   # first tier: 0.0125*100M
    ("SOL", 100e6, 3_250_000.0),   # 0.05*100M - 70M*(0.05 - 0.025)
    ("XRP", 50e6, 1_500_000.0),    # 0.05*50M - 40M*(0.05 - 0.025)
    ("DOGE", 30e6, 2_000_000.0),   # 0.10*30M - 20M*(0.10 - 0.05)
    ("OP", 5e6, 350_000.0),        # 0.10*5M - 3M*(0.10 - 0.05)
    ("ETH", 130e6, 3_000_000.0),   # 130M/30 - 100M*(1/30 - 0.02) = 4.3333M - 1.3333M
])
def test_hyperliquid_requirements_by_hand(coin, notional, expected):
    table = mt.HYPERLIQUID[coin]
    assert requirement(table, notional) == pytest.approx(expected, rel=1e-12)
    k = max(i for i, (b, _) in enumerate(table) if b <= notional)
    assert notional * table[k][1] - mt.deductions(table)[k] == pytest.approx(expected, rel=1e-12)


def test_from_leverage_halves_the_initial_margin():
    assert mt.from_leverage([(0, 20), (1e6, 4)]) == ((0.0, 0.025), (1e6, 0.125))
    assert mt.from_leverage([(0.0, 50)]) == ((0.0, 0.01),)


# --- Binance USDⓈ-M BTCUSDT -------------------------------------------------------------------------------

# leverageBracket BTCUSDT, mainnet 2026-09-02: (notionalFloor, notionalCap, maintMarginRatio, cum).
BINANCE_PUBLISHED = [
    (0, 300_000, 0.004, 0.0),
    (300_000, 800_000, 0.005, 300.0),
    (800_000, 3_000_000, 0.0065, 1_500.0),
    (3_000_000, 12_000_000, 0.01, 12_000.0),
    (12_000_000, 70_000_000, 0.02, 132_000.0),
    (70_000_000, 100_000_000, 0.025, 482_000.0),
    (100_000_000, 230_000_000, 0.05, 2_982_000.0),
    (230_000_000, 480_000_000, 0.1, 14_482_000.0),
    (480_000_000, 600_000_000, 0.125, 26_482_000.0),
    (600_000_000, 800_000_000, 0.15, 41_482_000.0),
    (800_000_000, 1_200_000_000, 0.25, 121_482_000.0),
    (1_200_000_000, 1_800_000_000, 0.5, 421_482_000.0),
]


def test_binance_btcusdt_is_the_published_brackets():
    assert mt.BINANCE_BTCUSDT == tuple((float(f), r) for f, _, r, _ in BINANCE_PUBLISHED)
    assert mt.BINANCE_BTCUSDT_MAX_NOTIONAL == BINANCE_PUBLISHED[-1][1]


def test_binance_published_cum_is_the_deduction_to_the_cent():
    cum = [c for *_, c in BINANCE_PUBLISHED]
    np.testing.assert_allclose(mt.deductions(mt.BINANCE_BTCUSDT), cum, rtol=0, atol=0.005)


def test_binance_requirement_by_hand():
    # 50M is in bracket 5 (12M-70M, 2 %, cum 132,000): 0.02*50M - 132,000 = 868,000.
    assert requirement(mt.BINANCE_BTCUSDT, 50e6) == pytest.approx(868_000.0, rel=1e-12)


# --- Bybit BTCUSDT ----------------------------------------------------------------------------------------

# margin-parameters page, BTCUSDT tiers 1-20: (risk limit = upper bound, MMR, MM deduction).
BYBIT_PUBLISHED = [
    (2_000_000, 0.005, 0), (2_600_000, 0.0056, 1_200), (3_200_000, 0.0063, 3_020), (3_800_000, 0.0067, 4_300),
    (4_400_000, 0.0071, 5_820), (5_000_000, 0.0077, 8_460), (5_600_000, 0.0091, 15_460),
    (8_500_000, 0.01, 20_500), (10_000_000, 0.013, 46_000), (14_000_000, 0.015, 66_000),
    (20_000_000, 0.016, 80_000), (28_000_000, 0.02, 160_000), (38_000_000, 0.025, 300_000),
    (50_000_000, 0.029, 452_000), (55_000_000, 0.03, 502_000), (60_000_000, 0.035, 777_000),
    (65_000_000, 0.036, 837_000), (70_000_000, 0.038, 967_000), (75_000_000, 0.04, 1_107_000),
    (80_000_000, 0.045, 1_482_000),
]


def test_bybit_lower_bounds_are_the_previous_tier_s_risk_limit():
    limits = [limit for limit, _, _ in BYBIT_PUBLISHED]
    assert [b for b, _ in mt.BYBIT_BTCUSDT] == [0.0] + [float(x) for x in limits[:-1]]
    assert [r for _, r in mt.BYBIT_BTCUSDT] == [r for _, r, _ in BYBIT_PUBLISHED]
    assert mt.BYBIT_BTCUSDT_MAX_NOTIONAL == limits[-1]


def test_bybit_published_mm_deduction_is_the_deduction_to_the_cent():
    published = [d for _, _, d in BYBIT_PUBLISHED]
    np.testing.assert_allclose(mt.deductions(mt.BYBIT_BTCUSDT), published, rtol=0, atol=0.005)


# --- BitMEX XBTUSD (step mode) ----------------------------------------------------------------------------

def test_bitmex_steps_are_the_risk_limit_page():
    # riskLimitsExamples: "< 200 XBT 0.50%", "< 350 XBT 1.00%", "< 500 XBT 1.50%", "< 650 XBT 2.00%";
    # instrument: riskLimit 200 XBT, riskStep 150 XBT, maintMargin 0.005 raised by 0.005 per step.
    assert mt.BITMEX_XBTUSD_XBT == ((0.0, 0.005), (200.0, 0.01), (350.0, 0.015), (500.0, 0.02))
    assert mt.BITMEX_XBTUSD_MAX_XBT == 650.0


def test_bitmex_trade_example_whole_position_at_its_step():
    # riskLimitsExamples: 180 XBT -> "0.50% (0.90 XBT)"; after the order, 230 XBT -> "1.00%", whole position.
    assert 180.0 * step_rate(mt.BITMEX_XBTUSD_XBT, 180.0) == pytest.approx(0.90)
    assert 230.0 * step_rate(mt.BITMEX_XBTUSD_XBT, 230.0) == pytest.approx(2.30)


def test_bitmex_usd_steps_are_the_xbt_steps_at_the_response_s_mark_price():
    # markPrice 97,849.76 USD: 200 XBT = 19,569,952 USD; 350 XBT = 34,247,416; 500 XBT = 48,924,880.
    assert mt.BITMEX_XBTUSD_MARK_USD == 97_849.76
    assert mt.BITMEX_XBTUSD == ((0.0, 0.005), (19_569_952.0, 0.01), (34_247_416.0, 0.015), (48_924_880.0, 0.02))
