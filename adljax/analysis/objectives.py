"""Study objectives over a batch of scenarios: what a risk team calibrates against.

Each is a differentiable function of the engine's per-scenario metrics
(:data:`adljax.METRICS`, [S] arrays) and, for the cost side, of the Params
and the start book. In the hard engine they are the plain statistics; run
the engine in the smooth mode (``venue.replace(temperature=τ)``) to get
useful gradients.

``p_adl`` and ``vault_loss_es`` are the statistics ``adljax run`` reports
(:mod:`adljax.analysis.metrics`, ``summary.json``'s ``p_adl`` and
``vault_loss.es99``): on hard-mode metrics they give the same numbers.

========================  =====================================================
name                      value
========================  =====================================================
``p_adl``                 mean of ``adl_indicator``: P(ADL acts), i.e. a
                          position closed against a counterparty or a
                          socialized loss charged (Drift)
``bad_debt``              mean of ``bad_debt`` (USD)
``vault_loss_es``         expected shortfall at ``level`` of the vault's loss
                          ``−vault_pnl`` (USD): the mean of its worst
                          ``(1 − level)·S`` scenarios, the boundary one
                          with a fractional weight (Acerbi & Tasche)
``adl_notional``          mean of ``adl_notional`` (USD)
``margin_locked``         traders' maintenance requirement at the start,
                          ``Σ |size|·mark·mm`` or the tiered requirement
                          (USD): the cost side
``vault_capital``         the vault's start cash (USD): the cost of the backstop
========================  =====================================================
"""
from __future__ import annotations

from typing import Mapping

import jax
import jax.numpy as jnp
from jax import Array

from ..engine.accounting import requirement
from ..engine.positions.accounting import requirement as position_requirement
from .metrics import ADL_ACTED, tail_weights
from ..model.book import Book
from ..model.position_book import PositionBook
from ..model.rows import TRADERS, VAULT
from ..model.errors import InputError
from ..model.venue import Params


def p_adl(metrics: Mapping[str, Array]) -> Array:
    """P(ADL): the mean of ``adl_indicator`` (:data:`adljax.analysis.metrics.ADL_ACTED`).

    In the hard mode the indicator is 0 or 1, so its mean is the share of
    scenarios with ``adl_indicator > 0``, :func:`adljax.analysis.metrics.p_adl`;
    in the smooth mode it is relaxed into [0, 1] and so is the share.
    """
    return jnp.mean(metrics[ADL_ACTED])


def expected_bad_debt(metrics: Mapping[str, Array]) -> Array:
    """Mean bad debt per scenario, USD."""
    return jnp.mean(metrics["bad_debt"])


def expected_adl_notional(metrics: Mapping[str, Array]) -> Array:
    """Mean notional closed by ADL per scenario, USD."""
    return jnp.mean(metrics["adl_notional"])


def expected_shortfall(x: Array, level: float) -> Array:
    """Expected shortfall (CVaR) of ``x`` [S]: the mean of its worst ``(1 − level)·S`` values.

    :func:`adljax.analysis.metrics.expected_shortfall`'s definition and
    weights (:func:`~adljax.analysis.metrics.tail_weights`): with
    ``k = (1 − level)·S`` not a whole number, the boundary scenario counts
    with weight ``k − ⌊k⌋``; with ``k ≤ 1`` it is the maximum.
    Differentiable almost everywhere (the gradient goes to the scenarios in
    the tail). ``level`` is a Python float (static).
    """
    w, k = tail_weights(x.shape[0], level)
    desc = -jnp.sort(-x)
    return jnp.sum(desc * jnp.asarray(w, x.dtype)) / k


def vault_loss_es(metrics: Mapping[str, Array], level: float = 0.99) -> Array:
    """Expected shortfall at ``level`` of the vault's loss ``−vault_pnl``, USD."""
    return expected_shortfall(-metrics["vault_pnl"], level)


def margin_locked(params: Params, book: Book | PositionBook, mark: Array) -> Array:
    """Traders' maintenance requirement ``Σ_traders Σ_a`` each position's requirement, USD.

    ``|size|·mark·mm`` in a one-rate market, the tiered requirement in a tiered one
    (:func:`adljax.engine.accounting.requirement`). ``book`` one scenario's or a batch's
    (then the mean over scenarios), dense or position form; ``mark`` [A] or [S, A].
    """
    if isinstance(book, PositionBook):                                  # the traders' positions [..., P]
        lay, size = book.layout, book.position_size
        traders = lay.is_trader()
        per_row = lambda s, m: jnp.sum(jnp.where(traders, position_requirement(lay, s, m, params), 0.0))
        lead = size.shape[:-1]
        flat = size.reshape((-1,) + size.shape[-1:])
    else:
        size = book.size_am[..., :, TRADERS]                            # [..., A, N]
        per_row = lambda s, m: jnp.sum(requirement(s, m, params))
        lead = size.shape[:-2]
        flat = size.reshape((-1,) + size.shape[-2:])
    marks = jnp.broadcast_to(mark, lead + mark.shape[-1:]).reshape(-1, mark.shape[-1])
    return jnp.mean(jax.vmap(per_row)(flat, marks))


def vault_capital(book: Book | PositionBook) -> Array:
    """The vault's cash, USD (the mean over a batch)."""
    return jnp.mean(book.all_cash[..., VAULT])


#: The objective names :func:`adljax.calibrate` takes, and their units.
OBJECTIVES: dict[str, str] = {
    "p_adl": "probability: share of scenarios in which ADL acted (closed or charged anything)",
    "bad_debt": "USD: mean bad debt per scenario",
    "vault_loss_es": "USD: expected shortfall of the vault's loss at `level`",
    "adl_notional": "USD: mean ADL notional per scenario",
    "margin_locked": "USD: traders' maintenance requirement at the start",
    "vault_capital": "USD: the vault's start cash",
}


def evaluate(name: str, metrics: Mapping[str, Array], params: Params, book: Book | PositionBook, mark0: Array,
             level: float = 0.99) -> Array:
    """The objective ``name`` (one of :data:`OBJECTIVES`) of a simulated batch.

    ``metrics`` the engine's [S] metrics; ``params``, ``book`` (batched) and
    ``mark0`` [S, A] the inputs they came from (for the cost side).
    """
    if name == "p_adl":
        return p_adl(metrics)
    if name == "bad_debt":
        return expected_bad_debt(metrics)
    if name == "vault_loss_es":
        return vault_loss_es(metrics, level)
    if name == "adl_notional":
        return expected_adl_notional(metrics)
    if name == "margin_locked":
        return margin_locked(params, book, mark0)
    if name == "vault_capital":
        return vault_capital(book)
    raise InputError(f"objective: {name!r} is not one of {', '.join(map(repr, OBJECTIVES))}")
