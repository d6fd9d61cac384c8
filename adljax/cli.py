"""Command line: ``adljax run``, ``adljax calibrate``, ``adljax inspect``, ``adljax bench``.

Bad arguments, missing or unreadable files and :class:`adljax.InputError`
get a one-line message on stderr and exit code 2.
"""
from __future__ import annotations

import argparse
import hashlib
import os
import sys
import time
from pathlib import Path

import numpy as np

EXIT_USAGE = 2

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

INSPECT_EPILOG = """\
example:
  adljax inspect scenarios/books/example.csv --markets BTC,ETH --prices 100000,4000
  adljax inspect book.parquet --markets BTC,ETH --prices 95000,3600 --venue bitmex --move each

Price moves are solved from AV = cash + Σ size·(m − entry) and MR = Σ |size|·m·mm
(docs/rules.md): --move together (default) scales every market's price by the same
(1 + x); --move each moves one market at a time, the others staying put."""

BENCH_EPILOG = """\
example:
  adljax bench                                  scenarios 16, 64, 256 × 120 steps × 1,000 accounts
  adljax bench --sizes 8,32 --steps 60 --accounts 200 --out /tmp/bench.json"""


class _Parser(argparse.ArgumentParser):
    """argparse with one-line errors (exit 2)."""

    def error(self, message):
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def _int_at_least(lo: int):
    def parse(text: str) -> int:
        try:
            v = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
        if v < lo:
            raise argparse.ArgumentTypeError(f"must be at least {lo}, got {v}")
        return v
    return parse


def _list(kind, what: str):
    def parse(text: str):
        items = [t.strip() for t in text.split(",")]
        if not text.strip() or any(not t for t in items):
            raise argparse.ArgumentTypeError(f"expected a comma-separated list of {what}, got {text!r}")
        try:
            return [kind(t) for t in items]
        except (ValueError, argparse.ArgumentTypeError):
            raise argparse.ArgumentTypeError(f"expected a comma-separated list of {what}, got {text!r}") from None
    return parse


class UsageError(Exception):
    """A one-line error for the user (exit 2)."""


def _fail(msg: str) -> int:
    print(f"adljax: error: {' '.join(str(msg).split())}", file=sys.stderr)
    return EXIT_USAGE


# ---- run ------------------------------------------------------------------------------------------
CACHE_ENV = "ADLJAX_COMPILATION_CACHE"


def _host_tag() -> str:
    """A short tag of this machine's CPU (compiled CPU code is only valid on the CPU it was compiled for)."""
    import platform

    info = platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith(("model name", "flags", "Features", "CPU part")):
                    info += line
                if line.strip() == "":
                    break
    except OSError:
        pass
    return hashlib.sha256(info.encode()).hexdigest()[:10]


def _compilation_cache() -> None:
    """Keep compiled engines between runs (JAX's persistent compilation cache).

    In ``$ADLJAX_COMPILATION_CACHE`` if set (``0``/``off``: no cache), else in
    ``~/.cache/adljax/jax-<cpu tag>``. A folder that cannot be made is skipped.
    """
    setting = os.environ.get(CACHE_ENV)
    if setting is not None and setting.strip().lower() in ("", "0", "off", "no", "none", "false"):
        return
    if setting:
        folder = Path(setting)
    else:
        base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
        folder = base / "adljax" / f"jax-{_host_tag()}"
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError:
        return
    if not os.access(folder, os.W_OK):
        return
    import jax

    jax.config.update("jax_compilation_cache_dir", str(folder))
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)


def _enable_x64() -> None:
    import jax

    jax.config.update("jax_enable_x64", True)


def _join(args) -> tuple[int, int]:
    """Join a multi-process run when asked (--coordinator/--num-processes/--process-id) or launched as one
    (srun, mpirun: JAX detects the rest). Returns ``(process index, process count)``; ``(0, 1)`` alone."""
    from . import sharding
    from .errors import InputError

    given = (args.coordinator, args.num_processes, args.process_id)
    if all(v is None for v in given) and not sharding.launched_by_cluster():
        return 0, 1
    try:
        return sharding.initialize(args.coordinator, args.num_processes, args.process_id)
    except InputError as err:     # "field[, field]: why" with the API's names: the command line's instead
        field, _, why = str(err).partition(": ")
        for name, flag in (("coordinator", "--coordinator"), ("num_processes", "--num-processes"),
                           ("process_id", "--process-id")):
            field = field.replace(name, flag)
        raise UsageError(f"{field}: {why}") from None


def _load(args):
    """``(studies, source, comparison name or None)`` from the arguments."""
    from . import scenario
    from .study import default_study

    if args.scenario is None:
        dtype = np.float64 if args.float64 else np.float32
        if args.float64:
            _enable_x64()
        kw = dict(n_scenarios=args.scenarios or 512, n_steps=args.steps or 600, n_accounts=args.accounts or 1000,
                  seed=args.seed or 0)
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
        _enable_x64()
    studies = scenario.from_dict(doc, path, scenarios=args.scenarios, steps=args.steps, accounts=args.accounts)
    # the file's contents and the files it reads; sizes, seed and dtype are in the identity on their own
    source = {"kind": "scenario_file", "sha256": hashlib.sha256(raw).hexdigest(), "data": _referenced_files(doc, path)}
    name = doc.get("name", path.stem) if len(studies) > 1 else None
    return studies, source, name


def _referenced_files(doc: dict, path: Path) -> dict:
    """Digests of the files a scenario file reads (its book, its historical prices): part of the study's identity."""
    from .runner import file_digest

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


def _progress_console():
    from rich.console import Console

    return Console(stderr=True)


def _run_one(study, out: Path, chunk: int, source: dict, args, console, label: str):
    """Run one study into ``out`` with a progress bar; write summary.json and the figures. Returns the summary."""
    import jax
    from rich.progress import (BarColumn, Progress, ProgressColumn, TextColumn, TimeElapsedColumn,
                               TimeRemainingColumn)
    from rich.text import Text

    from . import __version__, results, runner
    from .scenario import describe

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
        _console().print(f"process {info.process} of {info.processes}: {info.chunks_run} chunks written into "
                         f"{out / runner.CHUNKS}/; process 0 writes the results")
        return None
    t0 = time.perf_counter()
    summary_stats = results.summarize(info.metrics)
    figures = []
    samples = {}
    if not args.no_plots:
        from . import plots

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


def _money(x: float) -> str:
    x = round(float(x))
    return f"${x:,.0f}" if x >= 0 else f"−${-x:,.0f}"


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

    def row(label, d, money=True):
        f = _money if money else (lambda x: f"{x:,.1f}")
        table.add_row(label, f"{d['fired']:.1%}", f(d["mean"]), f(d["p50"]), f(d["p99"]))

    row("market liquidation, USD", st["market_liquidation"])
    row("  partial orders", st["partial_orders"], money=False)
    row("backstop takeover, USD", st["backstop"])
    row("  accounts taken over", st["backstop_accounts"], money=False)
    row("ADL counterparties, USD", st["adl"])
    row("  accounts deleveraged", st["adl_accounts"], money=False)
    if st["socialized_loss"]["fired"] > 0:
        row("socialized loss, USD", st["socialized_loss"])
    row("bad debt, USD", st["bad_debt"])
    split = s["bad_debt"]["split"]
    for part, label in (("backstop", "by backstop"), ("adl", "by ADL"), ("residual", "left over")):
        row(f"  {label} ({split[part]['share']:.0%})", split[part])
    console.print(table)
    v = s["vault_loss"]
    console.print(f"P(ADL) = {s['p_adl']:.2%}   vault loss: P(> 0) = {v['p_loss']:.1%}, mean {_money(v['mean'])}, "
                  f"VaR95 {_money(v['var95'])}, ES95 {_money(v['es95'])}, VaR99 {_money(v['var99'])}, "
                  f"ES99 {_money(v['es99'])}")
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


def _compact(x: float) -> str:
    """$1.23M, $45.6k, $789."""
    a = abs(x)
    sign = "−" if x < 0 and round(a) else ""
    for div, unit in ((1e9, "B"), (1e6, "M"), (1e3, "k")):
        if a >= div:
            return f"{sign}${a / div:.3g}{unit}"
    return f"{sign}${a:,.0f}"


def _console():
    """The stdout console: at least 120 columns when writing to a file or a pipe (no wrapping of tables)."""
    from rich.console import Console

    return Console() if sys.stdout.isatty() else Console(width=120)


def _print_comparison(rows: list[dict], title: str, console) -> None:
    from rich.table import Table

    from .results import COMPARISON

    table = Table(title=title)
    table.add_column("venue", no_wrap=True)
    for _, h, _, _ in COMPARISON:
        table.add_column(h, justify="right", overflow="fold")
    for r in rows:
        cells = [f"{r[k]:.1%}" if unit == "share" else _compact(r[k]) for k, _, _, unit in COMPARISON]
        table.add_row(r["venue"], *cells)
    console.print(table)
    console.print("amounts are means per scenario (USD); bad debt = … by backstop + … by ADL + … left over; "
                  "vault ES99: the backstop vault's expected shortfall at 99 % (summary.json has more)")


def cmd_run(args) -> int:
    from . import sharding

    if args.out is not None and Path(args.out).exists() and not Path(args.out).is_dir():
        raise UsageError(f"--out {args.out}: is a file, not a folder")
    index, count = _join(args)        # before any JAX computation (loading a study computes)
    if count == 1:
        return _cmd_run(args)
    # a multi-process run: the others learn from process 0 whether it finished (and exit as it did)
    if index == 0:
        try:
            code = _cmd_run(args)
        except BaseException as err:
            sharding.publish("cli/finished", {"error": " ".join(str(err).split()) or type(err).__name__})
            raise
        sharding.publish("cli/finished", {"error": None})
        return code
    code = _cmd_run(args)
    got = sharding.wait_for("cli/finished")
    if got["error"] is not None:
        raise sharding.DistributedError(f"process 0 stopped: {got['error']}")
    return code


def _cmd_run(args) -> int:
    from . import runner, sharding

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
                chunks.append(min(args.chunk, st.n_scenarios))
            elif args.resume and runner.recorded_chunk(folder):
                chunks.append(runner.recorded_chunk(folder))    # the folder's own chunking (it depends on the device)
            else:
                chunks.append(runner.default_chunk(st))
        for st, folder, ch in zip(studies, folders, chunks):
            runner.prepare_folder(folder, runner.identity(st, source, ch), resume=args.resume)
        return chunks

    chunks = sharding.from_process_0("cli/plan", plan)
    console, err_console = _console(), _progress_console()
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
                              f"{_money(s['bad_debt']['mean'])} → {folder}/")
    if comparison_name and summaries:
        from . import results

        rows = results.comparison(summaries)
        st = studies[0]
        title = (f"adljax · {comparison_name} · {st.n_scenarios} scenarios × {st.n_steps} steps of {st.dt:g} s × "
                 f"{st.book.n_accounts} accounts (means are per scenario)")
        runner.write_json(out / "comparison.json", {"title": title, "venues": rows})
        if not args.no_plots:
            from . import plots

            plots.comparison(rows, out / "comparison.png", title)
        _print_comparison(rows, title, console)
        console.print(f"results: {out}/ (comparison.json{'' if args.no_plots else ', comparison.png'}, "
                      f"one folder per venue)")
    return 0


# ---- inspect --------------------------------------------------------------------------------------
def _pct(x: float) -> str:
    if np.isnan(x):
        return "never"
    if x == 0:
        return "now"
    return f"{x * 100:+.1f} %"


def cmd_inspect(args) -> int:
    from rich.table import Table

    from .inspection import inspect_book

    _enable_x64()
    path = Path(args.book)
    if path.is_dir():
        raise UsageError(f"{path}: is a folder, not a book file")
    if not path.exists():
        raise UsageError(f"{path}: no such book file")
    if not os.access(path, os.R_OK):
        raise UsageError(f"{path}: cannot read the book file (permission denied)")
    if len(set(args.markets)) != len(args.markets):
        raise UsageError(f"--markets: names repeat: {', '.join(args.markets)}")
    if len(args.prices) != len(args.markets):
        raise UsageError(f"--prices: expected one price per market ({len(args.markets)}: {', '.join(args.markets)}), "
                         f"got {len(args.prices)}")
    if args.max_leverage is not None and len(args.max_leverage) not in (1, len(args.markets)):
        raise UsageError(f"--max-leverage: expected one value or one per market ({len(args.markets)}), "
                         f"got {len(args.max_leverage)}")
    r = inspect_book(path, args.markets, args.prices, venue_name=args.venue, max_leverage=args.max_leverage,
                     balance=args.balance, mode=args.move, top=args.top)
    console = _console()
    names, mk, venue = r["names"], r["markets"], r["venue"]
    lev = lambda i: (f"{r['notional'][i] / r['av'][i]:.1f}×" if r["av"][i] > 0 else "∞")
    console.print(f"{path.name}: {len(names)} accounts · {venue.name} rules · maintenance "
                  + ", ".join(f"{m} {f:.2%}" for m, f in zip(mk, r["mm"]))
                  + " · at " + ", ".join(f"{m} ${p:,.6g}" for m, p in zip(mk, r["prices"])))
    lights = lambda f: "■" * (6 - f) + "□" * (f - 1)
    for a, m in enumerate(mk):
        held = [i for i in np.argsort(-r["notional_by_market"][:, a], kind="stable")[:args.top]
                if r["size"][i, a] != 0]
        table = Table(title=f"{m}: ADL queue of the {len(held)} largest positions (fifth 1 = first to be deleveraged; "
                            f"ranking: {venue.rules.adl_score} score)")
        for col in ("account", "side", "size", "notional", "leverage", "account value", "ADL fifth", ""):
            table.add_column(col, justify="left" if col in ("account", "side", "") else "right")
        for i in held:
            s = r["size"][i, a]
            f = int(r["fifths"][i, a])
            table.add_row(names[i], "long" if s > 0 else "short", f"{s:,.6g}", _money(r["notional_by_market"][i, a]),
                          lev(i), _money(r["av"][i]), f"{f}/5", lights(f))
        console.print(table)
    has_backstop = venue.rules.backstop == "vault"
    mv = r["moves"]
    if args.move == "together":
        table = Table(title="Price move that makes the largest accounts liquidatable, reach the backstop, go bankrupt "
                            "— all markets moving together by the same %")
        cols = ["account", "notional", "leverage", "AV", "MR", "liquidatable (AV < MR)"]
        if has_backstop:
            cols.append(f"backstop (AV < {venue.backstop_ratio:.3g}·MR)")
        cols.append("bankrupt (AV < 0)")
        for c in cols:
            table.add_column(c, justify="left" if c == "account" else "right")
        for i in r["largest"]:
            cells = [names[i], _money(r["notional"][i]), lev(i), _money(r["av"][i]), _money(r["mr"][i]),
                     _pct(mv["liquidation"][i])]
            if has_backstop:
                cells.append(_pct(mv["backstop"][i]))
            cells.append(_pct(mv["bankruptcy"][i]))
            table.add_row(*cells)
        console.print(table)
    else:
        for a, m in enumerate(mk):
            table = Table(title=f"Price move of {m} alone (the other markets stay) that makes the largest accounts "
                                "liquidatable, reach the backstop, go bankrupt")
            cols = ["account", f"{m} size", "AV", "MR", "liquidatable"] + (["backstop"] if has_backstop else []) \
                + ["bankrupt"]
            for c in cols:
                table.add_column(c, justify="left" if c == "account" else "right")
            for i in r["largest"]:
                cells = [names[i], f"{r['size'][i, a]:,.6g}", _money(r["av"][i]), _money(r["mr"][i]),
                         _pct(mv["liquidation"][i, a])]
                if has_backstop:
                    cells.append(_pct(mv["backstop"][i, a]))
                cells.append(_pct(mv["bankruptcy"][i, a]))
                table.add_row(*cells)
            console.print(table)
    console.print("moves are % of today's price (− = down); 'now': already past it; 'never': no such move "
                  "reaches it (or prices would have to reach 0). Solved from AV and MR at mark "
                  "(docs/rules.md), without fills, fees or impact.")
    return 0


# ---- calibrate ------------------------------------------------------------------------------------
CALIBRATE_EPILOG = """\
examples:
  adljax calibrate scenarios/calibrate_margins.toml
  adljax calibrate scenarios/calibrate_margins.toml --iterations 40 --out results/quick-cal

The file is a scenario file with a [calibrate] table (fields, minimize, constraints,
temperature, scenarios per iteration, iterations, learning_rate; see the file and
adljax.scenario.load_calibration). Each iteration draws fresh scenarios; the answer
(the mean of the last quarter of the iterations) is then run with the hard engine on
the study's own scenarios, which the calibration never drew, and compared with the
venue's starting numbers. The folder gets calibration.json (answer, check, history)
and calibration.png."""


def cmd_calibrate(args) -> int:
    from rich.table import Table

    from . import plots, runner, scenario
    from .calibration import assess, calibrate

    if args.float64:
        _enable_x64()
    path = Path(args.scenario)
    if path.is_dir():
        raise UsageError(f"{path}: is a folder, not a scenario file")
    if not path.exists():
        raise UsageError(f"{path}: no such scenario file")
    sizes = {k: v for k, v in (("scenarios", args.check_scenarios), ("steps", args.steps),
                               ("accounts", args.accounts)) if v is not None}
    study, kw = scenario.load_calibration(path, **sizes)
    if args.iterations is not None:
        kw["iterations"] = args.iterations
    if args.scenarios is not None:
        kw["scenarios"] = args.scenarios
    out = Path(args.out) if args.out is not None else Path("results") / f"{study.name}-calibration"
    if out.exists() and not out.is_dir():
        raise UsageError(f"--out {out}: is a file, not a folder")
    console = _console()
    console.print(f"[bold]{study.name}[/bold]: calibrating {', '.join(kw['fields'])} over "
                  f"{kw.get('iterations', 150)} iterations of {kw.get('scenarios', 64)} fresh scenarios")
    cal = calibrate(study, progress=True, **kw)
    start = assess(study, level=cal.level)
    check = cal.check(study)
    table = Table(title=f"{study.name}: hard engine on the study's {study.n_scenarios} scenarios "
                        "(not used to calibrate)")
    for c in ("", "venue's numbers", "calibrated"):
        table.add_column(c, justify="right")
    for k, v in cal.values.items():
        table.add_row(k, _fmt(_start_value(study, k)), _fmt(v))
    for k in list(cal.minimize) + [c for c in cal.constraints if c not in cal.minimize]:
        bound = f" (≤ {cal.constraints[k]:,.4g})" if k in cal.constraints else ""
        table.add_row(k + bound, f"{start[k]:,.4g}", f"{check[k]:,.4g}")
    console.print(table)
    out.mkdir(parents=True, exist_ok=True)
    record = {"study": study.name, "scenario_file": str(path), "values": {k: np.asarray(v).tolist() for k, v in
              cal.values.items()}, "last": {k: np.asarray(v).tolist() for k, v in cal.last.items()},
              "minimize": cal.minimize, "constraints": cal.constraints, "temperature": cal.temperature,
              "level": cal.level, "check": check, "start": start, "history": cal.history}
    runner.write_json(out / "calibration.json", record)
    if not args.no_plots:
        plots.calibration(cal.history, cal.constraints, list(cal.minimize), list(cal.values),
                          out / "calibration.png", study.name)
    console.print(f"written: {out}")
    return 0


def _start_value(study, field: str):
    from .calibration import _start_values

    return _start_values(study.venue, study.book, study.book.n_markets, [field])[field]


def _fmt(v) -> str:
    a = np.atleast_1d(np.asarray(v, dtype=float))
    return ", ".join(f"{x:,.4g}" for x in a)


# ---- bench ----------------------------------------------------------------------------------------
def cmd_bench(args) -> int:
    from rich.table import Table

    from . import runner

    out = Path(args.out)
    if out.is_dir():
        raise UsageError(f"--out {out}: is a folder; give a .json file name")
    err = _progress_console()

    def on_size(r):
        err.print(f"{r['scenarios']} scenarios: compile {r['compile_s']:.1f} s, run {r['run_s']:.3f} s")

    record = runner.bench(args.sizes, steps=args.steps, accounts=args.accounts, repeats=args.repeats,
                          on_size=on_size)
    out.parent.mkdir(parents=True, exist_ok=True)
    runner.write_json(out, record)
    table = Table(title=f"adljax bench · default study · {args.steps} steps × {args.accounts} accounts × "
                        f"3 markets · {record['device']} · median of {args.repeats}")
    for c in ("scenarios", "compile (s)", "run (s)", "scenarios/s", "account·market·steps/s"):
        table.add_column(c, justify="right")
    for r in record["runs"]:
        table.add_row(str(r["scenarios"]), f"{r['compile_s']:.2f}", f"{r['run_s']:.3f}",
                      f"{r['scenarios_per_s']:,.1f}", f"{r['row_market_steps_per_s']:.3g}")
    console = _console()
    console.print(table)
    console.print(f"written: {out}")
    return 0


# ---- parser ---------------------------------------------------------------------------------------
def build_parser() -> argparse.ArgumentParser:
    fmt = argparse.RawDescriptionHelpFormatter
    parser = _Parser(prog="adljax", description="Liquidation-waterfall studies of perpetual-futures venues.",
                     epilog="commands:\n  adljax run --help\n  adljax calibrate --help\n  adljax inspect --help\n"
                            "  adljax bench --help",
                     formatter_class=fmt)
    sub = parser.add_subparsers(dest="command", required=True, metavar="{run,calibrate,inspect,bench}")

    p = sub.add_parser("run", help="run a study into a results folder (no argument: the default study)",
                       description="Run a study chunk by chunk, print what each stage of the waterfall did, and "
                                   "write a results folder.", epilog=RUN_EPILOG, formatter_class=fmt)
    p.add_argument("scenario", nargs="?", metavar="SCENARIO.toml",
                   help="a scenario file (see scenarios/); none: the default study")
    p.add_argument("--scenarios", type=_int_at_least(1), metavar="N",
                   help="number of price-path scenarios (default: the file's, or 512)")
    p.add_argument("--steps", type=_int_at_least(2), metavar="N",
                   help="steps per path (default: the file's, or 600 of 1 s)")
    p.add_argument("--accounts", type=_int_at_least(1), metavar="N",
                   help="trader accounts in a generated book (default: the file's, or 1000)")
    p.add_argument("--seed", type=_int_at_least(0), metavar="N",
                   help="seed of the book and the paths (default: the file's, or 0)")
    p.add_argument("--out", metavar="DIR", help="results folder (default results/<study name>)")
    p.add_argument("--chunk", type=_int_at_least(1), metavar="N",
                   help="scenarios per chunk (default: about 1/16 of the study, at least 16, at most what fits "
                        "the device's memory)")
    p.add_argument("--resume", action="store_true", help="finish a stopped run in --out (skips its finished chunks; "
                   "refuses a folder made by another study)")
    p.add_argument("--no-plots", action="store_true", help="skip the PNG figures")
    p.add_argument("--float64", action="store_true", help="run in float64 (default float32, or the file's dtype)")
    g = p.add_argument_group("several hosts (docs/scaling.md); detected under srun / mpirun")
    g.add_argument("--coordinator", metavar="HOST:PORT", help="address of process 0 and a free port, the same for "
                   "every process")
    g.add_argument("--num-processes", type=_int_at_least(1), metavar="N", help="processes in the run")
    g.add_argument("--process-id", type=_int_at_least(0), metavar="I", help="this process's number, 0 .. N-1 "
                   "(0 writes the results)")
    p.set_defaults(func=cmd_run)

    p = sub.add_parser("calibrate", help="choose venue numbers by gradient descent (a scenario file with "
                       "[calibrate])", description="Calibrate the fields a scenario file's [calibrate] table names "
                       "with the smooth engine and optax, then check the answer with the hard engine on fresh "
                       "scenarios.", epilog=CALIBRATE_EPILOG, formatter_class=fmt)
    p.add_argument("scenario", metavar="SCENARIO.toml", help="a scenario file with a [calibrate] table")
    p.add_argument("--iterations", type=_int_at_least(1), metavar="N", help="optimiser steps (default: the file's)")
    p.add_argument("--scenarios", type=_int_at_least(1), metavar="N",
                   help="fresh scenarios per iteration (default: the file's)")
    p.add_argument("--check-scenarios", type=_int_at_least(1), metavar="N",
                   help="scenarios the answer is checked on (default: the file's `scenarios`)")
    p.add_argument("--steps", type=_int_at_least(2), metavar="N", help="steps per path (default: the file's)")
    p.add_argument("--accounts", type=_int_at_least(1), metavar="N", help="accounts in a generated book")
    p.add_argument("--out", metavar="DIR", help="results folder (default results/<study name>-calibration)")
    p.add_argument("--no-plots", action="store_true", help="skip calibration.png")
    p.add_argument("--float64", action="store_true", help="run in float64 (the file's dtype must say so too)")
    p.set_defaults(func=cmd_calibrate)

    p = sub.add_parser("inspect", help="ADL queue and liquidation distances of a book file",
                       description="Print each market's ADL queue (in fifths) for the largest positions of a book "
                                   "file, and the price moves that would make its largest accounts liquidatable, "
                                   "reach the backstop, and go bankrupt.",
                       epilog=INSPECT_EPILOG, formatter_class=fmt)
    p.add_argument("book", metavar="BOOK.csv", help="a book file (.csv or .parquet: account,market,size,entry,cash"
                   "[,isolated])")
    p.add_argument("--markets", required=True, type=_list(str, "market names"), help="market names in the file, "
                   "e.g. BTC,ETH")
    p.add_argument("--prices", required=True, type=_list(float, "prices"), help="current mark prices, one per "
                   "market, e.g. 100000,4000")
    p.add_argument("--venue", default="hyperliquid", help="venue preset for margins and ADL ranking "
                   "(default hyperliquid)")
    p.add_argument("--max-leverage", type=_list(float, "numbers"), metavar="L[,L...]",
                   help="max leverage per market (sets maintenance = 1/(2·L); default: the venue preset's)")
    p.add_argument("--move", choices=("together", "each"), default="together",
                   help="together (default): all markets move by the same %%; each: one market at a time")
    p.add_argument("--top", type=_int_at_least(1), default=10, help="how many of the largest accounts (default 10)")
    p.add_argument("--balance", action="store_true", help="a book that is not zero-sum: give the rest to the "
                   "liquidity-provider row")
    p.set_defaults(func=cmd_inspect)

    p = sub.add_parser("bench", help="time the engine on the default study",
                       description="Time the compiled engine on the default study at a few sizes: compile time "
                                   "apart, then the median of --repeats runs; throughput in account·market·steps/s "
                                   "(accounts + the two system rows).",
                       epilog=BENCH_EPILOG, formatter_class=fmt)
    p.add_argument("--sizes", type=_list(_int_at_least(1), "numbers of scenarios (each ≥ 1)"), default=[16, 64, 256],
                   help="numbers of scenarios (default 16,64,256)")
    p.add_argument("--steps", type=_int_at_least(2), default=120, help="steps (default 120)")
    p.add_argument("--accounts", type=_int_at_least(1), default=1000, help="accounts (default 1000)")
    p.add_argument("--repeats", type=_int_at_least(1), default=3, help="timed runs per size (default 3)")
    p.add_argument("--out", default="results/bench.json", help="JSON file (default results/bench.json)")
    p.set_defaults(func=cmd_bench)
    return parser


def main(argv=None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    from .errors import InputError
    from .sharding import DistributedError

    try:
        if args.func is not cmd_bench:         # bench measures compile time: no cache there
            _compilation_cache()
        return args.func(args)
    except (UsageError, InputError) as err:
        return _fail(str(err))
    except DistributedError as err:            # another process of a multi-process run failed
        _fail(str(err))
        return err.exit_code
    except OSError as err:       # writing the results folder: permission, disk full, ...
        where = f"{err.filename}: " if getattr(err, "filename", None) else ""
        return _fail(f"{where}{err.strerror or err}")
    except KeyboardInterrupt:
        print("adljax: interrupted (finished chunks are kept: run again with --resume)", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
