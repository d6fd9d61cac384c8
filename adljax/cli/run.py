"""``adljax run``: a study (the default one or a scenario file) into a results folder, with a progress bar and a
summary."""
from __future__ import annotations

import hashlib
import time
from pathlib import Path

import numpy as np

from .common import UsageError, compact, enable_x64, int_at_least, join, money, stderr_console, stdout_console

RUN_EPILOG = """\
examples:
  adljax run                                         the default study (512 scenarios × 600 s × 1,000 accounts)
  adljax run --scenarios 64 --steps 120 --out results/quick
  adljax run scenarios/oct10_cascade.toml --chunk 32
  adljax run scenarios/venue_comparison.toml         one subfolder per venue and a comparison table
  adljax run scenarios/oct10_cascade.toml --resume   finish a run that was stopped
  adljax run --out /shared/r --coordinator 10.0.0.1:8476 --num-processes 2 --process-id 0   on host 0
  adljax run --out /shared/r --coordinator 10.0.0.1:8476 --num-processes 2 --process-id 1   on host 1

The results folder (default results/<study name>) gets scenarios.parquet (one row
per scenario: index + every metric), summary.json, PNG figures, and chunks/ (one
file per finished chunk, which --resume reuses). Compiled engines are kept in
~/.cache/adljax between runs (ADLJAX_COMPILATION_CACHE=DIR to move it, =0 for none).

Every local device runs a share of each chunk: the GPUs, or on CPU one device per core
(JAX_NUM_CPU_DEVICES=N to choose, =1 for one).
Several hosts: start one process per host with the same arguments plus --coordinator,
--num-processes and --process-id (under Slurm's srun or Open MPI's mpirun they are
detected); --out must be a folder every host sees. Each process writes its own chunks;
process 0 writes scenarios.parquet, summary.json and the figures (docs/scaling.md)."""


#: How messages name the sizes given on the command line.
SIZE_NAMES = {"scenarios": "--scenarios", "steps": "--steps", "accounts": "--accounts"}


def add_parser(sub, fmt) -> None:
    """The ``run`` command's arguments."""
    p = sub.add_parser("run", help="run a study into a results folder (no argument: the default study)",
                       description="Run a study chunk by chunk, print what each stage of the waterfall did, and "
                                   "write a results folder.", epilog=RUN_EPILOG, formatter_class=fmt)
    p.add_argument("scenario", nargs="?", metavar="SCENARIO.toml",
                   help="a scenario file (see scenarios/); none: the default study")
    p.add_argument("--scenarios", type=int_at_least(1), metavar="N",
                   help="number of price-path scenarios (default: the file's, or 512)")
    p.add_argument("--steps", type=int_at_least(2), metavar="N",
                   help="steps per path (default: the file's, or 600 of 1 s)")
    p.add_argument("--accounts", type=int_at_least(2), metavar="N",
                   help="trader accounts in a generated book (default: the file's, or 1000)")
    p.add_argument("--seed", type=int_at_least(0, 2**32 - 1), metavar="N",
                   help="seed of the book and the paths (default: the file's, or 0)")
    p.add_argument("--out", metavar="DIR", help="results folder (default results/<study name>)")
    p.add_argument("--chunk", type=int_at_least(1), metavar="N",
                   help="scenarios per chunk (default: about 1/16 of the study, at least 16, at most what fits "
                        "the device's memory)")
    p.add_argument("--resume", action="store_true", help="finish a stopped run in --out (skips its finished chunks; "
                   "refuses a folder made by another study)")
    p.add_argument("--no-plots", action="store_true", help="skip the PNG figures")
    p.add_argument("--float64", action="store_true", help="run in float64 (default float32, or the file's dtype)")
    g = p.add_argument_group("several hosts (docs/scaling.md); detected under srun / mpirun")
    g.add_argument("--coordinator", metavar="HOST:PORT", help="address of process 0 and a free port, the same for "
                   "every process")
    g.add_argument("--num-processes", type=int_at_least(1), metavar="N", help="processes in the run")
    g.add_argument("--process-id", type=int_at_least(0), metavar="I", help="this process's number, 0 .. N-1 "
                   "(0 writes the results)")
    p.set_defaults(func=main)


def main(args) -> int:
    from ..parallel import sharding

    if args.out is not None and Path(args.out).exists() and not Path(args.out).is_dir():
        raise UsageError(f"--out {args.out}: is a file, not a folder")
    join(args)        # before any JAX computation (loading a study computes)
    try:
        code = _run(args)
    except BaseException as err:
        sharding.tell_others(err)      # in a multi-process run: the others stop with this process's reason
        raise
    # the processes other than 0 wait here for process 0's results, and exit as it did
    sharding.stop_if_another_failed(sharding.meet("run/finished"))
    return code


def _run(args) -> int:
    from ..parallel import sharding
    from ..studies import runner

    studies, source, comparison_name = _load(args)
    if args.out is not None:
        out = Path(args.out)
    else:
        out = Path("results") / (comparison_name or studies[0].name)
    folders = [out / st.venue.name if comparison_name else out for st in studies]

    def plan() -> list[int]:
        """Chunk sizes, and every folder made or checked before anything runs (a bad --resume fails at once).
        In a multi-process run process 0 does this and the others use its chunk sizes."""
        if out.exists() and not out.is_dir():
            raise UsageError(f"--out {out}: is a file, not a folder")
        if comparison_name and not args.resume and out.is_dir() and any(out.iterdir()):
            raise UsageError(f"--out {out}: already holds files; use --resume to finish (or reuse) them, "
                             "or choose another --out")
        chunks = []
        for st, folder in zip(studies, folders):
            if args.chunk:
                _check_chunk(st, args.chunk)
                chunks.append(min(args.chunk, st.n_scenarios))
            elif args.resume and runner.recorded_chunk(folder):
                chunks.append(runner.recorded_chunk(folder))    # the folder's own chunking (it depends on the device)
            else:
                chunks.append(runner.default_chunk(st))
        # The first run's paths, made at the shape the run makes them (the generator compiles once): paths that
        # leave what the dtype allows are refused here, naming the keys that move them, before any folder is made.
        made = set()
        for st, ch in zip(studies, chunks):
            if id(st.make_paths) not in made:
                made.add(id(st.make_paths))
                runner.first_paths(st, ch)
        for st, folder, ch in zip(studies, folders, chunks):
            runner.prepare_folder(folder, runner.identity(st, source, ch), resume=args.resume)
        return chunks

    chunks = sharding.from_process_0("run/plan", plan)
    console, err_console = stdout_console(), stderr_console()
    summaries = {}
    for i, (st, folder, ch) in enumerate(zip(studies, folders, chunks)):
        label = st.venue.name if comparison_name else st.name
        if comparison_name:
            label = f"[{i + 1}/{len(studies)}] {label}"
        summary = _run_one(st, folder, ch, source, args, err_console, label)
        if summary is None:           # not process 0: it writes the results
            continue
        summaries[st.venue.name] = summary["statistics"]
        if not comparison_name:
            _print_summary(st, summary, folder, console)
        else:
            s = summary["statistics"]
            err_console.print(f"{st.venue.name}: P(ADL) {s['p_adl']:.1%}, mean bad debt "
                              f"{money(s['bad_debt']['mean'])} → {folder}/")
    if comparison_name and summaries:
        from ..analysis.metrics import comparison

        rows = comparison(summaries)
        st = studies[0]
        title = (f"adljax · {comparison_name} · {st.n_scenarios} scenarios × {st.n_steps} steps of {st.dt:g} s × "
                 f"{st.book.n_accounts} accounts (means are per scenario)")
        runner.write_json(out / "comparison.json", {"title": title, "venues": rows})
        if not args.no_plots:
            from ..analysis import plots

            plots.comparison(rows, out / "comparison.png", title)
        _print_comparison(rows, title, console)
        console.print(f"results: {out}/ (comparison.json{'' if args.no_plots else ', comparison.png'}, "
                      f"one folder per venue)")
    return 0


def _check_chunk(study, chunk: int) -> None:
    """Refuse a ``--chunk`` whose scenarios cannot fit the local devices' memory together
    (:func:`adljax.parallel.chunking.scenarios_per_chunk` with all of the memory, not its usual share)."""
    import jax

    from ..parallel.chunking import (MEMORY_SHARE, bytes_per_scenario, device_memory, padded_positions,
                                     scenarios_per_chunk)
    from ..model.position_book import PositionBook
    from ..studies.study import format_bytes

    itemsize = np.asarray(study.book.all_cash).dtype.itemsize
    rows, markets = study.book.n_accounts, study.book.n_markets       # trader rows; the engine adds 2
    # a position book's memory grows with its positions, not rows × markets
    n_positions = padded_positions(study.book.layout) if isinstance(study.book, PositionBook) else None
    n, devices, memory = min(chunk, study.n_scenarios), jax.local_device_count(), device_memory()
    fits = scenarios_per_chunk(rows + 2, markets, study.n_steps, itemsize, memory=int(memory / MEMORY_SHARE),
                               n_devices=devices, n_positions=n_positions)
    if n > fits:
        need = n * bytes_per_scenario(rows + 2, markets, study.n_steps, itemsize, n_positions=n_positions)
        where = (f"the device's memory ({format_bytes(memory)})" if devices == 1
                 else f"the memory of {devices} devices ({format_bytes(memory)} each)")
        raise UsageError(f"--chunk {chunk}: {n:,} scenarios of {rows:,} rows × {markets} market{'s' * (markets > 1)} × "
                         f"{study.n_steps:,} steps need about {format_bytes(need)} at once, more than {where}: at most "
                         f"{fits:,} (leave --chunk out to size chunks to the memory)")


def _load(args):
    """``(studies, source, comparison name or None)`` from the arguments."""
    from ..studies import scenario
    from ..studies.study import MARKETS, check_sizes, default_study

    if args.scenario is None:
        dtype = np.float64 if args.float64 else np.float32
        if args.float64:
            enable_x64()
        kw = dict(n_scenarios=args.scenarios or 512, n_steps=args.steps or 600, n_accounts=args.accounts or 1000,
                  seed=args.seed or 0)
        check_sizes(scenarios=kw["n_scenarios"], steps=kw["n_steps"], rows=kw["n_accounts"], markets=len(MARKETS),
                    itemsize=np.dtype(dtype).itemsize, names={"scenarios": "--scenarios", "steps": "--steps",
                                                              "rows": "--accounts"})
        source = {"kind": "default_study", **kw, "dtype": np.dtype(dtype).name}
        return [default_study(**kw, dtype=dtype)], source, None
    import tomllib

    path = Path(args.scenario)
    if path.is_dir():
        raise UsageError(f"{path}: is a folder, not a scenario file")
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise UsageError(f"{path}: no such scenario file") from None
    except OSError as err:
        raise UsageError(f"{path}: cannot read the scenario file ({err.strerror or err})") from None
    try:
        doc = tomllib.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, tomllib.TOMLDecodeError) as err:
        raise UsageError(f"{path}: not valid TOML ({err})") from None
    if args.seed is not None:
        doc["seed"] = args.seed
    if args.float64:
        doc["dtype"] = "float64"
    if doc.get("dtype") == "float64":
        enable_x64()
    studies = scenario.from_dict(doc, path, scenarios=args.scenarios, steps=args.steps, accounts=args.accounts,
                                 size_names=SIZE_NAMES)
    # the file's contents and the files it reads; sizes, seed and dtype are in the identity on their own
    source = {"kind": "scenario_file", "sha256": hashlib.sha256(raw).hexdigest(), "data": _referenced_files(doc, path)}
    name = doc.get("name", path.stem) if len(studies) > 1 else None
    return studies, source, name


def _referenced_files(doc: dict, path: Path) -> dict:
    """Digests of the files a scenario file reads (its book, its historical prices): part of the study's identity."""
    from ..studies.runner import file_digest

    out = {}
    for table in ("book", "paths"):
        f = doc.get(table, {}).get("file") if isinstance(doc.get(table), dict) else None
        if isinstance(f, str):
            p = Path(f) if Path(f).is_absolute() else path.parent / f
            try:
                out[f] = file_digest(p)
            except OSError:
                out[f] = None
    return out


def _run_one(study, out: Path, chunk: int, source: dict, args, console, label: str):
    """Run one study into ``out`` with a progress bar; write summary.json and the figures. Returns the summary."""
    import jax
    from rich.progress import (BarColumn, Progress, ProgressColumn, TextColumn, TimeElapsedColumn,
                               TimeRemainingColumn)
    from rich.text import Text

    from .. import __version__
    from ..analysis.metrics import summarize
    from ..studies import runner
    from ..studies.scenario import describe

    class Rate(ProgressColumn):
        def render(self, task):
            sp = task.speed
            return Text(f"{sp:,.1f} scenarios/s" if sp else "… scenarios/s", style="progress.data.speed")

    progress = Progress(TextColumn("{task.description}"), BarColumn(),
                        TextColumn("chunk {task.fields[done]}/{task.fields[chunks]}"), Rate(),
                        TimeElapsedColumn(), TextColumn("left"), TimeRemainingColumn(), console=console)
    state = {}

    def on_start(n_chunks, n_done, n_scen):
        state["task"] = progress.add_task(label, total=study.n_scenarios, completed=n_scen, done=n_done,
                                          chunks=n_chunks)
        if n_done:
            console.print(f"resuming {out}: {n_done} of {n_chunks} chunks already done")

    def on_chunk(n):
        t = state["task"]
        progress.update(t, advance=n, done=progress.tasks[t].fields["done"] + 1)

    with progress:
        info = runner.run_study(study, out, chunk=chunk, source=source, resume=True, on_start=on_start,
                                on_chunk=on_chunk)
    if info.metrics is None:          # a process other than 0 of a multi-process run: its chunks are written
        stdout_console().print(f"process {info.process} of {info.processes}: {info.chunks_run} chunks written "
                               f"into {out / runner.CHUNKS}/; process 0 writes the results")
        return None
    t0 = time.perf_counter()
    summary_stats = summarize(info.metrics)
    figures = []
    samples = {}
    if not args.no_plots:
        from ..analysis import plots

        samples = runner.sample_scenarios(info.metrics)
        hist = runner.sample_histories(study, list(samples), info.chunk)
        title = (f"{study.name} · {study.venue.name} · {study.n_scenarios} scenarios × {study.n_steps} steps of "
                 f"{study.dt:g} s × {study.book.n_accounts} accounts")
        figures = [p.name for p in plots.all_figures(info.metrics, hist, study.markets, study.dt, out, title,
                                                     samples)]
    dev = jax.local_devices()[0]
    summary = {
        "study": describe(study),
        "sizes": {"scenarios": study.n_scenarios, "steps": study.n_steps, "accounts": study.book.n_accounts,
                  "markets": study.book.n_markets, "rows": study.book.n_accounts + 2, "chunk": info.chunk,
                  "chunks": info.chunks},
        "device": f"{dev.platform}: {dev.device_kind}",
        "devices": {"per_process": jax.local_device_count(), "processes": jax.process_count()},
        "jax": jax.__version__,
        "adljax": __version__,
        "seconds": {"total": info.seconds + time.perf_counter() - t0, "simulate": info.simulate_seconds,
                    "chunks_run": info.chunks - info.chunks_resumed, "chunks_resumed": info.chunks_resumed},
        "identity": runner.identity_hash(runner.identity(study, source, chunk)),
        "files": {"scenarios": runner.SCENARIOS, "figures": figures,
                  "sample_scenarios": {str(i): why for i, why in samples.items()}},
        "statistics": summary_stats,
    }
    runner.write_json(out / "summary.json", summary)
    return summary


def _print_summary(study, summary: dict, out: Path, console) -> None:
    from rich.table import Table

    s = summary["statistics"]
    z = summary["sizes"]
    table = Table(title=f"adljax · {study.name} · {study.venue.name} · {z['scenarios']} scenarios × "
                        f"{z['steps']} steps of {study.dt:g} s × {z['accounts']} accounts × {z['markets']} markets")
    for col, j in (("stage (per scenario)", "left"), ("fired", "right"), ("mean", "right"), ("p50", "right"),
                   ("p99", "right")):
        table.add_column(col, justify=j)
    st = s["stages"]

    def row(label, d, usd=True):
        f = money if usd else (lambda x: f"{x:,.1f}")
        table.add_row(label, f"{d['fired']:.1%}", f(d["mean"]), f(d["p50"]), f(d["p99"]))

    row("market liquidation, USD", st["market_liquidation"])
    row("  partial orders", st["partial_orders"], usd=False)
    row("backstop takeover, USD", st["backstop"])
    row("  accounts taken over", st["backstop_accounts"], usd=False)
    row("ADL counterparties, USD", st["adl"])
    row("  accounts deleveraged", st["adl_accounts"], usd=False)
    if st["socialized_loss"]["fired"] > 0:
        row("socialized loss, USD", st["socialized_loss"])
    row("bad debt, USD", st["bad_debt"])
    split = s["bad_debt"]["split"]
    for part, label in (("backstop", "by backstop"), ("adl", "by ADL"), ("residual", "left over")):
        row(f"  {label} ({split[part]['share']:.0%})", split[part])
    console.print(table)
    v = s["vault_loss"]
    console.print(f"P(ADL) = {s['p_adl']:.2%}   vault loss: P(> 0) = {v['p_loss']:.1%}, mean {money(v['mean'])}, "
                  f"VaR95 {money(v['var95'])}, ES95 {money(v['es95'])}, VaR99 {money(v['var99'])}, "
                  f"ES99 {money(v['es99'])}")
    scale = float(np.sum(np.abs(np.asarray(study.book.all_cash, dtype=np.float64)))) or 1.0
    ce = s["max_conservation_error"]
    sec = summary["seconds"]
    resumed = f" ({sec['chunks_resumed']} of {z['chunks']} chunks resumed)" if sec["chunks_resumed"] else ""
    d = summary["devices"]
    n_dev = d["per_process"] * d["processes"]
    where = summary["device"] if n_dev == 1 else f"{n_dev} × {summary['device']}" + (
        f" ({d['processes']} processes)" if d["processes"] > 1 else "")
    console.print(f"conservation error ≤ ${ce:.3g} ({ce / scale:.1e} of collateral)   "
                  f"{sec['total']:.1f} s on {where}{resumed}")
    figs = summary["files"]["figures"]
    console.print(f"results: {out}/ (scenarios.parquet, summary.json{', ' + ', '.join(figs) if figs else ''})")


def _print_comparison(rows: list[dict], title: str, console) -> None:
    from rich.table import Table

    from ..analysis.metrics import COMPARISON

    table = Table(title=title)
    table.add_column("venue", no_wrap=True)
    for _, h, _, _ in COMPARISON:
        table.add_column(h, justify="right", overflow="fold")
    for r in rows:
        cells = [f"{r[k]:.1%}" if unit == "share" else compact(r[k]) for k, _, _, unit in COMPARISON]
        table.add_row(r["venue"], *cells)
    console.print(table)
    console.print("amounts are means per scenario (USD); bad debt = … by backstop + … by ADL + … left over; "
                  "vault ES99: the backstop vault's expected shortfall at 99 % (summary.json has more)")
