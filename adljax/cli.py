"""Command line: ``adljax run`` runs a study and prints what the waterfall did."""
from __future__ import annotations

import argparse
import sys
import time

import numpy as np


def _run(args) -> int:
    import jax

    from .engine import simulate
    from .study import default_study

    t0 = time.perf_counter()
    study = default_study(n_scenarios=args.scenarios, n_steps=args.steps, n_accounts=args.accounts, seed=args.seed)
    out = simulate(study.venue, study.book, study.paths, dt=study.dt)
    jax.block_until_ready(out.metrics)
    seconds = time.perf_counter() - t0
    _print_summary(study, out, seconds)
    return 0


def _print_summary(study, out, seconds: float) -> None:
    from rich.console import Console
    from rich.table import Table

    m = {k: np.asarray(v, dtype=np.float64) for k, v in out.metrics.items()}
    s, t, a = study.paths.oracle.shape
    n = study.book.n_accounts
    table = Table(title=f"adljax · {study.name} study · {study.venue.name} · {s} scenarios × {t} steps of {study.dt:g} s × {n} accounts × {a} markets")
    table.add_column("stage")
    table.add_column("scenarios where it fired", justify="right")
    table.add_column("mean per scenario", justify="right")
    table.add_column("p99 per scenario", justify="right")

    def row(label, key, fired_key=None, money=True):
        v = m[key]
        fired = np.mean(m[fired_key or key] > 0)
        fmt = (lambda x: f"${x:,.0f}") if money else (lambda x: f"{x:,.1f}")
        table.add_row(label, f"{fired:.1%}", fmt(v.mean()), fmt(np.quantile(v, 0.99)))

    row("market liquidation (notional)", "market_liquidation_notional")
    row("  partial orders", "partial_liquidation_orders", money=False)
    row("backstop takeover (notional)", "backstop_notional")
    row("ADL (counterparty notional)", "adl_notional")
    row("  accounts deleveraged", "n_adl_accounts", money=False)
    row("bad debt", "bad_debt")
    row("  covered by backstop", "bad_debt_backstop", "bad_debt")
    row("  covered by ADL", "bad_debt_adl", "bad_debt")
    row("  left over", "bad_debt_residual")
    loss = -m["vault_pnl"]
    table.add_row("vault loss VaR99 / ES99", "", f"${np.quantile(loss, 0.99):,.0f}",
                  f"${loss[loss >= np.quantile(loss, 0.99)].mean():,.0f}")
    console = Console()
    console.print(table)
    scale = float(np.sum(np.abs(np.asarray(study.book.all_cash)))) or 1.0
    console.print(f"P(ADL) = {np.mean(m['adl_notional'] > 0):.2%}   "
                  f"conservation error ≤ ${m['conservation_error'].max():.3g} ({m['conservation_error'].max() / scale:.1e} of collateral)   "
                  f"{seconds:.1f} s on {__import__('jax').devices()[0].platform}")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="adljax", description="Liquidation-waterfall studies of perpetual-futures venues.")
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("run", help="run a study (no argument: the default study)",
                       description="Run the default study and print what each stage of the waterfall did.",
                       epilog="example: adljax run --scenarios 256 --steps 300")
    p.add_argument("--scenarios", type=int, default=512, help="number of price-path scenarios (default 512)")
    p.add_argument("--steps", type=int, default=600, help="steps of one second (default 600)")
    p.add_argument("--accounts", type=int, default=1000, help="trader accounts in the book (default 1000)")
    p.add_argument("--seed", type=int, default=0, help="seed of the book and the paths (default 0)")
    args = parser.parse_args(argv)
    for name in ("scenarios", "steps", "accounts"):
        if getattr(args, name) < (2 if name == "steps" else 1):
            parser.error(f"--{name}: must be at least {2 if name == 'steps' else 1}")
    return _run(args)


if __name__ == "__main__":
    sys.exit(main())
