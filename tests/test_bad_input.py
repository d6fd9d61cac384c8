"""Bad input never becomes a silent wrong answer: it is refused with one InputError line naming the field.

By class: numbers finite in float64 but not in the engine's dtype, or money that can overflow it
(:func:`adljax.model.errors.money_limit`); books changed with ``Book.replace`` (every entry point checks
the book and paths it is given); arguments of the wrong type; settings in the wrong form. Most checks
raise before anything compiles; the runs use one book shape (2 traders, 1 market, 3 steps, 1 scenario)
and one venue, so the file compiles two engine programs (float32 and float64).
"""
import numpy as np
import jax
import jax.numpy as jnp
import pytest
from hypothesis import HealthCheck, example, given, settings, strategies as st

import adljax
from adljax import Book, InputError, Paths, venues
from adljax.model.book import check_inputs
from adljax.model.errors import money_limit, smallest_amount

F32, F64 = np.float32, np.float64
VENUE = venues.hyperliquid()


def book(cash=(100.0, 100.0), size=1.0, entry=(100.0, 100.0), dtype=F32, **kw):
    """Trader 0 long ``size``, trader 1 short ``size``, one market."""
    return Book.from_accounts(list(cash), [[size], [-size]], [[entry[0]], [entry[1]]], dtype=dtype, **kw)


def paths(oracle=100.0, depth=1e6):
    return Paths(oracle=np.full((1, 3, 1), oracle), depth=np.full((1, 3, 1), depth))


def refused(field: str, problem: str, fn, *args, **kwargs) -> str:
    """Call ``fn``; it must raise one InputError line that starts with ``field:`` and contains ``problem``."""
    with pytest.raises(InputError) as e:
        fn(*args, **kwargs)
    msg = str(e.value)
    assert msg.startswith(field + ":"), msg
    assert problem in msg, msg
    assert "\n" not in msg, msg
    return msg


# ---- 1. finite in float64, not in the engine's dtype -------------------------------------------

def test_money_limit_and_smallest_amount_by_hand():
    # 1e-3·sqrt(largest): float32's largest is (2 − 2⁻²³)·2¹²⁷, its root just under 2⁶⁴ = 1.8447e19.
    assert money_limit(F32) == pytest.approx(1e-3 * 2.0 ** 64, rel=1e-7)
    assert money_limit(F64) == pytest.approx(1e-3 * 2.0 ** 512, rel=1e-15)
    # 1e3·sqrt(smallest normal): 2⁻¹²⁶ and 2⁻¹⁰²², roots 2⁻⁶³ = 1.08e-19 and 2⁻⁵¹¹.
    assert smallest_amount(F32) == pytest.approx(1e3 * 2.0 ** -63, rel=1e-15)
    assert smallest_amount(F64) == pytest.approx(1e3 * 2.0 ** -511, rel=1e-15)


@pytest.mark.parametrize("make, field, problem", [
    (lambda: book(cash=(1e39, 100.0)), "cash", "1e+39 at index (0,) is infinite in float32"),
    (lambda: book(entry=(1e39, 1e39)), "entry", "is infinite in float32 (largest 3.403e+38)"),
    (lambda: book(size=1e-46), "size", "below float32's smallest normal number 1.175e-38"),
    (lambda: book(entry=(1e-40, 1.0)), "entry", "below float32's smallest normal number"),
    # sizes and prices from 1e3·sqrt(smallest normal) = 1.08e-16 in float32: a notional stays normal
    (lambda: book(size=1e-17), "size", "1e-17 at index (0, 0) is below the smallest size, price or depth 1.08e-16"),
    (lambda: book(size=1e-17, dtype=F64), None, None),
    (lambda: book(entry=(1e-15, 1e-17)), "entry", "1e-17 at index (1, 0) is below the smallest size, price"),
    (lambda: book(lp_size=[1e-17], lp_entry=[100.0]), "lp_size", "below the smallest size, price or depth"),
    (lambda: book(cash=(1e39, 100.0), vault_cash=1.0, dtype=F64), None, None),       # fine in float64
    # money: Σ|cash| and Σ|size|·price against 1.84e16 in float32
    (lambda: book(cash=(1.0e16, 0.9e16)), "cash", "comes to 1.9e+16 USD, mostly Σ|cash|, above the limit 1.84e+16"),
    (lambda: book(cash=(1.0e16, 0.8e16)), None, None),
    (lambda: book(size=1e9, entry=(1e8, 1e8)), "size", "Σ|size|·price (highest price 1e+08, from entry), above the "
     "limit 1.84e+16 for float32"),
    (lambda: book(entry=(1e17, 1e17)), "entry", "1e+17 at index (0, 0) is above the limit 1.84e+16"),
    (lambda: book(dtype=F32, insurance_fund=2e16), "insurance_fund", "mostly the insurance fund"),
])
def test_book_values_checked_in_its_dtype(make, field, problem):
    if field is None:
        make()
    else:
        refused(field, problem, make)


@pytest.mark.parametrize("oracle, depth, field, problem", [
    (1e39, 1e6, "paths.oracle", "1e+39 at index (0, 0, 0) is infinite in float32"),
    (1e-46, 1e6, "paths.oracle", "below float32's smallest normal number"),       # would round to 0
    (100.0, 1e39, "paths.depth", "is infinite in float32"),
    (100.0, 1e-46, "paths.depth", "below float32's smallest normal number"),
    (100.0, 1e17, "paths.depth", "above the limit 1.84e+16 for USD amounts in float32"),
    (100.0, 1e-17, "paths.depth", "below the smallest size, price or depth 1.08e-16 for float32"),
    (1e-17, 1e6, "paths.oracle", "below the smallest size, price or depth 1.08e-16 for float32"),
    (1e17, 1e6, "paths.oracle", "above the limit 1.84e+16"),
    # every price fine, but 1e6 units at 1e11 (the path's top) are 1e17 USD: named after the book's size
    (1e11, 1e6, "book.size_am", "comes to 2e+17 USD, mostly Σ|size|·price (highest price 1e+11, from paths.oracle)"),
])
def test_paths_values_checked_in_the_books_dtype(oracle, depth, field, problem):
    b = book(size=1e6, cash=(1e8, 1e8), entry=(100.0, 100.0))
    p = paths(oracle, depth)
    for fn in (adljax.simulate, adljax.reference.simulate):
        refused(field, problem, fn, VENUE, b, p)
    check_inputs(book(size=1e6, cash=(1e8, 1e8), entry=(100.0, 100.0), dtype=F64), p)    # fine in float64


def test_a_float64_book_cast_to_float32_is_checked_after_the_cast():
    b = book(cash=(1e39, 100.0), dtype=F64)
    cast = jax.tree_util.tree_map(lambda x: x.astype(F32) if x.dtype == F64 else x, b)
    refused("book.all_cash", "infinite value at index (0,)", adljax.simulate, VENUE, cast, paths())


# ---- 2. books changed with replace: every entry point checks ---------------------------------------

B = book()


def host_set(x, idx, value):
    """A NumPy copy of ``x`` with ``x[idx] = value`` (NumPy keeps a float32 subnormal; XLA on CPU flushes it to 0)."""
    h = np.array(x)
    h[idx] = value
    return h


@pytest.mark.parametrize("change, field, problem", [
    (dict(all_cash=B.all_cash.at[0].set(np.nan)), "book.all_cash", "NaN at index (0,)"),
    (dict(entry_am=B.entry_am.at[0, 1].set(-5.0)), "book.entry_am", "must be > 0 where a position is open"),
    (dict(entry_am=host_set(B.entry_am, (0, 1), 1e-40)), "book.entry_am", "below float32's smallest normal"),
    (dict(size_am=host_set(host_set(B.size_am, (0, 0), 1e-40), (0, 1), -1e-40)), "book.size_am",
     "below float32's smallest normal"),
    (dict(size_am=B.size_am.at[0, 0].set(2.0)), "book.size_am", "not zero-sum; net size per market"),
    (dict(cooldown=B.cooldown.at[1].set(-1.0)), "book.cooldown", "negative value"),
    (dict(insurance_fund=jnp.asarray(-1.0, F32)), "book.insurance_fund", "negative value"),
    (dict(all_cash=B.all_cash.at[0].set(3e16)), "book.all_cash", "above the limit"),
    (dict(size_am=B.size_am.astype(F64)), "book.size_am", "dtype float64 differs from the book's float32"),
    (dict(all_cash=B.all_cash.astype(jnp.float16)), "book.all_cash", "dtype float16"),
    (dict(all_cash=np.array([100, 100, 0, 0])), "book.all_cash", "dtype int64"),
    (dict(isolated=np.zeros(4, np.int32)), "book.isolated", "expected True/False per row"),
    (dict(cooldown=B.cooldown[:3]), "book.cooldown", "expected shape (4,)"),
])
def test_replaced_books_are_checked_by_every_entry_point(change, field, problem):
    bad = B.replace(**change)
    for fn in (adljax.simulate, adljax.reference.simulate):
        refused(field, problem, fn, VENUE, bad, paths())


def test_isolated_row_with_two_positions_via_replace():
    two = Book.from_accounts([100.0, 100.0], [[1.0, 1.0], [-1.0, -1.0]], [[10.0, 10.0], [10.0, 10.0]], dtype=F32)
    bad = two.replace(isolated=np.array([True, False, False, False]))
    p = Paths(np.full((1, 3, 2), 10.0), np.full((1, 3, 2), 1e6))
    for fn in (adljax.simulate, adljax.reference.simulate):
        refused("book.isolated", "row 0 is isolated but holds 2 positions", fn, VENUE, bad, p)


def test_value_checks_skip_tracers_but_dtype_checks_do_not():
    p = paths()

    def f(cash):
        check_inputs(B.replace(all_cash=cash), p)
        return cash.sum()
    # A NaN cannot be seen in a traced value: the shape and dtype checks pass, nothing is refused.
    assert np.isnan(float(jax.jit(f)(B.all_cash.at[0].set(np.nan))))
    assert float(jax.grad(f)(B.all_cash)[0]) == 1.0
    with pytest.raises(InputError, match=r"^book.all_cash: dtype int32"):
        jax.jit(f)(jnp.zeros(4, jnp.int32))
    with pytest.raises(InputError, match=r"^book.all_cash: NaN"):
        f(B.all_cash.at[0].set(np.nan))        # the same call, concrete: refused


# ---- 3. arguments of the wrong type ---------------------------------------------------------------

@pytest.mark.parametrize("kwargs, field, problem", [
    (dict(history="no"), "history", "must be True or False, got 'no'"),
    (dict(history=1), "history", "must be True or False, got 1"),
    (dict(first_scenario=True), "first_scenario", "whole number >= 0"),
    (dict(first_scenario=1.5), "first_scenario", "whole number >= 0"),
    (dict(first_scenario=-1), "first_scenario", "whole number >= 0"),
    (dict(dt="1"), "dt", "expected a number, got '1'"),
    (dict(dt=[1.0]), "dt", "expected one number, got a list of 1 values"),
])
def test_simulate_arguments_of_the_wrong_type(kwargs, field, problem):
    for fn in (adljax.simulate, adljax.reference.simulate):
        refused(field, problem, fn, VENUE, B, paths(), **kwargs)


@pytest.mark.parametrize("kwargs, field, problem", [
    (dict(isolated=["no", "no"]), "isolated", "expected True/False values, got text ('no')"),
    (dict(isolated=[1, 0]), "isolated", "expected True/False values, got numbers (1)"),
    (dict(dtype=np.float16), "dtype", "must be float32 or float64, got float16"),
    (dict(dtype=np.int32), "dtype", "must be float32 or float64, got int32"),
    (dict(dtype="float"), None, None),                    # NumPy's name for float64
    (dict(cash=["a", 1.0]), "cash", "expected numbers, got text ('a')"),
    (dict(cash=[None, 1.0]), "cash", "expected numbers, got a NoneType (None)"),
    (dict(cash=[True, False]), "cash", "expected numbers, got True/False values"),
    (dict(cash=[1.0, [2.0, 3.0]]), "cash", "expected numbers in a regular array"),
    (dict(vault_cash="5"), "vault_cash", "expected a number, got '5'"),
    (dict(lp_cash=[1.0]), "lp_cash", "expected one number, got a list of 1 values"),
])
def test_book_arguments_of_the_wrong_type(kwargs, field, problem):
    kw = dict(cash=[100.0, 100.0], size=[[1.0], [-1.0]], entry=[[100.0], [100.0]])
    kw.update(kwargs)
    if field is None:
        assert Book.from_accounts(**kw).all_cash.dtype == F64
    else:
        refused(field, problem, Book.from_accounts, **kw)


def test_numpy_bools_are_bools():
    b = Book.from_accounts([1.0, 1.0], [[1.0], [-1.0]], [[10.0], [10.0]], isolated=np.array([True, False]))
    assert np.asarray(b.isolated).tolist() == [True, False, False, False]
    check_inputs(b.replace(isolated=np.array([True, False, False, False])), paths(10.0))


# ---- 4. settings in the wrong form -----------------------------------------------------------------

@pytest.mark.parametrize("override, field, problem", [
    (dict(partial_fraction=[0.2, 0.3]), "partial_fraction",
     "expected one number (it applies to every market), got a list of 2 values"),
    (dict(partial_fraction=np.array([0.2])), "partial_fraction", "got an array of shape (1,)"),
    (dict(cooldown="30"), "cooldown", "expected a number, got '30'"),
    (dict(impact=True), "impact", "expected a number, got True"),
    (dict(slippage=None), "slippage", "expected a number, got NoneType"),
    (dict(max_leverage="20"), "max_leverage", "expected numbers, got text ('20')"),
    (dict(max_leverage=[[20.0]]), "max_leverage", "one number per market, got shape (1, 1)"),
    (dict(maintenance_margin=["0.01"]), "maintenance_margin", "expected numbers, got text ('0.01')"),
    (dict(cooldown=1e300), "cooldown", "must be in [0.0, 1000000000000000.0], got 1e+300"),   # inf in float32
    (dict(impact_half_life=1e39), "impact_half_life", "1000000000000000.0], got 1e+39"),
])
def test_venue_settings_in_the_wrong_form(override, field, problem):
    for fn in (adljax.simulate, adljax.reference.simulate):
        refused(field, problem, fn, venues.hyperliquid(**override), B, paths())


@pytest.mark.parametrize("oracle, field, problem", [
    ([[[100.0], [100.0], ["x"]]], "paths.oracle", "expected numbers, got text ('x')"),
    ([[[100.0], [100.0, 1.0], [100.0]]], "paths.oracle", "expected numbers in a regular array"),
    ([[100.0, 100.0, 100.0]], "paths.oracle", "expected [S scenarios, T steps, A markets], got shape (1, 3)"),
])
def test_paths_from_lists_refused_clearly(oracle, field, problem):
    refused(field, problem, adljax.simulate, VENUE, B, Paths(oracle=oracle, depth=[[[1e6]] * 3]))


def test_paths_from_lists_are_accepted():
    p = Paths(oracle=[[[100.0], [100.0], [50.0]]], depth=[[[1e6], [1e6], [1e6]]], funding=[[[0.0]] * 3])
    assert all(isinstance(x, np.ndarray) and x.shape == (1, 3, 1) for x in (p.oracle, p.depth, p.funding))
    # The long trader (cash 10, 1 unit from 100) is at AV = 10 − 50 < 0 after the drop: ADL takes him out.
    b = book(cash=(10.0, 100.0), dtype=F64, vault_cash=0.0)
    out = adljax.simulate(VENUE, b, Paths(oracle=[[[100.0], [100.0], [50.0]]], depth=[[[0.0]] * 3]))
    ref = adljax.reference.simulate(VENUE, b, Paths(oracle=[[[100.0], [100.0], [50.0]]], depth=[[[0.0]] * 3]))
    assert float(out.metrics["adl_notional"][0]) == float(ref.metrics["adl_notional"][0]) == 50.0


# ---- 5. extreme but valid numbers: a run or a refusal, never NaN -------------------------------------

def _pow10(lo: float, hi: float):
    return st.floats(lo, hi).map(lambda e: float(10.0 ** e))


@st.composite
def extreme_cases(draw):
    """One small case in float32 or float64: ``valid`` ones keep every size, price and depth within
    [smallest_amount, money_limit) and the money below a fifth of the limit (they must run); the others draw
    every number from the dtype's whole range and a little beyond (a run or a refusal)."""
    dtype = draw(st.sampled_from([F32, F64]))
    valid = draw(st.booleans())
    if valid:
        lo, hi = np.log10(smallest_amount(dtype)) + 0.01, np.log10(money_limit(dtype)) - 0.01
        e_p = draw(st.floats(lo + 2.0, hi - 1.0))             # the price scale; the path moves it by 1e-2..1e1
        e_s = draw(st.floats(lo, max(lo, hi - 2.0 - e_p)))     # notional at the highest price <= limit/10
        amount = st.just(0.0) | _pow10(lo, hi - 1.0)
        price = lambda: float(10.0 ** (e_p + draw(st.floats(-2.0, 1.0))))
        return dict(dtype=dtype, valid=True, cash=(draw(amount) * draw(st.sampled_from([1.0, -1.0])), draw(amount)),
                    size=float(10.0 ** e_s), entry=(price(), price()), vault=draw(amount),
                    oracle=[price() for _ in range(3)], depth=draw(amount))
    fi = np.finfo(dtype)
    anything = _pow10(max(np.log10(float(fi.smallest_subnormal)) - 1.0, -323.0),
                      min(np.log10(float(fi.max)) + 1.0, 308.0))
    positive = anything | st.just(1.0)
    return dict(dtype=dtype, valid=False, cash=(draw(anything) * draw(st.sampled_from([1.0, -1.0])), draw(anything)),
                size=draw(positive), entry=(draw(positive), draw(positive)), vault=draw(anything),
                oracle=[draw(positive) for _ in range(3)], depth=draw(anything | st.just(0.0)))


def _run_or_refuse(case) -> bool:
    """True if the case ran (with every metric and final number finite), False if refused with InputError."""
    try:
        b = book(cash=case["cash"], size=case["size"], entry=case["entry"], dtype=case["dtype"],
                 vault_cash=case["vault"])
        p = Paths(np.array(case["oracle"])[None, :, None], np.full((1, 3, 1), case["depth"]))
        out = adljax.simulate(VENUE, b, p)
    except InputError as e:
        assert "\n" not in str(e)
        assert not case["valid"], f"refused a valid case: {e}"
        return False
    bad = [k for k, v in out.metrics.items() if not np.all(np.isfinite(np.asarray(v)))]
    bad += [k for k in ("all_cash", "size_am", "entry_am", "insurance_fund")
            if not np.all(np.isfinite(np.asarray(getattr(out.book, k))))]
    assert not bad, f"non-finite {bad} for {case}"
    return True


#: The edges that must run: near float32's money limit with a crash (ADL of 2e15 USD), tiny prices and
#: sizes, float64's huge amounts.
EDGES = [
    dict(dtype=F32, valid=True, cash=(1e12, 1e12), size=1e13, entry=(100.0, 100.0), vault=1e12,
         oracle=[100.0, 100.0, 1.0], depth=1e9),
    dict(dtype=F32, valid=True, cash=(1e-30, 1e-20), size=1e15, entry=(1e-15, 1e-15), vault=0.0,
         oracle=[1e-15, 2e-15, 1e-15], depth=2e-16),
    dict(dtype=F64, valid=True, cash=(1e150, 1e149), size=1e-100, entry=(1e140, 1e140), vault=1e149,
         oracle=[1e140, 2e140, 1e139], depth=1e140),
]


@settings(max_examples=20, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])
@given(extreme_cases())
@example(EDGES[0])
@example(EDGES[1])
@example(EDGES[2])
# beyond float32: a price that is infinite there, notionals whose sum overflows it
@example(dict(dtype=F32, valid=False, cash=(1.0, 1.0), size=1.0, entry=(100.0, 100.0), vault=1.0,
              oracle=[100.0, 1e39, 100.0], depth=1e6))
@example(dict(dtype=F32, valid=False, cash=(100.0, 100.0), size=1e30, entry=(1e10, 1e10), vault=0.0,
              oracle=[1e10, 3e9, 1e10], depth=1e6))
def test_extreme_numbers_run_finite_or_are_refused(case):
    _run_or_refuse(case)


def test_the_edges_run_and_the_crash_deleverages():
    """Not vacuous: the edges run; the float32 crash at 1e15 USD of notional reaches ADL with finite numbers."""
    assert all(_run_or_refuse(c) for c in EDGES)
    c = EDGES[0]
    b = book(cash=c["cash"], size=c["size"], entry=c["entry"], dtype=F32, vault_cash=c["vault"])
    out = adljax.simulate(VENUE, b, Paths(np.array(c["oracle"])[None, :, None], np.full((1, 3, 1), c["depth"])))
    # The long (1e13 units from 100, cash 1e12) is at AV = 1e12 − 9.9e14 < 0 after the crash to 1.
    assert float(out.metrics["adl_notional"][0]) > 0
    assert float(out.metrics["bad_debt"][0]) > 9e14
