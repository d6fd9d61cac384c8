"""A run's plan: how many scenarios fit in one run on a device (studies larger than that run in chunks),
the blocks a chunk runs in, and the capacity a position book is padded to.

The engine's memory is flat in the number of steps (the time loop is a
``lax.scan`` that keeps only the current state) and linear in
scenarios × rows × markets. Measured with XLA's own accounting
(``jit(...).lower(...).compile().memory_analysis()``, jax 0.10.2, CPU,
float32, default study's rules): the compiled step's temporaries are
9.05–9.14 × S·R·A·itemsize for S = 8–16, R = 1002–2002, T = 10–40, the
arguments and outputs about 3 × S·R·A·itemsize each. The estimate below
takes 24 × S·R·A·itemsize (more than twice the measured 15) plus the
per-row vectors and the scenario's paths, and allows itself 40 % of the
device's memory. (Those were measured on the whole batch at once. On CPU the
engine now runs a chunk in blocks of 8 scenarios, whose temporaries are a
block's, so there the estimate is larger still than what a chunk needs: the
gradient benchmark's temporaries fell from 54 MB to 21 MB.)

With several local devices a chunk is split over them
(:func:`adljax.parallel.sharding.scenario_map`), so it may hold the devices' memory
together — except on CPU, where the "devices" share the host's memory — and
is a multiple of the device count, so that no device runs padding.

**Blocks.** XLA compiles the engine for the shape it is given, and a
scenario's last bits depend on that shape. The CPU backend hands an
operation to YNNPACK when it or an operand has at least 4,096 elements
(``IsInstructionPreferredByYnn`` in XLA's ``ynn_support.cc``), whose sums
run in another order than XLA's own loops: measured (jax 0.10.2, 2-core CPU,
the default study with 498 accounts × 3 markets, 1,500 row·markets a
scenario), batches of 1 or 2 scenarios (a ``[S, R, A]`` sum of 1,500 or
3,000 elements) give ADL notional 2e-16 relative (float32: 9e-8) and the
zero-sum error off what batches of 3 to 5 give (4,500 elements and more).
A batch of one scenario drops its size-1 axis and compiles to another
program altogether, and other shapes move other operations (with YNNPACK
off, the same study's batches of 1 to 7 agree and a batch of 8 does not).
So :func:`block_runs` plans a study's runs so that a scenario always runs
at one shape with the same neighbours: scenario ``i`` runs in block
``i // block`` (scenarios ``block·(i // block)`` to
``block·(i // block + 1) − 1``), and every device of a run runs one block
of ``block`` scenarios, whatever the chunk and however many devices.
(The neighbours did not change a scenario's bits where measured, even with
the liquidation's gathered rows cut to 1 so that neighbours switch it to the
whole book; fixed blocks make that hold whatever the engine's batch-level
choices.)

**Capacity.** A position book runs padded (:meth:`adljax.PositionBook.padded`) to the
trader rows and positions :func:`capacities` gives, each rounded up by
:meth:`adljax.engine.config.EngineConfig.capacity`, so that books of similar size
share one compiled program.
"""
from __future__ import annotations

import os

import jax

#: Share of the device's memory one chunk may use.
MEMORY_SHARE = 0.4
#: Bytes per scenario·row·market·itemsize (measured about 15, see the module docstring).
ROW_MARKET_FACTOR = 24
#: Bytes per scenario·position·itemsize of a position book (the position engine's [P] arrays, its index
#: arrays and segment sums' temporaries). XLA's memory analysis of the position engine on
#: benchmarks/bench_venue.py's book (300,519 positions, 200,002 rows, 8 scenarios × 20 steps, float32, history
#: on): temporaries, arguments and outputs 243 MB, 25 bytes per scenario·position·itemsize, rows included.
POSITION_FACTOR = 32
#: Bytes per scenario·row·itemsize for per-row vectors (cash, cooldown, AV, MR, flags).
ROW_FACTOR = 16


def device_memory(device=None) -> int:
    """Bytes of memory of ``device`` (default: this process's first device).

    Accelerators report ``memory_stats()['bytes_limit']``; on CPU, the
    machine's physical memory.
    """
    d = device or jax.local_devices()[0]
    try:
        stats = d.memory_stats() or {}
    except Exception:  # some backends do not implement it
        stats = {}
    if stats.get("bytes_limit"):
        return int(stats["bytes_limit"])
    return physical_memory()


def physical_memory() -> int:
    """Bytes of this machine's memory (``SC_PAGE_SIZE · SC_PHYS_PAGES``; 8 GiB where the system does not say)."""
    try:
        return int(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"))
    except (ValueError, OSError, AttributeError):
        return 8 << 30


def bytes_per_scenario(n_rows: int, n_markets: int, n_steps: int, itemsize: int, *, history: bool = False,
                       n_positions: int | None = None) -> int:
    """Estimated peak bytes one scenario needs in a run (see the module docstring).

    ``n_positions``: a position book's list length P (:class:`adljax.PositionBook`), whose arrays are [P]
    where a dense book's are [R, A]: P stands for R·A, at :data:`POSITION_FACTOR` bytes per position·itemsize.
    """
    cells = ROW_MARKET_FACTOR * n_rows * n_markets if n_positions is None else POSITION_FACTOR * n_positions
    b = itemsize * (cells + ROW_FACTOR * n_rows + 3 * n_steps * n_markets)
    if history:
        b += itemsize * n_steps * (n_markets + 8)
    return int(b)


def scenarios_per_chunk(n_rows: int, n_markets: int, n_steps: int, itemsize: int, *, history: bool = False,
                        device=None, memory: int | None = None, n_devices: int = 1,
                        shared_memory: bool | None = None, n_positions: int | None = None) -> int:
    """The most scenarios one run should hold on ``n_devices`` devices like ``device`` (at least ``n_devices``).

    Args:
      n_rows: R, rows of the book (traders + 2).
      n_markets: A.
      n_steps: T.
      itemsize: bytes of the float dtype (4 or 8).
      history: whether per-step series are kept.
      device: the device whose memory counts (default: this process's first).
      memory: bytes available on one device (default: :func:`device_memory`).
      n_devices: devices the chunk is split over (:func:`adljax.parallel.sharding.scenario_map`).
      shared_memory: whether the devices share one memory (CPU devices
        share the host's); default: ``device``'s platform is ``cpu``.
      n_positions: a position book's list length P (None: a dense book).
    Returns:
      With one device, what fits its memory; with D devices, a multiple of
      D: D × what fits one device, or what fits the shared memory rounded
      down to a multiple of D.
    """
    if isinstance(n_devices, bool) or not isinstance(n_devices, int) or n_devices < 1:
        raise ValueError(f"n_devices: must be a whole number >= 1, got {n_devices!r}")
    budget = MEMORY_SHARE * (memory if memory is not None else device_memory(device))
    fits = max(1, int(budget // bytes_per_scenario(n_rows, n_markets, n_steps, itemsize, history=history,
                                                   n_positions=n_positions)))
    if n_devices == 1:
        return fits
    if shared_memory is None:
        shared_memory = (device or jax.local_devices()[0]).platform == "cpu"
    if shared_memory:
        return max(n_devices, fits // n_devices * n_devices)
    return fits * n_devices


def capacities(lay, config) -> tuple[int, int]:
    """``(trader rows, trader positions)`` a position book on ``lay`` runs padded to
    (:meth:`~adljax.model.position_book.PositionBook.padded`): each count's
    :meth:`~adljax.engine.config.EngineConfig.capacity`, with rows enough to hold the pad positions (at most
    one a market a row) and, where the list starts with the plane, a pad position for every pad row.

    ``lay`` a :class:`~adljax.model.layout.Layout`, ``config`` an :class:`~adljax.engine.config.EngineConfig`.
    """
    n, p, a = lay.n_traders, lay.n_trader_positions, lay.n_markets
    rows, positions = config.capacity(n), config.capacity(p)
    while True:
        if lay.n_plane:
            positions = max(positions, config.capacity(p + rows - n))
        if (rows - n) * a >= positions - p:
            return rows, positions
        rows = config.capacity(n - (-(positions - p) // a))


def padded_positions(lay, config=None) -> int:
    """The list length P a position book on ``lay`` runs at (its trader positions padded by :func:`capacities`,
    with the vault's and LPs' ``2A`` slots), for the chunk sizes of a study not yet run. ``config``: an
    :class:`~adljax.engine.config.EngineConfig` (None: the defaults)."""
    if config is None:
        from ..engine.config import EngineConfig
        config = EngineConfig()
    return capacities(lay, config)[1] + 2 * lay.n_markets


def block_span(first: int, n: int, block: int) -> tuple[int, int]:
    """``(start, blocks)``: the whole blocks of ``block`` scenarios, counted from scenario 0, that hold scenarios
    ``[first, first + n)``."""
    start = first // block * block
    return start, -(-(first + n - start) // block)


def block_runs(start: int, n_blocks: int, block: int, n_devices: int) -> list[tuple[int, int, int]]:
    """The engine runs for ``n_blocks`` whole blocks of ``block`` scenarios from scenario ``start``, on up to
    ``n_devices`` devices, each device running one block a run (see the module docstring).

    Returns ``[(first, count, devices), ...]`` in order: scenarios ``[first, first + count)`` on ``devices``
    devices, ``count = devices·block``: rounds of one block on each of the ``n_devices`` devices, then the
    blocks left over, fewer than ``n_devices``, one on each of that many devices. The rounds share one compiled
    program (a block on each of ``n_devices`` devices); the leftover, where there is one, runs another.
    """
    for name, v, lo in (("start", start, 0), ("n_blocks", n_blocks, 1), ("block", block, 1),
                        ("n_devices", n_devices, 1)):
        if isinstance(v, bool) or not isinstance(v, int) or v < lo:
            raise ValueError(f"{name}: must be a whole number >= {lo}, got {v!r}")
    if start % block:
        raise ValueError(f"start: must be a multiple of the block ({block}), got {start}")
    rounds, rest = divmod(n_blocks, n_devices)
    step = n_devices * block
    runs = [(start + r * step, step, n_devices) for r in range(rounds)]
    if rest:
        runs.append((start + rounds * step, rest * block, rest))
    return runs
