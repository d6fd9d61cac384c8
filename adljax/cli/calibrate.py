"""``adljax calibrate``: venue numbers chosen by gradient descent, then checked with the hard engine."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from .common import UsageError, enable_x64, int_at_least, stdout_console

CALIBRATE_EPILOG = """\
examples:
  adljax calibrate scenarios/calibrate_margins.toml
  adljax calibrate scenarios/calibrate_margins.toml --iterations 40 --out results/quick-cal

The file is a scenario file with a [calibrate] table (fields, minimize, constraints,
temperature, scenarios per iteration, iterations, learning_rate; see the file and
adljax.scenario.load_calibration). Each iteration draws fresh scenarios; the answer
(the mean of the last quarter of the iterations) is then run with the hard engine on
the study's own scenarios, which the calibration never drew, and compared with the
venue's starting numbers. The folder gets calibration.json (answer, check, history)
and calibration.png."""


def add_parser(sub, fmt) -> None:
    """The ``calibrate`` command's arguments."""
    p = sub.add_parser("calibrate", help="choose venue numbers by gradient descent (a scenario file with "
                       "[calibrate])", description="Calibrate the fields a scenario file's [calibrate] table names "
                       "with the smooth engine and optax, then check the answer with the hard engine on fresh "
                       "scenarios.", epilog=CALIBRATE_EPILOG, formatter_class=fmt)
    p.add_argument("scenario", metavar="SCENARIO.toml", help="a scenario file with a [calibrate] table")
    p.add_argument("--iterations", type=int_at_least(1), metavar="N", help="optimiser steps (default: the file's)")
    p.add_argument("--scenarios", type=int_at_least(1), metavar="N",
                   help="fresh scenarios per iteration (default: the file's)")
    p.add_argument("--check-scenarios", type=int_at_least(1), metavar="N",
                   help="scenarios the answer is checked on (default: the file's `scenarios`)")
    p.add_argument("--steps", type=int_at_least(2), metavar="N", help="steps per path (default: the file's)")
    p.add_argument("--accounts", type=int_at_least(2), metavar="N", help="accounts in a generated book")
    p.add_argument("--out", metavar="DIR", help="results folder (default results/<study name>-calibration)")
    p.add_argument("--no-plots", action="store_true", help="skip calibration.png")
    p.add_argument("--float64", action="store_true", help="run in float64 (the file's dtype must say so too)")
    p.set_defaults(func=main)


def main(args) -> int:
    from rich.table import Table

    from ..analysis import plots
    from ..analysis.calibration import assess, calibrate
    from ..studies import runner, scenario

    if args.float64:
        enable_x64()
    path = Path(args.scenario)
    if path.is_dir():
        raise UsageError(f"{path}: is a folder, not a scenario file")
    if not path.exists():
        raise UsageError(f"{path}: no such scenario file")
    sizes = {k: v for k, v in (("scenarios", args.check_scenarios), ("steps", args.steps),
                               ("accounts", args.accounts)) if v is not None}
    study, kw = scenario.load_calibration(path, size_names={"scenarios": "--check-scenarios", "steps": "--steps",
                                                            "accounts": "--accounts"}, **sizes)
    if args.iterations is not None:
        kw["iterations"] = args.iterations
    if args.scenarios is not None:
        kw["scenarios"] = args.scenarios
    names = {k: f"--{k}" if getattr(args, k) is not None else f"{path}: [calibrate] {k}"
             for k in ("scenarios", "iterations")}
    scenario.check_calibration_size(study, kw.get("scenarios", 64), kw.get("iterations", 150), names)
    out = Path(args.out) if args.out is not None else Path("results") / f"{study.name}-calibration"
    if out.exists() and not out.is_dir():
        raise UsageError(f"--out {out}: is a file, not a folder")
    console = stdout_console()
    console.print(f"[bold]{study.name}[/bold]: calibrating {', '.join(kw['fields'])} over "
                  f"{kw.get('iterations', 150)} iterations of {kw.get('scenarios', 64)} fresh scenarios")
    cal = calibrate(study, progress=True, **kw)
    start = assess(study, level=cal.level)
    check = cal.check(study)
    table = Table(title=f"{study.name}: hard engine on the study's {study.n_scenarios} scenarios "
                        "(not used to calibrate)")
    for c in ("", "venue's numbers", "calibrated"):
        table.add_column(c, justify="right")
    for k, v in cal.values.items():
        table.add_row(k, _fmt(_start_value(study, k)), _fmt(v))
    for k in list(cal.minimize) + [c for c in cal.constraints if c not in cal.minimize]:
        bound = f" (≤ {cal.constraints[k]:,.4g})" if k in cal.constraints else ""
        table.add_row(k + bound, f"{start[k]:,.4g}", f"{check[k]:,.4g}")
    console.print(table)
    out.mkdir(parents=True, exist_ok=True)
    record = {"study": study.name, "scenario_file": str(path), "values": {k: np.asarray(v).tolist() for k, v in
              cal.values.items()}, "last": {k: np.asarray(v).tolist() for k, v in cal.last.items()},
              "minimize": cal.minimize, "constraints": cal.constraints, "temperature": cal.temperature,
              "level": cal.level, "check": check, "start": start, "history": cal.history}
    runner.write_json(out / "calibration.json", record)
    if not args.no_plots:
        plots.calibration(cal.history, cal.constraints, list(cal.minimize), list(cal.values),
                          out / "calibration.png", study.name)
    console.print(f"written: {out}")
    return 0


def _start_value(study, field: str):
    from ..analysis.calibration import start_values

    return start_values(study.venue, study.book, study.book.n_markets, [field])[field]


def _fmt(v) -> str:
    a = np.atleast_1d(np.asarray(v, dtype=float))
    return ", ".join(f"{x:,.4g}" for x in a)
