"""Tests run with 64-bit floats enabled; float32 tests ask for float32 arrays explicitly."""
import os

os.environ.setdefault("JAX_PLATFORMS", "cpu")
# One CPU device, here and in the commands and notebook kernels the tests start: the `adljax` command
# (and any code calling adljax.use_cpu_cores) would otherwise give JAX one per core, and every run would
# split its scenarios over them. test_cpu.py checks that default; test_sharding.py runs 2 and 4 devices
# against 1, bitwise.
os.environ.setdefault("JAX_NUM_CPU_DEVICES", "1")

# One compilation cache for this test session, shared by the two pytest-xdist workers and by
# the `adljax` commands and notebook kernels the tests start (they compile the same engine
# programs again and again). A fresh folder each session, so a run's time is a clean
# machine's; set JAX_COMPILATION_CACHE_DIR to choose one.
if "JAX_COMPILATION_CACHE_DIR" not in os.environ and "PYTEST_XDIST_WORKER" not in os.environ:
    import atexit
    import shutil
    import tempfile

    os.environ["JAX_COMPILATION_CACHE_DIR"] = tempfile.mkdtemp(prefix="adljax-tests-jax-cache-")
    atexit.register(shutil.rmtree, os.environ["JAX_COMPILATION_CACHE_DIR"], ignore_errors=True)

import jax

jax.config.update("jax_enable_x64", True)
