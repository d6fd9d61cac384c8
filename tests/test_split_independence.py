"""A scenario's numbers do not depend on how a study is split, and a run whose metrics are not finite stops.

XLA rounds a sum by the shape of the program it is in: on CPU an operation with 4,096 elements or more runs in
YNNPACK, which sums in another order than XLA's own loops, and a batch of one scenario compiles to another
program (:mod:`adljax.parallel.chunking`). The study here has 460 rows × 3 markets (1,380 a scenario), so a
``[S, R, A]`` sum crosses 4,096 elements between 2 and 3 scenarios: run chunk by chunk at the chunk's own
shape, chunks of 1 and 2 round differently from chunks of 3 and from the whole study (on 2 devices, a chunk of
3 split 2 + 2 too). :func:`adljax.studies.runner.run_chunk` runs every scenario in its block of 8 (scenarios
8k..8k+7), one block a device a run, so every split gives the same bits.

Programs: the engine for one block of 8 scenarios on one device and the path generator for 8 scenarios, in
float64; the subprocess (2 devices) adds the engine for one block on each of 2 devices and the generator for 16.
"""
from __future__ import annotations

import dataclasses
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import adljax
from adljax.studies import runner

ROOT = Path(__file__).resolve().parent.parent
N = 10
CHUNKS = (1, 2, 3, N)


def _study():
    """The default study's book (458 accounts, 3 markets) under dYdX's random-order ADL (drawn from the scenario
    keys) without a backstop, 10 scenarios of 30 steps on books with 1 % of their depth, float64."""
    from adljax.study import default_study

    st = default_study(n_scenarios=N, n_steps=30, n_accounts=458, dtype=np.float64)

    def thin(first, n):
        p = st.make_paths(first, n)
        return adljax.Paths(p.oracle, p.depth * 0.01)

    return dataclasses.replace(st, venue=st.venue.replace(adl_policy="random_order", backstop="none"),
                               make_paths=thin)


def _split_runs(st, chunks=CHUNKS) -> dict[str, np.ndarray]:
    """``{"<chunk>/<name>": [N] or [N, ...]}``: every metric and the final book's cash, sizes and entries of the
    study run chunk by chunk (as ``run_study`` runs it), for each chunk size of ``chunks``."""
    out = {}
    for chunk in chunks:
        parts = [runner.run_chunk(st, first, n, chunk) for first, n in runner.chunk_bounds(st.n_scenarios, chunk)]
        for k in adljax.METRICS:
            out[f"{chunk}/{k}"] = np.concatenate([m[k] for _, m, _ in parts])
        for k in ("all_cash", "size_am", "entry_am"):
            out[f"{chunk}/book.{k}"] = np.concatenate([np.asarray(getattr(b, k)) for b, _, _ in parts])
    return out


@pytest.fixture(scope="module")
def one_device():
    return _split_runs(_study())


def test_every_chunking_gives_the_same_bits(one_device):
    runs = one_device
    assert np.asarray(runs[f"{N}/book.all_cash"]).shape == (N, 460)
    # the comparison is not between empty results: liquidation and ADL act, in some scenarios and not others
    adl = runs[f"{N}/adl_notional"]
    assert 0 < np.count_nonzero(adl) < N and np.count_nonzero(runs[f"{N}/market_liquidation_notional"]) > 0
    for chunk in CHUNKS[:-1]:
        for k in [*adljax.METRICS, "book.all_cash", "book.size_am", "book.entry_am"]:
            np.testing.assert_array_equal(runs[f"{chunk}/{k}"], runs[f"{N}/{k}"], err_msg=f"chunk {chunk}: {k}")


_TWO_DEVICES = """
import json, sys
import jax
jax.config.update("jax_enable_x64", True)
sys.path.insert(0, {tests!r})
import numpy as np
import test_split_independence as t
assert jax.local_device_count() == 2
np.savez({out!r}, **t._split_runs(t._study(), (3, t.N)))
"""


def test_two_devices_give_one_devices_bits(one_device, tmp_path):
    """Chunks of 3 and the whole study on 2 devices (a subprocess: a process fixes its device count when JAX
    starts), each chunk's run two blocks, one a device: bitwise the one-device numbers."""
    out = tmp_path / "two.npz"
    env = {**os.environ, "JAX_NUM_CPU_DEVICES": "2", "JAX_PLATFORMS": "cpu"}
    code = _TWO_DEVICES.format(tests=str(ROOT / "tests"), out=str(out))
    p = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert p.returncode == 0, p.stderr[-3000:]
    two = np.load(out)
    assert sorted(two.files) == sorted(k for k in one_device if k.split("/")[0] in ("3", str(N)))
    for k in two.files:
        np.testing.assert_array_equal(two[k], one_device[k], err_msg=k)


# ---- the planner -------------------------------------------------------------------------------------------
def test_block_runs_give_every_device_whole_aligned_blocks():
    from adljax.parallel.chunking import block_runs, block_span

    assert block_span(6, 3, 8) == (0, 2)          # scenarios 6..8: blocks 0..7 and 8..15
    assert block_span(16, 16, 8) == (16, 2)
    assert block_runs(0, 5, 8, 2) == [(0, 16, 2), (16, 16, 2), (32, 8, 1)]    # 2 rounds of 2 devices, 1 block
    assert block_runs(8, 1, 8, 4) == [(8, 8, 1)]
    assert block_runs(24, 6, 8, 3) == [(24, 24, 3), (48, 24, 3)]
    assert block_runs(0, 3, 8, 1) == [(0, 8, 1), (8, 8, 1), (16, 8, 1)]
    # a chunk runs the blocks that hold it, one block a device a run: scenarios 6..8 (blocks 0 and 1) on one
    # device; 40 scenarios on two (2 rounds, then block 4 alone); a short last chunk, 16..20, in its one block
    assert runner.window(6, 3, 3) == (0, 16) and runner.window(9, 1, 3) == (8, 8)
    assert runner.engine_runs(6, 3, 3, 1) == [(0, 8, 1), (8, 8, 1)]
    assert runner.engine_runs(0, 40, 40, 2) == [(0, 16, 2), (16, 16, 2), (32, 8, 1)]
    assert runner.engine_runs(16, 5, 32, 2) == [(16, 8, 1)]
    # the study's first run, at the shape it makes its paths: one block
    assert runner.first_paths(_study(), 3).n_scenarios == 8


def test_default_chunk_is_whole_blocks_on_every_device():
    st = _study()
    big = dataclasses.replace(st, n_scenarios=1000)
    for d in (1, 2, 3):
        c = runner.default_chunk(big, n_devices=d, n_processes=1)
        assert c % (8 * d) == 0 and c >= 1000 / 16, (d, c)
    assert runner.default_chunk(st, n_devices=2, n_processes=1) == N        # never more than the study


def test_a_resume_that_would_split_otherwise_is_refused(tmp_path):
    """Where the split depends on the devices (an accelerator runs a device's whole share at once), a folder
    made on 2 devices refuses a resume on 1, in one line saying why; the same split resumes."""
    st = _study()
    ident = runner.identity(st, {"kind": "test"}, 4)
    assert ident["split"] == "blocks of 8 scenarios"                # CPU: the same on any device count
    there = {**ident, "split": "each chunk over 2 devices"}
    runner.prepare_folder(tmp_path / "r", there, resume=False)
    now = {**ident, "split": "each chunk over 1 device"}
    with pytest.raises(runner.ResultsFolderError) as err:
        runner.prepare_folder(tmp_path / "r", now, resume=True)
    msg = str(err.value)
    assert "\n" not in msg and "each chunk over 2 devices" in msg and "each chunk over 1 device," in msg
    assert "last bits" in msg
    runner.prepare_folder(tmp_path / "r", there, resume=True)


# ---- non-finite metrics ----------------------------------------------------------------------------------
def _metrics(n=4):
    return {k: np.arange(n, dtype=np.float64) for k in adljax.METRICS}


def test_finite_metrics_pass():
    runner.check_finite(_metrics(), 0, np.float32)


def test_a_non_finite_metric_stops_the_run_naming_it_its_scenarios_and_float64():
    m = _metrics()
    m["bad_debt"][[1, 3]] = np.inf
    m["adl_notional"][2] = np.nan
    with pytest.raises(runner.NonFiniteMetrics) as err:
        runner.check_finite(m, 40, np.float32)
    msg = str(err.value)
    assert "\n" not in msg
    # the first non-finite metric in METRICS order (adl_notional comes before bad_debt), its scenario as the
    # study numbers it (the chunk starts at 40), the other
    assert msg.startswith("metric adl_notional is NaN in scenario 42 (also not finite: bad_debt): ")
    assert "float32" in msg and "float64" in msg and "not written" in msg
    # the command line exits with 2 for it, as for any bad input
    assert isinstance(err.value, adljax.InputError)


def test_in_float64_it_names_the_inputs_to_check():
    m = _metrics(8)
    m["vault_pnl"][[0, 1, 2, 3, 4, 5, 6]] = -np.inf
    with pytest.raises(runner.NonFiniteMetrics, match=r"^metric vault_pnl is infinite in scenarios 0, 1, 2, 3, 4 "
                                                      r"and 2 more: .*float64 range.*check the book"):
        runner.check_finite(m, 0, np.float64)

