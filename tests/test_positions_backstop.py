"""Stage 3 on a position book (:mod:`adljax.engine.positions.backstop`) against the dense stage, hard mode.

Each book is a random dense :class:`adljax.Book` converted with ``PositionBook.from_book``; the dense stage
(:mod:`adljax.engine.stages.backstop`) is the reference. Books, reports and margins agree to float64 rounding.
Each function is compiled once per book shape: the scenarios of a shape differ only in their numbers.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from adljax import Book, venues
from adljax.engine.market import Market
from adljax.engine.positions import backstop as pos
from adljax.engine.positions import margin as pos_margin
from adljax.engine.stages import backstop as dense
from adljax.engine.stages import margin as dense_margin
from adljax.engine.config import DEFAULT
from adljax.model.position_book import PositionBook

RTOL = 1e-12

# Compiled once per shape (jit caches by shape and by the params' tier count and mode).
dense_takeover = jax.jit(dense.takeover)
dense_insurance = jax.jit(dense.run_insurance)
dense_values = jax.jit(dense_margin.values)
pos_takeover = jax.jit(pos.takeover)
pos_insurance = jax.jit(pos.run_insurance)
pos_values = jax.jit(pos_margin.values)

TIERS = [(0.0, 0.01), (2e4, 0.02), (1e5, 0.05)]


def close(actual, expected, what=""):
    """``actual`` equals ``expected`` but for float64 rounding (relative to the array's largest number)."""
    actual, expected = np.asarray(actual, np.float64), np.asarray(expected, np.float64)
    scale = max(float(np.max(np.abs(expected), initial=0.0)), 1.0)
    np.testing.assert_allclose(actual, expected, rtol=RTOL, atol=RTOL * scale, err_msg=what)


def same_book(pb: PositionBook, book: Book):
    got = pb.to_book()
    for f in ("all_cash", "size_am", "entry_am", "cooldown", "insurance_fund"):
        close(getattr(got, f), getattr(book, f), f)
    np.testing.assert_array_equal(np.asarray(got.isolated), np.asarray(book.isolated))


def same_report(a, b):
    for f in ("notional", "accounts", "bad_debt"):
        close(getattr(a, f), getattr(b, f), f)


def same_margin(a, b):
    close(a.av, b.av, "av")
    close(a.mr, b.mr, "mr")
    np.testing.assert_array_equal(np.asarray(a.has_position), np.asarray(b.has_position))


def market_of(mark):
    mark = jnp.asarray(mark, jnp.float64)
    return Market(mark=mark, prev_mark=mark, depth=jnp.full_like(mark, 1e9), adl_start=jnp.int32(0))


def random_book(seed, n, a, venue, scale):
    """A random book of ``n`` traders in ``a`` markets at mark ``≈ scale``, its mark and params (vault cash 0).

    Each row's cash sets its ``AV/MR`` to a ratio in [−0.5, 2), so about half the rows are candidates (below
    2/3) and a fifth are below zero; one row without a position holds negative cash (a candidate with no
    position). The vault holds a position in every market, entered near the mark (so that taking a candidate's
    opposite position realises some PnL); the LP row takes the other side.
    """
    rng = np.random.default_rng(seed)
    mark = scale * rng.uniform(0.8, 1.2, a)
    size = np.where(rng.random((n, a)) < 0.6, rng.choice([-1.0, 1.0], (n, a)) * rng.uniform(10, 400, (n, a)), 0.0)
    size[0, 0] = 50.0                                  # the first row always holds a position
    size[n - 2] = 0.0                                  # a row without any
    entry = np.where(size != 0, mark * rng.uniform(0.9, 1.1, (n, a)), 0.0)
    vault_size = rng.choice([-1.0, 1.0], a) * rng.uniform(50, 300, a)
    kw = dict(vault_size=vault_size, vault_entry=mark * rng.uniform(0.97, 1.03, a),
              lp_size=-(size.sum(0) + vault_size), lp_entry=mark, lp_cash=1e3 * scale, dtype=np.float64)
    params = venue.params(a, dt=1.0, dtype=jnp.float64)
    market = market_of(mark)
    flat = Book.from_accounts(np.zeros(n), size, entry, **kw)
    m = dense_values(flat, market, params)
    pnl, mr = np.asarray(m.av)[:n], np.asarray(m.mr)[:n]
    cash = np.where(mr > 0, rng.uniform(-0.5, 2.0, n) * mr - pnl, rng.uniform(1, 100, n))
    cash[n - 2] = -20.0 * scale / 100
    cooldown = rng.uniform(0, 30, n + 2)
    return (lambda vault_cash=0.0, fund=0.0: Book.from_accounts(cash, size, entry, vault_cash=vault_cash,
                                                                  insurance_fund=fund, **kw).replace(
        cooldown=jnp.asarray(cooldown))), market, params


def vault_cashes(book: Book, market, params):
    """Vault cash for which the vault refuses its first candidate, stops at a candidate in the middle,
    and carries every candidate (and the candidates' rows, in order).

    After candidate ``j`` the vault carries iff ``cash ≥ g_j = MR_j − AV_j``, with ``AV_j`` and ``MR_j``
    its value and requirement after taking every candidate up to ``j`` at cash 0 (the dense stage's
    running sums). It stops at ``k`` for a cash between ``max(g_0..g_{k−1}, 0)`` and ``g_k``: ``k`` is
    a record of ``g``.
    """
    m = dense_values(book, market, params)
    cand = np.asarray(dense.candidates(m, params))
    cum_av, cum_mr = dense._running(jnp.asarray(cand), m.av, book.size_am, market.mark, params, DEFAULT)
    rows = np.flatnonzero(cand)
    g = (np.asarray(cum_mr) - np.asarray(cum_av))[rows]
    assert len(rows) >= 3 and g[0] > 0, "the book needs three candidates and a vault that can refuse the first"
    records = [k for k in range(1, len(rows)) if g[k] > max(g[:k].max(), 0.0) * 1.01]
    assert records, "the book needs a candidate that the vault can stop at"
    k = min(records, key=lambda k: abs(k - len(rows) / 2))        # the record nearest the middle
    lo = max(g[:k].max(), 0.0)
    return {"refuses": g[0] / 2, "walks": (lo + g[k]) / 2, "carries": 2 * g.max() + 1e3}, rows, rows[:k]


CASES = [  # (seed, N traders, A markets, venue, mark scale)
    (3, 12, 3, venues.hyperliquid(margin_tiers=TIERS), 100.0),                  # tiered vault
    (1, 8, 1, venues.hyperliquid(maintenance_margin=0.02), 100.0),              # one tier
    (2, 10, 2, venues.binance(), 1e4),                                          # Binance's brackets
]


@pytest.mark.parametrize("seed, n, a, venue, scale", CASES, ids=["tiered3", "onetier1", "binance2"])
def test_takeover_matches_dense(seed, n, a, venue, scale):
    make, market, params = random_book(seed, n, a, venue, scale)
    cashes, cand_rows, walk_rows = vault_cashes(make(), market, params)
    expect = {"refuses": [], "walks": list(walk_rows), "carries": list(cand_rows)}
    assert 0 < len(walk_rows) < len(cand_rows)
    batch = []
    for name, vc in cashes.items():
        book = make(vc)
        pb = PositionBook.from_book(book)
        d_book, d_rep, d_margin = dense_takeover(book, market, params, dense_values(book, market, params))
        p_margin = pos_values(pb, market, params)
        same_margin(p_margin, dense_values(book, market, params))
        p_book, p_rep, p_after = pos_takeover(pb, market, params, p_margin)
        # The case is what it says: the rows taken are none, those before the stop, or every candidate.
        taken = np.flatnonzero((np.asarray(d_book.size_am) == 0).all(0)[:n] & (np.asarray(d_book.all_cash)[:n] == 0))
        assert set(expect[name]) <= set(taken) and int(d_rep.accounts) == len(expect[name]), name
        same_book(p_book, d_book)
        same_report(p_rep, d_rep)
        same_margin(p_after, d_margin)
        # The margin after is that of the book after.
        same_margin(p_after, pos_values(p_book, market, params))
        batch.append((pb, d_book, d_rep, d_margin))

    # The same scenarios as one batch (the layout unbatched): a batch walks if any scenario must.
    lay = batch[0][0].layout
    vals = jax.tree.map(lambda *x: jnp.stack(x), *[b[0].values() for b in batch])

    def one(v, lay):
        b = PositionBook(**v, layout=lay)
        return pos.takeover(b, market, params, pos_margin.values(b, market, params))

    books, reps, afters = jax.jit(jax.vmap(one, in_axes=(0, None)))(vals, lay)
    for i, (_, d_book, d_rep, d_margin) in enumerate(batch):
        pick = lambda t: jax.tree.map(lambda x: x[i], t)
        same_book(PositionBook(**pick(books.values()), layout=lay), d_book)
        same_report(pick(reps), d_rep)
        same_margin(pick(afters), d_margin)


@pytest.mark.parametrize("seed, n, a, venue, scale", CASES[:1] + CASES[2:], ids=["tiered3", "binance2"])
def test_running_requirement_telescopes_to_dense(seed, n, a, venue, scale):
    # The vault's requirement after each row, built from per-position increments, is the dense sum over
    # markets of the requirement at the vault's running position; its value after each row too.
    make, market, params = random_book(seed, n, a, venue, scale)
    book = make(123.0)
    m = dense_values(book, market, params)
    cand = dense.candidates(m, params)
    d_av, d_mr = jax.jit(dense._running, static_argnums=5)(cand, m.av, book.size_am, market.mark, params, DEFAULT)
    pb = PositionBook.from_book(book)
    p_av, p_mr = jax.jit(pos._running)(pb.layout, cand, m.av, m.mr, pb.position_size, market.mark, params)
    close(p_av, d_av, "cum_av")
    close(p_mr, d_mr, "cum_mr")


def test_insurance_runs_out_midway():
    make, market, params = random_book(2, 10, 2, venues.binance(), 1e4)
    book = make()
    av = np.asarray(dense_values(book, market, params).av)[:-2]
    deficit = np.where(av < 0, -av, 0.0)
    below = np.flatnonzero(deficit)
    assert len(below) >= 3
    midway = deficit[below[:2]].sum() + deficit[below[2]] / 2
    # A fund a hair above the first deficit leaves only rounding dust for the second row: it counts as empty.
    hair = deficit[below[0]] * (1 + 1e-14)
    for fund, paid_rows in ((midway, 3), (deficit.sum() * 2, len(below)), (0.0, 0), (hair, 1)):
        book = make(fund=fund)
        pb = PositionBook.from_book(book)
        d_book, d_rep = dense_insurance(book, market, params, dense_values(book, market, params))
        p_book, p_rep = pos_insurance(pb, market, params, pos_values(pb, market, params))
        assert int(d_rep.accounts) == paid_rows
        same_book(p_book, d_book)
        same_report(p_rep, d_rep)
    # Midway: the first two deficits are paid in full, the third in half, the fund is empty.
    book = make(fund=midway)
    p_book, p_rep = pos_insurance(PositionBook.from_book(book), market, params, None)
    close(float(p_book.insurance_fund), 0.0)
    paid = np.asarray(p_book.all_cash - book.all_cash)
    close(paid[below], np.concatenate([deficit[below[:2]], [deficit[below[2]] / 2], np.zeros(len(below) - 3)]))


def test_hand_worked_takeover_and_insurance():
    # One market at mark 100, maintenance 1 %, backstop ratio 2/3:
    #   row 0: long 10 @ 110, cash 50:   AV = 50 − 100 = −50, MR = 10  → candidate
    #   row 1: short 5 @ 100, cash 3:    AV = 3,              MR = 5   → candidate (3 < 3.33)
    #   row 2: long 10 @ 108, cash 30:   AV = 30 − 80 = −50,  MR = 10  → candidate
    #   row 3: short 1 @ 100, cash 0.5:  AV = 0.5,            MR = 1   → candidate (0.5 < 0.67)
    #   vault: long 5 @ 80, cash 0:      AV = 100,            MR = 5
    #   LP:    short 19 @ 100, cash 0:   AV = 0,              MR = 19
    # The vault in row order: after row 0 it holds 15 (AV 50 ≥ MR 15), after row 1 10 (AV 53 ≥ 10), after
    # row 2 20 (AV 3 < 20): it stops there, and does not take row 3 either (it stops at the first refusal).
    # It buys 10 − 5 = 5 at 100: long 10 @ (5·80 + 5·100)/10 = 90, cash 0 − 50 + 3 = −47, AV = −47 + 10·10
    # = 53, MR = 10. Report: notional 10·100 + 5·100 = 1500, 2 accounts, bad debt 50 (row 0's deficit).
    params = venues.hyperliquid(maintenance_margin=0.01).params(1, dt=1.0, dtype=jnp.float64)
    market = market_of([100.0])
    book = Book.from_accounts([50.0, 3.0, 30.0, 0.5], [[10.0], [-5.0], [10.0], [-1.0]],
                              [[110.0], [100.0], [108.0], [100.0]], vault_size=[5.0], vault_entry=[80.0],
                              lp_size=[-19.0], lp_entry=[100.0], dtype=np.float64)
    book = book.replace(cooldown=jnp.asarray([5.0, 7.0, 9.0, 11.0, 0.0, 0.0]))
    pb = PositionBook.from_book(book)
    new, rep, after = pos_takeover(pb, market, params, pos_values(pb, market, params))
    got = new.to_book()
    np.testing.assert_array_equal(np.asarray(got.all_cash), [0.0, 0.0, 30.0, 0.5, -47.0, 0.0])
    np.testing.assert_array_equal(np.asarray(got.size_am), [[0.0, 0.0, 10.0, -1.0, 10.0, -19.0]])
    np.testing.assert_array_equal(np.asarray(got.entry_am), [[0.0, 0.0, 108.0, 100.0, 90.0, 100.0]])
    np.testing.assert_array_equal(np.asarray(got.cooldown), [0.0, 0.0, 9.0, 11.0, 0.0, 0.0])
    close([rep.notional, rep.accounts, rep.bad_debt], [1500.0, 2.0, 50.0])
    close(after.av, [0.0, 0.0, -50.0, 0.5, 53.0, 0.0])
    close(after.mr, [0.0, 0.0, 10.0, 1.0, 10.0, 19.0])
    np.testing.assert_array_equal(np.asarray(after.has_position), [False, False, True, True, True, True])
    # The insurance fund of 60 pays row 0's deficit of 50 in full, then 10 of row 2's 50, and is empty.
    new, rep = pos_insurance(pb.replace(insurance_fund=jnp.asarray(60.0)), market, params, None)
    np.testing.assert_array_equal(np.asarray(new.all_cash), [100.0, 3.0, 40.0, 0.5, 0.0, 0.0])
    close([new.insurance_fund, rep.accounts, rep.bad_debt, rep.notional], [0.0, 2.0, 60.0, 0.0])


def test_tiered_vault_carries_only_what_its_tiers_allow():
    # One market at mark 100, tiers 1 % then 10 % above $100k (deduction), vault flat with cash 5000:
    #   rows 0 and 1: long 1000 @ 100, cash 0: AV = 0, MR = 1e5·1 % = 1000 → candidates (0 < 667).
    # Summing the candidates' own requirements (1000 + 1000 = 2000 < 5000) the vault would carry both, but
    # holding 2000 it needs 2e5·1 % + (2e5 − 1e5)·9 % = 11000 > 5000: it takes row 0 (needs 1000) and stops
    # at row 1. Vault after: long 1000 @ 100, cash 5000, AV 5000, MR 1000; report 1e5 notional, 1 account.
    params = venues.hyperliquid(margin_tiers=[(0.0, 0.01), (1e5, 0.1)]).params(1, dt=1.0, dtype=jnp.float64)
    market = market_of([100.0])
    book = Book.from_accounts([0.0, 0.0], [[1000.0], [1000.0]], [[100.0], [100.0]], vault_cash=5000.0,
                              lp_size=[-2000.0], lp_entry=[100.0], dtype=np.float64)
    pb = PositionBook.from_book(book)
    new, rep, after = pos_takeover(pb, market, params, pos_values(pb, market, params))
    got = new.to_book()
    np.testing.assert_array_equal(np.asarray(got.size_am), [[0.0, 1000.0, 1000.0, -2000.0]])
    np.testing.assert_array_equal(np.asarray(got.all_cash), [0.0, 0.0, 5000.0, 0.0])
    close([rep.notional, rep.accounts, rep.bad_debt], [1e5, 1.0, 0.0])
    close(after.av[2], 5000.0)
    close(after.mr, [0.0, 1000.0, 1000.0, 2000.0 + 9000.0])
    d_book, d_rep, d_after = dense_takeover(book, market, params, dense_values(book, market, params))
    same_book(new, d_book)
    same_report(rep, d_rep)
    same_margin(after, d_after)
