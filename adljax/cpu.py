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
``JAX_NUM_CPU_DEVICES`` nor ``jax.config.update("jax_num_cpu_devices", n)``)
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
"""
from __future__ import annotations

import os

import jax

from .errors import InputError

#: JAX's own environment variable for the number of CPU devices.
ENV = "JAX_NUM_CPU_DEVICES"


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
        number (``JAX_NUM_CPU_DEVICES`` or ``jax_num_cpu_devices``) and JAX
        has not started; otherwise it changes nothing.
    Returns:
      The number of CPU devices JAX has or will have.
    Raises:
      InputError: ``n`` is not a whole number >= 1, or JAX has already
        started with another number (JAX fixes its devices when it runs its
        first operation: call this first, or set ``JAX_NUM_CPU_DEVICES``).
    """
    chosen = int(jax.config.jax_num_cpu_devices)
    if n is None:
        if chosen > 0 or os.environ.get(ENV):
            return _current(chosen)
        try:
            jax.config.update("jax_num_cpu_devices", cores())
        except RuntimeError:             # JAX has started: its devices are fixed
            return _current(chosen)
        return cores()
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise InputError(f"n: the number of CPU devices must be a whole number >= 1, got {n!r}")
    try:
        jax.config.update("jax_num_cpu_devices", n)
    except RuntimeError:
        have = _current(chosen)
        if have != n:
            raise InputError(f"n: JAX has already started with {have} CPU device(s); call "
                             f"adljax.cpu.use_cpu_cores({n}) before any JAX operation, or set {ENV}={n}") from None
    return n


def _current(chosen: int) -> int:
    """CPU devices JAX has (if started) or will have: the configured number, 1 by default."""
    return chosen if chosen > 0 else 1
