"""One container for pytrees throughout: frozen dataclasses registered with JAX.

Fields are data (arrays, traced) unless declared with ``static_field()``,
which makes them part of the tree's structure (hashable, static under jit).
"""
from __future__ import annotations

import dataclasses
from typing import Any, TypeVar

import jax

T = TypeVar("T")


def static_field(**kwargs: Any) -> Any:
    """A dataclass field that is static metadata, not a traced leaf."""
    return dataclasses.field(metadata={"static": True}, **kwargs)


def pytree(cls: type[T]) -> type[T]:
    """Make ``cls`` a frozen dataclass and register it as a JAX pytree."""
    cls = dataclasses.dataclass(frozen=True)(cls)
    fields = dataclasses.fields(cls)
    data = [f.name for f in fields if not f.metadata.get("static", False)]
    meta = [f.name for f in fields if f.metadata.get("static", False)]
    return jax.tree_util.register_dataclass(cls, data_fields=data, meta_fields=meta)


def replace(obj: T, **changes: Any) -> T:
    """``dataclasses.replace`` for our pytrees."""
    return dataclasses.replace(obj, **changes)
