"""A venue-sized book on the position engine: a calm hour and a crash, with memory and compile time.

The book is shaped like a whole venue (``adljax.generate.population`` with ``positions=True``):
200,000 accounts over 180 markets, 1–8 markets an account with Zipf-like popularity (a few majors
hold most positions), about 300,000 positions; Hyperliquid's rules with a $300M vault. Paths:

- calm: GBM at 60 % a year, 600 one-second steps (a calm hour at 6 s a step would be the same work);
- calm, edge: the calm paths (a quarter of the scenarios) on the book with 1 % of its rows moved near their
  requirement (:func:`edge_book`), where liquidations go on in calm markets as on a real venue;
- crash: the same paths with every market falling 25–60 % over 5 minutes from step 30, staggered, into
  depth that thins as prices fall, so that liquidation, the backstop and ADL act in most steps.

It reports, per run: position·steps per second (P × S × T / wall time, P counting the system slots),
compile time, the compiled program's memory (XLA's ``memory_analysis``), and for the crash the share of
steps in which each stage acted in some scenario (from the history), the cost per position·step
against the calm run's, and where the crash's time goes (:func:`where_time_goes`: the crash's scenarios
for one device, timed a step at a time, by what acted in each step). Memory flatness: the compiled
program's temporaries at the same positions with 4× the markets and with 4× accounts that hold nothing.

    python benchmarks/bench_venue.py                       # 64 scenarios calm, 16 crash (~15 min on 2 cores)
    python benchmarks/bench_venue.py --quick               # 20,000 accounts, 8 scenarios × 120 steps
    python benchmarks/bench_venue.py --side-by-side        # the position engine against the dense one (~5 min)
    python benchmarks/bench_venue.py --where-only          # the crash's step-by-step timing alone (~2 min)
    python benchmarks/bench_venue.py --edge-only           # the calm run of the book near its requirement (~1 min)

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


def edge_book(venue, book: PositionBook, start, share: float = 0.01, top: float = 0.02, seed: int = 0) -> PositionBook:
    """``book`` with a ``share`` of its trader rows (drawn at random) left with cash such that each one's slack
    ``AV − MR`` at the start is a uniform draw between 0 and ``top`` of ``G = Σ |size|·mark·(1 + rate)``: its
    reach (``positions.margin.reach``), the move of the marks that brings it to its requirement, is spread
    from 0 to ``top``, as in a real venue's book, where some accounts are always near liquidation (the
    generated book's nearest row is 1.2 % away)."""
    from adljax.engine.market import Market
    from adljax.engine.positions import margin
    m = jnp.asarray(start, book.all_cash.dtype)
    params = venue.params(book.n_markets, dt=1.0, dtype=book.all_cash.dtype)
    g = margin.values(book, Market(mark=m, prev_mark=m, depth=m, adl_start=0), params)
    lay = book.layout
    reach_unit = np.asarray(lay.rows(jnp.abs(book.position_size) * lay.at_market(m * (1 + params.maintenance_margin))))
    slack = np.asarray(g.av - g.mr)
    rng = np.random.default_rng(seed)
    pick = (rng.random(lay.n_rows) < share) & (np.arange(lay.n_rows) < lay.n_traders) & (reach_unit > 0)
    cash = np.asarray(book.all_cash).copy()
    cash[pick] -= slack[pick] - rng.uniform(0.0, top, lay.n_rows)[pick] * reach_unit[pick]
    return book.replace(all_cash=jnp.asarray(cash, book.all_cash.dtype))


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
    it: without the idle rows (``PositionBook.without_idle_rows``), padded to the engine's capacity
    (``PositionBook.padded``)."""
    from adljax.engine import positions
    from adljax.engine.config import EngineConfig
    from adljax.chunking import capacities
    params = venue.params(book.n_markets, dt=1.0, dtype=jnp.float32)
    keys = jax.vmap(lambda i: jax.random.fold_in(jax.random.key(0), i))(jnp.arange(paths.n_scenarios))
    compact = book.without_idle_rows()[0]
    b = compact.padded(*capacities(compact.layout, EngineConfig()))[0].batched(paths.n_scenarios)
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


def where_time_goes(venue, book: PositionBook, paths: Paths) -> dict:
    """The crash timed one step at a time on one device, each step put in a class by what acted in it.

    The scan's body (``engine.positions.waterfall.step``) is compiled alone and called once per step on the
    whole batch of scenarios, the carry staying on the device; each step's time (after
    ``block_until_ready``) goes to its class: nothing beyond the margin check; liquidation alone on at most
    ``EngineConfig.gathered_rows`` liquidatable rows in every scenario (the gathered path) or on more (the
    whole list); backstop (with or without liquidation); ADL (with or without the rest). The liquidatable
    rows are counted at the step's mark before the step runs. A call per step adds a dispatch and a copy of
    the history that the scan does not pay (about 1 ms a step), so the total is a little above the scan's.
    """
    from adljax.engine.config import DEFAULT
    from adljax.engine.market import Market
    from adljax.engine.positions import margin, waterfall
    b = book.without_idle_rows()[0]
    lay = b.layout
    s, t_n = paths.n_scenarios, paths.n_steps
    params = venue.params(b.n_markets, dt=1.0, dtype=jnp.float32)
    rules = venue.rules.compiled()
    keys = jax.vmap(lambda i: jax.random.fold_in(jax.random.key(0), i))(jnp.arange(s))
    row_positions = jax.jit(lambda: lay.rows(jnp.ones(lay.n_positions, jnp.int32)))()
    carry = jax.jit(lambda v, o: waterfall._init(v, lay, o))(b.batched(s).values(), paths.oracle[:, 0])

    @jax.jit
    def one(c, t, o, d):
        return waterfall.step(c, (t, o, d, None), params, rules, keys, lay, DEFAULT, row_positions)

    @jax.jit
    def liquidatable(c, o):          # [S] liquidatable rows at this step's mark, as the step's margin check sees
        mark = o * jnp.exp(c.impact * jnp.exp2(-params.dt / params.impact_half_life))

        def count(v, mk):
            v = {**v, "cooldown": jnp.maximum(v["cooldown"] - params.dt, 0.0)}
            liq, _ = margin.run(PositionBook(**v, layout=lay), Market(mk, mk, mk, 0), params)
            return jnp.sum(liq)
        return jax.vmap(count)(c.values, mark)

    t0 = time.perf_counter()
    jax.block_until_ready(one(carry, 0, paths.oracle[:, 0], paths.depth[:, 0]))
    jax.block_until_ready(liquidatable(carry, paths.oracle[:, 0]))
    compile_s = time.perf_counter() - t0
    times, many, acted = [], [], []
    for t in range(t_n):
        o, d = paths.oracle[:, t], paths.depth[:, t]
        many.append(int(jnp.max(liquidatable(carry, o))) > DEFAULT.gathered_rows)
        t0 = time.perf_counter()
        carry, h = one(carry, t, o, d)
        jax.block_until_ready(carry)
        times.append(time.perf_counter() - t0)
        acted.append([bool(np.any(np.asarray(h[k]) > 0))
                      for k in ("market_liquidation_notional", "backstop_notional", "adl_notional")])
    tm, many = np.array(times), np.array(many)
    liq, bs, adl = np.array(acted).T
    classes = {"margin check only": ~liq & ~bs & ~adl,
               "liquidation, gathered rows": liq & ~many & ~bs & ~adl,
               "liquidation, whole list": liq & many & ~bs & ~adl,
               "backstop, no ADL": bs & ~adl,
               "ADL": adl}
    total = float(tm.sum())
    out = {"scenarios": s, "steps": t_n, "devices": 1, "step_compile_s": round(compile_s, 2),
           "total_s": round(total, 2), "classes": {}}
    for name, m in classes.items():
        if m.any():
            out["classes"][name] = {"steps": int(m.sum()), "ms_per_step": round(float(tm[m].mean()) * 1e3, 2),
                                    "total_s": round(float(tm[m].sum()), 2),
                                    "share_of_time": round(float(tm[m].sum()) / total, 3)}
    return out


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
    ap.add_argument("--where-only", action="store_true",
                    help="only the crash's step-by-step timing, into an existing results file")
    ap.add_argument("--edge-only", action="store_true",
                    help="only the calm run of the book near its requirement, into an existing results file")
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
    where_paths = lambda: paths_for(start, max(crash_s // jax.local_device_count(), 1), steps, True, n)
    edge_s = max(calm_s // 4, 1)
    calm_edge = lambda: {"rows_near": "1 % of the trader rows, slack spread over 0-2 % of G",
                         **run_one(venue, edge_book(venue, book, start), paths_for(start, edge_s, steps, False, n))}
    if args.memory_only or args.where_only or args.edge_only:   # one part alone, into the results file of a full run
        out = Path(args.out or Path(__file__).parent / "results" / "venue.json")
        key, part = (("memory", memory_flatness(venue, book, start, n, a)) if args.memory_only
                     else ("calm_edge", calm_edge()) if args.edge_only
                     else ("crash_where", where_time_goes(venue, book, where_paths())))
        res = {**json.loads(out.read_text()), key: part}
        out.write_text(json.dumps(res, indent=2) + "\n")
        print(key, json.dumps(part), f"\nwrote {out}")
        return
    res["calm"] = run_one(venue, book, paths_for(start, calm_s, steps, False, n))
    print("calm", json.dumps(res["calm"]), flush=True)
    res["calm_edge"] = calm_edge()
    print("calm_edge", json.dumps(res["calm_edge"]), flush=True)
    res["crash"] = run_one(venue, book, paths_for(start, crash_s, steps, True, n))
    print("crash", json.dumps(res["crash"]), flush=True)
    res["crash_over_calm_cost"] = res["crash"]["ns_per_position_step"] / res["calm"]["ns_per_position_step"]
    res["crash_where"] = where_time_goes(venue, book, where_paths())
    print("crash_where", json.dumps(res["crash_where"]), flush=True)
    res["memory"] = memory_flatness(venue, book, start, n, a)
    print("memory", json.dumps(res["memory"]), flush=True)
    out = Path(args.out or Path(__file__).parent / "results" / ("venue_quick.json" if args.quick else "venue.json"))
    out.write_text(json.dumps(res, indent=2) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
