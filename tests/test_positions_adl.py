"""The ADL stage on a position book (adljax.engine.positions.adl) against the dense stage
(adljax.engine.stages.adl), hard mode, float64: every policy, queue score and ADL price on random
small books, the position queue's cut-off against the dense one (ties at the cut included), and a
BitMEX-style hand-worked queue."""
from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import adljax
from adljax import Book
from adljax.engine.config import EngineConfig
from adljax.engine.market import Market
from adljax.engine.positions import adl as padl
from adljax.engine.positions import margin as pmargin
from adljax.engine.stages import adl as dadl
from adljax.engine.stages.queue import take_from_top as dense_take
from adljax.model.layout import Layout
from adljax.model.position_book import PositionBook

#: Every (policy, score, price) the rules allow; a policy without a queue ignores the score,
#: ``socialized`` the price too.
COMBOS = ([("queue", s, p) for s in ("hyperliquid", "bitmex", "pnl") for p in ("previous_mark", "mark", "bankruptcy")]
          + [(pol, "hyperliquid", p) for pol in ("random_order", "pro_rata") for p in ("previous_mark", "mark",
                                                                                     "bankruptcy")]
          + [("socialized", "hyperliquid", "previous_mark")])
#: Every scenario's book has A_MAX markets and N_MAX traders (one shape, one program per rules), of which
#: (A, N, kind) hold positions (:func:`_scenario`).
A_MAX, N_MAX = 3, 12
SCENARIOS = ((1, 5, "whole"), (1, 7, "vault"), (2, 8, "whole"), (2, 10, "vault"), (3, 12, "whole"),
             (3, 9, "vault"), (2, 12, "stuck"), (3, 6, "plain"), (1, 12, "plain"), (3, 12, "stuck"),
             (3, 12, "plain"))
RTOL = 1e-12


def _scenario(rng, a: int, n: int, kind: str) -> tuple[Book, np.ndarray]:
    """A random dense book of ``A_MAX`` markets and ``N_MAX`` traders of which only the first ``a`` markets and
    ``n`` traders hold positions (the rest empty: every scenario is one shape), and its mark [A_MAX].

    ``kind``: "whole" (every long of market 0 bankrupt, so its pool is matched whole), "vault" (the vault
    bankrupt, long 30 in market 0, more than the candidates' shorts there: the LPs' row, below zero, is no
    candidate), "stuck" (market 0 held by two bankrupt traders only: nobody to close against or charge),
    "plain". About 30 % of the traders are bankrupt at the mark; row 0 holds cash only;
    row 2 is a copy of row 1 (equal scores in every market: a tie in the queue).
    """
    mark = rng.uniform(50.0, 150.0, A_MAX)
    held = np.zeros((N_MAX, A_MAX), bool)
    held[1:n, :a] = rng.random((n - 1, a)) < 0.7
    size = np.where(held, rng.choice([-1.0, 1.0], held.shape) * rng.lognormal(1.0, 0.6, held.shape), 0.0)
    entry = np.where(held, mark * (1.0 + 0.15 * rng.standard_normal(held.shape)), 0.0)
    vault_size = np.zeros(A_MAX)
    vault_size[:a] = np.where(rng.random(a) < 0.6, rng.choice([-1.0, 1.0], a) * rng.lognormal(1.0, 0.5, a), 0.0)
    target = np.where(rng.random(N_MAX) < 0.3, -rng.uniform(20.0, 300.0, N_MAX), rng.uniform(20.0, 800.0, N_MAX))
    size[2], entry[2], target[2] = size[1], entry[1], target[1]
    if kind == "whole":
        vault_size[0] = -abs(vault_size[0])                           # a candidate short
        total = size[:, 0].sum() + vault_size[0]
        if total < 0:                                     # the traders net long, so that the vault ends short
            i = 3 + int(np.argmax(size[3:, 0]))
            size[i, 0] = max(size[i, 0], 0.0) + 1.0 - total
            entry[i, 0] = mark[0]
        target = np.where(size[:, 0] > 0, -rng.uniform(20.0, 300.0, N_MAX), np.abs(target))
        # The candidates' shorts exceed the bankrupt longs by 9e-13 of them (within POOL_TOLERANCE): the vault
        # takes the rest and more short, the LPs a tiny long. Matched whole, every short closes exactly; cut
        # by the queue instead, the last one would keep a remainder larger than dust.
        eps = 9e-13 * float(np.sum(np.maximum(size[:, 0], 0.0)))
        vault_size[0] -= size[:, 0].sum() + vault_size[0] + eps
    if kind == "vault":
        vault_size[0] = 30.0
    if kind == "stuck":
        size[:, 0], entry[:, 0], vault_size[0] = 0.0, 0.0, 0.0
        size[3:5, 0], entry[3:5, 0] = [4.0, -4.0], [1.1 * mark[0], 0.9 * mark[0]]
        target[3:5] = -rng.uniform(20.0, 300.0, 2)
    vault_entry = np.where(vault_size != 0, mark * (1.0 + 0.2 * np.sign(vault_size)), 0.0)
    if kind == "vault":                                               # loses 0.2·notional with half that in cash
        vault_cash = 0.5 * float(np.sum(np.abs(vault_size) * 0.2 * mark))
    else:
        vault_cash = float(np.sum(np.abs(vault_size) * mark)) + 100.0
    cash = target - np.sum(size * (mark - entry), axis=1)
    lp_size = -(size.sum(0) + vault_size)
    lp_entry = np.where(lp_size != 0, mark * (1.0 + 0.05 * rng.standard_normal(A_MAX)), 0.0)
    lp_cash = -100.0 - float(np.sum(lp_size * (mark - lp_entry))) if kind == "vault" else 1e5
    book = Book.from_accounts(cash, size, entry, vault_cash=vault_cash, vault_size=vault_size,
                              vault_entry=vault_entry, lp_cash=lp_cash, lp_size=lp_size, lp_entry=lp_entry,
                              dtype=jnp.float64)
    return book, mark


@functools.cache
def _cases():
    """One batch, one shape: (dense batched Book, PositionBook on the scenarios' union layout, batched Market,
    Params)."""
    rng = np.random.default_rng(11)
    books, marks = zip(*(_scenario(rng, a, n, kind) for a, n, kind in SCENARIOS))
    dense = jax.tree.map(lambda *x: jnp.stack(x), *books)
    mark = np.stack(marks)
    prev = mark * (1.0 + 0.03 * rng.standard_normal(mark.shape))
    market = Market(mark=jnp.asarray(mark), prev_mark=jnp.asarray(prev), depth=jnp.full(mark.shape, 1e6),
                    adl_start=jnp.asarray(rng.integers(0, N_MAX + 2, len(SCENARIOS)), jnp.int32))
    params = adljax.venues.hyperliquid().params(A_MAX, dt=1.0, dtype=jnp.float64)
    return dense, PositionBook.from_book(dense), market, params


_POS_AXES = PositionBook(0, 0, 0, 0, 0, 0, None)


@functools.partial(jax.jit, static_argnums=0)
def _both(rules, dense, pos, market, params):
    """The dense stage's (book, report) and the position stage's ((cash, size, entry), report, bankrupt_rows)
    and the dense bankrupt_rows, over the scenarios (vmapped; the layout unbatched)."""
    d = jax.vmap(lambda bk, mk: dadl.run(bk, mk, params, rules))(dense, market)

    def one(pb, mk):
        new, rep = padl.run(pb, mk, params, rules)
        return (new.all_cash, new.position_size, new.position_entry), rep, padl.bankrupt_rows(pb, mk)
    p = jax.vmap(one, in_axes=(_POS_AXES, 0))(pos, market)
    return d, p, jax.vmap(dadl.bankrupt_rows)(dense, market)


def _close(got, want, name, scale=None):
    """Equal to ``RTOL`` relative, of each scenario's largest value of the field (or ``scale``)."""
    got, want = np.asarray(got, np.float64), np.asarray(want, np.float64)
    if scale is None:
        scale = np.max(np.abs(want).reshape(want.shape[0], -1), axis=1) if want.ndim else np.abs(want)
    scale = np.maximum(np.reshape(scale, np.shape(scale) + (1,) * (want.ndim - np.ndim(scale))), 1.0)
    bad = np.abs(got - want) > RTOL * scale + RTOL * np.abs(want)
    assert not bad.any(), f"{name}: {np.argwhere(bad)[:5].tolist()} got {got[bad][:5]} want {want[bad][:5]}"


@pytest.mark.parametrize("policy, score, price", COMBOS)
def test_position_stage_matches_the_dense_stage(policy, score, price):
    rules = adljax.Rules(adl_policy=policy, adl_score=score, adl_price=price)
    dense, pos, market, params = _cases()
    (dbook, drep), ((cash, size, entry), prep, pb_rows), db_rows = _both(rules, dense, pos, market, params)
    new = pos.replace(all_cash=cash, position_size=size, position_entry=entry).to_book()
    _close(new.all_cash, dbook.all_cash, "all_cash", np.max(np.abs(np.asarray(dense.all_cash)), axis=1))
    # A bankrupt row closed flat at its bankruptcy price is at exactly 0 (not ±rounding), as in the dense stage.
    np.testing.assert_array_equal(np.asarray(new.all_cash) == 0, np.asarray(dbook.all_cash) == 0)
    _close(new.size_am, dbook.size_am, "size")
    np.testing.assert_array_equal(np.asarray(new.size_am) == 0, np.asarray(dbook.size_am) == 0)
    _close(new.entry_am, dbook.entry_am, "entry")
    for f in ("notional", "vault_notional", "bad_debt", "socialized"):
        _close(getattr(prep, f), getattr(drep, f), f)
    for f in ("deleveraged", "bankrupt", "any_fill", "markets"):
        np.testing.assert_array_equal(getattr(prep, f), getattr(drep, f), err_msg=f)
    np.testing.assert_array_equal(pb_rows[0], db_rows[0])
    _close(pb_rows[1], db_rows[1], "av")
    np.testing.assert_array_equal(pb_rows[2], db_rows[2])
    # Something is deleveraged (or charged) in most scenarios.
    acted = np.any(drep.deleveraged, axis=1)
    assert acted.sum() >= len(SCENARIOS) - 2


def test_random_books_cover_the_cases():
    """The random batch holds what the comparison is meant to meet: a bankrupt vault closed against, pools
    matched whole, bankrupt shorts and longs, and queues that cut a position partway."""
    rules = adljax.Rules(adl_policy="queue", adl_score="hyperliquid", adl_price="bankruptcy")
    dense, pos, market, params = _cases()
    (dbook, drep), _, _ = _both(rules, dense, pos, market, params)
    size, after = np.asarray(dense.size_am), np.asarray(dbook.size_am)         # [S, A, R]
    b = np.asarray(drep.bankrupt)                                              # [S, R]
    kinds = np.array([k for _, _, k in SCENARIOS])
    vault = kinds == "vault"
    assert np.all(b[vault, -2]) and np.all(np.asarray(drep.vault_notional)[vault] > 0)
    # ... its long in market 0 closed partway (the candidates fall short), the LPs' row not touched.
    assert np.all((after[vault, 0, -2] > 0) & (after[vault, 0, -2] < size[vault, 0, -2]))
    assert np.all(after[vault, :, -1] == size[vault, :, -1])
    # The "stuck" scenarios' market 0 closes nothing; socialized, it charges nobody (there is nobody to pay).
    stuck = kinds == "stuck"
    assert np.all(b[stuck][:, 3:5]) and np.all(after[stuck, 0] == size[stuck, 0])
    # The "whole" scenarios' market 0: every long but the LPs' tiny one bankrupt, its pool matched whole, so
    # every other position there closes exactly (the LPs' stays: the match is whole up to rounding).
    whole = kinds == "whole"
    assert np.all(~(size[whole, 0, :-1] > 0) | b[whole, :-1]) and np.all(np.any(size[whole, 0] > 0, axis=-1))
    assert np.all(after[whole, 0, :-1] == 0.0) and np.all(after[whole, 0, -1] == size[whole, 0, -1])
    assert np.sum((size > 0) & b[:, None, :]) > 0 and np.sum((size < 0) & b[:, None, :]) > 0
    cut = (after != 0) & (after != size) & ~b[:, None, :]                      # a counterparty closed partway
    assert cut.sum() >= 3


def _take_cases():
    """A layout over a sparse [A, R] grid and queues with ties at the cut, ±inf and signed zeros."""
    rng = np.random.default_rng(3)
    a, r = 3, 40
    held = rng.random((a, r)) < 0.5
    held[:, -2:] = True                                               # the vault's and LPs' slots
    traders = held[:, :-2].T                                          # [N, A]
    rows, mkts = np.nonzero(traders)
    lay, _ = Layout.build(rows, mkts, r, a)                                   # (the system slots appended)
    score = rng.integers(0, 5, (a, r)).astype(np.float64)             # a coarse grid: many ties
    score[1, :6] = np.inf
    score[2, :10] = np.where(np.arange(10) % 2, -0.0, 0.0)
    score[0, 10:20] = 2.0 + np.arange(10) * np.spacing(2.0)          # scores that differ in their last bits
    weight = np.where(held & (rng.random((a, r)) < 0.8), rng.uniform(0.5, 3.0, (a, r)), 0.0)
    return lay, score, weight


@functools.partial(jax.jit, static_argnums=4)
def _takes(lay, score, weight, needs, config=EngineConfig()):
    pick = lambda x: x[lay.market, lay.row]
    pos = jax.vmap(lambda n: padl.take_from_top(lay, pick(score), pick(weight), n, config))(needs)
    den = jax.vmap(lambda n: dense_take(score, weight, n))(needs)
    return pos, jax.vmap(pick)(den)


def test_queue_cut_off_matches_the_dense_queue():
    lay, score, weight = _take_cases()
    total = weight.sum(-1)
    # Needs that cut inside a tied group, take exactly the groups above a score, nothing, everything
    # and more, and a batch in which no market needs a cut (the bisection is skipped).
    sorted_groups = [np.sort(np.unique(score[k][weight[k] > 0]))[::-1] for k in range(3)]
    exact = [weight[k][score[k] >= sorted_groups[k][1]].sum() for k in range(3)]
    # A cut inside market 0's run of scores a bit apart: all above the middle one, half of its weight.
    ulps = [i for i in range(10, 20) if weight[0, i] > 0]
    mid = ulps[len(ulps) // 2]
    fine = weight[0][score[0] > score[0, mid]].sum() + 0.5 * weight[0, mid]
    needs = np.array([[0.3 * t for t in total], exact, [0.0, 0.0, 0.0], total + 1.0, [total[0], 0.0, 2.5],
                      [0.5 * t for t in total], [fine, 0.0, 0.0]])
    pos, den = _takes(lay, jnp.asarray(score), jnp.asarray(weight), jnp.asarray(needs))
    np.testing.assert_allclose(pos, den, rtol=1e-12, atol=1e-12)
    # The cut-off search a bit and a byte a pass finds the same cut-offs (a float64 key: 64 and 8 passes).
    for bits in (1, 8):
        config = EngineConfig(adl_digit_bits=bits)
        other, _ = _takes(lay, jnp.asarray(score), jnp.asarray(weight), jnp.asarray(needs), config)
        np.testing.assert_array_equal(other, pos)
    sums = np.stack([np.bincount(np.asarray(lay.market), p, minlength=3) for p in np.asarray(pos)])
    np.testing.assert_allclose(sums, np.minimum(needs, total), rtol=1e-12)
    # The first need cuts inside a tied group somewhere: some candidate closes part of its weight.
    w = weight[np.asarray(lay.market), np.asarray(lay.row)]
    partial = (np.asarray(pos[0]) > 0) & (np.asarray(pos[0]) < w)
    assert partial.sum() >= 2


@functools.partial(jax.jit, static_argnums=0)
def _run_one(rules, pb, market, params):
    return padl.run(pb, market, params, rules), padl.needed(pmargin.values(pb, market, params), params)


def test_bitmex_queue_by_hand():
    # One market at mark 100. Row 0 is short 20 at 80 with 300 cash: AV = 300 − 20·20 = −100, bankrupt.
    # Longs, BitMEX score PnL%·EffLev (EffLev = notional/AV):
    #   row 1: long 10 at 50, cash 0:     PnL% 1.0,  AV 500, lev 2   → 2.0   (first: closes all 10)
    #   row 2: long 20 at 80, cash 100:   PnL% 0.25, AV 500, lev 4   → 1.0   (second: closes 10 of 20)
    #   row 3: long 5 at 120, cash 1000:  PnL% −1/6, AV 900, lev 5/9 → −0.3  (losing: last, closes nothing)
    # The LP is short 15 at 100 (zero-sum). Bankruptcy price: the deficit 100 over notional 2000 → 5 % →
    # p_b = 100 − 5 = 95, at which the counterparties close too.
    pb = PositionBook.from_positions([0, 1, 2, 3], [0, 0, 0, 0], [-20.0, 10.0, 20.0, 5.0], [80.0, 50.0, 80.0, 120.0],
                                     [300.0, 0.0, 100.0, 1000.0], lp_size=[-15.0], lp_entry=[100.0], lp_cash=1e4,
                                     dtype=jnp.float64)
    params = adljax.venues.hyperliquid().params(1, dt=1.0, dtype=jnp.float64)
    m = jnp.array([100.0])
    market = Market(mark=m, prev_mark=m, depth=jnp.array([1e6]), adl_start=jnp.int32(0))
    rules = adljax.venues.hyperliquid(adl_score="bitmex", adl_price="bankruptcy").rules
    (new, rep), needed = _run_one(rules, pb, market, params)
    # The stage's cheap test (the dense one, on the position margin): row 0 only.
    np.testing.assert_array_equal(needed, [True, False, False, False, False, False])
    np.testing.assert_allclose(new.position_size[:4], [0.0, 0.0, 10.0, 5.0], rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(new.position_entry[:4], [0.0, 0.0, 80.0, 120.0], rtol=1e-12)
    # Row 0 closes 20 at 95: 300 − 20·15 = 0 (exactly: flat at its bankruptcy price). Row 1: 10·(95 − 50);
    # row 2: 100 + 10·(95 − 80).
    np.testing.assert_allclose(new.all_cash[:4], [0.0, 450.0, 250.0, 1000.0], rtol=1e-12)
    assert float(new.all_cash[0]) == 0.0
    np.testing.assert_allclose(rep.notional, 20 * 100.0, rtol=1e-12)
    np.testing.assert_allclose(rep.bad_debt, 100.0, rtol=1e-12)
    np.testing.assert_array_equal(rep.deleveraged, [False, True, True, False, False, False])
    np.testing.assert_array_equal(rep.bankrupt, [True, False, False, False, False, False])
    assert bool(rep.any_fill) and float(rep.vault_notional) == 0.0 and float(rep.socialized) == 0.0
