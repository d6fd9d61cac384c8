"""One container for pytrees throughout: frozen dataclasses registered with JAX, every field a leaf (traced).

Static choices (rules, engine settings) are not fields of these trees: they travel as separate, hashable
arguments (:class:`adljax.Rules`, the engine's config).
"""
from __future__ import annotations

import dataclasses
from typing import Any, TypeVar

import jax

T = TypeVar("T")


def pytree(cls: type[T]) -> type[T]:
    """Make ``cls`` a frozen dataclass and register it as a JAX pytree whose fields are all data."""
    cls = dataclasses.dataclass(frozen=True)(cls)
    data = [f.name for f in dataclasses.fields(cls)]
    return jax.tree_util.register_dataclass(cls, data_fields=data, meta_fields=[])


def replace(obj: T, **changes: Any) -> T:
    """``dataclasses.replace`` for our pytrees."""
    return dataclasses.replace(obj, **changes)
