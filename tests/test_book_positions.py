"""``Book.from_positions``: a book from a list of positions, as venues publish them."""
from __future__ import annotations

import numpy as np
import pytest

from adljax import Book, InputError


def test_positions_land_in_their_rows_and_markets():
    # Three traders, three markets: 0 long 2 BTC at 100 and short 10 ETH at 5; 1 short 2 BTC at 110;
    # 2 holds cash only; SOL (market 2) holds nothing, so n_markets says there are three.
    # The book is zero-sum per market with the LP taking ETH's other side: lp_size = [0, 10, 0].
    book = Book.from_positions([0, 1, 0], [0, 0, 1], [2.0, -2.0, -10.0], [100.0, 110.0, 5.0],
                               [500.0, 300.0, 50.0], n_markets=3, lp_size=[0.0, 10.0, 0.0],
                               lp_entry=[0.0, 5.0, 0.0], lp_cash=1e3, vault_cash=7.0, dtype=np.float64)
    np.testing.assert_array_equal(book.size, [[2.0, -10.0, 0.0], [-2.0, 0.0, 0.0], [0.0, 0.0, 0.0]])
    np.testing.assert_array_equal(book.entry, [[100.0, 5.0, 0.0], [110.0, 0.0, 0.0], [0.0, 0.0, 0.0]])
    np.testing.assert_array_equal(book.cash, [500.0, 300.0, 50.0])
    assert book.n_markets == 3 and float(book.vault_cash) == 7.0 and float(book.lp_cash) == 1e3
    # Without n_markets, the markets are those named: two.
    two = Book.from_positions([0, 1], [1, 1], [1.0, -1.0], [5.0, 5.0], [10.0, 10.0])
    assert two.n_markets == 2
    np.testing.assert_array_equal(np.asarray(two.size), [[0.0, 1.0], [0.0, -1.0]])
    # An isolated row.
    iso = Book.from_positions([0, 1], [0, 0], [1.0, -1.0], [5.0, 5.0], [10.0, 10.0], isolated=[True, False])
    np.testing.assert_array_equal(np.asarray(iso.isolated), [True, False, False, False])


@pytest.mark.parametrize("args, kw, match", [
    (([0, 3], [0, 0], [1.0, -1.0], [5.0, 5.0], [1.0, 1.0]), {}, r"account: position 1 has account 3, outside 0 \.\. 1"),
    (([0, 1], [0, -1], [1.0, -1.0], [5.0, 5.0], [1.0, 1.0]), {}, r"market: position 1 has market -1"),
    (([0, 1], [0, 2], [1.0, -1.0], [5.0, 5.0], [1.0, 1.0]), {"n_markets": 2}, r"market: position 1 is in market 2"),
    (([0, 0.5], [0, 0], [1.0, -1.0], [5.0, 5.0], [1.0, 1.0]), {}, r"account: expected whole numbers, got 0.5"),
    (([0, 1], [0, 0], [1.0], [5.0, 5.0], [1.0, 1.0]), {}, r"size: expected shape \(2,\)"),
    (([0, 1, 0], [0, 0, 0], [1.0, -2.0, 1.0], [5.0] * 3, [1.0, 1.0]), {},
     r"account, market: positions 0 and 2 are both account 0 in market 0"),
    (([0, 1], [0, 0], [1.0, -2.0], [5.0, 5.0], [1.0, 1.0]), {}, r"not zero-sum"),
    (([0, 1], [0, 0], [1.0, -1.0], [5.0, -5.0], [1.0, 1.0]), {}, r"entry: must be > 0"),
    (([], [], [], [], [1.0]), {}, r"n_markets: give the number of markets"),
    (([True, False], [0, 0], [1.0, -1.0], [5.0, 5.0], [1.0, 1.0]), {}, r"account: expected whole numbers"),
])
def test_bad_positions_name_the_field(args, kw, match):
    with pytest.raises(InputError, match=match):
        Book.from_positions(*args, **kw)
