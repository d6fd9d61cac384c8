"""Hypothesis strategies: small random books, short violent price paths, venues.

Everything is drawn as plain numpy (float64) and turned into adljax objects
on demand, so a test can build the same case in float32 too.

Shapes come from a short list (``SHAPES``) and static rules from a short
list (``RULE_SETS``): every new (shape, rules) pair compiles the engine, and
the tests must stay fast.
"""
from __future__ import annotations

import dataclasses

import numpy as np
from hypothesis import strategies as st

import adljax
from adljax import Book, Paths, venues as venue_presets

#: (N trader rows, A markets, T steps) the cases are padded/drawn to.
SHAPES = ((4, 1, 6), (8, 2, 12), (12, 3, 20))

#: A short list that still uses every value of every rule at least once
#: (and every score with the queue, where it matters).
RULE_SETS = (
    dict(adl_policy="queue", adl_score="hyperliquid", adl_price="previous_mark", backstop="vault"),
    dict(adl_policy="pro_rata", adl_score="hyperliquid", adl_price="bankruptcy", backstop="vault"),
    dict(adl_policy="queue", adl_score="bitmex", adl_price="bankruptcy", backstop="none"),
    dict(adl_policy="queue", adl_score="pnl", adl_price="mark", backstop="vault"),
    dict(adl_policy="pro_rata", adl_score="hyperliquid", adl_price="previous_mark", backstop="none"),
    dict(adl_policy="queue", adl_score="bitmex", adl_price="mark", backstop="vault"),
    dict(adl_policy="random_order", adl_score="hyperliquid", adl_price="bankruptcy", backstop="insurance"),
    dict(adl_policy="socialized", adl_score="hyperliquid", adl_price="previous_mark", backstop="vault"),
    dict(adl_policy="queue", adl_score="hyperliquid", adl_price="previous_mark", backstop="insurance",
         cooldown_mode="wait"),
)

DTS = (0.5, 1.0, 7.0)
COOLDOWNS = (0.0, 2.0, 30.0)


#: A relative nudge of 1e-6..1e-5 that no shrink removes, plus a fixed one that
#: differs by row and market. Without them the shrinker makes values "round"
#: and equal (leverage exactly 2× the maximum, a notional of exactly $10k, two
#: rows of the same size), which puts AV exactly on MR, a notional exactly on
#: the partial threshold, or an ADL pool exactly equal to the capacity of its
#: first candidates: ties where float rounding alone decides, and two correct
#: engines differ.
_JITTER = st.floats(1e-6, 1e-5)


def _row_jitter(i: int, j: int) -> float:
    return 1e-7 * (1.0 + 0.618 * i + 0.414 * j) % 1e-6


def _log_uniform(lo: float, hi: float) -> st.SearchStrategy[float]:
    return st.floats(np.log10(lo), np.log10(hi), allow_nan=False).map(lambda x: float(10.0 ** x))


# --------------------------------------------------------------------------- books
@dataclasses.dataclass(frozen=True, eq=False)
class BookCase:
    """A drawn book as float64 numpy arrays, plus the start prices."""

    cash: np.ndarray        # [N]
    size: np.ndarray        # [N, A]
    entry: np.ndarray       # [N, A]
    isolated: np.ndarray    # [N] bool
    vault_cash: float
    vault_size: np.ndarray  # [A]
    vault_entry: np.ndarray
    lp_cash: float
    lp_size: np.ndarray     # [A]
    lp_entry: np.ndarray
    start: np.ndarray       # [A] start prices (= oracle at step 0)
    insurance_fund: float = 0.0

    @property
    def n_accounts(self) -> int:
        return self.cash.shape[0]

    @property
    def n_markets(self) -> int:
        return self.size.shape[1]

    def book(self, dtype=np.float64) -> Book:
        return Book.from_accounts(
            self.cash, self.size, self.entry, vault_cash=self.vault_cash, vault_size=self.vault_size,
            vault_entry=self.vault_entry, lp_cash=self.lp_cash, lp_size=self.lp_size,
            lp_entry=self.lp_entry, isolated=self.isolated, insurance_fund=self.insurance_fund, dtype=dtype)

    def all_rows(self):
        """(cash [R], size [R, A], entry [R, A]) with the vault and LP rows, float64."""
        cash = np.concatenate([self.cash, [self.vault_cash, self.lp_cash]])
        size = np.concatenate([self.size, self.vault_size[None], self.lp_size[None]])
        entry = np.concatenate([self.entry, self.vault_entry[None], self.lp_entry[None]])
        return cash, size, entry

    def describe(self) -> str:
        with np.printoptions(precision=17, suppress=False, linewidth=200):
            return (f"BookCase(cash={self.cash!r}, size={self.size!r}, entry={self.entry!r}, "
                    f"isolated={self.isolated!r}, vault_cash={self.vault_cash!r}, vault_size={self.vault_size!r}, "
                    f"vault_entry={self.vault_entry!r}, lp_cash={self.lp_cash!r}, lp_size={self.lp_size!r}, "
                    f"lp_entry={self.lp_entry!r}, start={self.start!r}, insurance_fund={self.insurance_fund!r})")


@st.composite
def start_prices(draw, n_markets: int) -> np.ndarray:
    return np.array([draw(st.sampled_from([1.0, 0.37, 25.0, 180.0, 3000.0, 65000.0]) | _log_uniform(0.05, 1e5))
                     for _ in range(n_markets)])


@st.composite
def books(draw, n_markets: int | None = None, n_accounts: int | None = None, *,
          max_leverage=None, start=None, min_active: int = 2, vault_positions: bool = True) -> BookCase:
    """A small zero-sum book.

    ``n_accounts`` trader rows (2–12 when not given), of which at least
    ``min_active`` hold positions; the others hold cash only. Rows are cross
    (positions in one or more markets) or isolated (exactly one position).
    Leverage is mixed: some rows near (or just past) ``max_leverage`` [A],
    some at 3–10×, some at 1–2×. Position notionals are log-uniform over
    $100–$2M, so some are above the $100k partial threshold and some below;
    entries lie within ±8 % of the start price; each market has its own
    long/short skew. The liquidity-provider row holds the remainder of every
    market (and, when ``vault_positions``, the vault sometimes a position of
    its own).
    """
    a = n_markets if n_markets is not None else draw(st.integers(1, 3))
    n = n_accounts if n_accounts is not None else draw(st.integers(2, 12))
    p0 = np.asarray(start, dtype=np.float64) if start is not None else draw(start_prices(a))
    if max_leverage is None:
        lev_max = np.array([draw(st.floats(3.0, 50.0)) for _ in range(a)])
    else:
        lev_max = np.broadcast_to(np.asarray(max_leverage, dtype=np.float64), (a,))
    p_long = [draw(st.sampled_from([0.1, 0.3, 0.5, 0.7, 0.9])) for _ in range(a)]

    n_active = draw(st.integers(min(min_active, n), n))
    kinds = [draw(st.sampled_from(["cross", "cross", "isolated"])) for _ in range(n_active)]
    kinds += ["flat"] * (n - n_active)
    kinds = draw(st.permutations(kinds))

    cash = np.zeros(n)
    size = np.zeros((n, a))
    entry = np.zeros((n, a))
    isolated = np.zeros(n, dtype=bool)
    for i, kind in enumerate(kinds):
        if kind == "flat":
            cash[i] = draw(st.just(0.0) | _log_uniform(1.0, 1e6))
            continue
        if kind == "isolated" or a == 1:
            markets = [draw(st.integers(0, a - 1))]
            isolated[i] = kind == "isolated"
        else:
            markets = sorted(draw(st.sets(st.integers(0, a - 1), min_size=1, max_size=a)))
        for j in markets:
            ntl = draw(_log_uniform(100.0, 2e6)) * (1.0 + draw(_JITTER) + _row_jitter(i, j))
            long = draw(st.floats(0.0, 1.0)) < p_long[j]
            size[i, j] = (1.0 if long else -1.0) * ntl / p0[j]
            entry[i, j] = p0[j] * (1.0 + draw(st.floats(-0.08, 0.08)))
        klass = draw(st.sampled_from(["max", "max", "mid", "low"]))
        if klass == "max":
            lev = float(np.min(lev_max[markets])) * draw(st.floats(0.6, 1.1))
        elif klass == "mid":
            lev = draw(st.floats(3.0, 10.0))
        else:
            lev = draw(st.floats(1.0, 2.0))
        ntl_row = float(np.sum(np.abs(size[i]) * p0))
        upnl = float(np.sum(size[i] * (p0 - entry[i])))
        cash[i] = ntl_row / lev * (1.0 + draw(_JITTER) + _row_jitter(i, a)) - upnl

    vault_cash = draw(st.sampled_from(["zero", "small", "large"]).flatmap(
        lambda k: {"zero": st.just(0.0), "small": _log_uniform(10.0, 1e4), "large": _log_uniform(1e5, 1e8)}[k]))
    vault_size = np.zeros(a)
    vault_entry = np.zeros(a)
    if vault_positions and draw(st.integers(0, 4)) == 0:  # sometimes the vault already holds a position
        j = draw(st.integers(0, a - 1))
        vault_size[j] = draw(st.sampled_from([-1.0, 1.0])) * draw(_log_uniform(1e3, 3e5)) / p0[j]
        vault_entry[j] = p0[j] * (1.0 + draw(st.floats(-0.05, 0.05)))

    lp_size = -(size.sum(axis=0) + vault_size)
    lp_entry = np.where(lp_size != 0, p0 * (1.0 + np.array([draw(st.floats(-0.03, 0.03)) for _ in range(a)])), 0.0)
    lp_ntl = float(np.sum(np.abs(lp_size) * p0))
    lp_kind = draw(st.sampled_from(["zero", "thin", "margined", "deep"]))
    lp_cash = {"zero": 0.0, "thin": 0.02 * lp_ntl, "margined": 0.3 * lp_ntl, "deep": 1e8}[lp_kind]
    lp_cash -= float(np.sum(lp_size * (p0 - lp_entry))) if lp_kind != "zero" else 0.0
    fund = draw(st.sampled_from(["zero", "small", "large"]).flatmap(
        lambda k: {"zero": st.just(0.0), "small": _log_uniform(10.0, 1e4), "large": _log_uniform(1e5, 1e8)}[k]))
    return BookCase(cash=cash, size=size, entry=entry, isolated=isolated, vault_cash=float(vault_cash),
                    vault_size=vault_size, vault_entry=vault_entry, lp_cash=float(lp_cash), lp_size=lp_size,
                    lp_entry=lp_entry, start=p0, insurance_fund=float(fund))


# --------------------------------------------------------------------------- paths
PATTERNS = ("gap_down", "gap_up", "crash", "pump", "v", "inverted_v", "chop", "flat")


@st.composite
def _log_path(draw, n_steps: int, rng: np.random.Generator, calm: bool) -> np.ndarray:
    """[T] log price relative to the start (0 at step 0)."""
    t = n_steps
    x = np.zeros(t)
    if t == 1:
        return x
    noise = rng.normal(0.0, draw(st.sampled_from([0.0, 0.002, 0.01])), size=t)
    noise[0] = 0.0
    if calm:
        pattern = draw(st.sampled_from(["chop", "flat", "crash", "pump"]))
        big = draw(st.floats(0.01, 0.04))
    else:
        pattern = draw(st.sampled_from(PATTERNS))
        big = draw(st.floats(0.1, 0.4))
    k = draw(st.integers(1, t - 1))  # step of the move
    steps = np.arange(t)
    if pattern == "gap_down":
        x = np.where(steps >= k, np.log1p(-big), 0.0)
    elif pattern == "gap_up":
        x = np.where(steps >= k, np.log1p(big), 0.0)
    elif pattern in ("crash", "pump"):
        total = draw(st.floats(big, 1.5 * big if calm else 0.7))
        span = draw(st.integers(1, t - k))
        ramp = np.clip((steps - k + 1) / span, 0.0, 1.0)
        x = ramp * (np.log1p(-min(total, 0.95)) if pattern == "crash" else np.log1p(total))
    elif pattern in ("v", "inverted_v"):
        down = np.log1p(-big) if pattern == "v" else np.log1p(big)
        k2 = draw(st.integers(k, t - 1))
        back = draw(st.floats(0.3, 1.2))
        x = np.where(steps >= k, down, 0.0) - np.where(steps > k2, back * down, 0.0)
    elif pattern == "chop":
        amp = big if calm else draw(st.floats(0.03, 0.15))
        x = np.cumsum(rng.normal(0.0, amp / 2, size=t))
        x[0] = 0.0
        x = np.clip(x, -2 * amp, 2 * amp)
    return x + np.cumsum(noise)


@st.composite
def paths(draw, start, n_steps: int | None = None, n_scenarios: int | None = None, *,
          calm: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """(oracle [S, T, A], depth [S, T, A]) float64 starting at ``start`` [A].

    Violent by default: one-step gaps of 10–40 % (down or up), steady crashes
    and pumps, V shapes, chop; markets move independently. Depth (USD per
    side per step) is log-uniform over $1k–$10M per market, with some paths
    thin or zero in some steps. ``calm`` keeps moves within a few percent and
    the depth deep.
    """
    p0 = np.asarray(start, dtype=np.float64)
    a = p0.shape[0]
    t = n_steps if n_steps is not None else draw(st.integers(3, 25))
    s = n_scenarios if n_scenarios is not None else draw(st.integers(1, 3))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    oracle = np.empty((s, t, a))
    depth = np.empty((s, t, a))
    for i in range(s):
        for j in range(a):
            x = draw(_log_path(t, rng, calm))
            oracle[i, :, j] = p0[j] * np.exp(np.maximum(x, np.log(1e-3)))
            oracle[i, 0, j] = p0[j]
            if calm:
                base = draw(_log_uniform(1e7, 1e9))
                mode = "normal"
            else:
                base = draw(_log_uniform(1e3, 1e7))
                mode = draw(st.sampled_from(["normal", "normal", "thin_steps", "zero_steps", "all_thin"]))
            d = np.full(t, base)
            if mode == "thin_steps":
                d = np.where(rng.random(t) < 0.4, base * 10.0 ** rng.uniform(-3, -1, size=t), d)
            elif mode == "zero_steps":
                d = np.where(rng.random(t) < 0.4, 0.0, d)
            elif mode == "all_thin":
                d = base * 1e-2 * np.ones(t)
            depth[i, :, j] = d
    return oracle, depth


# --------------------------------------------------------------------------- venues
@st.composite
def venues(draw, n_markets: int, *, rules=RULE_SETS, calm: bool = False):
    """(venue, dt): the hyperliquid preset with drawn numbers and static rules.

    ``rules`` is the list the static rules are drawn from (``RULE_SETS`` or a
    sublist, or other dicts of :class:`adljax.Rules` fields); ``calm`` draws no impact and little slippage.
    """
    lev = [draw(st.sampled_from([3.0, 5.0, 10.0, 20.0, 25.0, 40.0, 50.0]) | st.floats(3.0, 50.0))
           for _ in range(n_markets)]
    overrides = dict(
        max_leverage=lev if n_markets > 1 else lev[0],
        impact=0.0 if calm else draw(st.just(0.0) | st.floats(0.001, 0.5)),
        impact_half_life=draw(st.sampled_from([60.0, 5.0])),
        slippage=draw(st.sampled_from([0.0, 0.01]) | st.floats(0.0, 0.05)) if not calm else 0.001,
        partial_threshold=draw(st.sampled_from([1e5, 1e5, 1e4, 1e4, 1e6])),
        partial_fraction=draw(st.sampled_from([0.2, 0.2, 0.5])),
        cooldown=draw(st.sampled_from(COOLDOWNS + (30.0,))),
        backstop_ratio=draw(st.sampled_from([2.0 / 3.0, 2.0 / 3.0, 0.3, 1.0])),
        liquidation_fee=draw(st.sampled_from([0.0, 0.0, 0.005, 0.0125])),
        vault_unwind=draw(st.sampled_from([0.0, 0.0, 0.1, 0.5])),
    )
    chosen = dict(draw(st.sampled_from(rules)))
    if "tier_mode" in chosen:     # a tiered pair: three tiers a market, around the books' position notionals
        overrides["margin_tiers"] = [draw(margin_tables(1.0 / (2.0 * x))) for x in lev]
    overrides.update(chosen)
    dt = draw(st.sampled_from(DTS))
    return venue_presets.hyperliquid(**overrides), dt


@st.composite
def margin_tables(draw, base_rate: float):
    """A three-tier margin table ``((0, r0), (b1, r1), (b2, r2))``: ``r0 = base_rate``, each further rate
    1.2–3× the one below (at most 0.45), ``b1`` log-uniform over $2k–$500k (the books' positions are
    $100–$2M) and ``b2`` 2–20× ``b1``: every tier is reached by some position or by the vault's."""
    b1 = draw(_log_uniform(2e3, 5e5))
    b2 = b1 * draw(st.floats(2.0, 20.0))
    r1 = min(base_rate * draw(st.floats(1.2, 3.0)), 0.45)
    r2 = min(r1 * draw(st.floats(1.2, 3.0)), 0.45)
    return ((0.0, base_rate), (b1, r1), (b2, r2))


# --------------------------------------------------------------------------- whole cases
@dataclasses.dataclass(frozen=True, eq=False)
class Case:
    venue: adljax.Venue
    dt: float
    bc: BookCase
    oracle: np.ndarray  # [S, T, A]
    depth: np.ndarray
    funding: np.ndarray | None = None  # [S, T, A] rate per step (zeros in half the cases)

    def book(self, dtype=np.float64) -> Book:
        return self.bc.book(dtype)

    def paths(self, dtype=np.float64, scenarios=slice(None)) -> Paths:
        funding = None if self.funding is None else np.asarray(self.funding[scenarios], dtype)
        return Paths(np.asarray(self.oracle[scenarios], dtype), np.asarray(self.depth[scenarios], dtype), funding)

    @property
    def scale(self) -> float:
        """USD scale of the whole case: Σ|cash| + Σ|size|·max(entry, highest oracle price) over all rows.

        The floor of sums over every row (conservation): the LP's and the vault's cash are in them.
        """
        cash, size, entry = self.bc.all_rows()
        return float(np.sum(np.abs(cash)) + np.sum(self._position_usd()))

    def _position_usd(self) -> np.ndarray:
        """[R, A]: |size|·max(entry, the market's highest oracle price) of every start position."""
        _, size, entry = self.bc.all_rows()
        return np.abs(size) * np.maximum(entry, self.oracle.max(axis=(0, 1)))

    @property
    def row_scale(self) -> np.ndarray:
        """USD scale of each row [R]: its |cash| and its positions; the vault and LP rows add every
        trader's positions (they take over or fill any of them)."""
        cash, _, _ = self.bc.all_rows()
        pos = self._position_usd().sum(axis=1)
        row = np.abs(cash) + pos
        row[-2:] += pos[:-2].sum()
        return row

    @property
    def traders_scale(self) -> float:
        """USD scale of quantities made of traders' positions and deficits (notionals, bad debt, fees,
        the fund's flows): every row's positions, the traders' cash and the insurance fund, not the
        vault's or LP's cash."""
        cash, _, _ = self.bc.all_rows()
        return float(np.sum(self._position_usd()) + np.sum(np.abs(cash[:-2])) + abs(self.bc.insurance_fund))

    @property
    def market_size_scale(self) -> np.ndarray:
        """Base-unit scale of each market [A]: Σ|size| over its rows."""
        return np.sum(np.abs(self.bc.all_rows()[1]), axis=0)

    @property
    def position_size_scale(self) -> np.ndarray:
        """Base-unit scale of each position [R, A]: a trader's own |size| (partial liquidation and ADL
        take parts of it), the market's scale for the vault and LP rows (they receive any trader's)."""
        size = np.abs(self.bc.all_rows()[1])
        out = size.copy()
        out[-2:] = self.market_size_scale
        return out

    @property
    def market_price_scale(self) -> np.ndarray:
        """Price scale of each market [A]: the highest of its oracle prices and entries."""
        return np.maximum(self.oracle.max(axis=(0, 1)), self.bc.all_rows()[2].max(axis=0))

    @property
    def size_scale(self) -> float:
        """Base-unit scale: Σ|size| over all rows and markets (the largest per-step error of a sum over them)."""
        return float(np.sum(np.abs(self.bc.all_rows()[1])))

    def describe(self) -> str:
        with np.printoptions(precision=17, linewidth=200, threshold=10_000):
            return (f"venue={self.venue!r}\ndt={self.dt!r}\n{self.bc.describe()}\n"
                    f"oracle={self.oracle!r}\ndepth={self.depth!r}\nfunding={self.funding!r}")


@st.composite
def cases(draw, shapes=SHAPES, n_scenarios: int | tuple = (1, 2, 3), rules=RULE_SETS, calm: bool = False) -> Case:
    """A whole case: venue and dt, book and paths, with (N, A, T) from ``shapes``."""
    n, a, t = draw(st.sampled_from(shapes))
    s = draw(st.sampled_from(n_scenarios)) if isinstance(n_scenarios, tuple) else n_scenarios
    venue, dt = draw(venues(a, rules=rules, calm=calm))
    bc = draw(books(a, n, max_leverage=venue.max_leverage, vault_positions=not calm))
    oracle, depth = draw(paths(bc.start, t, s, calm=calm))
    # Funding: always an array (a None would compile the engine again), zero in half the cases;
    # otherwise a rate per market of up to 0.5 % of notional a step, either sign.
    rates = [draw(st.just(0.0) | st.floats(-0.005, 0.005)) for _ in range(a)]
    funding = np.broadcast_to(np.asarray(rates), oracle.shape).copy()
    return Case(venue=venue, dt=dt, bc=bc, oracle=oracle, depth=depth, funding=funding)


# --------------------------------------------------------------------------- comparing outcomes
#: Count metrics: compared exactly.
COUNTS = ("market_liquidation_orders", "partial_liquidation_orders", "backstop_accounts",
          "n_adl_accounts", "n_bankrupt_accounts", "adl_steps", "adl_markets")
BOOK_FIELDS = ("all_cash", "all_size", "all_entry", "cooldown", "isolated", "insurance_fund")
_FIELD_KIND = {"all_cash": "usd_row", "all_size": "units_position", "all_entry": "price_market",
               "cooldown": "seconds", "insurance_fund": "usd"}
_HISTORY_KIND = {"mark": "price_market", "vault_equity": "usd_vault", "market_liquidation_notional": "usd",
                 "backstop_notional": "usd", "adl_notional": "usd", "n_bankrupt": "count"}
_METRIC_KIND = {"zero_sum_error": "units_market_max", "conservation_error": "usd_total",
                "vault_pnl": "usd_vault", "vault_equity_min": "usd_vault"}


def kind_of_metric(name: str) -> str:
    return "count" if name in COUNTS else _METRIC_KIND.get(name, "usd")


def tolerance(case: Case, kind: str, rel: float = 1e-9):
    """Absolute floor of a quantity: ``rel`` of its own scale, a number or an array that broadcasts
    against the quantity's trailing axes.

    ``usd``: the traders' scale (:attr:`Case.traders_scale`); ``usd_row`` [R] and ``usd_vault``: the
    row's (:attr:`Case.row_scale`); ``usd_total``: every row's, cash included; ``units_position`` [R, A];
    ``units_market_max``: the largest market's units; ``price_market`` [A]; ``seconds``: the cooldown.
    """
    if kind == "count":
        return 0.0
    scales = {
        "usd": lambda: case.traders_scale,
        "usd_row": lambda: case.row_scale,
        "usd_vault": lambda: case.row_scale[-2],
        "usd_total": lambda: case.scale,
        "units_position": lambda: case.position_size_scale,
        "units_market_max": lambda: case.market_size_scale.max(),
        "price_market": lambda: case.market_price_scale,
        "seconds": lambda: max(float(case.venue.cooldown), 1.0),
    }
    return rel * scales[kind]()


def compare_outcomes(case: Case, got, want, rel: float = 1e-9) -> list[str]:
    """Every disagreement between two outcomes beyond tolerance, as readable lines ([] when they agree).

    Each quantity must agree to ``rel`` relative with an absolute floor of
    ``rel`` times the case's scale of its kind; counts must be equal. Entry
    prices are compared where either outcome holds more than dust (a
    position above the units floor): the entry of a 1e-13-unit position is
    meaningless, and its USD weight ``size·entry`` is compared everywhere.
    """
    bad: list[str] = []

    def check(name, g, w, kind, mask=None):
        g, w = np.asarray(g, dtype=np.float64), np.asarray(w, dtype=np.float64)
        if g.shape != w.shape:
            bad.append(f"{name}: shape {g.shape} vs {w.shape}")
            return
        err = np.abs(g - w)
        ok = err <= tolerance(case, kind, rel) + rel * np.abs(w)
        if mask is not None:
            ok |= ~mask
        if not np.all(ok):
            idx = tuple(int(i) for i in np.argwhere(~ok)[0])
            bad.append(f"{name}{list(idx)}: {g[idx]!r} vs {w[idx]!r} (|diff| {err[idx]:.3g}; "
                       f"{int(np.sum(~ok))} entries differ)")

    for k in sorted(set(got.metrics) | set(want.metrics)):
        if k not in got.metrics or k not in want.metrics:
            bad.append(f"metric {k}: missing on one side")
            continue
        check(f"metric {k}", got.metrics[k], want.metrics[k], kind_of_metric(k))
    for f in BOOK_FIELDS:
        g, w = getattr(got.book, f), getattr(want.book, f)
        if f == "isolated":
            if not np.array_equal(np.asarray(g), np.asarray(w)):
                bad.append("book.isolated differs")
        elif f == "all_entry":
            gs = np.asarray(got.book.all_size, dtype=np.float64)
            ws = np.asarray(want.book.all_size, dtype=np.float64)
            held = np.maximum(np.abs(gs), np.abs(ws)) > tolerance(case, "units_position", rel)
            check("book.all_entry", g, w, "price_market", mask=held)
            check("book.all_size*all_entry", gs * np.asarray(g, dtype=np.float64),
                  ws * np.asarray(w, dtype=np.float64), "usd")
        else:
            check(f"book.{f}", g, w, _FIELD_KIND[f])
    if got.history is not None and want.history is not None:
        for k in sorted(set(got.history) | set(want.history)):
            if k not in got.history or k not in want.history:
                bad.append(f"history {k}: missing on one side")
                continue
            check(f"history {k}", got.history[k], want.history[k], _HISTORY_KIND.get(k, "usd"))
    return bad
