"""The user-facing driver: :func:`simulate` checks the inputs, derives the keys,
splits a large study into chunks sized to the devices' memory, and runs the
compiled engine (:func:`adljax.engine.waterfall.run`) on each — split over every local
device when there are several (:func:`adljax.parallel.sharding.scenario_map`).
"""
from __future__ import annotations

import functools
import hashlib
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from ..parallel.chunking import capacities, scenarios_per_chunk
from ..model.book import Book, check_inputs
from .config import EngineConfig
from .waterfall import batch_book, prepare, run, scenario_keys
from .stages import adl
from . import positions
from ..model.position_book import PositionBook
from ..model.errors import InputError, check_bool, check_first_scenario
from ..model.outcome import Outcome
from ..model.paths import Paths
from ..parallel.sharding import scenario_map
from ..model.venue import Rules, Venue


@functools.lru_cache(maxsize=32)
def engine_for(rules: Rules, history: bool, devices: tuple | None = None, queue_rows: tuple | None = None,
               config: EngineConfig = EngineConfig()):
    """The compiled engine for ``rules``: ``f(params, book, oracle, depth, keys, funding)`` on batched inputs.

    ``queue_rows``: :func:`adljax.engine.stages.adl.queue_sizes` of the study's book; ``config``: the
    :class:`~adljax.engine.config.EngineConfig` (see :func:`adljax.engine.waterfall.run`).

    With one device (``devices`` None or of length 1), :func:`adljax.engine.waterfall.run`
    itself; with several, the same split over them by
    :func:`adljax.parallel.sharding.scenario_map`. Cached, so a study's chunks share
    one compiled program.
    """
    # (compiled(): runs at different temperatures share one program; the value travels in Params)
    fn = functools.partial(run, rules=rules.compiled(), history=history, queue_rows=queue_rows, config=config)
    if devices is None or len(devices) == 1:
        return fn
    return scenario_map(fn, devices=devices)


def _devices_and_config(devices: int | None, config: EngineConfig | None):
    """(local devices, how many to use, the config), checked: ``devices`` None is all, ``config`` None the defaults."""
    local = jax.local_devices()
    if devices is None:
        devices = len(local)
    elif isinstance(devices, bool) or not isinstance(devices, int) or not 1 <= devices <= len(local):
        raise InputError(f"devices: must be a whole number from 1 to {len(local)} (this process's devices), "
                         f"got {devices!r}")
    if config is None:
        config = EngineConfig()
    elif not isinstance(config, EngineConfig):
        raise InputError(f"config: expected an adljax.engine.config.EngineConfig (or None: the defaults), "
                         f"got {type(config).__name__}")
    return local, devices, config


def simulate(venue: Venue, book: Book, paths: Paths, *, dt: float = 1.0, key: Any = None,
             history: bool = False, first_scenario: int = 0, chunk: int | None = None,
             devices: int | None = None, config: EngineConfig | None = None) -> Outcome:
    """Run the liquidation waterfall of ``venue`` over every scenario of ``paths``.

    Args:
      venue: rules and numbers, e.g. ``adljax.venues.hyperliquid()``.
      book: the starting :class:`Book` (one book for every scenario, or a
        batch of books with a leading axis S), run on the dense engine; or a
        :class:`~adljax.PositionBook`, run on the position engine
        (:mod:`adljax.engine.positions`: the same rules, work and memory growing
        with positions rather than accounts × markets), whose final books come
        back as position books.
      paths: :class:`Paths` with ``oracle`` and ``depth`` [S, T, A] (and
        optionally ``funding``).
      dt: seconds per step (> 0).
      key: ``jax.random.key`` for policies that draw (``random_order``);
        scenario ``i`` uses ``jax.random.fold_in(key, first_scenario + i)``,
        so its draws do not depend on the batch it runs in. ``None`` means
        ``jax.random.key(0)``.
      history: also return per-step series (memory grows with T).
      first_scenario: the index of ``paths``' first scenario in a larger
        study run in chunks (only the keys depend on it).
      chunk: scenarios per compiled run. ``None`` (the default) sizes chunks
        to the devices' memory (:mod:`adljax.chunking`; a multiple of the
        device count): a study that fits runs in one piece; a larger one runs
        chunk by chunk (a short last chunk runs as the study's last ``chunk``
        scenarios, so the engine compiles once), each chunk's results brought to the host, with the
        same numbers.
      devices: how many of this process's devices to split each chunk over
        (the first ``devices`` of ``jax.local_devices()``). ``None`` (the
        default): all of them. With more than one, each device runs its
        share of the scenarios (:func:`adljax.parallel.sharding.scenario_map`); the
        numbers are those of one device, scenario by scenario. On a CPU JAX
        has one device unless asked for more: call :func:`adljax.use_cpu_cores`
        before the first JAX operation (or set ``JAX_NUM_CPU_DEVICES``) to give
        it one per core, so that ``devices=None`` splits the scenarios over
        every core; the ``adljax`` command does this by itself.
      config: the engine's static settings, an
        :class:`adljax.engine.config.EngineConfig` (``None``: its defaults). They
        shape the compiled program, not the rules: scenarios per block (``block``,
        ``cpu_block``; 8 on CPU, the whole chunk on an accelerator), the rows the
        liquidation and the vault's walk gather before they fall back on the whole
        book (``gathered_rows``, ``first_candidates``; 256 rows each), the markets
        up to which sums over markets are unrolled (``unrolled_markets``, 8), the
        rows per block of running sums (``prefix_block``, 64), the rounding of
        the ADL queue's row sets (``queue_rows_round``, 8 rows), and for a
        position book the bits of the ADL cut-off's search a pass
        (``adl_digit_bits``, 4) and the capacity its rows and positions are
        padded to (``capacity_bits``, 6:
        :func:`adljax.parallel.chunking.capacities`) and whether steps within
        the book's reach of the last margin check skip it (``skip_quiet_steps``,
        True; hard mode, paths without funding). Any config gives
        the same numbers up to the rounding of sums; a new one compiles again.
    Returns:
      :class:`Outcome` with the final books [S, ...] and the metrics of
      :data:`adljax.METRICS`, each [S]. Every stage runs in float of the
      book's dtype.
    Raises:
      InputError: naming the field, for any malformed input: the book and paths are checked
        however they were built (:func:`adljax.model.book.check_inputs`: in the book's dtype,
        their money below :func:`adljax.model.errors.money_limit`), ``history`` must be a bool,
        ``first_scenario`` a whole number >= 0.
    """
    if not isinstance(venue, Venue):
        raise InputError(f"venue: expected an adljax.Venue (e.g. adljax.venues.hyperliquid()), "
                         f"got {type(venue).__name__}")
    check_bool("history", history)
    check_first_scenario(first_scenario)
    check_inputs(book, paths)
    local, devices, config = _devices_and_config(devices, config)
    if isinstance(book, PositionBook):
        return _simulate_positions(venue, book, paths, dt=dt, key=key, history=history,
                                   first_scenario=first_scenario, chunk=chunk, devices=devices, config=config)
    params, book0, paths = prepare(venue, book, paths, dt, batch=False)
    n = paths.n_scenarios
    keys = scenario_keys(key, n, first_scenario)
    if chunk is None:
        itemsize = jnp.dtype(book0.all_cash.dtype).itemsize
        chunk = scenarios_per_chunk(book0.all_cash.shape[-1], book0.n_markets, paths.n_steps, itemsize,
                                    history=history, n_devices=devices)
    elif isinstance(chunk, bool) or not isinstance(chunk, int) or chunk < 1:
        raise InputError(f"chunk: must be a whole number of scenarios >= 1 (or None: sized to memory), got {chunk!r}")
    engine = engine_for(venue.rules, history, tuple(local[:devices]) if devices > 1 else None,
                        adl.queue_sizes(book0.size_am, config.queue_rows_round), config)

    def one(first: int, size: int):
        p = paths.scenarios(first, size) if size < n else paths
        return engine(params, batch_book(book0, size, first), p.oracle, p.depth, keys[first:first + size], p.funding)

    return _in_chunks(one, n, chunk)


def _in_chunks(one, n: int, chunk: int, wrap=lambda book: book) -> Outcome:
    """``one(first, size) -> (book, metrics, history)`` over ``n`` scenarios, ``chunk`` at a time.

    ``one``'s book is a pytree of [S, ...] arrays; ``wrap`` makes the outcome's book of the joined one.
    """
    if n <= chunk:
        final, metrics, hist = one(0, n)
        return Outcome(book=wrap(final), metrics=metrics, history=hist)
    parts = []
    for first in range(0, n, chunk):
        size = min(chunk, n - first)
        if size < chunk:
            # A short last chunk runs at the chunks' shape, so the engine compiles once: the study's
            # last `chunk` scenarios, of which the first `chunk - size` already ran (a scenario's
            # numbers do not depend on the batch it runs in, but for the rounding of sums) and are dropped.
            last = jax.device_get(one(n - chunk, chunk))
            parts.append(jax.tree_util.tree_map(lambda x: x[chunk - size:], last))
            continue
        parts.append(jax.device_get(one(first, size)))
    final, metrics, hist = jax.tree_util.tree_map(lambda *xs: np.concatenate(xs, axis=0), *parts)
    return Outcome(book=wrap(final), metrics=metrics, history=hist)


#: Compiled position engines split over devices, by (layout's contents, rules, history, devices, config): there
#: the layout is a constant of the program (every device needs it whole), and a study's chunks, each of which
#: builds its own layout object when idle rows are left out, share one program.
_POSITION_ENGINES: dict = {}


def _layout_key(layout) -> tuple:
    """A hashable digest of a layout's contents (its index arrays and sizes)."""
    digest = hashlib.sha1()
    for x in (layout.row, layout.market):
        digest.update(np.asarray(x).tobytes())
    return layout.n_rows, layout.n_markets, layout.n_plane, digest.hexdigest()


def position_engine(layout, rules: Rules, history: bool, devices: tuple | None, config: EngineConfig):
    """The compiled position engine ``f(params, book, oracle, depth, keys, funding)``, split over ``devices``.

    ``book`` a batched :class:`~adljax.model.position_book.PositionBook` on ``layout``; ``devices`` None (or one)
    runs it on the default device. Differentiable in ``params`` and the book's floats (:func:`adljax.calibrate`
    uses it for position books)."""
    fn = functools.partial(positions.run, rules=rules, history=history, config=config)
    if devices is None or len(devices) == 1:
        return fn
    key = (_layout_key(layout), rules, history, devices, config)
    if key in _POSITION_ENGINES:
        return _POSITION_ENGINES[key]

    def values_only(params, values, oracle, depth, keys, funding=None):
        book, metrics, hist = fn(params, PositionBook(**values, layout=layout), oracle, depth, keys, funding)
        return book.values(), metrics, hist
    mapped = scenario_map(values_only, devices=devices)

    def run_split(params, book, oracle, depth, keys, funding=None):
        values, metrics, hist = mapped(params, book.values(), oracle, depth, keys, funding)
        return PositionBook(**values, layout=layout), metrics, hist
    if len(_POSITION_ENGINES) > 8:
        _POSITION_ENGINES.clear()
    _POSITION_ENGINES[key] = run_split
    return run_split


def _simulate_positions(venue: Venue, book: PositionBook, paths: Paths, *, dt, key, history, first_scenario, chunk,
                        devices, config) -> Outcome:
    """:func:`simulate` of a :class:`~adljax.model.position_book.PositionBook` on the position engine."""
    local, devices, config = _devices_and_config(devices, config)
    dtype = book.checked_dtype()
    if np.ndim(book.all_cash) == 2 and np.shape(book.all_cash)[0] != paths.n_scenarios:
        raise InputError(f"book: a batched book needs a leading axis of {paths.n_scenarios} scenarios (as paths), "
                         f"got cash shape {tuple(np.shape(book.all_cash))}")
    params = venue.params(book.n_markets, dt=dt, dtype=dtype)
    paths = paths.astype(dtype)
    n = paths.n_scenarios
    keys = scenario_keys(key, n, first_scenario)
    # Rows no stage can change (no position, cash >= 0) stay out of the compiled run, so that its work and memory
    # do not grow with a venue's idle accounts. (Not in the smooth mode, where a weight is never exactly 0, nor
    # under random_order, whose draws number the rows.)
    # The rest run padded to a capacity (EngineConfig.capacity), so that books of similar size share one
    # compiled program.
    if not venue.rules.smooth and venue.rules.adl_policy != "random_order":
        book, expand_idle = book.without_idle_rows()
        book, unpad = book.padded(*capacities(book.layout, config))
        expand = lambda final: expand_idle(unpad(final))
    else:
        expand = lambda final: final
    lay = book.layout
    if chunk is None:
        chunk = scenarios_per_chunk(lay.n_rows, lay.n_markets, paths.n_steps, jnp.dtype(dtype).itemsize,
                                    history=history, n_devices=devices, n_positions=lay.n_positions)
    elif isinstance(chunk, bool) or not isinstance(chunk, int) or chunk < 1:
        raise InputError(f"chunk: must be a whole number of scenarios >= 1 (or None: sized to memory), got {chunk!r}")
    engine = position_engine(lay, venue.rules.compiled(), history,
                              tuple(local[:devices]) if devices > 1 else None, config)

    def one(first: int, size: int):
        p = paths.scenarios(first, size) if size < n else paths
        final, metrics, hist = engine(params, book.scenarios(first, size), p.oracle, p.depth,
                                      keys[first:first + size], p.funding)
        return final.values(), metrics, hist

    return _in_chunks(one, n, chunk, wrap=lambda values: expand(PositionBook(**values, layout=lay)))
