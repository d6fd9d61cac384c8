"""``adljax.generate.population`` builds its book from the list of trades, drawing the [N, A] draws in row chunks.

The book must not depend on the chunk size, the position book and the dense book are the same positions bit for
bit, the draws are NumPy's stream as if each family were drawn whole, and the book keeps its invariants: every
market zero-sum and every position's leverage at the start price within [1, max_leverage].
"""
from __future__ import annotations

import importlib

import numpy as np
import jax
import pytest

from adljax.generate import population

GEN = importlib.import_module("adljax.studies.generate.population")
START6 = [100.0, 50.0, 10.0, 5.0, 2.0, 1.0]
START30 = list(np.geomspace(1.0, 1000.0, 30))

# (key, accounts, start, max_leverage, options): several chunks' worth of accounts, accounts of three positions or
# more (their cash is a pairwise sum), isolated rows, and small books of many markets, where thin markets take
# forced traders (the first two accounts, or accounts drawn at random when shaped).
CONFIGS = {
    "uniform": (1, 40, START6, 10.0, dict(markets_per_account=3, isolated_share=0.3)),
    "counts": (2, 60, START6, [20.0, 10.0, 10.0, 5.0, 5.0, 3.0],
               dict(markets_per_account=2.5, max_markets_per_account=5, popularity=[6, 5, 4, 3, 2, 1],
                    notional_scale=[1, 1, 2, 2, 3, 3], isolated_share=0.4, long_share=0.4)),
    "thin_uniform": (3, 10, START30, 10.0, dict(isolated_share=0.3)),
    "thin_shaped": (4, 12, START30, 10.0, dict(popularity=np.ones(30), markets_per_account=2,
                                               max_markets_per_account=3, isolated_share=0.5)),
}


def _draw(name, positions=False, dtype=np.float64):
    seed, n, start, lev, kw = CONFIGS[name]
    return population(jax.random.key(seed), n, start, lev, dtype=dtype, positions=positions, **kw)


def _arrays(book) -> dict:
    return {f: np.asarray(getattr(book, f)) for f in ("all_cash", "all_size", "all_entry", "isolated")}


def _assert_same(x: dict, y: dict):
    for f in x:
        assert x[f].dtype == y[f].dtype and x[f].shape == y[f].shape, f
        assert np.array_equal(x[f].view(np.uint8), y[f].view(np.uint8)), f      # bit for bit


@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_the_book_does_not_depend_on_the_chunk_size(name, monkeypatch):
    whole = _arrays(_draw(name))
    pos = _draw(name, positions=True)
    monkeypatch.setattr(GEN, "CHUNK_ROWS", 7)
    _assert_same(whole, _arrays(_draw(name)))
    _assert_same(_arrays(pos.to_book()), _arrays(_draw(name, positions=True).to_book()))


@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_the_position_book_holds_the_dense_books_positions(name):
    for dtype in (np.float64, np.float32):
        dense, pos = _draw(name, dtype=dtype), _draw(name, positions=True, dtype=dtype)
        assert pos.n_positions == int((np.asarray(dense.size) != 0).sum())
        _assert_same(_arrays(dense), _arrays(pos.to_book()))
    iso = np.asarray(dense.isolated)[:-2]
    assert iso.any() and (~iso).any()                          # both kinds of row are compared


def _dense_book(seed, n, start, lev_max, *, markets_per_account=1, max_markets_per_account=None, popularity=None,
                notional_scale=1.0, long_share=0.5, tail=1.3, median_notional=20_000.0, leverage_mode=3.0) -> dict:
    """A cross-margin book made the dense way, from the five [N, A] draws taken whole, then the isolation's
    permutation, the count draws and the thin markets' draws (float64 arrays with the vault's and LP's rows)."""
    start = np.asarray(start, dtype=np.float64)
    a = start.size
    rng = np.random.default_rng([int(x) for x in np.asarray(jax.random.key_data(jax.random.key(seed))).ravel()])
    pick = rng.random((n, a))
    pareto = rng.pareto(tail, (n, a))
    long_draw = rng.random((n, a))
    lev_draw = rng.normal(np.log(leverage_mode), 0.8, (n, a))
    entry_draw = rng.normal(0.0, 0.02, (n, a))
    rng.permutation(n)
    trades = np.zeros((n, a), dtype=bool)
    if popularity is None and max_markets_per_account is None:
        np.put_along_axis(trades, np.argsort(pick, axis=1)[:, :markets_per_account], True, axis=1)
        trades[:2, trades.sum(axis=0) < 2] = True                 # a thin market goes to the first two accounts
    else:
        k = max_markets_per_account
        counts = 1 + rng.choice(k, size=n, p=GEN._count_law(markets_per_account, k))
        w = np.ones(a) if popularity is None else np.asarray(popularity, dtype=np.float64)
        rank = np.argsort(np.argsort(-np.log1p(-pick) / w, axis=1, kind="stable"), axis=1)
        trades = rank < counts[:, None]
        for j in range(a):                                         # a thin market's traders are drawn
            short = 2 - int(trades[:, j].sum())
            if short > 0:
                trades[rng.choice(np.flatnonzero(~trades[:, j]), size=short, replace=False), j] = True
    notional = median_notional * (pareto + 1.0) / 2 ** (1 / tail) * np.asarray(notional_scale)
    is_long = long_draw < long_share
    for j in range(a):
        i = np.flatnonzero(trades[:, j])
        is_long[i[0], j], is_long[i[1], j] = True, False
    lev = np.maximum(np.minimum(np.exp(lev_draw), lev_max), 1.0)
    entry = start * np.exp(entry_draw)
    size = np.where(trades, np.where(is_long, 1.0, -1.0) * notional / entry, 0.0)
    margin = np.where(trades, notional * (start / entry) / lev, 0.0)
    short_scale = np.where(size < 0, np.where(size > 0, size, 0.0).sum(0) / -np.where(size < 0, size, 0.0).sum(0), 1.0)
    size, margin = size * short_scale, margin * short_scale
    cash = margin.sum(axis=1) - np.where(trades, size * (start - entry), 0.0).sum(axis=1)
    for j in range(a):
        size[np.flatnonzero(size[:, j] < 0)[-1], j] -= size[:, j].sum()
    return {"all_cash": np.concatenate([cash, [0.0, 0.0]]), "all_size": np.concatenate([size, np.zeros((2, a))]),
            "all_entry": np.concatenate([np.where(trades, entry, 0.0), np.zeros((2, a))]),
            "isolated": np.zeros(n + 2, dtype=bool)}


@pytest.mark.parametrize("seed, n, start, kw", [
    # twelve markets, accounts of up to eight: NumPy sums a row of eight numbers or more pairwise, so a cross
    # account's cash is the dense row sum, not a running one
    (6, 300, np.geomspace(1.0, 500.0, 12), dict(markets_per_account=4, max_markets_per_account=8,
                                                popularity=np.arange(12, 0, -1.0), notional_scale=np.linspace(1, 3, 12),
                                                long_share=0.4, leverage_mode=6.0, tail=1.5, median_notional=1e3)),
    (7, 12, START30, dict(markets_per_account=2, max_markets_per_account=3, popularity=np.ones(30))),   # thin, drawn
    (8, 10, START30, dict(markets_per_account=2)),                   # thin markets to the first two accounts
])
def test_the_book_is_the_dense_formulas_on_numpys_stream_drawn_whole(seed, n, start, kw):
    lev_max = np.linspace(3.0, 25.0, len(start))
    book = population(jax.random.key(seed), n, start, lev_max, dtype=np.float64, **kw)
    _assert_same(_arrays(book), _dense_book(seed, n, start, lev_max, **kw))


def test_every_market_is_zero_sum_and_every_position_within_its_leverage():
    """Every position isolated: a row's leverage at the start price, |size|·start / (cash + size·(start − entry)),
    is its drawn leverage, clipped to [1, max_leverage] (the last short of a market holds the float remainder,
    so the bounds hold to 1e-9). A leverage mode of 4 with log-sd 0.8 puts some draws below 1 and some above
    the caps."""
    start, lev_max = np.array(START6), np.array([20.0, 10.0, 10.0, 5.0, 5.0, 3.0])
    book = population(jax.random.key(5), 400, start, lev_max, markets_per_account=2.5, max_markets_per_account=5,
                      popularity=[6, 5, 4, 3, 2, 1], isolated_share=1.0, leverage_mode=4.0, long_share=0.3,
                      dtype=np.float64, positions=True)
    size, entry = np.asarray(book.position_size)[:book.n_positions], np.asarray(book.position_entry)[:book.n_positions]
    acc, mkt, cash = np.asarray(book.account), np.asarray(book.market), np.asarray(book.cash)
    assert np.array_equal(np.bincount(acc, minlength=book.n_accounts), np.ones(book.n_accounts))   # one each
    total = np.bincount(mkt, weights=size, minlength=6)
    gross = np.bincount(mkt, weights=np.abs(size), minlength=6)
    assert np.all(np.abs(total) <= 1e-12 * gross), total / gross
    assert np.all(np.bincount(mkt[size > 0], minlength=6) > 0) and np.all(np.bincount(mkt[size < 0], minlength=6) > 0)
    lev = np.abs(size) * start[mkt] / (cash[acc] + size * (start[mkt] - entry))
    assert np.all(lev >= 1 - 1e-9) and np.all(lev <= lev_max[mkt] * (1 + 1e-9))
    assert np.any(np.abs(lev - 1) < 1e-9)                      # the floor binds somewhere
    assert np.any(np.abs(lev - lev_max[mkt]) < 1e-9 * lev_max[mkt])      # and a cap
