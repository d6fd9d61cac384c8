"""Scenario generators: price paths, book depth and trader populations, in JAX from a key."""
from .prices import correlated_normals, gbm, merton
from .depth import thinning_depth
from .population import population

__all__ = ["correlated_normals", "gbm", "merton", "thinning_depth", "population"]
