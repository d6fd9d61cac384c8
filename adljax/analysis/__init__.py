"""What is made of a simulation's outputs: the metrics' statistics (:mod:`.metrics`), differentiable objectives
(:mod:`.objectives`), calibration by gradient (:mod:`.calibration`), figures (:mod:`.plots`), the ADL queue
indicator (:mod:`.indicator`) and a book's inspection (:mod:`.inspection`)."""
