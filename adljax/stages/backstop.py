"""Stage 3, backstop: the vault takes over rows below ``backstop_ratio·MR`` when it can carry them.

Hyperliquid's liquidator vault (part of HLP) takes the positions at mark and
all the remaining collateral; the maintenance buffer is not returned. The
vault considers candidates in row order and stops at the first one that
would leave its own ``AV`` below its own requirement.
"""
from __future__ import annotations

import jax.numpy as jnp
from jax import Array

from .._pytree import pytree
from ..accounting import account_value, maintenance, notional, trade
from ..book import Book
from ..market import Market
from ..venue import Params
from .margin import has_position, trader_rows


@pytree
class Report:
    """Stage 3 report (one scenario)."""

    notional: Array
    accounts: Array
    bad_debt: Array


def candidates(book: Book, market: Market, params: Params) -> tuple[Array, Array]:
    """([R] bool candidates, [R] AV): trader rows with a position and ``AV < backstop_ratio·MR``."""
    m = market.mark
    av = account_value(book.all_cash, book.all_size, book.all_entry, m)
    mr = maintenance(book.all_size, m, params.maintenance_margin)
    cand = trader_rows(av.shape[-1]) & has_position(book) & (av < params.backstop_ratio * mr)
    return cand, av


def run(book: Book, market: Market, params: Params) -> tuple[Book, Report]:
    m, mm = market.mark, params.maintenance_margin
    cand, av = candidates(book, market, params)
    v = -2
    rows = jnp.arange(av.shape[-1])
    # Vault value and positions after taking every candidate up to each row, in row order.
    cum_av = av[v] + jnp.cumsum(jnp.where(cand, av, 0.0))
    cum_size = book.all_size[v] + jnp.cumsum(jnp.where(cand[:, None], book.all_size, 0.0), axis=0)
    carries = cum_av >= maintenance(cum_size, m, mm)
    first_refused = jnp.min(jnp.where(cand & ~carries, rows, av.shape[-1]))
    take = cand & (rows < first_refused)

    taken_size = jnp.where(take[:, None], book.all_size, 0.0)
    v_size, v_entry, v_dcash = trade(book.all_size[v], book.all_entry[v], jnp.sum(taken_size, axis=0), m)
    cash = jnp.where(take, 0.0, book.all_cash)
    cash = cash.at[v].add(jnp.sum(jnp.where(take, av, 0.0)) + jnp.sum(v_dcash))
    size = jnp.where(take[:, None], 0.0, book.all_size).at[v].set(v_size)
    entry = jnp.where(take[:, None], 0.0, book.all_entry).at[v].set(v_entry)
    cooldown = jnp.where(take, 0.0, book.cooldown)
    report = Report(
        notional=jnp.sum(notional(taken_size, m)),
        accounts=jnp.sum(take).astype(m.dtype),
        bad_debt=jnp.sum(jnp.where(take, jnp.maximum(-av, 0.0), 0.0)),
    )
    return book.replace(all_cash=cash, all_size=size, all_entry=entry, cooldown=cooldown), report
