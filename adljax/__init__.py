"""adljax: the liquidation waterfall of perpetual-futures venues, in JAX.

margin check → market liquidation → backstop → auto-deleveraging, over
thousands of price-path scenarios at once. See ``docs/rules.md`` for the
exact rules and the README for a tour.
"""
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
           "InputError", "simulate", "calibrate", "Calibration", "adl_queue", "venues", "reference"]
__version__ = "0.1.0"
