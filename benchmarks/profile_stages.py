"""Where a cascade step's time goes: each stage timed alone, vmapped over scenarios, in a mid-cascade step.

The cascade study of ``bench_engine.py`` is run for ``--warm-steps`` steps
(by default up to the step with the most bankrupt rows) to reach a book where
liquidation, backstop and ADL all have work; then, at the
next step's mark, each stage is jitted and timed (median of repeats,
``block_until_ready``) on the book the stage before it left, as in the
engine's step (so ADL sees the rows that liquidation and the backstop left bankrupt). Also reports in
how many steps of the whole run each stage fired in at least one scenario (the batch-level ``cond`` runs a stage
for every scenario of the batch when any one needs it). Writes JSON.

    python benchmarks/profile_stages.py --scenarios 64 --accounts 4096 --markets 4
"""
from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

import adljax
from adljax.engine.waterfall import prepare, run, scenario_keys
from adljax.engine.market import Market
from adljax.engine.stages import adl, backstop, liquidation, margin

from bench_engine import study


def timed(fn, *args, repeats=5):
    out = fn(*args)
    jax.block_until_ready(out)
    ts = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        jax.block_until_ready(fn(*args))
        ts.append(time.perf_counter() - t0)
    return statistics.median(ts)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--scenarios", type=int, default=64)
    ap.add_argument("--accounts", type=int, default=4096)
    ap.add_argument("--markets", type=int, default=4)
    ap.add_argument("--steps", type=int, default=200)
    ap.add_argument("--warm-steps", type=int, default=None,
                    help="steps run before the timed one (default: the step with the most bankrupt rows at ADL)")
    ap.add_argument("--out", default="benchmarks/results/profile_stages.json")
    args = ap.parse_args(argv)
    adljax.use_cpu_cores()         # one JAX device per core, as `adljax run` has (JAX_NUM_CPU_DEVICES chooses)
    s, n, a, t = args.scenarios, args.accounts, args.markets, args.steps
    venue, book, paths = study("cascade", s, n, a, t)
    params, book_b, p = prepare(venue, book, paths, 1.0)
    keys = scenario_keys(None, s)
    rules = venue.rules
    # the whole run, with history: how many steps did each stage fire in (any scenario)?
    _, metrics, hist = run(params, book_b, p.oracle, p.depth, keys, rules=rules, history=True)
    fired_steps = {k: int(np.sum(np.any(np.asarray(hist[k]) > 0, axis=0)))
                   for k in ("market_liquidation_notional", "backstop_notional", "adl_notional")}
    # A mid-cascade step: the book after the first `w` steps, at step w's mark (impact included, from
    # the history), each stage timed on the book the one before it left, as in the engine's step.
    w = args.warm_steps if args.warm_steps is not None else max(1, int(np.argmax(np.sum(hist["n_bankrupt"], axis=0))))
    mid, _, _ = run(params, book_b, p.oracle[:, :w], p.depth[:, :w], keys, rules=rules)
    mark = hist["mark"]
    mk = Market(mark=mark[:, w], prev_mark=mark[:, w - 1], depth=p.depth[:, w], adl_start=jnp.zeros(s, jnp.int32))
    vm = lambda f: jax.jit(jax.vmap(f, in_axes=(0, 0, None)))
    t_margin = timed(vm(margin.run), mid, mk, params)
    liq, mg = vm(margin.run)(mid, mk, params)
    liquidate = jax.jit(jax.vmap(lambda b, m, pr, liq, av: liquidation.run(b, m, pr, rules, liq, av),
                                 in_axes=(0, 0, None, 0, 0)))
    t_liq = timed(liquidate, mid, mk, params, liq, mg.av)
    after_liq, _ = liquidate(mid, mk, params, liq, mg.av)
    t_bs = timed(vm(backstop.run), after_liq, mk, params)
    before_adl, _ = vm(backstop.run)(after_liq, mk, params)
    t_adl = timed(jax.jit(jax.vmap(lambda b, m, pr: adl.run(b, m, pr, rules), in_axes=(0, 0, None))),
                  before_adl, mk, params)
    bankrupt = jax.vmap(lambda b, m: adl.bankrupt_rows(b, m)[0])(before_adl, mk)
    rec = dict(sizes=dict(scenarios=s, accounts=n, markets=a, steps=t), device=str(jax.devices()[0]),
               seconds_per_call=dict(margin=t_margin, liquidation=t_liq, backstop=t_bs, adl=t_adl),
               steps_where_stage_fired=fired_steps, warm_steps=w,
               liquidatable_rows_at_margin=int(np.sum(np.asarray(liq))),
               bankrupt_rows_at_adl=int(np.sum(np.asarray(bankrupt))))
    print(json.dumps(rec, indent=1))
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(rec, indent=2) + "\n")


if __name__ == "__main__":
    main()
