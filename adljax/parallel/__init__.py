"""The parallel plumbing: CPU devices (:mod:`.cpu`), scenarios over devices and hosts (:mod:`.sharding`), and
how many scenarios a device's memory holds at once (:mod:`.chunking`)."""
