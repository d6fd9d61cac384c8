"""Counting the programs JAX lowers, through its public monitoring events."""
from __future__ import annotations

import contextlib

import jax.monitoring

#: The event JAX records each time it lowers a traced function to a new program (a jit cache miss).
LOWERED = "/jax/core/compile/jaxpr_to_mlir_module_duration"


@contextlib.contextmanager
def lowerings(function: str):
    """Within the block, a list of the times JAX lowered a new program of the jitted ``function`` (its name).

    A call that reuses a compiled program lowers nothing, so ``len(...) == 0`` means the block
    compiled nothing new for ``function``; other functions' programs are not counted.
    """
    seen: list[str] = []

    def listener(event, duration, fun_name="", **kw):
        if event == LOWERED and fun_name in (function, f"jit({function})", f"jit_{function}"):
            seen.append(fun_name)

    jax.monitoring.register_event_duration_secs_listener(listener)
    try:
        yield seen
    finally:
        jax.monitoring.unregister_event_duration_listener(listener)
