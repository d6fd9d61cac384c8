"""Bad input gets an InputError naming the field and the problem, never a JAX traceback."""
import numpy as np
import pytest

import adljax
from adljax import Book, InputError, Paths, venues

GOOD = dict(cash=[100.0, 100.0], size=[[1.0], [-1.0]], entry=[[100.0], [100.0]])


def good_paths(s=1, t=3, a=1):
    return Paths(oracle=np.full((s, t, a), 100.0), depth=np.full((s, t, a), 1e6))


@pytest.mark.parametrize("change, field, problem", [
    (dict(cash=[np.nan, 100.0]), "cash", "NaN"),
    (dict(size=[[1.0], [-2.0]]), "size", "not zero-sum"),
    (dict(entry=[[0.0], [100.0]]), "entry", "> 0"),
    (dict(size=[[1.0, 0.0], [-1.0, 0.0]]), "entry", "expected shape"),
    (dict(cash=[100.0]), "size", "rows"),
    (dict(size=[1.0, -1.0]), "size", "dimensions"),
])
def test_book_errors(change, field, problem):
    kw = dict(GOOD, **change)
    with pytest.raises(InputError) as e:
        Book.from_accounts(**kw)
    assert str(e.value).startswith(field) and problem in str(e.value)


def test_zero_sum_error_says_by_how_much_per_market():
    with pytest.raises(InputError, match=r"market 1: \+0\.5"):
        Book.from_accounts(cash=[1.0, 1.0], size=[[1.0, 0.5], [-1.0, 0.0]], entry=[[10.0, 10.0], [10.0, 0.0]])


def test_negative_vault_and_isolated_with_two_positions():
    with pytest.raises(InputError, match="vault_cash: negative"):
        Book.from_accounts(**GOOD, vault_cash=-1.0)
    with pytest.raises(InputError, match="isolated: account 0"):
        Book.from_accounts(cash=[1.0, 1.0], size=[[1.0, 1.0], [-1.0, -1.0]], entry=[[10.0, 10.0], [10.0, 10.0]],
                           isolated=[True, False])


@pytest.mark.parametrize("oracle, depth, problem", [
    (np.full((1, 3, 1), 100.0), -np.ones((1, 3, 1)), "paths.depth: negative"),
    (np.array([[[100.0], [np.nan], [100.0]]]), np.ones((1, 3, 1)), "paths.oracle: NaN at index (0, 1, 0)"),
    (np.array([[[100.0], [0.0], [100.0]]]), np.ones((1, 3, 1)), "paths.oracle: non-positive"),
    (np.full((3, 1), 100.0), np.ones((3, 1)), "paths.oracle: expected [S scenarios, T steps, A markets]"),
    (np.full((1, 3, 1), 100.0), np.ones((1, 4, 1)), "paths.depth: shape"),
    (np.full((1, 3, 2), 100.0), np.ones((1, 3, 2)), "paths.oracle: has 2 markets but the book has 1"),
])
def test_path_errors(oracle, depth, problem):
    with pytest.raises(InputError) as e:
        adljax.simulate(venues.hyperliquid(), Book.from_accounts(**GOOD), Paths(oracle, depth))
    assert problem in str(e.value)


@pytest.mark.parametrize("override, problem", [
    (dict(max_leverage=[10.0, 20.0]), "max_leverage: expected a scalar or 1 values"),
    (dict(partial_fraction=1.5), "partial_fraction: must be in"),
    (dict(backstop_ratio=-0.1), "backstop_ratio: must be in"),
    (dict(max_leverage=0.5), "max_leverage: must be in"),
])
def test_venue_errors(override, problem):
    with pytest.raises(InputError) as e:
        adljax.simulate(venues.hyperliquid(**override), Book.from_accounts(**GOOD), good_paths())
    assert problem in str(e.value)


def test_unknown_setting_and_rule():
    with pytest.raises(InputError, match="max_leverge: not a venue setting"):
        venues.hyperliquid(max_leverge=10)
    with pytest.raises(InputError, match="adl_policy: 'fifo' is not one of"):
        venues.hyperliquid(adl_policy="fifo")


def test_dt_and_wrong_types():
    with pytest.raises(InputError, match="dt: must be in"):
        adljax.simulate(venues.hyperliquid(), Book.from_accounts(**GOOD), good_paths(), dt=0.0)
    with pytest.raises(InputError, match="paths: expected an adljax.Paths"):
        adljax.simulate(venues.hyperliquid(), Book.from_accounts(**GOOD), np.ones((1, 3, 1)))
    with pytest.raises(InputError, match="book: a batched book needs a leading axis of 2"):
        b = Book.from_accounts(**GOOD)
        b3 = adljax.model.book.stack([b, b, b])
        adljax.simulate(venues.hyperliquid(), b3, good_paths(s=2))
