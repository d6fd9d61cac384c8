"""Skipping work that no scenario of a batch needs.

Two ways, one for each level: :func:`stage_if` runs a whole stage of the waterfall or skips it for
the batch (both engines' ``step``; both modes), :func:`run_if` runs work inside a stage or gives its
default, deciding per scenario under ``vmap`` (the hard mode).
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
from jax import Array, custom_batching, lax


def run_if(pred: Array, fn, default, *operands):
    """``fn(*operands)`` if the scalar ``pred``, else ``default`` (shaped like ``fn``'s output).

    A ``lax.cond``, with a batching rule of its own: under ``vmap`` (a batched
    ``pred``) ``fn`` runs for the whole batch when any member's ``pred``
    holds, and each member whose ``pred`` does not hold gets its ``default``.
    (``vmap`` of a plain ``cond`` becomes a ``select`` that always runs ``fn``.
    A ``while_loop`` run once or not at all batches the same way, but XLA
    hoists work that depends only on values from outside the loop out of it,
    so it runs every time: that is why the operands go through a ``cond``.)
    Not differentiable: the hard mode only.
    """
    leaves, tree = jax.tree_util.tree_flatten(default)

    @custom_batching.custom_vmap
    def branch(pred, leaves, operands):
        return lax.cond(pred, lambda ops: tree.flatten_up_to(fn(*ops)), lambda ops: leaves, operands)

    @branch.def_vmap
    def batched(axis_size, in_batched, pred, leaves, operands):
        p_b, l_b, o_b = in_batched
        pred = pred if p_b else jnp.broadcast_to(pred, (axis_size,))
        leaves = [x if b else jnp.broadcast_to(x, (axis_size,) + x.shape) for x, b in zip(leaves, l_b)]
        axes = jax.tree_util.tree_map(lambda b: 0 if b else None, o_b)
        each = jax.vmap(lambda *ops: tree.flatten_up_to(fn(*ops)), in_axes=tuple(axes), axis_size=axis_size)

        out = lax.cond(jnp.any(pred), lambda ops: each(*ops), lambda ops: leaves, operands)
        # (Selected outside the cond: a select fused into the branch changes how XLA fuses `fn`'s arithmetic with
        # the batch size, and a run split over devices must give the bits of one device.)
        chosen = [jnp.where(pred.reshape((axis_size,) + (1,) * (o.ndim - 1)), o, d) for o, d in zip(out, leaves)]
        return chosen, [True] * len(chosen)

    return jax.tree_util.tree_unflatten(tree, branch(jnp.asarray(pred), leaves, tuple(operands)))


def zeros_like_output(fn, *args):
    """Zeros shaped like ``fn(*args)``'s outputs (traced, not run)."""
    return jax.tree_util.tree_map(lambda s: jnp.zeros(s.shape, s.dtype), jax.eval_shape(fn, *args))


def stage_if(pred: Array, stage, state, *inputs, differentiable: bool = False):
    """``stage(state, *inputs)`` if ``pred`` (a batch-level scalar), else ``(state, zero report)``.

    ``stage`` returns ``(state, report)`` (:mod:`adljax.engine.state`); a skipped stage leaves the state as it
    was given and reports zeros. ``differentiable`` (the smooth mode) uses ``lax.cond``, which reverse-mode
    differentiation supports and a while loop does not.
    """
    # ``stage`` is jitted so that it is traced once: the report's shapes (for the zeros of a skipped
    # stage) come from the same trace as the branch that runs, where ``jax.eval_shape`` of a plain
    # ``stage`` and the loop's own trace would trace every stage twice. XLA inlines the nested jit:
    # the compiled program is the same (docs/performance.md).
    fn = jax.jit(stage)
    zeros = zeros_like_output(fn, state, *inputs)[1]
    if differentiable:
        return lax.cond(pred, fn, lambda st, *_: (st, zeros), state, *inputs)
    # A while loop that runs once or not at all: its state is updated in place, where a
    # lax.cond copies the whole book into and out of its branches in every step (calm
    # study 64 x 4098 x 4 x 100 steps on the 2-core CPU: 0.70 s -> 0.44 s, 1.5e8 -> 2.4e8
    # account·market·steps/s).
    def body(carry):
        _, st, _ = carry
        st, report = fn(st, *inputs)
        return jnp.asarray(False), st, report

    _, state, report = lax.while_loop(lambda c: c[0], body, (pred, state, zeros))
    return state, report
