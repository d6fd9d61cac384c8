"""One container for pytrees throughout: frozen dataclasses registered with JAX, every field a leaf (traced).

Static choices (rules, engine settings) travel as separate, hashable arguments (:class:`adljax.Rules`, the
engine's config). The one exception is a field whose type is ``str``: it is static metadata of the tree
(part of its structure, so changing it recompiles), for a choice that decides how the tree's own numbers are
read (:attr:`adljax.Params.tier_mode`).
"""
from __future__ import annotations

import dataclasses
from typing import Any, TypeVar

import jax

T = TypeVar("T")


def pytree(cls: type[T]) -> type[T]:
    """Make ``cls`` a frozen dataclass and register it as a JAX pytree whose fields are all data."""
    cls = dataclasses.dataclass(frozen=True)(cls)
    fields = dataclasses.fields(cls)
    meta = [f.name for f in fields if f.type in (str, "str")]
    data = [f.name for f in fields if f.name not in meta]
    return jax.tree_util.register_dataclass(cls, data_fields=data, meta_fields=meta)


def replace(obj: T, **changes: Any) -> T:
    """``dataclasses.replace`` for our pytrees."""
    return dataclasses.replace(obj, **changes)
