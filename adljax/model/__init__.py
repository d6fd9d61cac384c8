"""The public nouns: a :class:`Book` of accounts, :class:`Paths` of prices, a :class:`Venue`'s rules and
numbers (and its presets in :mod:`adljax.venues`), the :class:`Outcome` of a simulation, and the
:class:`InputError` every bad input raises."""
