"""The engine's speed and memory as each size grows: scenarios, accounts, markets and steps.

From a base size (default 64 scenarios × 1,024 accounts × 4 markets × 100
steps), one size is varied at a time (the others at the base), for the calm
and the cascade study of ``bench_engine.py``. Each point: compile time apart,
the median of at least ``--repeats`` runs after a warm-up (``block_until_ready``), and of more
until they add up to a second (``bench_engine.median_run``; each point gives its ``runs``),
throughput in account·market·steps per second (rows = accounts + 2), and the
compiled program's memory by XLA's own account (``memory_analysis()``:
arguments, outputs and temporaries, per device and for all the devices that
run at once). The summary says how memory grows along each size, and checks
:mod:`adljax.chunking`'s estimate, which sizes ``adljax.simulate``'s chunks to
the device's memory without the user choosing, against every measured program.

    python benchmarks/bench_sweep.py            # ~5 min on 2 CPU cores; writes benchmarks/results/sweep.json
    python benchmarks/bench_sweep.py --quick    # a smoke run at small sizes (~2 min)
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_engine import compile_engine, median_run, study  # noqa: E402

import adljax  # noqa: E402
from adljax.analysis.metrics import p_adl  # noqa: E402
from adljax.chunking import bytes_per_scenario, scenarios_per_chunk  # noqa: E402

AXES = ("scenarios", "accounts", "markets", "steps")
BASE = dict(scenarios=64, accounts=1024, markets=4, steps=100)
VALUES = dict(scenarios=(16, 64, 256), accounts=(256, 1024, 4096), markets=(1, 2, 4, 8), steps=(25, 100, 400))
QUICK_BASE = dict(scenarios=16, accounts=256, markets=2, steps=50)
QUICK_VALUES = dict(scenarios=(16, 64), accounts=(256, 1024), markets=(2, 4), steps=(25, 100))


def _g(x: float) -> float:
    return float(f"{x:.4g}")


def measure(kind: str, size: dict, repeats: int, devices: int | None) -> dict:
    """One study at one size: compile, median run, throughput and XLA's memory account."""
    s, n, a, t = (size[k] for k in AXES)
    venue, book, paths = study(kind, s, n, a, t)
    exe, args, d, compile_s = compile_engine(venue, book, paths, devices)
    run_s, (_, metrics, _), runs = median_run(exe, args, repeats)
    m = exe.memory_analysis()
    per_device = (m.argument_size_in_bytes + m.output_size_in_bytes + m.temp_size_in_bytes
                  - m.alias_size_in_bytes)
    itemsize = jnp.dtype(jnp.result_type(float)).itemsize
    rows = n + 2
    cells = s * rows * a                               # scenario·row·market
    total = per_device * d                             # the devices run at once (on CPU, one memory)
    estimate = s * bytes_per_scenario(rows, a, t, itemsize)
    return {
        "size": dict(size), "devices": d, "compile_seconds": _g(compile_s), "run_seconds": _g(run_s), "runs": runs,
        "account_market_steps_per_second": _g(s * rows * a * t / run_s),
        "memory_bytes": {"arguments": int(m.argument_size_in_bytes), "outputs": int(m.output_size_in_bytes),
                         "temporaries": int(m.temp_size_in_bytes), "aliased": int(m.alias_size_in_bytes),
                         "per_device": int(per_device), "all_devices": int(total)},
        "bytes_per_scenario_row_market_item": _g(total / (cells * itemsize)),
        "chunk_estimate_bytes": int(estimate),
        # how much of the waterfall the study ran: the share of steps with ADL (a scenario's mean)
        "share_of_steps_with_adl": _g(float(np.mean(np.asarray(metrics["adl_steps"]))) / t),
        "share_of_scenarios_with_adl": _g(p_adl(metrics)),
        "measured_over_estimate": _g(total / estimate),
    }


def growth(points: list[dict], axis: str) -> dict:
    """How throughput and memory change from the smallest to the largest value of ``axis``."""
    lo, hi = points[0], points[-1]
    x = hi["size"][axis] / lo["size"][axis]
    mem = lambda p, k: p["memory_bytes"][k]
    return {
        "size_ratio": _g(x),
        "memory_ratio": _g(mem(hi, "all_devices") / mem(lo, "all_devices")),
        "temporaries_ratio": _g(mem(hi, "temporaries") / mem(lo, "temporaries")),
        "throughput_ratio": _g(hi["account_market_steps_per_second"] / lo["account_market_steps_per_second"]),
    }


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="small sizes, a smoke run")
    ap.add_argument("--repeats", type=int, default=3,
                    help="timed runs after the warm-up, at least (default 3; more until they add up to 1 s)")
    ap.add_argument("--devices", type=int, default=None,
                    help="local devices to split the scenarios over (default: all; on CPU one per core)")
    ap.add_argument("--studies", default="calm,cascade", help="comma-separated: calm, cascade (default both)")
    ap.add_argument("--out", help="JSON file (default benchmarks/results/sweep.json; quick: sweep_quick.json)")
    args = ap.parse_args(argv)
    adljax.use_cpu_cores()         # one JAX device per core, as `adljax run` has (JAX_NUM_CPU_DEVICES chooses)
    base, values = (QUICK_BASE, QUICK_VALUES) if args.quick else (BASE, VALUES)
    out = Path(args.out or ("benchmarks/results/sweep_quick.json" if args.quick else "benchmarks/results/sweep.json"))
    kinds = [k.strip() for k in args.studies.split(",") if k.strip()]
    bad = [k for k in kinds if k not in ("calm", "cascade")]
    if bad or not kinds:
        ap.error(f"--studies: expected calm and/or cascade, got {args.studies!r}")

    dev = jax.devices()[0]
    itemsize = jnp.dtype(jnp.result_type(float)).itemsize
    record = {
        "device": f"{dev.platform}: {dev.device_kind}", "devices": [str(x) for x in jax.local_devices()],
        "host": platform.processor() or platform.machine(), "cpu_count": os.cpu_count(),
        "jax": jax.__version__, "numpy": np.__version__, "python": platform.python_version(),
        "dtype": str(jnp.result_type(float)), "quick": args.quick, "repeats": args.repeats,
        "base": base, "values": {k: list(v) for k, v in values.items()},
        "throughput_unit": "account·market·steps per second; rows = accounts + 2 (vault, LP)",
        "memory_note": ("XLA's memory_analysis() of the compiled program: arguments + outputs + temporaries "
                        "- aliased, per device; all_devices = per_device x devices (they run at once)"),
        "studies": {},
    }
    started = time.perf_counter()
    for kind in kinds:
        by_axis, done = {}, {}
        for axis in AXES:
            pts = []
            for v in values[axis]:
                size = dict(base, **{axis: v})
                key = tuple(size[k] for k in AXES)
                if key not in done:           # the base point is shared by every axis
                    done[key] = measure(kind, size, args.repeats, args.devices)
                    p = done[key]
                    print(f"{kind:8s} {'x'.join(map(str, key)):>18s}  {p['devices']} dev  "
                          f"compile {p['compile_seconds']:5.1f}s  "
                          f"run {p['run_seconds']:8.4f}s  {p['account_market_steps_per_second']:9.3g}/s  "
                          f"ADL in {p['share_of_steps_with_adl']:4.0%} of steps  "
                          f"memory {p['memory_bytes']['all_devices'] / 2**20:8.1f} MiB "
                          f"({p['measured_over_estimate']:.2f} of the chunk estimate)", flush=True)
                pts.append(done[key])
            by_axis[axis] = {"points": pts, "growth": growth(pts, axis)}
        record["studies"][kind] = by_axis

    allp = [p for st in record["studies"].values() for ax in st.values() for p in ax["points"]]
    record["chunk_estimate_bounds_every_program"] = bool(all(p["measured_over_estimate"] <= 1.0 for p in allp))
    record["largest_measured_over_estimate"] = max(p["measured_over_estimate"] for p in allp)
    # What adljax.simulate would choose on this machine for a study at the scale (the
    # estimate, not a measurement): scenarios a chunk for 10,000 accounts x 4 markets x 1,000 steps.
    d = len(jax.local_devices())
    record["chunk_at_10000_accounts_4_markets_1000_steps"] = {
        "scenarios_a_chunk": scenarios_per_chunk(10_002, 4, 1000, itemsize, n_devices=d), "devices": d}
    record["seconds"] = round(time.perf_counter() - started, 1)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(record, indent=2, ensure_ascii=False) + "\n")
    for kind, st in record["studies"].items():
        print(kind + ": " + "; ".join(
            f"{ax} x{g['size_ratio']:g}: memory x{g['memory_ratio']:g} (temporaries x{g['temporaries_ratio']:g}), "
            f"throughput x{g['throughput_ratio']:g}" for ax, g in ((a, st[a]["growth"]) for a in AXES)))
    print(f"chunk estimate bounds every program: {record['chunk_estimate_bounds_every_program']} "
          f"(largest measured/estimate {record['largest_measured_over_estimate']:.2f}); figures in {out}")


if __name__ == "__main__":
    main()
