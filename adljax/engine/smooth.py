"""The smooth mode's relaxations: one temperature, each rule's switch made a ramp.

With ``Rules.temperature = 0`` (the default) every stage makes hard yes/no
decisions, as the venues' rules state them. With ``temperature = τ > 0`` the
engine runs the same stages with each decision replaced by a weight in
[0, 1] that moves from 0 to 1 across a band of width ``τ`` around the rule's
threshold, measured in the rule's own natural unit (docs/rules.md, "Smooth
mode", has the table):

=====================  ==========================================  =====================
decision               hard rule                                   smooth weight of
=====================  ==========================================  =====================
liquidatable           ``AV < MR``                                 ``1 − AV/MR``
partial order          ``|size|·m > partial_threshold``            ``|size|·m/threshold − 1``
in cooldown            ``cooldown > 0``                            ``cooldown/(τ·cooldown)``
backstop candidate     ``AV < backstop_ratio·MR``                  ``(ratio·MR − AV)/MR``
vault can carry        ``AV_v ≥ MR_v`` after the takeover          ``AV_v/MR_v − 1``
bankrupt (ADL)         ``AV < 0``                                  ``−AV/MR``
ADL queue order        score above the cut-off                     ``asinh(score)`` − cut-off
=====================  ==========================================  =====================

The ramp is the quintic smoothstep (twice differentiable, exactly 0 or 1
outside its band), so rows far from every threshold are untouched exactly as
in the hard engine, a stage no row is near is still skipped, and as
``τ → 0`` every weight becomes the hard decision: the smooth engine's limit
is the hard engine. A weight is applied as a fraction: a row liquidatable
with weight 0.3 sends 0.3 of its order; a backstop takeover of weight 0.3
moves 0.3 of the row's positions and cash to the vault.

Every helper here takes a hard decision (a bool array) or a smooth weight (a
float array) alike, so each stage is written once for both modes.

A stage's ``temperature`` argument is the Python number 0 in the hard mode;
in the smooth mode it may be a number or a traced scalar (the engine passes
``Params.temperature``, so changing τ does not recompile): :func:`hard`
tells the two apart at trace time.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
from jax import Array


def hard(temperature) -> bool:
    """Whether ``temperature`` means the hard rules: a concrete 0 (a traced value is the smooth mode)."""
    if isinstance(temperature, jax.core.Tracer):
        return False
    return float(temperature) == 0


def temperature_of(params, rules):
    """The temperature the stages run at: ``params.temperature`` (traced) in the smooth mode, else 0."""
    return params.temperature if rules.smooth else 0.0


def smoothstep(u: Array) -> Array:
    """The quintic ramp ``6u⁵ − 15u⁴ + 10u³`` on [0, 1]: 0 below, 1 above, C² throughout."""
    u = jnp.clip(u, 0.0, 1.0)
    return u * u * u * (u * (6.0 * u - 15.0) + 10.0)


def above(x: Array, temperature: float) -> Array:
    """The decision ``x > 0``: a bool array when ``temperature == 0``, else a weight in [0, 1].

    The weight is ``smoothstep(x/τ + 1/2)``: 0 for ``x ≤ −τ/2``, 1/2 at
    ``x = 0``, 1 for ``x ≥ τ/2``. ``temperature``: a number, or a traced
    scalar in the smooth mode (see :func:`hard`).
    """
    if hard(temperature):
        return x > 0
    return smoothstep(x / temperature + 0.5)


def ratio(num: Array, den: Array, if_zero: Array | float = 0.0) -> Array:
    """``num/den`` where ``den > 0``, else ``if_zero`` (no NaN in values or gradients)."""
    ok = den > 0
    return jnp.where(ok, num / jnp.where(ok, den, 1.0), if_zero)


def weigh(w: Array, x: Array) -> Array:
    """``x`` where the decision ``w`` holds, 0 elsewhere; ``w·x`` for a smooth weight."""
    if w.dtype == jnp.bool_:
        return jnp.where(w, x, 0.0)
    return w * x


def both(w1: Array, w2: Array) -> Array:
    """Both decisions (``&``), or the product of two weights."""
    if w1.dtype == jnp.bool_ and w2.dtype == jnp.bool_:
        return w1 & w2
    return _f(w1) * _f(w2)


def negate(w: Array) -> Array:
    """Not the decision (``~``), or ``1 − w``."""
    return ~w if w.dtype == jnp.bool_ else 1.0 - w


def count(w: Array, dtype) -> Array:
    """How many hold, or the sum of the weights, as ``dtype``."""
    return jnp.sum(w.astype(dtype))


def _f(w: Array) -> Array:
    return w.astype(jnp.float32) if w.dtype == jnp.bool_ else w
