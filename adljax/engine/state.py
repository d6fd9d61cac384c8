"""What each stage of a step hands the next: the book and its margin values at the step's mark.

Both engines compose a step from stages of one signature,
``stage(state, market, params, rules, config, ...) -> (state, report)`` (one scenario; the step maps it over
the batch and skips it for the batch when no scenario needs it, :func:`adljax.engine.skip.stage_if`), where
the trailing arguments are what a stage needs beyond the state: the position engine's
:class:`~adljax.model.layout.Layout` (the batch's), the margin check's liquidatable rows for liquidation (the
scenario's), the dense engine's ADL queue rows (the batch's).
"""
from __future__ import annotations

from typing import Any

from ..model.pytree import pytree
from .stages.margin import Margin


@pytree
class State:
    """The book and its margin values, one scenario's in a stage, the batch's between stages (a leading axis S
    on every leaf).

    Attributes:
      book: the dense engine's :class:`~adljax.Book`, or the position engine's book values
        (:meth:`adljax.PositionBook.values`: the layout is the batch's and travels beside the state).
      margin: :class:`~adljax.engine.stages.margin.Margin` ([R] each) of ``book`` at the step's mark, as the
        stage leaves it; ADL, the last stage, leaves the margin it was given (nothing after it reads it).
    """

    book: Any
    margin: Margin
