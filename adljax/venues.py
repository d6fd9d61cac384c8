"""Venue presets: each venue's published rules and numbers, every field overridable.

Each number names its source; where a venue publishes nothing, the value is
an assumption and says so.
"""
from __future__ import annotations

from .venue import Rules, Venue


def hyperliquid(**overrides) -> Venue:
    """Hyperliquid (native perps, HLP liquidator vault as backstop).

    Published (Hyperliquid docs, "Liquidations"):
      - maintenance margin = half the initial margin at max leverage
        (1.25 % at 40× … 16.7 % at 3×); ``max_leverage`` defaults to 40
        (BTC's tier) for every market: pass one value per market.
      - positions over $100,000 notional close 20 % per order, then a 30 s
        cooldown (``partial_threshold``, ``partial_fraction``, ``cooldown``).
      - backstop: the liquidator vault takes over an account whose equity
        is below 2/3 of its maintenance margin; the buffer is not returned.
      - ADL ranking ``(mark/entry)·(notional/account value)``, closing at the
        previous mark price; accounts with no position are never touched.
    Assumed (not published): ``slippage`` 1 % to consume a step's depth,
    ``impact`` 0.01 of price per depth of net liquidation flow,
    ``impact_half_life`` 60 s.

    Args:
      **overrides: any :class:`Venue` number (``max_leverage`` per market,
        ``partial_threshold``, ``partial_fraction``, ``cooldown``,
        ``backstop_ratio``, ``impact``, ...) or :class:`Rules` choice.
    """
    base = Venue(
        name="hyperliquid",
        rules=Rules(adl_policy="queue", adl_score="hyperliquid", adl_price="previous_mark", backstop="vault"),
        max_leverage=40.0,
        partial_threshold=100_000.0,
        partial_fraction=0.2,
        cooldown=30.0,
        backstop_ratio=2.0 / 3.0,
    )
    return base.replace(**overrides)
