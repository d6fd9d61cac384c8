"""Time the calibration path: the smooth engine forward, and forward + gradient; memory against steps.

For the cascade study of bench_engine.py in the smooth mode (temperature
0.1): compile time apart, then the median of repeated runs after a warm-up
(``block_until_ready``) of (a) the forward run of the objective
``bad_debt + p_adl + margin_locked`` and (b) its value and gradient with
respect to every market's maintenance margin and the vault's capital. Also
XLA's own account of the gradient program's temporary memory at several
horizons: with the step rematerialised in √T segments it should grow about
as √T, not as T.

    python benchmarks/bench_gradient.py
    python benchmarks/bench_gradient.py --scenarios 64 --accounts 1024 --steps 100
"""
from __future__ import annotations

import argparse
import json
import platform
import statistics
import time
from pathlib import Path

import jax
import jax.numpy as jnp

import adljax
from adljax import objectives
from adljax.analysis.calibration import apply
from adljax.engine.waterfall import batch_book, prepare, run, scenario_keys
from bench_engine import study


def objective_fn(venue, book, paths):
    params0, _, p = prepare(venue, book, paths, 1.0, batch=False)
    keys = scenario_keys(None, p.n_scenarios)

    def f(x):
        a = book.n_markets
        params, b = apply(params0, book, {"maintenance_margin": x[:a], "vault_capital": x[a]})
        bb = batch_book(b, p.n_scenarios)
        _, m, _ = run(params, bb, p.oracle, p.depth, keys, rules=venue.rules)
        return (objectives.expected_bad_debt(m) + objectives.p_adl(m)
                + objectives.margin_locked(params, bb, p.oracle[:, 0]))

    x0 = jnp.concatenate([params0.maintenance_margin, jnp.asarray([float(book.vault_cash)], params0.dt.dtype)])
    return f, x0


def timed(fn, x0, repeats):
    t0 = time.perf_counter()
    exe = jax.jit(fn).lower(x0).compile()
    compile_s = time.perf_counter() - t0
    jax.block_until_ready(exe(x0))
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        jax.block_until_ready(exe(x0))
        times.append(time.perf_counter() - t0)
    mem = exe.memory_analysis()
    return compile_s, statistics.median(times), getattr(mem, "temp_size_in_bytes", None)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--scenarios", type=int, default=32)
    ap.add_argument("--accounts", type=int, default=1024)
    ap.add_argument("--markets", type=int, default=4)
    ap.add_argument("--steps", type=int, default=100)
    ap.add_argument("--temperature", type=float, default=0.1)
    ap.add_argument("--memory-steps", default="25,100,400", help="horizons for the memory figures")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--out", default="benchmarks/results/gradient.json")
    args = ap.parse_args(argv)
    adljax.use_cpu_cores()         # one JAX device per core, as `adljax run` has (JAX_NUM_CPU_DEVICES chooses)

    s, n, a, t = args.scenarios, args.accounts, args.markets, args.steps
    venue, book, paths = study("cascade", s, n, a, t)
    smooth = venue.replace(temperature=args.temperature)
    work = s * (n + 2) * a * t
    f, x0 = objective_fn(smooth, book, paths)
    c_fwd, r_fwd, _ = timed(f, x0, args.repeats)
    c_grad, r_grad, _ = timed(jax.value_and_grad(f), x0, args.repeats)
    hard_f, _ = objective_fn(venue, book, paths)
    c_hard, r_hard, _ = timed(hard_f, x0, args.repeats)
    memory = []
    for steps in [int(x) for x in args.memory_steps.split(",")]:
        v, b, p = study("cascade", s, n, a, steps)
        g, x = objective_fn(v.replace(temperature=args.temperature), b, p)
        exe = jax.jit(jax.value_and_grad(g)).lower(x).compile()
        memory.append({"steps": steps, "temp_bytes": exe.memory_analysis().temp_size_in_bytes})
    record = {
        "device": jax.devices()[0].device_kind, "platform": jax.default_backend(), "jax": jax.__version__,
        "machine": platform.platform(), "dtype": str(paths.oracle.dtype),
        "sizes": {"scenarios": s, "accounts": n, "markets": a, "steps": t}, "temperature": args.temperature,
        "hard_forward": {"compile_s": c_hard, "run_s": r_hard, "throughput": work / r_hard},
        "smooth_forward": {"compile_s": c_fwd, "run_s": r_fwd, "throughput": work / r_fwd},
        "smooth_forward_and_gradient": {"compile_s": c_grad, "run_s": r_grad, "throughput": work / r_grad},
        "gradient_over_forward": r_grad / r_fwd,
        "gradient_memory": memory,
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(record, indent=2))
    print(json.dumps(record, indent=2))


if __name__ == "__main__":
    main()
