"""The position engine (adljax.PositionBook) against the dense engine, by hand, and its invariants.

The differential test draws the dense engine's own cases (strategies.cases), runs them as dense books and as
position books (PositionBook.from_book), and requires every metric, the history and the final book to agree
at 1e-9 of each quantity's scale in float64: the same rules, only the sums taken in another order.
"""
from __future__ import annotations

import os

import jax

import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import HealthCheck, given, note, settings, strategies as st

import adljax
from adljax import Book, EngineConfig, InputError, Outcome, Paths, PositionBook, venues

from invariants import REL, check_invariants
from strategies import RULE_SETS, SHAPES, cases, compare_outcomes

FULL = os.environ.get("ADLJAX_FULL_TESTS") == "1"
#: Rule sets run in the suite: the queue at the previous mark with the vault, the random order at bankruptcy
#: prices with the insurance fund, the socialized loss (pro rata: tests/test_positions_adl.py, stage by stage).
#: ADLJAX_FULL_TESTS=1: every one of RULE_SETS.
PAIRS = tuple(zip(SHAPES[1:] + SHAPES[:1], RULE_SETS[:1] + RULE_SETS[6:8])) if not FULL \
    else tuple(zip((SHAPES * 3)[:len(RULE_SETS)], RULE_SETS))
PER_PAIR = 12 if FULL else 3


#: The drawn books are small: with liquidation's gathered rows below their rows, steps with few liquidatable rows
#: run the gathered path (liquidation.run_gathered) and the others the whole list, and both are compared.
GATHERED_PATHS = EngineConfig(gathered_rows=2)


def _as_dense(out: Outcome) -> Outcome:
    return Outcome(book=out.book.to_book(), metrics=out.metrics, history=out.history)


@pytest.mark.parametrize("pair", PAIRS, ids=lambda p: "-".join(str(v) for v in p[1].values()))
@settings(max_examples=PER_PAIR, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(data=st.data())
def test_position_engine_matches_dense_engine(pair, data):
    shape, rules = pair
    case = data.draw(cases(shapes=(shape,), n_scenarios=3, rules=(rules,)), label="case")
    note(case.describe())
    book, paths = case.book(), case.paths()
    dense = adljax.simulate(case.venue, book, paths, dt=case.dt, history=True)
    pos = _as_dense(adljax.simulate(case.venue, PositionBook.from_book(book), paths, dt=case.dt, history=True,
                                    config=GATHERED_PATHS))
    bad = compare_outcomes(case, pos, dense)
    assert not bad, "position and dense engines disagree:\n" + "\n".join(bad)
    check_invariants(case, pos, rel=REL)


def _two_market_book(**kw) -> PositionBook:
    """Trader 0 long 10 @ 100 with $50, trader 1 short 10 @ 100 with $10,000, trader 2 $500 and no position;
    market 1 holds no position at all."""
    return PositionBook.from_positions([0, 1], [0, 0], [10.0, -10.0], [100.0, 100.0], [50.0, 10_000.0, 500.0],
                                       n_markets=2, dtype=jnp.float64, **kw)


def test_a_liquidated_long_closes_whole_at_the_mark_by_hand():
    """Oracle 96: trader 0's AV = 50 + 10·(96 − 100) = 10 < MR = 10·96·1.25 % = 12, so its $960 position
    (under the $100k partial threshold) closes whole at 96 with no slippage: cash 50 − 40 = 10, flat. The
    LPs take the long, 10 @ 96, for no cash. Trader 1 (AV 10,040, MR 12) and trader 2 (no position) keep theirs."""
    venue = venues.hyperliquid(slippage=0.0, impact=0.0, liquidation_fee=0.0)
    oracle = np.array([[[100.0, 50.0], [96.0, 50.0]]])
    paths = Paths(oracle, np.full_like(oracle, 1e9))
    out = adljax.simulate(venue, _two_market_book(), paths)
    b = out.book
    np.testing.assert_allclose(np.asarray(b.all_cash[0]), [10.0, 10_000.0, 500.0, 0.0, 0.0], atol=1e-12)
    np.testing.assert_allclose(np.asarray(b.size[0]), [[0.0, 0.0], [-10.0, 0.0], [0.0, 0.0]])
    np.testing.assert_allclose(np.asarray(b.lp_size[0]), [10.0, 0.0])
    np.testing.assert_allclose(np.asarray(b.lp_entry[0]), [96.0, 0.0])
    m = {k: float(v[0]) for k, v in out.metrics.items()}
    assert m["market_liquidation_orders"] == 1 and m["market_liquidation_notional"] == pytest.approx(960.0)
    assert m["adl_notional"] == 0 and m["backstop_accounts"] == 0
    assert m["conservation_error"] < 1e-9 and m["zero_sum_error"] == 0


def test_the_dense_view_by_hand_in_and_out_of_jit():
    """Account 0 long 1 in market 0, account 1 short 2 in market 1: [[1, 0], [0, −2]], entries [[100, 0], [0, 50]],
    built on the host outside a traced function and by a scatter inside one."""
    book = PositionBook.from_positions([0, 1], [0, 1], [1.0, -2.0], [100.0, 50.0], [10.0, 10.0],
                                       lp_size=[-1.0, 2.0], lp_entry=[100.0, 50.0], dtype=jnp.float64)
    for view in (lambda b: (b.size, b.entry), jax.jit(lambda b: (b.size, b.entry))):
        size, entry = view(book)
        np.testing.assert_array_equal(np.asarray(size), [[1.0, 0.0], [0.0, -2.0]])
        np.testing.assert_array_equal(np.asarray(entry), [[100.0, 0.0], [0.0, 50.0]])
        assert size.dtype == jnp.float64


def test_position_books_refuse_what_they_cannot_run(monkeypatch):
    book = _two_market_book()
    assert book.size.shape == (3, 2)                   # 6 numbers: within the dense views' limit
    monkeypatch.setattr(adljax.model.position_book, "DENSE_VIEW_LIMIT", 5)
    with pytest.raises(InputError, match="book.size: the dense view .* 6 numbers.*book.position_size"):
        book.size
    with pytest.raises(InputError, match="account, market: positions 0 and 2"):
        PositionBook.from_positions([0, 1, 0], [0, 0, 0], [1.0, -1.0, 1.0], [1.0, 1.0, 1.0], [1.0, 1.0])
    with pytest.raises(InputError, match="market: position 1 is in market 3"):
        PositionBook.from_positions([0, 1], [0, 3], [1.0, -1.0], [1.0, 1.0], [1.0, 1.0], n_markets=2)
    with pytest.raises(InputError, match="not zero-sum"):
        PositionBook.from_positions([0, 1], [0, 0], [1.0, -2.0], [1.0, 1.0], [1.0, 1.0])
    with pytest.raises(InputError, match="isolated: account 0"):
        PositionBook.from_positions([0, 0, 1, 1], [0, 1, 0, 1], [1.0, 1.0, -1.0, -1.0], [1.0] * 4, [1.0, 1.0],
                                    isolated=[True, False])


def test_from_book_and_to_book_round_trip():
    rng = np.random.default_rng(3)
    size = np.where(rng.random((6, 4)) < 0.3, rng.normal(size=(6, 4)), 0.0)
    entry = np.where(size != 0, rng.uniform(1, 2, (6, 4)), 0.0)
    dense = Book.from_accounts(rng.uniform(1, 2, 6), size, entry, lp_size=-size.sum(0), lp_entry=np.ones(4),
                               vault_cash=3.0, dtype=jnp.float64)
    pos = PositionBook.from_book(dense)
    assert pos.n_positions == int(np.sum(size != 0))
    back = pos.to_book()
    for f in ("all_cash", "size_am", "entry_am", "cooldown", "isolated", "insurance_fund"):
        np.testing.assert_array_equal(np.asarray(getattr(back, f)), np.asarray(getattr(dense, f)), err_msg=f)
    mark = jnp.asarray(rng.uniform(1, 2, 4))
    np.testing.assert_allclose(np.asarray(pos.account_value(mark)), np.asarray(dense.account_value(mark)), rtol=1e-14)


@pytest.mark.parametrize("every_row_holds", [True, False])
def test_layout_sums_and_gathers_match_numpy(every_row_holds):
    """The layout's sums over rows and markets and its gathers, with the plane (every trader row holds a
    position: the list starts with each row's first position) and without it, against NumPy."""
    from adljax.model.layout import Layout
    rng = np.random.default_rng(5)
    n, a = 9, 4
    held = rng.random((n, a)) < 0.4
    held[np.arange(n), rng.integers(0, a, n)] = True
    if not every_row_holds:
        held[4] = False
    rows, mkts = np.nonzero(held)
    lay, order = Layout.build(rows, mkts, n + 2, a)
    assert lay.n_plane == (n if every_row_holds else 0)
    row, mkt = np.asarray(lay.row), np.asarray(lay.market)
    np.testing.assert_array_equal(row[:len(rows)], rows[order])
    if every_row_holds:
        np.testing.assert_array_equal(row[:n], np.arange(n))
    x = rng.normal(size=row.shape[0])
    np.testing.assert_allclose(np.asarray(lay.rows(jnp.asarray(x))), np.bincount(row, x, n + 2), rtol=1e-14)
    np.testing.assert_allclose(np.asarray(lay.markets(jnp.asarray(x))), np.bincount(mkt, x, a), rtol=1e-14)
    mask = x > 0.5
    np.testing.assert_array_equal(np.asarray(lay.any_rows(jnp.asarray(mask))), np.bincount(row, mask, n + 2) > 0)
    v = rng.normal(size=n + 2)
    np.testing.assert_array_equal(np.asarray(lay.at_row(jnp.asarray(v))), v[row])
    cum = np.asarray(lay.market_cumsum(jnp.asarray(x)))
    for i in range(row.shape[0]):       # the running sum over the market's positions in row order, inclusive
        same = (mkt == mkt[i]) & ((row < row[i]) | (np.arange(row.shape[0]) == i))
        np.testing.assert_allclose(cum[i], x[same].sum(), rtol=1e-12, atol=1e-12)
    # The positions of some rows (ascending, padded with rows that do not count), in row order then list order.
    chosen = np.array([1, 4, 5, 8, n + 1, n + 1])
    real = np.array([True, True, True, True, False, False])
    want = np.concatenate([np.flatnonzero(row == r) for r in chosen[real]])
    for k in (want.size + 3, want.size - 2):
        index, found, which = (np.asarray(x) for x in lay.positions_of(jnp.asarray(chosen), jnp.asarray(real), k))
        m = min(k, want.size)
        np.testing.assert_array_equal(found, np.arange(k) < want.size)
        np.testing.assert_array_equal(index[:m], want[:m])
        np.testing.assert_array_equal(chosen[which[:m]], row[want[:m]])


def test_idle_rows_stay_out_of_the_run_and_come_back_unchanged():
    """Rows with no position and cash >= 0 are left out of the compiled run (its rows are the others) and come
    back as they were; a row with no position but negative cash is not idle: the insurance fund pays it.
    Trader 3 (cash −50, no position) gets 50 from the $100 fund in the first step; traders 2 and 4 are idle."""
    book = PositionBook.from_positions([0, 1], [0, 0], [10.0, -10.0], [100.0, 100.0],
                                       [5_000.0, 10_000.0, 500.0, -50.0, 0.0], n_markets=2, insurance_fund=100.0,
                                       dtype=jnp.float64)
    compact, expand = book.without_idle_rows()
    assert compact.layout.n_rows == 3 + 2 and compact.n_positions == 2
    np.testing.assert_array_equal(np.asarray(compact.all_cash), [5_000.0, 10_000.0, -50.0, 0.0, 0.0])
    back = expand(compact.batched(2))
    np.testing.assert_array_equal(np.asarray(back.all_cash), np.broadcast_to(np.asarray(book.all_cash), (2, 7)))
    np.testing.assert_array_equal(np.asarray(back.position_size), np.broadcast_to(book.position_size, (2, 6)))
    venue = venues.binance(slippage=0.0, impact=0.0)
    oracle = np.array([[[100.0, 50.0], [99.0, 50.0]]])
    out = adljax.simulate(venue, book, Paths(oracle, np.full_like(oracle, 1e9)))
    np.testing.assert_allclose(np.asarray(out.book.all_cash[0]), [5_000.0, 10_000.0, 500.0, 0.0, 0.0, 0.0, 0.0],
                               atol=1e-12)
    assert float(out.book.insurance_fund[0]) == pytest.approx(50.0)
    assert float(out.metrics["backstop_accounts"][0]) == 1
    want = adljax.simulate(venue, book.to_book(), Paths(oracle, np.full_like(oracle, 1e9)))
    for k, v in want.metrics.items():
        np.testing.assert_allclose(np.asarray(out.metrics[k]), np.asarray(v), rtol=1e-12, atol=1e-9, err_msg=k)
