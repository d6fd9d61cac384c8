"""Scenarios over several devices and processes give the numbers of one device.

A JAX process fixes its device count when its backend starts, so every
multi-device run here is a subprocess: ``jax_num_cpu_devices`` (or
``JAX_NUM_CPU_DEVICES`` for the command line) forces several CPU devices,
and ``jax.distributed`` joins two processes on loopback. Each is compared
with the same computation in this (one-device) process.

- simulate on 4 devices: two studies in float64 where liquidation and ADL
  fire (checked, so the comparison cannot pass on empty results), 10
  scenarios (not a multiple of 4, so the padding is exercised), in one
  piece and in chunks; final books and every metric bitwise equal.
- gradients through :func:`adljax.parallel.sharding.scenario_map`: of a smooth margin
  shortfall written here (with a batch-level skip like the engine's) w.r.t.
  the maintenance margins and every scenario's cash, eagerly and under jit;
  and, on request (``ADLJAX_FULL_TESTS=1``, a minute more: ``sizes.py``), of
  calibration's kind of loss (expected bad debt + P(ADL) of the engine in
  its smooth mode, ``partial(engine.run, rules=...)``) w.r.t. the margins.
  ``adljax calibrate`` on 2 devices against one device is in ``test_calibration.py``.
- the meetings of a multi-process run (:func:`adljax.parallel.sharding.meet`), in two processes joined on
  loopback: values passed on, errors passed on (no process left waiting), processes out of step; on
  request (``ADLJAX_FULL_TESTS=1``), a process that reaches its first meeting 35 s after the others.
- ``adljax run`` on 2 devices, and on 2 processes joined by
  ``jax.distributed`` on loopback (then resumed after a chunk is deleted):
  the same scenarios.parquet and summary statistics as one process; a
  process refused by process 0, and one that does not see the results folder.

Every test that writes a results folder writes it under its own ``tmp_path`` (the module's reference runs are
only read), so the tests pass alone and in any order.
"""
from __future__ import annotations

import dataclasses
import json
import os
import shutil
import socket
import subprocess
import sys
import tomllib
from pathlib import Path

import numpy as np
import pytest

from sizes import FULL

ROOT = Path(__file__).resolve().parent.parent
THIN = ROOT / "scenarios" / "thin_altcoin.toml"
N_DEVICES = 4
#: The smooth engine's gradient case compiles the engine's reverse mode in both processes: about a minute more on
#: the project's 2-core CPU, over this file's budget, so it runs on request (ADLJAX_FULL_TESTS=1).
SMOOTH = FULL

# The command-line study: test_cli's tiny one-market crash (ADL fires in some scenarios, not all).
TINY = """
name = "tiny"
seed = 4
scenarios = 14
steps = 60
dt = 1.0

[venue]
preset = "hyperliquid_builder"

[markets.ALT]
start = 1.0
max_leverage = 10
vol = 1.0
depth = 1e5
long_share = 0.7

[book]
accounts = 40
median_notional = 5000.0
leverage_mode = 8.0

[paths]
model = "merton"
jumps_per_hour = 30.0
jump_mean = -0.15
jump_std = 0.05
"""


# ---- the computations, run here (1 device) and in a subprocess (4 devices) --------------------------------
def _studies():
    """``{name: (venue, study, paths)}``: two float64 studies of 10 scenarios, the thin-altcoin crash (queue ADL,
    no backstop) and the same under dYdX's random-order ADL (the engine draws from the scenario keys) with a
    funding rate (longs pay shorts, a different rate per scenario and step)."""
    import jax.numpy as jnp

    from adljax import Paths, scenario

    doc = tomllib.loads(THIN.read_text())
    doc["dtype"] = "float64"
    st = scenario.from_dict(doc, THIN, scenarios=10, steps=150, accounts=60)[0]
    p = st.paths
    s, t, a = p.oracle.shape
    funding = 2e-5 * jnp.sin(jnp.arange(s * t * a, dtype=p.oracle.dtype).reshape(s, t, a) / 7.0)
    return {"queue": (st.venue, st, p),
            "random_order": (st.venue.replace(adl_policy="random_order"), st, Paths(p.oracle, p.depth, funding))}


def _simulate_cases() -> dict[str, np.ndarray]:
    import jax

    import adljax

    out = {}
    for name, (venue, st, paths) in _studies().items():
        for chunk in (None, 6) if name == "queue" else (None,):       # 10 in one piece; 6 + 4
            o = adljax.simulate(venue, st.book, paths, dt=st.dt, key=st.key, chunk=chunk)
            tag = f"{name}/{chunk}"
            if chunk is None:   # one piece: the outcome's arrays are the sharded run's (on every device)
                out[f"{tag}/devices_used"] = np.array(len(o.metrics["adl_notional"].sharding.device_set))
            o = jax.device_get(o)
            for k, v in o.metrics.items():
                out[f"{tag}/metric/{k}"] = np.asarray(v)
            for k in ("all_cash", "size_am", "entry_am", "cooldown"):
                out[f"{tag}/book/{k}"] = np.asarray(getattr(o.book, k))
        if name == "queue":   # the same study as a position book (adljax.PositionBook: the position engine)
            from adljax import PositionBook
            book = PositionBook.from_book(st.book)
            for chunk in (None, 6):
                o = adljax.simulate(venue, book, paths, dt=st.dt, key=st.key, chunk=chunk)
                tag = f"positions/{chunk}"
                if chunk is None:
                    out[f"{tag}/devices_used"] = np.array(len(o.metrics["adl_notional"].sharding.device_set))
                o = jax.device_get(o)
                for k, v in o.metrics.items():
                    out[f"{tag}/metric/{k}"] = np.asarray(v)
                for k in ("all_cash", "position_size", "position_entry", "cooldown"):
                    out[f"{tag}/book/{k}"] = np.asarray(getattr(o.book, k))
    return out


def margin_shortfall(params, book, oracle, depth, keys, funding):
    """A smooth, batched engine-shaped function: per scenario, Σ over steps and rows of
    ``softplus((MR − AV)/100)`` for rows within $1000 of their requirement, [S].

    Like the engine, it skips the work for the whole batch (``lax.cond`` on
    ``jnp.any``) in steps where no scenario has such a row; skipping adds
    exactly the zeros the branch would have added, so each scenario's value
    does not depend on its batch.
    """
    import jax
    import jax.numpy as jnp
    from jax import lax

    from adljax.engine.accounting import account_value, maintenance

    def step(total, o):                                               # o [S, A]
        av = jax.vmap(account_value)(book.all_cash, book.size_am, book.entry_am, o)                     # [S, R]
        mr = jax.vmap(maintenance, in_axes=(0, 0, None))(book.size_am, o, params)                       # [S, R]
        gap = mr - av
        near = gap > -1e3
        add = lax.cond(jnp.any(near), lambda g: jnp.sum(jnp.where(near, jax.nn.softplus(g / 100.0), 0.0), axis=-1),
                       lambda g: jnp.zeros(g.shape[0], g.dtype), gap)
        return total + add, None

    total, _ = lax.scan(step, jnp.zeros(oracle.shape[0], oracle.dtype), jnp.swapaxes(oracle, 0, 1))
    return {"shortfall": total}


def _grad_cases(smooth: bool) -> dict[str, np.ndarray]:
    """Value and gradient (w.r.t. the maintenance margins and every scenario's cash) of a weighted sum of
    ``scenario_map(margin_shortfall)``, eagerly and under jit; with ``smooth``, also of the smooth engine's
    expected bad debt + P(ADL) w.r.t. the margins."""
    import jax
    import jax.numpy as jnp

    from adljax.engine.waterfall import batch_book, prepare, scenario_keys
    from adljax.parallel.sharding import scenario_map

    venue, st, paths = _studies()["queue"]
    params, book, paths = prepare(venue, st.book, paths, st.dt)
    keys = scenario_keys(st.key, paths.n_scenarios)
    book = batch_book(book, paths.n_scenarios)
    fn = scenario_map(margin_shortfall)
    weights = jnp.linspace(1.0, 2.0, paths.n_scenarios)

    def loss(mm, cash):
        p = dataclasses.replace(params, maintenance_margin=mm)
        b = dataclasses.replace(book, all_cash=cash)
        return jnp.sum(weights * fn(p, b, paths.oracle, paths.depth, keys, paths.funding)["shortfall"])

    vg = jax.value_and_grad(loss, argnums=(0, 1))
    out = {}
    for tag, f in (("eager", vg), ("jit", jax.jit(vg))):
        value, (g_mm, g_cash) = f(params.maintenance_margin, book.all_cash)
        out[f"grad/{tag}/value"] = np.asarray(value)
        out[f"grad/{tag}/mm"] = np.asarray(g_mm)
        out[f"grad/{tag}/cash"] = np.asarray(g_cash)
    out["grad/per_scenario"] = np.asarray(fn(params, book, paths.oracle, paths.depth, keys, None)["shortfall"])
    if not smooth:
        return out

    # the engine itself in its smooth mode, and a loss of the kind calibrate() minimises
    from functools import partial

    from adljax import objectives
    from adljax.engine.waterfall import run

    rules = venue.replace(temperature=0.1).rules
    engine = scenario_map(partial(run, rules=rules, history=False))

    def smooth_loss(mm):
        _, m, _ = engine(dataclasses.replace(params, maintenance_margin=mm), book, paths.oracle, paths.depth, keys,
                         None)
        return objectives.expected_bad_debt(m) + objectives.p_adl(m), m

    (value, m), g = jax.jit(jax.value_and_grad(smooth_loss, has_aux=True))(params.maintenance_margin)
    out["smooth/value"], out["smooth/mm"] = np.asarray(value), np.asarray(g)
    for k in ("bad_debt", "adl_indicator", "adl_notional", "market_liquidation_notional"):
        out[f"smooth/metric/{k}"] = np.asarray(m[k])
    return out


def _batch_error() -> str:
    """The message of scenario_map (on several devices) for keys of 9 scenarios against paths of 10."""
    from adljax import InputError
    from adljax.engine.waterfall import batch_book, prepare, scenario_keys
    from adljax.parallel.sharding import scenario_map

    venue, st, paths = _studies()["queue"]
    params, book, paths = prepare(venue, st.book, paths, st.dt)
    try:
        scenario_map(margin_shortfall)(params, batch_book(book, 10), paths.oracle, paths.depth,
                                       scenario_keys(st.key, 9), None)
    except InputError as err:
        return str(err)
    return "no error"


def run_all_cases(path: str, smooth: bool) -> None:
    """Entry point of the subprocess: every case, saved to ``path`` (.npz)."""
    import jax

    cases = {**_simulate_cases(), **_grad_cases(smooth)}
    cases["local_devices"] = np.array(jax.local_device_count())
    cases["batch_error"] = np.array(_batch_error())
    np.savez(path, **cases)


@pytest.fixture(scope="module")
def both(tmp_path_factory):
    """``(on 4 devices, on 1 device)``: every case in a subprocess with 4 forced CPU devices, and here, at the same
    time (the two take a core each)."""
    import jax

    path = tmp_path_factory.mktemp("sharding") / "four.npz"
    code = ("import sys, jax; "
            f"jax.config.update('jax_num_cpu_devices', {N_DEVICES}); jax.config.update('jax_enable_x64', True); "
            f"sys.path.insert(0, {str(Path(__file__).parent)!r}); import test_sharding; "
            f"test_sharding.run_all_cases({str(path)!r}, {SMOOTH})")
    env = {**os.environ, "JAX_PLATFORMS": "cpu", "PYTHONPATH": str(ROOT)}
    env.pop("JAX_NUM_CPU_DEVICES", None)
    p = subprocess.Popen([sys.executable, "-c", code], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         text=True)
    try:
        assert jax.local_device_count() == 1
        one = {**_simulate_cases(), **_grad_cases(SMOOTH)}
    finally:
        _, err = p.communicate(timeout=600)
    assert p.returncode == 0, err[-3000:]
    return dict(np.load(path)), one


@pytest.fixture(scope="module")
def on_four_devices(both):
    return both[0]


@pytest.fixture(scope="module")
def on_one_device(both):
    return both[1]


# ---- simulate ---------------------------------------------------------------------------------------------
def test_simulate_on_four_devices_is_bitwise_one_device(on_four_devices, on_one_device):
    four, one = on_four_devices, on_one_device
    assert int(four["local_devices"]) == N_DEVICES
    assert int(four["queue/None/devices_used"]) == N_DEVICES           # the run was split over every device
    assert int(one["queue/None/devices_used"]) == 1
    sim = [k for k in one if "/metric/" in k or "/book/" in k]
    assert len(sim) > 60
    for k in sim:
        np.testing.assert_array_equal(four[k], one[k], err_msg=k)
    # not vacuous: in the thin-altcoin crash, liquidation and ADL act in most scenarios, in both policies
    for name in ("queue", "random_order"):
        m = lambda k: one[f"{name}/None/metric/{k}"]
        assert m("market_liquidation_orders").shape == (10,)
        assert (m("market_liquidation_orders") > 0).sum() >= 5
        assert (m("adl_notional") > 0).sum() >= 5 and (m("n_adl_accounts") > 0).sum() >= 5
        assert m("bad_debt_adl").sum() > 0
    # the two ADL policies differ (so the random order's draws are compared, not a copy of the queue)
    assert not np.array_equal(one["queue/None/metric/adl_notional"], one["random_order/None/metric/adl_notional"])
    # chunked (6 + 4) equals one piece, on either device count, for dense and position books alike
    assert int(four["positions/None/devices_used"]) == N_DEVICES
    for k in [k for k in sim if k.startswith(("queue/None/", "positions/None/"))]:
        np.testing.assert_array_equal(four[k.replace("/None/", "/6/")], four[k], err_msg=k)
    # the position engine's numbers are the dense engine's, to the order of sums
    for k in [k for k in sim if k.startswith("positions/None/metric/")]:
        want = one[k.replace("positions/", "queue/")]
        np.testing.assert_allclose(one[k], want, rtol=1e-9, atol=1e-9 * max(1.0, float(np.max(np.abs(want)))),
                                   err_msg=k)


# ---- gradients --------------------------------------------------------------------------------------------
def test_gradients_through_scenario_map_match_one_device(on_four_devices, on_one_device):
    four, one = on_four_devices, on_one_device
    # each scenario's value is its own: bitwise; and so is the gradient w.r.t. each scenario's cash
    np.testing.assert_array_equal(four["grad/per_scenario"], one["grad/per_scenario"])
    assert (one["grad/per_scenario"] > 0).sum() >= 5                   # rows near their requirement: not all zero
    for tag in ("eager", "jit"):
        np.testing.assert_array_equal(four[f"grad/{tag}/cash"], one[f"grad/{tag}/cash"])
        assert np.abs(one[f"grad/{tag}/cash"]).sum() > 0
        # sums over scenarios are reduced across devices: equal up to the order of the additions
        np.testing.assert_allclose(four[f"grad/{tag}/value"], one[f"grad/{tag}/value"], rtol=1e-13, atol=0)
        np.testing.assert_allclose(four[f"grad/{tag}/mm"], one[f"grad/{tag}/mm"], rtol=1e-12, atol=0)
        assert np.all(np.abs(one[f"grad/{tag}/mm"]) > 0)


@pytest.mark.skipif(not SMOOTH, reason="about a minute of compilation: ADLJAX_FULL_TESTS=1 runs it")
def test_smooth_engine_gradient_through_scenario_map_matches_one_device(on_four_devices, on_one_device):
    four, one = on_four_devices, on_one_device
    for k in [k for k in one if k.startswith("smooth/metric/")]:
        np.testing.assert_array_equal(four[k], one[k], err_msg=k)      # per scenario: bitwise
    assert (one["smooth/metric/adl_notional"] > 0).sum() >= 5 and one["smooth/metric/bad_debt"].sum() > 0
    np.testing.assert_allclose(four["smooth/value"], one["smooth/value"], rtol=1e-13, atol=0)
    np.testing.assert_allclose(four["smooth/mm"], one["smooth/mm"], rtol=1e-12, atol=0)
    assert np.all(np.abs(one["smooth/mm"]) > 0)                      # the margins move the loss


def test_simulate_names_a_device_count_this_process_does_not_have():
    import adljax

    venue, st, paths = _studies()["queue"]
    for bad in (0, 2, 1.5, True):
        with pytest.raises(adljax.InputError, match=r"devices: must be a whole number from 1 to 1"):
            adljax.simulate(venue, st.book, paths, dt=st.dt, devices=bad)


def test_scenario_map_with_one_device_is_the_function_itself():
    from adljax.parallel.sharding import scenario_map

    assert scenario_map(margin_shortfall) is margin_shortfall


def test_scenario_map_names_a_batch_that_does_not_match(on_four_devices):
    assert str(on_four_devices["batch_error"]).startswith("keys: every array needs a leading axis of 10 scenarios")


def test_bad_distributed_arguments_are_named():
    from adljax import InputError
    from adljax.parallel.sharding import check_coordinator, initialize

    with pytest.raises(InputError, match="process_id: must be below the number of processes"):
        initialize("127.0.0.1:1234", 2, 2)
    with pytest.raises(InputError, match="num_processes"):
        initialize("127.0.0.1:1234", 0, 0)
    with pytest.raises(InputError, match="coordinator: expected HOST:PORT"):
        initialize("127.0.0.1", 2, 0)
    with pytest.raises(InputError, match="coordinator"):
        check_coordinator("host:70000")
    assert check_coordinator("[::1]:8476") == "[::1]:8476"
    assert initialize(num_processes=1) == (0, 1)                   # alone: nothing to join


# ---- the command line -------------------------------------------------------------------------------------
def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _env(cache: Path, **extra) -> dict:
    e = {k: v for k, v in os.environ.items() if not k.startswith(("ADLJAX_TEST_", "JAX_NUM_CPU", "SLURM_", "OMPI_"))}
    # One CPU device unless a test asks for more (adljax would otherwise take one per core: adljax.parallel.cpu).
    e.update(JAX_PLATFORMS="cpu", PYTHONPATH=str(ROOT), ADLJAX_COMPILATION_CACHE=str(cache), COLUMNS="200",
             JAX_NUM_CPU_DEVICES="1")
    e.update(extra)
    return e


def _adljax(args, cwd, env) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "adljax", "run", *map(str, args)], cwd=cwd, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _finish(p: subprocess.Popen, timeout=600):
    (out, err, code), = _wait_all([p], timeout)
    assert code == 0, err[-3000:]
    return out


def _wait_all(procs: list[subprocess.Popen], timeout: int) -> list[tuple[str, str, int]]:
    """``(stdout, stderr, exit code)`` of each process. One still running after ``timeout`` seconds (say, left
    waiting at a meeting) fails the test, and every process is killed."""
    try:
        return [p.communicate(timeout=timeout) + (p.returncode,) for p in procs]
    except subprocess.TimeoutExpired:
        for p in procs:
            p.kill()
        tails = [err[-1500:] for _, err in (p.communicate() for p in procs)]
        pytest.fail(f"a process was still running after {timeout} s; their stderr: {tails}")


def _two_processes(args, cwd, env):
    port = _free_port()
    flags = ["--coordinator", f"127.0.0.1:{port}", "--num-processes", 2]
    procs = [_adljax([*args, *flags, "--process-id", i], cwd, env) for i in (1, 0)]
    results = _wait_all(procs, 600)
    for _, err, code in results:
        assert code == 0, err[-3000:]
    return results[1][0], results[0][0]          # process 0's stdout, process 1's


#: What two processes do at their meetings: each prints one JSON line per case.
MEETINGS = r"""
import json, sys, time
pid, port = int(sys.argv[1]), sys.argv[2]
from adljax import InputError
from adljax.parallel import sharding

sharding.initialize(f"127.0.0.1:{port}", 2, pid)
if pid == 1:
    time.sleep(float(sys.argv[3]))      # reaches its first meeting late (gloo's set-up gives up after 30 s)


def case(name, fn):
    try:
        print(json.dumps({"case": name, "value": fn()}), flush=True)
    except Exception as err:
        print(json.dumps({"case": name, "error": type(err).__name__, "message": str(err),
                          "exit_code": getattr(err, "exit_code", None)}), flush=True)
        return err


case("value", lambda: sharding.from_process_0("value", lambda: {"x": 1.5, "made_by": pid}))


def refuse():
    raise InputError("out: refused")


refused = case("refused", lambda: sharding.from_process_0("refused", refuse))
# process 0's own error was told at the meeting above: not told again, so both meet at "after" next
if pid == 0:
    sharding.tell_others(refused)
case("after", lambda: sharding.from_process_0("after", lambda: "both here"))


def between():
    if pid == 1:                     # fails between meetings, and says so at the others' next meeting
        sharding.tell_others(RuntimeError("disk full"))
        return "told"
    sharding.stop_if_another_failed(sharding.meet("next"))
    return "not stopped"


case("between", between)
# both fail between meetings: each tells the others, and neither waits for the other
case("both", lambda: sharding.tell_others(ValueError(f"bad file on {pid}")))
case("out_of_step", lambda: sharding.meet(f"step {pid}"))
case("last", lambda: sharding.from_process_0("last", lambda: "done"))
"""


def test_meetings_pass_values_and_errors_between_processes(tmp_path):
    port = _free_port()
    env = _env(tmp_path / "cache")
    late = 35 if FULL else 0           # seconds process 1 arrives after process 0 (ADLJAX_FULL_TESTS=1: past 30)
    procs = [subprocess.Popen([sys.executable, "-c", MEETINGS, str(i), str(port), str(late)], env=env, cwd=tmp_path,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for i in (1, 0)]
    outs = _wait_all(procs, 180)
    assert [code for _, _, code in outs] == [0, 0], [err[-3000:] for _, err, _ in outs]
    # (gloo prints a line of its own to stdout when it sets up)
    got = [{c["case"]: c for c in (json.loads(line) for line in out.splitlines() if line.startswith('{"case"'))}
           for out, _, _ in outs][::-1]                                   # [process 0, process 1]
    for p in (0, 1):
        assert got[p]["value"]["value"] == {"x": 1.5, "made_by": 0}          # process 0's value, on both
        assert got[p]["after"]["value"] == "both here" and got[p]["last"]["value"] == "done"
        assert got[p]["both"]["value"] is None
        assert got[p]["out_of_step"]["error"] == "DistributedError"
        assert "out of step (process 0 at 'step 0', process 1 at 'step 1')" in got[p]["out_of_step"]["message"]
    # process 0's own error, and the others stop with its reason (exit code 2: an InputError)
    assert got[0]["refused"]["error"] == "InputError" and got[0]["refused"]["message"] == "out: refused"
    assert got[1]["refused"] == {"case": "refused", "error": "DistributedError",
                                 "message": "process 0 stopped: out: refused", "exit_code": 2}
    # an error between meetings reaches the others at their next meeting (exit code 1: not an InputError)
    assert got[1]["between"]["value"] == "told"
    assert got[0]["between"] == {"case": "between", "error": "DistributedError",
                                 "message": "process 1 stopped: disk full", "exit_code": 1}


@pytest.fixture(scope="module")
def cli_runs(tmp_path_factory):
    d = tmp_path_factory.mktemp("cli")
    (d / "tiny.toml").write_text(TINY)
    cache = tmp_path_factory.mktemp("jax-cache")
    args = ["tiny.toml", "--chunk", 4]
    # one process on one device (the reference), and one process on two devices, side by side
    one = _adljax([*args, "--out", "one"], d, _env(cache))
    two = _adljax([*args, "--out", "two_devices", "--no-plots"], d, _env(cache, JAX_NUM_CPU_DEVICES="2"))
    outs = {"one": _finish(one), "two_devices": _finish(two)}
    outs["two_processes"], outs["process_1"] = _two_processes([*args, "--out", "two_processes"], d, _env(cache))
    return d, outs, cache


def _folder(path: Path):
    import pyarrow.parquet as pq

    return pq.read_table(path / "scenarios.parquet"), json.loads((path / "summary.json").read_text())


def test_cli_on_two_devices_and_two_processes_writes_the_one_process_folder(cli_runs):
    d, outs, _ = cli_runs
    ref_table, ref = _folder(d / "one")
    assert ref_table.num_rows == 14
    adl = ref_table.column("adl_notional").to_numpy()
    assert 0 < (adl > 0).sum() < 14                               # ADL fires in some scenarios: not vacuous
    assert ref["devices"] == {"per_process": 1, "processes": 1}
    for name, devices in (("two_devices", {"per_process": 2, "processes": 1}),
                          ("two_processes", {"per_process": 1, "processes": 2})):
        table, summary = _folder(d / name)
        assert table.equals(ref_table), name                        # every scenario's every metric, bitwise
        assert summary["statistics"] == ref["statistics"], name
        assert summary["sizes"] == ref["sizes"] == {"scenarios": 14, "steps": 60, "accounts": 40, "markets": 1,
                                                    "rows": 42, "chunk": 4, "chunks": 4}
        assert summary["identity"] == ref["identity"], name         # the same study: either folder resumes the other
        assert summary["devices"] == devices, name
    # process 0 wrote the figures as one process does; process 1 said what it did
    two = json.loads((d / "two_processes" / "summary.json").read_text())
    assert two["files"]["figures"] == ref["files"]["figures"] and len(ref["files"]["figures"]) == 5
    assert two["files"]["sample_scenarios"] == ref["files"]["sample_scenarios"]
    assert all((d / "two_processes" / f).is_file() for f in two["files"]["figures"])
    assert "2 processes" in outs["two_processes"] and "P(ADL)" in outs["two_processes"]
    assert "process 1 of 2: 2 chunks written" in outs["process_1"] and "P(ADL)" not in outs["process_1"]
    assert "2 × cpu" in outs["two_devices"]
    # each process wrote its own chunks: 4 chunks round-robin over 2 processes
    assert sorted(f.name for f in (d / "two_processes" / "chunks").iterdir()) == sorted(
        f.name for f in (d / "one" / "chunks").iterdir())


def _copy_of(folder: Path, tmp_path: Path) -> Path:
    """A copy of one of the module's finished results folders in ``tmp_path``, with the study file beside it
    (the module's folders are only read)."""
    (tmp_path / "tiny.toml").write_text(TINY)
    shutil.copytree(folder, tmp_path / folder.name)
    return tmp_path / folder.name


def test_two_processes_resume_a_folder_missing_a_chunk(cli_runs, tmp_path):
    d, _, cache = cli_runs
    folder = _copy_of(d / "two_processes", tmp_path)
    (folder / "chunks" / "00000004-00000007.parquet").unlink()     # process 1's chunk, as if it had been killed
    (folder / "scenarios.parquet").unlink()
    out, out1 = _two_processes(["tiny.toml", "--chunk", 4, "--out", folder, "--no-plots", "--resume"], tmp_path,
                               _env(cache))
    table, summary = _folder(folder)
    ref_table, _ = _folder(d / "one")
    assert table.equals(ref_table)
    assert summary["seconds"]["chunks_resumed"] == 3 and summary["seconds"]["chunks_run"] == 1
    assert "process 1 of 2: 1 chunks written" in out1


def _two_processes_failing(args_0, cwd_0, args_1, cwd_1, env):
    """Start process 1 then process 0 of a two-process ``adljax run``; ``[(stdout, stderr, exit code)]`` of 0, 1."""
    port = _free_port()
    flags = ["--coordinator", f"127.0.0.1:{port}", "--num-processes", 2, "--process-id"]
    procs = [_adljax([*args_1, *flags, 1], cwd_1, env), _adljax([*args_0, *flags, 0], cwd_0, env)]
    results = _wait_all(procs, 300)
    return results[1], results[0]


def test_a_process_refused_by_process_0_stops_with_its_reason(cli_runs, tmp_path):
    d, _, cache = cli_runs
    _copy_of(d / "one", tmp_path)
    # a finished folder without --resume: process 0 refuses it, and process 1 stops with process 0's reason
    args = ["tiny.toml", "--chunk", 4, "--out", "one", "--no-plots"]
    (_, err0, rc0), (_, err1, rc1) = _two_processes_failing(args, tmp_path, args, tmp_path, _env(cache))
    assert rc0 == 2 and "--resume" in err0 and "Traceback" not in err0
    assert rc1 == 2 and "process 0 stopped" in err1 and "--resume" in err1 and "Traceback" not in err1


def test_a_process_that_does_not_see_the_results_folder_stops_every_process(cli_runs, tmp_path):
    """Process 1 runs in another folder, so the relative --out is not the folder process 0 made (as when --out is
    not on a shared filesystem): process 1 says so, and process 0, at their meeting after the chunks, stops too."""
    _, _, cache = cli_runs
    for name in ("host0", "host1"):
        (tmp_path / name).mkdir()
        (tmp_path / name / "tiny.toml").write_text(TINY)
    args = ["tiny.toml", "--chunk", 4, "--out", "out", "--no-plots"]
    (_, err0, rc0), (_, err1, rc1) = _two_processes_failing(args, tmp_path / "host0", args, tmp_path / "host1",
                                                            _env(cache))
    assert rc1 == 2 and "process 0 made the results folder but this process does not see it" in err1
    assert rc0 == 1 and "process 1 stopped before writing its chunks" in err0 and "does not see it" in err0
    assert "--resume" in err0 and "Traceback" not in err0 + err1
    # process 0's chunks are kept; no results were assembled
    assert sorted(f.name for f in (tmp_path / "host0" / "out" / "chunks").iterdir()) == [
        "00000000-00000003.parquet", "00000008-00000011.parquet"]
    assert not (tmp_path / "host0" / "out" / "scenarios.parquet").exists()
