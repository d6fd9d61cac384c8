"""Published maintenance-margin tier tables of real venues, as data.

Every table is a tuple of ``(lower_bound_usd, maintenance_rate)`` pairs: the first bound 0.0, the bounds
strictly rising, the rates fractions of notional that never fall. A position of notional ``N`` is in tier
``k``, the last whose lower bound ``b_k <= N``. Two modes read the same data:

- deduction mode (Hyperliquid, Binance, Bybit): the requirement is ``N*r_k - d_k`` with ``d_0 = 0`` and
  ``d_k = d_{k-1} + b_k*(r_k - r_{k-1})`` (:func:`deductions`), continuous in ``N``. Binance publishes
  ``d_k`` as ``cum`` and Bybit as ``mmDeduction``.
- step mode (BitMEX risk limits): the whole position at its tier's rate, ``N*r_k``, no deduction.

Hyperliquid publishes leverage, not rates: its maintenance rate is half the initial margin at the tier's
maximum leverage, ``1/(2*max_leverage)`` (:func:`from_leverage`). A Hyperliquid coin not listed in
:data:`HYPERLIQUID` has one tier at its ``maxLeverage`` (a ``marginTableId`` under 50 is that single tier).

Venues change these numbers; each table names its source and the date of the copy it was read from.
``docs/venues.md`` ("Margin tiers") quotes the sources. Plain Python and NumPy: nothing here traces.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np

from . import tiers
from .tiers import from_leverage

Table = tuple[tuple[float, float], ...]


def deductions(table: Sequence[tuple[float, float]]) -> np.ndarray:
    """The deduction ``d_k`` of every tier of ``table``: ``d_0 = 0``, ``d_k = d_{k-1} + b_k*(r_k - r_{k-1})``.

    With it the deduction-mode requirement ``N*r_k - d_k`` is continuous at every bound.
    """
    t = np.asarray(table, dtype=np.float64).reshape(-1, 2)
    return tiers.deductions(t[:, 0], t[:, 1])


# --- Hyperliquid ------------------------------------------------------------------------------------------
# Source: https://hyperliquid.gitbook.io/hyperliquid-docs/trading/margin-tiers (stored copy, undated) — "BTC
# 0-150M 40 >150M 20", "ETH 0-100M 25 >100M 15", "SOL 0-70M 20 >70M 10", "XRP 0-40M 20 >40M 10",
# "DOGE, kPEPE, SUI, ... 0-20M 10 >20M 5", "OP, ARB, ... 0-3M 10 >3M 5". The same numbers are the `meta` info
# response's `marginTables` (ids 51..56) and each coin's `marginTableId`, in a mainnet metaAndAssetCtxs
# response recorded in github.com/SwellNetwork/hyperliquid-go-sdk perp.go at commit 7243872 (2025-11-12).
# Leverage pairs by marginTableId, exactly as `meta` lists them (lowerBound, maxLeverage):
HYPERLIQUID_MARGIN_TABLES: dict[int, tuple[tuple[float, float], ...]] = {
    51: ((0.0, 10), (3_000_000.0, 5)),        # "tiered 10x"
    52: ((0.0, 10), (20_000_000.0, 5)),       # "tiered 10x (2)"
    53: ((0.0, 20), (40_000_000.0, 10)),      # "tiered 20x"
    54: ((0.0, 20), (70_000_000.0, 10)),      # "tiered 20x (2)"
    55: ((0.0, 25), (100_000_000.0, 15)),     # "tiered 25x"
    56: ((0.0, 40), (150_000_000.0, 20)),     # "tiered 40x"
}

# marginTableId of each coin, from the 2025-11-12 `meta` response above. Coins of tables 51 and 52 are
# those the docs page and that response agree on, plus PAXG, XPL (51) and PUMP, ZEC (52), which the response
# lists and the docs copy predates. Left out: MKR (delisted in the response), WIF and POPCAT (on table 52 in
# both sources, but a later `meta` copy has them on single tiers of 5x and 3x).
HYPERLIQUID_TABLE_ID: dict[str, int] = {
    "BTC": 56, "ETH": 55, "SOL": 54, "XRP": 53,
    **{coin: 52 for coin in (
        "DOGE", "kPEPE", "SUI", "WLD", "TRUMP", "LTC", "ENA", "AAVE", "kBONK", "LINK", "CRV", "AVAX", "ADA",
        "UNI", "NEAR", "TIA", "APT", "BCH", "HYPE", "FARTCOIN", "PUMP", "ZEC")},
    **{coin: 51 for coin in (
        "OP", "ARB", "LDO", "TON", "ONDO", "JUP", "INJ", "kSHIB", "SEI", "TRX", "BNB", "DOT", "PAXG", "XPL")},
}

# Coin -> (lower_bound_usd, maintenance_rate) table, rates 1/(2*max_leverage): BTC 1.25 % then 2.5 %.
HYPERLIQUID: dict[str, Table] = {
    coin: from_leverage(HYPERLIQUID_MARGIN_TABLES[table_id]) for coin, table_id in HYPERLIQUID_TABLE_ID.items()
}

# --- Binance USDⓈ-M BTCUSDT -------------------------------------------------------------------------------
# Source: GET https://fapi.binance.com/fapi/v1/leverageBracket?symbol=BTCUSDT, mainnet response captured
# 2026-09-02T10:54:01Z, recorded in github.com/bblac2000/BTC_Futures_E2E
# tests/fixtures/snapshots/leverageBracket.json (commit e9e7a32). Pairs are (notionalFloor, maintMarginRatio);
# initialLeverage 150, 100, 75, 50, 25, 20, 10, 5, 4, 3, 2, 1; the published `cum` column is deductions().
BINANCE_BTCUSDT: Table = (
    (0.0, 0.004),
    (300_000.0, 0.005),
    (800_000.0, 0.0065),
    (3_000_000.0, 0.01),
    (12_000_000.0, 0.02),
    (70_000_000.0, 0.025),
    (100_000_000.0, 0.05),
    (230_000_000.0, 0.10),
    (480_000_000.0, 0.125),
    (600_000_000.0, 0.15),
    (800_000_000.0, 0.25),
    (1_200_000_000.0, 0.50),
)
BINANCE_BTCUSDT_MAX_NOTIONAL = 1_800_000_000.0   # notionalCap of the last bracket

# --- Bybit BTCUSDT (USDT perpetual) -----------------------------------------------------------------------
# Source: https://bybitx.global/pt-PT/announcement-info/margin-parameters (Bybit's margin-parameters page,
# stored copy, undated), tiers 1-20 as listed: "1 | 2,000,000 | 100 | 0.5% | 0" ... "20 | 80,000,000 | 14 |
# 4.5% | 1,482,000". Bybit publishes each tier's risk limit (riskLimitValue, an UPPER bound); the lower bound
# of tier n is the risk limit of tier n-1. The published MM deduction column is deductions().
BYBIT_BTCUSDT: Table = (
    (0.0, 0.005),
    (2_000_000.0, 0.0056),
    (2_600_000.0, 0.0063),
    (3_200_000.0, 0.0067),
    (3_800_000.0, 0.0071),
    (4_400_000.0, 0.0077),
    (5_000_000.0, 0.0091),
    (5_600_000.0, 0.01),
    (8_500_000.0, 0.013),
    (10_000_000.0, 0.015),
    (14_000_000.0, 0.016),
    (20_000_000.0, 0.02),
    (28_000_000.0, 0.025),
    (38_000_000.0, 0.029),
    (50_000_000.0, 0.03),
    (55_000_000.0, 0.035),
    (60_000_000.0, 0.036),
    (65_000_000.0, 0.038),
    (70_000_000.0, 0.04),
    (75_000_000.0, 0.045),
)
BYBIT_BTCUSDT_MAX_NOTIONAL = 80_000_000.0   # risk limit of tier 20, the last the page lists

# --- BitMEX XBTUSD (step mode) ----------------------------------------------------------------------------
# Sources: GET /api/v1/instrument?symbol=XBTUSD response of 2024-11-24T23:33:19Z recorded in
# github.com/nautechsystems/nautilus_trader crates/adapters/bitmex/test_data/http_get_instrument_xbtusd.json:
# "maintMargin": 0.005, "riskLimit": 20000000000 (200 XBT), "riskStep": 15000000000 (150 XBT);
# https://www.bitmex.com/app/riskLimitsExamples — "At each step, the maintenance and initial margin are raised
# by the base maintenance margin", table "< 200 XBT 0.50%", "< 350 XBT 1.00%", "< 500 XBT 1.50%", "< 650 XBT
# 2.00%". The four steps that page lists; no published maximum number of steps was found.
# Position value of the inverse XBTUSD is in XBT; pairs are (lower_bound_xbt, whole-position rate).
BITMEX_XBTUSD_XBT: Table = (
    (0.0, 0.005),
    (200.0, 0.010),
    (350.0, 0.015),
    (500.0, 0.020),
)
BITMEX_XBTUSD_MAX_XBT = 650.0
# The same steps in USD at the mark price of that instrument response, 97,849.76 USD per XBT (inferred: the
# USD bounds of an inverse contract's XBT risk limits move with the price).
BITMEX_XBTUSD_MARK_USD = 97_849.76
BITMEX_XBTUSD: Table = (
    (0.0, 0.005),
    (19_569_952.0, 0.010),
    (34_247_416.0, 0.015),
    (48_924_880.0, 0.020),
)
