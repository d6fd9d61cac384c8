"""The fast engine: the waterfall's stages (:mod:`.stages`), the step that composes them and the scan over
time (:mod:`.waterfall`), and :func:`adljax.simulate`, the driver that checks inputs and runs the compiled
engine in chunks (:mod:`.simulation`); :class:`.config.EngineConfig`, the static numbers that shape the
compiled program (block size, gathered-row limits, ...)."""
