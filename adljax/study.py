"""The default study: a Hyperliquid-like book of three markets through violent ten minutes.

It is what ``adljax run`` runs with no scenario file: 1,000 cross-margin
traders in BTC, ETH and SOL (max leverage 40×, 25×, 20×), a backstop vault,
and 512 ten-minute paths at one-second steps with correlated diffusion
and frequent downward jumps; book depth thins when prices move.
"""
from __future__ import annotations

import dataclasses

import jax
import numpy as np

from . import venues
from .book import Book
from .generate import merton, population, thinning_depth
from .generate.prices import YEAR
from .paths import Paths
from .venue import Venue


@dataclasses.dataclass(frozen=True)
class Study:
    """A venue, a start book and scenario paths, with the step length."""

    name: str
    venue: Venue
    book: Book
    paths: Paths
    dt: float


MARKETS = ("BTC", "ETH", "SOL")
START = np.array([100_000.0, 4_000.0, 200.0])
MAX_LEVERAGE = np.array([40.0, 25.0, 20.0])


def default_study(*, n_scenarios: int = 512, n_steps: int = 600, n_accounts: int = 1000, seed: int = 0,
                  dt: float = 1.0, dtype=None) -> Study:
    """Build the default study (sizes overridable). Same seed, same study."""
    k_book, k_path = jax.random.split(jax.random.key(seed))
    book = population(k_book, n_accounts, START, MAX_LEVERAGE, long_share=[0.6, 0.58, 0.65],
                      median_notional=30_000.0, leverage_mode=6.0, markets_per_account=2,
                      vault_cash=10e6, dtype=dtype)
    vol = np.array([0.6, 0.8, 1.1])
    oracle = merton(k_path, START, n_scenarios=n_scenarios, n_steps=n_steps, dt=dt, vol=vol,
                    corr=[[1.0, 0.8, 0.7], [0.8, 1.0, 0.75], [0.7, 0.75, 1.0]],
                    jump_rate=0.5 / (600.0 / YEAR), jump_mean=-0.06, jump_std=0.04, dtype=dtype)
    calm = vol * np.sqrt(dt / YEAR)
    depth = thinning_depth(oracle, [8e6, 3e6, 1e6], calm_move=calm, thinning=0.3)
    return Study("default", venues.hyperliquid(max_leverage=MAX_LEVERAGE), book, Paths(oracle, depth), dt)
