"""A venue-sized book on the position engine: a calm hour and a crash, with memory and compile time.

The book is shaped like a whole venue (``adljax.generate.population`` with ``positions=True``):
200,000 accounts over 180 markets, 1–8 markets an account with Zipf-like popularity (a few majors
hold most positions), about 300,000 positions; Hyperliquid's rules with a $300M vault. Paths:

- calm: GBM at 60 % a year, 600 one-second steps (a calm hour at 6 s a step would be the same work);
- crash: the same paths with every market falling 25–60 % over 5 minutes from step 30, staggered, into
  depth that thins as prices fall, so that liquidation, the backstop and ADL act in most steps.

It reports, per run: position·steps per second (P × S × T / wall time, P counting the system slots),
compile time, the compiled program's memory (XLA's ``memory_analysis``), and for the crash the share of
steps in which each stage acted in some scenario (from the history) and the cost per position·step
against the calm run's. Memory flatness: the compiled program's temporaries at the same positions with
4× the markets and with 4× accounts that hold nothing.

    python benchmarks/bench_venue.py                       # 64 scenarios calm, 16 crash (~15 min on 2 cores)
    python benchmarks/bench_venue.py --quick               # 20,000 accounts, 8 scenarios × 120 steps
    python benchmarks/bench_venue.py --side-by-side        # the position engine against the dense one (~5 min)

``--side-by-side`` runs the same books as dense books (``adljax.Book``, the dense engine, which is the engine
as it was before position books) and as position books (``PositionBook.from_book``) in one process, each
timed after a warm-up call (median of 3): the sparse 20,000 × 100 book (two markets an account, 16
scenarios × 60 one-second steps of a falling market) and bench_engine.py's 256 × 4,096 × 4 × 100 calm and
cascade studies.
"""
from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

import adljax
from adljax import Paths, PositionBook, venues
from adljax.generate import cascade, gbm, population


def venue_book(n_accounts: int, n_markets: int, seed: int = 0) -> tuple[PositionBook, np.ndarray]:
    start = np.exp(np.random.default_rng(seed).uniform(np.log(0.05), np.log(100_000.0), n_markets))
    popularity = 1.0 / np.arange(1, n_markets + 1) ** 1.1
    lev = np.where(np.arange(n_markets) < 10, 40.0, 10.0)
    book = population(jax.random.key(seed), n_accounts, start, lev, markets_per_account=1.5,
                      max_markets_per_account=8, popularity=popularity,
                      notional_scale=np.maximum(popularity / popularity[10], 1.0), median_notional=5_000.0,
                      leverage_mode=8.0, vault_cash=3e8 * n_accounts / 200_000, dtype=jnp.float32, positions=True)
    return book, start


def paths_for(start, n_scenarios: int, n_steps: int, crash: bool, n_accounts: int) -> Paths:
    a = start.shape[0]
    oracle = gbm(jax.random.key(1), start, n_scenarios=n_scenarios, n_steps=n_steps, dt=1.0, vol=0.6,
                 corr=np.full((a, a), 0.6) + 0.4 * np.eye(a),
                 dtype=jnp.float32)
    depth_usd = 2e6 * n_accounts / 200_000 * np.where(np.arange(a) < 10, 20.0, 1.0)
    if crash:
        drops = np.random.default_rng(2).uniform(0.25, 0.6, a)
        mult = cascade(drops, 300.0, 30.0, np.linspace(0, 60, a), n_steps=n_steps, dt=1.0, dtype=jnp.float32)
        oracle = oracle * mult
        depth = jnp.broadcast_to(depth_usd, oracle.shape) * (oracle / oracle[:, :1]) ** 2
    else:
        depth = jnp.broadcast_to(depth_usd, oracle.shape)
    return Paths(oracle, jnp.asarray(depth, jnp.float32))


def memory_of(venue, book: PositionBook, paths: Paths) -> dict:
    """XLA's memory analysis of the compiled position engine for this book (one device), as ``simulate`` runs
    it: without the idle rows (``PositionBook.without_idle_rows``)."""
    from adljax.engine import positions
    params = venue.params(book.n_markets, dt=1.0, dtype=jnp.float32)
    keys = jax.vmap(lambda i: jax.random.fold_in(jax.random.key(0), i))(jnp.arange(paths.n_scenarios))
    b = book.without_idle_rows()[0].batched(paths.n_scenarios)
    t0 = time.perf_counter()
    compiled = positions.run.lower(params, b, paths.oracle, paths.depth, keys, None, rules=venue.rules.compiled(),
                                   history=True).compile()
    compile_s = time.perf_counter() - t0
    m = compiled.memory_analysis()
    return {"compile_s": round(compile_s, 2), "temp_bytes": int(m.temp_size_in_bytes),
            "argument_bytes": int(m.argument_size_in_bytes), "output_bytes": int(m.output_size_in_bytes)}


def run_one(venue, book, paths) -> dict:
    t0 = time.perf_counter()
    out = adljax.simulate(venue, book, paths, history=True)
    jax.block_until_ready(out.metrics)
    first = time.perf_counter() - t0
    t0 = time.perf_counter()
    out = adljax.simulate(venue, book, paths, history=True)
    jax.block_until_ready(out.metrics)
    wall = time.perf_counter() - t0
    s, t = paths.n_scenarios, paths.n_steps
    p = book.layout.n_positions
    h = {k: np.asarray(v) for k, v in out.history.items()}
    stage_share = {
        "market_liquidation": float(np.mean(np.any(h["market_liquidation_notional"] > 0, axis=0))),
        "backstop": float(np.mean(np.any(h["backstop_notional"] > 0, axis=0))),
        "adl": float(np.mean(np.any(h["adl_notional"] > 0, axis=0))),
    }
    m = {k: float(np.mean(np.asarray(v))) for k, v in out.metrics.items()}
    return {"scenarios": s, "steps": t, "positions": p, "wall_s": round(wall, 2), "first_call_s": round(first, 2),
            "position_steps_per_s": p * s * t / wall, "ns_per_position_step": wall / (p * s * t) * 1e9,
            "steps_with_stage": stage_share,
            "mean_metrics": {k: m[k] for k in ("market_liquidation_notional", "backstop_notional", "adl_notional",
                                               "bad_debt", "conservation_error", "zero_sum_error")}}


def memory_flatness(venue, book: PositionBook, start, n: int, a: int) -> dict:
    """The compiled program's memory at this book's positions, with 4× the markets and with 4× the accounts
    (the added ones holding nothing)."""
    small = paths_for(start, 8, 20, False, n)
    base = memory_of(venue, book, small)
    wide_book = PositionBook.from_positions(np.asarray(book.account), np.asarray(book.market),
                                            np.asarray(book.position_size[:book.n_positions]),
                                            np.asarray(book.position_entry[:book.n_positions]),
                                            np.asarray(book.cash), n_markets=4 * a, vault_cash=float(book.vault_cash),
                                            isolated=np.asarray(book.isolated[:-2]), dtype=jnp.float32)
    wide_paths = paths_for(np.tile(start, 4), 8, 20, False, n)
    empty_book = PositionBook.from_positions(np.asarray(book.account), np.asarray(book.market),
                                             np.asarray(book.position_size[:book.n_positions]),
                                             np.asarray(book.position_entry[:book.n_positions]),
                                             np.concatenate([np.asarray(book.cash), np.zeros(3 * book.n_accounts)]),
                                             n_markets=a, vault_cash=float(book.vault_cash), dtype=jnp.float32,
                                             isolated=np.concatenate([np.asarray(book.isolated[:-2]),
                                                                      np.zeros(3 * book.n_accounts, bool)]))
    mem = {"base": base, "markets_x4": memory_of(venue, wide_book, wide_paths),
           "empty_accounts_x4": memory_of(venue, empty_book, small)}
    for k in ("markets_x4", "empty_accounts_x4"):
        mem[k]["temp_vs_base"] = mem[k]["temp_bytes"] / base["temp_bytes"]
    return mem


def _timed(venue, book, paths, repeats: int = 3) -> float:
    jax.block_until_ready(adljax.simulate(venue, book, paths).metrics)          # warm-up (compiles)
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        jax.block_until_ready(adljax.simulate(venue, book, paths).metrics)
        times.append(time.perf_counter() - t0)
    return float(np.median(times))


def side_by_side() -> dict:
    """The dense engine and the position engine on the same books (see the module docstring)."""
    from bench_engine import study
    from adljax.generate import thinning_depth
    out = {}
    n, a, s, t = 20_000, 100, 16, 60
    start = np.geomspace(50_000.0, 1.0, a)
    book = population(jax.random.key(3), n, start, 20.0, markets_per_account=2, leverage_mode=10.0,
                      vault_cash=1e7, dtype=jnp.float32)
    oracle = gbm(jax.random.key(4), start, n_scenarios=s, n_steps=t, dt=1.0, vol=2.0, drift=-0.2 / (t / 3.15576e7),
                 dtype=jnp.float32)
    paths = Paths(oracle, thinning_depth(oracle, 2e6, calm_move=1e-3, thinning=1.0))
    cases = [("sparse_20000x100", venues.hyperliquid(max_leverage=20.0), book, paths)]
    for kind in ("calm", "cascade"):
        venue, b, p = study(kind, 256, 4096, 4, 100)
        cases.append((f"{kind}_256x4096x4x100", venue, b, p))
    for name, venue, b, p in cases:
        pos = PositionBook.from_book(b)
        dense_s = _timed(venue, b, p)
        pos_s = _timed(venue, pos, p)
        cells = (b.n_accounts + 2) * b.n_markets * p.n_scenarios * p.n_steps
        out[name] = {"scenarios": p.n_scenarios, "steps": p.n_steps, "accounts": b.n_accounts,
                     "markets": b.n_markets, "positions": pos.layout.n_positions,
                     "dense_s": round(dense_s, 4), "positions_s": round(pos_s, 4),
                     "positions_over_dense_speed": dense_s / pos_s,
                     "dense_account_market_steps_per_s": cells / dense_s,
                     "positions_position_steps_per_s": pos.layout.n_positions * p.n_scenarios * p.n_steps / pos_s}
        print(name, json.dumps(out[name]), flush=True)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--accounts", type=int, default=None)
    ap.add_argument("--calm-scenarios", type=int, default=None)
    ap.add_argument("--crash-scenarios", type=int, default=None)
    ap.add_argument("--steps", type=int, default=None)
    ap.add_argument("--side-by-side", action="store_true")
    ap.add_argument("--memory-only", action="store_true", help="only the memory part, into an existing results file")
    ap.add_argument("--out", default=None)
    args = ap.parse_args()
    adljax.use_cpu_cores()
    machine = {"platform": platform.platform(), "processor": platform.processor(), "cpus": jax.local_device_count(),
               "backend": jax.default_backend(), "jax": jax.__version__}
    if args.side_by_side:
        res = {"machine": machine, "when": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
               "side_by_side": side_by_side()}
        out = Path(args.out or Path(__file__).parent / "results" / "venue_side_by_side.json")
        out.write_text(json.dumps(res, indent=2) + "\n")
        print(f"wrote {out}")
        return
    n = args.accounts or (20_000 if args.quick else 200_000)
    steps = args.steps or (120 if args.quick else 600)
    calm_s = args.calm_scenarios or (8 if args.quick else 64)
    crash_s = args.crash_scenarios or (8 if args.quick else 16)
    a = 180
    venue = venues.hyperliquid()
    t0 = time.perf_counter()
    book, start = venue_book(n, a)
    build_s = time.perf_counter() - t0
    res = {"machine": machine, "when": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
           "book": {"accounts": n, "rows": book.layout.n_rows, "markets": a, "positions": book.n_positions,
                    "list_length": book.layout.n_positions, "build_s": round(build_s, 2)}}
    print(json.dumps(res["book"]), flush=True)
    if args.memory_only:      # the memory part alone, into the results file of a full run
        out = Path(args.out or Path(__file__).parent / "results" / "venue.json")
        res = {**json.loads(out.read_text()), "memory": memory_flatness(venue, book, start, n, a)}
        out.write_text(json.dumps(res, indent=2) + "\n")
        print("memory", json.dumps(res["memory"]), f"\nwrote {out}")
        return
    res["calm"] = run_one(venue, book, paths_for(start, calm_s, steps, False, n))
    print("calm", json.dumps(res["calm"]), flush=True)
    res["crash"] = run_one(venue, book, paths_for(start, crash_s, steps, True, n))
    print("crash", json.dumps(res["crash"]), flush=True)
    res["crash_over_calm_cost"] = res["crash"]["ns_per_position_step"] / res["calm"]["ns_per_position_step"]
    res["memory"] = memory_flatness(venue, book, start, n, a)
    print("memory", json.dumps(res["memory"]), flush=True)
    out = Path(args.out or Path(__file__).parent / "results" / ("venue_quick.json" if args.quick else "venue.json"))
    out.write_text(json.dumps(res, indent=2) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
