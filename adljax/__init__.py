"""adljax: the liquidation waterfall of perpetual-futures venues, in JAX.

margin check → market liquidation → backstop → auto-deleveraging, over
thousands of price-path scenarios at once. See ``docs/rules.md`` for the
exact rules and the README for a tour.

The package's folders are its layers: :mod:`adljax.model` (the public
nouns: book, position book, paths, venue, outcome), :mod:`adljax.engine.waterfall`
(the stages, the step that composes them, the scan over time;
:mod:`adljax.engine.positions` the same on a position book), :mod:`adljax.reference`
(the same rules event by event), :mod:`adljax.parallel` (devices, hosts, chunks),
:mod:`adljax.studies` (studies, scenario and book files, generators, the
results-folder runner), :mod:`adljax.analysis` (metrics, objectives,
calibration, figures, inspection) and :mod:`adljax.cli` (one module a
command).

Importing adljax changes no JAX setting. :func:`use_cpu_cores` (before any
JAX operation) splits a CPU into one JAX device per core, so that
:func:`simulate` runs scenarios on every core; the command line does it by
itself.
"""
import sys as _sys

from .model import venues
from .model.book import Book
from .model.position_book import PositionBook
from .model.errors import InputError
from .model.outcome import HISTORY, METRICS, Outcome
from .model.paths import Paths
from .model.venue import Params, Rules, Venue
from .parallel.cpu import use_cpu_cores
from .engine.config import EngineConfig
from .engine.simulation import simulate
from .analysis.calibration import Calibration, calibrate
from .analysis.indicator import adl_queue
from . import reference
from .studies import bookfile, generate, scenario, study
from .parallel import chunking
from .analysis import objectives

# Module paths the README documents, kept where the modules live in layer folders:
# ``import adljax.bookfile`` and ``from adljax.scenario import load`` find them here.
# A package's submodules get their short names too (``adljax.generate.prices``).
for _name, _module in {"venues": venues, "bookfile": bookfile, "generate": generate, "scenario": scenario,
                       "study": study, "chunking": chunking, "objectives": objectives}.items():
    for _full in [m for m in _sys.modules if m == _module.__name__ or m.startswith(_module.__name__ + ".")]:
        _sys.modules[f"{__name__}.{_name}{_full[len(_module.__name__):]}"] = _sys.modules[_full]
del _name, _module, _full

__all__ = ["Book", "PositionBook", "Paths", "Venue", "Rules", "Params", "Outcome", "METRICS", "HISTORY", "InputError",
           "EngineConfig", "simulate", "use_cpu_cores", "calibrate", "Calibration", "adl_queue", "venues", "reference"]
__version__ = "0.1.0"
