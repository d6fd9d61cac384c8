"""Book files: the hand-written example reads as written, generated books round-trip, bad files name the problem."""
from pathlib import Path

import numpy as np
import jax
import pytest

from adljax.bookfile import load_book, save_book
from adljax.model.errors import InputError
from adljax.generate import population

DATA = Path(__file__).parent / "data"
MARKETS = ["BTC", "ETH"]
HEADER = "account,market,size,entry,cash,isolated\n"


def write(tmp_path, body, header=HEADER, name="book.csv"):
    f = tmp_path / name
    f.write_text(header + body)
    return f


def test_example_file_reads_as_written():
    book = load_book(DATA / "book_example.csv", markets=MARKETS, vault_cash=1e6, insurance_fund=5e4)
    # Rows in order of first appearance: alice (cross), bob's isolated BTC, bob (cross, ETH), carol, dave.
    np.testing.assert_array_equal(book.cash, [12000.0, 2500.0, 3000.0, 5000.0, 800.0])   # alice's cash given once
    np.testing.assert_array_equal(book.size, [[0.5, -4.0], [-0.5, 0.0], [0.0, 10.0], [0.0, -6.0], [0.0, 0.0]])
    np.testing.assert_array_equal(book.entry, [[98000, 3900], [99000, 0], [0, 4000], [0, 3950], [0, 0]])
    np.testing.assert_array_equal(np.asarray(book.isolated), [False, True, False, False, False, False, False])
    assert float(book.vault_cash) == 1e6 and float(book.insurance_fund) == 5e4
    np.testing.assert_array_equal(book.lp_size, [0.0, 0.0])


@pytest.mark.parametrize("ext", ["csv", "parquet"])
def test_generated_book_round_trips(tmp_path, ext):
    book = population(jax.random.key(11), 300, [100_000.0, 4_000.0], [40.0, 25.0], long_share=[0.6, 0.4],
                      markets_per_account=2, leverage_mode=6.0, isolated_share=0.3, vault_cash=2e6)
    assert np.asarray(book.isolated).any()
    f = tmp_path / f"book.{ext}"
    save_book(book, f, MARKETS)
    back = load_book(f, markets=MARKETS, vault_cash=2e6, max_leverage=[40.0, 25.0], mark=[100_000.0, 4_000.0])
    for field in ("all_cash", "size_am", "entry_am", "isolated", "insurance_fund", "cooldown"):
        np.testing.assert_array_equal(np.asarray(getattr(back, field)), np.asarray(getattr(book, field)), err_msg=field)


def test_float32_book_round_trips_to_float32_rounding(tmp_path):
    book = population(jax.random.key(2), 40, [100.0, 10.0], 20.0, markets_per_account=2, dtype=np.float32)
    save_book(book, tmp_path / "b.csv", ["X", "Y"])
    back = load_book(tmp_path / "b.csv", markets=["X", "Y"], dtype=np.float32)
    assert back.size_am.dtype == np.float32
    np.testing.assert_array_equal(np.asarray(back.all_cash), np.asarray(book.all_cash))
    np.testing.assert_array_equal(np.asarray(back.entry_am), np.asarray(book.entry_am))
    # Sizes are the same but for the last short of each market, which absorbed the float32 rounding remainder.
    got, want = np.asarray(back.size_am), np.asarray(book.size_am)
    assert (got != want).sum() <= 2
    np.testing.assert_allclose(got, want, rtol=1e-6)
    # Against float64 the same file is not zero-sum beyond rounding: it says so.
    with pytest.raises(InputError, match="not zero-sum"):
        load_book(tmp_path / "b.csv", markets=["X", "Y"], dtype=np.float64)


def test_balance_gives_the_remainder_to_the_liquidity_providers(tmp_path):
    f = write(tmp_path, "a,BTC,2,100,50,false\nb,BTC,-0.5,110,20,false\nc,ETH,1,10,5,false\n")
    book = load_book(f, markets=MARKETS, balance=True)
    # BTC: net +1.5 → LP short 1.5 at the size-weighted mean entry (2·100 + 0.5·110)/2.5 = 102;
    # ETH: net +1 → LP short 1 at 10; LP cash = 1.5·102 + 1·10 = 163 (fully collateralised at 1×).
    np.testing.assert_allclose(book.lp_size, [-1.5, -1.0], rtol=0, atol=0)
    np.testing.assert_allclose(book.lp_entry, [102.0, 10.0], rtol=1e-15)
    assert float(book.lp_cash) == pytest.approx(163.0, rel=1e-15)
    np.testing.assert_array_equal(np.asarray(book.all_size).sum(0), [0.0, 0.0])


def test_parquet_with_numeric_accounts_and_null_cash(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    t = pa.table({"account": [7, 7, 8], "market": ["BTC", "ETH", "BTC"], "size": [1.0, -2.0, -1.0],
                  "entry": [100.0, 10.0, 101.0], "cash": [30.0, None, 40.0]})
    pq.write_table(t, tmp_path / "b.parquet")
    book = load_book(tmp_path / "b.parquet", markets=MARKETS, balance=True)
    np.testing.assert_array_equal(book.cash, [30.0, 40.0])
    np.testing.assert_array_equal(book.size, [[1.0, -2.0], [-1.0, 0.0]])
    np.testing.assert_array_equal(book.lp_size, [0.0, 2.0])


BAD = [
    # (file body, header, keyword arguments, message that must name the field and the problem)
    ("a,BTC,1,100\n", "account,market,size,entry\n", {}, r"missing column 'cash'"),
    ("a,DOGE,1,100,50,false\nb,DOGE,-1,100,50,false\n", HEADER, {},
     r"column 'market': unknown market 'DOGE' at row 1; the known markets are BTC, ETH"),
    ("a,BTC,NaN,100,50,false\nb,BTC,-1,100,50,false\n", HEADER, {}, r"column 'size': NaN at row 1 \(account 'a'"),
    ("a,BTC,1,nan,50,false\nb,BTC,-1,100,50,false\n", HEADER, {}, r"column 'entry': NaN at row 1"),
    ("a,BTC,1,100,50,false\nb,BTC,-1,100,NaN,false\n", HEADER, {}, r"column 'cash': NaN at row 2 \(account 'b'"),
    ("a,BTC,1,0,50,false\nb,BTC,-1,100,50,false\n", HEADER, {},
     r"column 'entry': must be > 0 on an open position; row 1 \(account 'a', market 'BTC'\) has size 1.0 and "
     r"entry 0.0"),
    ("a,BTC,1,-5,50,false\nb,BTC,-1,100,50,false\n", HEADER, {}, r"column 'entry': must be > 0 .* entry -5.0"),
    ("a,BTC,1,100,50,false\nb,BTC,-1,100,50,false\na,ETH,1,10,60,false\nb,ETH,-1,10,50,false\n", HEADER, {},
     r"column 'cash': account 'a' has different cash on its lines: 50.0 \(row 1\) and 60.0 \(row 3\)"),
    ("a,BTC,1,100,,false\nb,BTC,-1,100,50,false\n", HEADER, {}, r"column 'cash': account 'a' has no cash"),
    ("a,BTC,1,100,50,false\na,BTC,-1,100,50,false\n", HEADER, {},
     r"account 'a' has two lines for market 'BTC' \(rows 1 and 2\)"),
    ("a,BTC,1,100,50,false\nb,BTC,-1,100,,true\n", HEADER, {},
     r"column 'cash': row 2 .* is isolated and needs its own"),
    ("a,BTC,1,100,50,maybe\nb,BTC,-1,100,50,false\n", HEADER, {}, r"column 'isolated': 'maybe' at row 1"),
    ("a,BTC,one,100,50,false\n", HEADER, {}, r"column 'size': 'one' is not a number at row 1"),
    ("a,BTC,1,100000,2000,false\nb,BTC,-1,100000,50000,false\n", HEADER, {"max_leverage": [40.0, 25.0]},
     r"max_leverage: account 'a' market BTC has leverage 50×.*maximum 40×"),
    ("a,BTC,1,100000,4000,false\na,ETH,10,4000,4000,false\nb,BTC,-1,1e5,1e5,false\nb,ETH,-10,4000,1e5,false\n",
     HEADER, {"max_leverage": [40.0, 25.0]},
     r"max_leverage: account 'a' markets BTC, ETH has leverage 35×.*need 4,100 USD of margin"),
    ("a,BTC,1.5,100,50,false\nb,BTC,-1,100,50,false\nc,ETH,-0.25,10,5,false\n", HEADER, {},
     r"column 'size': the book is not zero-sum; net size \(longs − shorts\) per market: BTC \+0.5 units, "
     r"ETH -0.25 units"),
    ("", HEADER, {}, r"no rows"),
]


@pytest.mark.parametrize("body, header, kw, match", BAD, ids=[f"bad{i}" for i in range(len(BAD))])
def test_bad_book_files_name_the_field(tmp_path, body, header, kw, match):
    with pytest.raises(InputError, match=match):
        load_book(write(tmp_path, body, header), markets=MARKETS, **kw)


def test_bad_paths_and_books_to_save(tmp_path):
    with pytest.raises(InputError, match="unknown extension '.txt'"):
        load_book(tmp_path / "book.txt", markets=MARKETS)
    with pytest.raises(InputError, match="no book file"):
        load_book(tmp_path / "missing.csv", markets=MARKETS)
    f = write(tmp_path, "a,BTC,2,100,50,false\nb,BTC,-0.5,110,20,false\n")
    balanced = load_book(f, markets=MARKETS, balance=True)
    with pytest.raises(InputError, match="lp_size: the liquidity-provider row holds positions"):
        save_book(balanced, tmp_path / "out.csv", MARKETS)
    with pytest.raises(InputError, match="markets: the book has 2 markets"):
        save_book(balanced, tmp_path / "out.csv", ["BTC"])
