"""Prototype of a position-form engine step: what it reaches on this CPU, and what bounds it.

The engine keeps its book as dense [rows, markets] arrays; this script measures a book that is a
fixed-shape list of positions instead (per position: account row, market, size, entry; per row: cash
and the end of its cooldown; padded to a capacity), with every stage per position and segment sums
to rows and markets, so that work grows with positions, not rows × markets. It is a prototype of the
data layout and the passes, not the engine's rules: the stages do the gathers, segment sums and
scatters that the real ones would, with simplified settlement (see each stage's docstring).

What it measures, for a venue-scale book (200k accounts, 180 markets, 1–3 positions an account with
Zipf-like market popularity, ~305k positions) and 64 scenarios, float32, one JAX device:

- a calm step (the margin check; the later stages skipped by a batch-level while loop, as
  ``adljax.engine.waterfall`` does), a calm hour (600 one-second steps, in which some blocks have a
  liquidatable row and run the later stages on the whole book), and a crash step (liquidation, backstop
  and ADL every step);
- position orders: by account (``account``: row ids sorted, sums to rows by segment sum), by market,
  side and account (``market``: market/segment ids sorted), and ``slotsK``: each row's first K
  positions in K planes of R slots (sums to rows are adds of the planes, fused by XLA) and the rest in
  an overflow list (a segment sum);
- two batch forms: ``minor``, the scenario axis last ([P, B] arrays, written by hand, so a segment
  sum adds a contiguous vector of B scenarios per position), and ``vmap`` ([B, P], stages vmapped);
- blocks of scenarios run one after another (``lax.map``) or all at once;
- XLA's cost analysis of one step (bytes per position·step) and the bandwidth that implies;
- the ADL ranking by a radix select (4 passes of 8 bits: exact; 2 passes: 16-bit buckets shared pro
  rata), pro rata (no ranking), or a sort of each scenario's positions; channels summed one array at a
  time or stacked;
- the same calm margin check over the dense [S, R, A] grid at a smaller size, for the ratio.

    python benchmarks/prototype_positions.py                 # the full set (~15 min on 2 cores)
    python benchmarks/prototype_positions.py --quick         # a smoke run at 20k accounts (~2 min)
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import statistics
import subprocess
import time
from functools import partial
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

F32 = jnp.float32


# ----------------------------------------------------------------------------------------------------------------
# The book (NumPy) and the price paths (jax.random, new-style keys)
# ----------------------------------------------------------------------------------------------------------------

def market_tables(n_markets: int):
    """Start prices, maximum leverage and a two-tier margin table per market, in popularity order.

    Tier 0 rate ``r0 = 1/(2·max_leverage)``; above ``bound`` USD of notional the rate doubles
    (``r1 = 2·r0``), as Hyperliquid's tables halve the leverage: BTC 40× to $150M, ETH 25× to $100M,
    SOL/XRP 20× to $70M, the next 20 markets 10× to $20M, the rest 5× to $3M.
    """
    a = np.arange(n_markets)
    price = np.geomspace(60_000.0, 0.05, n_markets)
    lev = np.select([a == 0, a == 1, a < 4, a < 24], [40.0, 25.0, 20.0, 10.0], 5.0)
    bound = np.select([a == 0, a == 1, a < 4, a < 24], [150e6, 100e6, 70e6, 20e6], 3e6)
    r0 = 1.0 / (2.0 * lev)
    return price, lev, r0, r0, bound        # r1 − r0 = r0


def build_book(n_accounts: int, n_markets: int, layout: str, seed: int = 0, zipf: float = 1.2,
               vault_cash: float = 1e7):
    """A venue-like position book as NumPy arrays, ordered by ``layout`` and padded to a capacity.

    Each account holds 1, 2 or 3 positions (60/27/13 %) in distinct markets drawn with probability
    ∝ 1/rank^zipf (Gumbel top-k), notional lognormal around $3k, 55 % long; its cash puts its
    account value at a margin ratio AV/MR drawn log-uniformly from 1.5 to 30. The liquidity
    providers hold the other side of every market (zero sum); the vault starts flat with ``vault_cash``
    ($10M, small for the book, so that in a crash it runs out of room and ADL runs in most steps).
    ``layout``: ``"account"`` sorts positions by (account, market), ``"market"`` by (market, side,
    account); ``"slotsK"`` puts each row's first K positions in K planes of R slots and the rest in an
    overflow list. Padding positions have size 0 (and point at the last row and market, or their slot's row).
    """
    rng = np.random.default_rng(seed)
    price, lev, r0, dr, bound = market_tables(n_markets)
    k = rng.choice([1, 2, 3], size=n_accounts, p=[0.60, 0.27, 0.13])
    logw = -zipf * np.log1p(np.arange(n_markets))
    rows, mkts = [], []
    chunk = 20_000
    for lo in range(0, n_accounts, chunk):
        hi = min(n_accounts, lo + chunk)
        g = logw[None, :] + rng.gumbel(size=(hi - lo, n_markets))
        top = np.argsort(-g, axis=1)[:, :3]
        kk = k[lo:hi]
        take = np.arange(3)[None, :] < kk[:, None]
        rows.append(np.broadcast_to(np.arange(lo, hi)[:, None], take.shape)[take])
        mkts.append(top[take])
    row = np.concatenate(rows).astype(np.int32)
    mkt = np.concatenate(mkts).astype(np.int32)
    n_pos = row.size
    notional = np.minimum(np.exp(rng.normal(np.log(3_000.0), 1.8, n_pos)), 5e7)
    long = rng.random(n_pos) < 0.55
    size = np.where(long, 1.0, -1.0) * notional / price[mkt]
    entry = price[mkt] * np.exp(rng.normal(0.0, 0.02, n_pos))
    upnl = size * (price[mkt] - entry)
    req = notional * r0[mkt] + dr[mkt] * np.maximum(notional - bound[mkt], 0.0)
    mr_row = np.bincount(row, req, n_accounts)
    upnl_row = np.bincount(row, upnl, n_accounts)
    ratio = np.exp(rng.uniform(np.log(1.5), np.log(30.0), n_accounts))
    cash = ratio * mr_row - upnl_row
    side = np.where(long, 0, 1).astype(np.int32)
    if layout.startswith("slots"):
        # Slot k of row r at k·R + r for each row's first K positions (by market), the rest after them in
        # row order (the overflow, padded to a capacity); empty slots hold size 0.
        n_slots = int(layout[5:])
        by_row = np.lexsort((mkt, row))
        r_sorted = row[by_row]
        first = np.searchsorted(r_sorted, np.arange(n_accounts))
        rank = np.empty(n_pos, np.int64)
        rank[by_row] = np.arange(n_pos) - first[r_sorted]
        in_slot = rank < n_slots
        over = by_row[~in_slot[by_row]]
        o_cap = 0 if over.size == 0 else -(-int(over.size * 1.02) // 4096) * 4096
        cap = n_slots * n_accounts + o_cap
        place = np.full(cap, -1, np.int64)
        place[(rank * n_accounts + row)[in_slot]] = np.flatnonzero(in_slot)
        place[n_slots * n_accounts:n_slots * n_accounts + over.size] = over
        empty_row = np.concatenate([np.tile(np.arange(n_accounts), n_slots), np.full(o_cap, n_accounts - 1)])

        def padded(x, fill):
            return np.where(place >= 0, x[np.maximum(place, 0)], fill).astype(x.dtype)
        row_all = np.where(place >= 0, row[np.maximum(place, 0)], empty_row).astype(np.int32)
    else:
        order = np.lexsort((mkt, row)) if layout == "account" else np.lexsort((row, side, mkt))
        cap = -(-int(n_pos * 1.02) // 4096) * 4096          # capacity: 2 % headroom, a multiple of 4096
        pad = cap - n_pos

        def padded(x, fill):
            return np.concatenate([x[order], np.full(pad, fill, x.dtype)])
        row_all = padded(row, n_accounts - 1)
    lp_size = -np.bincount(mkt, size, n_markets)
    book = dict(
        row=row_all, mkt=padded(mkt, n_markets - 1), side=padded(side, 1),
        size=padded(size, 0.0).astype(np.float32), entry=padded(entry, 0.0).astype(np.float32),
        cash=cash.astype(np.float32), price=price.astype(np.float32),
        r0=r0.astype(np.float32), dr=dr.astype(np.float32), bound=bound.astype(np.float32),
        sys_size=np.stack([np.zeros(n_markets), lp_size]).astype(np.float32),        # [vault, LP] × markets
        sys_entry=np.stack([price, price]).astype(np.float32),
        sys_cash=np.array([vault_cash, 1e12], np.float32),
        oi=np.bincount(mkt, notional, n_markets).astype(np.float32),
    )
    book["seg"] = (book["mkt"] * 2 + book["side"]).astype(np.int32)
    book["n_positions"] = n_pos
    book["orow"] = book["row"][int(layout[5:]) * n_accounts:] if layout.startswith("slots") else book["row"][:0]
    counts = np.bincount(book["seg"], minlength=2 * n_markets)
    book["seg_start"] = np.concatenate([[0], np.cumsum(counts)[:-1]]).astype(np.int32)
    return book


def make_paths(key, price, oi, n_scenarios: int, n_steps: int, kind: str):
    """Oracle and depth [S, T, A] float32. ``calm``: 1-s steps at 60 % a year, depth 5 % of open interest
    a step. ``crash``: a common fall of 25 % (alts 1.5× the majors) over the path with 0.3 % a step of
    noise, and depth 0.2 % of open interest a step."""
    a = price.shape[0]
    k1, k2 = jax.random.split(key)
    beta = jnp.where(jnp.arange(a) < 4, 1.0, 1.5)
    if kind == "calm":
        sig, mu, depth_share = 0.6 / np.sqrt(365 * 86_400.0), 0.0, 0.05
    else:
        sig, mu, depth_share = 3e-3, np.log(0.75) / n_steps, 2e-3
    zf = jax.random.normal(k1, (n_scenarios, n_steps, 1), F32)
    zi = jax.random.normal(k2, (n_scenarios, n_steps, a), F32)
    ret = beta * (mu + sig * zf) + sig * zi
    oracle = jnp.asarray(price) * jnp.exp(jnp.cumsum(ret, axis=1))
    depth = jnp.broadcast_to(depth_share * jnp.asarray(oi), oracle.shape)
    return oracle.astype(F32), depth.astype(F32)


# ----------------------------------------------------------------------------------------------------------------
# Static configuration and rule numbers
# ----------------------------------------------------------------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class Config:
    """Every number and choice that shapes the compiled program (static)."""

    rows: int
    markets: int
    positions: int
    layout: str = "account"          # "account", "market" (position lists) or "slotsK" (K planes + overflow)
    mode: str = "minor"              # "minor": [P, B] arrays; "vmap": [B, P], stages vmapped
    block: int = 8                   # scenarios run together through the scan
    stages: tuple = ("margin", "liquidation", "backstop", "adl")
    force: bool = False              # run every stage every step (no batch-level skip)
    adl: str = "radix4"              # "radix4", "radix2", "pro_rata" or "sort"
    row_block: int = 1024            # rows per block of the backstop's two-level running sum
    stack: bool = False              # sum (gather) several arrays to (from) rows as one stacked array

    @property
    def slots(self) -> int:
        """K for the ``slotsK`` layouts (each row's first K positions in K planes of R), else 0."""
        return int(self.layout[5:]) if self.layout.startswith("slots") else 0


# Rule numbers (Hyperliquid-like), plain floats: the prototype does not differentiate or vmap them.
DT, HALF_LIFE, IMPACT = 1.0, 60.0, 0.5
THRESHOLD, PARTIAL, COOLDOWN, FEE, SLIPPAGE, BACKSTOP_RATIO = 1e5, 0.2, 30.0, 0.005, 0.01, 2.0 / 3.0


# ----------------------------------------------------------------------------------------------------------------
# Helpers; every array is [leading, *batch] with the scenario axis trailing (minor) or absent (under vmap)
# ----------------------------------------------------------------------------------------------------------------

def col(x, like):
    """``x`` [N] reshaped to broadcast against ``like`` [N, *batch]."""
    return x.reshape(x.shape + (1,) * (like.ndim - x.ndim))


def segsum(data, ids, n: int, is_sorted: bool):
    return jax.ops.segment_sum(data, ids, n, indices_are_sorted=is_sorted)


def requirement(ntl, mkt, tb):
    """Two-tier maintenance requirement of positions of notional ``ntl``: N·r0 + (r1 − r0)·max(N − b, 0)."""
    return ntl * col(tb["r0"][mkt], ntl) + col(tb["dr"][mkt], ntl) * jnp.maximum(ntl - col(tb["bound"][mkt], ntl), 0.0)


def order_key(score):
    """uint32 with the order of the float32 ``score`` (NaN-free)."""
    b = lax.bitcast_convert_type(jnp.where(score == 0, jnp.zeros_like(score), score), jnp.uint32)
    negative = (b >> 31) != 0
    return jnp.where(negative, ~b, b | jnp.uint32(1 << 31))


def histogram(w, bins, n_bins: int, match=None):
    """Σ w into [n_bins, *batch] at ``bins`` [P, *batch] where ``match``.

    The bin differs per scenario, so the scenario-minor form scatters one flat array of P·B elements.
    Positions that do not match get an index past the end, which the scatter drops (so ``w`` is read as
    it is, with no masked copy a pass).
    """
    if w.ndim == 1:
        return jax.ops.segment_sum(w, bins if match is None else jnp.where(match, bins, n_bins), n_bins)
    b = int(np.prod(w.shape[1:]))
    idx = bins * b + jnp.arange(b, dtype=jnp.int32).reshape(w.shape[1:])
    if match is not None:
        idx = jnp.where(match, idx, n_bins * b)
    return jax.ops.segment_sum(w.reshape(-1), idx.reshape(-1), n_bins * b).reshape((n_bins,) + w.shape[1:])


def suffix_sum_bins(h):
    """Σ over bins ≥ d, for h [S, 256, *batch], as two 16-wide triangular products."""
    s = h.shape[0]
    h4 = h.reshape((s, 16, 16) + h.shape[2:])
    lower = jnp.tril(jnp.ones((16, 16), h.dtype))                   # lower[j, i] = 1 where j ≥ i
    within = jnp.einsum("scj...,ji->sci...", h4, lower)            # Σ over digits ≥ i within chunk c
    totals = within[:, :, 0]                                         # [S, 16, *b] each chunk's total
    strict = jnp.tril(jnp.ones((16, 16), h.dtype), -1)              # strict[j, i] = 1 where j > i
    later = jnp.einsum("sj...,ji->si...", totals, strict)            # Σ over chunks after c
    return (within + later[:, :, None]).reshape(h.shape)


def swap_sides(x, n_markets: int):
    """Per (market, side) [2A, *b] -> the other side's value: longs (2a) are served by shorts (2a + 1)."""
    return x.reshape((n_markets, 2) + x.shape[1:])[:, ::-1].reshape(x.shape)


def radix_take(key, w, bank_units, bankrupt, seg, n_markets: int, passes: int):
    """ADL allocation by a radix select of each queue's cut-off key; returns (taken, need_own, total).

    ``w`` [P, *b] what each candidate can give, ``bank_units`` what each bankrupt position must close
    (the two are never both non-zero), ``seg`` [P] the position's (market, side). The first pass
    histograms the top 8 bits of the candidates' keys per segment, and the bankrupt units into a second
    set of segments, so one scatter gives every segment's need and capacity; each later pass histograms
    the next 8 bits of the candidates that share the prefix chosen so far, and picks per segment the
    digit where the running sum from the top reaches what is still needed. Candidates above the cut-off
    give all of ``w``; those in the cut-off's bucket share the rest pro rata: the exact queue order with
    4 passes (32 bits), 16-bit buckets with 2.
    """
    n_seg = 2 * n_markets
    segb = col(seg, w)
    digit = ((key >> 24) & 0xFF).astype(jnp.int32)
    bins = jnp.where(bankrupt, (segb + n_seg) * 256, segb * 256 + digit)
    h0 = histogram(w + bank_units, bins, 2 * n_seg * 256).reshape((2, n_seg, 256) + w.shape[1:])
    need_own = jnp.sum(h0[1], axis=1)
    h = h0[0]
    total = jnp.sum(h, axis=1)
    need = swap_sides(need_own, n_markets)
    rem = jnp.minimum(need, total)
    prefix = jnp.zeros(need.shape, jnp.uint32)
    for j in range(passes):
        if j:
            shift = 32 - 8 * (j + 1)
            digit = ((key >> shift) & 0xFF).astype(jnp.int32)
            match = ~bankrupt & ((key >> (shift + 8)) == prefix[seg])
            h = histogram(w, segb * 256 + digit, n_seg * 256, match).reshape((n_seg, 256) + w.shape[1:])
        incl = suffix_sum_bins(h)
        d = jnp.clip(jnp.sum(incl >= rem[:, None], axis=1) - 1, 0, 255)   # where the running sum reaches rem
        at = lambda x: jnp.take_along_axis(x, d[:, None], axis=1)[:, 0]
        h_cut = at(h)
        rem = rem - (at(incl) - h_cut)
        prefix = (prefix << 8) | d.astype(jnp.uint32)
    top = key >> (32 - 8 * passes)
    cut = prefix[seg]
    share = jnp.where(h_cut > 0, jnp.clip(rem / jnp.where(h_cut > 0, h_cut, 1.0), 0.0, 1.0), 0.0)
    taken = jnp.where(top > cut, w, jnp.where(top == cut, w * share[seg], 0.0))
    taken = jnp.where((need >= total)[seg], w, taken)
    return jnp.where(need[seg] > 0, taken, 0.0), need_own, total


def sort_take(key, w, seg, need, seg_start):
    """The queue by sorting each scenario's positions by (segment, key descending) and a segmented running
    sum over the sorted order (the straightforward form :func:`radix_take` replaces)."""
    p = w.shape[0]
    seg_b = jnp.broadcast_to(col(seg, w), w.shape)
    idx = jnp.broadcast_to(col(jnp.arange(p, dtype=jnp.int32), w), w.shape)
    seg_s, _, ws, perm = lax.sort((seg_b, ~key, w, idx), dimension=0, num_keys=2)
    cum = jnp.cumsum(ws, axis=0)
    start = seg_start[seg_s]                                          # each segment's first sorted place
    base = jnp.where(start > 0, jnp.take_along_axis(cum, jnp.maximum(start - 1, 0), axis=0), 0.0)
    before = cum - ws - base
    taken_sorted = jnp.clip(jnp.take_along_axis(need, seg_s, axis=0) - before, 0.0, ws)
    if w.ndim == 1:
        return jnp.zeros_like(w).at[perm].set(taken_sorted)
    return jnp.zeros_like(w).at[perm, jnp.arange(w.shape[1])[None, :]].set(taken_sorted)


def trade(size, entry, units, price):
    """A system row's position [A] after adding ``units`` at ``price``: (size, entry, realised cash)."""
    new = size + units
    grows = size * units >= 0
    closed = jnp.minimum(jnp.abs(units), jnp.abs(size))
    realised = jnp.where(grows, 0.0, closed * jnp.sign(size) * (price - entry))
    safe = jnp.where(new != 0, new, 1.0)
    avg = (size * entry + units * price) / safe
    new_entry = jnp.where(grows, jnp.where(new != 0, avg, price),
                          jnp.where(jnp.abs(units) > jnp.abs(size), price, entry))
    return new, new_entry, jnp.sum(realised, axis=0)


# ----------------------------------------------------------------------------------------------------------------
# Rows <-> positions: the one place where the layouts differ
# ----------------------------------------------------------------------------------------------------------------

def rows_to_positions(x, tb, cfg: Config):
    """Each position's value of its row's ``x`` [R, ...]: a gather (lists), or K copies of ``x`` and a gather
    for the overflow (slots)."""
    if not cfg.slots:
        return x[tb["row"]]
    return jnp.concatenate([x] * cfg.slots + [x[tb["orow"]]], axis=0)


def positions_to_rows(d, tb, cfg: Config):
    """Σ over each row's positions of ``d`` [P, ...]: a segment sum (lists), or the sum of the K slot planes
    (an elementwise add that XLA fuses with what computes ``d``) and a scatter-add of the overflow (slots)."""
    if not cfg.slots:
        return segsum(d, tb["row"], cfg.rows, cfg.layout == "account")
    r = cfg.rows
    base = d[:r]
    for k in range(1, cfg.slots):
        base = base + d[k * r:(k + 1) * r]
    if d.shape[0] == cfg.slots * r:
        return base
    return base.at[tb["orow"]].add(d[cfg.slots * r:], indices_are_sorted=True)


def to_rows(ds, tb, cfg: Config):
    """:func:`positions_to_rows` of each of ``ds`` ([P, *b] each): one segment sum per array, or with
    ``cfg.stack`` one of the arrays stacked (XLA builds the stack in a slow concatenate fusion)."""
    if cfg.stack:
        out = positions_to_rows(jnp.stack(ds, axis=1), tb, cfg)
        return [out[:, i] for i in range(len(ds))]
    return [positions_to_rows(d, tb, cfg) for d in ds]


def to_positions(xs, tb, cfg: Config):
    """:func:`rows_to_positions` of each of ``xs`` ([R, *b] each), one gather each (or stacked, ``cfg.stack``)."""
    if cfg.stack:
        out = rows_to_positions(jnp.stack(xs, axis=1), tb, cfg)
        return [out[:, i] for i in range(len(xs))]
    return [rows_to_positions(x, tb, cfg) for x in xs]


def per_segment(d, tb, cfg: Config):
    """Σ of ``d`` [P, ...] per (market, side) segment, [2A, ...]."""
    return segsum(d, tb["seg"], 2 * cfg.markets, cfg.layout == "market")


def row_order_limit(contrib, slack, block: int):
    """[*b]: the vault takes rows ``< limit``: candidates in row order while ``slack + running Σ contrib ≥ 0``.

    ``contrib`` [R, *b] ≤ 0, so the running sum only falls and the rows taken are a prefix. No running sum
    over all rows: block totals (a fused reduction), a running sum of the R/block totals, then a running sum
    within the one block where the vault's room runs out.
    """
    n = contrib.shape[0]
    pad = (-n) % block
    cb = jnp.pad(contrib, [(0, pad)] + [(0, 0)] * (contrib.ndim - 1)).reshape(((n + pad) // block, block)
                                                                               + contrib.shape[1:])
    run = jnp.cumsum(jnp.sum(cb, axis=1), axis=0)                      # [n_blocks, *b]
    c = jnp.sum(slack + run >= 0, axis=0)                              # whole blocks taken
    before = jnp.where(c > 0, jnp.take_along_axis(run, jnp.maximum(c - 1, 0)[None], axis=0)[0], 0.0)
    ci = jnp.minimum(c, cb.shape[0] - 1)
    one = jnp.take_along_axis(cb, jnp.broadcast_to(ci[None, None], (1, block) + ci.shape), axis=0)[0]
    f = jnp.sum(slack + before + jnp.cumsum(one, axis=0) >= 0, axis=0)
    return c * block + f


def system_values(st, mark, tb):
    """(AV, MR) of the vault ([*b] each)."""
    size, entry = st["sys_size"][0], st["sys_entry"][0]
    ntl = jnp.abs(size) * mark
    req = ntl * col(tb["r0"], ntl) + col(tb["dr"], ntl) * jnp.maximum(ntl - col(tb["bound"], ntl), 0.0)
    return st["sys_cash"][0] + jnp.sum(size * (mark - entry), axis=0), jnp.sum(req, axis=0)


# ----------------------------------------------------------------------------------------------------------------
# Stages (one scenario under vmap, or a block with the scenario axis last)
# ----------------------------------------------------------------------------------------------------------------

def margin(st, mk, tb, cfg: Config):
    """(AV, MR) [R, *b]: per position mark, unrealised PnL and tiered requirement, summed to rows."""
    mp = mk["mark"][tb["mkt"]]
    ntl = jnp.abs(st["size"]) * mp
    upnl = st["size"] * (mp - st["entry"])
    upnl_r, req_r = to_rows([upnl, requirement(ntl, tb["mkt"], tb)], tb, cfg)
    return st["cash"] + upnl_r, req_r


def liquidatable(av, mr):
    return (mr > 0) & (av < mr)


def liquidation(st, av, mr, mk, tb, cfg: Config):
    """Orders of liquidatable rows (20 % of positions over $100k outside a cooldown, else whole), summed per
    market and side (a position's side never changes: sizes only shrink), filled pro rata up to the depth
    at one price with slippage; fills move to the LPs. Rows to positions once, one segment sum to
    (market, side), positions to rows once (cash, AV change, requirement after, cooldown). Returns the new
    state and the rows' AV and MR after."""
    mkt, seg = tb["mkt"], tb["seg"]
    mark, depth = mk["mark"], mk["depth"]
    mp = mark[mkt]
    size, entry = st["size"], st["entry"]
    excess, cool_until = to_positions([av - mr, st["cool_until"]], tb, cfg)
    ready = (excess < 0) & (size != 0)                 # the row is liquidatable (and this position is open)
    cooling = cool_until > mk["t"]
    ntl = jnp.abs(size) * mp
    big = ready & ~cooling & (ntl > THRESHOLD)
    q = jnp.where(ready, size * jnp.where(big, PARTIAL, 1.0), 0.0)
    orders = per_segment(jnp.abs(q), tb, cfg).reshape((cfg.markets, 2) + mark.shape[1:])   # units: sells, buys
    req_s, req_b = orders[:, 0] * mark, orders[:, 1] * mark
    safe_depth = jnp.where(depth > 0, depth, 1.0)
    phi_s = jnp.where(req_s > 0, jnp.minimum(1.0, depth / jnp.where(req_s > 0, req_s, 1.0)), 0.0)
    phi_b = jnp.where(req_b > 0, jnp.minimum(1.0, depth / jnp.where(req_b > 0, req_b, 1.0)), 0.0)
    p_s = mark * (1.0 - SLIPPAGE * phi_s * req_s / (2.0 * safe_depth))
    p_b = mark * (1.0 + SLIPPAGE * phi_b * req_b / (2.0 * safe_depth))
    per_seg = jnp.stack([jnp.stack([phi_s, phi_b], axis=1), jnp.stack([p_s, p_b], axis=1)], axis=1)
    fp = per_seg.reshape((cfg.markets, 2, 2) + mark.shape[1:]).swapaxes(1, 2).reshape(
        (2 * cfg.markets, 2) + mark.shape[1:])[seg]                                # [P, 2, *b]: fill share, price
    fill = q * fp[:, 0]
    price = fp[:, 1]
    new_size = size - fill
    fee = FEE * jnp.abs(fill) * mp
    dcash, dav, mr_after, n_big = to_rows([fill * (price - entry) - fee, fill * (price - mp) - fee,
                                           requirement(jnp.abs(new_size) * mp, mkt, tb), big.astype(F32)], tb, cfg)
    units_s, units_b = phi_s * orders[:, 0], phi_b * orders[:, 1]
    lp_size, lp_entry, c1 = trade(st["sys_size"][1], st["sys_entry"][1], units_s, p_s)
    lp_size, lp_entry, c2 = trade(lp_size, lp_entry, -units_b, p_b)
    filled_s, filled_b = phi_s * req_s, phi_b * req_b
    fees = FEE * jnp.sum(filled_s + filled_b, axis=0)
    new = dict(st)
    new.update(
        size=new_size, cash=st["cash"] + dcash,
        cool_until=jnp.where(n_big > 0, mk["t"] + COOLDOWN, st["cool_until"]),
        sys_size=st["sys_size"].at[1].set(lp_size), sys_entry=st["sys_entry"].at[1].set(lp_entry),
        sys_cash=st["sys_cash"] + jnp.stack([fees, c1 + c2]),
        impact=st["impact"] + IMPACT * (filled_b - filled_s) / safe_depth,
        liq_notional=st["liq_notional"] + jnp.sum(filled_s + filled_b, axis=0),
    )
    return new, av + dav, mr_after


def backstop(st, av, mr, mk, tb, cfg: Config):
    """The vault takes over rows below 2/3 of their requirement, in row order, while its own AV stays
    above its MR (the MR of what it takes counted as the rows' MR): a two-level running sum over rows
    (:func:`row_order_limit`), rows to positions once, one segment sum per (market, side) of the sizes it
    takes (at mark); the rows' value goes to its cash."""
    mark = mk["mark"]
    cand = (mr > 0) & (av < BACKSTOP_RATIO * mr)
    v_av, v_mr = system_values(st, mark, tb)
    limit = row_order_limit(jnp.where(cand, av - mr, 0.0), v_av - v_mr, cfg.row_block)
    take = cand & (col(jnp.arange(cfg.rows), av) < limit)
    taken_pos = rows_to_positions(take, tb, cfg)
    by_side = per_segment(jnp.where(taken_pos, jnp.abs(st["size"]), 0.0), tb, cfg)
    by_side = by_side.reshape((cfg.markets, 2) + by_side.shape[1:])
    units = by_side[:, 0] - by_side[:, 1]                                         # longs − shorts per market
    v_size, v_entry, c = trade(st["sys_size"][0], st["sys_entry"][0], units, mark)
    value = jnp.sum(jnp.where(take, av, 0.0), axis=0)
    new = dict(st)
    new.update(
        size=jnp.where(taken_pos, 0.0, st["size"]), cash=jnp.where(take, 0.0, st["cash"]),
        sys_size=st["sys_size"].at[0].set(v_size), sys_entry=st["sys_entry"].at[0].set(v_entry),
        sys_cash=st["sys_cash"].at[0].add(value + c),
        backstop_notional=st["backstop_notional"] + jnp.sum(jnp.abs(units) * mark, axis=0),
    )
    return new, jnp.where(take, 0.0, av), jnp.where(take, 0.0, mr)


def adl(st, av, mr, mk, tb, cfg: Config):
    """Rows with a position and AV < 0 are closed against the other side of each market at the previous
    mark, counterparties taken from the top of a per-(market, side) queue ranked by Hyperliquid's score
    ``(mark/entry)·(notional/AV)`` (``cfg.adl``: radix select, sort, or pro rata without a ranking).
    Rows to positions once, the ranking (whose first pass also gives each segment's need and capacity),
    positions to rows once (the cash the closes realise)."""
    mkt, seg = tb["mkt"], tb["seg"]
    mp = mk["mark"][mkt]
    size, entry = st["size"], st["entry"]
    avp = rows_to_positions(av, tb, cfg)
    bankrupt = (avp < 0) & (size != 0)                 # the row is bankrupt (and this position is open)
    absz = jnp.abs(size)
    w = jnp.where(~bankrupt & (avp >= 0), absz, 0.0)
    bank_units = jnp.where(bankrupt, absz, 0.0)
    long = col(tb["side"] == 0, size)
    lev = absz * mp / jnp.where(avp > 0, avp, 1.0)
    score = jnp.where(avp > 0, jnp.where(long, mp / jnp.where(entry > 0, entry, 1.0), entry / mp) * lev, jnp.inf)
    if cfg.adl in ("radix4", "radix2"):
        taken, need_own, total = radix_take(order_key(score), w, bank_units, bankrupt, seg, cfg.markets,
                                            4 if cfg.adl == "radix4" else 2)
    else:
        total, need_own = per_segment(w, tb, cfg), per_segment(bank_units, tb, cfg)
        need = swap_sides(need_own, cfg.markets)
        if cfg.adl == "sort":
            taken = sort_take(order_key(score), w, seg, need, tb["seg_start"])
        else:
            frac = jnp.where(total > 0, jnp.minimum(need, total) / jnp.where(total > 0, total, 1.0), 0.0)
            taken = w * frac[seg]
    avail = swap_sides(total, cfg.markets)
    frac_b = jnp.where(need_own > 0, jnp.minimum(need_own, avail) / jnp.where(need_own > 0, need_own, 1.0), 0.0)
    closed = jnp.where(bankrupt, absz * frac_b[seg], taken)
    signed = jnp.where(long, closed, -closed)
    price = mk["prev_mark"][mkt]
    dcash = positions_to_rows(signed * (price - entry), tb, cfg)
    closed_units = jnp.minimum(need_own, avail).reshape((cfg.markets, 2) + need_own.shape[1:]).sum(axis=1)
    new = dict(st)
    new.update(size=size - signed, cash=st["cash"] + dcash,
               adl_notional=st["adl_notional"] + jnp.sum(closed_units * mk["prev_mark"], axis=0))
    return new, av, mr


STAGES = {"liquidation": liquidation, "backstop": backstop, "adl": adl}


def stage_needed(name, av, mr, st, mk, tb):
    """[*b] bool per scenario: the cheap test that decides whether a stage runs."""
    has = mr > 0
    if name == "liquidation":
        return jnp.any(liquidatable(av, mr), axis=0)
    if name == "backstop":
        return jnp.any(has & (av < BACKSTOP_RATIO * mr), axis=0)
    return jnp.any(has & (av < 0), axis=0) | (system_values(st, mk["mark"], tb)[0] < 0)


# ----------------------------------------------------------------------------------------------------------------
# The step, the scan, the blocks
# ----------------------------------------------------------------------------------------------------------------

def run_once_if(pred, fn, state):
    """``fn(state)`` if ``pred`` (a batch-level scalar), else ``state``: a while loop run once or not at all,
    whose state is updated in place (a ``lax.cond`` copies it in and out)."""
    def body(c):
        return jnp.asarray(False), fn(c[1])
    return lax.while_loop(lambda c: c[0], body, (pred, state))[1]


def step(carry, x, tb, cfg: Config):
    """One step for a block of scenarios: clock and mark, margin check, then the later stages.

    The margin check's one test (some row liquidatable, or the vault below zero) decides, for the whole
    block, whether anything after it runs: a row below 2/3 of its requirement or below zero is below
    it too. Within, liquidation runs, then the backstop and ADL each in steps where some scenario of the
    block needs it. With ``cfg.force`` every stage runs every step. ``counts``: steps in which the
    liquidation, backstop and ADL ran, and steps with the test true.
    """
    st, counts = carry
    t, oracle, depth = x
    batched = cfg.mode == "vmap"
    vm = (lambda f: jax.vmap(f, in_axes=(0, 0, 0, 0, None))) if batched else (lambda f: f)
    st = dict(st)
    st["impact"] = st["impact"] * np.float32(2.0 ** (-DT / HALF_LIFE))
    mark = oracle * jnp.exp(st["impact"])
    tt = jnp.broadcast_to(t.astype(F32), st["adl_notional"].shape)
    mk = dict(mark=mark, prev_mark=st["prev_mark"], depth=depth, t=tt)
    if batched:
        av, mr = jax.vmap(lambda s, m: margin(s, m, tb, cfg))(st, mk)
    else:
        av, mr = margin(st, mk, tb, cfg)
    alarm = jnp.any(vm(lambda s_, a_, m_, k_, tb_: jnp.any(liquidatable(a_, m_), axis=0)
                       | (system_values(s_, k_["mark"], tb_)[0] < 0))(st, av, mr, mk, tb))
    counts = counts.at[3].add(alarm.astype(jnp.int32))
    later = [n for n in ("liquidation", "backstop", "adl") if n in cfg.stages]

    def stage(name, state):
        s, a, m, k, tables, c = state
        i = ("liquidation", "backstop", "adl").index(name)

        def apply(inner):
            s_, a_, m_, k_, tb_, c_ = inner
            s_, a_, m_ = vm(lambda s1, a1, m1, k1, t1: STAGES[name](s1, a1, m1, k1, t1, cfg))(s_, a_, m_, k_, tb_)
            return s_, a_, m_, k_, tb_, c_.at[i].add(1)
        if cfg.force or name == "liquidation":
            return apply(state)
        need = jnp.any(vm(lambda s_, a_, m_, k_, tb_: stage_needed(name, a_, m_, s_, k_, tb_))(s, a, m, k, tables))
        return run_once_if(need, apply, state)

    def waterfall(state):
        for name in later:
            state = stage(name, state)
        return state
    # The tables travel in the loops' state so that no work on them is hoisted out of a skipped stage.
    state = (st, av, mr, mk, tb, counts)
    if later:
        state = waterfall(state) if cfg.force else run_once_if(alarm, waterfall, state)
    st, counts = state[0], state[5]
    st["prev_mark"] = mark
    return (st, counts), None


def init_state(book, b: int, mode: str):
    """The block's starting state, every scenario from the same book."""
    def rep(x):
        x = jnp.asarray(x)
        return jnp.broadcast_to(x[None], (b,) + x.shape) if mode == "vmap" else jnp.broadcast_to(
            x[..., None], x.shape + (b,))
    zeros = jnp.zeros((b,), F32)
    a = book["price"].shape[0]
    return dict(size=rep(book["size"]), entry=rep(book["entry"]), cash=rep(book["cash"]),
                cool_until=rep(np.full(book["cash"].shape, -1.0, np.float32)),
                impact=rep(np.zeros(a, np.float32)), prev_mark=rep(book["price"]),
                sys_size=rep(book["sys_size"]), sys_entry=rep(book["sys_entry"]), sys_cash=rep(book["sys_cash"]),
                liq_notional=zeros, backstop_notional=zeros, adl_notional=zeros)


TABLE_KEYS = ("row", "orow", "mkt", "seg", "side", "r0", "dr", "bound", "seg_start")
BOOK_KEYS = ("size", "entry", "cash", "price", "sys_size", "sys_entry", "sys_cash")


def tables_of(book):
    tb = {k: jnp.asarray(book[k]) for k in TABLE_KEYS if k in book}
    return tb


@partial(jax.jit, static_argnames=("cfg",))
def simulate(tb, book, oracle, depth, cfg: Config):
    """Run ``cfg.block`` scenarios at a time through the scan (``lax.map`` over blocks); oracle/depth [S, T, A].

    Returns per-scenario sums (liquidated, backstop and ADL notional, vault cash) and, per block, the steps
    in which each later stage ran and those in which the margin check's test was true."""
    s, t, a = oracle.shape
    b = cfg.block
    nb = s // b

    def split(x):                         # [S, T, A] -> [nb, T, B, A] (vmap) or [nb, T, A, B] (minor)
        x = x.reshape(nb, b, t, a)
        return jnp.transpose(x, (0, 2, 1, 3) if cfg.mode == "vmap" else (0, 2, 3, 1))

    def one_block(xs):
        o, d = xs
        carry = (init_state(book, b, cfg.mode), jnp.zeros(4, jnp.int32))
        (st, counts), _ = lax.scan(lambda c, x: step(c, x, tb, cfg), carry, (jnp.arange(t), o, d))
        vault_cash = st["sys_cash"][:, 0] if cfg.mode == "vmap" else st["sys_cash"][0]
        return (jnp.stack([st["liq_notional"], st["backstop_notional"], st["adl_notional"], vault_cash]),
                counts)
    xs = (split(oracle), split(depth))
    if nb == 1:
        out, counts = one_block(jax.tree_util.tree_map(lambda x: x[0], xs))
        return out[None], counts[None]
    return lax.map(one_block, xs)


def one_step_cost(tb, book, oracle, depth, cfg: Config):
    """XLA's cost analysis (bytes accessed, flops) of one step of one block, compiled alone."""
    b = cfg.block
    st = init_state(book, b, cfg.mode)
    o = oracle[:b, 0]
    d = depth[:b, 0]
    if cfg.mode == "minor":
        o, d = o.T, d.T
    fn = jax.jit(lambda c, x: step(c, x, tb, cfg)[0])
    ca = fn.lower((st, jnp.zeros(4, jnp.int32)), (jnp.int32(0), o, d)).compile().cost_analysis()
    if isinstance(ca, (list, tuple)):
        ca = ca[0]
    return float(ca.get("bytes accessed", float("nan"))), float(ca.get("flops", float("nan")))


# ----------------------------------------------------------------------------------------------------------------
# The dense [S, R, A] margin check, for the ratio
# ----------------------------------------------------------------------------------------------------------------

def dense_grid(book, n_rows: int, n_markets: int):
    size = np.zeros((n_rows, n_markets), np.float32)
    entry = np.zeros((n_rows, n_markets), np.float32)
    n = book["n_positions"]
    order = np.argsort(book["row"][:n], kind="stable")
    r, m = book["row"][:n][order], book["mkt"][:n][order]
    size[r, m] = book["size"][:n][order]
    entry[r, m] = book["entry"][:n][order]
    return size, entry


@jax.jit
def dense_calm(size, entry, cash, r0, dr, bound, oracle):
    """The calm margin check over the dense grid: [S, R, A] per step, a sum over markets, the any()."""
    def body(c, o):
        mark = o[:, None, :]                                                # [S, 1, A]
        ntl = jnp.abs(size) * mark                                          # size, entry [S, R, A]
        req = ntl * r0 + dr * jnp.maximum(ntl - bound, 0.0)
        av = cash + jnp.sum(size * (mark - entry), axis=-1)
        mr = jnp.sum(req, axis=-1)
        return c + jnp.any((mr > 0) & (av < mr), axis=-1).astype(jnp.int32), None
    s = oracle.shape[0]
    c, _ = lax.scan(body, jnp.zeros(s, jnp.int32), jnp.swapaxes(oracle, 0, 1))
    return c


# ----------------------------------------------------------------------------------------------------------------
# Timing
# ----------------------------------------------------------------------------------------------------------------

def timed(fn, *args, repeats: int, **static):
    """(compile s, median run s, output, runs): compile by lower/compile, then ``repeats`` runs after a warm-up."""
    t0 = time.perf_counter()
    exe = fn.lower(*args, **static).compile()
    compile_s = time.perf_counter() - t0
    out = jax.block_until_ready(exe(*args))
    runs = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        out = jax.block_until_ready(exe(*args))
        runs.append(time.perf_counter() - t0)
    return compile_s, statistics.median(runs), out, runs


def load():
    try:
        return subprocess.run(["uptime"], capture_output=True, text=True, check=False).stdout.strip()
    except OSError:
        return os.getloadavg()


def measure(name, kind, bk, paths, cfg, repeats, results, cost=True):
    """Time ``simulate`` on ``paths`` with ``cfg``; add a record to ``results``. Rates count the book's
    positions (not the padded capacity, and not empty slots)."""
    oracle, depth = paths
    s, t, _ = oracle.shape
    tb, book = tables_of(bk), {k: bk[k] for k in BOOK_KEYS}
    compile_s, run_s, (out, counts), runs = timed(simulate, tb, book, oracle, depth, cfg=cfg, repeats=repeats)
    pos = bk["n_positions"]
    rate = pos * s * t / run_s
    counts = np.asarray(counts).sum(axis=0).tolist()
    out = np.asarray(out)
    rec = dict(name=name, kind=kind, layout=cfg.layout, mode=cfg.mode, block=cfg.block, force=cfg.force,
               adl=cfg.adl, stages=list(cfg.stages), scenarios=s, steps=t, positions=pos,
               capacity=int(bk["size"].shape[0]), compile_s=round(compile_s, 2), run_s=run_s,
               runs_s=[round(r, 4) for r in runs], position_steps_per_s=rate,
               position_steps_per_s_best_run=pos * s * t / min(runs),
               block_steps=int(s // cfg.block * t), steps_liquidation=counts[0], steps_backstop=counts[1],
               steps_adl=counts[2], steps_liquidatable=counts[3],
               liquidated_usd=float(out[:, 0].mean()), backstop_usd=float(out[:, 1].mean()),
               adl_usd=float(out[:, 2].mean()), load_1min=round(os.getloadavg()[0], 2))
    if cost:
        ccfg = cfg if kind != "calm" else dataclasses.replace(cfg, stages=("margin",))
        by, fl = one_step_cost(tb, book, oracle, depth, ccfg)
        rec["bytes_per_position_step"] = by / (pos * cfg.block)
        rec["flops_per_position_step"] = fl / (pos * cfg.block)
        rec["implied_GB_per_s"] = rec["bytes_per_position_step"] * rate / 1e9
    results.append(rec)
    print(f"{name:30s} {kind:5s} {cfg.layout:7s} {cfg.mode:5s} B={cfg.block:<3d} {s}×{t} "
          f"compile {compile_s:4.1f}s run {run_s:7.3f}s {rate:.2e} (best {rec['position_steps_per_s_best_run']:.2e}) "
          + (f"{rec['bytes_per_position_step']:.0f} B {rec['implied_GB_per_s']:.1f} GB/s " if cost else "")
          + f"ran {counts}/{rec['block_steps']}", flush=True)
    return rec


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--accounts", type=int, default=200_000)
    ap.add_argument("--markets", type=int, default=180)
    ap.add_argument("--scenarios", type=int, default=64)
    ap.add_argument("--calm-steps", type=int, default=600, help="steps of the calm hour at the best configuration")
    ap.add_argument("--hour-scenarios", type=int, default=16, help="scenarios of the calm hour (blocks of 8 or the "
                    "best block)")
    ap.add_argument("--sweep-steps", type=int, default=50, help="steps of the calm layout/block sweep")
    ap.add_argument("--crash-steps", type=int, default=10, help="steps of the crash runs (a 25 %% fall over them)")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--dense-accounts", type=int, default=20_000)
    ap.add_argument("--quick", action="store_true", help="20k accounts, short runs (a smoke test)")
    ap.add_argument("--out", default=str(Path(__file__).parent / "results" / "prototype_positions.json"))
    args = ap.parse_args(argv)
    if args.quick:
        args.accounts, args.calm_steps, args.sweep_steps, args.crash_steps = 20_000, 50, 20, 5
        args.dense_accounts, args.repeats, args.hour_scenarios = 5_000, 2, 8
    load_before = load()
    t_start = time.time()
    results = []
    s = args.scenarios
    layouts = ("account", "market", "slots1", "slots2", "slots3")
    books = {lay: build_book(args.accounts, args.markets, lay) for lay in layouts}
    b0 = books["account"]
    kc, kx = jax.random.split(jax.random.key(0))
    calm_long = make_paths(kc, b0["price"], b0["oi"], s, args.calm_steps, "calm")
    calm_short = tuple(x[:, :args.sweep_steps] for x in calm_long)
    crash = make_paths(kx, b0["price"], b0["oi"], s, args.crash_steps, "crash")
    dev = jax.devices()[0]
    print(f"book: {args.accounts} accounts, {args.markets} markets, {b0['n_positions']} positions; "
          f"{len(jax.devices())} device(s); {load_before}", flush=True)

    def run(name, kind, paths, repeats=args.repeats, cost=True, **kw):
        cfg = Config(rows=args.accounts, markets=args.markets, positions=int(books[kw["layout"]]["size"].shape[0]),
                     **kw)
        return measure(name, kind, books[cfg.layout], paths, cfg, repeats, results, cost)

    rate = lambda r: r["position_steps_per_s"]
    # Calm: every layout in blocks of 8 (as the engine runs on CPU), then the best one's block sizes and vmap.
    sweep = [run("calm sweep", "calm", calm_short, layout=lay, block=8) for lay in layouts]
    bl = max(sweep, key=rate)["layout"]
    for mode, b in (("minor", 4), ("minor", 16), ("minor", s), ("vmap", 8), ("vmap", s)):
        if s % b == 0 and (mode, b) != ("minor", 8):
            sweep.append(run("calm sweep", "calm", calm_short, repeats=1 if (mode, b) == ("vmap", s) else args.repeats,
                             layout=bl, mode=mode, block=b))
    best = max(sweep, key=rate)
    # The calm hour: over 600 s some high-leverage rows reach their requirement, and a block with one runs the
    # later stages on the whole book in that step.
    hour = tuple(x[:max(args.hour_scenarios, best["block"])] for x in calm_long)
    calm = run("calm hour", "calm", hour, repeats=2, layout=best["layout"], mode=best["mode"], block=best["block"])
    # Crash: every stage every step; three layouts in blocks of 8, then the best one's extremes.
    crash_recs = [run("crash forced", "crash", crash, layout=lay, block=8, force=True)
                  for lay in ("account", "market", "slots1")]
    cl = max(crash_recs, key=rate)["layout"]
    for mode, b in (("minor", s), ("vmap", 8)):
        if s % b == 0:
            crash_recs.append(run("crash forced", "crash", crash, layout=cl, mode=mode, block=b, force=True))
    cbest = max(crash_recs, key=rate)
    one = dict(layout=cbest["layout"], mode=cbest["mode"], block=cbest["block"])
    gated = run("crash gated", "crash", crash, **one)
    # What the crash step spends: stages added one at a time, the ADL ranking's variants, stacked channels
    # (on one block of scenarios).
    small = tuple(x[:one["block"]] for x in crash)
    ablation = []
    for stages in (("margin",), ("margin", "liquidation"), ("margin", "liquidation", "backstop")):
        ablation.append(run("crash stages " + "+".join(stages), "crash", small, stages=stages, force=True, **one))
    for variant in ("radix4", "radix2", "pro_rata"):
        ablation.append(run("crash adl=" + variant, "crash", small, adl=variant, force=True, **one))
    ablation.append(run("crash stacked channels", "crash", small, stack=True, force=True, **one))
    sort_paths = tuple(x[:one["block"], :2] for x in crash)
    ablation.append(run("crash adl=sort (2 steps)", "crash", sort_paths, repeats=1, adl="sort", force=True, **one))

    # The dense [S, R, A] calm margin check at a smaller size, against the position form on the same book.
    n_d = args.dense_accounts
    dbook = build_book(n_d, args.markets, best["layout"], seed=1)
    dsize, dentry = dense_grid(dbook, n_d, args.markets)
    dsteps = 20
    d_or = calm_long[0][:8, :dsteps]
    per_scenario = lambda x: jnp.asarray(np.broadcast_to(x, (8,) + x.shape).copy())    # [S, R, A] state
    dargs = (per_scenario(dsize), per_scenario(dentry), per_scenario(dbook["cash"]),
             jnp.asarray(dbook["r0"]), jnp.asarray(dbook["dr"]), jnp.asarray(dbook["bound"]), d_or)
    dc, drun, _, _ = timed(dense_calm, *dargs, repeats=args.repeats)
    dense = dict(accounts=n_d, markets=args.markets, positions=dbook["n_positions"], scenarios=8, steps=dsteps,
                 compile_s=round(dc, 2), run_s=drun,
                 account_market_steps_per_s=n_d * args.markets * 8 * dsteps / drun,
                 position_steps_per_s=dbook["n_positions"] * 8 * dsteps / drun)
    cfg_d = Config(rows=n_d, markets=args.markets, positions=int(dbook["size"].shape[0]), layout=best["layout"],
                   block=8, stages=("margin",))
    dpaths = (d_or, jnp.broadcast_to(jnp.float32(1e9), d_or.shape))
    _, prun, _, _ = timed(simulate, tables_of(dbook), {k: dbook[k] for k in BOOK_KEYS}, *dpaths, cfg=cfg_d,
                          repeats=args.repeats)
    dense.update(position_form_layout=best["layout"], position_form_run_s=prun,
                 position_form_position_steps_per_s=dbook["n_positions"] * 8 * dsteps / prun, speedup=drun / prun)
    print(f"dense margin check {n_d}×{args.markets}×8×{dsteps}: {drun:.3f}s; position form {prun:.4f}s "
          f"({dense['speedup']:.0f}×)", flush=True)

    load_after = load()
    summary = dict(
        calm_margin_only_position_steps_per_s=rate(best), calm_target=3e8,
        calm_best=dict(layout=best["layout"], mode=best["mode"], block=best["block"]),
        calm_bytes_per_position_step=best["bytes_per_position_step"], calm_implied_GB_per_s=best["implied_GB_per_s"],
        calm_hour_position_steps_per_s=rate(calm),
        calm_hour_share_of_block_steps_with_liquidation=calm["steps_liquidation"] / calm["block_steps"],
        crash_position_steps_per_s=rate(cbest), crash_target=6e7, crash_best=one,
        crash_bytes_per_position_step=cbest["bytes_per_position_step"],
        crash_implied_GB_per_s=cbest["implied_GB_per_s"],
        crash_gated_position_steps_per_s=rate(gated),
    )
    doc = dict(
        what="Position-form engine step prototype (benchmarks/prototype_positions.py). Rates: the book's positions "
             "× scenarios × steps / median run seconds (one run = every block through the scan; compile timed "
             "apart). Bytes and flops: XLA's cost analysis of one step of one block compiled alone (calm: the "
             "margin check and its test, what a calm step runs; crash: every stage), / (positions × block). "
             "implied_GB_per_s = bytes × rate. steps_*: block·steps in which the liquidation, backstop and ADL "
             "ran and in which the margin check's test was true.",
        machine=dict(cpu_count=os.cpu_count(), processor=platform.processor() or platform.machine(),
                     jax=jax.__version__, numpy=np.__version__, device=f"{dev.platform}: {dev.device_kind}",
                     jax_devices=len(jax.devices()), JAX_NUM_CPU_DEVICES=os.environ.get("JAX_NUM_CPU_DEVICES"),
                     XLA_FLAGS=os.environ.get("XLA_FLAGS"), load_before=load_before, load_after=load_after),
        sizes=dict(accounts=args.accounts, markets=args.markets, positions=b0["n_positions"],
                   capacity={lay: int(bk["size"].shape[0]) for lay, bk in books.items()},
                   scenarios=s, calm_steps=args.calm_steps, hour_scenarios=hour[0].shape[0],
                   sweep_steps=args.sweep_steps,
                   crash_steps=args.crash_steps, repeats=args.repeats, dtype="float32"),
        summary=summary, calm_sweep=sweep, calm_hour=calm, crash=crash_recs, crash_gated=gated, ablation=ablation,
        dense=dense, wall_s=round(time.time() - t_start, 1),
    )
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(doc, indent=1) + "\n")
    print(json.dumps(summary, indent=1))
    print(f"load before: {load_before}\nload after:  {load_after}\nwrote {args.out}")


if __name__ == "__main__":
    main()
