"""Where each position of a position book sits: its row and market, and the sums between them.

A position book (:class:`adljax.model.position_book.PositionBook`) holds its positions as one
list ``[P]`` instead of a dense ``[A, R]`` grid. The list has a fixed order:

- the traders' positions: when every trader row holds one, first the *plane*, each row's first
  position at the index of its row (position ``r`` is row ``r``'s), then every other position,
  sorted by row; otherwise all of them sorted by row (and within a row by market);
- the vault's ``A`` slots, one a market (``market = 0 .. A−1``, row ``R − 2``);
- the liquidity providers' ``A`` slots (row ``R − 1``).

The plane makes the sum over a row's positions cheap: most accounts of a venue hold one
position, and the plane's part of the sum is the plane itself (no scatter); only the rest is a
segment sum (:meth:`Layout.rows`).

A trader's position only ever shrinks (liquidation and ADL close part of it, a takeover moves
all of it to the vault), so the traders' slots fixed at the start hold every position they
will ever hold; only the vault and the liquidity providers take positions on, in any market,
and they have a slot in each. A closed position stays in the list with size 0.

:class:`Layout` is that list's index arrays; it is the same for every scenario and step
(unbatched, never carried as a scenario's state). Its methods are the two sums every stage
needs, over a row's positions (:meth:`Layout.rows`, a sorted segment sum) and over a market's
(:meth:`Layout.markets`), and the gathers back (:meth:`Layout.at_row`, :meth:`Layout.at_market`).
Nothing else may assume an order of the list but the system slots' place at its end.
Work and memory grow with ``P + R + A``, never with ``R × A``.
"""
from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
from jax import Array, lax

from .rows import SYSTEM, lp_row, vault_row


@dataclasses.dataclass(frozen=True)
class Layout:
    """Index arrays of a position list (one scenario's or a batch's: the same for all).

    Attributes:
      row: [P] int32, each position's row (``0 .. N−1`` traders, ``N`` the vault, ``N+1`` the LPs).
      market: [P] int32, each position's market, ``0 .. A−1``.
      by_market: [P] int32, the positions in market order (within a market, in row order); None in the
        small books of :func:`adljax.engine.positions.liquidation.run_gathered`, which need no
        :meth:`market_cumsum`.
      market_start: [A + 1] int32, where each market's run starts in ``by_market`` (the last entry is P);
        None with ``by_market``.
      n_rows: R = N + 2 (static).
      n_markets: A (static).
      n_plane: N when the list starts with the plane (position ``r`` is row ``r``'s first), else 0 (static).
      row_start: [R + 1] int32, where each row's run of positions after the plane starts (the last entry is
        P): row ``r`` holds position ``r`` if ``r < n_plane`` and the positions ``row_start[r] ..
        row_start[r + 1] − 1``. None in the small books of ``run_gathered``.
    """

    row: Array
    market: Array
    by_market: Array
    market_start: Array
    n_rows: int
    n_markets: int
    n_plane: int = 0
    row_start: Array | None = None

    @classmethod
    def build(cls, row, market, n_rows: int, n_markets: int) -> tuple["Layout", np.ndarray]:
        """The layout of trader positions at ``row``/``market`` [P'] (host integers, sorted by row, then
        market), with the vault's and the LPs' slots appended.

        Returns ``(layout, order)``: the trader positions' order in the list (``order[i]`` is the given
        position at index ``i``), to apply to their sizes and entries.
        """
        row = np.asarray(row, np.int64)
        market = np.asarray(market, np.int64)
        n = int(n_rows) - SYSTEM
        p = row.shape[0]
        first = np.ones(p, bool)
        first[1:] = row[1:] != row[:-1]
        if p and np.count_nonzero(first) == n:          # every trader row holds a position: the plane
            order = np.concatenate([np.flatnonzero(first), np.flatnonzero(~first)])
            n_plane = n
        else:
            order = np.arange(p)
            n_plane = 0
        a = np.arange(n_markets)
        row = np.concatenate([row[order], np.full(n_markets, vault_row(n_rows)), np.full(n_markets, lp_row(n_rows))])
        market = np.concatenate([market[order], a, a])
        by_market = np.lexsort((row, market))
        start = np.searchsorted(market[by_market], np.arange(n_markets + 1))
        row_start = n_plane + np.searchsorted(row[n_plane:], np.arange(int(n_rows) + 1))
        layout = cls(row=jnp.asarray(row, jnp.int32), market=jnp.asarray(market, jnp.int32),
                     by_market=jnp.asarray(by_market, jnp.int32), market_start=jnp.asarray(start, jnp.int32),
                     n_rows=int(n_rows), n_markets=int(n_markets), n_plane=n_plane,
                     row_start=jnp.asarray(row_start, jnp.int32))
        return layout, order

    # ---- sizes -----------------------------------------------------------------------
    @property
    def n_positions(self) -> int:
        """P: the list's length, the vault's and the LPs' ``2A`` slots included."""
        return self.row.shape[-1]

    @property
    def n_traders(self) -> int:
        """N: trader rows."""
        return self.n_rows - SYSTEM

    @property
    def n_trader_positions(self) -> int:
        """The traders' positions: the list without the vault's and the LPs' ``2A`` slots."""
        return self.n_positions - SYSTEM * self.n_markets

    @property
    def vault_slots(self) -> slice:
        """The vault's ``A`` positions (market order) in the list."""
        p, a = self.n_trader_positions, self.n_markets
        return slice(p, p + a)

    @property
    def lp_slots(self) -> slice:
        """The liquidity providers' ``A`` positions (market order) in the list."""
        p, a = self.n_positions, self.n_markets
        return slice(p - a, p)

    # ---- sums and gathers ------------------------------------------------------------
    def rows(self, x: Array) -> Array:
        """``Σ`` over each row's positions: [P] → [R] (the plane as it is, the rest a sorted segment sum)."""
        k = self.n_plane
        rest = jax.ops.segment_sum(x[k:], self.row[k:], self.n_rows, indices_are_sorted=True)
        return rest if k == 0 else rest + jnp.pad(x[:k], (0, self.n_rows - k))

    def any_rows(self, mask: Array) -> Array:
        """[P] bool → [R] bool: the row has a position where ``mask`` holds."""
        k = self.n_plane
        rest = jax.ops.segment_max(mask[k:].astype(jnp.int8), self.row[k:], self.n_rows, indices_are_sorted=True) > 0
        return rest if k == 0 else rest | jnp.pad(mask[:k], (0, self.n_rows - k))

    def markets(self, x: Array) -> Array:
        """``Σ`` over each market's positions: [P] → [A]."""
        return jax.ops.segment_sum(x, self.market, self.n_markets)

    def any_markets(self, mask: Array) -> Array:
        """[P] bool → [A] bool: the market has a position where ``mask`` holds."""
        return jax.ops.segment_max(mask.astype(jnp.int8), self.market, self.n_markets) > 0

    def positions_of(self, rows: Array, real: Array, k: int) -> tuple[Array, Array, Array]:
        """The first ``k`` (static) positions of ``rows`` [K] (ascending; ``real`` [K] bool marks the rows
        that count), in row order, found from :attr:`row_start` without a pass over the list.

        Returns ``(index [k], real [k] bool, which [k])``: each one's place in the list, whether it is one
        (False past the rows' positions), and the index into ``rows`` of its row. ``O(k + K)``.
        """
        first = self.row_start[rows]
        count = jnp.where(real, self.row_start[rows + 1] - first + (rows < self.n_plane), 0)       # [K]
        end = jnp.cumsum(count)
        j = jnp.arange(k, dtype=end.dtype)
        which = jnp.minimum(jnp.searchsorted(end, j, side="right"), rows.shape[-1] - 1)            # [k]
        offset = j - (end[which] - count[which])
        r = rows[which]
        in_plane = r < self.n_plane
        index = jnp.where(in_plane & (offset == 0), r, first[which] + offset - in_plane)
        return index, j < end[-1], which

    def at_row(self, v: Array) -> Array:
        """A row's value at each of its positions: [R] → [P]."""
        k = self.n_plane
        return v[self.row] if k == 0 else jnp.concatenate([v[:k], v[self.row[k:]]])

    def at_market(self, v: Array) -> Array:
        """A market's value at each of its positions: [A] → [P]."""
        return v[self.market]

    def is_vault(self) -> Array:
        """[P] bool: the vault's slots."""
        i = jnp.arange(self.n_positions)
        return (i >= self.vault_slots.start) & (i < self.vault_slots.stop)

    def is_trader(self) -> Array:
        """[P] bool: the traders' positions."""
        return jnp.arange(self.n_positions) < self.vault_slots.start

    def vault(self, x: Array) -> Array:
        """The vault's values by market: [..., P] → [..., A]."""
        return x[..., self.vault_slots]

    def lp(self, x: Array) -> Array:
        """The liquidity providers' values by market: [..., P] → [..., A]."""
        return x[..., self.lp_slots]

    def with_system(self, x: Array, vault: Array | None = None, lp: Array | None = None) -> Array:
        """``x`` [P] with the vault's and/or the LPs' slots replaced by [A] values."""
        if vault is not None:
            x = x.at[self.vault_slots].set(vault)
        if lp is not None:
            x = x.at[self.lp_slots].set(lp)
        return x

    def market_cumsum(self, x: Array) -> Array:
        """[P]: the running sum of ``x`` over each market's positions in row order, inclusive.

        A segmented scan over the positions in market order: each market's sum starts at its
        own first position, so its rounding is that of its own terms only.
        """
        xs = x[self.by_market]
        first = jnp.zeros(xs.shape, bool).at[self.market_start[:-1]].set(True, mode="drop")

        def combine(a, b):
            fa, va = a
            fb, vb = b
            return fa | fb, jnp.where(fb, vb, va + vb)

        _, ranked = lax.associative_scan(combine, (first, xs))
        return jnp.zeros_like(x).at[self.by_market].set(ranked, unique_indices=True)


def _flatten(lay: Layout):
    return ((lay.row, lay.market, lay.by_market, lay.market_start, lay.row_start),
            (lay.n_rows, lay.n_markets, lay.n_plane))


def _unflatten(meta, children):
    row, market, by_market, market_start, row_start = children
    n_rows, n_markets, n_plane = meta
    return Layout(row=row, market=market, by_market=by_market, market_start=market_start, n_rows=n_rows,
                  n_markets=n_markets, n_plane=n_plane, row_start=row_start)


jax.tree_util.register_pytree_node(Layout, _flatten, _unflatten)
