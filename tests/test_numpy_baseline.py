"""The NumPy baseline of ``benchmarks/numpy_engine.py`` computes what ``adljax.simulate`` computes.

``benchmarks/bench_compare.py`` times the engine against that baseline; the
comparison is fair only if both do the same work and give the same answers.
Here, in float64, every final book field and every metric must agree to
1e-9 relative (with an absolute floor of 1e-9 of the case's USD, unit or
price scale; counts exactly), on hand-made books whose crash fires market
liquidation (partial and whole), the vault backstop and ADL, on small
default studies and on small versions of the benchmark's calm and cascade
studies.

One knife-edge is avoided on purpose: with a liquidation fee, a row closed
whole whose fee is capped at its remaining value ends at ``AV = 0 ± 1 ulp``,
and whether the backstop then "takes over" that empty row (``AV < 0``)
depends on rounding (XLA fuses ``a·b + c`` into FMAs; NumPy does not). The
cases with a fee below keep the fee under the cap.
"""
from __future__ import annotations

import sys
from pathlib import Path

import jax
import numpy as np
import pytest

import adljax
from adljax import Book, Paths, venues
from adljax.study import default_study

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
import numpy_engine  # noqa: E402
from bench_engine import study as bench_study  # noqa: E402

REL = 1e-9
COUNTS = {"market_liquidation_orders", "partial_liquidation_orders", "backstop_accounts",
          "n_adl_accounts", "n_bankrupt_accounts", "adl_steps", "adl_markets"}
UNIT_METRICS = {"zero_sum_error"}
BOOK_FIELDS = ("all_cash", "all_size", "all_entry", "cooldown", "insurance_fund")


def _scales(book: Book, paths: Paths):
    """USD, unit and price scales of a case (the absolute floors are REL times these)."""
    size = np.abs(np.asarray(book.all_size, dtype=np.float64))
    oracle = np.asarray(paths.oracle, dtype=np.float64)
    price = float(max(oracle.max(), np.asarray(book.all_entry).max()))
    usd = float(max(np.abs(np.asarray(book.all_cash)).sum(), (size * oracle.max(axis=(0, 1))).sum(), 1.0))
    return usd, float(max(size.max(), 1e-300)), price


def compare(venue, book, paths, dt=1.0):
    """Run both in float64; assert agreement; return the engine's metrics (as numpy)."""
    fast = adljax.simulate(venue, book, paths, dt=dt)
    base = numpy_engine.simulate(venue, book, paths, dt=dt)
    usd, units, price = _scales(book, paths)
    bad = []

    def check(name, got, want, floor, mask=None):
        got, want = np.asarray(got, dtype=np.float64), np.asarray(want, dtype=np.float64)
        assert got.shape == want.shape, f"{name}: shape {got.shape} vs {want.shape}"
        ok = np.abs(got - want) <= floor + REL * np.abs(want)
        if mask is not None:
            ok |= ~mask
        if not np.all(ok):
            i = tuple(int(v) for v in np.argwhere(~ok)[0])
            bad.append(f"{name}{list(i)}: numpy {got[i]!r} vs engine {want[i]!r} ({int(np.sum(~ok))} differ)")

    assert set(base["metrics"]) == set(adljax.METRICS)
    for k in adljax.METRICS:
        floor = 0.0 if k in COUNTS else REL * (units if k in UNIT_METRICS else usd)
        check(f"metric {k}", base["metrics"][k], fast.metrics[k], floor)
    for f in BOOK_FIELDS:
        want = getattr(fast.book, f)
        if f == "all_entry":
            held = np.abs(np.asarray(fast.book.all_size)) > REL * units
            check("book.all_entry", base["book"][f], want, REL * price, mask=held)
        else:
            floor = {"all_size": REL * units, "cooldown": REL * max(venue.cooldown, 1.0)}.get(f, REL * usd)
            check(f"book.{f}", base["book"][f], want, floor)
    assert not bad, "numpy baseline differs from adljax.simulate:\n" + "\n".join(bad)
    return {k: np.asarray(v) for k, v in fast.metrics.items()}


def crash_book() -> Book:
    """Two markets (100 and 50): leveraged longs, profitable shorts, equal-score shorts, a small vault."""
    return Book.from_accounts(
        cash=[20_000.0, 1_500.0, 2_000.0, 1_200.0, 50_000.0, 30_000.0, 20_000.0, 5_000.0, 1_000.0,
              10_000.0, 10_000.0],
        size=[[3000.0, 0.0], [200.0, 0.0], [100.0, 400.0], [0.0, 500.0], [-1500.0, 0.0], [-1000.0, 0.0],
              [0.0, -900.0], [0.0, 0.0], [50.0, 0.0], [-300.0, 0.0], [-300.0, 0.0]],
        entry=[[100.0, 0.0], [100.0, 0.0], [100.0, 50.0], [0.0, 50.0], [110.0, 0.0], [95.0, 0.0],
               [0.0, 52.0], [0.0, 0.0], [100.0, 0.0], [105.0, 0.0], [105.0, 0.0]],
        vault_cash=3_000.0, lp_size=[-250.0, 0.0], lp_entry=[100.0, 0.0], lp_cash=1e6, dtype=np.float64)


def crash_paths(n_scenarios: int = 3, n_steps: int = 16) -> Paths:
    """Both markets fall 10 %, 25 % and 35 % (one scenario each) over the first two thirds of the steps."""
    t = np.minimum(np.linspace(0.0, 1.5, n_steps), 1.0)[:, None]
    falls = np.array([[0.10, 0.12], [0.25, 0.30], [0.35, 0.40]])[:n_scenarios]
    oracle = np.stack([np.array([100.0, 50.0]) * (1.0 - f * t) for f in falls])
    depth = np.broadcast_to(np.array([40_000.0, 8_000.0]), oracle.shape).copy()
    depth[:, n_steps // 2] = 0.0                       # one step with no book at all
    return Paths(oracle, depth)


# ---------------------------------------------------------------------------
# Hand-made books (one market, padded to one shape: the engine compiles once for all of them)
# ---------------------------------------------------------------------------

N_ROWS, N_STEPS = 6, 3


def small_book(cash, size, entry, **kw) -> Book:
    """A one-market book padded with empty rows (no cash, no position: no stage ever touches them)."""
    pad = N_ROWS - len(cash)
    return Book.from_accounts(cash=list(cash) + [0.0] * pad, size=[[s] for s in size] + [[0.0]] * pad,
                              entry=[[e] for e in entry] + [[0.0]] * pad, dtype=np.float64, **kw)


def small_path(oracle, depth):
    """One scenario of N_STEPS steps; the last price and depth are held to fill up."""
    o = list(oracle) + [oracle[-1]] * (N_STEPS - len(oracle))
    d = np.broadcast_to(np.asarray(depth, dtype=np.float64), (len(oracle),))
    d = list(d) + [d[-1]] * (N_STEPS - len(oracle))
    return Paths(oracle=np.asarray(o, dtype=np.float64)[None, :, None], depth=np.asarray(d)[None, :, None])


def test_partial_liquidation_then_whole_orders_during_the_cooldown():
    book = small_book([20_000.0, 1e6], [2000.0, -2000.0], [100.0, 100.0])
    v = venues.hyperliquid(max_leverage=10, impact=0.0, slippage=0.0)
    m = compare(v, book, small_path([100, 94, 93.5], 1e12), dt=10.0)
    assert m["market_liquidation_orders"][0] == 2 and m["partial_liquidation_orders"][0] == 1


def test_backstop_takeover_and_refusal():
    rows = ([1000.0, 1000.0, 1e5], [100.0, 100.0, -200.0], [100.0, 100.0, 100.0])
    v = venues.hyperliquid(max_leverage=10, impact=0.0, slippage=0.0)
    # The vault carries the first row and refuses the second (the prefix rule); then two with a deficit.
    m = compare(v, small_book(*rows, vault_cash=200.0), small_path([100, 93, 93], [1e12, 0.0, 0.0]))
    assert m["backstop_accounts"][0] == 1
    m = compare(v, small_book(*rows, vault_cash=50_000.0), small_path([100, 88], [1e12, 0.0]))
    assert m["backstop_accounts"][0] == 2 and m["bad_debt_backstop"][0] > 0


def test_adl_queue_at_previous_mark():
    # X long 20 @100 goes bankrupt at 90 with no depth; the vault (no cash) cannot carry it.
    book = small_book([100.0, 100.0, 500.0, 2000.0, 10_000.0, 777.0], [20.0, -5.0, -10.0, -15.0, 10.0, 0.0],
                      [100.0, 110.0, 100.0, 90.0, 100.0, 0.0])
    v = venues.hyperliquid(max_leverage=10, impact=0.0, slippage=0.0)
    m = compare(v, book, small_path([100, 90, 89], [1e12, 0.0, 0.0]))
    assert m["adl_notional"][0] == pytest.approx(20 * 90.0) and m["n_adl_accounts"][0] == 3


def test_adl_queue_equal_scores_share_pro_rata():
    # Two identical shorts (equal scores) at the queue's cut-off share the rest pro rata.
    book = small_book([100.0, 1000.0, 1000.0, 5000.0], [20.0, -15.0, -15.0, 10.0], [100.0] * 4)
    v = venues.hyperliquid(max_leverage=10, impact=0.0, slippage=0.0)
    m = compare(v, book, small_path([100, 90], [1e12, 0.0]))
    assert m["n_adl_accounts"][0] == 2 and m["adl_notional"][0] == pytest.approx(20 * 90.0)


# ---------------------------------------------------------------------------
# A two-market crash through every stage
# ---------------------------------------------------------------------------

@pytest.mark.parametrize("numbers", [
    dict(),
    dict(liquidation_fee=0.0005, vault_unwind=0.2, impact=0.05, slippage=0.02),
], ids=["hyperliquid", "fee-unwind-impact"])
def test_crash_through_every_stage(numbers):
    v = venues.hyperliquid(max_leverage=[20.0, 10.0], **numbers)
    m = compare(v, crash_book(), crash_paths())
    for k in ("market_liquidation_notional", "partial_liquidation_orders", "backstop_accounts", "adl_notional"):
        assert m[k].sum() > 0, f"{k} did not fire"
    if numbers:
        assert m["liquidation_fees"].sum() > 0 and m["vault_unwind_notional"].sum() > 0


# ---------------------------------------------------------------------------
# Studies
# ---------------------------------------------------------------------------

@pytest.mark.parametrize("seed", [0, 3])
def test_default_study(seed):
    st = default_study(n_scenarios=4, n_steps=60, n_accounts=50, seed=seed)
    compare(st.venue, st.book, st.paths, dt=st.dt)


@pytest.mark.parametrize("kind", ["calm", "cascade"])
def test_benchmark_studies_small(kind):
    venue, book, paths = bench_study(kind, 8, 200, 4, 100)
    m = compare(venue, book, paths)
    if kind == "cascade":
        assert m["adl_notional"].sum() > 0 and m["backstop_accounts"].sum() > 0


# ---------------------------------------------------------------------------
# Scope
# ---------------------------------------------------------------------------

def test_batched_book_and_float32():
    book = crash_book()
    batched = jax.tree_util.tree_map(lambda x: np.stack([np.asarray(x)] * 3), book)
    v = venues.hyperliquid(max_leverage=[20.0, 10.0])
    one = numpy_engine.simulate(v, book, crash_paths())
    many = numpy_engine.simulate(v, batched, crash_paths())
    for k in adljax.METRICS:
        np.testing.assert_array_equal(one["metrics"][k], many["metrics"][k])
    f32 = numpy_engine.simulate(v, book, crash_paths(), dtype=np.float32)
    assert f32["book"]["all_cash"].dtype == np.float32 and f32["metrics"]["bad_debt"].dtype == np.float32
    np.testing.assert_allclose(f32["metrics"]["adl_notional"], one["metrics"]["adl_notional"], rtol=1e-3)


@pytest.mark.parametrize("change", [dict(adl_policy="pro_rata"), dict(adl_score="bitmex"),
                                    dict(adl_price="bankruptcy"), dict(backstop="insurance"),
                                    dict(cooldown_mode="wait")])
def test_other_rules_are_not_implemented(change):
    with pytest.raises(NotImplementedError):
        numpy_engine.simulate(venues.hyperliquid(**change), crash_book(), crash_paths())
