"""Venue presets: each venue's published rules and numbers, every field overridable.

Each number names its source (quotes and addresses in ``docs/venues.md``);
where a venue publishes nothing, the value is an assumption and says so.
Margins are the venue's published tiered table for its main market (BTC,
:mod:`adljax.model.margin_tables`) in every market; pass ``margin_tables``
per market (``hyperliquid(markets=[...])`` picks Hyperliquid's own table of
each coin), or ``max_leverage`` / ``maintenance_margin`` for one tier per
market.
"""
from __future__ import annotations

from typing import Sequence

from . import margin_tables as tables
from .errors import InputError
from .venue import Rules, Venue


def hyperliquid(markets: Sequence[str] | None = None, **overrides) -> Venue:
    """Hyperliquid (native perps, HLP liquidator vault as backstop).

    Published (Hyperliquid docs, "Liquidations"):
      - maintenance margin = half the initial margin at max leverage
        (1.25 % at 40× … 16.7 % at 3×); ``max_leverage`` defaults to 40
        (BTC's tier) for every market: pass one value per market.
      - positions over $100,000 notional close 20 % per order; after a
        partial liquidation the account has a 30 s cooldown during which its
        liquidation orders are for the entire position
        (``partial_threshold``, ``partial_fraction``, ``cooldown``,
        ``cooldown_mode="whole"``); no clearance fee.
      - backstop: the liquidator vault takes over an account whose equity
        is below 2/3 of its maintenance margin; the buffer is not returned.
      - ADL ranking ``(mark/entry)·(notional/account value)``, closing at the
        previous mark price; accounts with no position are never touched.
      - margin tiers (``margin_tiers``, "Margin tiers" page and the ``meta``
        endpoint's ``marginTables``): BTC 40× to $150M then 20× (1.25 %, then
        2.5 % with the deduction), in every market by default; ``markets``
        names the coins to give each its own table (ETH 25×/15× from $100M,
        SOL 20×/10× from $70M, XRP 20×/10× from $40M, DOGE, HYPE, ... 10×/5×
        from $20M, OP, ARB, BNB, ... 10×/5× from $3M).
    Assumed (not published): ``slippage`` 1 % to consume a step's depth,
    ``impact`` 0.01 of price per depth of net liquidation flow,
    ``impact_half_life`` 60 s.

    Args:
      markets: coin names, one per market of the book, whose published
        tables to use (:data:`adljax.model.margin_tables.HYPERLIQUID`); a
        coin without a published table is an error naming it.
      **overrides: any :class:`Venue` number (``max_leverage`` per market,
        which means one tier per market, ``margin_tiers``,
        ``partial_threshold``, ``partial_fraction``, ``cooldown``,
        ``backstop_ratio``, ``impact``, ...) or :class:`Rules` choice.
    """
    base = Venue(
        name="hyperliquid",
        rules=Rules(adl_policy="queue", adl_score="hyperliquid", adl_price="previous_mark", backstop="vault",
                    cooldown_mode="whole"),
        max_leverage=40.0,
        margin_tiers=tables.HYPERLIQUID["BTC"] if markets is None else hyperliquid_tables(markets),
        partial_threshold=100_000.0,
        partial_fraction=0.2,
        cooldown=30.0,
        backstop_ratio=2.0 / 3.0,
    )
    return base.replace(**overrides)


def hyperliquid_tables(markets: Sequence[str]) -> tuple:
    """Hyperliquid's published margin table of each coin of ``markets`` (one table per market)."""
    if isinstance(markets, str):
        raise InputError(f"markets: expected a list of coin names, got the text {markets!r}")
    unknown = [m for m in markets if m not in tables.HYPERLIQUID]
    if unknown:
        raise InputError(f"markets: no published Hyperliquid margin table for {unknown[0]!r} in "
                         f"adljax.model.margin_tables (known: {', '.join(tables.HYPERLIQUID)}); pass "
                         f"margin_tiers with one table per market, [(0, 1/(2·L))] for a coin of max leverage L")
    return tuple(tables.HYPERLIQUID[m] for m in markets)


def hyperliquid_builder(**overrides) -> Venue:
    """Hyperliquid builder-deployed (HIP-3) markets, e.g. trade.xyz: Hyperliquid's rules, no backstop.

    Published (trade.xyz docs): "XYZ assets are not backstopped by the
    Liquidator Vault"; if book liquidation fails, ADL follows, with
    Hyperliquid's sorting index at the previous mark price. The partial rule
    (> $100k: 20 %, 30 s) is inherited from HyperCore.
    Assumed: ``max_leverage`` 20 (per-asset values not found; deployers set
    them), and the same book model numbers as :func:`hyperliquid`.
    """
    base = hyperliquid(max_leverage=20.0).replace(name="hyperliquid_builder", backstop="none")
    return base.replace(**overrides)


def _insurance_queue_venue(name: str, *, max_leverage: float, liquidation_fee: float, margin_tiers,
                           tier_mode: str = "deduction") -> Venue:
    """The centralised-exchange shape: whole-position liquidation with a fee to the insurance
    fund, which backstops; then ADL by ``PnL%·EffLev`` at the bankruptcy price."""
    return Venue(
        name=name,
        rules=Rules(adl_policy="queue", adl_score="bitmex", adl_price="bankruptcy", backstop="insurance",
                    tier_mode=tier_mode),
        max_leverage=max_leverage,
        margin_tiers=margin_tiers,
        partial_threshold=float("inf"),
        liquidation_fee=liquidation_fee,
    )


def bitmex(**overrides) -> Venue:
    """BitMEX perpetual swaps (XBTUSD).

    Published: base maintenance margin 0.50 % and initial 1.00 % for XBTUSD
    (``max_leverage`` 100 → mm 1/(2·100) = 0.5 %); liquidation takes over the
    whole position and "your maintenance margin will be lost", with anything
    above the bankruptcy price going to the insurance fund; ADL when the
    fund cannot cover, ranked by ``PnL%·EffLev`` if ``PnL% > 0`` else
    ``PnL%/EffLev``, at the bankruptcy price; queue indicator in fifths.
    Modelled: the lost maintenance margin as ``liquidation_fee`` = 0.5 % of
    notional to the fund (capped at what the account has left); whole-position
    orders (``partial_threshold`` = ∞). Risk limits as step tiers
    (``tier_mode="step"``): the whole position at 0.5 % below 200 XBT, then
    +0.5 % each 150 XBT (1 %, 1.5 %, 2 % from 350 and 500 XBT), in USD at
    97,849.76 USD/XBT (:data:`adljax.model.margin_tables.BITMEX_XBTUSD`).
    Not modelled: risk-limit tiers' incremental FillOrKill steps.
    """
    base = _insurance_queue_venue("bitmex", max_leverage=100.0, liquidation_fee=0.005,
                                  margin_tiers=tables.BITMEX_XBTUSD, tier_mode="step")
    return base.replace(**overrides)


def binance(**overrides) -> Venue:
    """Binance USDⓈ-M futures (BTCUSDT).

    Published: BTCUSDT leverage brackets (``GET /fapi/v1/leverageBracket``,
    :data:`adljax.model.margin_tables.BINANCE_BTCUSDT`): 0.40 % to $300k, then
    0.5 %, 0.65 %, 1 %, ... 50 % from $1.2B, with the published ``cum``
    deductions; liquidation by the engine
    with a clearance fee to the insurance fund, BTCUSDT's 1.25 % of the
    amount liquidated (``liquidationFee`` "0.012500" in ``GET
    /fapi/v1/exchangeInfo``); ADL ranked by profit and leverage, at the
    bankruptcy price, queue shown in fifths.
    Assumed: the ranking uses BitMEX's ``PnL%·EffLev`` form (Binance's own
    "LeveragePnL" differs in detail); whole-position orders (brackets'
    incremental orders not modelled).
    """
    base = _insurance_queue_venue("binance", max_leverage=125.0, liquidation_fee=0.0125,
                                  margin_tiers=tables.BINANCE_BTCUSDT)
    return base.replace(**overrides)


def bybit(**overrides) -> Venue:
    """Bybit USDT perpetual (BTCUSDT).

    Published: BTCUSDT risk-limit tiers
    (:data:`adljax.model.margin_tables.BYBIT_BTCUSDT`): 0.5 % to $2M, then
    rising to 4.5 % from $75M, with the published MM deductions; liquidation
    takes over the position at the
    bankruptcy price and the remaining margin goes to the insurance fund;
    ADL of the highest "profit and effective leverage" at the bankruptcy
    price. Assumed: the remaining margin as a 0.5 % ``liquidation_fee``;
    BitMEX's ranking formula (Bybit publishes only its ingredients);
    whole-position orders.
    """
    base = _insurance_queue_venue("bybit", max_leverage=100.0, liquidation_fee=0.005,
                                  margin_tiers=tables.BYBIT_BTCUSDT)
    return base.replace(**overrides)


def dydx_v4(**overrides) -> Venue:
    """dYdX v4 (BTC-USD).

    Published: maintenance margin = 0.6 × initial margin; BTC initial 2 %
    (50×) → ``maintenance_margin`` 1.2 %; liquidations may close whole
    positions; the liquidation fee goes 100 % to the insurance fund, which
    covers fills worse than the bankruptcy price; deleveraging (code:
    ``x/clob/keeper/deleveraging.go``) walks the opposite side's accounts in
    list order from a pseudo-random offset, closing each up to its position
    at the bankruptcy price: ``adl_policy="random_order"``.
    Assumed: fee 1.5 % (help docs; the code default is 0.5 %); the fund
    pays accounts' deficits in cash (an approximation of paying fill
    shortfalls); the cross-margin deficit split by notional (dYdX splits by
    maintenance-margin share: equal when markets share one mm).
    """
    base = Venue(
        name="dydx_v4",
        rules=Rules(adl_policy="random_order", adl_price="bankruptcy", backstop="insurance"),
        max_leverage=50.0,
        maintenance_margin=0.012,
        partial_threshold=float("inf"),
        liquidation_fee=0.015,
    )
    return base.replace(**overrides)


def drift(**overrides) -> Venue:
    """Drift v2.

    Published (protocol-v2 code and docs): bankrupt accounts are covered by
    the insurance fund, then by socialized loss: ``Δ = |loss| / (long base +
    short base)`` added to the cumulative funding of both sides, so every
    open position of the market pays per contract; no position is closed.
    Assumed: ``max_leverage`` 20 → mm 2.5 % (BTC margin ratios not found);
    liquidator and insurance fees (per market, not found) as 1 % to the
    fund; whole-position orders.
    """
    base = Venue(
        name="drift",
        rules=Rules(adl_policy="socialized", adl_price="mark", backstop="insurance"),
        max_leverage=20.0,
        partial_threshold=float("inf"),
        liquidation_fee=0.01,
    )
    return base.replace(**overrides)


#: Every preset by name.
PRESETS = {f.__name__: f for f in (hyperliquid, hyperliquid_builder, bitmex, binance, bybit, dydx_v4, drift)}
