"""Command line: ``adljax run``, ``adljax calibrate``, ``adljax inspect``; one module a command.

Bad arguments, missing or unreadable files and :class:`adljax.InputError`
get a one-line message on stderr and exit code 2.
"""
from __future__ import annotations

import argparse
import sys

from . import calibrate, inspect, run
from .common import Parser, UsageError, compilation_cache, fail


def build_parser() -> argparse.ArgumentParser:
    fmt = argparse.RawDescriptionHelpFormatter
    parser = Parser(prog="adljax", description="Liquidation-waterfall studies of perpetual-futures venues.",
                    epilog="commands:\n  adljax run --help\n  adljax calibrate --help\n  adljax inspect --help",
                    formatter_class=fmt)
    sub = parser.add_subparsers(dest="command", required=True, metavar="{run,calibrate,inspect}")
    for command in (run, calibrate, inspect):
        command.add_parser(sub, fmt)
    return parser


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)

    from ..model.errors import InputError
    from ..parallel.cpu import use_cpu_cores
    from ..parallel.sharding import DistributedError

    # one JAX device per core (unless JAX_NUM_CPU_DEVICES chose): each chunk's scenarios are split over them
    use_cpu_cores()
    try:
        compilation_cache()
        return args.func(args)
    except (UsageError, InputError) as err:
        return fail(str(err))
    except DistributedError as err:            # another process of a multi-process run failed
        fail(str(err))
        return err.exit_code
    except OSError as err:       # writing the results folder: permission, disk full, ...
        where = f"{err.filename}: " if getattr(err, "filename", None) else ""
        return fail(f"{where}{err.strerror or err}")
    except KeyboardInterrupt:
        print("adljax: interrupted (finished chunks are kept: run again with --resume)", file=sys.stderr)
        return 130
