"""Loading and inspecting position books: ``load_book``/``load_hyperliquid(..., positions=True)``, ``adl_queue`` and
``adljax inspect`` on an :class:`adljax.PositionBook` give what the dense :class:`adljax.Book` gives.

The files are the repository's own: tests/data/book_example.csv, scenarios/books/example.csv (both markets
BTC, ETH) and tests/data/hyperliquid (see tests/test_hyperliquid_files.py). No test here runs the engine.
"""
import dataclasses
from pathlib import Path

import numpy as np
import pytest

from adljax import Book, PositionBook
from adljax.analysis.indicator import adl_queue
from adljax.analysis.inspection import inspect_book, inspect_hyperliquid, inspect_loaded
from adljax.bookfile import load_book, load_hyperliquid, row_names, save_book
from adljax.model import venues
from adljax.model.errors import InputError

ROOT = Path(__file__).parent.parent
FILES = {"tests example": ROOT / "tests" / "data" / "book_example.csv",
         "scenarios example": ROOT / "scenarios" / "books" / "example.csv"}
HL = ROOT / "tests" / "data" / "hyperliquid"
MARKETS = ["BTC", "ETH"]
HEADER = "account,market,size,entry,cash,isolated\n"
FIELDS = ("all_cash", "size_am", "entry_am", "cooldown", "isolated", "insurance_fund")


def assert_same_book(pb, dense):
    """``pb.to_book()`` is ``dense`` to the bit, dtypes included."""
    assert isinstance(pb, PositionBook) and isinstance(dense, Book)
    back = pb.to_book()
    for f in FIELDS:
        a, b = np.asarray(getattr(back, f)), np.asarray(getattr(dense, f))
        assert a.dtype == b.dtype, f
        np.testing.assert_array_equal(a, b, err_msg=f)


def no_dense(monkeypatch):
    """Make building a dense book, or a position book's dense view, fail."""
    def refuse(*a, **k):
        raise AssertionError("a dense [N, A] book was built")
    monkeypatch.setattr(Book, "from_accounts", classmethod(refuse))
    monkeypatch.setattr(PositionBook, "_dense", refuse)


# ---- load_book -------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("kw", [dict(), dict(vault_cash=1e6, insurance_fund=5e4, max_leverage=[40, 25]),
                                dict(dtype=np.float32)], ids=["plain", "vault, fund, leverage", "float32"])
@pytest.mark.parametrize("name", list(FILES))
def test_load_book_positions_equal_the_dense_book(name, kw, monkeypatch):
    dense = load_book(FILES[name], markets=MARKETS, **kw)
    with monkeypatch.context() as m:
        no_dense(m)
        pb = load_book(FILES[name], markets=MARKETS, positions=True, **kw)
    assert_same_book(pb, dense)
    # One position a file line with a size, at the dense book's nonzero cells.
    rows, cols = np.nonzero(np.asarray(dense.size))
    assert pb.n_positions == rows.size > 0
    assert sorted(zip(np.asarray(pb.account).tolist(), np.asarray(pb.market).tolist())) == \
        sorted(zip(rows.tolist(), cols.tolist()))


def test_load_book_positions_balance_float32_remainder_and_parquet(tmp_path):
    # Not zero-sum: balance gives the LP the rest (its slots in the position book).
    f = tmp_path / "book.csv"
    f.write_text(HEADER + "a,BTC,1.5,100000,50000,false\na,ETH,-3,4000,,false\nb,BTC,-0.5,98000,9000,true\n"
                 "c,ETH,7,3900,20000,false\nd,,0,,10,false\n")
    dense = load_book(f, markets=MARKETS, balance=True)
    pb = load_book(f, markets=MARKETS, balance=True, positions=True)
    assert_same_book(pb, dense)
    np.testing.assert_array_equal(np.asarray(pb.lp_size), [-1.0, -4.0])
    # float32 remainder: sizes that are zero-sum only to float32 rounding; the last short takes the rest.
    g = tmp_path / "f32.csv"
    g.write_text(HEADER + "a,BTC,0.1,100,10,false\nb,BTC,0.2,100,10,false\nc,BTC,-0.30000001,100,10,false\n"
                 "d,BTC,-0.00000002,100,10,false\n")
    d32 = load_book(g, markets=["BTC"], dtype=np.float32)
    assert_same_book(load_book(g, markets=["BTC"], dtype=np.float32, positions=True), d32)
    # A parquet file written by save_book reads back the same both ways.
    q = tmp_path / "book.parquet"
    save_book(load_book(FILES["scenarios example"], markets=MARKETS), q, MARKETS)
    assert_same_book(load_book(q, markets=MARKETS, positions=True), load_book(q, markets=MARKETS))


BAD = {
    "not zero-sum": "a,BTC,1,100,10,false\nb,BTC,-0.5,100,10,false\n",
    "leverage": "a,BTC,1,100,2,false\nb,BTC,-1,100,1000,false\n",
    "two lines a market": "a,BTC,1,100,10,false\na,BTC,-1,100,10,false\n",
    "cash disagrees": "a,BTC,1,100,10,false\na,ETH,-1,100,11,false\nb,BTC,-1,100,10,false\nb,ETH,1,100,10,false\n",
    "unknown market": "a,SOL,1,100,10,false\n",
    "entry": "a,BTC,1,0,10,false\nb,BTC,-1,100,10,false\n",
    "isolated without cash": "a,BTC,1,100,,true\nb,BTC,-1,100,10,false\n",
}


@pytest.mark.parametrize("case", list(BAD))
def test_bad_files_give_the_same_error_both_ways(tmp_path, case):
    f = tmp_path / "book.csv"
    f.write_text(HEADER + BAD[case])
    kw = dict(markets=MARKETS, max_leverage=10.0)
    with pytest.raises(InputError) as dense:
        load_book(f, **kw)
    with pytest.raises(InputError) as positions:
        load_book(f, positions=True, **kw)
    assert str(positions.value) == str(dense.value) and str(dense.value).startswith(("book.csv:", "max_leverage:"))


# ---- load_hyperliquid ------------------------------------------------------------------------------------------
@pytest.mark.parametrize("states, meta, kw", [
    ("states", "meta.json", dict()),
    ("states", "meta.json", dict(markets=["ETH", "BTC"], vault_cash=1e6, insurance_fund=5e4)),
    ("states_all.jsonl", "meta.json", dict(complete=True)),
    ("states", "meta_plain.json", dict(markets=["DOGE", "BTC"], dtype=np.float32)),
], ids=["folder", "subset reordered", "complete jsonl", "plain meta float32"])
def test_load_hyperliquid_positions_equal_the_dense_book(states, meta, kw, monkeypatch):
    dense, venue, marks = load_hyperliquid(HL / states, HL / meta, **kw)
    with monkeypatch.context() as m:
        no_dense(m)
        pb, pvenue, pmarks = load_hyperliquid(HL / states, HL / meta, positions=True, **kw)
    assert_same_book(pb, dense)
    np.testing.assert_array_equal(pmarks, marks)
    assert pvenue == venue
    assert pb.n_positions == int(np.count_nonzero(np.asarray(dense.size))) > 0


# ---- adl_queue -------------------------------------------------------------------------------------------------
def _random_book(seed=0, n=40, a=3):
    """A random sparse cross book with ties (repeated accounts), losers (AV ≤ 0) and the LP holding the rest."""
    rng = np.random.default_rng(seed)
    held = rng.random((n, a)) < 0.5
    size = np.where(held, np.round(rng.normal(0, 3, (n, a)), 1), 0.0) * np.array([1.0, 10.0, 1e5])[:a]
    entry = np.where(size != 0, rng.uniform(80, 120, (n, a)) * np.array([1e3, 1e2, 1e-3])[:a], 0.0)
    cash = rng.uniform(-2e3, 3e4, n)
    size[1], entry[1], cash[1] = size[0], entry[0], cash[0]               # a tie in every market it holds
    net = size.sum(axis=0)
    lp_entry = np.array([1e5, 1e4, 0.1])[:a]
    return Book.from_accounts(cash, size, entry, lp_size=-net, lp_entry=lp_entry, lp_cash=1e9)


def _venue(score):
    v = venues.PRESETS["bitmex" if score == "bitmex" else "hyperliquid"]()
    return dataclasses.replace(v, rules=dataclasses.replace(v.rules, adl_score=score))


@pytest.mark.parametrize("score", ["hyperliquid", "bitmex", "pnl"])
def test_adl_queue_on_positions_is_the_dense_queue_at_the_positions(score):
    venue = _venue(score)
    cases = [(_random_book(), np.array([1.02e5, 9.5e3, 0.11])),
             (load_book(FILES["scenarios example"], markets=MARKETS, vault_cash=1e6), np.array([95_000.0, 3_700.0]))]
    for dense, mark in cases:
        pb = PositionBook.from_book(dense)
        want = adl_queue(venue, dense, mark)                                # [N, A]
        got = adl_queue(venue, pb, mark)                                    # [P]
        assert got.shape == (pb.n_positions,) and got.dtype == want.dtype
        np.testing.assert_array_equal(got, want[np.asarray(pb.account), np.asarray(pb.market)])
        assert set(np.unique(got)) >= {1, 5}                                # the queue is spread, not all one fifth
    # The loader's position book too (rows in file order, positions sorted by row).
    pb = load_book(FILES["tests example"], markets=MARKETS, positions=True)
    want = adl_queue(venue, pb.to_book(), np.array([1e5, 4e3]))
    np.testing.assert_array_equal(adl_queue(venue, pb, np.array([1e5, 4e3])),
                                  want[np.asarray(pb.account), np.asarray(pb.market)])


def test_adl_queue_keeps_a_small_market_apart_from_a_huge_one():
    # Market 0 holds 1e12 units, market 1 a few 1e-4: each market's running sum is its own (a running sum over
    # the whole list would lose market 1's sizes to market 0's rounding). Three longs in market 1 of 1, 2, 2
    # (×1e-4), ranked by PnL: shares 1/5, 3/5, 5/5 of the side → fifths 1, 3, 5.
    size = np.array([[1e12, 1e-4], [0.0, 2e-4], [0.0, 2e-4], [-1e12, -5e-4]])
    entry = np.array([[1.0, 10.0], [0.0, 20.0], [0.0, 30.0], [1.0, 50.0]])
    dense = Book.from_accounts(np.full(4, 1e13), size, entry)
    venue, mark = _venue("pnl"), np.array([1.0, 1.0])
    pb = PositionBook.from_book(dense)
    got = adl_queue(venue, pb, mark)
    np.testing.assert_array_equal(adl_queue(venue, dense, mark)[np.asarray(pb.account), np.asarray(pb.market)], got)
    longs = (np.asarray(pb.market) == 1) & (np.asarray(pb.position_size[:pb.n_positions]) > 0)
    assert dict(zip(np.asarray(pb.account)[longs].tolist(), got[longs].tolist())) == {0: 1, 1: 3, 2: 5}


# ---- inspect ---------------------------------------------------------------------------------------------------
def assert_same_report(a, b):
    assert a.keys() == b.keys()
    for k in a:
        if k == "venue":
            assert a[k] == b[k]
        elif k == "moves":
            assert a[k].keys() == b[k].keys()
            for t in a[k]:
                np.testing.assert_array_equal(a[k][t], b[k][t], err_msg=t)
        else:
            np.testing.assert_array_equal(np.asarray(a[k]), np.asarray(b[k]), err_msg=k)


@pytest.mark.parametrize("mode", ["together", "each"])
def test_inspect_on_a_position_book_gives_the_same_report(mode):
    path = FILES["scenarios example"]
    dense = inspect_book(path, MARKETS, [95_000.0, 3_700.0], mode=mode)
    assert_same_report(inspect_book(path, MARKETS, [95_000.0, 3_700.0], mode=mode, positions=True), dense)
    assert len(set(dense["fifths"][dense["size"] != 0].tolist())) > 1
    if mode == "together":
        # Every state, and one user's (only DOGE held: the report keeps the held markets alone).
        for states in (HL / "states", HL / "states" / ("0x" + "3" * 40 + ".json")):
            want = inspect_hyperliquid(states, HL / "meta.json")
            assert_same_report(inspect_hyperliquid(states, HL / "meta.json", positions=True), want)
        assert want["markets"] == ["DOGE"]


def test_inspect_cli_prints_the_same_with_positions(monkeypatch, capsys):
    from adljax import cli

    monkeypatch.setenv("ADLJAX_COMPILATION_CACHE", "0")
    outs = []
    for args in (["inspect", str(FILES["scenarios example"]), "--markets", "BTC,ETH", "--prices", "95000,3700"],
                 ["inspect", "--hyperliquid", str(HL / "states"), str(HL / "meta.json")]):
        for extra in ([], ["--positions"]):
            capsys.readouterr()
            assert cli.main(args + extra) == 0
            outs.append(capsys.readouterr().out)
    assert outs[0] == outs[1] and outs[2] == outs[3] and "ADL queue" in outs[0]


def test_inspect_refuses_a_position_book_above_the_dense_limit(monkeypatch):
    import adljax.model.position_book as position_book

    path = FILES["tests example"]
    pb = load_book(path, markets=MARKETS, positions=True)
    monkeypatch.setattr(position_book, "DENSE_VIEW_LIMIT", 9)             # 5 accounts × 2 markets = 10
    venue = venues.PRESETS["hyperliquid"]()
    with pytest.raises(InputError, match=r"^book: inspect reports per account .* above DENSE_VIEW_LIMIT \(9 numbers"):
        inspect_loaded(pb, row_names(path), MARKETS, [1e5, 4e3], venue)
