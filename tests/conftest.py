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

# XLA compiles the tests' programs the cheap way, here and in the notebook kernels and most commands the
# tests start: LLVM without its optimisations and XLA's older (elemental) fusion emitters. The tests run their
# programs on a few rows and steps, so compiling is most of their time, and these flags cut the suite's time
# by more than half (docs/performance.md, "Flags"). XLA's HLO passes, where
# the simplifications that can change a program's results live, run as in any other use; the code emitted may
# round differently in the last bits. test_cli.py runs the `adljax` command as users run it, with the XLA_FLAGS
# the suite was started with (kept in ADLJAX_TEST_XLA_FLAGS). A run that sets any of these flags in XLA_FLAGS
# keeps its own setting. (The flags are those of the jax series pyproject.toml pins.)
FAST_COMPILE = ("--xla_backend_optimization_level=0", "--xla_llvm_disable_expensive_passes=true",
                "--xla_cpu_use_fusion_emitters=false")
_flags = os.environ.get("XLA_FLAGS", "")
if not any(f.split("=")[0] in _flags for f in FAST_COMPILE):
    os.environ.setdefault("ADLJAX_TEST_XLA_FLAGS", _flags)
    os.environ["XLA_FLAGS"] = " ".join([_flags, *FAST_COMPILE]).strip()

import jax  # noqa: E402

jax.config.update("jax_enable_x64", True)


#: Test files in the order the two pytest-xdist workers take them: the longest first (their times in the
#: suite, measured from a clean clone on the 2-core CPU), so that the two finish together. Files not
#: listed follow, in name order. pyproject.toml's `--no-loadscope-reorder` makes xdist keep this order
#: (by default it orders files by their number of tests, which leaves a few long files to the end).
LONGEST_FIRST = ("test_calibration.py", "test_differential.py", "test_notebooks.py", "test_sharding.py",
                 "test_smooth.py", "test_cli.py", "test_positions_engine.py", "test_skips.py", "test_handworked.py",
                 "test_scenarios.py", "test_policies.py", "test_properties.py", "test_split_independence.py",
                 "test_calibration_positions.py", "test_cpu.py", "test_positions_smooth.py",
                 "test_scenario_positions.py", "test_quiet_steps.py", "test_tiers.py", "test_chunking.py",
                 "test_smooth_parameters.py", "test_positions_adl.py", "test_capacity.py", "test_blocks.py",
                 "test_positions_backstop.py", "test_position_loaders.py")


def pytest_collection_modifyitems(session, config, items):
    rank = {name: i for i, name in enumerate(LONGEST_FIRST)}
    items.sort(key=lambda item: rank.get(item.path.name, len(rank)))     # stable: within a file, as written
