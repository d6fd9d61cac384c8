"""What every command shares: one-line errors (exit 2), argument types, the compilation cache, consoles and
money formats."""
from __future__ import annotations

import argparse
import hashlib
import os
import sys
from pathlib import Path

EXIT_USAGE = 2


class Parser(argparse.ArgumentParser):
    """argparse with one-line errors (exit 2)."""

    def error(self, message):
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def int_at_least(lo: int, hi: int | None = None):
    """An argparse type: a whole number >= ``lo`` (and <= ``hi`` when given)."""
    def parse(text: str) -> int:
        try:
            v = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
        if v < lo:
            raise argparse.ArgumentTypeError(f"must be at least {lo}, got {v}")
        if hi is not None and v > hi:
            raise argparse.ArgumentTypeError(f"must be at most {hi}, got {v}")
        return v
    return parse


def comma_list(kind, what: str):
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


def fail(msg: str) -> int:
    print(f"adljax: error: {' '.join(str(msg).split())}", file=sys.stderr)
    return EXIT_USAGE


CACHE_ENV = "ADLJAX_COMPILATION_CACHE"


def host_tag() -> str:
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


def compilation_cache() -> None:
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
        folder = base / "adljax" / f"jax-{host_tag()}"
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError:
        return
    if not os.access(folder, os.W_OK):
        return
    import jax

    jax.config.update("jax_compilation_cache_dir", str(folder))
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)


def enable_x64() -> None:
    import jax

    jax.config.update("jax_enable_x64", True)


def join(args) -> tuple[int, int]:
    """Join a multi-process run when asked (--coordinator/--num-processes/--process-id) or launched as one
    (srun, mpirun: JAX detects the rest). Returns ``(process index, process count)``; ``(0, 1)`` alone."""
    from ..model.errors import InputError
    from ..parallel import sharding

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


def stderr_console():
    from rich.console import Console

    return Console(stderr=True)


def stdout_console():
    """The stdout console: at least 120 columns when writing to a file or a pipe (no wrapping of tables)."""
    from rich.console import Console

    return Console() if sys.stdout.isatty() else Console(width=120)


def money(x: float) -> str:
    x = round(float(x))
    return f"${x:,.0f}" if x >= 0 else f"−${-x:,.0f}"


def compact(x: float) -> str:
    """$1.23M, $45.6k, $789."""
    a = abs(x)
    sign = "−" if x < 0 and round(a) else ""
    for div, unit in ((1e9, "B"), (1e6, "M"), (1e3, "k")):
        if a >= div:
            return f"{sign}${a / div:.3g}{unit}"
    return f"{sign}${a:,.0f}"
