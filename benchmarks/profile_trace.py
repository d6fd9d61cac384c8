"""Where a compiled run's time goes, by line of adljax source: a profiler trace joined to the HLO.

Runs the cascade (or calm) study of ``bench_engine.py`` once under
``jax.profiler.trace``, reads the per-kernel times from the trace, and
attributes each kernel (an XLA fusion, loop or call) to the innermost line
of adljax it was compiled from, using the source locations XLA keeps in the
compiled module. Kernels that contain others (while loops, calls) are
counted without their children. Prints the top lines and writes JSON.

    python benchmarks/profile_trace.py --kind cascade --scenarios 32 --steps 200
"""
from __future__ import annotations

import argparse
import collections
import glob
import gzip
import json
import re
import tempfile
from pathlib import Path

import jax

from adljax.engine.waterfall import prepare, run, scenario_keys
from adljax.engine.stages.adl import queue_sizes

from bench_engine import study


def source_of_kernels(hlo: str) -> dict[str, tuple[str, str]]:
    """{kernel name: (line, stage)}: the innermost adljax frame of each instruction
    ("file.py:line function"), and the stage module it runs in (or the innermost file)."""
    section = lambda name: hlo.split(f"\n{name}\n", 1)[1].split("\n\n", 1)[0].splitlines()
    files = {int(k): v.strip('"') for k, v in (line.split(" ", 1) for line in section("FileNames"))}
    funcs = {int(k): v.strip('"') for k, v in (line.split(" ", 1) for line in section("FunctionNames"))}
    locs, frames = {}, {}
    for line in section("FileLocations"):
        d = dict(re.findall(r"(\w+)=(\d+)", line))
        locs[int(line.split()[0])] = (files[int(d["file_name_id"])], funcs[int(d["function_name_id"])], int(d["line"]))
    for line in section("StackFrames"):
        d = dict(re.findall(r"(\w+)=(\d+)", line))
        # parent_frame_id counts from 1 with 0 for none, one more than the frames' own ids
        frames[int(line.split()[0])] = (int(d["file_location_id"]), int(d.get("parent_frame_id", 0)) - 1)

    def where(frame: int) -> tuple[str, str]:
        seen, inner, stage = set(), None, None
        while frame in frames and frame not in seen:
            seen.add(frame)
            loc, parent = frames[frame]
            f, fn, line = locs[loc]
            if "/adljax/" in f:
                rel = f.split("/adljax/", 1)[1]
                inner = inner or f"{rel}:{line} {fn}"
                if rel.startswith("stages/") and rel != "stages/__init__.py":
                    stage = rel
            frame = parent
        inner = inner or "?"
        return inner, stage or inner.split(":")[0]

    out = {}
    for m in re.finditer(r"^\s*(?:ROOT )?%?([\w.\-]+) = .*?stack_frame_id=(\d+)", hlo, re.M):
        out.setdefault(m.group(1), where(int(m.group(2))))
    return out


def self_times(events: list[dict]) -> dict[str, float]:
    """{event name: µs} of complete events, each without the time of events nested in it (same thread)."""
    by_thread = collections.defaultdict(list)
    for e in events:
        if e.get("ph") == "X" and "dur" in e:
            by_thread[(e.get("pid"), e.get("tid"))].append(e)
    out = collections.Counter()
    for evs in by_thread.values():
        evs.sort(key=lambda e: (e["ts"], -e["dur"]))
        stack = []
        for e in evs:
            while stack and stack[-1]["ts"] + stack[-1]["dur"] <= e["ts"]:
                stack.pop()
            if stack:
                out[stack[-1]["name"]] -= e["dur"]
            out[e["name"]] += e["dur"]
            stack.append(e)
    return out


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--kind", choices=("calm", "cascade"), default="cascade")
    ap.add_argument("--scenarios", type=int, default=32)
    ap.add_argument("--accounts", type=int, default=4096)
    ap.add_argument("--markets", type=int, default=4)
    ap.add_argument("--steps", type=int, default=200)
    ap.add_argument("--top", type=int, default=30)
    ap.add_argument("--out", default="benchmarks/results/profile_trace.json")
    args = ap.parse_args(argv)
    jax.config.update("jax_traceback_in_locations_limit", 64)    # deep enough to reach the stage frame
    venue, book, paths = study(args.kind, args.scenarios, args.accounts, args.markets, args.steps)
    params, book_b, p = prepare(venue, book, paths, 1.0)
    keys = scenario_keys(None, p.n_scenarios)
    exe = run.lower(params, book_b, p.oracle, p.depth, keys, rules=venue.rules,
                    queue_rows=queue_sizes(book.size_am)).compile()      # as adljax.simulate runs it
    kernels = source_of_kernels(exe.as_text())
    jax.block_until_ready(exe(params, book_b, p.oracle, p.depth, keys))      # warm-up
    with tempfile.TemporaryDirectory() as d:
        with jax.profiler.trace(d, create_perfetto_trace=True):
            jax.block_until_ready(exe(params, book_b, p.oracle, p.depth, keys))
        trace = json.load(gzip.open(glob.glob(f"{d}/**/perfetto_trace.json.gz", recursive=True)[0]))
    events = trace["traceEvents"] if isinstance(trace, dict) else trace
    per_kernel = self_times(events)
    lines, stages = collections.Counter(), collections.Counter()
    for name, us in per_kernel.items():
        if name in kernels:
            lines[kernels[name][0]] += us
            stages[kernels[name][1]] += us
    total = sum(lines.values())
    print(f"{args.kind} {args.scenarios} x {args.accounts + 2} x {args.markets} x {args.steps}: "
          f"{total / 1e6:.3f} s in kernels (summed over the CPU's threads)")
    for where, us in stages.most_common():
        print(f"{us / 1e3:9.1f} ms {100 * us / total:5.1f}%  {where}")
    print()
    for where, us in lines.most_common(args.top):
        print(f"{us / 1e3:9.1f} ms {100 * us / total:5.1f}%  {where}")
    rec = dict(kind=args.kind, sizes=dict(scenarios=args.scenarios, accounts=args.accounts, markets=args.markets,
                                          steps=args.steps), device=str(jax.devices()[0]), jax=jax.__version__,
               kernel_seconds=total / 1e6,
               by_stage=[dict(where=w, seconds=us / 1e6) for w, us in stages.most_common()],
               by_line=[dict(where=w, seconds=us / 1e6) for w, us in lines.most_common()])
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(rec, indent=2) + "\n")


if __name__ == "__main__":
    main()
