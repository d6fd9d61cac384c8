"""A study: a venue, a start book and a recipe for its scenario paths.

Paths are made on demand, a chunk of scenarios at a time
(:meth:`Study.paths_for`), and scenario ``i`` of a study is always the same
whichever chunk it is made in: every generator draws scenario ``i`` from
``fold_in(key, i)``. That is what lets a large study run in chunks, and a
killed run resume, with the numbers of one uninterrupted run.

:func:`default_study` is what ``adljax run`` runs with no scenario file
(``scenarios/default.toml`` states the same study as a file).
"""
from __future__ import annotations

import dataclasses
from typing import Callable

import jax
import numpy as np

from ..model import venues
from ..model.book import Book
from .generate import merton, population, thinning_depth
from .generate.prices import YEAR
from ..model.paths import Paths
from ..model.venue import Venue


@dataclasses.dataclass(frozen=True)
class Study:
    """A venue, a start book and scenario paths, with the step length.

    Attributes:
      name: short name (the scenario file's stem for file studies).
      venue: the rules and numbers.
      book: the start :class:`Book` (the same in every scenario).
      dt: seconds per step.
      n_scenarios, n_steps: S and T of the whole study.
      make_paths: ``(first, n) -> Paths`` of scenarios ``[first, first + n)``.
      markets: market names, in the book's order.
      seed: the study's seed; :attr:`key` is ``jax.random.key(seed)`` folded
        for the engine's own draws (the ``random_order`` ADL policy).
      description: one paragraph for people.
    """

    name: str
    venue: Venue
    book: Book
    dt: float
    n_scenarios: int
    n_steps: int
    make_paths: Callable[[int, int], Paths]
    markets: tuple[str, ...] = ()
    seed: int = 0
    description: str = ""

    def paths_for(self, first: int, n: int) -> Paths:
        """Paths of scenarios ``[first, first + n)`` (``n`` is cut at the study's end)."""
        n = min(n, self.n_scenarios - first)
        return self.make_paths(first, n)

    @property
    def paths(self) -> Paths:
        """Every scenario's paths at once (for small studies; large ones go by :meth:`paths_for`)."""
        return self.paths_for(0, self.n_scenarios)

    @property
    def key(self):
        """The engine's key (``random_order`` draws): :func:`seed_keys` ``(seed)[2]``."""
        return seed_keys(self.seed)[2]


def seed_keys(seed: int):
    """A study's three keys from its seed: (book, paths, engine) = ``fold_in(key(seed), 0 / 1 / 2)``.

    Every study, in code or from a file, derives its keys this way, so the
    same seed gives the same book and paths whichever way it is built.
    """
    root = jax.random.key(seed)
    return tuple(jax.random.fold_in(root, i) for i in range(3))


MARKETS = ("BTC", "ETH", "SOL")
START = np.array([100_000.0, 4_000.0, 200.0])
MAX_LEVERAGE = np.array([40.0, 25.0, 20.0])


def default_study(*, n_scenarios: int = 512, n_steps: int = 600, n_accounts: int = 1000, seed: int = 0,
                  dt: float = 1.0, dtype=None) -> Study:
    """The default study: a Hyperliquid-like book of three markets through violent ten minutes.

    1,000 cross-margin traders in BTC, ETH and SOL (max leverage 40×, 25×,
    20×), a $10M backstop vault, and 512 ten-minute paths at one-second
    steps: correlated diffusion (annual vol 60/80/110 %) with frequent
    downward jumps (0.5 per market per path, −6 % ± 4 %); book depth
    ($8M/$3M/$1M a side a step) thins when prices move. Same seed, same study.
    """
    k_book, k_path, _ = seed_keys(seed)
    book = population(k_book, n_accounts, START, MAX_LEVERAGE, long_share=[0.6, 0.58, 0.65],
                      median_notional=30_000.0, leverage_mode=6.0, markets_per_account=2,
                      vault_cash=10e6, dtype=dtype)
    vol = np.array([0.6, 0.8, 1.1])

    def make_paths(first: int, n: int) -> Paths:
        oracle = merton(k_path, START, n_scenarios=n, n_steps=n_steps, dt=dt, vol=vol,
                        corr=[[1.0, 0.8, 0.7], [0.8, 1.0, 0.75], [0.7, 0.75, 1.0]],
                        jump_rate=0.5 / (n_steps * dt / YEAR), jump_mean=-0.06, jump_std=0.04,
                        dtype=dtype, first_scenario=first)
        depth = thinning_depth(oracle, [8e6, 3e6, 1e6], calm_move=vol * np.sqrt(dt / YEAR), thinning=0.3)
        return Paths(oracle, depth)

    return Study("default", venues.hyperliquid(max_leverage=MAX_LEVERAGE), book, dt, n_scenarios, n_steps,
                 make_paths, MARKETS, seed, default_study.__doc__.split("\n\n")[1].strip())
