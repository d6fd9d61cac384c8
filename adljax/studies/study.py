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
from typing import Callable, Mapping

import jax
import numpy as np

from ..model import venues
from ..model.book import Book
from ..model.errors import InputError
from ..model.outcome import METRICS
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


#: Scenario ``i`` draws its paths from ``fold_in(key, i)`` with a 32-bit ``i``: a study has at most 2**32 scenarios.
MAX_SCENARIOS = 2**32
#: The most account·market·step·scenario cells a study may have. The engine's fastest measured rate is about
#: 2e9 cells a second (calm markets, 2 CPU cores; a cascade runs 10-20 times slower), so 1e15 cells is about six
#: days of calm markets there: larger studies are refused as mistakes (a size typed with too many zeros).
MAX_CELLS = 1e15
#: Bytes per trader row·market to generate a dense book: population() draws and works on a list of positions,
#: and the dense [rows, A] arrays it returns (and Book.from_accounts's copies of them) are its peak (measured 89
#: bytes per row·market above the process's baseline for 100,000 accounts × 182 markets; this takes a little
#: less, to refuse only what cannot fit). A position book's generation needs no such bound.
BOOK_BYTES = 80
#: Bytes per scenario of the results table: every metric and the scenario index, float64, held twice (the chunk
#: tables and the table they are joined into).
RESULT_BYTES = 2 * 8 * (len(METRICS) + 1)


def format_bytes(n: float) -> str:
    """``1.23 GB``, ``456 MB``, ``789 bytes``."""
    for unit, div in (("TB", 1e12), ("GB", 1e9), ("MB", 1e6)):
        if n >= div:
            return f"{n / div:.3g} {unit}"
    return f"{n:,.0f} bytes"


def check_sizes(*, scenarios: int, steps: int, rows: int, markets: int, itemsize: int,
                names: Mapping[str, str], generated: bool = True) -> None:
    """Refuse a study that cannot fit this machine's memory even in chunks, or that is absurdly long.

    Run before the book is generated or any path made, with the study's sizes (``rows``: trader rows of the
    book, without the vault and liquidity-provider rows). The estimates, each in the message that refuses:

    - ``scenarios`` above :data:`MAX_SCENARIOS` (scenarios are numbered by a 32-bit index);
    - a generated book (``generated``) needing more than the machine's memory (:data:`BOOK_BYTES` per
      row·market);
    - the smallest chunk the runner makes (one scenario per local device on a CPU, whose devices share the
      host's memory; one scenario elsewhere) needing more than a device's memory, by
      :func:`adljax.parallel.chunking.bytes_per_scenario`, which grows with rows × markets and with
      steps × markets (the paths);
    - the results table (:data:`RESULT_BYTES` per scenario) needing more than the machine's memory;
    - more than :data:`MAX_CELLS` account·market·step·scenario cells.

    Args:
      names: how the caller names each size in messages, for ``scenarios``, ``steps`` and ``rows``
        (e.g. ``{"rows": "[book] accounts"}`` for a scenario file, ``{"rows": "--accounts"}`` for the
        command line); a name may start with the file the size is from.
    Raises:
      InputError: ``"<name>: <why, with the estimate>"``.
    """
    import jax

    from ..parallel.chunking import ROW_MARKET_FACTOR, bytes_per_scenario, device_memory, physical_memory

    def refuse(key: str, why: str):
        return InputError(f"{names[key]}: {why}")

    if scenarios > MAX_SCENARIOS:
        raise refuse("scenarios", f"{scenarios:,} scenarios is more than a study can number (at most 2**32 = "
                                  f"{MAX_SCENARIOS:,}: scenario i's paths are drawn from a 32-bit index)")
    host = physical_memory()
    if generated and BOOK_BYTES * rows * markets > host:
        raise refuse("rows", f"generating a book of {rows:,} rows × {markets} market{'s' * (markets > 1)} needs "
                             f"about {format_bytes(BOOK_BYTES * rows * markets)} ({BOOK_BYTES} bytes per row·market), "
                             f"more than this machine's memory ({format_bytes(host)})")
    dev = jax.local_devices()[0]
    least = min(scenarios, jax.local_device_count()) if dev.platform == "cpu" else 1
    need = least * bytes_per_scenario(rows + 2, markets, steps, itemsize)
    memory = device_memory(dev)
    if need > memory:
        book_part = ROW_MARKET_FACTOR * (rows + 2) * markets
        key = "rows" if book_part >= 3 * steps * markets else "steps"
        what = f"the smallest chunk, {least} scenario{'s' if least > 1 else ''}{' (one per device)' * (least > 1)},"
        raise refuse(key, f"{what} of {rows:,} rows × {markets} market{'s' * (markets > 1)} × {steps:,} steps needs "
                          f"about {format_bytes(need)} to run (adljax.chunking.bytes_per_scenario), more than the "
                          f"{dev.platform} device's memory ({format_bytes(memory)})")
    if RESULT_BYTES * scenarios > host:
        raise refuse("scenarios", f"the results of {scenarios:,} scenarios (one row of metrics each) need about "
                                  f"{format_bytes(RESULT_BYTES * scenarios)}, more than this machine's memory "
                                  f"({format_bytes(host)})")
    cells = float(scenarios) * steps * rows * markets
    if cells > MAX_CELLS:
        key = max(("scenarios", scenarios), ("steps", steps), ("rows", rows), key=lambda kv: kv[1])[0]
        raise refuse(key, f"{scenarios:,} scenarios × {steps:,} steps × {rows:,} rows × {markets} "
                          f"market{'s' * (markets > 1)} is "
                          f"{cells:.3g} account·market·step·scenario cells, more than adljax runs ({MAX_CELLS:.0e}: "
                          f"about {MAX_CELLS / 2e9 / 86400:.0f} days at the engine's fastest measured rate, "
                          "2e9 cells a second on 2 CPU cores)")


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
    itemsize = np.dtype(dtype or jax.numpy.result_type(float)).itemsize
    check_sizes(scenarios=n_scenarios, steps=n_steps, rows=n_accounts, markets=len(MARKETS), itemsize=itemsize,
                names={"scenarios": "n_scenarios", "steps": "n_steps", "rows": "n_accounts"})
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
