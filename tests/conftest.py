"""Tests run with 64-bit floats enabled; float32 tests ask for float32 arrays explicitly."""
import os

os.environ.setdefault("JAX_PLATFORMS", "cpu")

import jax

jax.config.update("jax_enable_x64", True)
