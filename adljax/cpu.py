"""One JAX device per CPU core, so that scenarios run in parallel on a CPU.

JAX gives a CPU one device. The engine's kernels are small (one scenario's
book, or a few, per kernel), and XLA's threads inside a kernel keep a
second core only partly busy. With one device per core,
:func:`adljax.sharding.scenario_map` (used by :func:`adljax.simulate`,
:func:`adljax.calibrate` and ``adljax run``) gives each core its own
share of the scenarios, and each device runs the program one device runs
on the same scenarios (the results are the same, scenario by scenario).

``import adljax`` calls :func:`use_cpu_cores` with no argument: when
nobody chose a number of CPU devices (neither the environment variable
``JAX_NUM_CPU_DEVICES``, nor ``jax.config.update("jax_num_cpu_devices", n)``,
nor ``--xla_force_host_platform_device_count`` in ``XLA_FLAGS``)
and JAX has not started yet, JAX gets one CPU device per core this
process may use. Set ``JAX_NUM_CPU_DEVICES=1`` to keep one device. A GPU
or TPU, when JAX uses one, is not affected: adljax runs on the default
backend's devices, and only the CPU gets more.

Measured on this project's 2-core CPU (jax 0.10.2, float32; docs/performance.md):
the cascade study at 256 scenarios × 4,096 accounts × 4 markets × 100 steps
ran 1.2–1.5× faster on two devices than on one in five side-by-side pairs
(e.g. 13.2 s against 17.1 s); the calm study 1.0–1.5× (1.00 s against
1.52 s); the default study (``adljax run``) 6.6–6.7 s against 9.5–14.2 s.
A tiny run (a few milliseconds) pays a few milliseconds more for the split.
Session 8 made the calm study's margin check one pass over the book, and it
now runs as fast on one device as on two (0.55 s against 0.65 s, one run
each); the cascade still gains (15.2 s against 12.7 s).
"""
from __future__ import annotations

import os
import re

import jax

from .errors import InputError

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
      n: the number of CPU devices. ``None`` (what ``import adljax`` does)
        means one per core (:func:`cores`), and only if nobody chose a
        number (``JAX_NUM_CPU_DEVICES``, ``jax_num_cpu_devices`` or XLA's
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
                             f"adljax.cpu.use_cpu_cores({n}) before any JAX operation, or set {ENV}={n}") from None
    return n


def _chosen() -> bool:
    """Whether someone chose the number of CPU devices: ``jax_num_cpu_devices`` (which
    ``JAX_NUM_CPU_DEVICES`` sets) or XLA's older ``--xla_force_host_platform_device_count``."""
    return int(jax.config.jax_num_cpu_devices) > 0 or FORCE_FLAG in os.environ.get("XLA_FLAGS", "")


def _count() -> int:
    """CPU devices JAX has (if it has started) or will have (the configured number, 1 by default)."""
    try:
        from jax._src import xla_bridge     # (no public way to ask without starting JAX)
        if xla_bridge.backends_are_initialized():
            return len(jax.devices("cpu"))
    except (ImportError, AttributeError, RuntimeError):
        pass
    chosen = int(jax.config.jax_num_cpu_devices)
    forced = re.search(FORCE_FLAG + r"=(\d+)", os.environ.get("XLA_FLAGS", ""))
    return chosen if chosen > 0 else int(forced.group(1)) if forced else 1
