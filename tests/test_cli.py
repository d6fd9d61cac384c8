"""The command line as a user drives it: ``python -m adljax ...`` in a subprocess, then the files it wrote.

Compilation dominates at these sizes, so the runs that simulate are few
(a two-venue comparison, a killed run and its resume, the default study
with its figures, inspect) and share one JAX compilation cache.
The help and bad-argument checks run ``adljax.cli.main`` in the test's own
process, but for one help page and two errors run as processes: a new
process spends 2-4 s importing JAX.

The two-venue comparison runs once for the module and is only read; every
other run writes under its own test's ``tmp_path``, so the tests pass alone
and in any order.
"""
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

from adljax import METRICS
from adljax.analysis import metrics
from adljax.analysis.inspection import moves
from adljax.cli.common import CACHE_ENV
from adljax.studies import runner

ROOT = Path(__file__).resolve().parent.parent
BOOK = ROOT / "scenarios" / "books" / "example.csv"

TINY = """
name = "tiny"
seed = 4
scenarios = 12
steps = 60
dt = 1.0

[venue]
preset = {preset}

[markets.ALT]
start = 1.0
max_leverage = 10
vol = 1.0
depth = 1e5
long_share = 0.7

[book]
accounts = 40
median_notional = 5000.0
leverage_mode = 8.0

[paths]
model = "merton"
jumps_per_hour = 30.0
jump_mean = -0.15
jump_std = 0.05
"""
VENUES = ["hyperliquid_builder", "bitmex"]


@pytest.fixture(scope="module")
def work(tmp_path_factory):
    """The module's folder: the two-venue study file and the comparison's results (read only by the tests)."""
    d = tmp_path_factory.mktemp("cli")
    (d / "two.toml").write_text(TINY.format(preset=json.dumps(VENUES)))
    return d


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    return tmp_path_factory.mktemp("jax-cache")


def adljax(*args, cwd, cache=None, env=None, timeout=600):
    e = {k: v for k, v in os.environ.items() if k != runner.STOP_ENV}
    e.update(JAX_PLATFORMS="cpu", PYTHONPATH=str(ROOT), ADLJAX_COMPILATION_CACHE=str(cache) if cache else "0",
             COLUMNS="200")
    if "ADLJAX_TEST_XLA_FLAGS" in e:          # the command as users run it: XLA's usual optimisation (conftest.py)
        e["XLA_FLAGS"] = e.pop("ADLJAX_TEST_XLA_FLAGS")
    e.update(env or {})
    return subprocess.run([sys.executable, "-m", "adljax", *map(str, args)], cwd=cwd, env=e, capture_output=True,
                          text=True, timeout=timeout)


def one_line_error(p):
    assert p.returncode == 2, (p.returncode, p.stdout, p.stderr)
    assert "Traceback" not in p.stderr, p.stderr
    lines = p.stderr.strip().splitlines()
    assert len(lines) == 1, p.stderr
    return lines[0]


def is_png(path: Path) -> bool:
    import matplotlib.image

    ok = path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    img = matplotlib.image.imread(path)
    return ok and img.ndim == 3 and img.shape[0] > 200 and img.shape[1] > 300


@pytest.fixture(scope="module")
def comparison(work, cache):
    p = adljax("run", work / "two.toml", "--chunk", 5, "--out", work / "cmp", "--no-plots", cwd=work, cache=cache)
    assert p.returncode == 0, p.stderr
    return p


# ---- run ---------------------------------------------------------------------------------------------------
def test_comparison_prints_one_table_and_writes_a_folder_per_venue(work, comparison):
    out = work / "cmp"
    rows = json.loads((out / "comparison.json").read_text())["venues"]
    assert [r["venue"] for r in rows] == VENUES
    for v in VENUES:
        assert comparison.stdout.count(v) == 1                       # one table, one row a venue
        s = json.loads((out / v / "summary.json").read_text())["statistics"]
        row = next(r for r in rows if r["venue"] == v)
        assert row["p_adl"] == s["p_adl"] and row["vault_loss_es99"] == s["vault_loss"]["es99"]


@pytest.mark.parametrize("venue", VENUES)
def test_results_folder_agrees_with_the_run(work, comparison, venue):
    out = work / "cmp" / venue
    t = pq.read_table(out / "scenarios.parquet")
    assert t.column_names == ["scenario", *METRICS]
    assert t.column("scenario").to_pylist() == list(range(12))       # one row per scenario
    m = {k: t.column(k).to_numpy() for k in METRICS}
    summary = json.loads((out / "summary.json").read_text())
    s = summary["statistics"]
    assert s["p_adl"] == np.mean(m["adl_indicator"] > 0)
    assert 0 < s["p_adl"] < 1                                         # the study is one where ADL sometimes fires
    assert s["vault_loss"]["var99"] == metrics.var(-m["vault_pnl"], 0.99)
    assert s["vault_loss"]["es95"] == metrics.expected_shortfall(-m["vault_pnl"], 0.95)
    assert s["bad_debt"]["mean"] == pytest.approx(m["bad_debt"].mean())
    assert s["max_conservation_error"] == m["conservation_error"].max()
    assert summary["sizes"] == {"scenarios": 12, "steps": 60, "accounts": 40, "markets": 1, "rows": 42,
                                "chunk": 5, "chunks": 3}
    assert summary["study"]["venue"] == venue and summary["jax"] and summary["device"].startswith("cpu")
    assert sorted(f.name for f in (out / "chunks").iterdir()) == [
        "00000000-00000004.parquet", "00000005-00000009.parquet", "00000010-00000011.parquet"]


def test_a_killed_run_resumes_to_the_numbers_of_an_uninterrupted_one(work, comparison, cache, tmp_path):
    (tmp_path / "one.toml").write_text(TINY.format(preset=json.dumps(VENUES[0])))
    out = tmp_path / "resumed"
    args = ("run", tmp_path / "one.toml", "--chunk", 5, "--out", out, "--no-plots")
    p = adljax(*args, cwd=tmp_path, cache=cache, env={runner.STOP_ENV: "1"})
    assert p.returncode == 1                                          # exited hard after its first chunk
    assert [f.name for f in (out / "chunks").iterdir()] == ["00000000-00000004.parquet"]
    assert not (out / "scenarios.parquet").exists()

    p = adljax(*args, "--resume", cwd=tmp_path, cache=cache)
    assert p.returncode == 0, p.stderr
    assert json.loads((out / "summary.json").read_text())["seconds"]["chunks_resumed"] == 1
    # the same study uninterrupted: the comparison's run of the same venue (same book, paths, keys and chunks)
    a = pq.read_table(out / "scenarios.parquet")
    b = pq.read_table(work / "cmp" / VENUES[0] / "scenarios.parquet")
    assert a.equals(b)

    # the finished folder: without --resume it is an error; --resume into it with another study is refused
    line = one_line_error(adljax(*args, cwd=tmp_path))
    assert "--resume" in line and "--out" in line
    line = one_line_error(adljax(*args, "--resume", "--seed", 9, cwd=tmp_path))
    assert "different study" in line and "seed" in line


def test_default_study_runs_with_no_scenario_file_and_draws_its_figures(cache, tmp_path):
    p = adljax("run", "--scenarios", 6, "--steps", 20, "--accounts", 30, "--chunk", 4, cwd=tmp_path, cache=cache)
    assert p.returncode == 0, p.stderr
    assert "default" in p.stdout and "P(ADL)" in p.stdout and "bad debt" in p.stdout
    out = tmp_path / "results" / "default"                            # the default --out
    t = pq.read_table(out / "scenarios.parquet")
    assert t.num_rows == 6
    summary = json.loads((out / "summary.json").read_text())
    assert summary["study"]["name"] == "default" and summary["sizes"]["chunks"] == 2
    assert summary["statistics"]["p_adl"] == np.mean(t.column("adl_indicator").to_numpy() > 0)
    figures = summary["files"]["figures"]
    assert {"vault_loss.png", "bad_debt.png", "adl.png", "waterfall.png", "price_paths.png"} == set(figures)
    assert all(is_png(out / f) for f in figures)
    samples = summary["files"]["sample_scenarios"]
    assert samples and all(0 <= int(i) < 6 for i in samples)


# ---- inspect -----------------------------------------------------------------------------------------------
def test_inspect_prints_queue_and_distances(tmp_path):
    p = adljax("inspect", BOOK, "--markets", "BTC,ETH", "--prices", "100000,4000", cwd=tmp_path)
    assert p.returncode == 0, p.stderr
    out = p.stdout
    assert "ADL queue" in out and "whale_long" in out and "degen_3 [BTC iso]" in out
    # whale_long: AV = 450k + 40·2000 + 300·100 = 560k, D = 5.2M (BTC 4M, ETH 1.2M), MR = K = 74k (Hyperliquid's
    # tables of the two coins: BTC 1.25 %, ETH 2 %, both under their first bound): liquidatable at
    # x = (74k − 560k)/(5.2M − 74k) = −9.48 %, bankrupt at −560k/5.2M = −10.77 %
    assert "-9.5 %" in out and "-10.8 %" in out
    assert "all markets moving together" in out


def test_moves_by_hand():
    # one long of 10 units at 100 with 100 cash: AV = 100 + 10·(m − 100); at m = 100 MR = 1000·0.05 = 50
    mv = moves([100.0], [[10.0]], [[100.0]], [100.0], [0.05], 0.5)
    # AV < MR: 100 + 1000x < 50 + 50x → x < −50/950
    assert mv["liquidation"][0] == pytest.approx(-50 / 950)
    assert mv["backstop"][0] == pytest.approx(-75 / 975)                 # 100 + 1000x < 25 + 25x
    assert mv["bankruptcy"][0] == pytest.approx(-0.1)
    # a short goes up; a hedged book never crosses when every market moves together; "each" moves one market
    mv = moves([100.0, 100.0], [[-10.0, 0.0], [10.0, -10.0]], [[100.0, 0.0], [100.0, 100.0]], [100.0, 100.0],
               [0.05, 0.05], 0.5)
    assert mv["bankruptcy"][0] == pytest.approx(0.1)
    assert np.isnan(mv["bankruptcy"][1])
    each = moves([100.0], [[10.0, -10.0]], [[100.0, 100.0]], [100.0, 100.0], [0.05, 0.05], 0.5, mode="each")
    assert each["bankruptcy"][0, 0] == pytest.approx(-0.1) and each["bankruptcy"][0, 1] == pytest.approx(0.1)
    # already past, and a threshold that needs a price below 0
    mv = moves([10.0, 2000.0], [[10.0], [10.0]], [[100.0], [100.0]], [100.0], [0.05], 0.5)
    assert mv["liquidation"][0] == 0.0 and np.isnan(mv["bankruptcy"][1])


# ---- help and errors ---------------------------------------------------------------------------------------
def in_process(*args, cwd, monkeypatch, capsys):
    """``adljax.cli.main(args)`` in this process (exit code, stdout, stderr), as ``python -m adljax``
    would run it, less the seconds a new Python process takes to import JAX; no compilation cache."""
    from adljax import cli

    monkeypatch.chdir(cwd)
    monkeypatch.setenv(CACHE_ENV, "0")
    monkeypatch.setattr(sys, "argv", ["adljax"])
    capsys.readouterr()
    try:
        code = cli.main([str(a) for a in args])
    except SystemExit as stop:           # argparse's own exits (--help, bad options)
        code = stop.code
    out, err = capsys.readouterr()
    return subprocess.CompletedProcess(args, code, out, err)


def test_help_has_an_example(tmp_path, monkeypatch, capsys):
    p = adljax("run", "--help", cwd=tmp_path)                   # one as a process, the others in this one
    assert p.returncode == 0 and "example" in p.stdout and "adljax run" in p.stdout
    for command in ["calibrate", "inspect"]:
        p = in_process(command, "--help", cwd=tmp_path, monkeypatch=monkeypatch, capsys=capsys)
        assert p.returncode == 0 and "example" in p.stdout and f"adljax {command}" in p.stdout


BAD = {
    "zero scenarios": ["run", "--scenarios", "0"],
    "chunk not a number": ["run", "--chunk", "abc"],
    "unknown option": ["run", "--colour"],
    "unknown command": ["frobnicate"],
    "missing scenario file": ["run", "nowhere.toml"],
    "folder as scenario file": ["run", "."],
    "not TOML": ["run", "{bad_toml}"],
    "unknown key": ["run", "{bad_key}"],
    "out is a file": ["run", "{bad_key}", "--out", "{bad_key}"],
    "missing book": ["inspect", "nowhere.csv", "--markets", "BTC", "--prices", "1"],
    "prices do not match markets": ["inspect", str(BOOK), "--markets", "BTC,ETH", "--prices", "1"],
    "market not in the list": ["inspect", str(BOOK), "--markets", "BTC", "--prices", "100000"],
    "unknown venue": ["inspect", str(BOOK), "--markets", "BTC,ETH", "--prices", "1,2", "--venue", "nope"],
    "bad price list": ["inspect", str(BOOK), "--markets", "BTC,ETH", "--prices", "1,,2"],
    "no bench command": ["bench"],
}


#: Run as a new process (``python -m adljax``): an argparse error and an error of the study's file. The
#: others run ``adljax.cli.main`` in the test's process (each new process spends 2-4 s importing JAX).
AS_A_PROCESS = {"unknown command", "unknown key"}


@pytest.mark.parametrize("case", list(BAD), ids=list(BAD))
def test_bad_arguments_get_one_line_and_exit_2(case, tmp_path, monkeypatch, capsys):
    (tmp_path / "bad.toml").write_bytes(b"name = \xff\xfe [[[")
    (tmp_path / "key.toml").write_text("[markets.BTC]\nstart = 1.0\ndepth = 1e6\ncolour = 3\n")
    args = [a.format(bad_toml=tmp_path / "bad.toml", bad_key=tmp_path / "key.toml") for a in BAD[case]]
    p = (adljax(*args, cwd=tmp_path) if case in AS_A_PROCESS
         else in_process(*args, cwd=tmp_path, monkeypatch=monkeypatch, capsys=capsys))
    line = one_line_error(p)
    assert line.startswith("adljax")
    assert not (tmp_path / "results").exists()


def test_unreadable_scenario_file(tmp_path, monkeypatch, capsys):
    # a symbolic link to itself: no user, root included, can read it
    loop = tmp_path / "loop.toml"
    loop.symlink_to(loop.name)
    line = one_line_error(in_process("run", loop, cwd=tmp_path, monkeypatch=monkeypatch, capsys=capsys))
    assert line.startswith(f"adljax: error: {loop}: cannot read the scenario file (") and "symbolic links" in line
    if os.geteuid() != 0:                     # a file without read permission (root reads it anyway)
        secret = tmp_path / "secret.toml"
        secret.write_text("name = 'x'\n")
        secret.chmod(0)
        line = one_line_error(in_process("run", secret, cwd=tmp_path, monkeypatch=monkeypatch, capsys=capsys))
        assert line == f"adljax: error: {secret}: cannot read the scenario file (Permission denied)"


# ---- runner pieces -----------------------------------------------------------------------------------------
def test_chunks_cover_the_study_in_order():
    assert runner.chunk_bounds(12, 5) == [(0, 5), (5, 5), (10, 2)]
    assert runner.chunk_bounds(4, 4) == [(0, 4)]
    assert runner.chunk_name(64, 64) == "00000064-00000127.parquet"
