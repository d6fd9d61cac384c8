"""adljax.calibrate: the answer agrees with a brute-force grid search and holds with the hard engine."""
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
    grid = np.linspace(0.015, 0.03, 61)
    curve = np.array([hard_bad_debt(mm) for mm in grid])
    assert curve[0] > 2 * bound and curve[-1] < 0.5 * bound          # the bound binds inside the grid
    grid_answer = grid[np.argmax(curve <= bound)]

    cal = adljax.calibrate(study, ["maintenance_margin"], minimize="margin_locked",
                           constraints={"bad_debt": bound}, temperature=0.2, scenarios=32, iterations=150)
    mm = float(cal.values["maintenance_margin"][0])
    assert abs(mm - grid_answer) <= 0.05 * grid_answer, (mm, grid_answer)

    # It holds with the hard engine on fresh scenarios (within their sampling error: the answer sits on the bound).
    check = cal.check(study)
    assert check["bad_debt"] <= 1.1 * bound, check
    assert hard_bad_debt(0.02) > 1.5 * bound                           # the venue's own margin did not
    # The history is what the optimiser saw, every iterate in range.
    assert len(cal.history) == 150
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


def test_cli_calibrate_writes_its_answer_and_check(tmp_path):
    out = tmp_path / "cal"
    cmd = [sys.executable, "-m", "adljax", "calibrate", str(ROOT / "scenarios" / "calibrate_margins.toml"),
           "--iterations", "4", "--scenarios", "4", "--check-scenarios", "8", "--steps", "10", "--accounts", "30",
           "--out", str(out)]
    # On 2 CPU devices (scenarios split over them), logging each compile: the gradient program compiles once
    # (the sharded outputs fed back as they were recompiled it twice more, half a minute on this 2-core CPU).
    # No compilation cache: the command would otherwise use (and fill) the user's ~/.cache/adljax.
    env = {**os.environ, "NO_COLOR": "1", "JAX_NUM_CPU_DEVICES": "2", "JAX_LOG_COMPILES": "1",
           "ADLJAX_COMPILATION_CACHE": "0"}
    res = subprocess.run(cmd, capture_output=True, text=True, cwd=tmp_path, env=env, timeout=600)
    assert res.returncode == 0, res.stderr
    assert res.stderr.count("Compiling jit(loss)") == 1, [ln for ln in res.stderr.splitlines() if "jit(loss)" in ln]
    rec = json.loads((out / "calibration.json").read_text())
    assert len(rec["history"]) == 4 and set(rec["check"]) >= {"bad_debt", "margin_locked", "feasible.bad_debt"}
    assert len(rec["values"]["maintenance_margin"]) == 2
    assert (out / "calibration.png").stat().st_size > 10_000
    assert "calibrated" in res.stdout and "maintenance_margin" in res.stdout
    # A plain study is refused with one line and exit code 2.
    bad = subprocess.run([sys.executable, "-m", "adljax", "calibrate", str(ROOT / "scenarios" / "default.toml")],
                         capture_output=True, text=True, cwd=tmp_path, env=env, timeout=300)
    assert bad.returncode == 2 and "Traceback" not in bad.stderr and len(bad.stderr.strip().splitlines()) == 1
