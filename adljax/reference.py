"""The reference engine: the rules of ``docs/rules.md`` stated a second time, event by event.

This module is written to be read, not to be fast. It loops over scenarios
one at a time, then over steps, then over rows and markets with plain Python
loops and Python floats (float64). Every function below is one rule of
``docs/rules.md``; its docstring quotes the rule. A risk engineer should be
able to read it next to a venue's documentation and follow every step.

The fast engine :func:`adljax.simulate` takes the same inputs and returns the
same :class:`~adljax.outcome.Outcome`; the tests compare the two.

Layout of one step (``step``)::

    0. clock_and_mark      cooldowns tick down, impact decays, m = oracle·exp(impact)
    1. margin_check        traders with a position and AV < MR are liquidatable
    2. market_liquidation  ready rows send orders; each market's two sides fill
                           against the step's depth; the LP row takes the fills
    3. backstop            the vault takes over rows with AV < ratio·MR, in row order
    4. adl                 bankrupt rows (AV < 0) are closed against opposite
                           positions, by queue or pro rata
    5. end of step         prev_mark ← m; rows that sent a partial order wait

Rows: ``0..N-1`` traders, ``N`` the vault, ``N+1`` the liquidity provider (LP).
"""
from __future__ import annotations

import dataclasses
import itertools
import math

import numpy as np

from .book import Book
from .errors import InputError, check_range
from .outcome import HISTORY, METRICS, Outcome
from .paths import Paths
from .venue import ADL_POLICIES, ADL_PRICES, ADL_SCORES, BACKSTOPS, Venue

__all__ = ["simulate", "step", "trade", "account_value", "notional", "maintenance_requirement",
           "clock_and_mark", "margin_check", "market_liquidation", "fill_side", "backstop", "adl",
           "adl_score", "adl_prices", "queue_allocation", "pro_rata_allocation"]


# ---------------------------------------------------------------------------
# Inputs and state
# ---------------------------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class Settings:
    """The venue's numbers and rule choices for one run, as Python floats and strings."""

    maintenance_margin: list[float]  # mm[a], one per market
    partial_threshold: float         # USD notional above which a position closes in parts
    partial_fraction: float          # fraction of such a position per order
    cooldown: float                  # seconds a row waits after a partial order
    backstop_ratio: float            # the vault takes over rows with AV < ratio·MR
    slippage: float                  # fraction of price at which a step's depth is used up
    impact_coef: float               # the venue's ``impact``
    impact_half_life: float          # seconds
    dt: float                        # seconds per step
    adl_policy: str                  # "queue" | "pro_rata"
    adl_score: str                   # "hyperliquid" | "bitmex" | "pnl"
    adl_price: str                   # "previous_mark" | "bankruptcy" | "mark"
    backstop: str                    # "vault" | "none"


@dataclasses.dataclass
class State:
    """One scenario's mutable state: the book's rows, plus impact and the previous mark.

    ``cash[r]``, ``size[r][a]``, ``entry[r][a]``, ``cooldown[r]`` for every
    row ``r`` (traders, then the vault, then the LP); ``impact[a]`` and
    ``prev_mark[a]`` per market.
    """

    cash: list[float]
    size: list[list[float]]
    entry: list[list[float]]
    cooldown: list[float]
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
    """What one scenario reports, accumulated over its steps (see ``adljax.outcome.METRICS``)."""

    market_liquidation_notional: float = 0.0
    market_liquidation_orders: int = 0
    partial_liquidation_orders: int = 0
    backstop_notional: float = 0.0
    backstop_accounts: int = 0
    adl_notional: float = 0.0
    adl_rows: set = dataclasses.field(default_factory=set)        # counterparties ever deleveraged
    bankrupt_rows: set = dataclasses.field(default_factory=set)   # rows ever bankrupt at ADL
    adl_steps: int = 0
    bad_debt_backstop: float = 0.0
    bad_debt_adl: float = 0.0
    vault_start: float = 0.0
    vault_equity_min: float = 0.0
    total_value_start: float = 0.0
    conservation_error: float = 0.0
    zero_sum_error: float = 0.0


@dataclasses.dataclass
class StepReport:
    """What one step reports (the per-step history, ``adljax.outcome.HISTORY``)."""

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
    s, e, c = size, entry, cash
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
    """``AV[r] = cash[r] + Σ_a size[r,a]·(m[a] − entry[r,a])``."""
    av = state.cash[r]
    for a in range(state.n_markets):
        av += state.size[r][a] * (m[a] - state.entry[r][a])
    return av


def notional(state: State, r: int, m: list[float]) -> float:
    """``NTL[r] = Σ_a |size[r,a]|·m[a]``."""
    return sum(abs(state.size[r][a]) * m[a] for a in range(state.n_markets))


def maintenance_requirement(sizes: list[float], m: list[float], mm: list[float]) -> float:
    """``MR = Σ_a |size[a]|·m[a]·mm[a]`` for one row's positions ``sizes``."""
    return sum(abs(sizes[a]) * m[a] * mm[a] for a in range(len(sizes)))


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
            and account_value(state, r, m) < maintenance_requirement(state.size[r], m, cfg.maintenance_margin)]


# ---------------------------------------------------------------------------
# 2. Market liquidation
# ---------------------------------------------------------------------------

def fill_side(requested: float, depth: float, m: float, slippage: float, side: int) -> tuple[float, float, float]:
    """Fill one side of one market; returns ``(φ, F, price)``.

    ``requested`` is the side's notional ``O = Σ |q|·m``; ``side`` is ``-1``
    for the sell side (orders closing longs) and ``+1`` for the buy side.

    Rule: "fill ratio ``φ = min(1, depth/O)`` (``φ = 0`` when ``depth = 0``);
    filled notional ``F = φ·O``; sells fill at
    ``p_sell = m·(1 − slippage·F_sell/(2·depth))``, buys at
    ``p_buy = m·(1 + slippage·F_buy/(2·depth))``."
    With no depth nothing fills and the price does not matter; it is ``m``.
    """
    if depth == 0:
        return 0.0, 0.0, m
    phi = 1.0 if requested == 0 else min(1.0, depth / requested)
    filled = phi * requested
    price = m * (1.0 + side * slippage * filled / (2.0 * depth))
    return phi, filled, price


def liquidation_orders(state: State, ready: list[int], m: list[float], cfg: Settings,
                       tally: Tally) -> tuple[list[tuple[int, int, float]], set[int]]:
    """The orders of the ready rows: ``(row, market, q)``, and the rows that sent a partial order.

    Rule: "For each ready row and market with ``size ≠ 0``: if
    ``|size|·m > partial_threshold`` the order is ``q = partial_fraction·size``
    and the row's cooldown is set to ``cooldown`` after this step's fills;
    otherwise ``q = size`` (the whole position)."
    Every order sent counts in ``market_liquidation_orders`` (filled or not).
    """
    orders: list[tuple[int, int, float]] = []
    partial_rows: set[int] = set()
    for r in ready:
        for a in range(state.n_markets):
            s = state.size[r][a]
            if s == 0:
                continue
            if abs(s) * m[a] > cfg.partial_threshold:
                q = cfg.partial_fraction * s
                partial_rows.add(r)
                tally.partial_liquidation_orders += 1
            else:
                q = s
            tally.market_liquidation_orders += 1
            orders.append((r, a, q))
    return orders, partial_rows


def market_liquidation(state: State, m: list[float], depth_t: list[float], liquidatable: list[int],
                       cfg: Settings, tally: Tally, report: StepReport) -> set[int]:
    """Stage 2; returns the rows that sent a partial order (they wait, stage 5).

    Rule: "A liquidatable row with ``cooldown = 0`` is ready. [...] Per market,
    the sell side (orders with ``q > 0``, closing longs) and the buy side
    (``q < 0``) are filled separately against the step's ``depth[t,a]``;
    every order fills ``φ·q`` (pro rata): the trader closes ``φ·q`` at the
    side's price (a trade of ``−φ·q``); the unfilled rest stays with the
    trader, and so does the remaining collateral; the LP row takes the fills:
    first one trade of ``+Σ_sell φ·q`` at ``p_sell``, then one trade of
    ``+Σ_buy φ·q`` at ``p_buy``.
    Price impact (applied to the next step's mark):
    ``impact[a] ← impact[a] + impact_coef·(F_buy − F_sell)/depth``
    (0 when ``depth = 0``)."
    """
    ready = [r for r in liquidatable if state.cooldown[r] == 0]
    orders, partial_rows = liquidation_orders(state, ready, m, cfg, tally)
    for a in range(state.n_markets):
        sells = [(r, q) for (r, b, q) in orders if b == a and q > 0]
        buys = [(r, q) for (r, b, q) in orders if b == a and q < 0]
        depth = depth_t[a]
        phi_sell, f_sell, p_sell = fill_side(sum(abs(q) * m[a] for _, q in sells), depth, m[a], cfg.slippage, -1)
        phi_buy, f_buy, p_buy = fill_side(sum(abs(q) * m[a] for _, q in buys), depth, m[a], cfg.slippage, +1)

        # The traders close their filled parts.
        for r, q in sells:
            apply_trade(state, r, a, -phi_sell * q, p_sell)
        for r, q in buys:
            apply_trade(state, r, a, -phi_buy * q, p_buy)
        # The liquidity provider takes the fills: sell side first, then buy side.
        apply_trade(state, state.lp, a, sum(phi_sell * q for _, q in sells), p_sell)
        apply_trade(state, state.lp, a, sum(phi_buy * q for _, q in buys), p_buy)

        filled = sum(abs(phi_sell * q) * m[a] for _, q in sells) + sum(abs(phi_buy * q) * m[a] for _, q in buys)
        tally.market_liquidation_notional += filled
        report.market_liquidation_notional += filled

        if depth > 0:
            state.impact[a] = state.impact[a] + cfg.impact_coef * (f_buy - f_sell) / depth
    return partial_rows


# ---------------------------------------------------------------------------
# 3. Backstop
# ---------------------------------------------------------------------------

def backstop(state: State, m: list[float], cfg: Settings, tally: Tally, report: StepReport) -> list[int]:
    """Stage 3; returns the rows the vault took over.

    Rule (``backstop = "vault"``): "At the same ``m``, with values after
    stage 2: a trader row with a position and ``AV < backstop_ratio·MR`` is a
    candidate. The vault considers candidates in row order and takes over
    each one as long as, with it and all earlier accepted ones, the vault's
    own ``AV ≥ MR`` (its positions after taking theirs); it stops at the
    first candidate it cannot carry. For the accepted rows: the vault's cash
    rises by their ``AV``; per market, the vault makes one trade of
    ``Σ_accepted size`` at ``m``; each accepted row is left with ``cash = 0``,
    no positions, ``cooldown = 0``."
    ``backstop = "none"``: nothing happens.
    """
    if cfg.backstop == "none":
        return []
    mm = cfg.maintenance_margin
    A = state.n_markets
    v = state.vault
    candidates = [r for r in state.traders()
                  if has_position(state, r)
                  and account_value(state, r, m) < cfg.backstop_ratio * maintenance_requirement(state.size[r], m, mm)]

    # Would the vault, holding everything accepted so far plus this row, still have AV >= MR?
    vault_av = account_value(state, v, m)
    vault_size = list(state.size[v])
    accepted: list[int] = []
    for r in candidates:
        trial_av = vault_av + account_value(state, r, m)
        trial_size = [vault_size[a] + state.size[r][a] for a in range(A)]
        if trial_av >= maintenance_requirement(trial_size, m, mm):
            accepted.append(r)
            vault_av, vault_size = trial_av, trial_size
        else:
            break
    if not accepted:
        return []

    # The takeover: cash (value) first, then one vault trade per market at m.
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
            elif cfg.adl_price == "bankruptcy":
                deficit = -av[r]
                prices[r, a] = m[a] + deficit * (abs(s) * m[a] / ntl) / s
            else:
                raise InputError(f"adl_price: {cfg.adl_price!r} is not one of {', '.join(map(repr, ADL_PRICES))}")
    return prices


def queue_allocation(candidates: list[tuple[int, float, float]], matched: float) -> dict[int, float]:
    """Split ``matched`` units over ``(row, capacity, score)`` candidates by queue.

    Rule: "by score, highest first, each closing up to its whole position,
    the last one partially; candidates with exactly equal scores share pro
    rata to their size." Scores of ``+∞`` come first. When ``matched`` covers
    every candidate's capacity, every candidate closes its whole position.
    Returns the units each row closes (``≤`` its capacity ``|size|``).
    """
    closes: dict[int, float] = {}
    if matched >= sum(cap for _, cap, _ in candidates):
        return {row: cap for row, cap, _ in candidates}  # everyone closes everything
    remaining = matched
    ranked = sorted(candidates, key=lambda c: c[2], reverse=True)
    for _, group in itertools.groupby(ranked, key=lambda c: c[2]):
        if remaining <= 0:
            break
        group = list(group)
        group_cap = sum(cap for _, cap, _ in group)
        if group_cap <= remaining:
            for row, cap, _ in group:
                closes[row] = cap
            remaining -= group_cap
        else:
            share = remaining / group_cap
            for row, cap, _ in group:
                closes[row] = share * cap
            remaining = 0.0
    return closes


def pro_rata_allocation(candidates: list[tuple[int, float, float]], matched: float) -> dict[int, float]:
    """Split ``matched`` units over ``(row, capacity, score)`` candidates pro rata.

    Rule: "``pro_rata``: every candidate closes ``M/C`` of its position."
    """
    total = sum(cap for _, cap, _ in candidates)
    ratio = matched / total
    return {row: ratio * cap for row, cap, _ in candidates}


def adl(state: State, m: list[float], cfg: Settings, tally: Tally, report: StepReport) -> None:
    """Stage 4: auto-deleveraging.

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
    (both at ``m``); ``adl_notional += Σ |units closed by candidates|·m``.
    """
    R, A = state.n_rows, state.n_markets
    # --- the pre-ADL state: everything below is decided from it -----------
    av = [account_value(state, r, m) for r in range(R)]
    traders_and_vault = list(state.traders()) + [state.vault]
    bankrupt = [r for r in traders_and_vault if has_position(state, r) and av[r] < 0]
    report.n_bankrupt = len(bankrupt)
    if not bankrupt:
        return
    tally.bankrupt_rows.update(bankrupt)
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
            matched = min(q_pool, capacity)
            f = matched / q_pool

            # The bankrupt side closes the fraction f at its own ADL prices.
            closed = {r: f * pre_size[r][a] for r in pool}
            for r in pool:
                apply_trade(state, r, a, -closed[r], prices[r, a])

            # One price for every counterparty fill in the pool.
            if cfg.adl_price == "bankruptcy":
                weight = sum(abs(closed[r]) for r in pool)
                pool_price = sum(abs(closed[r]) * prices[r, a] for r in pool) / weight
            else:
                pool_price = prices[pool[0], a]  # previous_mark or mark: the same for every row

            if cfg.adl_policy == "queue":
                units = queue_allocation(takers, matched)
            elif cfg.adl_policy == "pro_rata":
                units = pro_rata_allocation(takers, matched)
            else:
                raise InputError(f"adl_policy: {cfg.adl_policy!r} is not one of {', '.join(map(repr, ADL_POLICIES))}")
            for r, _, _ in takers:  # row order
                u = units.get(r, 0.0)
                if u <= 0:
                    continue
                # A counterparty closes u units: a short buys (+u), a long sells (−u).
                q = -pre_size[r][a] if u == abs(pre_size[r][a]) else side * u
                apply_trade(state, r, a, q, pool_price)
                tally.adl_rows.add(r)
                tally.adl_notional += u * m[a]
                report.adl_notional += u * m[a]
                any_fill = True

    if any_fill:
        tally.adl_steps += 1
    for r in bankrupt:
        tally.bad_debt_adl += max(-av[r], 0.0) - max(-account_value(state, r, m), 0.0)


# ---------------------------------------------------------------------------
# One step
# ---------------------------------------------------------------------------

def step(state: State, oracle_t: list[float], depth_t: list[float], cfg: Settings, tally: Tally) -> StepReport:
    """One step of length ``dt``: stages 0–5 of ``docs/rules.md`` in order, then the step's bookkeeping.

    Stage 5 rule: "``prev_mark ← m``. Rows that sent a partial order get
    ``cooldown ← cooldown`` (the parameter)."
    A row the vault took over in this same step keeps the ``cooldown = 0``
    the backstop left it with (stage 2 sets the cooldown "after this step's
    fills", before the takeover; the row is flat, so only the number differs).
    """
    m = clock_and_mark(state, oracle_t, cfg)                                # 0
    report = StepReport(mark=m)
    liquidatable = margin_check(state, m, cfg)                              # 1
    partial_rows = market_liquidation(state, m, depth_t, liquidatable, cfg, tally, report)  # 2
    taken_over = backstop(state, m, cfg, tally, report)                     # 3
    adl(state, m, cfg, tally, report)                                       # 4
    state.prev_mark = list(m)                                               # 5
    for r in partial_rows:
        if r not in taken_over:
            state.cooldown[r] = cfg.cooldown

    # Bookkeeping: vault equity path, conservation of value, zero sum per market.
    report.vault_equity = account_value(state, state.vault, m)
    tally.vault_equity_min = min(tally.vault_equity_min, report.vault_equity)
    total = sum(account_value(state, r, m) for r in range(state.n_rows))
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
    check_range("dt", dt, 0.0, np.inf, lo_open=True, hi_open=True)
    rules = venue.rules
    for field, allowed in (("adl_policy", ADL_POLICIES), ("adl_score", ADL_SCORES),
                           ("adl_price", ADL_PRICES), ("backstop", BACKSTOPS)):
        v = getattr(rules, field)
        if v not in allowed:
            raise InputError(f"{field}: {v!r} is not one of {', '.join(map(repr, allowed))}")
    return Settings(
        maintenance_margin=[float(x) for x in venue.maintenance(n_markets)],
        partial_threshold=float(venue.partial_threshold),
        partial_fraction=float(venue.partial_fraction),
        cooldown=float(venue.cooldown),
        backstop_ratio=float(venue.backstop_ratio),
        slippage=float(venue.slippage),
        impact_coef=float(venue.impact),
        impact_half_life=float(venue.impact_half_life),
        dt=float(dt),
        adl_policy=rules.adl_policy,
        adl_score=rules.adl_score,
        adl_price=rules.adl_price,
        backstop=rules.backstop,
    )


def _host(name: str, x, dtype=np.float64) -> np.ndarray:
    try:
        return np.asarray(x, dtype=dtype)
    except Exception as err:  # a traced value, or not an array at all
        raise InputError(f"{name}: the reference engine needs concrete arrays ({err})") from None


def _books_per_scenario(book: Book, n_scenarios: int) -> list[dict[str, np.ndarray]]:
    """One book per scenario: a single book is used for every scenario; a batched one (leading S) row by row."""
    if not isinstance(book, Book):
        raise InputError(f"book: expected an adljax.Book (see Book.from_accounts), got {type(book).__name__}")
    fields = {
        "all_cash": _host("book.all_cash", book.all_cash),
        "all_size": _host("book.all_size", book.all_size),
        "all_entry": _host("book.all_entry", book.all_entry),
        "cooldown": _host("book.cooldown", book.cooldown),
        "isolated": _host("book.isolated", book.isolated, bool),
        "insurance_fund": _host("book.insurance_fund", book.insurance_fund),
    }
    batched = fields["all_cash"].ndim == 2
    if fields["all_cash"].ndim not in (1, 2):
        raise InputError(f"book.all_cash: expected [R rows] or [S scenarios, R rows], got shape {fields['all_cash'].shape}")
    lead = (n_scenarios,) if batched else ()
    if batched and fields["all_cash"].shape[0] != n_scenarios:
        raise InputError(f"book: has {fields['all_cash'].shape[0]} scenarios but paths have {n_scenarios}")
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


def simulate(venue: Venue, book: Book, paths: Paths, *, dt: float = 1.0, key=None, history: bool = False) -> Outcome:
    """Run the waterfall over every scenario, event by event (the readable twin of :func:`adljax.simulate`).

    Args:
      venue: the venue's rules and numbers (:mod:`adljax.venues`).
      book: the starting :class:`Book`, one for every scenario, or a batch
        with a leading scenario axis S.
      paths: :class:`Paths` with ``oracle`` and ``depth`` [S, T, A].
      dt: seconds per step.
      key: accepted for the fast engine's signature; unused by these rules.
      history: also return the per-step series of ``adljax.outcome.HISTORY``.

    Returns:
      :class:`Outcome` with the final books ([S, ...] numpy float64 arrays),
      the metrics of ``adljax.outcome.METRICS`` ([S] float64) and, when asked,
      the history.

    Raises:
      InputError: for bad paths, venue, ``dt`` or book.
    """
    del key  # the rules implemented here are deterministic
    if not isinstance(paths, Paths):
        raise InputError(f"paths: expected an adljax.Paths, got {type(paths).__name__}")
    if not isinstance(book, Book):
        raise InputError(f"book: expected an adljax.Book (see Book.from_accounts), got {type(book).__name__}")
    paths.validate(book.n_markets)
    oracle = _host("paths.oracle", paths.oracle)
    depth = _host("paths.depth", paths.depth)
    S, T, A = oracle.shape
    cfg = settings_of(venue, A, dt)
    books = _books_per_scenario(book, S)

    finals, metrics, histories = [], [], []
    for s in range(S):
        state, tally, reports = run_scenario(books[s], oracle[s], depth[s], cfg)
        finals.append(state)
        metrics.append(report_metrics(state, tally, reports[-1].mark))
        histories.append(reports)

    out_book = Book(
        all_cash=np.array([st.cash for st in finals], dtype=np.float64),
        all_size=np.array([st.size for st in finals], dtype=np.float64).reshape(S, -1, A),
        all_entry=np.array([st.entry for st in finals], dtype=np.float64).reshape(S, -1, A),
        cooldown=np.array([st.cooldown for st in finals], dtype=np.float64),
        isolated=np.array([b["isolated"] for b in books], dtype=bool),
        insurance_fund=np.array([b["insurance_fund"] for b in books], dtype=np.float64),
    )
    out_metrics = {name: np.array([mt[name] for mt in metrics], dtype=np.float64) for name in METRICS}
    out_history = None
    if history:
        out_history = {
            "mark": np.array([[rp.mark for rp in h] for h in histories], dtype=np.float64).reshape(S, T, A),
            "vault_equity": np.array([[rp.vault_equity for rp in h] for h in histories], dtype=np.float64),
            "market_liquidation_notional": np.array([[rp.market_liquidation_notional for rp in h] for h in histories], dtype=np.float64),
            "backstop_notional": np.array([[rp.backstop_notional for rp in h] for h in histories], dtype=np.float64),
            "adl_notional": np.array([[rp.adl_notional for rp in h] for h in histories], dtype=np.float64),
            "n_bankrupt": np.array([[rp.n_bankrupt for rp in h] for h in histories], dtype=np.float64),
        }
        assert set(out_history) == set(HISTORY)
    return Outcome(book=out_book, metrics=out_metrics, history=out_history)


def run_scenario(book: dict[str, np.ndarray], oracle: np.ndarray, depth: np.ndarray,
                 cfg: Settings) -> tuple[State, Tally, list[StepReport]]:
    """One scenario: the start state, then ``step`` for every ``t``."""
    R = book["all_cash"].shape[0]
    A = oracle.shape[1]
    state = State(
        cash=[float(x) for x in book["all_cash"]],
        size=[[float(x) for x in row] for row in book["all_size"]],
        entry=[[float(x) for x in row] for row in book["all_entry"]],
        cooldown=[float(x) for x in book["cooldown"]],
        impact=[0.0] * A,                                  # "impact[a] (starts 0)"
        prev_mark=[float(x) for x in oracle[0]],           # "prev_mark[a] (starts at oracle[0,a])"
        n_traders=R - 2,
    )
    start_mark = [float(x) for x in oracle[0]]
    tally = Tally()
    tally.vault_start = account_value(state, state.vault, start_mark)
    tally.vault_equity_min = tally.vault_start
    tally.total_value_start = sum(account_value(state, r, start_mark) for r in range(R))
    reports = []
    for t in range(oracle.shape[0]):
        oracle_t = [float(x) for x in oracle[t]]
        depth_t = [float(x) for x in depth[t]]
        reports.append(step(state, oracle_t, depth_t, cfg, tally))
    return state, tally, reports


def report_metrics(state: State, tally: Tally, last_mark: list[float]) -> dict[str, float]:
    """The metrics of one scenario (``adljax.outcome.METRICS``), after its last step.

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
        "backstop_notional": tally.backstop_notional,
        "backstop_accounts": float(tally.backstop_accounts),
        "adl_notional": tally.adl_notional,
        "n_adl_accounts": float(len(tally.adl_rows)),
        "n_bankrupt_accounts": float(len(tally.bankrupt_rows)),
        "adl_steps": float(tally.adl_steps),
        "bad_debt": tally.bad_debt_backstop + tally.bad_debt_adl + residual,
        "bad_debt_backstop": tally.bad_debt_backstop,
        "bad_debt_adl": tally.bad_debt_adl,
        "bad_debt_residual": residual,
        "vault_pnl": vault_end - tally.vault_start,
        "vault_equity_min": tally.vault_equity_min,
        "conservation_error": tally.conservation_error,
        "zero_sum_error": tally.zero_sum_error,
    }
    assert set(out) == set(METRICS)
    return out
