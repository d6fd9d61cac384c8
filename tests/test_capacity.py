"""Position books run padded to a capacity (EngineConfig.capacity, PositionBook.padded): the sizes by hand, the
padding's round trip, the same numbers as the unpadded run, and one compiled program for books of similar size."""
from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import adljax
from adljax import EngineConfig, InputError, Paths, PositionBook, venues
from adljax.chunking import capacities, padded_positions

from compiles import lowerings

UNPADDED = EngineConfig(capacity_bits=0)


def test_capacity_by_hand():
    c = EngineConfig()                                   # capacity_bits = 6
    # A multiple of 64 up to 4,096 (a count of 0 too); above, of 2**(bit length − 6): 4,097 has 13 bits, 128.
    assert [c.capacity(n) for n in (0, 1, 64, 65, 100, 128, 129, 4_096, 4_097)] == \
        [64, 64, 64, 128, 128, 128, 192, 4_096, 4_224]
    # 300,001 has 19 bits: a multiple of 2**13 = 8,192, 37 of them.
    assert c.capacity(300_001) == 37 * 8_192
    n = np.arange(4_097, 40_000, 7)
    padded = np.array([c.capacity(int(k)) for k in n])
    assert np.all(padded >= n) and np.all(padded - n < n / 32)
    assert [UNPADDED.capacity(n) for n in (0, 5, 65)] == [0, 5, 65]
    assert EngineConfig(capacity_bits=2).capacity(9) == 12        # a multiple of 2**2
    for bad in (-1, 17, 2.0):
        with pytest.raises(InputError, match="config.capacity_bits"):
            EngineConfig(capacity_bits=bad)


def _book(account, market, cash, n_markets):
    size = np.where(np.arange(len(account)) % 2, -1.0, 1.0) * (1.0 + np.arange(len(account)))
    # every market zero-sum: the LPs hold the other side
    lp = -np.bincount(market, weights=size, minlength=n_markets)
    return PositionBook.from_positions(account, market, size, np.full(len(account), 100.0), cash,
                                       n_markets=n_markets, lp_size=lp, lp_entry=np.full(n_markets, 100.0),
                                       dtype=jnp.float64)


def test_capacities_hold_the_pad_positions_and_keep_the_plane():
    # No plane (trader 2 holds nothing): 4 rows, 4 positions over 2 markets -> 64 rows and 64 positions
    # (60 pad rows hold the 60 pad positions, one each).
    lay = _book([0, 0, 1, 3], [0, 1, 1, 0], [1.0] * 4, 2).layout
    assert lay.n_plane == 0 and capacities(lay, EngineConfig()) == (64, 64)
    assert padded_positions(lay) == 64 + 2 * 2 and padded_positions(lay, UNPADDED) == lay.n_positions == 4 + 4
    # One market and the plane (every row one position): each pad row needs a pad position and can hold only
    # one, so rows and positions pad alike.
    lay = _book(list(range(70)), [0] * 70, [1.0] * 70, 1).layout
    assert lay.n_plane == 70 and capacities(lay, EngineConfig()) == (128, 128)
    # 2 rows holding 100 positions in 50 markets, the plane: rows pad to 64, and each of the 62 pad rows
    # needs a position, so 100 + 62 = 162 positions, padded to 192.
    acc = np.repeat([0, 1], 50)
    mkt = np.tile(np.arange(50), 2)
    lay = _book(acc, mkt, [1.0, 1.0], 50).layout
    assert capacities(lay, EngineConfig()) == (64, 192)
    assert capacities(lay, UNPADDED) == (2, 100)
    # Without the plane (a third row, empty), the 61 pad rows need not hold one: 100 positions pad to 128.
    lay = _book(acc, mkt, [1.0, 1.0, 1.0], 50).layout
    assert lay.n_plane == 0 and capacities(lay, EngineConfig()) == (64, 128)


@pytest.mark.parametrize("plane", [True, False])
def test_padded_book_round_trip(plane):
    # Every row holds a position (the plane), or rows 2 and 3 hold none.
    account, market = ([0, 0, 1, 2, 3, 4], [0, 2, 1, 2, 1, 0]) if plane else ([0, 0, 1, 4], [0, 2, 1, 0])
    book = _book(account, market, [10.0, 20.0, 30.0, 40.0, 50.0], 3)
    assert (book.layout.n_plane > 0) == plane
    n, p = book.n_accounts, book.n_positions
    padded, unpad = book.padded(n + 4, p + 7)
    lay = padded.layout
    assert lay.n_traders == n + 4 and lay.n_trader_positions == p + 7 and (lay.n_plane > 0) == plane
    rows, mkts = np.asarray(lay.row), np.asarray(lay.market)
    assert len(set(zip(rows.tolist(), mkts.tolist()))) == rows.size          # one slot a (row, market)
    pads = rows[:lay.n_trader_positions] >= n
    assert pads.sum() == 7 and np.all(np.asarray(padded.position_size)[:lay.n_trader_positions][pads] == 0)
    np.testing.assert_array_equal(np.asarray(padded.all_cash), list(book.all_cash[:n]) + [0.0] * 4
                                  + list(book.all_cash[n:]))
    # The traders' positions and the system slots keep their numbers, as dense grids.
    np.testing.assert_array_equal(np.asarray(padded.size)[:n], np.asarray(book.size))
    np.testing.assert_array_equal(np.asarray(padded.lp_size), np.asarray(book.lp_size))
    back = unpad(padded.batched(2))
    for f in ("all_cash", "position_size", "position_entry", "cooldown", "isolated"):
        np.testing.assert_array_equal(np.asarray(getattr(back, f)), np.broadcast_to(getattr(book, f), (2,) +
                                                                                      getattr(book, f).shape))
    assert back.layout is book.layout
    with pytest.raises(InputError, match="padded"):
        book.padded(n, p + 1)                                                  # pad positions need pad rows


def _crash(n_accounts, seed):
    book = adljax.generate.population(jax.random.key(seed), n_accounts, [100_000.0, 4_000.0], [50.0, 30.0],
                                      median_notional=50_000.0, leverage_mode=25.0, markets_per_account=2,
                                      vault_cash=2e4, dtype=np.float64, positions=True)
    drop = np.linspace(0.0, 0.2, 12)[None, :, None] * np.array([1.0, 1.3])
    oracle = np.array([100_000.0, 4_000.0]) * (1.0 - drop) * np.ones((2, 1, 1))
    return book, Paths(oracle, np.full_like(oracle, 1e6))


def test_padding_changes_no_number():
    book, paths = _crash(40, 1)
    lay = book.without_idle_rows()[0].layout
    assert capacities(lay, EngineConfig()) != (lay.n_traders, lay.n_trader_positions)   # it pads
    venue = venues.hyperliquid()
    padded = adljax.simulate(venue, book, paths, history=True)
    plain = adljax.simulate(venue, book, paths, history=True, config=UNPADDED)
    m = {k: float(v.sum()) for k, v in plain.metrics.items()}
    assert m["market_liquidation_orders"] > 0 and m["adl_notional"] > 0        # the waterfall acts
    for k in plain.metrics:
        np.testing.assert_allclose(padded.metrics[k], plain.metrics[k], rtol=1e-12, atol=1e-9, err_msg=k)
    for k in plain.history:
        np.testing.assert_allclose(padded.history[k], plain.history[k], rtol=1e-12, atol=1e-9, err_msg=k)
    for f in ("all_cash", "position_size", "position_entry", "cooldown"):
        np.testing.assert_allclose(getattr(padded.book, f), getattr(plain.book, f), rtol=1e-12, atol=1e-9,
                                   err_msg=f)
    assert padded.book.layout is book.layout


def test_books_of_similar_size_share_one_program():
    venue = venues.hyperliquid()
    (a, pa), (b, pb) = _crash(30, 2), _crash(36, 3)
    # Unpadded, the two run at different shapes (rows and positions), so each would compile its own program.
    shape = lambda book: (lambda lay: (lay.n_rows, lay.n_positions))(book.without_idle_rows()[0].layout)
    assert shape(a) != shape(b)
    adljax.simulate(venue, a, pa)
    with lowerings("run") as seen:
        adljax.simulate(venue, b, pb)
    assert len(seen) == 0
