"""Scenarios over several devices and several hosts, with JAX's own machinery.

**Devices.** :func:`scenario_map` runs a batched engine function on every
local device at once: a one-axis :class:`jax.sharding.Mesh` named
``"scenarios"`` over the local devices, the scenario axis split over it
with :func:`jax.shard_map`, the venue's parameters replicated. Each device
runs the function on its own share of the scenarios, so the engine's
batch-level skips (``jnp.any`` over the batch deciding whether a stage runs
this step) are decided per device, without a cross-device collective in
every step. Scenarios never interact in the engine, and a scenario's draws
depend on its index only (``fold_in(key, index)``), so each device gives
the numbers one device gives for its share of the scenarios. They are
those of one device running the whole batch up to the last bits, which
depend on the shape of the program a scenario runs in
(:mod:`adljax.parallel.chunking`, "Blocks"); they are bitwise equal where
every device runs one block of the engine's, as
:func:`adljax.studies.runner.run_chunk` arranges on CPU. Sums over
scenarios (a loss for calibration, its gradient
with respect to replicated parameters) are reduced across devices by
JAX (the transpose of a replicated input is a ``psum``), so their rounding
can differ from one device's in the last bits.

**Hosts.** :func:`initialize` joins the processes of a multi-host run
(``jax.distributed.initialize``). Each process then runs its own share of a
study's chunks on its own devices (:func:`adljax.studies.runner.run_study`),
and the processes tell each other what they did at meetings (:func:`meet`,
:func:`from_process_0`): process 0 prepares the results folder and, once
every process has said its chunks are written, assembles the results. No
study array crosses between hosts: each host writes its chunks into the
shared results folder itself; a meeting exchanges a few hundred bytes of
JSON.

A meeting is a device collective (``multihost_utils.process_allgather``)
every process calls in the same order. On CPU the collectives go through
gloo, whose setup gives up when the processes reach their first collective
more than 30 s apart (``Gloo context initialization failed:
DEADLINE_EXCEEDED``, measured with jax 0.10.2); once set up, a collective
waits as long as the slowest process takes (measured: 400 s). So
:func:`initialize` holds the first meeting right after joining, when every
process is there. A process that fails brings its error to the next meeting
(:func:`tell_others`) rather than leaving the others waiting there; one that
is killed stops the JAX runtime's heartbeats, and the runtime ends the
others.
"""
from __future__ import annotations

import functools
import json
import math
import os
import re
from typing import Any, Callable, Sequence

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh, PartitionSpec as P

from ..model.errors import InputError

#: The mesh axis the scenarios are split over.
AXIS = "scenarios"


class DistributedError(RuntimeError):
    """Another process of a multi-process run failed, or the processes lost each other; the message says which
    and why.

    ``exit_code`` is what the command line exits with (2 when the other
    process's error was an :class:`InputError`, such as process 0 refusing
    the results folder; 1 otherwise). Every process of the run knows of it
    (``told_other_processes``), so :func:`tell_others` passes it by.
    """

    told_other_processes = True

    def __init__(self, message: str, exit_code: int = 1):
        super().__init__(message)
        self.exit_code = exit_code


# ---- devices -----------------------------------------------------------------------------------
def scenario_mesh(devices: Sequence | None = None) -> Mesh:
    """A one-axis mesh named ``"scenarios"`` over ``devices`` (default: every local device)."""
    devs = list(jax.local_devices() if devices is None else devices)
    if not devs:
        raise InputError("devices: expected at least one device")
    return Mesh(np.array(devs, dtype=object), (AXIS,))


#: Scenarios a device runs at least. XLA compiles a batch of one scenario to another program (its size-1 axis is
#: dropped): measured on CPU, jax 0.10.2, the thin-altcoin study (62 rows, 1 market) in float64, a batch of 1
#: gives bad debt up to 4e-15 relative (float32: 4e-7) off what any batch of 2 to 8 gives. So a device's share
#: is padded to at least 2. Larger books can round differently at other batch sizes too (where a sum's operand
#: crosses 4,096 elements: :mod:`adljax.parallel.chunking`); runs of whole engine blocks
#: (:func:`adljax.parallel.chunking.block_runs`) give the same numbers on any device count.
MIN_PER_DEVICE = 2


def padded(n: int, n_devices: int) -> int:
    """``n`` rounded up to a multiple of ``n_devices``, and to at least :data:`MIN_PER_DEVICE` per device."""
    return int(max(math.ceil(n / n_devices), MIN_PER_DEVICE) * n_devices)


def pad_scenarios(x, total: int):
    """``x`` [S, ...] → [total, ...], the last scenario repeated (its copies' results are dropped)."""
    s = x.shape[0]
    if total == s:
        return x
    return jnp.concatenate([x, jnp.repeat(x[-1:], total - s, axis=0)], axis=0)


@functools.partial(jax.jit, static_argnums=1)
def _pad_all(tree, total: int):
    return jax.tree_util.tree_map(lambda x: pad_scenarios(x, total), tree)


@functools.partial(jax.jit, static_argnums=1)
def _cut_all(tree, s: int):
    return jax.tree_util.tree_map(lambda x: x[:s], tree)


def scenario_map(fn: Callable, *, devices: Sequence | None = None) -> Callable:
    """Run a batched engine function with its scenarios split over the local devices.

    Args:
      fn: ``fn(params, book, oracle, depth, keys, funding) -> pytree`` whose
        leaves all have a leading scenario axis S. ``book`` (a :class:`Book`
        pytree), ``oracle``/``depth``/``funding`` [S, T, A] and ``keys`` [S]
        are batched over S; ``params`` is replicated; ``funding`` may be
        ``None``. ``fn`` may be jitted (e.g. ``adljax.engine.waterfall.run`` with its
        static arguments bound by ``functools.partial``) or a plain function.
      devices: the devices to use (default: every local device,
        ``jax.local_devices()``).
    Returns:
      A function with ``fn``'s signature and result. With one device it is
      ``fn`` itself. With D > 1 devices it pads S up to a multiple of D,
      and to at least 2·D (:data:`MIN_PER_DEVICE`), repeating the last
      scenario; runs ``fn`` on each device's share with :func:`jax.shard_map`
      over the mesh axis ``"scenarios"`` under ``jax.jit`` (so each device
      makes its own batch-level decisions); and slices the padding off. Its
      attribute ``devices`` lists the devices. It composes with ``jax.jit``
      and ``jax.grad`` (reverse mode w.r.t. ``params`` and the book's
      floats: the padded copies get zero cotangents). With D > 1 its outputs,
      and those of a jitted function around it, carry the scenario mesh in
      their type: fed back into that jitted function (an optimiser's loop)
      they retrace and compile it again, so pass such state in as host values
      (``jax.device_get``), as :func:`adljax.calibrate` does.

    Called eagerly (as :func:`adljax.simulate` does), the padding, the
    sharded run and the slicing are three compiled programs: XLA cannot fuse
    the padding's copy into the engine's first reductions, which would
    change their rounding (measured: a start book's zero-sum error of 0
    became 1.4e-12 when the concatenation was fused into it), so each
    device runs exactly the program one device runs on the same scenarios.
    """
    devs = list(jax.local_devices() if devices is None else devices)
    if len(devs) == 1:
        return fn
    mesh = scenario_mesh(devs)
    n_dev = len(devs)
    sharded_fns = {}

    def sharded(names: tuple[str, ...]):
        if names not in sharded_fns:
            def per_device(p, *xs):
                kw = dict(zip(names, xs))
                return fn(p, kw["book"], kw["oracle"], kw["depth"], kw["keys"], kw.get("funding"))

            # check_vma=False: the engine's skips are while loops whose predicate varies by device and whose
            # "ran" flag is a constant; the replication checker rejects that carry (jax 0.10.2), and nothing
            # here relies on it: every output is split over the scenarios, none is claimed replicated.
            sharded_fns[names] = jax.jit(jax.shard_map(per_device, mesh=mesh,
                                                       in_specs=(P(),) + (P(AXIS),) * len(names),
                                                       out_specs=P(AXIS), check_vma=False))
        return sharded_fns[names]

    def mapped(params, book, oracle, depth, keys, funding=None):
        s = int(np.shape(oracle)[0])
        batched = {"book": book, "oracle": oracle, "depth": depth, "keys": keys}
        if funding is not None:
            batched["funding"] = funding
        for name, tree in batched.items():
            for leaf in jax.tree_util.tree_leaves(tree):
                if np.ndim(leaf) < 1 or np.shape(leaf)[0] != s:
                    raise InputError(f"{name}: every array needs a leading axis of {s} scenarios (as oracle), "
                                     f"got shape {tuple(np.shape(leaf))}")
        total = padded(s, n_dev)
        if total != s:
            batched = _pad_all(batched, total)
        names = tuple(batched)
        out = sharded(names)(params, *(batched[n] for n in names))
        return out if total == s else _cut_all(out, s)

    mapped.__wrapped__ = fn
    mapped.devices = tuple(devs)
    return mapped


# ---- hosts -------------------------------------------------------------------------------------
_ADDRESS = re.compile(r"^(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9_.\-]+):([0-9]{1,5})$")


def check_coordinator(address: str) -> str:
    """``address`` if it is ``HOST:PORT`` (``[IPv6]:PORT`` too) with a port in 1..65535, else InputError."""
    m = _ADDRESS.match(address.strip()) if isinstance(address, str) else None
    if not m or not 1 <= int(m.group(2)) <= 65535:
        raise InputError(f"coordinator: expected HOST:PORT (e.g. 10.0.0.1:8476, the address of process 0 and a free "
                         f"port), got {address!r}")
    return address.strip()


def launched_by_cluster() -> str | None:
    """The launcher that started this process as one of several, as JAX detects it, or None.

    Slurm (``srun``: ``SLURM_JOB_ID``, ``SLURM_STEP_NODELIST``, ``SLURM_NTASKS``,
    ``SLURM_PROCID``, ``SLURM_LOCALID`` all set, more than one task) or Open
    MPI (``mpirun``: ``OMPI_MCA_orte_hnp_uri`` set, ``OMPI_COMM_WORLD_SIZE`` > 1):
    the environments whose variables ``jax.distributed.initialize()``
    reads by itself. One task is not a multi-process launch.
    """
    env = os.environ

    def more_than_one(var):
        try:
            return int(env.get(var, "1")) > 1
        except ValueError:
            return False

    slurm = ("SLURM_JOB_ID", "SLURM_STEP_NODELIST", "SLURM_NTASKS", "SLURM_PROCID", "SLURM_LOCALID")
    if all(v in env for v in slurm) and more_than_one("SLURM_NTASKS"):
        return "slurm"
    if "OMPI_MCA_orte_hnp_uri" in env and more_than_one("OMPI_COMM_WORLD_SIZE"):
        return "openmpi"
    return None


def initialize(coordinator: str | None = None, num_processes: int | None = None, process_id: int | None = None,
               *, timeout_s: int = 300) -> tuple[int, int]:
    """Join this process to a multi-process run (``jax.distributed.initialize``), before any JAX computation.

    Args:
      coordinator: ``HOST:PORT`` of process 0 (it listens there; every
        process gives the same address).
      num_processes: how many processes in all (>= 1).
      process_id: this process's number, ``0 .. num_processes - 1``.
      timeout_s: how long to wait for every process to join.
    All three ``None``: JAX detects them (Slurm, Open MPI, Cloud TPU,
    Kubernetes with ``kubernetes`` installed, or ``JAX_COORDINATOR_ADDRESS``
    plus a launcher). ``num_processes=1`` with nothing else runs alone
    (nothing to join).
    Returns:
      ``(process_index, process_count)``.
    Raises:
      InputError: naming the argument, for a malformed one, an id out of
        range, an incomplete set JAX cannot complete, or a call after JAX
        has started computing.
      DistributedError: the processes did not all join within ``timeout_s``
        (or the coordinator's port could not be used), or could not hold
        their first meeting (:func:`meet`), which follows at once.
    """
    if num_processes is not None:
        if isinstance(num_processes, bool) or not isinstance(num_processes, int) or num_processes < 1:
            raise InputError(f"num_processes: must be a whole number >= 1, got {num_processes!r}")
    if process_id is not None:
        if isinstance(process_id, bool) or not isinstance(process_id, int) or process_id < 0:
            raise InputError(f"process_id: must be a whole number >= 0, got {process_id!r}")
        if num_processes is not None and process_id >= num_processes:
            raise InputError(f"process_id: must be below the number of processes ({num_processes}), got {process_id}")
    if coordinator is not None:
        coordinator = check_coordinator(coordinator)
    if isinstance(timeout_s, bool) or not isinstance(timeout_s, int) or timeout_s < 1:
        raise InputError(f"timeout_s: must be a whole number of seconds >= 1, got {timeout_s!r}")
    if num_processes == 1 and process_id in (None, 0):
        return 0, 1
    if jax.distributed.is_initialized():
        raise InputError("initialize: this process has already joined a multi-process run")
    try:
        jax.distributed.initialize(coordinator_address=coordinator, num_processes=num_processes,
                                   process_id=process_id, initialization_timeout=timeout_s)
    except (ValueError, TypeError) as err:    # JAX could not detect what was not given
        missing = [flag for flag, v in (("coordinator", coordinator), ("num_processes", num_processes),
                                        ("process_id", process_id)) if v is None]
        raise InputError(f"{', '.join(missing) or 'initialize'}: not given and not detected from a launcher "
                         f"such as Slurm or Open MPI (JAX: {_first_line(err)})") from None
    except RuntimeError as err:
        if "should only be called once" in str(err) or "backend" in str(err).lower():
            raise InputError(f"initialize: must run before any JAX computation in this process "
                             f"(JAX: {_first_line(err)})") from None
        raise DistributedError(f"could not join the run at {coordinator or 'the detected coordinator'} within "
                               f"{timeout_s} s: {_first_line(err)}") from None
    except Exception as err:     # jaxlib's runtime errors: a coordinator that never answered, a port in use, ...
        raise DistributedError(f"could not join the run at {coordinator or 'the detected coordinator'} within "
                               f"{timeout_s} s: {_first_line(err)}") from None
    meet("joined")      # the collectives' setup, while every process is here (see the module docstring)
    return jax.process_index(), jax.process_count()


def _first_line(err: BaseException) -> str:
    text = str(err).strip().splitlines()
    return text[0] if text else type(err).__name__


def _alone() -> bool:
    """Whether this process runs alone (asked without starting JAX's backends when it has joined no run)."""
    return not jax.distributed.is_initialized() or jax.process_count() == 1


def _told(err: BaseException) -> BaseException:
    """Mark ``err`` as known to every process (a meeting carried it), so that :func:`tell_others` skips it."""
    err.told_other_processes = True
    return err


def _bytes_allgather(data: bytes) -> list[bytes]:
    """Every process's ``data``, in process order: two ``process_allgather`` calls, the lengths then the bytes
    (padded to a power of two, at least 256, so that few shapes are compiled)."""
    from jax.experimental import multihost_utils

    lengths = np.asarray(multihost_utils.process_allgather(np.array(len(data), dtype=np.int32))).reshape(-1)
    size = max(256, 1 << int(lengths.max() - 1).bit_length())
    buf = np.zeros(size, dtype=np.uint8)
    buf[:len(data)] = np.frombuffer(data, dtype=np.uint8)
    rows = np.asarray(multihost_utils.process_allgather(buf)).reshape(len(lengths), size)
    return [rows[p, :int(n)].tobytes() for p, n in enumerate(lengths)]


def meet(step: str, error: BaseException | None = None, value: Any = None) -> list[dict[str, Any]]:
    """Wait until every process of the run reaches a meeting, and learn what each brings to it.

    Every process of a run calls the same meetings in the same order (each
    is a ``multihost_utils.process_allgather``, a device collective). Each
    brings ``error``, what stopped it (``None``: nothing), and a JSON
    ``value``. A process that fails between two meetings brings its error to
    the next one (:func:`tell_others`), so that every process learns of it
    there, rather than waiting for a process that has gone.

    Args:
      step: the meeting's name; processes at meetings of different names
        (and with no error) are out of step, which is an error.
      error: this process's failure, or ``None``.
      value: what this process tells the others (JSON).
    Returns:
      Every process's ``{"step", "error", "input", "value"}`` in process order
      (``error`` a one-line message or ``None``; ``input`` whether it was an
      :class:`InputError`). Alone: this process's only.
    Raises:
      DistributedError: the processes could not exchange their messages (a
        process lost, or the collectives could not be set up), or they are
        at meetings of different names.
    """
    mine = {"step": step, "error": None if error is None else (" ".join(str(error).split()) or type(error).__name__),
            "input": isinstance(error, InputError), "value": value}
    if error is not None:
        _told(error)
    if _alone():
        return [mine]
    try:
        statuses = [json.loads(b) for b in _bytes_allgather(json.dumps(mine).encode())]
    except Exception as err:       # jaxlib's runtime errors: a process lost, the collectives not set up in time
        raise _told(DistributedError(f"{step}: could not exchange messages with the other processes "
                                     f"({_first_line(err)})")) from None
    steps = {s["step"] for s in statuses}
    if len(steps) > 1 and all(s["error"] is None for s in statuses):
        at = ", ".join(f"process {p} at {s['step']!r}" for p, s in enumerate(statuses))
        raise _told(DistributedError(f"the processes are out of step ({at}): do they all run the same adljax "
                                     "version with the same arguments and files?"))
    return statuses


def stop_if_another_failed(statuses: list[dict[str, Any]]) -> None:
    """Raise :class:`DistributedError` for the first other process whose status (from :func:`meet`) has an error:
    ``process P stopped: why``, exit code 2 when its error was an :class:`InputError`, else 1."""
    me = jax.process_index() if not _alone() else 0
    for p, s in enumerate(statuses):
        if p != me and s["error"] is not None:
            raise _told(DistributedError(f"process {p} stopped: {s['error']}", exit_code=2 if s["input"] else 1))


def tell_others(error: BaseException, step: str = "stopped") -> None:
    """Bring ``error`` to the meeting the other processes wait in (or reach) next, unless a meeting already
    carried it.

    For a process that fails: the others learn of it at that meeting
    (:func:`stop_if_another_failed` then stops them with its message)
    instead of waiting there for a process that has gone. ``step`` names
    the meeting (any name meets a meeting of another name when it brings an
    error). Alone, nothing. Where the processes cannot meet any more (the
    others are gone too), nothing either: the caller raises ``error``, which
    says what happened here.
    """
    if _alone() or getattr(error, "told_other_processes", False):
        return
    try:
        meet(step, error)
    except DistributedError:
        pass


def from_process_0(step: str, make: Callable[[], Any]) -> Any:
    """Process 0 runs ``make()`` and passes its JSON result (or its error) to every other process, at a meeting.

    Alone, just ``make()``. On process 0, ``make``'s exception is passed on
    and raised; on the others, it is raised as :class:`DistributedError`
    (``process 0 stopped: why``; exit code 2 when process 0's error was an
    :class:`InputError`).
    """
    if _alone():
        return make()
    if jax.process_index() == 0:
        try:
            value = make()
        except BaseException as err:
            tell_others(err, step)
            raise
        statuses = meet(step, value=value)
    else:
        statuses = meet(step)
    stop_if_another_failed(statuses)
    return statuses[0]["value"]
