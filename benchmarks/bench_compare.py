"""Side by side, in one run: the compiled engine against a plain NumPy baseline and the reference engine.

- engine vs NumPy (float32, the calm and cascade studies of ``bench_engine.py``
  at its sizes): ``adljax.simulate``'s compiled core against
  ``benchmarks/numpy_engine.py``, the same rules vectorised over scenarios
  and accounts in NumPy with a Python loop over steps (what a user would
  otherwise write; ``tests/test_numpy_baseline.py`` checks it gives the
  engine's answers);
- engine vs reference (float64, a small workload): ``adljax.reference.simulate``
  (plain Python, event by event) against the engine on exactly the same
  workload. Nothing is extrapolated: each figure is measured at its own size.

Engine: split over every local device, as ``adljax.simulate`` runs (on CPU
one device per core, adljax.use_cpu_cores; ``--devices 1`` for one); NumPy runs on
one core, as NumPy does. Compile time separately, then the median of
at least ``--repeats`` runs after a warm-up, each ended by ``block_until_ready`` (on the
reference's workload, whose runs take milliseconds and whose median of 3 moved by half between two
runs of this script, at least ``--ref-engine-repeats``), and more until they add up to a second
(``bench_engine.median_run``; the JSON gives the runs timed). NumPy and reference: the median of
their repeats (NumPy gets one warm-up run on the quick sizes).
Throughput is account·market·steps per second, rows = accounts + the vault
and LP rows. Ratios are run-time ratios (> 1: the engine is faster).

    python benchmarks/bench_compare.py --quick   # small sizes (32 x 512 x 4 x 100; reference 2 x 50 x 4 x 50), ~25 s
    python benchmarks/bench_compare.py           # bench_engine.py's sizes (256 x 4096 x 4 x 200; reference
                                                 # 8 x 200 x 4 x 200): 5-10 min on 2 CPU cores, mostly NumPy
                                                 # (2.5-5 min with --steps 100, as the README's figures)
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import jax
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_engine import study, time_engine  # noqa: E402
import numpy_engine  # noqa: E402

import adljax  # noqa: E402

#: The project's targets: engine / NumPy run-time ratio per study, engine / reference.
TARGETS = {"engine_over_numpy_calm": 4.0, "engine_over_numpy_cascade": 10.0, "engine_over_reference": 1000.0}
#: Metrics compared between engine and baseline at the benchmark size (float32: informational).
AGREEMENT_METRICS = ("market_liquidation_notional", "backstop_notional", "adl_notional", "bad_debt", "vault_pnl")


def _fmt(x: float) -> float:
    return float(f"{x:.4g}")


def _median_time(fn, repeats: int):
    times, out = [], None
    for _ in range(repeats):
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times), times, out


def _fired(metrics) -> dict:
    """Share of scenarios in which each stage did anything, and mean ADL steps."""
    m = {k: np.asarray(v, dtype=np.float64) for k, v in metrics.items()}
    out = {k: _fmt(float(np.mean(m[k] > 0))) for k in
           ("market_liquidation_notional", "backstop_notional", "adl_notional")}
    out["mean_adl_steps"] = _fmt(float(np.mean(m["adl_steps"])))
    return out


def _agreement(engine_metrics, other_metrics) -> dict:
    """Relative difference of the batch totals of a few metrics (0 where both are 0)."""
    out = {}
    for k in AGREEMENT_METRICS:
        a = float(np.sum(np.asarray(engine_metrics[k], dtype=np.float64)))
        b = float(np.sum(np.asarray(other_metrics[k], dtype=np.float64)))
        out[k] = _fmt(abs(a - b) / max(abs(a), abs(b))) if max(abs(a), abs(b)) > 0 else 0.0
    return out


def _entry(seconds: float, work: int, **extra) -> dict:
    return {"run_seconds": _fmt(seconds), "account_market_steps_per_second": _fmt(work / seconds), **extra}


def engine_vs_numpy(kind: str, s: int, n: int, a: int, t: int, repeats: int, np_repeats: int, np_warmup: bool,
                    devices: int | None = None):
    """One study in float32: engine (compile + median run) and the NumPy baseline (median run)."""
    venue, book, paths = study(kind, s, n, a, t)
    assert np.asarray(book.all_cash).dtype == np.float32
    work = s * (n + 2) * a * t
    jax.clear_caches()                     # calm and cascade share shapes: compile each afresh
    compile_s, run_s, metrics, used, runs = time_engine(venue, book, paths, repeats, devices)
    # The baseline gets host (NumPy) arrays, as its user would have them.
    np_book = jax.tree_util.tree_map(np.asarray, book)
    np_paths = adljax.Paths(np.asarray(paths.oracle), np.asarray(paths.depth))
    run_np = lambda: numpy_engine.simulate(venue, np_book, np_paths, dt=1.0, dtype=np.float32)
    if np_warmup:
        run_np()
    np_s, np_times, np_out = _median_time(run_np, np_repeats)
    return {
        "engine": _entry(run_s, work, compile_seconds=_fmt(compile_s), repeats=runs, devices=used),
        "numpy": _entry(np_s, work, repeats=np_repeats, all_seconds=[_fmt(x) for x in np_times]),
        "ratio_engine_over_numpy": _fmt(np_s / run_s),
        "stages_fired": _fired(metrics),
        "float32_relative_difference_of_totals": _agreement(metrics, np_out["metrics"]),
    }


def engine_vs_reference(kind: str, s: int, n: int, a: int, t: int, repeats: int, ref_repeats: int,
                        devices: int | None = None):
    """One small study in float64: engine (compile + median run) and the reference engine, same workload."""
    with jax.enable_x64(True):
        venue, book, paths = study(kind, s, n, a, t)
        assert np.asarray(book.all_cash).dtype == np.float64
        work = s * (n + 2) * a * t
        jax.clear_caches()
        compile_s, run_s, metrics, used, runs = time_engine(venue, book, paths, repeats, devices)
        ref_s, ref_times, ref_out = _median_time(
            lambda: adljax.reference.simulate(venue, book, paths, dt=1.0), ref_repeats)
    return {
        "engine": _entry(run_s, work, compile_seconds=_fmt(compile_s), repeats=runs, devices=used),
        "reference": _entry(ref_s, work, repeats=ref_repeats, all_seconds=[_fmt(x) for x in ref_times]),
        "ratio_engine_over_reference": _fmt(ref_s / run_s),
        "stages_fired": _fired(metrics),
        "float64_relative_difference_of_totals": _agreement(metrics, ref_out.metrics),
    }


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="small sizes (a smoke run, under a minute)")
    ap.add_argument("--scenarios", type=int, help="engine vs NumPy: scenarios (default 256; quick 32)")
    ap.add_argument("--accounts", type=int, help="engine vs NumPy: accounts (default 4096; quick 512)")
    ap.add_argument("--markets", type=int, help="markets, both comparisons (default 4)")
    ap.add_argument("--steps", type=int, help="engine vs NumPy: steps (default 200; quick 100)")
    ap.add_argument("--repeats", type=int,
                    help="engine timed runs after the warm-up, at least "
                         "(default 3; quick 5; more until they add up to 1 s)")
    ap.add_argument("--numpy-repeats", type=int, help="NumPy timed runs (default 2; quick 5)")
    ap.add_argument("--ref-scenarios", type=int, help="engine vs reference: scenarios (default 8; quick 2)")
    ap.add_argument("--ref-accounts", type=int, help="engine vs reference: accounts (default 200; quick 50)")
    ap.add_argument("--ref-steps", type=int, help="engine vs reference: steps (default 200; quick 50)")
    ap.add_argument("--ref-repeats", type=int, default=1, help="reference timed runs (default 1)")
    ap.add_argument("--ref-engine-repeats", type=int, default=30,
                    help="engine timed runs on the reference's workload, at least (default 30: milliseconds each)")
    ap.add_argument("--devices", type=int, help="local devices the engine splits the scenarios over (default: all; "
                                                "on CPU one per core, as adljax.simulate)")
    ap.add_argument("--out", help="JSON file (default benchmarks/results/compare.json; "
                                  "quick: benchmarks/results/compare_quick.json)")
    args = ap.parse_args(argv)
    adljax.use_cpu_cores()         # one JAX device per core, as `adljax run` has (JAX_NUM_CPU_DEVICES chooses)
    q = args.quick
    pick = lambda v, default, quick: v if v is not None else (quick if q else default)
    s, n = pick(args.scenarios, 256, 32), pick(args.accounts, 4096, 512)
    a, t = pick(args.markets, 4, 4), pick(args.steps, 200, 100)
    repeats, np_repeats = pick(args.repeats, 3, 5), pick(args.numpy_repeats, 2, 5)
    rs, rn, rt = pick(args.ref_scenarios, 8, 2), pick(args.ref_accounts, 200, 50), pick(args.ref_steps, 200, 50)
    out = pick(args.out, "benchmarks/results/compare.json", "benchmarks/results/compare_quick.json")

    devices = jax.devices()
    record = {
        "device": f"{devices[0].platform}: {devices[0].device_kind}",
        "devices": [str(d) for d in devices],
        "jax": jax.__version__, "numpy": np.__version__, "python": platform.python_version(),
        "host": platform.processor() or platform.machine(), "cpu_count": os.cpu_count(),
        "quick": q,
        "throughput_unit": "account·market·steps per second; rows = accounts + 2 (vault, LP)",
        "engine_vs_numpy": {"dtype": "float32",
                            "sizes": dict(scenarios=s, accounts=n, markets=a, steps=t),
                            "account_market_steps": s * (n + 2) * a * t, "studies": {}},
        "engine_vs_reference": {"dtype": "float64",
                                "sizes": dict(scenarios=rs, accounts=rn, markets=a, steps=rt),
                                "account_market_steps": rs * (rn + 2) * a * rt, "studies": {}},
    }
    for kind in ("calm", "cascade"):
        r = engine_vs_numpy(kind, s, n, a, t, repeats, np_repeats, np_warmup=q, devices=args.devices)
        record["engine_vs_numpy"]["studies"][kind] = r
        print(f"[float32 {s}x{n}x{a}x{t}] {kind:8s} engine {r['engine']['run_seconds']:.4g}s "
              f"(compile {r['engine']['compile_seconds']:.3g}s, {r['engine']['devices']} device(s))  "
              f"numpy {r['numpy']['run_seconds']:.4g}s  "
              f"-> engine {r['ratio_engine_over_numpy']:.3g}x numpy", flush=True)
    for kind in ("calm", "cascade"):
        r = engine_vs_reference(kind, rs, rn, a, rt, args.ref_engine_repeats, args.ref_repeats, devices=args.devices)
        record["engine_vs_reference"]["studies"][kind] = r
        print(f"[float64 {rs}x{rn}x{a}x{rt}] {kind:8s} engine {r['engine']['run_seconds']:.4g}s  "
              f"reference {r['reference']['run_seconds']:.4g}s  -> engine {r['ratio_engine_over_reference']:.4g}x "
              f"reference", flush=True)

    evn, evr = record["engine_vs_numpy"]["studies"], record["engine_vs_reference"]["studies"]
    ratios = {
        "engine_over_numpy_calm": evn["calm"]["ratio_engine_over_numpy"],
        "engine_over_numpy_cascade": evn["cascade"]["ratio_engine_over_numpy"],
        "engine_over_reference": evr["cascade"]["ratio_engine_over_reference"],
        "engine_over_reference_calm": evr["calm"]["ratio_engine_over_reference"],
    }
    record["ratios"] = ratios
    record["targets"] = TARGETS
    record["meets_targets"] = {k: bool(ratios[k] >= v) for k, v in TARGETS.items()}
    Path(out).parent.mkdir(parents=True, exist_ok=True)
    Path(out).write_text(json.dumps(record, indent=2, ensure_ascii=False) + "\n")
    print("ratios " + ", ".join(f"{k} {v:.4g}" for k, v in ratios.items()) + f"; figures in {out}")


if __name__ == "__main__":
    main()
