"""adljax.calibrate: the answer agrees with a brute-force grid search and holds with the hard engine; the
command prints and writes the same numbers, recomputed here by hand; on 2 devices it gives the one-device answer."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import jax
import numpy as np
import pytest

import adljax
from adljax import venues
from adljax.scenario import load_calibration
from adljax.study import Study, seed_keys
from adljax.generate import population

jax.config.update("jax_enable_x64", True)
ROOT = Path(__file__).resolve().parents[1]


def gap_study(n_accounts=120, n_steps=8, seed=1):
    """One market; each scenario a price gap of 0–10 % over three steps (its size drawn from the scenario's key).

    Bad debt falls steadily as the maintenance margin rises (the most leveraged rows are
    liquidated before the gap), so "the smallest margin with bad debt ≤ B" is well posed.
    """
    kb, kp, _ = seed_keys(seed)
    book = population(kb, n_accounts, [100_000.0], [50.0], long_share=[0.7], median_notional=50_000.0,
                      leverage_mode=25.0, markets_per_account=1, vault_cash=2e5, dtype=np.float64)

    def make_paths(first, k):
        drop = np.array([float(jax.random.uniform(jax.random.fold_in(kp, i), (), maxval=0.1))
                         for i in range(first, first + k)])
        ramp = np.clip((np.arange(n_steps) - 1) / 3.0, 0.0, 1.0)
        oracle = 100_000.0 * (1.0 - drop[:, None] * ramp[None, :])[:, :, None]
        return adljax.Paths(oracle, np.full_like(oracle, 2e6))

    venue = venues.hyperliquid(max_leverage=50.0, impact=0.0, maintenance_margin=0.02)
    return Study("gap", venue, book, 1.0, 256, n_steps, make_paths, ("BTC",), seed)


def test_calibrated_margin_agrees_with_grid_search_and_holds_on_fresh_scenarios():
    study = gap_study()
    bound = 10_000.0
    check_paths = study.make_paths(0, study.n_scenarios)      # the study's own scenarios: calibration never draws them

    def hard_bad_debt(mm):
        out = adljax.simulate(study.venue.replace(maintenance_margin=float(mm)), study.book, check_paths)
        return float(np.mean(out.metrics["bad_debt"]))

    # Brute force: the smallest margin on a fine grid whose hard-engine bad debt is within the bound.
    grid = np.linspace(0.015, 0.03, 41)                              # steps of 0.000375: a third of the tolerance
    curve = np.array([hard_bad_debt(mm) for mm in grid])
    assert curve[0] > 2 * bound and curve[-1] < 0.5 * bound          # the bound binds inside the grid
    grid_answer = grid[np.argmax(curve <= bound)]

    cal = adljax.calibrate(study, ["maintenance_margin"], minimize="margin_locked",
                           constraints={"bad_debt": bound}, temperature=0.2, scenarios=32, iterations=100)
    mm = float(cal.values["maintenance_margin"][0])
    assert abs(mm - grid_answer) <= 0.05 * grid_answer, (mm, grid_answer)

    # It holds with the hard engine on fresh scenarios (within their sampling error: the answer sits on the bound).
    check = cal.check(study)
    assert check["bad_debt"] <= 1.1 * bound, check
    assert hard_bad_debt(0.02) > 1.5 * bound                           # the venue's own margin did not
    # The history is what the optimiser saw, every iterate in range.
    assert len(cal.history) == 100
    assert all(1e-4 <= h["maintenance_margin"][0] <= 0.5 for h in cal.history)
    assert cal.venue.rules.temperature == 0.0 and cal.venue.maintenance(1)[0] == pytest.approx(mm)


def test_bad_calibration_arguments_name_the_field():
    study = gap_study(n_accounts=10)
    cases = [
        (dict(fields=["leverage"]), "fields"),
        (dict(fields=[]), "fields"),
        (dict(fields={"maintenance_margin": (0.2, 0.1)}), "fields.maintenance_margin"),
        (dict(fields=["insurance_fund"]), "insurance_fund"),
        (dict(fields=["maintenance_margin"], minimize="profit"), "minimize"),
        (dict(fields=["maintenance_margin"], constraints={"p_adl": 0.0}), "constraints.p_adl"),
        (dict(fields=["maintenance_margin"], constraints={"risk": 1.0}), "constraints"),
        (dict(fields=["maintenance_margin"], temperature=0.0), "temperature"),
        (dict(fields=["maintenance_margin"], scenarios=0), "scenarios"),
        (dict(fields=["maintenance_margin"], iterations=2.5), "iterations"),
    ]
    for kw, field in cases:
        with pytest.raises(adljax.InputError, match=field.replace(".", r"\.")):
            adljax.calibrate(study, **kw)
    with pytest.raises(adljax.InputError, match="study"):
        adljax.calibrate("scenarios/default.toml", ["maintenance_margin"])


def test_calibration_scenario_file_loads_and_is_checked(tmp_path):
    study, kw = load_calibration(ROOT / "scenarios" / "calibrate_margins.toml", scenarios=4, steps=5, accounts=10)
    assert kw["fields"] == ["maintenance_margin"] and kw["constraints"] == {"bad_debt": 10000.0}
    assert study.n_scenarios == 4 and study.book.n_accounts == 10
    text = (ROOT / "scenarios" / "calibrate_margins.toml").read_text()
    bad = tmp_path / "bad.toml"
    bad.write_text(text.replace("iterations = 150", "iterations = 150\nlearning_rte = 0.1"))
    with pytest.raises(adljax.InputError, match=r"\[calibrate\] unknown key 'learning_rte'"):
        load_calibration(bad)
    with pytest.raises(adljax.InputError, match="adljax calibrate"):
        adljax.scenario.load(ROOT / "scenarios" / "calibrate_margins.toml")
    with pytest.raises(adljax.InputError, match="no .calibrate. table"):
        load_calibration(ROOT / "scenarios" / "default.toml")


#: ``adljax calibrate`` in the tests: the shipped calibration file with a smaller vault (it declines some takeovers,
#: so ADL acts in some of the check scenarios), a bound on bad debt that the venue's margins break (so the
#: constraint's gradient, which differs from scenario to scenario, moves the answer) and a bound on P(ADL) (so the
#: command prints it); paths of 16 steps (the file's gap comes at 10 s), 8 iterations of 4 scenarios.
CLI_SIZES = {"scenarios": 8, "steps": 16, "accounts": 30}
CLI_CALIBRATE = {"iterations": 8, "scenarios": 4}
CLI_BOUNDS = {"bad_debt": 1500.0, "p_adl": 0.5}


def _cli_env() -> dict:
    # On 2 CPU devices (scenarios split over them), logging each compile. No compilation cache: the command
    # would otherwise use (and fill) the user's ~/.cache/adljax.
    return {**os.environ, "NO_COLOR": "1", "JAX_NUM_CPU_DEVICES": "2", "JAX_LOG_COMPILES": "1",
            "ADLJAX_COMPILATION_CACHE": "0"}


@pytest.fixture(scope="module")
def cli_calibration(tmp_path_factory):
    """``adljax calibrate`` run once on 2 CPU devices: ``(its completed process, calibration.json, the results
    folder, the scenario file)``."""
    folder = tmp_path_factory.mktemp("calibrate_cli")
    text = (ROOT / "scenarios" / "calibrate_margins.toml").read_text()
    for old, new in (("vault_cash = 1e6", "vault_cash = 2.3e4"),
                     ("bad_debt = 10000.0", "bad_debt = 1500.0\np_adl = 0.5")):
        assert text.count(old) == 1, old
        text = text.replace(old, new)
    path = folder / "calibrate_cli.toml"
    path.write_text(text)
    out = folder / "cal"
    cmd = [sys.executable, "-m", "adljax", "calibrate", str(path), "--iterations", str(CLI_CALIBRATE["iterations"]),
           "--scenarios", str(CLI_CALIBRATE["scenarios"]), "--check-scenarios", str(CLI_SIZES["scenarios"]),
           "--steps", str(CLI_SIZES["steps"]), "--accounts", str(CLI_SIZES["accounts"]), "--out", str(out)]
    res = subprocess.run(cmd, capture_output=True, text=True, cwd=folder, env=_cli_env(), timeout=600)
    assert res.returncode == 0, res.stderr
    return res, json.loads((out / "calibration.json").read_text()), out, path


def _printed_table(stdout: str) -> dict[str, list[str]]:
    """The body rows of the command's table, ``{first cell: [venue's numbers, calibrated]}``."""
    rows = [[c.strip() for c in line.split("│")[1:-1]] for line in stdout.splitlines() if line.startswith("│")]
    return {r[0]: r[1:] for r in rows}


def test_cli_calibrate_writes_its_answer_and_check(cli_calibration, tmp_path):
    res, rec, out, path = cli_calibration
    # The gradient program compiles once (the sharded outputs fed back as they were recompiled it twice more, half a
    # minute on this 2-core CPU); the hard check's scenarios are split over the 2 devices (scenario_map's program).
    assert res.stderr.count("Compiling jit(loss)") == 1, [ln for ln in res.stderr.splitlines() if "jit(loss)" in ln]
    assert "Compiling jit(per_device)" in res.stderr
    n_iter, n_check = CLI_CALIBRATE["iterations"], CLI_SIZES["scenarios"]
    assert len(rec["history"]) == n_iter and set(rec["check"]) >= {"bad_debt", "margin_locked", "p_adl",
                                                                    "feasible.bad_debt", "feasible.p_adl"}
    assert rec["constraints"] == CLI_BOUNDS and rec["minimize"] == {"margin_locked": 1.0}
    assert (out / "calibration.png").stat().st_size > 10_000

    # The answer is the mean of the last quarter of the iterates (8 // 4 = 2 of them); "last" the last one.
    mm = np.array(rec["values"]["maintenance_margin"])
    tail = np.array([h["maintenance_margin"] for h in rec["history"][-(n_iter // 4):]])
    assert mm.shape == (2,) and np.allclose(mm, tail.mean(axis=0), rtol=1e-12, atol=0)
    assert rec["last"]["maintenance_margin"] == rec["history"][-1]["maintenance_margin"]

    # What it prints is what it wrote, at the printed 4 digits. The venue's own margins by hand: Hyperliquid's
    # maintenance margin is half the initial margin at the file's max leverage, 1/(2·40) and 1/(2·25).
    g = lambda x: f"{x:,.4g}"
    table = _printed_table(res.stdout)
    assert table == {
        "maintenance_margin": ["0.0125, 0.02", ", ".join(g(x) for x in mm)],
        "margin_locked": [g(rec["start"]["margin_locked"]), g(rec["check"]["margin_locked"])],
        "bad_debt (≤ 1,500)": [g(rec["start"]["bad_debt"]), g(rec["check"]["bad_debt"])],
        "p_adl (≤ 0.5)": [g(rec["start"]["p_adl"]), g(rec["check"]["p_adl"])],
    }, res.stdout

    # The check and the start recomputed from the written numbers, by hand where the objective allows: the same
    # study (file, sizes) run with the hard engine on its own 8 scenarios.
    study, _ = load_calibration(path, **CLI_SIZES)
    paths = study.make_paths(0, n_check)
    start_prices = np.array([100_000.0, 4_000.0])                       # the file's markets; every path starts there
    assert np.array_equal(np.asarray(paths.oracle)[:, 0], np.broadcast_to(start_prices, (n_check, 2)))
    size = np.abs(np.asarray(study.book.size_am, np.float64)[:, :-2])  # [A, traders]: vault and LP rows left out
    for key, venue in (("start", study.venue), ("check", study.venue.replace(maintenance_margin=tuple(mm)))):
        got = rec[key]
        margins = venue.maintenance(2)
        # margin locked = Σ_traders Σ_a |size|·start price·mm (USD)
        assert got["margin_locked"] == pytest.approx(np.sum(size * (start_prices * margins)[:, None]), rel=1e-6)
        o = adljax.simulate(venue, study.book, paths, dt=study.dt, key=study.key)
        adl = np.asarray(o.metrics["adl_indicator"])
        # P(ADL): the share of the 8 scenarios in which ADL acted, exactly k/8
        assert got["p_adl"] == np.count_nonzero(adl > 0) / n_check, (key, adl)
        assert got["bad_debt"] == pytest.approx(float(np.mean(np.asarray(o.metrics["bad_debt"]))), rel=1e-5)
        if key == "check":
            assert got["feasible.bad_debt"] == (got["bad_debt"] <= CLI_BOUNDS["bad_debt"])
            assert got["feasible.p_adl"] == (got["p_adl"] <= CLI_BOUNDS["p_adl"])
    # Not vacuous: at the venue's margins ADL acts in some scenarios and not all, and the bad-debt bound is broken.
    assert 0 < rec["start"]["p_adl"] < 1 and rec["start"]["bad_debt"] > CLI_BOUNDS["bad_debt"]

    # A plain study is refused with one line and exit code 2.
    bad = subprocess.run([sys.executable, "-m", "adljax", "calibrate", str(ROOT / "scenarios" / "default.toml")],
                         capture_output=True, text=True, cwd=tmp_path, env=_cli_env(), timeout=300)
    assert bad.returncode == 2 and "Traceback" not in bad.stderr and len(bad.stderr.strip().splitlines()) == 1


def test_calibrate_on_two_devices_gives_the_one_device_answer(cli_calibration):
    """The command split every iteration's scenarios over 2 devices (adljax.parallel.sharding.scenario_map, the
    gradient summed across them); here the same calibration runs on this process's one device. Every iterate
    agrees to float32 rounding (measured: under 1e-5 relative; with one device's gradient dropped from the sum the
    margins move by 6e-3 at the second iterate and 2.5e-2 at the answer)."""
    _, rec, _, path = cli_calibration
    assert jax.local_device_count() == 1
    study, kw = load_calibration(path, **CLI_SIZES)
    cal = adljax.calibrate(study, **{**kw, **CLI_CALIBRATE})
    assert len(cal.history) == len(rec["history"])
    for mine, theirs in zip(cal.history, rec["history"]):
        assert set(mine) == set(theirs)
        for k in theirs:
            np.testing.assert_allclose(mine[k], theirs[k], rtol=1e-4, atol=1e-9,
                                       err_msg=f"iteration {mine['iteration']}: {k}")
    np.testing.assert_allclose(cal.values["maintenance_margin"], rec["values"]["maintenance_margin"], rtol=1e-4)
    # the margins moved (the comparison is not of two unmoved starts)
    assert np.all(np.abs(np.array(rec["values"]["maintenance_margin"]) / [0.0125, 0.02] - 1) > 0.02)
