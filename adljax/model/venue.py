"""A venue: its static rule choices (:class:`Rules`) and its numbers (:class:`Params`).

Rules are hashable and static: changing one recompiles (except the
smooth mode's temperature, whose value travels in Params: only switching
between the hard and the smooth mode recompiles). Params are a pytree of
floats: traced, vmappable and differentiable; changing one never
recompiles. :class:`Venue` holds both in user-facing form (per-market numbers
may be a scalar or a sequence) and turns them into arrays for a book.
"""
from __future__ import annotations

import dataclasses
from typing import Sequence

import numpy as np
import jax.numpy as jnp
from jax import Array

from .pytree import pytree
from .errors import InputError, as_numbers, check_number, check_range, is_concrete
from . import tiers as _tiers

ADL_POLICIES = ("queue", "random_order", "pro_rata", "socialized")
ADL_SCORES = ("hyperliquid", "bitmex", "pnl")
ADL_PRICES = ("previous_mark", "bankruptcy", "mark")
BACKSTOPS = ("vault", "insurance", "none")
#: The longest time setting (cooldown, impact half-life) in seconds, about 32 million years: finite in float32.
MAX_SECONDS = 1e15
COOLDOWN_MODES = ("whole", "wait")
TIER_MODES = _tiers.TIER_MODES


@dataclasses.dataclass(frozen=True)
class Rules:
    """Static choices of the waterfall.

    Attributes:
      adl_policy: ``"queue"`` (ranked by ``adl_score``, highest first, each
        counterparty closing up to its whole position), ``"random_order"``
        (dYdX v4: no ranking, rows in order from a pseudo-random start drawn
        from the key each step), ``"pro_rata"`` (every opposite position
        closes the same fraction) or ``"socialized"`` (Drift: nothing is
        closed, the deficit is charged per contract to every open position
        of the market, both sides).
      adl_score: queue ranking: ``"hyperliquid"`` ``(m/entry)·(NTL_pos/AV)``
        (price ratio in the profitable direction), ``"bitmex"``
        ``PnL%·EffLev`` if ``PnL% > 0`` else ``PnL%/EffLev``, ``"pnl"``
        unrealised PnL in USD.
      adl_price: ``"previous_mark"`` (Hyperliquid), ``"bankruptcy"`` (the
        price that leaves the bankrupt row at exactly 0), ``"mark"``.
      cooldown_mode: what a row sends while its partial-liquidation cooldown
        runs: ``"whole"`` (Hyperliquid's published rule: every market
        liquidation order in the cooldown is for the entire position) or
        ``"wait"`` (no order until the cooldown is over).
      backstop: ``"vault"`` (takeover by the vault row), ``"insurance"``
        (an insurance fund pays bankrupt rows' deficits in cash until it is
        empty) or ``"none"``.
      tier_mode: how a tiered margin table (:attr:`Venue.margin_tiers`) sets a
        position's requirement: ``"deduction"`` (Hyperliquid, Binance, Bybit:
        ``notional·r_k − d_k``, continuous in size) or ``"step"`` (BitMEX risk
        limits: the whole position at its tier's rate). See :mod:`adljax.model.tiers`.
      temperature: ``0`` (the default) runs the hard rules. ``τ > 0`` runs
        the smooth mode: every yes/no decision of the waterfall becomes a
        weight that ramps from 0 to 1 across a band of width ``τ`` around its
        threshold, in the rule's natural unit (``AV/MR`` for margin checks,
        ``asinh(score)`` for the ADL queue; table in :mod:`adljax.engine.smooth`),
        so outcomes are differentiable in the Params and the book; as
        ``τ → 0`` the smooth engine becomes the hard one. Typical: 0.01–0.3.
        Its value reaches the engine as :attr:`Params.temperature`, so runs
        at different ``τ > 0`` share one compiled program (see :meth:`compiled`).
    """

    adl_policy: str = "queue"
    adl_score: str = "hyperliquid"
    adl_price: str = "previous_mark"
    backstop: str = "vault"
    cooldown_mode: str = "whole"
    temperature: float = 0.0
    tier_mode: str = "deduction"

    def __post_init__(self):
        for field, allowed in (("adl_policy", ADL_POLICIES), ("adl_score", ADL_SCORES),
                               ("adl_price", ADL_PRICES), ("backstop", BACKSTOPS),
                               ("cooldown_mode", COOLDOWN_MODES), ("tier_mode", TIER_MODES)):
            v = getattr(self, field)
            if v not in allowed:
                raise InputError(f"{field}: {v!r} is not one of {', '.join(map(repr, allowed))}")
        t = self.temperature
        if isinstance(t, bool) or not isinstance(t, (int, float)) or not np.isfinite(t) or not 0 <= t <= 1:
            raise InputError(f"temperature: must be a number in [0, 1] (0: the hard rules), got {t!r}")
        object.__setattr__(self, "temperature", float(t))

    @property
    def smooth(self) -> bool:
        """True in the smooth (differentiable) mode, ``temperature > 0``."""
        return self.temperature > 0

    def compiled(self) -> "Rules":
        """These rules as the engine compiles them: the temperature's value left out (1.0 for any ``τ > 0``).

        The engine reads the temperature's value from :attr:`Params.temperature`
        and only the mode (hard or smooth) from the rules, so passing
        ``rules.compiled()`` as its static argument lets runs at different
        temperatures share one compiled program.
        """
        return dataclasses.replace(self, temperature=1.0 if self.smooth else 0.0)


@pytree
class Params:
    """The numbers of the waterfall for a book with A markets (all traced but ``tier_mode``).

    Attributes:
      maintenance_margin: [A] maintenance fraction of notional, ``mm[a]``: the
        rate of each market's first margin tier (its only one in an untiered market).
      tier_bounds: [A, T] USD, the lower bounds of each market's tiers after the
        first (T may be 0: no tiers); a market with fewer tiers repeats its last.
      tier_rates: [A, T] the maintenance rates of those tiers.
      partial_threshold: [] USD; a position with larger notional closes
        ``partial_fraction`` per liquidation order.
      partial_fraction: [] fraction of such a position sent per order.
      cooldown: [] seconds of cooldown after a partial order (see
        :attr:`Rules.cooldown_mode`).
      backstop_ratio: [] the vault takes over rows with ``AV < ratio·MR``.
      slippage: [] fraction of price at which one step's depth is used up;
        a side that fills notional ``F`` of depth ``d`` fills at the average
        price ``m·(1 ∓ slippage·F/(2d))`` (a uniform book).
      impact: [] mark moves by ``impact·(net liquidation flow)/depth`` (fraction).
      impact_half_life: [] seconds for the transient impact to halve.
      liquidation_fee: [] fraction of filled liquidation notional the
        liquidated row pays (capped at its remaining positive value) to the
        insurance fund, or to the vault when the backstop is the vault.
      vault_unwind: [] share of each step's depth the vault may use to sell
        the positions it took over (0: it holds them).
      dt: [] seconds per step.
      temperature: [] the smooth mode's temperature (:attr:`Rules.temperature`;
        read only when the rules are smooth, so that changing it does not recompile).
    """

    maintenance_margin: Array
    partial_threshold: Array
    partial_fraction: Array
    cooldown: Array
    backstop_ratio: Array
    slippage: Array
    impact: Array
    impact_half_life: Array
    liquidation_fee: Array
    vault_unwind: Array
    dt: Array
    temperature: Array
    tier_bounds: Array
    tier_rates: Array
    tier_mode: str = "deduction"


#: The settings that are one number for every market (the others, ``max_leverage`` and
#: ``maintenance_margin``, may be one per market).
SCALAR_FIELDS = ("partial_threshold", "partial_fraction", "cooldown", "backstop_ratio", "slippage", "impact",
                 "impact_half_life", "liquidation_fee", "vault_unwind")
PARAM_FIELDS = ("max_leverage", "maintenance_margin", "margin_tiers", "partial_threshold", "partial_fraction",
                "cooldown", "backstop_ratio", "slippage", "impact", "impact_half_life",
                "liquidation_fee", "vault_unwind")
RULE_FIELDS = tuple(f.name for f in dataclasses.fields(Rules))


@dataclasses.dataclass(frozen=True)
class Venue:
    """A venue's rules and numbers. Build one with a preset in :mod:`adljax.venues`.

    Attributes:
      name: preset name.
      rules: the static :class:`Rules`.
      max_leverage: per-market maximum leverage (scalar or length-A sequence).
      maintenance_margin: per-market maintenance fraction; ``None`` means
        ``1/(2·max_leverage)`` (half the initial margin at max leverage).
      margin_tiers: tiered maintenance margin (:mod:`adljax.model.tiers`):
        one table of ``(lower_bound_usd, rate)`` pairs for every market, or a
        sequence of one table per market; the first bound 0. ``None`` (the
        default): one tier per market, from ``maintenance_margin`` or
        ``max_leverage``. When given, it sets the requirement and
        ``max_leverage`` is not used; ``maintenance_margin`` may not be given
        with it. :attr:`Rules.tier_mode` says how the table applies.
      partial_threshold, partial_fraction, cooldown, backstop_ratio,
      slippage, impact, impact_half_life, liquidation_fee, vault_unwind:
      see :class:`Params`.
    """

    name: str
    rules: Rules
    max_leverage: float | Sequence[float] = 40.0
    maintenance_margin: float | Sequence[float] | None = None
    margin_tiers: Sequence | None = None
    partial_threshold: float = 100_000.0
    partial_fraction: float = 0.2
    cooldown: float = 30.0
    backstop_ratio: float = 2.0 / 3.0
    slippage: float = 0.01
    impact: float = 0.01
    impact_half_life: float = 60.0
    liquidation_fee: float = 0.0
    vault_unwind: float = 0.0

    def replace(self, **overrides) -> "Venue":
        """A copy with fields (numbers or rule choices) replaced; unknown names raise."""
        rule_changes = {k: overrides.pop(k) for k in list(overrides) if k in RULE_FIELDS}
        unknown = [k for k in overrides if k not in PARAM_FIELDS and k != "name"]
        if unknown:
            raise InputError(f"{unknown[0]}: not a venue setting; settings are {', '.join(PARAM_FIELDS + RULE_FIELDS)}")
        rules = dataclasses.replace(self.rules, **rule_changes) if rule_changes else self.rules
        if ("max_leverage" in overrides or "maintenance_margin" in overrides) and "margin_tiers" not in overrides:
            overrides["margin_tiers"] = None        # a one-rate setting means one tier
        return dataclasses.replace(self, rules=rules, **overrides)

    def tiers(self, n_markets: int) -> tuple[np.ndarray, np.ndarray]:
        """``(bounds [A, K], rates [A, K])``: every market's margin table, padded (:func:`adljax.model.tiers.padded`).

        A venue without ``margin_tiers`` has one tier per market, ``(0, maintenance(n_markets)[a])``.
        """
        if self.margin_tiers is None:
            rates = self.maintenance(n_markets)[:, None]
            return np.zeros_like(rates), rates
        if self.maintenance_margin is not None:
            raise InputError("maintenance_margin: give margin_tiers or maintenance_margin, not both (a one-rate "
                             "market is the table [(0, rate)])")
        return _tiers.padded(_tiers.per_market(self.margin_tiers, n_markets))

    def maintenance(self, n_markets: int) -> np.ndarray:
        """Per-market maintenance fraction [A]: the rate of each market's first tier."""
        if self.margin_tiers is not None:
            return self.tiers(n_markets)[1][:, 0]
        if self.maintenance_margin is not None:
            mm = _per_market("maintenance_margin", self.maintenance_margin, n_markets)
            check_range("maintenance_margin", mm, 0.0, 1.0, lo_open=True, hi_open=True)
            return mm
        lev = _per_market("max_leverage", self.max_leverage, n_markets)
        check_range("max_leverage", lev, 1.0, 1e6)
        return 1.0 / (2.0 * lev)

    def validate(self) -> None:
        """Raise :class:`InputError` naming the setting for a value of the wrong type or out of its range.

        Every setting but the per-market ones is one number (a ``bool``, text or a sequence is refused);
        ``max_leverage`` and ``maintenance_margin`` are a number or a sequence of numbers (their length is
        checked against the book's markets by :meth:`maintenance`).
        """
        if not isinstance(self.rules, Rules):
            raise InputError(f"rules: expected an adljax.Rules, got {type(self.rules).__name__}")
        if not isinstance(self.name, str):
            raise InputError(f"name: expected text, got {type(self.name).__name__}")
        for field in SCALAR_FIELDS:
            check_number(field, getattr(self, field), hint=" (it applies to every market)")
        for field in ("max_leverage", "maintenance_margin"):
            v = getattr(self, field)
            if v is not None and is_concrete(v):
                a = as_numbers(field, v)
                if a.ndim > 1:
                    raise InputError(f"{field}: expected a number or one number per market, got shape {a.shape}")
        if self.max_leverage is None:
            raise InputError("max_leverage: expected a number or one number per market, got None")
        if self.margin_tiers is not None:
            if self.maintenance_margin is not None:
                raise InputError("maintenance_margin: give margin_tiers or maintenance_margin, not both (a "
                                 "one-rate market is the table [(0, rate)])")
            if isinstance(self.margin_tiers, (str, bytes, dict)):
                raise InputError(f"margin_tiers: expected a table of (lower_bound_usd, rate) pairs or one table "
                                 f"per market, got {type(self.margin_tiers).__name__}")
            if _tiers.is_table(self.margin_tiers):
                _tiers.table("margin_tiers", self.margin_tiers)
            else:
                _tiers.per_market(self.margin_tiers, len(self.margin_tiers))
        check_range("partial_threshold", self.partial_threshold, 0.0, np.inf, hi_open=True, allow_inf=True)
        check_range("partial_fraction", self.partial_fraction, 0.0, 1.0, lo_open=True)
        check_range("cooldown", self.cooldown, 0.0, MAX_SECONDS)          # finite in float32 too
        check_range("backstop_ratio", self.backstop_ratio, 0.0, 1.0)
        check_range("slippage", self.slippage, 0.0, 1.0, hi_open=True)
        check_range("impact", self.impact, 0.0, 10.0)
        check_range("impact_half_life", self.impact_half_life, 0.0, MAX_SECONDS, lo_open=True)
        check_range("liquidation_fee", self.liquidation_fee, 0.0, 0.5)
        check_range("vault_unwind", self.vault_unwind, 0.0, 1.0)

    def params(self, n_markets: int, *, dt: float = 1.0, dtype=None) -> Params:
        """The traced :class:`Params` for a book with ``n_markets`` markets."""
        self.validate()
        check_number("dt", dt)
        check_range("dt", dt, 0.0, np.inf, lo_open=True, hi_open=True)
        dtype = jnp.dtype(dtype) if dtype is not None else jnp.result_type(float)
        f = lambda v: jnp.asarray(v, dtype=dtype)
        bounds, rates = self.tiers(n_markets)
        return Params(
            maintenance_margin=f(rates[:, 0]),
            tier_bounds=f(bounds[:, 1:]),
            tier_rates=f(rates[:, 1:]),
            tier_mode=self.rules.tier_mode,
            partial_threshold=f(self.partial_threshold),
            partial_fraction=f(self.partial_fraction),
            cooldown=f(self.cooldown),
            backstop_ratio=f(self.backstop_ratio),
            slippage=f(self.slippage),
            impact=f(self.impact),
            impact_half_life=f(self.impact_half_life),
            liquidation_fee=f(self.liquidation_fee),
            vault_unwind=f(self.vault_unwind),
            dt=f(dt),
            temperature=f(self.rules.temperature),
        )


def _per_market(name: str, value, n_markets: int) -> np.ndarray:
    v = as_numbers(name, value).astype(np.float64)
    if v.ndim == 0:
        return np.full(n_markets, float(v))
    if v.shape != (n_markets,):
        raise InputError(f"{name}: expected a scalar or {n_markets} values (one per market), got shape {v.shape}")
    return v
