"""How much the slow tests draw, wait and run: a quick share by default, all of it on request.

``ADLJAX_FULL_TESTS=1``:

- ``test_differential`` draws 25 cases a (shape, rules) pair instead of 8 (300 in all);
- ``test_sharding``'s meetings test holds one process back 35 s, past gloo's 30 s set-up limit,
  and the smooth engine's gradient through ``scenario_map`` is compared with one device's;
- ``test_notebooks`` runs each notebook at its own size instead of the tiny one.
"""
import os

FULL = os.environ.get("ADLJAX_FULL_TESTS", "") not in ("", "0")
