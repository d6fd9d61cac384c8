"""CPU devices: ``import adljax`` changes no JAX setting; ``adljax.use_cpu_cores()`` and the command line give
JAX one CPU device per core, unless someone chose a number or JAX has started.

Each case runs in a fresh Python: JAX fixes its devices when it runs its first operation.
(The rest of the suite runs with ``JAX_NUM_CPU_DEVICES=1``, set in conftest.py.)
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

import adljax
from adljax.parallel.cpu import cores, use_cpu_cores

ROOT = Path(__file__).resolve().parents[1]


def fresh_env(**env) -> dict:
    """This environment for a fresh Python: adljax importable, JAX on the CPU, no JAX_NUM_CPU_DEVICES unless given."""
    e = {k: v for k, v in os.environ.items() if k != "JAX_NUM_CPU_DEVICES"}
    e.update(JAX_PLATFORMS="cpu", PYTHONPATH=str(ROOT), **env)
    return e


def devices_after(code: str, **env) -> str:
    """Run ``code`` in a fresh Python (see :func:`fresh_env`); its last line."""
    p = subprocess.run([sys.executable, "-c", code], env=fresh_env(**env), capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stderr[-3000:]
    return p.stdout.strip().splitlines()[-1]


COUNT = "import jax; print(jax.local_device_count(), jax.devices()[0].platform)"

#: Every JAX setting and every JAX/XLA environment variable before and after ``import adljax``: what changed.
SETTINGS_AFTER_IMPORT = """
import os, jax
def settings():
    env = {k: v for k, v in os.environ.items() if k.startswith(("JAX_", "XLA_"))}
    return {**jax.config.values, **env}
before = settings()
import adljax
after = settings()
print({k: (before.get(k), after.get(k)) for k in set(before) | set(after) if before.get(k) != after.get(k)})
"""


def test_import_changes_no_jax_setting_and_keeps_one_device():
    assert devices_after(SETTINGS_AFTER_IMPORT) == "{}"
    assert devices_after("import adljax; " + COUNT) == "1 cpu"
    assert devices_after("import adljax, jax; print(jax.config.jax_num_cpu_devices, jax.config.jax_enable_x64)") == (
        "-1 False")                                                  # JAX's own defaults


def test_use_cpu_cores_gives_one_device_per_core():
    assert devices_after("import adljax; n = adljax.use_cpu_cores(); " + COUNT + "; print(n)") == f"{cores()}"
    assert devices_after("import adljax; adljax.use_cpu_cores(); " + COUNT) == f"{cores()} cpu"


def test_a_chosen_number_is_kept():
    assert devices_after("import adljax; adljax.use_cpu_cores(); " + COUNT, JAX_NUM_CPU_DEVICES="1") == "1 cpu"
    assert devices_after("import jax; jax.config.update('jax_num_cpu_devices', 3); import adljax; "
                         "print(adljax.use_cpu_cores()); " + COUNT) == "3 cpu"
    assert devices_after("import adljax; print(adljax.use_cpu_cores()); " + COUNT,
                         XLA_FLAGS="--xla_force_host_platform_device_count=3") == "3 cpu"
    # asked for a number before JAX starts: that number
    assert devices_after("import adljax; print(adljax.use_cpu_cores(3)); " + COUNT) == "3 cpu"


STARTED = "import jax, jax.numpy as jnp\njnp.zeros(1).block_until_ready()\nimport adljax\n"


def test_a_started_jax_is_left_as_it_is():
    assert devices_after(STARTED + "assert adljax.use_cpu_cores() == 1 and adljax.use_cpu_cores(1) == 1\n"
                         + COUNT) == "1 cpu"
    # started with XLA's older flag: the count it gave is the one reported
    assert devices_after(STARTED + "print(adljax.use_cpu_cores())",
                         XLA_FLAGS="--xla_force_host_platform_device_count=3") == "3"
    msg = devices_after(STARTED + "try:\n    adljax.use_cpu_cores(3)\nexcept adljax.InputError as e:\n    print(e)\n")
    assert msg.startswith("n: JAX has already started with 1 CPU device(s)") and "JAX_NUM_CPU_DEVICES=3" in msg


@pytest.mark.parametrize("bad", [0, -2, 2.5, True, "4"])
def test_a_bad_number_is_refused(bad):
    with pytest.raises(adljax.InputError, match="^n: the number of CPU devices must be a whole number >= 1"):
        use_cpu_cores(bad)


def test_simulate_splits_the_scenarios_over_the_cores():
    """What the README's first example does: each core's device runs a share of the scenarios.
    (On a one-core machine this checks one device only. That a split run gives one device's numbers,
    bitwise, is test_sharding.py's check, on 2 and 4 devices.)"""
    code = ("import adljax, numpy as np\n"
            "adljax.use_cpu_cores()\n"
            "from adljax.study import default_study\n"
            "st = default_study(n_scenarios=4, n_steps=5, n_accounts=20)\n"
            "out = adljax.simulate(st.venue, st.book, st.paths, dt=st.dt, key=st.key)\n"
            "print(len(out.metrics['bad_debt'].sharding.device_set),\n"
            "      bool(np.all(np.isfinite(out.metrics['bad_debt']))))")
    assert devices_after(code) == f"{cores()} True"


def test_the_command_line_splits_a_run_over_the_cores(tmp_path):
    """``adljax run`` asks for one device per core by itself (no JAX_NUM_CPU_DEVICES in its environment)."""
    args = ["run", "--scenarios", "4", "--steps", "5", "--accounts", "20", "--no-plots", "--out", str(tmp_path / "run")]
    p = subprocess.run([sys.executable, "-m", "adljax", *args], env=fresh_env(ADLJAX_COMPILATION_CACHE="0"),
                       capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stderr[-3000:]
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert summary["devices"] == {"per_process": cores(), "processes": 1}
