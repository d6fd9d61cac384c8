"""The Binance, Bybit, dYdX v4 and Drift presets carry the numbers and rules their venues publish.

Every expected value is written out here beside its source (address and section; docs/venues.md holds the quotes,
in its table "Sources of the tested preset numbers"), never read from the preset. Where a venue publishes nothing,
the preset's value is the model's assumption, numbered in docs/venues.md "What is assumed"; it is pinned here with
that number, so that changing it is a decision and not an accident. A preset contradicted by its source has its
own test, marked as an expected failure (strict) until the preset follows the source.

Settings a preset's rules never read are not pinned: with whole-position orders (``partial_threshold`` ∞) the
partial fraction, cooldown and cooldown mode never act; with an insurance fund the vault numbers never act. Plain
attribute checks on the presets' Venue and Rules, in NumPy: no JAX program is compiled.
"""
from __future__ import annotations

import math

import numpy as np
import pytest

from adljax import venues


def numbers(venue, n_markets: int = 1) -> dict:
    """The numbers a book of ``n_markets`` markets gets (what :meth:`Venue.params` hands the engine), as floats.

    Read from the Venue in NumPy, after the Venue's own range checks, so that no JAX program is compiled.
    """
    venue.validate()
    return {"maintenance_margin": np.asarray(venue.maintenance(n_markets)).tolist(),
            "partial_threshold": float(venue.partial_threshold), "liquidation_fee": float(venue.liquidation_fee),
            "slippage": float(venue.slippage), "impact": float(venue.impact),
            "impact_half_life": float(venue.impact_half_life), "temperature": float(venue.rules.temperature)}


#: Assumed by the model for every venue (docs/venues.md "What is assumed", item 12: no venue publishes them).
BOOK_MODEL = {"slippage": 0.01, "impact": 0.01, "impact_half_life": 60.0}


def test_binance_btcusdt_preset():
    v = venues.binance()
    assert v.name == "binance" and venues.PRESETS["binance"] is venues.binance
    # BTCUSDT's first bracket, notional <= 50,000 USDT: 125x, maintenance margin rate 0.40 % (initial 0.80 %):
    # https://www.binance.com/tr/support/announcement/86cf9aa472574b8cb2e05bb751c2a9a6 (leverage and margin table,
    # "0 < Position ≤ 50,000 125x 0.40% 0.80%"); the preset derives mm = 1/(2·125).
    assert v.max_leverage == 125.0 and v.maintenance_margin is None
    n = numbers(v)
    assert n["maintenance_margin"] == pytest.approx([0.0040], rel=1e-12)
    # One BTC margin for every market of a book unless given per market (adljax/model/venues.py, module docstring).
    assert numbers(v, 2)["maintenance_margin"] == pytest.approx([0.0040, 0.0040], rel=1e-12)
    # Whole-position orders: "the user's position will be closed at the bankruptcy price and the Insurance Fund will
    # take over" (https://docs.traderwagon.com/faq/futures-trading-introduction/liquidation-protocol, Binance's
    # protocol); the bracket-lowering IOC order before it is not modelled (preset docstring).
    assert n["partial_threshold"] == math.inf
    r = v.rules
    # Insurance fund takes over bankrupt positions (https://www.binance.com/en/support/faq/360033525371,
    # "Insurance Fund"); ADL closes "at the bankruptcy price of the initial liquidated order"
    # (https://www.binance.com/hi/amp/support/faq/360033525471), from a ranked queue ("LeveragePnL").
    assert (r.backstop, r.adl_policy, r.adl_price) == ("insurance", "queue", "bankruptcy")
    # The ranking: BitMEX's PnL%·EffLev stands in for Binance's LeveragePnL (assumed, item 7).
    assert r.adl_score == "bitmex"
    assert r.temperature == 0.0 and n["temperature"] == 0.0                   # the hard rules
    assert {k: n[k] for k in BOOK_MODEL} == BOOK_MODEL


def test_binance_clearance_fee_is_btcusdt_published_rate():
    # GET /fapi/v1/exchangeInfo, symbol field "liquidationFee" ("liquidation fee rate",
    # https://developers.binance.com/docs/derivatives/usds-margined-futures/market-data/rest-api/Exchange-Information):
    # BTCUSDT "0.012500" in the responses of 2024-03-28 and 2025-03-10 (docs/venues.md, Binance, clearance fee).
    # Charged on the amount liquidated, to the insurance fund: the engine's liquidation_fee.
    assert numbers(venues.binance())["liquidation_fee"] == pytest.approx(0.0125, rel=1e-12)


def test_bybit_btcusdt_preset():
    v = venues.bybit()
    assert v.name == "bybit" and venues.PRESETS["bybit"] is venues.bybit
    # BTCUSDT risk limit tier 1 (to 2,000,000 USDT): 100x, maintenance margin rate 0.5 %, deduction 0:
    # https://bybitx.global/pt-PT/announcement-info/margin-parameters ("1 | 2,000,000 | 100 | 0.5% | 0").
    assert v.max_leverage == 100.0 and v.maintenance_margin is None
    n = numbers(v)
    assert n["maintenance_margin"] == pytest.approx([0.005], rel=1e-12)
    assert numbers(v, 2)["maintenance_margin"] == pytest.approx([0.005, 0.005], rel=1e-12)
    # Lowest tier: "this position shall be taken over by the liquidation engine at the bankruptcy price"
    # (https://help.bybit.com/hc/en-us/articles/900000167723-Liquidation-Process-USDT-Contract-): whole positions.
    assert n["partial_threshold"] == math.inf
    # No separate fee: the margin left when closed above the bankruptcy price "will be contributed to the Insurance
    # Fund" (https://help.bybit.com/hc/en-us/articles/360011431853-What-is-Bankruptcy-Price-); modelled as a fee of
    # the tier's maintenance margin, 0.5 % of notional (assumed, item 6).
    assert n["liquidation_fee"] == pytest.approx(0.005, rel=1e-12)
    r = v.rules
    # Insurance fund, then ADL "at the bankruptcy price of the liquidated order", ranked by "highest profit and
    # effective leverage use" (https://help.bybit.com/hc/en-us/articles/900000031623-What-is-Auto-Deleveraging-ADL-).
    assert (r.backstop, r.adl_policy, r.adl_price) == ("insurance", "queue", "bankruptcy")
    assert r.adl_score == "bitmex"                # Bybit publishes only the ingredients (assumed, item 7)
    assert r.temperature == 0.0 and n["temperature"] == 0.0
    assert {k: n[k] for k in BOOK_MODEL} == BOOK_MODEL


def test_dydx_v4_btc_usd_preset():
    v = venues.dydx_v4()
    assert v.name == "dydx_v4" and venues.PRESETS["dydx_v4"] is venues.dydx_v4
    # Large-Cap liquidity tier (BTC-USD): initial margin fraction 2 % (50x), maintenance fraction 0.6 of it:
    # https://docs.dydx.community/dydx-unlimited/modules/governance/governance-adjustable-parameters/markets
    # ("0 | 20000 [0.02] | 600000 [0.6]"): mm = 0.02 · 0.6 = 1.2 %, not half the initial margin.
    assert v.max_leverage == 50.0
    n = numbers(v)
    assert n["maintenance_margin"] == pytest.approx([0.02 * 0.6], rel=1e-12)
    assert numbers(v, 2)["maintenance_margin"] == pytest.approx([0.012, 0.012], rel=1e-12)
    # The published fraction holds whatever leverage a study passes (docs/venues.md: dYdX keeps its own 1.2 %).
    assert numbers(venues.dydx_v4(max_leverage=20.0))["maintenance_margin"] == pytest.approx([0.012], rel=1e-12)
    # Code default MaxPositionPortionLiquidatedPpm 1_000_000: up to the whole position per block
    # (dydxprotocol/v4-chain protocol/x/clob/types/liquidations_config_keeper.go).
    assert n["partial_threshold"] == math.inf
    # "Maximum Liquidation Penalty of 1.5%" (https://help.dydx.exchange/en/articles/8580691-liquidations-on-dydx-chain),
    # 100 % to the insurance fund; the code default is 0.5 % (assumed choice of the doc's value, item 6).
    assert n["liquidation_fee"] == pytest.approx(0.015, rel=1e-12)
    r = v.rules
    # Insurance fund, then deleveraging with no ranking: the opposite side's subaccounts in list order from a
    # pseudo-random start, at the bankruptcy price (dydxprotocol/v4-chain protocol/x/clob/keeper/deleveraging.go,
    # "// Start from a random subaccount."; liquidations.go, bankruptcy price).
    assert (r.backstop, r.adl_policy, r.adl_price) == ("insurance", "random_order", "bankruptcy")
    assert r.temperature == 0.0 and n["temperature"] == 0.0
    assert {k: n[k] for k in BOOK_MODEL} == BOOK_MODEL


def test_drift_v2_preset():
    v = venues.drift()
    assert v.name == "drift" and venues.PRESETS["drift"] is venues.drift
    # BTC-PERP margin ratios not found; 20x (the leverage Drift's SDK guides state for crypto perps) and half of its
    # initial margin, mm 2.5 % (assumed, item 10).
    assert v.max_leverage == 20.0 and v.maintenance_margin is None
    n = numbers(v)
    assert n["maintenance_margin"] == pytest.approx([0.025], rel=1e-12)
    assert numbers(v, 2)["maintenance_margin"] == pytest.approx([0.025, 0.025], rel=1e-12)
    # v2 liquidates in portions over slots (drift-labs/protocol-v2 programs/drift/src/controller/liquidation.rs,
    # calculate_max_pct_to_liquidate); modelled as whole-position orders (assumed, preset docstring).
    assert n["partial_threshold"] == math.inf
    # liquidator_fee and if_liquidation_fee are per-market values not found: 1 % to the fund (assumed, item 6).
    assert n["liquidation_fee"] == pytest.approx(0.01, rel=1e-12)
    r = v.rules
    # Bankruptcy: the insurance fund first, then socialized loss Δ = |loss| / (long base + short base) on both sides'
    # cumulative funding; nothing is closed (liquidation.rs resolve_perp_bankruptcy; math/liquidation.rs
    # calculate_funding_rate_deltas_to_resolve_bankruptcy).
    assert (r.backstop, r.adl_policy) == ("insurance", "socialized")
    assert r.temperature == 0.0 and n["temperature"] == 0.0
    assert {k: n[k] for k in BOOK_MODEL} == BOOK_MODEL
