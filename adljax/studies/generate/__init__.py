"""Scenario generators: price paths, stress shapes, book depth and trader populations, in JAX from a key.

Every path generator takes ``key`` (a ``jax.random.key``), ``n_scenarios``
and ``first_scenario``: scenario ``i`` draws only from
``jax.random.fold_in(key, first_scenario + i)``, so any batch split gives the
same numbers as one run. Paths are [S, T, A] prices with step 0 at the start.
"""
from .prices import YEAR, correlated_normals, gbm, merton, scenario_keys
from .garch import garch
from .bootstrap import PriceHistory, bootstrap, load_prices_csv
from .stress import apply_stress, cascade, gap, stress_path, v_crash
from .depth import thinning_depth
from .population import population

__all__ = [
    "YEAR", "scenario_keys", "correlated_normals", "gbm", "merton", "garch",
    "bootstrap", "load_prices_csv", "PriceHistory",
    "gap", "v_crash", "cascade", "apply_stress", "stress_path",
    "thinning_depth", "population",
]
