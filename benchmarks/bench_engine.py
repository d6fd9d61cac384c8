"""Time the compiled engine on a calm and a cascade study; write the figures to a JSON file.

Compile time is measured separately; run time is the median of repeated
runs after a warm-up, each ended by ``block_until_ready``. Throughput is in
account·market·steps per second (rows = accounts + the two system rows).

    python benchmarks/bench_engine.py                   # default sizes
    python benchmarks/bench_engine.py --scenarios 256 --accounts 4096 --markets 4 --steps 200
"""
from __future__ import annotations

import argparse
import json
import platform
import statistics
import time
from functools import partial
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

import adljax
from adljax.engine.waterfall import prepare, run, scenario_keys
from adljax.parallel.sharding import scenario_map
from adljax.engine.stages.adl import queue_sizes
from adljax.generate import gbm, population, thinning_depth
from adljax.generate.prices import YEAR


def study(kind: str, s: int, n: int, a: int, t: int, seed: int = 0, tiers: int = 1):
    """A calm study (little liquidation) or a cascade (liquidations, backstop and ADL in many steps).

    ``tiers`` margin tiers a market: 1 is one rate, ``1/(2·max_leverage)``; more add tiers from $100k,
    each 4× the last bound, each rate 1.25× the one below (the cost of a tiered requirement).
    """
    k1, k2 = jax.random.split(jax.random.key(seed))
    start = np.geomspace(100_000.0, 10.0, a)
    lev = np.linspace(40.0, 10.0, a)
    book = population(k1, n, start, lev, long_share=0.7, leverage_mode=8.0 if kind == "cascade" else 2.0,
                      markets_per_account=min(2, a), vault_cash=1e6 if kind == "cascade" else 1e8)
    vol = 0.5 if kind == "calm" else 3.0
    drift = 0.0 if kind == "calm" else -0.35 / (t / YEAR)      # a 35 % fall over the study
    oracle = gbm(k2, start, n_scenarios=s, n_steps=t, dt=1.0, vol=vol, drift=drift)
    base = 5e7 if kind == "calm" else 2e5
    depth = thinning_depth(oracle, base, calm_move=vol * np.sqrt(1.0 / YEAR), thinning=1.0)
    venue = adljax.venues.hyperliquid(max_leverage=lev)
    if tiers > 1:
        venue = venue.replace(margin_tiers=[tuple((0.0 if k == 0 else 1e5 * 4.0 ** (k - 1), 1.25 ** k / (2 * x))
                                                  for k in range(tiers)) for x in lev])
    return venue, book, adljax.Paths(oracle, depth)


#: Timed runs go on past the ``repeats`` asked for until they add up to this many seconds (at most
#: ``MAX_RUNS`` runs): the median of 3 runs of a few milliseconds moved by half from one call to the next.
MIN_SECONDS = 1.0
MAX_RUNS = 100


def time_engine(venue, book, paths, repeats: int, devices: int | None = None):
    """(compile seconds, median run seconds, metrics, devices used, runs timed) of the engine.

    ``devices`` None: all local devices, as ``adljax.simulate`` runs (on a CPU, one per core once
    :func:`adljax.use_cpu_cores` ran, as ``main`` does). With several, the scenarios are split over
    them by ``adljax.parallel.sharding.scenario_map``; a scenario count that is not a multiple of twice
    the device count (a device would run padding) runs on one device instead.
    """
    exe, args, d, compile_s = compile_engine(venue, book, paths, devices)
    run_s, out, runs = median_run(exe, args, repeats)
    return compile_s, run_s, out[1], d, runs


def median_run(exe, args, repeats: int, min_seconds: float = MIN_SECONDS):
    """(median seconds, the last run's output, runs timed) of ``exe(*args)`` after a warm-up.

    Each run is ended by ``block_until_ready``. At least ``repeats`` runs, and more until
    they add up to ``min_seconds`` (at most :data:`MAX_RUNS`).
    """
    jax.block_until_ready(exe(*args))     # warm-up
    times = []
    while len(times) < repeats or (sum(times) < min_seconds and len(times) < MAX_RUNS):
        t0 = time.perf_counter()
        out = jax.block_until_ready(exe(*args))
        times.append(time.perf_counter() - t0)
    return statistics.median(times), out, len(times)


def compile_engine(venue, book, paths, devices: int | None = None):
    """(compiled program, its arguments, devices used, compile seconds): the engine as :func:`time_engine` runs it.

    JAX's caches are cleared first, so the compile time is this program's own.
    """
    local = jax.local_devices()
    d = len(local) if devices is None else devices
    if not 1 <= d <= len(local):
        raise SystemExit(f"--devices: {d} asked, this process has {len(local)} local device(s)")
    params, book_b, p = prepare(venue, book, paths, 1.0)
    keys = scenario_keys(None, p.n_scenarios)
    if p.n_scenarios % (2 * d):
        d = 1
    # (as adljax.simulate runs it: the ADL queue sweeps the rows that can hold each side)
    engine = partial(run, rules=venue.rules, queue_rows=queue_sizes(book.size_am))
    fn = jax.jit(scenario_map(engine, devices=local[:d])) if d > 1 else partial(run.lower, **engine.keywords)
    jax.clear_caches()              # each study's compile time its own (the two share shapes and venue)
    args = (params, book_b, p.oracle, p.depth, keys)
    compiled_at = time.perf_counter()
    exe = (fn.lower if d > 1 else fn)(*args).compile()
    return exe, args, d, time.perf_counter() - compiled_at


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--scenarios", type=int, default=256)
    ap.add_argument("--accounts", type=int, default=4096)
    ap.add_argument("--markets", type=int, default=4)
    ap.add_argument("--steps", type=int, default=200)
    ap.add_argument("--repeats", type=int, default=3,
                    help=f"timed runs at least (default 3), and more until they add up to {MIN_SECONDS:g} s")
    ap.add_argument("--devices", type=int, default=None,
                    help="local devices to split the scenarios over (default: all; on CPU one per core)")
    ap.add_argument("--tiers", type=int, default=1, help="margin tiers a market (default 1: one rate)")
    ap.add_argument("--out", default="benchmarks/results/engine.json")
    args = ap.parse_args(argv)
    adljax.use_cpu_cores()         # one JAX device per core, as `adljax run` has (JAX_NUM_CPU_DEVICES chooses)
    s, n, a, t = args.scenarios, args.accounts, args.markets, args.steps
    dev = jax.devices()[0]
    record = {
        "device": f"{dev.platform}: {dev.device_kind}", "host": platform.processor() or platform.machine(),
        "cpu_count": __import__("os").cpu_count(), "jax": jax.__version__,
        "dtype": str(jnp.result_type(float)), "sizes": dict(scenarios=s, accounts=n, markets=a, steps=t),
        "margin_tiers": args.tiers,
        "studies": {},
    }
    for kind in ("calm", "cascade"):
        venue, book, paths = study(kind, s, n, a, t, tiers=args.tiers)
        compile_s, run_s, metrics, used, runs = time_engine(venue, book, paths, args.repeats, args.devices)
        work = s * (n + 2) * a * t
        fired = {k: float(np.mean(np.asarray(metrics[k]) > 0)) for k in
                 ("market_liquidation_notional", "backstop_notional", "adl_notional")}
        adl_steps = float(np.mean(np.asarray(metrics["adl_steps"])))
        record["studies"][kind] = dict(devices=used, compile_seconds=round(compile_s, 3), run_seconds=round(run_s, 4),
                                       runs=runs, account_market_steps_per_second=float(f"{work / run_s:.4g}"),
                                       share_of_scenarios_with=fired, mean_adl_steps=adl_steps)
        print(f"{kind:8s} {used} device(s)  compile {compile_s:6.2f}s  run {run_s:7.3f}s  {work / run_s:.3g} "
              f"account·market·steps/s  scenarios with ADL {fired['adl_notional']:.0%}, mean ADL steps {adl_steps:.1f}")
    calm, casc = (record["studies"][k]["account_market_steps_per_second"] for k in ("calm", "cascade"))
    record["cascade_cost_vs_calm"] = float(f"{calm / casc:.3g}")
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(record, indent=2) + "\n")
    print(f"cascade costs {calm / casc:.2f}x calm per account·market·step; figures in {args.out}")


if __name__ == "__main__":
    main()
