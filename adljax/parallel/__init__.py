"""The parallel plumbing: CPU devices (:mod:`.cpu`), scenarios over devices and hosts (:mod:`.sharding`), and
a run's plan (:mod:`.chunking`: how many scenarios a device's memory holds at once, blocks, a position
book's capacity)."""
