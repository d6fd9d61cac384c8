"""The waterfall's stages, in the order they run each step.

Each stage is a pure function over one scenario's :class:`~adljax.Book`:
``run(book, market, params[, rules]) -> (book, report)``; a stage that reads
a number of the engine's :class:`~adljax.engine.config.EngineConfig` takes it
as its ``config`` argument (static). The engine maps them over the scenario batch.
"""
from . import margin, liquidation, backstop, adl

__all__ = ["margin", "liquidation", "backstop", "adl"]
