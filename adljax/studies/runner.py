"""Running a study into a results folder, chunk by chunk, so that a killed run can resume.

A results folder holds::

    manifest.json                        the study's identity (written first)
    chunks/00000000-00000031.parquet     one file per finished chunk (first and last scenario, inclusive)
    scenarios.parquet                    every scenario's metrics: column ``scenario`` + every adljax.METRICS
    summary.json, *.png                  written by the command line after the run

Each chunk is written as soon as it is finished, to a temporary name then
renamed (``os.replace`` is atomic), so a chunk file is either whole or
absent. ``resume=True`` skips the chunks already there. The chunk boundaries
are part of the identity, and a scenario's numbers depend on its index only
(its paths and engine key are drawn from ``fold_in(key, index)``), so a
resumed run gives exactly the numbers of an uninterrupted one.

A scenario's last bits also depend on the shape of the compiled program it
runs in (:mod:`adljax.parallel.chunking`), so on CPU, where the engine runs
blocks of 8 scenarios, scenario ``i`` always runs in block ``i // 8`` with
the same neighbours, one block a device a run
(:func:`adljax.parallel.chunking.block_runs`): its numbers are bitwise the
same for every chunk size and device count, and a run killed on 2 devices
resumes on 1 with the numbers of an uninterrupted run. A chunk runs the
blocks that hold it: with a chunk that is not a multiple of 8 some of its
neighbours run and are dropped (:func:`default_chunk` is a multiple of 8 ×
the devices, so that every run is a block on each device and the path
generator and the engine compile once), and so do the scenarios after the
study's end in its last block. On an accelerator the
engine runs a device's whole share of a chunk at once (a short last chunk
filled up with the scenarios after the study's end, so that every chunk has
one shape), so the numbers depend on the device count: the identity records
it (``split``) and a resume on another count is refused.

A chunk whose metrics are not all finite is not written: the run stops with
:class:`NonFiniteMetrics` (exit code 2 from the command line), naming the
metric, the scenarios and the likely cause; the chunks before it are kept.

Several processes (a multi-host run joined by :func:`adljax.parallel.sharding.initialize`)
share one results folder on a filesystem they all see: process 0 makes the
folder (or checks it, on resume) and the others check it once it is there;
process ``p`` of ``P`` runs chunks ``p, p + P, p + 2P, ...`` and writes each
into the folder itself; the processes then meet
(:func:`adljax.parallel.sharding.meet`), each saying whether its chunks are
written (or why they are not), and process 0 reads every chunk and writes
``scenarios.parquet`` as a one-process run does. Scenario ``i``'s
numbers do not depend on which process or device ran it, so the folder is
that of a one-process run.
"""
from __future__ import annotations

import dataclasses
import hashlib
import itertools
import json
import math
import os
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np

from ..model.errors import InputError

#: Scenarios per chunk at least (unless the study is smaller), and the number of chunks aimed at.
MIN_CHUNK = 16
TARGET_CHUNKS = 16
MANIFEST = "manifest.json"
CHUNKS = "chunks"
SCENARIOS = "scenarios.parquet"
#: Test hook: exit hard (``os._exit(1)``, as if killed) after writing this many chunks.
STOP_ENV = "ADLJAX_TEST_STOP_AFTER_CHUNKS"


class ResultsFolderError(InputError):
    """The results folder cannot be used (another study's, or not empty without resume)."""


class NonFiniteMetrics(InputError):
    """A chunk's metrics are not all finite (values beyond the float range): the chunk is not written."""


def engine_block() -> int | None:
    """Scenarios the engine runs as one program on this process's backend (8 on CPU), or None: a device's
    whole share of a chunk (accelerators)."""
    from ..engine.config import EngineConfig

    return EngineConfig().block_size()


def split(n_devices: int | None = None) -> str:
    """How a chunk's scenarios are split into compiled runs, as the identity records it: the engine's block on
    CPU (the same for every device count), or the device count where a device runs its whole share at once."""
    import jax

    b = engine_block()
    if b is not None:
        return f"blocks of {b} scenarios"
    d = jax.local_device_count() if n_devices is None else n_devices
    return f"each chunk over {d} device{'s' if d != 1 else ''}"


def default_chunk(study, *, n_devices: int | None = None, n_processes: int | None = None) -> int:
    """About 1/16 of the study (1/P with P > 16 processes), at least 16 scenarios, a multiple of the local device
    count times the engine's block (8 on CPU, so that no device runs scenarios it drops), at most what fits the
    local devices (:mod:`adljax.chunking`, rounded down to that multiple where it holds one); never more than
    the study.

    ``n_devices`` / ``n_processes`` default to this process's devices and the run's processes.
    """
    import jax

    from ..parallel.chunking import padded_positions, scenarios_per_chunk
    from ..model.position_book import PositionBook

    d = jax.local_device_count() if n_devices is None else n_devices
    p = jax.process_count() if n_processes is None else n_processes
    itemsize = np.asarray(study.book.all_cash).dtype.itemsize
    # a position book's memory grows with its positions, not rows × markets
    n_positions = padded_positions(study.book.layout) if isinstance(study.book, PositionBook) else None
    fits = scenarios_per_chunk(study.book.n_accounts + 2, study.book.n_markets, study.n_steps, itemsize,
                               n_devices=d, n_positions=n_positions)
    m = d * (engine_block() or 1)
    c = max(math.ceil(study.n_scenarios / max(TARGET_CHUNKS, p)), MIN_CHUNK)
    c = math.ceil(c / m) * m
    if fits >= m:
        fits = fits // m * m
    return max(1, min(c, fits, study.n_scenarios))


def chunk_bounds(n_scenarios: int, chunk: int) -> list[tuple[int, int]]:
    """``[(first, n), ...]`` covering ``[0, n_scenarios)`` in chunks of ``chunk`` (the last may be shorter)."""
    return [(f, min(chunk, n_scenarios - f)) for f in range(0, n_scenarios, chunk)]


def chunk_name(first: int, n: int) -> str:
    return f"{first:08d}-{first + n - 1:08d}.parquet"


def file_digest(path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def identity(study, source: dict[str, Any], chunk: int) -> dict[str, Any]:
    """What makes two runs the same study: its source (file digest or default-study arguments), sizes, chunk, how
    a chunk is split into compiled runs (:func:`split`), seed, dtype, venue, and the adljax version."""
    from .. import __version__

    return {
        "source": source,
        "name": study.name,
        "venue": study.venue.name,
        "scenarios": int(study.n_scenarios),
        "steps": int(study.n_steps),
        "accounts": int(study.book.n_accounts),
        "markets": list(study.markets),
        "dt": float(study.dt),
        "seed": int(study.seed),
        "dtype": str(np.asarray(study.book.all_cash).dtype),
        "chunk": int(chunk),
        "split": split(),
        "adljax": __version__,
    }


def identity_hash(ident: dict) -> str:
    return hashlib.sha256(json.dumps(ident, sort_keys=True).encode()).hexdigest()[:16]


def _write_atomic(path: Path, write: Callable[[Path], None]) -> None:
    tmp = path.with_name(f".tmp-{os.getpid()}-{path.name}")
    try:
        write(tmp)
        with open(tmp, "rb") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def write_json(path: Path, obj) -> None:
    _write_atomic(Path(path), lambda p: p.write_text(json.dumps(obj, indent=2, sort_keys=False) + "\n"))


def metrics_table(first: int, metrics: dict[str, np.ndarray]):
    """A pyarrow Table: ``scenario`` (int64) then every metric (float64) in :data:`adljax.METRICS` order."""
    import pyarrow as pa

    from ..model.outcome import METRICS

    n = len(next(iter(metrics.values())))
    cols = {"scenario": pa.array(np.arange(first, first + n, dtype=np.int64))}
    for k in METRICS:
        cols[k] = pa.array(np.asarray(metrics[k], dtype=np.float64))
    return pa.table(cols)


def write_parquet(path: Path, table) -> None:
    import pyarrow.parquet as pq

    _write_atomic(Path(path), lambda p: pq.write_table(table, p))


def prepare_folder(out: Path, ident: dict, *, resume: bool) -> None:
    """Make ``out`` a results folder of this study, or check that it is one (``resume``).

    Raises ResultsFolderError: ``out`` is a file; or it holds something and
    ``resume`` is off; or ``resume`` is on and it was made by another study.
    """
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise ResultsFolderError(f"--out {out}: is a file, not a folder")
    has = out.is_dir() and any(out.iterdir())
    manifest = out / MANIFEST
    if has and not resume:
        same = manifest.is_file() and _read_manifest(out).get("identity_hash") == identity_hash(ident)
        what = "results of this study" if same else "files"
        raise ResultsFolderError(f"--out {out}: already holds {what}; use --resume to finish (or reuse) "
                                 "them, or choose another --out")
    if has:
        if not manifest.is_file():
            raise ResultsFolderError(f"--out {out}: not an adljax results folder (no {MANIFEST}); "
                                     "choose another --out")
        old = _read_manifest(out)
        if old.get("identity_hash") != identity_hash(ident):
            before = old.get("identity", {})
            diff = [k for k in sorted(set(before) | set(ident)) if before.get(k) != ident.get(k)]
            if diff == ["split"] and before.get("split"):
                raise ResultsFolderError(f"--out {out}: its chunks ran {before['split']}, this run would run them "
                                         f"{ident['split']}, which changes the numbers in the last bits; resume "
                                         "with the devices it was started with, or choose another --out")
            detail = "; ".join(_difference(k, before.get(k), ident.get(k)) for k in diff[:3])
            raise ResultsFolderError(f"--out {out}: made by a different study, cannot resume into it "
                                     f"({detail or 'different identity'}); choose another --out")
        for tmp in (out / CHUNKS).glob(".tmp-*"):      # left by a killed run
            tmp.unlink()
        return
    try:
        (out / CHUNKS).mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise ResultsFolderError(f"--out {out}: cannot make the results folder ({err.strerror or err})") from None
    write_json(manifest, {"identity": ident, "identity_hash": identity_hash(ident),
                          "created": time.strftime("%Y-%m-%dT%H:%M:%S%z")})


def check_folder(out: Path, ident: dict) -> None:
    """Check, without changing anything, that ``out`` is a results folder of this study (made by another process).

    Raises ResultsFolderError: no manifest there (``out`` is not on a
    filesystem this process shares with process 0), or another study's.
    """
    out = Path(out)
    if not (out / MANIFEST).is_file():
        raise ResultsFolderError(f"--out {out}: process 0 made the results folder but this process does not see it; "
                                 "--out must be on a filesystem every process shares")
    if _read_manifest(out).get("identity_hash") != identity_hash(ident):
        raise ResultsFolderError(f"--out {out}: its manifest is not this process's study (do all processes run the "
                                 "same adljax version, arguments and files?)")


def recorded_chunk(out) -> int | None:
    """The chunk size a results folder was made with (None if it has no readable manifest)."""
    try:
        c = json.loads((Path(out) / MANIFEST).read_text())["identity"]["chunk"]
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return c if isinstance(c, int) and c >= 1 else None


def _difference(key: str, there, now) -> str:
    if key == "source" and isinstance(there, dict) and isinstance(now, dict):
        if there.get("kind") == now.get("kind") == "scenario_file":
            return "the scenario file, or a file it reads, has other contents"
        if there.get("kind") != now.get("kind"):
            return f"source: {there.get('kind')} there, {now.get('kind')} now"
    return f"{key}: {_short(there)} there, {_short(now)} now"


def _short(v) -> str:
    s = json.dumps(v, sort_keys=True) if not isinstance(v, str) else v
    return s if len(s) <= 60 else s[:57] + "..."


def _read_manifest(out: Path) -> dict:
    try:
        return json.loads((out / MANIFEST).read_text())
    except (OSError, ValueError) as err:
        raise ResultsFolderError(f"--out {out}: unreadable {MANIFEST} ({err}); choose another --out") from None


def window(first: int, n: int, chunk: int) -> tuple[int, int]:
    """``(start, count)``: the scenarios the engine runs for the chunk ``[first, first + n)``. On CPU the whole
    blocks of the engine's that hold it (:func:`adljax.parallel.chunking.block_span`); on an accelerator, the
    chunk filled up to ``chunk`` scenarios with those after it (a short last chunk with those after the study's
    end; scenario ``i``'s paths depend on ``i`` only), so that every chunk has one shape."""
    from ..parallel.chunking import block_span

    b = engine_block()
    if b is None:
        return first, chunk
    start, blocks = block_span(first, n, b)
    return start, blocks * b


def engine_runs(first: int, n: int, chunk: int, n_devices: int | None = None) -> list[tuple[int, int, int | None]]:
    """``[(first, count, devices), ...]``: the engine runs of the chunk ``[first, first + n)`` on ``n_devices``
    devices (default: this process's). On CPU one block of the engine's a device a run
    (:func:`adljax.parallel.chunking.block_runs`); on an accelerator one run of the chunk (filled up to
    ``chunk``) over every device (``devices`` None)."""
    import jax

    from ..parallel.chunking import block_runs

    b = engine_block()
    start, count = window(first, n, chunk)
    if b is None:
        return [(start, count, None)]
    return block_runs(start, count // b, b, jax.local_device_count() if n_devices is None else n_devices)


def run_chunk(study, first: int, n: int, chunk: int, *, history: bool = False):
    """Run scenarios ``[first, first + n)`` of ``study``, a chunk of ``chunk`` scenarios, on this process's devices.

    On CPU the engine runs the blocks that hold the chunk one block a device at a time (:func:`engine_runs`), so
    that a scenario's numbers do not depend on the chunk size or the device count: the runs are a block on each
    device (one compiled program) and, where the chunk's blocks are not a multiple of the devices, a block on
    each of fewer, with their paths made at the run's shape. On an accelerator, the chunk filled up to
    ``chunk`` scenarios, split over the devices.
    Returns ``(final book, metrics, history)`` of the ``n`` scenarios, as host arrays (history None unless asked).
    """
    import jax

    from ..engine.simulation import simulate
    from ..model.position_book import PositionBook

    parts = []
    for f, c, devices in engine_runs(first, n, chunk):
        o = simulate(study.venue, study.book, study.make_paths(f, c), dt=study.dt, key=study.key, first_scenario=f,
                     chunk=c, devices=devices, history=history)
        book = o.book
        # a position book's layout is one for the batch: only its per-scenario arrays are joined and cut
        layout = book.layout if isinstance(book, PositionBook) else None
        parts.append(jax.device_get((book.values() if layout is not None else book, o.metrics, o.history)))
    out = parts[0] if len(parts) == 1 else jax.tree_util.tree_map(lambda *xs: np.concatenate(xs, axis=0), *parts)
    start = window(first, n, chunk)[0]
    book, metrics, hist = jax.tree_util.tree_map(lambda x: np.asarray(x)[first - start:first - start + n], out)
    if layout is not None:
        book = PositionBook(**book, layout=jax.device_get(layout))
    return book, metrics, hist


def first_paths(study, chunk: int):
    """The paths of the study's first engine run, at the shape the run makes them (so that making them first, to
    check them, compiles the generator the run uses)."""
    f, c, _ = engine_runs(0, min(chunk, study.n_scenarios), chunk)[0]
    return study.make_paths(f, c)


def check_finite(metrics: dict[str, np.ndarray], first: int, dtype) -> None:
    """Raise :class:`NonFiniteMetrics` if a metric of scenarios ``first, first + 1, ...`` is NaN or infinite: one
    line naming the first such metric (in :data:`adljax.METRICS` order) and its scenarios, the other metrics
    that are not finite, and the likely cause for the run's float ``dtype``."""
    from ..model.outcome import METRICS

    bad = {k: np.flatnonzero(~np.isfinite(np.asarray(metrics[k], dtype=np.float64)))
           for k in METRICS if k in metrics}
    bad = {k: v for k, v in bad.items() if len(v)}
    if not bad:
        return
    name, idx = next(iter(bad.items()))
    values = np.asarray(metrics[name], dtype=np.float64)[idx]
    what = "NaN" if np.isnan(values).all() else "infinite" if np.isinf(values).all() else "NaN or infinite"
    scen = ", ".join(str(first + int(i)) for i in idx[:5]) + (f" and {len(idx) - 5} more" if len(idx) > 5 else "")
    others = f" (also not finite: {', '.join(list(bad)[1:])})" if len(bad) > 1 else ""
    dt = np.dtype(dtype).name
    if dt == "float32":
        cause = ("values beyond the float32 range (about 3.4e38) overflow to inf (and inf - inf is NaN): "
                 "rerun in float64 (--float64, or dtype = \"float64\" in the scenario file) into a new --out")
    else:
        cause = ("values beyond the float64 range, or 0/0: check the book's sizes and cash and the paths' prices "
                 "and depth")
    raise NonFiniteMetrics(f"metric {name} is {what} in scenario{'s' if len(idx) > 1 else ''} {scen}{others}: "
                           f"{cause}; this chunk was not written, the chunks before it are kept")


@dataclasses.dataclass
class RunInfo:
    """What :func:`run_study` did (in a multi-process run: what this process did; only process 0 has ``metrics``)."""

    out: Path
    metrics: dict[str, np.ndarray] | None  # every scenario, in index order, float64 (None on processes other than 0)
    chunk: int
    chunks: int                          # of the study
    chunks_resumed: int                  # found finished in the folder
    seconds: float                       # this call's wall time
    simulate_seconds: float              # of which running chunks (compile included)
    chunks_run: int = 0                  # run by this process in this call
    process: int = 0                     # this process's index
    processes: int = 1                   # processes of the run


#: run_study calls in this process: in a multi-process run every process makes the same calls in the same order,
#: so the n-th call's meetings are named after n.
_CALLS = itertools.count()


def run_study(study, out, *, chunk: int, source: dict, resume: bool = False,
              on_start: Callable[[int, int, int], None] | None = None,
              on_chunk: Callable[[int], None] | None = None) -> RunInfo:
    """Run ``study`` into the results folder ``out``, chunk by chunk (see the module docstring).

    Each chunk runs on every local device (:func:`adljax.simulate` splits it
    over them). In a multi-process run every process calls this with the
    same arguments; each runs its share of the chunks and process 0
    assembles the results.

    Args:
      study: an :class:`adljax.study.Study`.
      out: the results folder.
      chunk: scenarios per chunk.
      source: the study's origin for its identity (e.g. ``{"file": ..., "sha256": ...}``).
      resume: finish a folder made by the same study (skip its finished chunks).
      on_start: ``(n_chunks, n_done_chunks, n_done_scenarios)`` before the first chunk runs (this process's
        chunks in a multi-process run).
      on_chunk: ``(n_scenarios)`` after each chunk is written.
    Returns:
      :class:`RunInfo` with every scenario's metrics (read back from the chunk files; on process 0 only).
    Raises:
      ResultsFolderError: the folder cannot be used, or a chunk file is not readable.
      DistributedError: another process failed (its message says which and why).
    """
    import jax

    from ..model.outcome import METRICS
    from ..parallel import sharding

    t0 = time.perf_counter()
    out = Path(out)
    if chunk < 1:
        raise InputError(f"--chunk: must be at least 1, got {chunk}")
    ident = identity(study, source, chunk)
    index, count = jax.process_index(), jax.process_count()
    tag = f"run_study/{next(_CALLS)}"
    first_paths(study, chunk)      # paths out of range are refused before a results folder exists
    # process 0 makes (or checks) the folder; the others look only once it is there
    sharding.from_process_0(f"{tag}/folder", lambda: prepare_folder(out, ident, resume=resume))
    bounds = chunk_bounds(study.n_scenarios, chunk)
    mine = bounds[index::count]
    stop_after = int(os.environ.get(STOP_ENV, "0") or 0)
    written = 0
    sim_s = 0.0
    done = set()
    try:    # from here on, every process meets the others once its chunks are written, or once it has failed
        if index != 0:
            check_folder(out, ident)
        done = {(f, n) for f, n in bounds if (out / CHUNKS / chunk_name(f, n)).is_file()}
        if on_start:
            on_start(len(mine), len(done.intersection(mine)), sum(n for f, n in mine if (f, n) in done))
        for first, n in mine:
            if (first, n) in done:
                continue
            t1 = time.perf_counter()
            _, m, _ = run_chunk(study, first, n, chunk)
            sim_s += time.perf_counter() - t1
            check_finite(m, first, np.asarray(study.book.all_cash).dtype)
            write_parquet(out / CHUNKS / chunk_name(first, n), metrics_table(first, m))
            written += 1
            if on_chunk:
                on_chunk(n)
            if stop_after and written >= stop_after:
                os._exit(1)
    except BaseException as err:
        sharding.tell_others(err, f"{tag}/chunks")
        raise
    failed = [(p, s["error"]) for p, s in enumerate(sharding.meet(f"{tag}/chunks")) if s["error"] is not None]
    if failed:
        p, why = failed[0]
        raise sharding.DistributedError(f"process {p} stopped before writing its chunks ({why}); the chunks written "
                                        f"are kept: run again with --resume")
    info = dict(out=out, chunk=chunk, chunks=len(bounds), chunks_resumed=len(done), chunks_run=written,
                process=index, processes=count)
    if index != 0:
        return RunInfo(metrics=None, seconds=time.perf_counter() - t0, simulate_seconds=sim_s, **info)

    import pyarrow as pa
    import pyarrow.parquet as pq

    tables = []
    for first, n in bounds:
        f = out / CHUNKS / chunk_name(first, n)
        if not f.is_file():
            raise ResultsFolderError(f"{f}: missing chunk (was it written where this process cannot see it?); "
                                     "run with --resume again")
        try:
            t = pq.read_table(f)
        except (OSError, pa.ArrowException) as err:
            raise ResultsFolderError(f"{f}: unreadable chunk ({err}); delete it and run with --resume again") from None
        if t.num_rows != n or t.column_names != ["scenario", *METRICS]:
            raise ResultsFolderError(f"{f}: not this chunk's table ({t.num_rows} rows, expected {n}); "
                                     "delete it and run with --resume again")
        tables.append(t)
    table = pa.concat_tables(tables)
    write_parquet(out / SCENARIOS, table)
    metrics = {c: table.column(c).to_numpy() for c in table.column_names if c != "scenario"}
    return RunInfo(metrics=metrics, seconds=time.perf_counter() - t0, simulate_seconds=sim_s, **info)


def sample_scenarios(metrics: dict[str, np.ndarray], k: int = 4) -> dict[int, str]:
    """Up to ``k`` scenarios worth a look, ``{index: why}``: the largest ADL, backstop takeover, bad debt and market
    liquidation (where any), then those closest to the median vault loss (ties to the lowest index)."""
    picks: dict[int, str] = {}
    for name, why in (("adl_notional", "largest ADL"), ("backstop_notional", "largest backstop takeover"),
                      ("bad_debt", "largest bad debt"), ("market_liquidation_notional", "largest market liquidation")):
        v = np.asarray(metrics[name])
        if len(picks) < k and v.max() > 0:
            picks.setdefault(int(np.argmax(v)), why)
    loss = -np.asarray(metrics["vault_pnl"], dtype=np.float64)
    for i in np.argsort(np.abs(loss - np.median(loss)), kind="stable"):
        if len(picks) >= k:
            break
        picks.setdefault(int(i), "a typical scenario (median vault loss)")
    return dict(sorted(picks.items()))


def sample_histories(study, indices: list[int], chunk: int) -> dict[int, dict[str, np.ndarray]]:
    """Run scenarios ``indices`` again with ``history=True``: ``{index: {name: [T] or [T, A]}}``.

    On CPU each runs in its block of the engine's on one device, as it ran in the study (its numbers are the
    study's), a block once for all the indices it holds; on an accelerator, alone. Its engine key is its own.
    ``chunk`` (the run's) does not change which scenarios run together.
    """
    import jax

    from ..engine.simulation import simulate

    size = engine_block() or 1
    out = {}
    for i in indices:
        if i in out:
            continue
        at = i // size * size
        o = simulate(study.venue, study.book, study.make_paths(at, size), dt=study.dt, key=study.key,
                     first_scenario=at, history=True, chunk=size, devices=1)
        hist = jax.device_get(o.history)
        for j in indices:
            if at <= j < at + size:
                out[j] = {k: np.asarray(v)[j - at] for k, v in hist.items()}
    return {i: out[i] for i in indices}
