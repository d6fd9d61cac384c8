"""Time the compiled engine on the default study (``adljax run``'s) at a few numbers of scenarios; write a JSON file.

Compile time is measured apart; run time is the median of the timed runs of
:func:`bench_engine.median_run` (at least ``--repeats``, more until they add
up to a second), each ended by ``block_until_ready``. Throughput is in
row·market·steps per second (rows = accounts + the vault and liquidity-provider
rows). The scenarios are split over every local device, as
``adljax.simulate`` splits them; on a CPU that is JAX's one device unless
``JAX_NUM_CPU_DEVICES`` asks for more (``JAX_NUM_CPU_DEVICES=2`` on two
cores, as ``adljax run`` does by itself).

    python benchmarks/bench_default.py                           # 16, 64, 256 scenarios × 120 steps × 1,000 accounts
    python benchmarks/bench_default.py --sizes 8,32 --steps 60 --accounts 200 --out /tmp/default.json
"""
from __future__ import annotations

import argparse
import json
import os
import platform
from pathlib import Path

import jax
import numpy as np

import adljax
from adljax.study import default_study
from bench_engine import compile_engine, median_run


def sizes(text: str) -> list[int]:
    """``"16,64,256"`` → ``[16, 64, 256]`` (each a whole number >= 1)."""
    try:
        out = [int(t) for t in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected numbers of scenarios separated by commas, got {text!r}") from None
    if not out or min(out) < 1:
        raise argparse.ArgumentTypeError(f"every number of scenarios must be at least 1, got {text!r}")
    return out


def time_size(s: int, steps: int, accounts: int, repeats: int, devices: int | None) -> dict:
    """One size of the default study (float32): compile seconds, median run seconds, runs timed, throughput."""
    st = default_study(n_scenarios=s, n_steps=steps, n_accounts=accounts, dtype=np.float32)
    exe, args, used, compile_s = compile_engine(st.venue, st.book, st.paths, devices)
    run_s, _, runs = median_run(exe, args, repeats)
    rows, a = st.book.n_accounts + 2, st.book.n_markets
    return {"scenarios": s, "accounts": st.book.n_accounts, "markets": a, "steps": steps, "devices": used,
            "compile_s": round(compile_s, 3), "run_s": run_s, "runs": runs, "scenarios_per_s": s / run_s,
            "row_market_steps_per_s": s * rows * a * steps / run_s}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", type=sizes, default=[16, 64, 256], help="numbers of scenarios (default 16,64,256)")
    ap.add_argument("--steps", type=int, default=120, help="steps (default 120)")
    ap.add_argument("--accounts", type=int, default=1000, help="accounts (default 1000)")
    ap.add_argument("--repeats", type=int, default=3, help="timed runs at least (default 3)")
    ap.add_argument("--devices", type=int, default=None, help="local devices to split the scenarios over "
                    "(default: all)")
    ap.add_argument("--out", default="benchmarks/results/default.json")
    args = ap.parse_args(argv)
    adljax.use_cpu_cores()         # one JAX device per core, as `adljax run` has (JAX_NUM_CPU_DEVICES chooses)
    dev = jax.devices()[0]
    record = {"device": f"{dev.platform}: {dev.device_kind}", "host": platform.processor() or platform.machine(),
              "cpu_count": os.cpu_count(), "jax": jax.__version__, "adljax": adljax.__version__, "study": "default",
              "dtype": "float32", "steps": args.steps, "accounts": args.accounts, "repeats": args.repeats, "runs": []}
    for s in args.sizes:
        r = time_size(s, args.steps, args.accounts, args.repeats, args.devices)
        record["runs"].append(r)
        print(f"{s:6d} scenarios  {r['devices']} device(s)  compile {r['compile_s']:6.2f}s  run {r['run_s']:7.3f}s "
              f"({r['runs']} runs)  {r['scenarios_per_s']:8.1f} scenarios/s  {r['row_market_steps_per_s']:.3g} "
              "row·market·steps/s")
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(record, indent=2) + "\n")
    print(f"written: {args.out}")


if __name__ == "__main__":
    main()
