"""The accounting helpers' sums over the market axis, against hand-worked numbers and jnp's reductions."""
from __future__ import annotations

import jax
import jax.numpy as jnp

import adljax
import numpy as np
import pytest

from adljax.engine.accounting import account_value, any_markets, maintenance, requirement, sum_markets
from adljax.engine.config import EngineConfig

UNROLLED = EngineConfig().unrolled_markets


def test_account_value_and_requirement_by_hand():
    # Two markets, three rows: AV = cash + Σ size·(mark − entry); MR = Σ |size|·mark·mm.
    cash = jnp.array([100.0, -50.0, 0.0])
    size = jnp.array([[2.0, -1.0, 0.0], [0.5, 0.0, 0.0]])
    entry = jnp.array([[10.0, 12.0, 0.0], [100.0, 0.0, 0.0]])
    mark = jnp.array([11.0, 90.0])
    np.testing.assert_array_equal(account_value(cash, size, entry, mark), [100 + 2 * 1 + 0.5 * -10, -50 + -1 * -1, 0.0])
    params = adljax.venues.hyperliquid(maintenance_margin=[0.1, 0.02]).params(2)
    np.testing.assert_allclose(maintenance(size, mark, params), [2 * 11 * 0.1 + 0.5 * 90 * 0.02, 1.1, 0.0])


@pytest.mark.parametrize("mode", ["deduction", "step"])
def test_tiered_requirement_by_hand(mode):
    # One market, tiers (0, 1 %), ($1,000, 2 %), ($5,000, 5 %); mark 100. Positions of notional $500,
    # $1,000 (on the bound), $3,000 and $8,000, and a short of $3,000.
    # Deduction: d1 = 1000·(0.02 − 0.01) = 10, d2 = 10 + 5000·(0.05 − 0.02) = 160:
    #   500·0.01 = 5; 1000·0.02 − 10 = 10; 3000·0.02 − 10 = 50; 8000·0.05 − 160 = 240.
    # Step: the whole notional at its tier's rate: 5; 20; 60; 400.
    venue = adljax.venues.hyperliquid(margin_tiers=[(0, 0.01), (1_000, 0.02), (5_000, 0.05)], tier_mode=mode)
    params = venue.params(1)
    size = jnp.array([[5.0, 10.0, 30.0, 80.0, -30.0]])
    want = {"deduction": [5, 10, 50, 240, 50], "step": [5, 20, 60, 400, 60]}[mode]
    np.testing.assert_allclose(requirement(size, jnp.array([100.0]), params)[0], want, rtol=1e-12)
    np.testing.assert_allclose(maintenance(size, jnp.array([100.0]), params), want, rtol=1e-12)


@pytest.mark.parametrize("jit", [False, True], ids=["nojit", "jit"])
@pytest.mark.parametrize("n_markets", [1, 2, 4, UNROLLED, UNROLLED + 3])
def test_market_reductions_match_jnp(n_markets, jit):
    rng = np.random.default_rng(n_markets)
    x = rng.normal(size=(3, n_markets, 5))            # batched like the engine's [S, A, R]
    f = (lambda g: jax.jit(g, static_argnums=1)) if jit else (lambda g: g)
    for axis, xs in ((0, x[0]), (1, x), (-2, x)):
        np.testing.assert_allclose(f(sum_markets)(xs, axis), xs.sum(axis=axis), rtol=1e-13)
        np.testing.assert_array_equal(f(any_markets)(xs > 1.0, axis), (xs > 1.0).any(axis=axis))
        # written the other way (unrolled above A markets, or a reduction from one market up): the same
        for unrolled in (0, n_markets):
            np.testing.assert_allclose(sum_markets(xs, axis, unrolled), xs.sum(axis=axis), rtol=1e-13)
            np.testing.assert_array_equal(any_markets(xs > 1.0, axis, unrolled), (xs > 1.0).any(axis=axis))


def _primitives(fn, x) -> set[str]:
    return {e.primitive.name for e in jax.make_jaxpr(fn)(x).eqns}


def test_unrolled_markets_decides_how_a_sum_over_markets_is_written():
    """Up to ``unrolled`` markets the sum is elementwise adds (no reduction kernel); above, one reduction.
    The default is EngineConfig's, 8 markets."""
    x = jnp.ones((3, 5))
    assert "reduce_sum" not in _primitives(lambda y: sum_markets(y, unrolled=3), x)
    assert "reduce_sum" in _primitives(lambda y: sum_markets(y, unrolled=2), x)
    assert "reduce_or" in _primitives(lambda y: any_markets(y > 0, unrolled=2), x)
    assert "reduce_or" not in _primitives(lambda y: any_markets(y > 0, unrolled=3), x)
    assert "reduce_sum" not in _primitives(sum_markets, jnp.ones((UNROLLED, 5)))
    assert "reduce_sum" in _primitives(sum_markets, jnp.ones((UNROLLED + 1, 5)))
    assert "reduce_sum" in _primitives(lambda y: account_value(y[0], y, y, y[:, 0], unrolled=2), x)
    params = adljax.venues.hyperliquid().params(3)
    assert "reduce_sum" in _primitives(lambda y: maintenance(y, y[:, 0], params, unrolled=2), x)


def test_market_sum_adds_in_market_order():
    # 1e16 + 1 − 1e16 is 0 in that order (the 1 is lost), 1 if the large terms cancel first.
    x = jnp.array([[1e16], [1.0], [-1e16]])
    assert float(sum_markets(x)[0]) == 0.0
    np.testing.assert_array_equal(sum_markets(jnp.array([[1e16], [-1e16], [1.0]])), [1.0])


def test_market_reductions_are_differentiable():
    x = jnp.arange(12.0).reshape(4, 3)
    np.testing.assert_array_equal(jax.grad(lambda y: jnp.sum(sum_markets(y) ** 2))(x),
                                  2 * np.broadcast_to(np.asarray(x).sum(0), (4, 3)))
