"""Studies and their inputs: a study (:mod:`.study`), scenario files (:mod:`.scenario`), book files
(:mod:`.bookfile`), path and population generators (:mod:`.generate`), and running a study into a results
folder chunk by chunk (:mod:`.runner`)."""
