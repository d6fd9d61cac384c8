"""Draw ``bench_sweep.py``'s figures: throughput and memory against each size, calm and cascade.

    python benchmarks/plot_sweep.py             # benchmarks/results/sweep.json -> docs/figures/speed_sweep.png
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

AXES = ("scenarios", "accounts", "markets", "steps")
STYLE = {"calm": dict(color="tab:blue", marker="o"), "cascade": dict(color="tab:red", marker="s")}


def draw(record: dict, out: Path) -> None:
    fig, ax = plt.subplots(2, 4, figsize=(14, 6.5), sharey="row")
    base = record["base"]
    for j, axis in enumerate(AXES):
        for kind, st in record["studies"].items():
            pts = st[axis]["points"]
            x = [p["size"][axis] for p in pts]
            ax[0, j].plot(x, [p["account_market_steps_per_second"] for p in pts], label=kind, **STYLE[kind])
            mem = [p["memory_bytes"]["all_devices"] / 2**20 for p in pts]
            ax[1, j].plot(x, mem, label=kind, **STYLE[kind])
        # proportional growth from the smallest point, to read "linear" and "flat" against
        ax[1, j].plot(x, [mem[0] * v / x[0] for v in x], color="gray", ls="--", lw=1, label="∝ size")
        others = ", ".join(f"{base[k]:,} {k}" for k in AXES if k != axis)
        ax[0, j].set_title(f"{axis}\n(at {others})", fontsize=9)
        ax[1, j].set_xlabel(axis)
        for i in (0, 1):
            ax[i, j].set_xscale("log", base=2)
            ax[i, j].set_yscale("log")
            ax[i, j].grid(True, which="both", alpha=0.3)
    ax[0, 0].set_ylabel("account·market·steps / s")
    ax[1, 0].set_ylabel("memory, MiB (XLA's account)")
    ax[0, 0].legend()
    ax[1, 0].legend(fontsize=8, title="(calm and cascade: same program shapes)", title_fontsize=7)
    d = record["devices"]
    fig.suptitle(f"adljax engine, {record['dtype']}, {len(d)} device(s) ({record['device']}), jax {record['jax']}: "
                 "one size varied at a time", fontsize=10)
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=110)
    plt.close(fig)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("json", nargs="?", default="benchmarks/results/sweep.json")
    ap.add_argument("--out", default="docs/figures/speed_sweep.png")
    args = ap.parse_args(argv)
    draw(json.loads(Path(args.json).read_text()), Path(args.out))
    print(f"figure in {args.out}")


if __name__ == "__main__":
    main()
