"""adljax.calibrate on a position book (the position engine's smooth mode and its gradients): every iterate
and the answer equal the same calibration of the dense book; margin_locked of a position book by hand;
a calibration scenario file with ``[book] positions = true``."""
from __future__ import annotations

from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import adljax
from adljax import PositionBook, venues
from adljax.analysis import objectives
from adljax.generate import population
from adljax.scenario import load_calibration
from adljax.study import Study, seed_keys

ROOT = Path(__file__).resolve().parents[1]


def two_market_study(positions: bool):
    """Two markets, one a trader (sparse), a vault; each scenario a gap of 0–12 % in both over three steps."""
    kb, kp, _ = seed_keys(3)
    book = population(kb, 60, [100_000.0, 2_000.0], [50.0, 25.0], long_share=[0.7, 0.6], median_notional=40_000.0,
                      leverage_mode=20.0, markets_per_account=1, vault_cash=1.5e5, dtype=np.float64)
    book = PositionBook.from_book(book) if positions else book

    def make_paths(first, k):
        drop = np.array([float(jax.random.uniform(jax.random.fold_in(kp, i), (), maxval=0.12))
                         for i in range(first, first + k)])
        ramp = np.clip((np.arange(8) - 1) / 3.0, 0.0, 1.0)
        oracle = np.array([100_000.0, 2_000.0]) * (1.0 - drop[:, None, None] * ramp[None, :, None])
        return adljax.Paths(oracle, np.full_like(oracle, 2e6))

    venue = venues.hyperliquid(max_leverage=50.0, impact=0.0, maintenance_margin=(0.02, 0.03))
    return Study("gap2", venue, book, 1.0, 32, 8, make_paths, ("BTC", "ALT"), 3)


def test_a_position_book_calibrates_to_the_dense_books_answer():
    kw = dict(minimize={"margin_locked": 1.0, "vault_capital": 0.5}, constraints={"bad_debt": 2_000.0},
              temperature=0.2, scenarios=8, iterations=6)
    fields = ["maintenance_margin", "vault_capital"]
    dense = adljax.calibrate(two_market_study(False), fields, **kw)
    pos = adljax.calibrate(two_market_study(True), fields, **kw)
    assert isinstance(pos.book, PositionBook)
    # the optimiser moved, and the constraint acted (a multiplier rose), so the comparison is not of start values
    assert dense.history[-1]["maintenance_margin"] != dense.history[0]["maintenance_margin"]
    assert max(h["multiplier.bad_debt"] for h in dense.history) > 0
    for hd, hp in zip(dense.history, pos.history, strict=True):
        for k, v in hd.items():
            np.testing.assert_allclose(hp[k], v, rtol=1e-8, atol=1e-9, err_msg=f"iteration {hd['iteration']}: {k}")
    for k in fields:
        np.testing.assert_allclose(pos.values[k], dense.values[k], rtol=1e-9)
    np.testing.assert_allclose(float(pos.book.vault_cash), float(dense.book.vault_cash), rtol=1e-12)
    np.testing.assert_allclose(pos.venue.maintenance_margin, dense.venue.maintenance_margin, rtol=1e-9)
    assert pos.venue.replace(maintenance_margin=dense.venue.maintenance_margin) == dense.venue
    # (Its check runs the hard engine, whose position and dense forms are held equal by test_positions_engine.py.)


def test_margin_locked_of_a_position_book_by_hand():
    # row 0: long 2 BTC and short 10 ALT; row 1: short 2 BTC; row 2: long 10 ALT (the vault and LPs hold nothing)
    book = PositionBook.from_positions([0, 0, 1, 2], [0, 1, 0, 1], [2.0, -10.0, -2.0, 10.0],
                                       [100.0, 5.0, 100.0, 5.0], [1_000.0, 1_000.0, 1_000.0])
    venue = venues.hyperliquid(maintenance_margin=(0.02, 0.05), impact=0.0)
    params = venue.params(2, dt=1.0, dtype=jnp.float64)
    mark = jnp.array([110.0, 4.0])
    # |size|·mark·mm: 2·110·0.02 + 10·4·0.05 + 2·110·0.02 + 10·4·0.05 = 4.4 + 2 + 4.4 + 2
    assert float(objectives.margin_locked(params, book, mark)) == pytest.approx(12.8, rel=1e-12)
    # a batch of two scenarios: the mean over them
    batch = book.batched(2)
    marks = jnp.stack([mark, 2 * mark])
    assert float(objectives.margin_locked(params, batch, marks)) == pytest.approx(1.5 * 12.8, rel=1e-12)
    assert float(objectives.margin_locked(params, book.to_book(), mark)) == pytest.approx(12.8, rel=1e-12)


def test_a_calibration_file_with_a_position_book_loads_one(tmp_path):
    text = (ROOT / "scenarios" / "calibrate_margins.toml").read_text()
    assert "[book]\n" in text
    path = tmp_path / "calibrate_positions.toml"
    path.write_text(text.replace("[book]\n", "[book]\npositions = true\n", 1))
    study, kw = load_calibration(path, scenarios=4, steps=5, accounts=10)
    assert isinstance(study.book, PositionBook)
    assert kw["fields"] == ["maintenance_margin"]
