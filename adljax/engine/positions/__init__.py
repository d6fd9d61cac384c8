"""The position engine: the waterfall's stages on a list of positions (:class:`adljax.PositionBook`).

:func:`run` is the compiled core (:mod:`adljax.engine.positions.waterfall`); :func:`adljax.simulate`
calls it for a position book.
"""
from .waterfall import run

__all__ = ["run"]
