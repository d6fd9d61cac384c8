"""Invariants of one outcome of the engine (or the reference engine), checked against its case.

Used by test_differential.py (every drawn case, both engines) and test_properties.py (float32).
"""
from __future__ import annotations

import numpy as np

from adljax import METRICS

from strategies import BOOK_FIELDS, COUNTS

#: Relative tolerance of float64 sums (absolute floors are tied to the scale of each quantity's own market,
#: row or kind: strategies.tolerance).
REL = 1e-9
NOTIONALS = ("market_liquidation_notional", "backstop_notional", "adl_notional")
BAD_DEBT = ("bad_debt", "bad_debt_backstop", "bad_debt_adl", "bad_debt_residual")


def metrics_np(out) -> dict[str, np.ndarray]:
    return {k: np.asarray(v, dtype=np.float64) for k, v in out.metrics.items()}


def book_np(out) -> dict[str, np.ndarray]:
    return {f: np.asarray(getattr(out.book, f)) for f in BOOK_FIELDS}


def account_value(cash, size, entry, mark):
    """AV of every row, float64 numpy: cash [..., R], size/entry [..., R, A], mark [..., A]."""
    return cash + np.sum(size * (mark[..., None, :] - entry), axis=-1)


# --------------------------------------------------------------------------- the invariants
def check_invariants(case, out, *, rel: float, dtype=np.float64):
    """Invariants that hold in any float width (``rel`` is the relative tolerance of sums).

    The start book is taken as built in ``dtype`` (float32 rounds the drawn numbers).
    """
    bc = case.bc
    n, a = bc.n_accounts, bc.n_markets
    s, t, _ = case.oracle.shape
    scale = case.scale
    market_units = case.market_size_scale                   # [A]
    vault_usd = float(case.row_scale[-2])
    m = metrics_np(out)
    b = book_np(out)
    cash, size, entry = (b[f].astype(np.float64) for f in ("all_cash", "all_size", "all_entry"))
    start = case.book(dtype)
    cash0, size0, entry0 = (np.asarray(getattr(start, f), dtype=np.float64)
                            for f in ("all_cash", "all_size", "all_entry"))

    # Shapes and finiteness.
    assert set(m) == set(METRICS)
    for k, v in m.items():
        assert v.shape == (s,), k
        assert np.all(np.isfinite(v)), f"metric {k} not finite: {v}"
    for f, v in b.items():
        assert np.all(np.isfinite(v.astype(np.float64))), f"book.{f} not finite"
    assert cash.shape == (s, n + 2) and size.shape == (s, n + 2, a)
    if out.history is not None:
        for k, v in out.history.items():
            assert np.all(np.isfinite(np.asarray(v))), f"history {k} not finite"

    # Zero sum per market and conserved total value after every step (the metrics are maxima over steps and
    # markets; the conservation sum runs over every row, the LP's and vault's cash included).
    assert np.all(m["zero_sum_error"] <= rel * market_units.max()), m["zero_sum_error"]
    assert np.all(m["conservation_error"] <= rel * scale), (m["conservation_error"], scale)
    # ... and recomputed from the final book, each market against its own units.
    net = np.abs(size.sum(axis=1))                          # [S, A]
    assert np.all(net <= rel * market_units), (net, market_units)
    # (Σ size·m is the same at any common mark because every market sums to zero; the
    # insurance fund is part of the total: fees go in, deficits are paid out.)
    value0 = cash0.sum() - np.sum(size0 * entry0) + case.bc.insurance_fund
    value = cash.sum(axis=1) - np.sum(size * entry, axis=(1, 2)) + np.asarray(b["insurance_fund"], dtype=np.float64)
    assert np.all(np.abs(value - value0) <= rel * scale), (value, value0)
    assert np.all(m["conservation_error"] >= np.abs(value - value0) - rel * scale)
    assert np.all(m["zero_sum_error"] >= net.max(axis=1) - rel * market_units.max())

    # Traders' positions never flip sign and never grow (elementwise, exactly).
    fs, ss = size[:, :n], np.broadcast_to(size0[:n], size[:, :n].shape)
    assert np.all(fs * ss >= 0), f"a trader position flipped sign:\nstart={size0[:n]}\nfinal={fs}"
    assert np.all(np.abs(fs) <= np.abs(ss)), f"a trader position grew:\nstart={size0[:n]}\nfinal={fs}"
    # A flat position has entry 0; entries stay positive where open.
    assert np.all(np.where(size == 0, entry == 0, entry > 0)), "entry must be 0 exactly where flat, > 0 where open"

    # Rows without a position at the start end exactly as they started.
    flat = ~np.any(size0[:n] != 0, axis=1)
    if flat.any():
        np.testing.assert_array_equal(cash[:, :n][:, flat], np.broadcast_to(cash0[:n][flat], (s, int(flat.sum()))),
                                      err_msg="a row without positions lost or gained cash")
        assert np.all(size[:, :n][:, flat] == 0)

    # Cooldowns stay within [0, venue cooldown]; flags and the fund are untouched.
    assert np.all(b["cooldown"] >= 0) and np.all(b["cooldown"] <= case.venue.cooldown * (1 + rel))
    assert np.all(b["cooldown"][:, n:] == 0), "the vault and LP rows never cool down"
    np.testing.assert_array_equal(b["isolated"],
                                  np.broadcast_to(np.concatenate([bc.isolated, [False, False]]), (s, n + 2)))

    # Bad debt decomposes, every part non-negative (floors of the traders' USD, not the LP's deep cash).
    tiny = rel * case.traders_scale
    for k in BAD_DEBT:
        if k == "bad_debt_adl" and case.venue.rules.adl_price == "previous_mark":
            continue   # closing at the previous mark can deepen a deficit when the price moved (Hyperliquid's rule)
        assert np.all(m[k] >= -tiny), (k, m[k])
    np.testing.assert_allclose(m["bad_debt"], m["bad_debt_backstop"] + m["bad_debt_adl"] + m["bad_debt_residual"],
                               rtol=rel, atol=tiny)
    for k in NOTIONALS:
        assert np.all(m[k] >= 0), (k, m[k])

    # Counts are non-negative integers with sensible bounds.
    for k in COUNTS:
        assert np.all(m[k] >= 0) and np.all(m[k] == np.round(m[k])), (k, m[k])
    n_open = int(np.sum(np.any(size0[:n] != 0, axis=1)))
    assert np.all(m["partial_liquidation_orders"] <= m["market_liquidation_orders"])
    assert np.all(m["market_liquidation_orders"] <= t * int(np.sum(size0[:n] != 0)))
    if case.venue.rules.backstop == "vault":   # (an insurance fund may pay the same row in several steps)
        assert np.all(m["backstop_accounts"] <= n_open), "a row can be taken over once: it never reopens a position"
    assert np.all(m["n_bankrupt_accounts"] <= n_open + 1)
    assert np.all(m["n_adl_accounts"] <= n + 2)
    assert np.all(m["adl_steps"] <= t)
    # Activity implies its count and vice versa.
    assert np.all((m["backstop_notional"] > 0) <= (m["backstop_accounts"] > 0))
    assert np.all((m["adl_notional"] > 0) <= (m["n_adl_accounts"] > 0))
    assert np.all((m["adl_notional"] > 0) <= (m["n_bankrupt_accounts"] > 0))
    assert np.all((m["market_liquidation_notional"] > 0) <= (m["market_liquidation_orders"] > 0))

    # Vault equity: the minimum is below the start and the end values.
    vault_av0 = account_value(cash0, size0, entry0, case.oracle[:, 0])[:, -2]
    assert np.all(m["vault_equity_min"] <= vault_av0 + rel * vault_usd)

    if out.history is not None:
        h = {k: np.asarray(v, dtype=np.float64) for k, v in out.history.items()}
        mark = h["mark"]
        assert mark.shape == (s, t, a) and np.all(mark > 0)
        np.testing.assert_allclose(mark[:, 0], case.oracle[:, 0], rtol=rel, err_msg="step 0 marks at the oracle")
        if case.venue.impact == 0:
            np.testing.assert_allclose(mark, case.oracle, rtol=rel, err_msg="no impact: mark is the oracle")
        # Metrics recomputed from the final book at the last mark.
        av = account_value(cash, size, entry, mark[:, -1])
        np.testing.assert_allclose(m["bad_debt_residual"], np.sum(np.maximum(-av[:, :-1], 0.0), axis=1),
                                   rtol=rel, atol=tiny, err_msg="bad_debt_residual")
        vault_tiny = rel * vault_usd
        np.testing.assert_allclose(m["vault_pnl"], av[:, -2] - vault_av0, rtol=rel, atol=vault_tiny,
                                   err_msg="vault_pnl")
        np.testing.assert_allclose(h["vault_equity"][:, -1], av[:, -2], rtol=rel, atol=vault_tiny)
        np.testing.assert_allclose(m["vault_equity_min"], np.minimum(vault_av0, h["vault_equity"].min(axis=1)),
                                   rtol=rel, atol=vault_tiny, err_msg="vault_equity_min")
        for k in NOTIONALS:
            np.testing.assert_allclose(m[k], h[k].sum(axis=1), rtol=rel, atol=tiny, err_msg=f"history {k}")
        assert np.all((h["adl_notional"] > 0).sum(axis=1) <= m["adl_steps"])
        assert np.all(h["n_bankrupt"].max(axis=1) <= m["n_bankrupt_accounts"])
