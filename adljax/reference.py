"""The reference engine: the rules of ``docs/rules.md`` stated a second time, event by event.

This module is written to be read, not to be fast. It loops over scenarios
one at a time, then over steps, then over rows and markets with plain Python
loops and Python floats (float64). Every function below is one rule of
``docs/rules.md``; its docstring quotes the rule. A risk engineer should be
able to read it next to a venue's documentation and follow every step.

The fast engine :func:`adljax.simulate` takes the same inputs and returns the
same :class:`~adljax.model.outcome.Outcome`; the tests compare the two.

Layout of one step (:func:`step`)::

    0. clock_and_mark      cooldowns tick down, impact decays, m = oracle·exp(impact)
    1. margin_check        traders with a position and AV < MR are liquidatable
    2. market_liquidation  ready rows (and the unwinding vault) send orders; each
                           market's two sides fill against the step's depth; the
                           LP row takes the fills; liquidated rows pay the fee
    3. backstop            vault: takes over rows with AV < ratio·MR, in row order
       insurance_backstop  insurance: the fund pays deficits, in row order
    4. adl                 bankrupt rows (AV < 0) are closed against opposite
                           positions (queue, random order, pro rata), or
       socialize           their deficit is charged to every open position
    5. end of step         prev_mark ← m

Rows: ``0..N-1`` traders, ``N`` the vault, ``N+1`` the liquidity provider (LP).
"""
from __future__ import annotations

import dataclasses
import itertools
import math

import numpy as np

from .model.book import Book, check_inputs
from .model.errors import InputError, check_bool, check_first_scenario, check_number, check_range
from .model.outcome import HISTORY, METRICS, Outcome
from .model.paths import Paths
from .model import tiers
from .model.venue import Venue

#: The rule choices this reference states; anything else raises InputError.
ADL_POLICIES = ("queue", "random_order", "pro_rata", "socialized")
ADL_SCORES = ("hyperliquid", "bitmex", "pnl")
ADL_PRICES = ("previous_mark", "bankruptcy", "mark")
BACKSTOPS = ("vault", "insurance", "none")
COOLDOWN_MODES = ("whole", "wait")
#: An ADL pool whose bankrupt quantity and counterparty capacity differ by less than this
#: (relative) is matched whole on both sides: the difference is rounding, not a position.
POOL_TOLERANCE = 1e-12
#: docs/rules.md, "Dust": a trade leaving at most this share of a position closes it.
DUST = 1e-12

__all__ = ["simulate", "step", "trade", "account_value", "notional", "maintenance_requirement",
           "clock_and_mark", "margin_check", "market_liquidation", "fill_side", "backstop",
           "insurance_backstop", "adl", "socialize", "adl_score", "adl_prices", "queue_allocation",
           "random_order_allocation", "pro_rata_allocation"]


# ---------------------------------------------------------------------------
# Inputs and state
# ---------------------------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class Settings:
    """The venue's numbers and rule choices for one run, as Python floats and strings."""

    maintenance_margin: list[float]  # mm[a], one per market: the rate of its first tier
    margin_tiers: list[list[tuple[float, float]]]  # per market its (lower_bound_usd, rate) table
    tier_mode: str                   # "deduction" | "step"
    partial_threshold: float         # USD notional above which a position closes in parts
    partial_fraction: float          # fraction of such a position per order
    cooldown: float                  # seconds a row is cooling after a partial order
    backstop_ratio: float            # the vault takes over rows with AV < ratio·MR
    slippage: float                  # fraction of price at which a step's depth is used up
    impact_coef: float               # the venue's ``impact``
    impact_half_life: float          # seconds
    liquidation_fee: float           # fraction of a liquidated row's filled notional
    vault_unwind: float              # share of each step's depth the vault may sell into
    dt: float                        # seconds per step
    cooldown_mode: str               # "whole" | "wait"
    adl_policy: str                  # "queue" | "random_order" | "pro_rata" | "socialized"
    adl_score: str                   # "hyperliquid" | "bitmex" | "pnl"
    adl_price: str                   # "previous_mark" | "bankruptcy" | "mark"
    backstop: str                    # "vault" | "insurance" | "none"


@dataclasses.dataclass
class State:
    """One scenario's mutable state: the book's rows, the fund, impact and the previous mark.

    ``cash[r]``, ``size[r][a]``, ``entry[r][a]``, ``cooldown[r]`` for every
    row ``r`` (traders, then the vault, then the LP); ``impact[a]`` and
    ``prev_mark[a]`` per market.
    """

    cash: list[float]
    size: list[list[float]]
    entry: list[list[float]]
    cooldown: list[float]
    insurance_fund: float
    impact: list[float]
    prev_mark: list[float]
    n_traders: int

    @property
    def n_rows(self) -> int:
        return len(self.cash)

    @property
    def n_markets(self) -> int:
        return len(self.impact)

    @property
    def vault(self) -> int:
        """Row index of the backstop vault (``N``)."""
        return self.n_traders

    @property
    def lp(self) -> int:
        """Row index of the liquidity provider (``N+1``)."""
        return self.n_traders + 1

    def traders(self) -> range:
        return range(self.n_traders)


@dataclasses.dataclass
class Tally:
    """What one scenario reports, accumulated over its steps (see ``adljax.model.outcome.METRICS``)."""

    market_liquidation_notional: float = 0.0
    market_liquidation_orders: int = 0
    partial_liquidation_orders: int = 0
    liquidation_fees: float = 0.0
    vault_unwind_notional: float = 0.0
    backstop_notional: float = 0.0
    backstop_accounts: int = 0
    adl_notional: float = 0.0
    adl_notional_vault: float = 0.0                               # of adl_notional, closed against the vault
    socialized_loss: float = 0.0
    adl_rows: set = dataclasses.field(default_factory=set)        # rows that ever lost to ADL
    bankrupt_rows: set = dataclasses.field(default_factory=set)   # rows ever bankrupt at ADL
    adl_steps: int = 0
    adl_markets: set = dataclasses.field(default_factory=set)     # markets with an ADL fill or charge
    bad_debt_backstop: float = 0.0
    bad_debt_adl: float = 0.0
    vault_start: float = 0.0
    vault_equity_min: float = 0.0
    total_value_start: float = 0.0
    conservation_error: float = 0.0
    zero_sum_error: float = 0.0


@dataclasses.dataclass
class StepReport:
    """What one step reports (the per-step history, ``adljax.model.outcome.HISTORY``)."""

    mark: list[float]
    vault_equity: float = 0.0
    market_liquidation_notional: float = 0.0
    backstop_notional: float = 0.0
    adl_notional: float = 0.0
    n_bankrupt: int = 0


# ---------------------------------------------------------------------------
# One trade (all position changes use it)
# ---------------------------------------------------------------------------

def trade(size: float, entry: float, cash: float, q: float, p: float) -> tuple[float, float, float]:
    """One trade of ``q`` units at price ``p`` (``q > 0`` buys); returns ``(size, entry, cash)``.

    Rule: "Row with (size s, entry e, cash c) trades q units at price p:
    closed part ``x = sign(s)·min(|q|, |s|)`` if ``s·q < 0``, else ``x = 0``;
    ``c += x·(p − e)``; opened part ``o = q + x``; new size ``s' = s + q``;
    new entry: 0 if ``s' = 0``; else if ``o = 0``, ``e`` unchanged; else
    ``(|s − x|·e + |o|·p) / (|s − x| + |o|)``."

    At mark ``m`` the row's account value changes by exactly ``q·(m − p)``.
    """
    s, e, c = float(size), float(entry), float(cash)
    if abs(s + q) <= DUST * abs(s):
        # Dust: "a trade that would leave at most DUST of the row's position
        # closes it exactly" -- such a remainder can only be rounding.
        q = -s
    if s * q < 0:
        x = math.copysign(min(abs(q), abs(s)), s)
    else:
        x = 0.0
    c = c + x * (p - e)
    o = q + x
    s_new = s + q
    if s_new == 0:
        e_new = 0.0
    elif o == 0:
        e_new = e
    else:
        kept = abs(s - x)
        e_new = (kept * e + abs(o) * p) / (kept + abs(o))
    return s_new, e_new, c


def apply_trade(state: State, r: int, a: int, q: float, p: float) -> None:
    """Row ``r`` trades ``q`` units of market ``a`` at price ``p`` (see :func:`trade`)."""
    state.size[r][a], state.entry[r][a], state.cash[r] = trade(
        state.size[r][a], state.entry[r][a], state.cash[r], q, p)


# ---------------------------------------------------------------------------
# Account value, notional, maintenance requirement
# ---------------------------------------------------------------------------

def account_value(state: State, r: int, m: list[float]) -> float:
    """``AV[r] = cash[r] + Σ_a size[r,a]·(m[a] − entry[r,a])`` (the sum over markets first, then the cash)."""
    unrealised = sum(state.size[r][a] * (m[a] - state.entry[r][a]) for a in range(state.n_markets))
    return state.cash[r] + unrealised


def below_zero(state: State, r: int, m: list[float], av: float) -> bool:
    """Rule (Dust): "``AV`` is below zero when ``AV < −dust·(|cash| + Σ_a |size|·(m + |entry|))``"
    -- below by more than the rounding of the sum that makes it."""
    scale = abs(state.cash[r]) + sum(abs(state.size[r][a]) * (m[a] + abs(state.entry[r][a]))
                                     for a in range(state.n_markets))
    return av < -DUST * scale


def notional(state: State, r: int, m: list[float]) -> float:
    """``NTL[r] = Σ_a |size[r,a]|·m[a]``."""
    return sum(abs(state.size[r][a]) * m[a] for a in range(state.n_markets))


def position_requirement(size: float, m: float, tiers: list[tuple[float, float]], mode: str) -> float:
    """One position's maintenance requirement in a market with margin table ``tiers``.

    Rule (Tiered margin): "a position of notional ``N = |size|·m`` is in tier ``k``, the last whose lower
    bound ``b_k ≤ N``; it needs ``N·r_k − d_k`` with ``d_0 = 0``, ``d_k = d_{k−1} + b_k·(r_k − r_{k−1})``
    (``deduction`` mode) or ``N·r_k`` (``step`` mode)." A one-tier market needs ``|size|·(m·r_0)``,
    evaluated in that order as the fast engine does: a book built with ``AV`` exactly at ``MR`` then sits
    on the same side of the check in both.
    """
    if len(tiers) == 1:
        return abs(size) * (m * tiers[0][1])
    n = abs(size) * m
    k = max(i for i, (bound, _) in enumerate(tiers) if n >= bound)
    rate = tiers[k][1]
    if mode == "step":
        return n * rate
    deduction = sum(tiers[j][0] * (tiers[j][1] - tiers[j - 1][1]) for j in range(1, k + 1))
    return n * rate - deduction


def maintenance_requirement(sizes: list[float], m: list[float], cfg: Settings) -> float:
    """``MR = Σ_a`` each position's :func:`position_requirement` for one row's positions ``sizes``."""
    return sum(position_requirement(sizes[a], m[a], cfg.margin_tiers[a], cfg.tier_mode) for a in range(len(sizes)))


def has_position(state: State, r: int) -> bool:
    """A row has a position when any ``size[r,a] ≠ 0`` (rules.md, "Rows, markets, state")."""
    return any(s != 0 for s in state.size[r])


# ---------------------------------------------------------------------------
# 0. Clock and mark
# ---------------------------------------------------------------------------

def clock_and_mark(state: State, oracle_t: list[float], cfg: Settings) -> list[float]:
    """Stage 0; returns the step's mark ``m``.

    Rule: "``cooldown[r] ← max(cooldown[r] − dt, 0)``.
    ``impact[a] ← impact[a] · 2^(−dt / impact_half_life)``.
    ``m[a] = oracle[t,a] · exp(impact[a])``."
    """
    for r in range(state.n_rows):
        state.cooldown[r] = max(state.cooldown[r] - cfg.dt, 0.0)
    decay = 2.0 ** (-cfg.dt / cfg.impact_half_life)
    for a in range(state.n_markets):
        state.impact[a] = state.impact[a] * decay
    return [oracle_t[a] * math.exp(state.impact[a]) for a in range(state.n_markets)]


# ---------------------------------------------------------------------------
# 1. Margin check
# ---------------------------------------------------------------------------

def margin_check(state: State, m: list[float], cfg: Settings) -> list[int]:
    """Stage 1; returns the liquidatable rows, in row order.

    Rule: "At ``m``: a trader row is liquidatable when it has a position and
    ``AV < MR``. The vault and the LP rows are never market-liquidated."
    """
    return [r for r in state.traders()
            if has_position(state, r)
            and account_value(state, r, m) < maintenance_requirement(state.size[r], m, cfg)]


# ---------------------------------------------------------------------------
# 2. Market liquidation
# ---------------------------------------------------------------------------

@dataclasses.dataclass
class Order:
    """One order of stage 2: ``row`` closes ``q`` units of ``market`` (``q > 0`` sells a long)."""

    row: int
    market: int
    q: float
    partial: bool = False


def liquidation_orders(state: State, liquidatable: list[int], m: list[float], cfg: Settings) -> list[Order]:
    """The traders' orders of stage 2.

    Rule: "A row is cooling while ``cooldown > 0``. Every liquidatable row is
    ready, except, with ``cooldown_mode = "wait"``, a cooling one. For each
    ready row and market with ``size ≠ 0``: if the row is not cooling and
    ``|size|·m > partial_threshold``, the order is ``q = partial_fraction·size``
    [...]; otherwise ``q = size`` (the whole position)."
    """
    orders = []
    for r in liquidatable:
        cooling = state.cooldown[r] > 0
        if cooling and cfg.cooldown_mode == "wait":
            continue                                   # not ready
        for a in range(state.n_markets):
            s = state.size[r][a]
            if s == 0:
                continue
            if not cooling and abs(s) * m[a] > cfg.partial_threshold:
                orders.append(Order(r, a, cfg.partial_fraction * s, partial=True))
            else:
                orders.append(Order(r, a, s))
    return orders


def vault_unwind_orders(state: State, m: list[float], depth_t: list[float], cfg: Settings) -> list[Order]:
    """The vault's unwind orders of stage 2.

    Rule: "The vault (when ``vault_unwind > 0``) also sends, in every market
    where it holds a position, an order
    ``q = sign(size)·min(|size|, vault_unwind·depth/m)`` [...]. Its order
    joins the same side as the traders' and fills the same way; it pays no fee."
    """
    if cfg.vault_unwind <= 0:
        return []
    v = state.vault
    orders = []
    for a in range(state.n_markets):
        s = state.size[v][a]
        if s == 0:
            continue
        q = math.copysign(min(abs(s), cfg.vault_unwind * depth_t[a] / m[a]), s)
        if q != 0:
            orders.append(Order(v, a, q))
    return orders


def fill_side(requested: float, depth: float, m: float, slippage: float, side: int) -> tuple[float, float, float]:
    """Fill one side of one market; returns ``(φ, F, price)``.

    ``requested`` is the side's notional ``O = Σ |q|·m``; ``side`` is ``-1``
    for the sell side (orders closing longs) and ``+1`` for the buy side.

    Rule: "fill ratio ``φ = min(1, depth/O)`` (``φ = 0`` when ``depth = 0``);
    filled notional ``F = φ·O``; sells fill at
    ``p_sell = m·(1 − slippage·F_sell/(2·depth))``, buys at
    ``p_buy = m·(1 + slippage·F_buy/(2·depth))``."
    With no depth, or no order on the side, nothing fills and the price is ``m``.
    """
    if depth == 0 or requested == 0:
        return 0.0, 0.0, m
    phi = min(1.0, depth / requested)
    filled = phi * requested
    price = m * (1.0 + side * slippage * filled / (2.0 * depth))
    return phi, filled, price


def market_liquidation(state: State, m: list[float], depth_t: list[float], liquidatable: list[int],
                       cfg: Settings, tally: Tally, report: StepReport) -> None:
    """Stage 2: send the orders, fill each market's two sides, settle fills, fees, impact, cooldowns.

    Rule: "Per market, the sell side (orders with ``q > 0``, closing longs)
    and the buy side (``q < 0``) are filled separately against the step's
    ``depth[t,a]``; every order fills ``φ·q`` (pro rata): the trader closes
    ``φ·q`` at the side's price (a trade of ``−φ·q``); the unfilled rest
    stays with the trader, and so does the remaining collateral; the LP row
    takes the fills: first one trade of ``+Σ_sell φ·q`` at ``p_sell``, then
    one trade of ``+Σ_buy φ·q`` at ``p_buy``."
    "Price impact (applied to the next step's mark):
    ``impact[a] ← impact[a] + impact_coef·(F_buy − F_sell)/depth``
    (0 when ``depth = 0``)."
    Partial orders: "right after this stage's fills, the row's cooldown is
    set to ``cooldown``".
    Reported: the traders' orders sent (filled or not) and their filled
    notional ``|φ·q|·m``; the vault's fills separately (``vault_unwind_notional``).
    """
    orders = liquidation_orders(state, liquidatable, m, cfg)
    tally.market_liquidation_orders += len(orders)
    tally.partial_liquidation_orders += sum(1 for o in orders if o.partial)
    orders += vault_unwind_orders(state, m, depth_t, cfg)

    # Per trader row, for the fee: filled notional, and the value its fills moved (fill·(price − m)).
    filled_notional = {r: 0.0 for r in state.traders()}
    av_before_fills = {r: account_value(state, r, m) for r in liquidatable}
    fill_value = {r: [] for r in liquidatable}
    cash_before = {r: state.cash[r] for r in liquidatable}
    close_terms = {r: [] for r in liquidatable}   # |fill|·(price + |entry|): the close's own scale
    for a in range(state.n_markets):
        sells = [o for o in orders if o.market == a and o.q > 0]
        buys = [o for o in orders if o.market == a and o.q < 0]
        depth = depth_t[a]
        # Requested notional O = Σ |q|·m (units summed first, then priced).
        phi_sell, f_sell, p_sell = fill_side(sum(abs(o.q) for o in sells) * m[a], depth, m[a], cfg.slippage, -1)
        phi_buy, f_buy, p_buy = fill_side(sum(abs(o.q) for o in buys) * m[a], depth, m[a], cfg.slippage, +1)

        # Every order closes its filled part at its side's price.
        for side_orders, phi, price in ((sells, phi_sell, p_sell), (buys, phi_buy, p_buy)):
            for o in side_orders:
                fill = phi * o.q
                entry_before = state.entry[o.row][a]
                apply_trade(state, o.row, a, -fill, price)
                ntl = abs(fill) * m[a]
                if o.row == state.vault:
                    tally.vault_unwind_notional += ntl
                else:
                    if fill != 0:
                        close_terms[o.row].append(abs(fill) * (price + abs(entry_before)))
                    filled_notional[o.row] += ntl
                    fill_value[o.row].append(fill * (price - m[a]))
                    tally.market_liquidation_notional += ntl
                    report.market_liquidation_notional += ntl
        # The liquidity provider takes the fills: sell side first, then buy side.
        apply_trade(state, state.lp, a, sum(phi_sell * o.q for o in sells), p_sell)
        apply_trade(state, state.lp, a, sum(phi_buy * o.q for o in buys), p_buy)

        if depth > 0:
            state.impact[a] = state.impact[a] + cfg.impact_coef * ((f_buy - f_sell) / depth)

    av_after_fills = {r: av_before_fills[r] + sum(fill_value[r]) for r in liquidatable}
    pay_liquidation_fees(state, filled_notional, av_after_fills, cfg, tally)
    for r in liquidatable:
        # Rule (Dust): "a market liquidation that leaves a trader row without positions, at cash within the
        # rounding of the close, |cash| ≤ dust·(|cash_before| + Σ_a |fill|·(price + |entry|)), leaves its
        # cash at exactly 0."
        flat = not any(x != 0 for x in state.size[r])
        if close_terms[r] and flat and abs(state.cash[r]) <= DUST * (abs(cash_before[r]) + sum(close_terms[r])):
            state.cash[r] = 0.0
    for o in orders:
        if o.partial:
            state.cooldown[o.row] = cfg.cooldown


def pay_liquidation_fees(state: State, filled_notional: dict[int, float], av_after_fills: dict[int, float],
                         cfg: Settings, tally: Tally) -> None:
    """The liquidated rows pay the liquidation fee.

    Rule: "each trader row pays
    ``min(liquidation_fee · Σ_a |filled units|·m, max(AV_after_fills, 0))``,
    where ``AV_after_fills = AV + Σ_a fill·(price − m)`` (the fee never
    creates bad debt). Fees go to the vault's cash when
    ``backstop = "vault"``, else to the insurance fund. A fee that takes all
    a flat row has left leaves its cash at exactly 0."
    """
    if cfg.liquidation_fee == 0:
        return
    for r, ntl in filled_notional.items():
        if ntl == 0:
            continue
        fee = min(cfg.liquidation_fee * ntl, max(av_after_fills[r], 0.0))
        state.cash[r] -= fee
        takes_all = av_after_fills[r] > 0 and fee == av_after_fills[r]
        if takes_all and not any(x != 0 for x in state.size[r]):
            # "A fee that takes all a flat row has left leaves its cash at exactly 0."
            state.cash[r] = 0.0
        if cfg.backstop == "vault":
            state.cash[state.vault] += fee
        else:
            state.insurance_fund += fee
        tally.liquidation_fees += fee


# ---------------------------------------------------------------------------
# 3. Backstop
# ---------------------------------------------------------------------------

def backstop(state: State, m: list[float], cfg: Settings, tally: Tally, report: StepReport) -> list[int]:
    """Stage 3 with ``backstop = "vault"``; returns the rows the vault took over.

    Rule: "At the same ``m``, with values after stage 2: a trader row with
    ``AV < backstop_ratio·MR`` is a candidate." That includes a row with no
    position left and ``AV < 0`` (its ``MR = 0``: it was filled below its
    bankruptcy price): the vault absorbs its deficit. "The vault considers
    candidates in row order and takes over each one as long as, with it and
    all earlier accepted ones, the vault's own ``AV ≥ MR`` (its positions
    after taking theirs); it stops at the first candidate it cannot carry.
    For the accepted rows: the vault's cash rises by their ``AV``; per
    market, the vault makes one trade of ``Σ_accepted size`` at ``m``; each
    accepted row is left with ``cash = 0``, no positions, ``cooldown = 0``."
    """
    A = state.n_markets
    v = state.vault
    candidates = [r for r in state.traders()
                  if account_value(state, r, m) < cfg.backstop_ratio * maintenance_requirement(state.size[r], m, cfg)]

    # Would the vault, holding everything accepted so far plus this row, still have AV >= MR?
    # (its AV plus the candidates' AVs, its positions plus theirs; the candidates' sums first)
    vault_av = account_value(state, v, m)
    taken_av = 0.0
    taken = [0.0] * A
    accepted: list[int] = []
    for r in candidates:
        trial_av = taken_av + account_value(state, r, m)
        trial_taken = [taken[a] + state.size[r][a] for a in range(A)]
        vault_size_after = [state.size[v][a] + trial_taken[a] for a in range(A)]
        if vault_av + trial_av >= maintenance_requirement(vault_size_after, m, cfg):
            accepted.append(r)
            taken_av, taken = trial_av, trial_taken
        else:
            break
    if not accepted:
        return []

    # The takeover: value first, then one vault trade per market at m.
    taken_size = [0.0] * A
    for r in accepted:
        av = account_value(state, r, m)
        state.cash[v] += av
        tally.bad_debt_backstop += max(-av, 0.0)
        for a in range(A):
            taken_size[a] += state.size[r][a]
            ntl = abs(state.size[r][a]) * m[a]
            tally.backstop_notional += ntl
            report.backstop_notional += ntl
    for a in range(A):
        apply_trade(state, v, a, taken_size[a], m[a])
    for r in accepted:
        state.cash[r] = 0.0
        state.size[r] = [0.0] * A
        state.entry[r] = [0.0] * A
        state.cooldown[r] = 0.0
    tally.backstop_accounts += len(accepted)
    return accepted


def insurance_backstop(state: State, m: list[float], tally: Tally) -> None:
    """Stage 3 with ``backstop = "insurance"``.

    Rule: "at the same ``m``, every trader row with ``AV < 0`` (with or
    without a position) is paid its deficit ``−AV`` in cash by the insurance
    fund, in row order, until the fund is empty (the last one paid partly).
    The row keeps its positions. Payments count in ``bad_debt_backstop``."
    ``backstop_accounts`` counts the rows paid anything.
    """
    fund0 = state.insurance_fund
    for r in state.traders():
        if state.insurance_fund <= DUST * fund0:   # (Dust: "a fund left with dust by rounding is empty")
            break
        av = account_value(state, r, m)
        if not below_zero(state, r, m, av):
            continue
        paid = min(-av, state.insurance_fund)
        state.cash[r] += paid
        state.insurance_fund -= paid
        tally.bad_debt_backstop += paid
        tally.backstop_accounts += 1
    if state.insurance_fund <= DUST * fund0:
        state.insurance_fund = 0.0   # emptied but for rounding: empty


# ---------------------------------------------------------------------------
# 4. Auto-deleveraging
# ---------------------------------------------------------------------------

def adl_score(s: float, e: float, av: float, m: float, score: str) -> float:
    """Queue score of a candidate's position ``s`` (entry ``e``, its row's ``AV`` before ADL) at ``m``.

    Rule:
    - ``hyperliquid``: ``(m/e if s > 0 else e/m) · (|s|·m / AV)``; ``+∞`` when ``AV = 0``;
    - ``bitmex``: ``PnL% = sign(s)·(m − e)/e``, ``EffLev = |s|·m / AV``;
      ``PnL%·EffLev`` if ``PnL% > 0`` else ``PnL%/EffLev``
      (``+∞`` resp. ``0`` at ``AV = 0``);
    - ``pnl``: ``s·(m − e)``.
    """
    if score == "hyperliquid":
        if av == 0:
            return math.inf
        ratio = m / e if s > 0 else e / m
        return ratio * (abs(s) * m / av)
    if score == "bitmex":
        pnl_pct = math.copysign(1.0, s) * (m - e) / e
        if av == 0:
            return math.inf if pnl_pct > 0 else 0.0
        eff_lev = abs(s) * m / av
        return pnl_pct * eff_lev if pnl_pct > 0 else pnl_pct / eff_lev
    if score == "pnl":
        return s * (m - e)
    raise InputError(f"adl_score: {score!r} is not one of {', '.join(map(repr, ADL_SCORES))}")


def adl_prices(state: State, bankrupt: list[int], av: list[float], m: list[float],
               cfg: Settings) -> dict[tuple[int, int], float]:
    """ADL price ``p[r,a]`` of every bankrupt row's position, from the pre-ADL state.

    Rule:
    - ``previous_mark``: ``prev_mark[a]`` (the start oracle in step 0);
    - ``mark``: ``m[a]``;
    - ``bankruptcy``: with the row's deficit ``D = −AV`` split across its
      markets by notional, ``p[r,a] = m[a] + D·(|size|·m[a]/NTL[r]) / size[r,a]``;
      closing everything there leaves the row at exactly 0.
    """
    prices: dict[tuple[int, int], float] = {}
    for r in bankrupt:
        ntl = notional(state, r, m)
        for a in range(state.n_markets):
            s = state.size[r][a]
            if s == 0:
                continue
            if cfg.adl_price == "previous_mark":
                prices[r, a] = state.prev_mark[a]
            elif cfg.adl_price == "mark":
                prices[r, a] = m[a]
            else:  # "bankruptcy"
                deficit = -av[r]
                prices[r, a] = m[a] + deficit * (abs(s) * m[a] / ntl) / s
    return prices


def walk(ordered_groups, matched: float) -> dict[int, float]:
    """Walk groups of ``(row, capacity)`` in order, each group closing up to its whole
    capacity (shared pro rata to capacity within the group), until ``matched`` units are closed."""
    closes: dict[int, float] = {}
    remaining = matched
    for group in ordered_groups:
        if remaining <= 0:
            break
        group_cap = sum(cap for _, cap in group)
        if group_cap <= remaining:
            for row, cap in group:
                closes[row] = cap
            remaining -= group_cap
        else:
            share = remaining / group_cap
            for row, cap in group:
                closes[row] = share * cap
            remaining = 0.0
    return closes


def queue_allocation(candidates: list[tuple[int, float, float]], matched: float) -> dict[int, float]:
    """Split ``matched`` units over ``(row, capacity, score)`` candidates by queue.

    Rule: "by score, highest first, each closing up to its whole position,
    the last one partially; candidates with exactly equal scores share pro
    rata to their size." Scores of ``+∞`` come first. When ``matched``
    covers every candidate's capacity, every candidate closes its whole
    position. Returns the units each row closes (``≤`` its capacity ``|size|``).
    """
    if matched >= sum(cap for _, cap, _ in candidates):
        return {row: cap for row, cap, _ in candidates}
    ranked = sorted(candidates, key=lambda c: c[2], reverse=True)
    groups = [[(row, cap) for row, cap, _ in g] for _, g in itertools.groupby(ranked, key=lambda c: c[2])]
    return walk(groups, matched)


def random_order_allocation(candidates: list[tuple[int, float, float]], matched: float,
                            start: int, n_rows: int) -> dict[int, float]:
    """Split ``matched`` units over ``(row, capacity, _)`` candidates in row order from ``start``.

    Rule (``random_order``, dYdX v4): "no ranking; rows in index order
    starting from a pseudo-random row ``start`` and wrapping around, each
    closing up to its whole position."
    """
    if matched >= sum(cap for _, cap, _ in candidates):
        return {row: cap for row, cap, _ in candidates}
    ordered = sorted(candidates, key=lambda c: (c[0] - start) % n_rows)
    return walk([[(row, cap)] for row, cap, _ in ordered], matched)


def pro_rata_allocation(candidates: list[tuple[int, float, float]], matched: float) -> dict[int, float]:
    """Split ``matched`` units over ``(row, capacity, _)`` candidates pro rata.

    Rule: "``pro_rata``: every candidate closes ``M/C`` of its position."
    """
    total = sum(cap for _, cap, _ in candidates)
    ratio = matched / total
    return {row: ratio * cap for row, cap, _ in candidates}


def adl(state: State, m: list[float], cfg: Settings, tally: Tally, report: StepReport, start: int = 0) -> None:
    """Stage 4: auto-deleveraging (``start`` is this step's first row for ``random_order``).

    Rule: "At the same ``m``, with values after stage 3:
    bankrupt rows: trader or vault rows with a position and ``AV < 0``;
    candidates: any row (traders, vault, LP) with ``AV ≥ 0``, in each market
    holding a position opposite to the pool it serves.
    Per market ``a``, the bankrupt longs form a pool of ``Q_L = Σ max(size, 0)``
    units to sell, served by candidate shorts of total capacity
    ``C_L = Σ max(−size, 0)``; bankrupt shorts likewise. Each pool: matched
    quantity ``M = min(Q, C)``; each bankrupt row closes the fraction
    ``f = M/Q`` of its position in that market at its ADL price ``p[r,a]``;
    the candidates close ``M`` units in all, split by the policy; every
    candidate fill in the pool is at one price ``P[a]``: the ADL price for
    ``previous_mark`` / ``mark``, and for ``bankruptcy`` the bankrupt side's
    average ``Σ |c_r|·p[r,a] / Σ |c_r|``.
    Scores are computed once per step from the state before any ADL fill;
    all markets are deleveraged from that same state."

    Report: ``bad_debt_adl += Σ_bankrupt max(−AV_before, 0) − max(−AV_after, 0)``
    (both at ``m``); ``adl_notional += Σ |units closed by candidates|·m``, of which
    ``adl_notional_vault`` the vault's own closed units ``× m`` (the counterparties close exactly
    the bankrupt side's units); ``adl_markets``: the markets with a fill or a charge.
    """
    R = state.n_rows
    # --- the pre-ADL state: everything below is decided from it -----------
    av = [account_value(state, r, m) for r in range(R)]
    traders_and_vault = list(state.traders()) + [state.vault]
    bankrupt = [r for r in traders_and_vault if has_position(state, r) and below_zero(state, r, m, av[r])]
    report.n_bankrupt = len(bankrupt)
    if not bankrupt:
        return
    tally.bankrupt_rows.update(bankrupt)
    if cfg.adl_policy == "socialized":
        any_charge = socialize(state, m, bankrupt, av, tally)
    else:
        any_charge = close_against_counterparties(state, m, bankrupt, av, cfg, tally, report, start)
    if any_charge:
        tally.adl_steps += 1
    for r in bankrupt:
        tally.bad_debt_adl += max(-av[r], 0.0) - max(-account_value(state, r, m), 0.0)


def close_against_counterparties(state: State, m: list[float], bankrupt: list[int], av: list[float],
                                 cfg: Settings, tally: Tally, report: StepReport, start: int) -> bool:
    """The pools of stage 4 for ``queue``, ``random_order`` and ``pro_rata``; True if anything filled."""
    R, A = state.n_rows, state.n_markets
    candidate_rows = [r for r in range(R) if av[r] >= 0 and has_position(state, r)]
    pre_size = [list(row) for row in state.size]
    pre_entry = [list(row) for row in state.entry]
    prices = adl_prices(state, bankrupt, av, m, cfg)
    if cfg.adl_policy == "queue":
        scores = {(r, a): adl_score(pre_size[r][a], pre_entry[r][a], av[r], m[a], cfg.adl_score)
                  for r in candidate_rows for a in range(A) if pre_size[r][a] != 0}
    else:
        scores = {}

    any_fill = False
    for a in range(A):
        # side +1: bankrupt longs sell to candidate shorts; side -1: bankrupt shorts buy from candidate longs.
        for side in (+1, -1):
            pool = [r for r in bankrupt if side * pre_size[r][a] > 0]
            takers = [(r, abs(pre_size[r][a]), scores.get((r, a), 0.0))
                      for r in candidate_rows if side * pre_size[r][a] < 0]
            if not pool or not takers:
                continue
            q_pool = sum(abs(pre_size[r][a]) for r in pool)
            capacity = sum(cap for _, cap, _ in takers)
            # Dust rule: sides equal but for rounding are matched whole on both sides.
            whole = abs(capacity - q_pool) <= POOL_TOLERANCE * max(q_pool, capacity)
            matched = q_pool if whole else min(q_pool, capacity)
            f = 1.0 if whole else matched / q_pool

            # The bankrupt side closes the fraction f at its own ADL prices.
            closed = {r: f * pre_size[r][a] for r in pool}
            for r in pool:
                apply_trade(state, r, a, -closed[r], prices[r, a])
            if state.vault in closed:   # the notional closed against the vault's bankrupt position
                tally.adl_notional_vault += abs(closed[state.vault]) * m[a]

            # One price for every counterparty fill in the pool.
            if cfg.adl_price == "bankruptcy":
                weight = sum(abs(closed[r]) for r in pool)
                pool_price = sum(abs(closed[r]) * prices[r, a] for r in pool) / weight
            else:
                pool_price = prices[pool[0], a]  # previous_mark or mark: the same for every row

            if whole:
                units = {r: cap for r, cap, _ in takers}
            elif cfg.adl_policy == "queue":
                units = queue_allocation(takers, matched)
            elif cfg.adl_policy == "random_order":
                units = random_order_allocation(takers, matched, start, R)
            else:
                units = pro_rata_allocation(takers, matched)
            for r, cap, _ in takers:  # row order
                u = units.get(r, 0.0)
                if u <= 0:
                    continue
                # A counterparty closes u units: a short buys (+u), a long sells (−u).
                q = -pre_size[r][a] if u == cap else side * u
                apply_trade(state, r, a, q, pool_price)
                tally.adl_rows.add(r)
                tally.adl_notional += u * m[a]
                report.adl_notional += u * m[a]
                tally.adl_markets.add(a)
                any_fill = True
    if cfg.adl_price == "bankruptcy":
        # "the price that leaves the bankrupt account at exactly 0": a bankrupt row closed
        # whole is set to exactly 0 rather than to 0 ± rounding.
        for r in bankrupt:
            if not has_position(state, r):
                state.cash[r] = 0.0
    return any_fill


def socialize(state: State, m: list[float], bankrupt: list[int], av: list[float], tally: Tally) -> bool:
    """Stage 4 with ``adl_policy = "socialized"`` (Drift); True if anything was charged.

    Rule: "no position is closed. Each bankrupt row's deficit ``D = −AV`` is
    split across its markets by notional, ``loss[a] = Σ_bankrupt D·|size|·m/NTL``.
    In each market, ``Δ[a] = loss[a] / Σ_{non-bankrupt rows} |size|`` (long
    plus short open interest of the rows that can pay), every non-bankrupt
    position pays ``Δ[a]·|size|`` in cash, and the bankrupt rows are credited
    their share (so they end at ``AV = 0``). A market whose other rows hold
    nothing cannot be charged; that share stays with the bankrupt row."
    """
    R, A = state.n_rows, state.n_markets
    payers = [r for r in range(R) if r not in bankrupt]
    # Each bankrupt row's share of its deficit in each market, from the pre-ADL state.
    share = {}
    for r in bankrupt:
        ntl = notional(state, r, m)
        for a in range(A):
            share[r, a] = -av[r] * abs(state.size[r][a]) * m[a] / ntl
    any_charge = False
    for a in range(A):
        loss = sum(share[r, a] for r in bankrupt)
        open_interest = sum(abs(state.size[r][a]) for r in payers)
        if loss == 0 or open_interest == 0:
            continue                                    # nothing to charge, or nobody to charge it to
        delta = loss / open_interest
        for r in payers:
            charge = delta * abs(state.size[r][a])
            if charge == 0:
                continue
            state.cash[r] -= charge
            tally.socialized_loss += charge
            tally.adl_rows.add(r)
            tally.adl_markets.add(a)
            any_charge = True
        for r in bankrupt:
            state.cash[r] += share[r, a]
    return any_charge


# ---------------------------------------------------------------------------
# One step
# ---------------------------------------------------------------------------

def pay_funding(state: State, m: list[float], funding_t: list[float]) -> None:
    """Stage 0, funding: "every position pays ``size·m·funding[t,a]`` of cash" (longs pay shorts when positive)."""
    for r in range(state.n_rows):
        for a in range(state.n_markets):
            state.cash[r] -= state.size[r][a] * m[a] * funding_t[a]


def step(state: State, oracle_t: list[float], depth_t: list[float], cfg: Settings, tally: Tally,
         adl_start: int = 0, funding_t: list[float] | None = None) -> StepReport:
    """One step of length ``dt``: stages 0–5 of ``docs/rules.md`` in order, then the step's bookkeeping.

    ``adl_start`` is the step's first row for the ``random_order`` ADL policy.
    Stage 5 rule: "``prev_mark ← m``."
    """
    m = clock_and_mark(state, oracle_t, cfg)                                # 0
    if funding_t is not None:
        pay_funding(state, m, funding_t)
    report = StepReport(mark=m)
    liquidatable = margin_check(state, m, cfg)                              # 1
    market_liquidation(state, m, depth_t, liquidatable, cfg, tally, report)  # 2
    if cfg.backstop == "vault":                                             # 3
        backstop(state, m, cfg, tally, report)
    elif cfg.backstop == "insurance":
        insurance_backstop(state, m, tally)
    adl(state, m, cfg, tally, report, adl_start)                            # 4
    state.prev_mark = list(m)                                               # 5

    # Bookkeeping: vault equity path, conservation of value, zero sum per market.
    report.vault_equity = account_value(state, state.vault, m)
    tally.vault_equity_min = min(tally.vault_equity_min, report.vault_equity)
    total = sum(account_value(state, r, m) for r in range(state.n_rows)) + state.insurance_fund
    tally.conservation_error = max(tally.conservation_error, abs(total - tally.total_value_start))
    for a in range(state.n_markets):
        net = sum(state.size[r][a] for r in range(state.n_rows))
        tally.zero_sum_error = max(tally.zero_sum_error, abs(net))
    return report


# ---------------------------------------------------------------------------
# The run
# ---------------------------------------------------------------------------

def settings_of(venue: Venue, n_markets: int, dt: float) -> Settings:
    """Check the venue and ``dt`` and read them as Python floats (no JAX, always float64)."""
    if not isinstance(venue, Venue):
        raise InputError(f"venue: expected an adljax.Venue (see adljax.venues), got {type(venue).__name__}")
    venue.validate()
    check_number("dt", dt)
    check_range("dt", dt, 0.0, np.inf, lo_open=True, hi_open=True)
    rules = venue.rules
    for field, allowed in (("adl_policy", ADL_POLICIES), ("adl_score", ADL_SCORES), ("adl_price", ADL_PRICES),
                           ("backstop", BACKSTOPS), ("cooldown_mode", COOLDOWN_MODES)):
        v = getattr(rules, field)
        if v not in allowed:
            raise InputError(f"{field}: {v!r} is not one the reference engine implements "
                             f"({', '.join(map(repr, allowed))})")
    if rules.temperature != 0:
        raise InputError(f"temperature: the reference engine states the hard rules only; got temperature="
                         f"{rules.temperature} (use venue.replace(temperature=0))")
    return Settings(
        maintenance_margin=[float(x) for x in venue.maintenance(n_markets)],
        margin_tiers=_tables(venue, n_markets),
        tier_mode=rules.tier_mode,
        partial_threshold=float(venue.partial_threshold),
        partial_fraction=float(venue.partial_fraction),
        cooldown=float(venue.cooldown),
        backstop_ratio=float(venue.backstop_ratio),
        slippage=float(venue.slippage),
        impact_coef=float(venue.impact),
        impact_half_life=float(venue.impact_half_life),
        liquidation_fee=float(venue.liquidation_fee),
        vault_unwind=float(venue.vault_unwind),
        dt=float(dt),
        cooldown_mode=rules.cooldown_mode,
        adl_policy=rules.adl_policy,
        adl_score=rules.adl_score,
        adl_price=rules.adl_price,
        backstop=rules.backstop,
    )


def _tables(venue, n_markets: int) -> list[list[tuple[float, float]]]:
    """Each market's margin table as the venue gives it (a one-rate market: ``[(0, mm)]``)."""
    if venue.margin_tiers is None:
        return [[(0.0, float(x))] for x in venue.maintenance(n_markets)]
    return [[(float(b), float(r)) for b, r in t] for t in tiers.per_market(venue.margin_tiers, n_markets)]


def adl_starts(key, n_scenarios: int, n_steps: int, n_rows: int, first_scenario: int = 0) -> list[list[int]]:
    """The ``random_order`` policy's first row of every scenario and step.

    Rule: "``start = randint(fold_in(key_s, t), 0, R)`` with
    ``key_s = fold_in(key, first_scenario + s)`` (the same start for every market of the
    step)". ``key=None`` means ``jax.random.key(0)``.
    """
    import jax

    keys = [jax.random.fold_in(key, first_scenario + s) for s in range(n_scenarios)]
    return [[int(jax.random.randint(jax.random.fold_in(keys[s], t), (), 0, n_rows)) for t in range(n_steps)]
            for s in range(n_scenarios)]


def _check_key(key):
    import jax
    import jax.numpy as jnp

    if key is None:
        return jax.random.key(0)
    if not (hasattr(key, "dtype") and jnp.issubdtype(key.dtype, jax.dtypes.prng_key)):
        raise InputError("key: expected a new-style key from jax.random.key(seed)")
    return key


def _host(name: str, x, dtype=np.float64) -> np.ndarray:
    try:
        return np.asarray(x, dtype=dtype)
    except Exception as err:  # a traced value, or not an array at all
        raise InputError(f"{name}: the reference engine needs concrete arrays ({err})") from None


def _books_per_scenario(book: Book, n_scenarios: int) -> list[dict[str, np.ndarray]]:
    """One book per scenario: a single book is used for every scenario; a batched one (leading S) row by row."""
    fields = {
        "all_cash": _host("book.all_cash", book.all_cash),
        "all_size": _host("book.all_size", book.all_size),
        "all_entry": _host("book.all_entry", book.all_entry),
        "cooldown": _host("book.cooldown", book.cooldown),
        "isolated": _host("book.isolated", book.isolated, bool),
        "insurance_fund": _host("book.insurance_fund", book.insurance_fund),
    }
    if fields["all_cash"].ndim not in (1, 2):
        raise InputError(f"book.all_cash: expected [R rows] or [S scenarios, R rows], got shape "
                         f"{fields['all_cash'].shape}")
    batched = fields["all_cash"].ndim == 2
    if batched and fields["all_cash"].shape[0] != n_scenarios:
        raise InputError(f"book: a batched book needs a leading axis of {n_scenarios} scenarios (as paths), "
                         f"got cash shape {fields['all_cash'].shape}")
    lead = (n_scenarios,) if batched else ()
    R = fields["all_cash"].shape[-1]
    A = fields["all_size"].shape[-1]
    if R < 2:
        raise InputError(f"book.all_cash: needs the vault and LP rows (R = N + 2 >= 2), got R = {R}")
    expected = {"all_size": lead + (R, A), "all_entry": lead + (R, A), "cooldown": lead + (R,),
                "isolated": lead + (R,), "insurance_fund": lead}
    for name, shape in expected.items():
        if fields[name].shape != shape:
            raise InputError(f"book.{name}: expected shape {shape}, got {fields[name].shape}")
    for name in ("all_cash", "all_size", "all_entry", "cooldown", "insurance_fund"):
        if not np.all(np.isfinite(fields[name])):
            raise InputError(f"book.{name}: has a NaN or infinite value")
    if batched:
        return [{k: v[s] for k, v in fields.items()} for s in range(n_scenarios)]
    return [fields] * n_scenarios


def simulate(venue: Venue, book: Book, paths: Paths, *, dt: float = 1.0, key=None, history: bool = False,
             first_scenario: int = 0) -> Outcome:
    """Run the waterfall over every scenario, event by event (the readable twin of :func:`adljax.simulate`).

    Args:
      venue: the venue's rules and numbers (:mod:`adljax.venues`).
      book: the starting :class:`Book`, one for every scenario, or a batch
        with a leading scenario axis S; or a :class:`~adljax.PositionBook` (run as its dense
        ``to_book()``, so small books only, and the final books are dense).
      paths: :class:`Paths` with ``oracle`` and ``depth`` [S, T, A].
      dt: seconds per step.
      key: ``jax.random.key`` for the ``random_order`` ADL policy; scenario
        ``s`` uses ``jax.random.fold_in(key, first_scenario + s)``. ``None`` means ``jax.random.key(0)``.
      history: also return the per-step series of ``adljax.model.outcome.HISTORY``.
      first_scenario: index of the first scenario in a study run in chunks.

    Returns:
      :class:`Outcome` with the final books ([S, ...] float64 arrays), the
      metrics of ``adljax.model.outcome.METRICS`` ([S] float64) and, when asked,
      the history.

    Raises:
      InputError: for bad paths, venue, ``dt``, key or book.
    """
    if not isinstance(paths, Paths):
        raise InputError(f"paths: expected an adljax.Paths, got {type(paths).__name__}")
    from .model.position_book import PositionBook

    if isinstance(book, PositionBook):     # the same rows and positions, as the dense arrays this engine reads
        book.validate(paths)
        book = book.to_book()
    if not isinstance(book, Book):
        raise InputError(f"book: expected an adljax.Book (see Book.from_accounts) or an adljax.PositionBook, "
                         f"got {type(book).__name__}")
    check_bool("history", history)
    check_first_scenario(first_scenario)
    check_inputs(book, paths)         # the checks adljax.simulate runs, in the book's dtype
    oracle = _host("paths.oracle", paths.oracle)
    depth = _host("paths.depth", paths.depth)
    funding = None if paths.funding is None else _host("paths.funding", paths.funding)
    S, T, A = oracle.shape
    cfg = settings_of(venue, A, dt)
    key = _check_key(key)
    books = _books_per_scenario(book, S)
    R = books[0]["all_cash"].shape[0]
    starts = (adl_starts(key, S, T, R, first_scenario) if cfg.adl_policy == "random_order"
              else [[0] * T for _ in range(S)])

    finals, metrics, histories = [], [], []
    for s in range(S):
        state, tally, reports = run_scenario(books[s], oracle[s], depth[s], cfg, starts[s],
                                             None if funding is None else funding[s])
        finals.append(state)
        metrics.append(report_metrics(state, tally, reports[-1].mark))
        histories.append(reports)

    out_book = Book.from_rows(
        all_cash=np.array([st.cash for st in finals], dtype=np.float64),
        all_size=np.array([st.size for st in finals], dtype=np.float64).reshape(S, R, A),
        all_entry=np.array([st.entry for st in finals], dtype=np.float64).reshape(S, R, A),
        cooldown=np.array([st.cooldown for st in finals], dtype=np.float64),
        isolated=np.array([b["isolated"] for b in books], dtype=bool),
        insurance_fund=np.array([st.insurance_fund for st in finals], dtype=np.float64),
    )
    out_metrics = {name: np.array([mt[name] for mt in metrics], dtype=np.float64) for name in METRICS}
    out_history = None
    if history:
        def series(field):
            return np.array([[getattr(rp, field) for rp in h] for h in histories], dtype=np.float64)
        out_history = {name: series(name) for name in HISTORY}
        out_history["mark"] = out_history["mark"].reshape(S, T, A)
    return Outcome(book=out_book, metrics=out_metrics, history=out_history)


def run_scenario(book: dict[str, np.ndarray], oracle: np.ndarray, depth: np.ndarray,
                 cfg: Settings, starts: list[int], funding: np.ndarray | None = None
                 ) -> tuple[State, Tally, list[StepReport]]:
    """One scenario: the start state, then :func:`step` for every ``t`` (``starts``: see :func:`adl_starts`)."""
    R = book["all_cash"].shape[0]
    A = oracle.shape[1]
    state = State(
        cash=[float(x) for x in book["all_cash"]],
        size=[[float(x) for x in row] for row in book["all_size"]],
        entry=[[float(x) for x in row] for row in book["all_entry"]],
        cooldown=[float(x) for x in book["cooldown"]],
        insurance_fund=float(book["insurance_fund"]),
        impact=[0.0] * A,                                  # "impact[a] (starts 0)"
        prev_mark=[float(x) for x in oracle[0]],           # "prev_mark[a] (starts at oracle[0,a])"
        n_traders=R - 2,
    )
    start_mark = [float(x) for x in oracle[0]]
    tally = Tally()
    tally.vault_start = account_value(state, state.vault, start_mark)
    tally.vault_equity_min = tally.vault_start
    tally.total_value_start = sum(account_value(state, r, start_mark) for r in range(R)) + state.insurance_fund
    reports = []
    for t in range(oracle.shape[0]):
        oracle_t = [float(x) for x in oracle[t]]
        depth_t = [float(x) for x in depth[t]]
        funding_t = None if funding is None else [float(x) for x in funding[t]]
        reports.append(step(state, oracle_t, depth_t, cfg, tally, starts[t], funding_t))
    return state, tally, reports


def report_metrics(state: State, tally: Tally, last_mark: list[float]) -> dict[str, float]:
    """The metrics of one scenario (``adljax.model.outcome.METRICS``), after its last step.

    ``bad_debt_residual = Σ max(−AV, 0)`` over trader and vault rows at the
    last step's mark; ``bad_debt = backstop + adl + residual``;
    ``vault_pnl`` = vault AV at the end minus at the start (at ``oracle[0]``).
    """
    rows = list(state.traders()) + [state.vault]
    residual = sum(max(-account_value(state, r, last_mark), 0.0) for r in rows)
    vault_end = account_value(state, state.vault, last_mark)
    out = {
        "market_liquidation_notional": tally.market_liquidation_notional,
        "market_liquidation_orders": float(tally.market_liquidation_orders),
        "partial_liquidation_orders": float(tally.partial_liquidation_orders),
        "liquidation_fees": tally.liquidation_fees,
        "vault_unwind_notional": tally.vault_unwind_notional,
        "backstop_notional": tally.backstop_notional,
        "backstop_accounts": float(tally.backstop_accounts),
        "adl_notional": tally.adl_notional,
        "adl_notional_vault": tally.adl_notional_vault,
        "socialized_loss": tally.socialized_loss,
        "n_adl_accounts": float(len(tally.adl_rows)),
        "n_bankrupt_accounts": float(len(tally.bankrupt_rows)),
        "adl_steps": float(tally.adl_steps),
        "adl_markets": float(len(tally.adl_markets)),
        "adl_indicator": 1.0 if tally.adl_steps > 0 else 0.0,   # "1 if ADL closed or charged anything"
        "bad_debt": tally.bad_debt_backstop + tally.bad_debt_adl + residual,
        "bad_debt_backstop": tally.bad_debt_backstop,
        "bad_debt_adl": tally.bad_debt_adl,
        "bad_debt_residual": residual,
        "vault_pnl": vault_end - tally.vault_start,
        "vault_equity_min": tally.vault_equity_min,
        "conservation_error": tally.conservation_error,
        "zero_sum_error": tally.zero_sum_error,
    }
    missing = set(METRICS) - set(out)
    if missing:  # a metric was added to outcome.METRICS: state its rule here too
        raise NotImplementedError(f"reference engine: no rule for metric(s) {sorted(missing)}")
    return {name: out[name] for name in METRICS}
