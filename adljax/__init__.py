"""adljax: the liquidation waterfall of perpetual-futures venues, in JAX.

margin check → market liquidation → backstop → auto-deleveraging, over
thousands of price-path scenarios at once. See ``docs/rules.md`` for the
exact rules and the README for a tour.

Importing adljax gives JAX one CPU device per core when nobody chose a
number and JAX has not started (:mod:`adljax.cpu`; ``JAX_NUM_CPU_DEVICES=1``
keeps one), so that scenarios run in parallel on a CPU.
"""
from .cpu import use_cpu_cores

use_cpu_cores()

from . import venues
from .book import Book
from .simulation import simulate
from .calibration import Calibration, calibrate
from .errors import InputError
from .indicator import adl_queue
from .outcome import HISTORY, METRICS, Outcome
from .paths import Paths
from .venue import Params, Rules, Venue
from . import reference

__all__ = ["Book", "Paths", "Venue", "Rules", "Params", "Outcome", "METRICS", "HISTORY",
           "InputError", "simulate", "use_cpu_cores", "calibrate", "Calibration", "adl_queue", "venues", "reference"]
__version__ = "0.1.0"
