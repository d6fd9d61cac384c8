"""One JAX device per CPU core, so that scenarios run in parallel on a CPU.

JAX gives a CPU one device. The engine's kernels are small (one scenario's
book, or a few, per kernel), and XLA's threads inside a kernel keep a
second core only partly busy. With one device per core,
:func:`adljax.parallel.sharding.scenario_map` (used by :func:`adljax.simulate`,
:func:`adljax.calibrate` and ``adljax run``) gives each core its own
share of the scenarios, and each device runs the program one device runs
on the same scenarios (the results are the same, scenario by scenario).

``import adljax`` changes no JAX setting: a program asks for the split by
calling :func:`use_cpu_cores` before its first JAX operation, and the
``adljax`` command line does so by itself. With no argument it gives JAX one
CPU device per core this process may use, when nobody chose a number (the
environment variable ``JAX_NUM_CPU_DEVICES``,
``jax.config.update("jax_num_cpu_devices", n)`` or
``--xla_force_host_platform_device_count`` in ``XLA_FLAGS``) and JAX has not
started yet; ``JAX_NUM_CPU_DEVICES=1`` keeps one device. A GPU or TPU, when
JAX uses one, is not affected: adljax runs on the default backend's devices,
and only the CPU gets more.

Measured on this project's 2-core CPU (jax 0.10.2, float32; docs/performance.md):
at 256 scenarios × 4,096 accounts × 4 markets × 100 steps, two devices run the
cascade study in 3.32 s against one device's 6.95 s, and the calm study in
0.187 s against 0.427 s (``benchmarks/results/engine*.json``). A tiny run (a
few milliseconds) pays a few milliseconds more for the split.
"""
from __future__ import annotations

import os
import re

import jax

from ..model.errors import InputError

#: JAX's own environment variable for the number of CPU devices.
ENV = "JAX_NUM_CPU_DEVICES"
#: XLA's older way to ask for CPU devices (in ``XLA_FLAGS``); when present, adljax leaves the count alone.
FORCE_FLAG = "--xla_force_host_platform_device_count"


def cores() -> int:
    """The CPU cores this process may run on (its affinity mask where the OS has one)."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def use_cpu_cores(n: int | None = None) -> int:
    """Ask JAX for ``n`` CPU devices (default: one per core), before JAX starts.

    Args:
      n: the number of CPU devices. ``None`` means one per core
        (:func:`cores`), and only if nobody chose a number
        (``JAX_NUM_CPU_DEVICES``, ``jax_num_cpu_devices`` or XLA's
        ``--xla_force_host_platform_device_count``) and JAX has not started;
        otherwise it changes nothing.
    Returns:
      The number of CPU devices JAX has or will have.
    Raises:
      InputError: ``n`` is not a whole number >= 1, or JAX has already
        started with another number (JAX fixes its devices when it runs its
        first operation: call this first, or set ``JAX_NUM_CPU_DEVICES``).
    """
    if n is None:
        if _chosen():
            return _count()
        try:
            jax.config.update("jax_num_cpu_devices", cores())
        except RuntimeError:             # JAX has started: its devices are fixed
            return _count()
        return cores()
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise InputError(f"n: the number of CPU devices must be a whole number >= 1, got {n!r}")
    try:
        jax.config.update("jax_num_cpu_devices", n)
    except RuntimeError:
        have = _count()
        if have != n:
            raise InputError(f"n: JAX has already started with {have} CPU device(s); call "
                             f"adljax.use_cpu_cores({n}) before any JAX operation, or set {ENV}={n}") from None
    return n


def _chosen() -> bool:
    """Whether someone chose the number of CPU devices: ``jax_num_cpu_devices`` (which
    ``JAX_NUM_CPU_DEVICES`` sets) or XLA's older ``--xla_force_host_platform_device_count``."""
    return int(jax.config.jax_num_cpu_devices) > 0 or FORCE_FLAG in os.environ.get("XLA_FLAGS", "")


def _count() -> int:
    """CPU devices JAX has or will have: the configured number (``jax_num_cpu_devices``, else XLA's flag, else 1),
    which JAX reads when it starts and refuses to change afterwards."""
    configured = int(jax.config.jax_num_cpu_devices)
    forced = re.search(FORCE_FLAG + r"=(\d+)", os.environ.get("XLA_FLAGS", ""))
    return configured if configured > 0 else int(forced.group(1)) if forced else 1
