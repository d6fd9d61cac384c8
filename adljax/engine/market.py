"""What the stages see of the market in one step of one scenario."""
from __future__ import annotations

from jax import Array

from ..model.pytree import pytree


@pytree
class Market:
    """Per-step market view (one scenario).

    Attributes:
      mark: [A] USD, the mark price of this step (oracle with transient impact).
      prev_mark: [A] USD, the mark of the step before (oracle at step 0).
      depth: [A] USD notional one side of the book absorbs this step.
      adl_start: [] int, this step's pseudo-random first row of the
        ``random_order`` ADL policy (drawn from the simulation key).
    """

    mark: Array
    prev_mark: Array
    depth: Array
    adl_start: Array
