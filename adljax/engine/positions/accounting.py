"""Position accounting on a position list: the per-position forms of :mod:`adljax.engine.accounting`.

Every function is per scenario: ``lay`` the :class:`~adljax.model.layout.Layout`, positions [P], rows [R],
markets [A]. The elementwise rules (:func:`~adljax.engine.accounting.trade`,
:func:`~adljax.engine.accounting.reduce_position`, dust) are the dense engine's, unchanged.
"""
from __future__ import annotations

import jax.numpy as jnp
from jax import Array

from ...model.layout import Layout
from ..accounting import dust


def requirement(lay: Layout, size: Array, mark: Array, params) -> Array:
    """Each position's maintenance requirement, [P] USD (size [P], mark [A]): the tiers of its market,
    as :func:`adljax.engine.accounting.requirement` gives them."""
    ntl = jnp.abs(size) * lay.at_market(mark)
    mm = lay.at_market(params.maintenance_margin)
    out = ntl * mm
    n_tiers = params.tier_rates.shape[-1]
    prev = mm
    for k in range(n_tiers):
        rate, bound = lay.at_market(params.tier_rates[:, k]), lay.at_market(params.tier_bounds[:, k])
        if params.tier_mode == "step":
            out = out + (rate - prev) * jnp.where(ntl >= bound, ntl, 0.0)
        else:
            out = out + (rate - prev) * jnp.maximum(ntl - bound, 0.0)
        prev = rate
    return out


def market_requirement(size: Array, mark: Array, params) -> Array:
    """The requirement of one position in each market, [A] (size [A], e.g. the vault's)."""
    from ..accounting import requirement as dense
    return dense(size[:, None], mark, params)[:, 0]


def account_value(lay: Layout, cash: Array, size: Array, entry: Array, mark: Array) -> Array:
    """``AV = cash + Σ size·(mark − entry)`` per row: cash [R], size/entry [P], mark [A] → [R] USD."""
    return cash + lay.rows(size * (lay.at_market(mark) - entry))


def maintenance(lay: Layout, size: Array, mark: Array, params) -> Array:
    """``MR`` per row, [R] USD: the sum of its positions' :func:`requirement`."""
    return lay.rows(requirement(lay, size, mark, params))


def has_position(lay: Layout, size: Array) -> Array:
    """[R] bool: the row holds an open position."""
    return lay.any_rows(size != 0)


def below_zero(lay: Layout, av: Array, cash: Array, size: Array, entry: Array, mark: Array) -> Array:
    """[R] bool: ``AV`` below zero by more than its rounding (:func:`adljax.engine.accounting.below_zero`)."""
    scale = jnp.abs(cash) + lay.rows(jnp.abs(size) * (lay.at_market(mark) + jnp.abs(entry)))
    return av < -dust(av) * scale
