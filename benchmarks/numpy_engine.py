"""A plain NumPy baseline of the waterfall, for the speed comparison of ``bench_compare.py``.

This is what a competent user would write without adljax: the rules of
``docs/rules.md`` for the rule set of ``adljax.venues.hyperliquid()`` (partial
liquidation with cooldown mode ``"whole"``, vault backstop with the prefix
rule, ADL queue by the Hyperliquid score at the previous mark, price impact,
slippage, liquidation fee, vault unwind), vectorised over scenarios and
accounts with NumPy arrays, a Python ``for`` loop over steps, and
``np.argsort`` to rank the ADL queue. No numba, no compiled kernels.

Like the engine it skips a stage in steps where no scenario needs it (an
``if np.any(...)``: the obvious thing to write in NumPy), and it keeps
positions market-major ([S, A, R], as :class:`adljax.Book` stores them) so
that sums over the few markets run over contiguous rows.

It computes the same numbers as :func:`adljax.simulate` (the tests check
float64 agreement to 1e-9 relative): same work, same answers.

    from numpy_engine import simulate
    out = simulate(venue, book, paths, dt=1.0)          # dtype of the book, or dtype=np.float32
    out["book"]["all_cash"]   # [S, R]
    out["metrics"]["bad_debt"]  # [S]
"""
from __future__ import annotations

import numpy as np

import adljax
from adljax.model.venue import Rules

#: The only rule set implemented here (that of ``adljax.venues.hyperliquid()``).
SUPPORTED_RULES = Rules(adl_policy="queue", adl_score="hyperliquid", adl_price="previous_mark",
                        backstop="vault", cooldown_mode="whole")
#: ADL pools whose sides differ by less than this (relative) are matched whole (rules.md, "dust").
POOL_TOLERANCE = {np.dtype(np.float64): 1e-12, np.dtype(np.float32): 1e-5}

_SUMS = ("market_liquidation_notional", "market_liquidation_orders", "partial_liquidation_orders",
         "liquidation_fees", "vault_unwind_notional", "backstop_notional", "backstop_accounts",
         "adl_notional", "adl_notional_vault", "socialized_loss", "adl_steps", "bad_debt_backstop", "bad_debt_adl",
         "conservation_error", "zero_sum_error")


# ---------------------------------------------------------------------------
# Accounting ([S, A, R] positions, [S, R] cash, [S, A] marks)
# ---------------------------------------------------------------------------

def account_value(cash, size, entry, mark):
    """``AV = cash + Σ_a size·(m − entry)``, [S, R]."""
    return cash + np.sum(size * (mark[:, :, None] - entry), axis=1)


def maintenance(size, mark, mm):
    """``MR = Σ_a |size|·(m·mm)``, [S, R]."""
    return np.sum(np.abs(size) * (mark * mm)[:, :, None], axis=1)


def trade(size, entry, q, price):
    """The one trade rule (elementwise): returns ``(new_size, new_entry, cash_delta)``."""
    opposite = size * q < 0
    closed = np.where(opposite, np.sign(size) * np.minimum(np.abs(q), np.abs(size)), 0)
    cash_delta = closed * (price - entry)
    opened = q + closed
    new_size = size + q
    w_kept = np.abs(size - closed)
    w_open = np.abs(opened)
    denom = w_kept + w_open
    avg = (w_kept * entry + w_open * price) / np.where(denom > 0, denom, 1)
    new_entry = np.where(opened == 0, entry, avg)
    new_entry = np.where(new_size == 0, 0, new_entry)
    return new_size, new_entry, cash_delta


def reduce_position(size, entry, closed, price):
    """Close ``closed`` units (same sign as ``size``) at ``price``: the trade rule without averaging."""
    new_size = size - closed
    return new_size, np.where(new_size == 0, 0, entry), closed * (price - entry)


def _fill_side(requested, depth, mark, slippage, sign):
    """Fill ratio, filled notional and average price of one side of every market, [S, A] each."""
    phi = np.where(requested > 0, np.minimum(1, depth / np.where(requested > 0, requested, 1)), 0)
    filled = phi * requested
    safe_depth = np.where(depth > 0, depth, 1)
    price = mark * (1 + sign * np.where(depth > 0, slippage * filled / (2 * safe_depth), 0))
    return phi, filled, price


# ---------------------------------------------------------------------------
# ADL queue: rank by argsort, walk to the need
# ---------------------------------------------------------------------------

def queue_take(score, weight, need):
    """Units each candidate closes when ``need`` [S, A] units are taken from the top of the queue.

    ``score``, ``weight`` [S, A, R]. Candidates are ranked by ``np.argsort``
    (highest score first); the queue position where the running capacity
    reaches ``need`` gives the cut-off score. Candidates above it close their
    whole position; those exactly at it (equal scores) share the rest pro
    rata (rules.md); a need covering every candidate closes each whole.
    """
    order = np.argsort(-score, axis=-1, kind="stable")
    ranked_score = np.take_along_axis(score, order, axis=-1)
    running = np.cumsum(np.take_along_axis(weight, order, axis=-1), axis=-1)
    reached = running >= need[..., None]
    # First position whose running capacity covers the need (the last one if rounding leaves it short).
    at = np.where(reached[..., -1], np.argmax(reached, axis=-1), score.shape[-1] - 1)
    cut = np.take_along_axis(ranked_score, at[..., None], axis=-1)     # [S, A, 1]
    full = np.where(score > cut, weight, 0)
    tied = np.where(score == cut, weight, 0)
    rest = need - np.sum(full, axis=-1)
    tied_total = np.sum(tied, axis=-1)
    share = np.where(tied_total > 0, np.clip(rest / np.where(tied_total > 0, tied_total, 1), 0, 1), 0)
    taken = full + tied * share[..., None]
    total = np.sum(weight, axis=-1)
    taken = np.where((need >= total)[..., None], weight, taken)
    return np.where(need[..., None] > 0, taken, 0)


def hyperliquid_score(size, entry, av, mark):
    """``(m/e if s > 0 else e/m)·(|s|·m/AV)``, ``+∞`` where ``AV ≤ 0``; [S, A, R]."""
    m = mark[:, :, None]
    safe_entry = np.where(entry > 0, entry, 1)
    pos_av = (av > 0)[:, None, :]
    safe_av = np.where(pos_av, av[:, None, :], 1)
    lev = np.where(pos_av, np.abs(size) * m / safe_av, np.inf)
    ratio = np.where(size > 0, m / safe_entry, safe_entry / m)
    return np.where(pos_av, ratio * lev, np.inf)


# ---------------------------------------------------------------------------
# The run
# ---------------------------------------------------------------------------

def _host(x, dtype):
    return np.array(np.asarray(x), dtype=dtype)   # a writable copy


def simulate(venue, book, paths, *, dt: float = 1.0, dtype=None) -> dict:
    """Run the Hyperliquid waterfall over every scenario of ``paths`` in NumPy.

    Args:
      venue: an :class:`adljax.Venue` with the rules of ``adljax.venues.hyperliquid()``
        (its numbers may be anything); other rules raise NotImplementedError.
      book: an :class:`adljax.Book` without scenario axis (used for every
        scenario) or with a leading axis S.
      paths: :class:`adljax.Paths`, oracle and depth [S, T, A].
      dt: seconds per step.
      dtype: float dtype of the run (default: the book's).

    Returns:
      ``{"book": {"all_cash" [S, R], "all_size" [S, R, A], "all_entry" [S, R, A],
      "cooldown" [S, R], "insurance_fund" [S]}, "metrics": {name: [S]}}`` with
      every metric of ``adljax.METRICS``.
    """
    if venue.rules != SUPPORTED_RULES:
        raise NotImplementedError(f"numpy baseline: only the rules of adljax.venues.hyperliquid() "
                                  f"({SUPPORTED_RULES}), got {venue.rules}")
    dtype = np.dtype(dtype if dtype is not None else np.asarray(book.all_cash).dtype)
    oracle = _host(paths.oracle, dtype)
    depth_all = _host(paths.depth, dtype)
    S, T, A = oracle.shape
    cash = _host(book.all_cash, dtype)
    size = _host(book.size_am, dtype)
    entry = _host(book.entry_am, dtype)
    cooldown = _host(book.cooldown, dtype)
    fund = _host(book.insurance_fund, dtype)
    if cash.ndim == 1:                                   # one book for every scenario
        cash, size, entry, cooldown = (np.repeat(x[None], S, axis=0) for x in (cash, size, entry, cooldown))
        fund = np.repeat(fund[None], S, axis=0)
    R = cash.shape[-1]
    V, LP = R - 2, R - 1

    # The venue's numbers, in the run's dtype.
    c = lambda v: dtype.type(v)
    mm = np.asarray(venue.maintenance(A), dtype=dtype)
    threshold, fraction, cooldown_s = c(venue.partial_threshold), c(venue.partial_fraction), c(venue.cooldown)
    ratio, slippage, impact_coef = c(venue.backstop_ratio), c(venue.slippage), c(venue.impact)
    fee_rate, unwind_share, step_s = c(venue.liquidation_fee), c(venue.vault_unwind), c(dt)
    decay = np.exp2(-step_s / c(venue.impact_half_life))
    tol = POOL_TOLERANCE[dtype]

    rows = np.arange(R)
    trader = rows < V
    not_lp = rows < LP
    is_vault = rows == V

    acc = {k: np.zeros(S, dtype) for k in _SUMS}
    impact = np.zeros((S, A), dtype)
    prev_mark = oracle[:, 0].copy()
    vault_av0 = account_value(cash, size, entry, prev_mark)[:, V]
    acc["vault_equity_min"] = vault_av0.copy()
    value0 = np.sum(cash, axis=-1) - np.sum(size * entry, axis=(-2, -1)) + fund
    deleveraged = np.zeros((S, R), bool)
    ever_bankrupt = np.zeros((S, R), bool)
    adl_markets = np.zeros((S, A), bool)

    for t in range(T):
        depth = depth_all[:, t]
        # 0. Clock and mark.
        cooldown = np.maximum(cooldown - step_s, 0)
        impact = impact * decay
        mark = oracle[:, t] * np.exp(impact)
        mc = mark[:, :, None]

        # 1. Margin check.
        av = account_value(cash, size, entry, mark)
        mr = maintenance(size, mark, mm)
        has_pos = np.any(size != 0, axis=1)
        liquidatable = trader & has_pos & (av < mr)

        # 2. Market liquidation (in steps where some row is liquidatable or the vault unwinds).
        need_liq = bool(np.any(liquidatable)) or (unwind_share > 0 and bool(np.any(has_pos[:, V])))
        if need_liq:
            cooling = cooldown > 0
            ready = liquidatable[:, None, :]
            big = (np.abs(size) * mc > threshold) & (size != 0) & ready & ~cooling[:, None, :]
            q = np.where(ready, size * np.where(big, fraction, 1), 0)
            v_size = size[:, :, V]
            q[:, :, V] = np.sign(v_size) * np.minimum(np.abs(v_size), unwind_share * depth / mark)
            sell, buy = q > 0, q < 0
            phi_s, filled_s, p_sell = _fill_side(np.sum(np.where(sell, q, 0), axis=2) * mark, depth, mark,
                                                 slippage, -1)
            phi_b, filled_b, p_buy = _fill_side(np.sum(np.where(buy, -q, 0), axis=2) * mark, depth, mark,
                                                slippage, +1)
            fill = q * np.where(sell, phi_s[:, :, None], phi_b[:, :, None])
            price = np.where(sell, p_sell[:, :, None], p_buy[:, :, None])
            size, entry, dcash = reduce_position(size, entry, fill, price)
            cash = cash + np.sum(dcash, axis=1)
            # Fee, capped at what the row has left after its fills.
            fill_ntl = np.abs(fill) * mc
            av_after = av + np.sum(fill * (price - mc), axis=1)
            fee = np.where(is_vault, 0, np.minimum(fee_rate * np.sum(fill_ntl, axis=1), np.maximum(av_after, 0)))
            fees = np.sum(fee, axis=-1)
            cash = cash - fee
            cash[:, V] += fees
            # The LP row takes the fills: the sell side, then the buy side.
            lp_s, lp_e, c1 = trade(size[:, :, LP], entry[:, :, LP], np.sum(np.where(sell, fill, 0), axis=2), p_sell)
            lp_s, lp_e, c2 = trade(lp_s, lp_e, np.sum(np.where(buy, fill, 0), axis=2), p_buy)
            cash[:, LP] += np.sum(c1, axis=-1) + np.sum(c2, axis=-1)
            size[:, :, LP], entry[:, :, LP] = lp_s, lp_e
            cooldown = np.where(np.any(big, axis=1), cooldown_s, cooldown)
            vault_ntl = np.sum(fill_ntl[:, :, V], axis=-1)
            acc["market_liquidation_notional"] += np.sum(filled_s + filled_b, axis=-1) - vault_ntl
            acc["market_liquidation_orders"] += np.sum((q != 0) & ~is_vault, axis=(1, 2))
            acc["partial_liquidation_orders"] += np.sum(big, axis=(1, 2))
            acc["liquidation_fees"] += fees
            acc["vault_unwind_notional"] += vault_ntl
            impact = impact + impact_coef * np.where(depth > 0,
                                                     (filled_b - filled_s) / np.where(depth > 0, depth, 1), 0)
            av = account_value(cash, size, entry, mark)
            mr = maintenance(size, mark, mm)
            has_pos = np.any(size != 0, axis=1)

        # 3. Backstop: the vault takes over candidates in row order while it can carry them.
        candidate = trader & (av < ratio * mr)
        need_bs = bool(np.any(candidate))
        if need_bs:
            cum_av = av[:, V:V + 1] + np.cumsum(np.where(candidate, av, 0), axis=-1)
            cum_size = size[:, :, V:V + 1] + np.cumsum(np.where(candidate[:, None, :], size, 0), axis=-1)
            carries = cum_av >= maintenance(cum_size, mark, mm)
            first_refused = np.min(np.where(candidate & ~carries, rows, R), axis=-1)
            take = candidate & (rows < first_refused[:, None])
            taken_size = np.where(take[:, None, :], size, 0)
            v_s, v_e, v_dcash = trade(size[:, :, V], entry[:, :, V], np.sum(taken_size, axis=-1), mark)
            cash = np.where(take, 0, cash)
            cash[:, V] += np.sum(np.where(take, av, 0), axis=-1) + np.sum(v_dcash, axis=-1)
            size = np.where(take[:, None, :], 0, size)
            entry = np.where(take[:, None, :], 0, entry)
            size[:, :, V], entry[:, :, V] = v_s, v_e
            cooldown = np.where(take, 0, cooldown)
            acc["backstop_notional"] += np.sum(np.abs(taken_size) * mc, axis=(1, 2))
            acc["backstop_accounts"] += np.sum(take, axis=-1)
            acc["bad_debt_backstop"] += np.sum(np.where(take, np.maximum(-av, 0), 0), axis=-1)
            av = account_value(cash, size, entry, mark)
            has_pos = np.any(size != 0, axis=1)

        # 4. ADL: bankrupt rows against opposite positions, queue by score, at the previous mark.
        bankrupt = not_lp & has_pos & (av < 0)
        need_adl = bool(np.any(bankrupt))
        if need_adl:
            b3 = bankrupt[:, None, :]
            cand = (av >= 0)[:, None, :]
            long_b = np.where(b3, np.maximum(size, 0), 0)
            short_b = np.where(b3, np.maximum(-size, 0), 0)
            cap_short = np.where(cand, np.maximum(-size, 0), 0)     # serves bankrupt longs
            cap_long = np.where(cand, np.maximum(size, 0), 0)       # serves bankrupt shorts
            q_long, q_short = np.sum(long_b, axis=-1), np.sum(short_b, axis=-1)
            c_long, c_short = np.sum(cap_short, axis=-1), np.sum(cap_long, axis=-1)
            whole_long = np.abs(c_long - q_long) <= tol * np.maximum(q_long, c_long)
            whole_short = np.abs(c_short - q_short) <= tol * np.maximum(q_short, c_short)
            matched_long = np.where(whole_long, q_long, np.minimum(q_long, c_long))
            matched_short = np.where(whole_short, q_short, np.minimum(q_short, c_short))
            f_long = np.where(whole_long, 1, np.where(q_long > 0, matched_long / np.where(q_long > 0, q_long, 1), 0))
            f_short = np.where(whole_short, 1,
                               np.where(q_short > 0, matched_short / np.where(q_short > 0, q_short, 1), 0))
            closed_b = np.where(b3, size * np.where(size > 0, f_long[:, :, None], f_short[:, :, None]), 0)

            scores = hyperliquid_score(size, entry, av, mark)
            take_short = np.where(whole_long[:, :, None], cap_short, queue_take(scores, cap_short, matched_long))
            take_long = np.where(whole_short[:, :, None], cap_long, queue_take(scores, cap_long, matched_short))
            closed_c = take_long - take_short
            # Every fill, bankrupt side and counterparties, at the previous mark.
            size_new, entry, dcash = reduce_position(size, entry, closed_b + closed_c, prev_mark[:, :, None])
            size = size_new
            cash = cash + np.sum(dcash, axis=1)
            av_after = account_value(cash, size, entry, mark)
            covered = np.where(bankrupt, np.maximum(-av, 0) - np.maximum(-av_after, 0), 0)
            acc["adl_notional"] += np.sum(np.abs(closed_c) * mc, axis=(1, 2))
            acc["bad_debt_adl"] += np.sum(covered, axis=-1)
            acc["adl_notional_vault"] += np.sum(np.abs(closed_b[:, :, V]) * mark, axis=-1)
            acc["adl_steps"] += np.any(closed_b != 0, axis=(1, 2))
            adl_markets |= np.any(closed_b != 0, axis=-1)
            deleveraged |= np.any(closed_c != 0, axis=1)
            ever_bankrupt |= bankrupt

        # Bookkeeping: conservation and zero sum (only a step where a stage ran can move them).
        if need_liq or need_bs or need_adl:
            value = np.sum(cash, axis=-1) - np.sum(size * entry, axis=(-2, -1)) + fund
            acc["conservation_error"] = np.maximum(acc["conservation_error"], np.abs(value - value0))
            acc["zero_sum_error"] = np.maximum(acc["zero_sum_error"],
                                               np.max(np.abs(np.sum(size, axis=-1)), axis=-1))
        vault_av = cash[:, V] + np.sum(size[:, :, V] * (mark - entry[:, :, V]), axis=-1)
        acc["vault_equity_min"] = np.minimum(acc["vault_equity_min"], vault_av)
        # 5. End of step.
        prev_mark = mark

    av = account_value(cash, size, entry, prev_mark)
    metrics = dict(acc)
    metrics["bad_debt_residual"] = np.sum(np.maximum(-av[:, :LP], 0), axis=-1)
    metrics["bad_debt"] = metrics["bad_debt_backstop"] + metrics["bad_debt_adl"] + metrics["bad_debt_residual"]
    metrics["vault_pnl"] = av[:, V] - vault_av0
    metrics["n_adl_accounts"] = np.sum(deleveraged, axis=-1).astype(dtype)
    metrics["n_bankrupt_accounts"] = np.sum(ever_bankrupt, axis=-1).astype(dtype)
    metrics["adl_markets"] = np.sum(adl_markets, axis=-1).astype(dtype)
    metrics["adl_indicator"] = (metrics["adl_steps"] > 0).astype(dtype)
    metrics = {k: np.asarray(metrics[k], dtype=dtype) for k in adljax.METRICS}
    out_book = {
        "all_cash": cash,
        "all_size": np.swapaxes(size, -1, -2),
        "all_entry": np.swapaxes(entry, -1, -2),
        "cooldown": cooldown,
        "insurance_fund": fund,
    }
    return {"book": out_book, "metrics": metrics}
