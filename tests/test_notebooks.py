"""The notebooks in notebooks/ run top to bottom, at tiny sizes, so that they never rot.

Each notebook reads ``ADLJAX_NOTEBOOK_SMALL``: with "1", which the test sets unless
``ADLJAX_FULL_TESTS=1`` (``sizes.py``), it runs a few scenarios of a few dozen accounts. The test
executes every cell in a fresh kernel of *this* Python (a ``python3`` kernelspec written for
``sys.executable`` and put first on ``JUPYTER_PATH``, so that no other Python's kernel can stand
in for it), and fails on any cell error. The committed notebooks carry the outputs of a moderate
run; a second test checks that every code cell of the committed files was run and none ended in
an error.

Needs nbclient, nbformat and ipykernel (the ``test`` extra); skipped without them.
"""
from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

from sizes import FULL

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")
kernelspec = pytest.importorskip("ipykernel.kernelspec")

NOTEBOOK_DIR = Path(__file__).resolve().parents[1] / "notebooks"
NOTEBOOKS = sorted(NOTEBOOK_DIR.glob("*.ipynb"))
CHECK = "import sys; print('KERNEL_PREFIX=' + sys.prefix)"


def test_there_are_notebooks():
    assert {p.name for p in NOTEBOOKS} >= {"tail_risk.ipynb", "venue_policies.ipynb", "calibration.ipynb"}


@pytest.fixture(scope="module")
def kernel_env(tmp_path_factory):
    """A ``python3`` kernelspec running this interpreter, first on JUPYTER_PATH; small sizes unless FULL."""
    root = tmp_path_factory.mktemp("jupyter")
    kernelspec.write_kernel_spec(path=root / "kernels" / "python3")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("JUPYTER_PATH", os.pathsep.join([str(root), os.environ.get("JUPYTER_PATH", "")]).rstrip(os.pathsep))
        mp.setenv("ADLJAX_NOTEBOOK_SMALL", "0" if FULL else "1")
        mp.setenv("JAX_PLATFORMS", os.environ.get("JAX_PLATFORMS", "cpu"))
        mp.setenv("MPLBACKEND", "module://matplotlib_inline.backend_inline")
        yield


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_runs(path, kernel_env):
    nb = nbformat.read(path, as_version=4)
    nb.cells.insert(0, nbformat.v4.new_code_cell(CHECK))
    client = nbclient.NotebookClient(nb, kernel_name="python3", timeout=600,
                                     resources={"metadata": {"path": str(NOTEBOOK_DIR)}})
    client.execute()   # raises CellExecutionError, with the cell and its traceback, on any error
    printed = "".join(o.get("text", "") for o in nb.cells[0].outputs if o.output_type == "stream")
    assert f"KERNEL_PREFIX={sys.prefix}" in printed, f"the kernel ran another Python: {printed!r}"
    for cell in nb.cells:
        for out in cell.get("outputs", []):
            assert out.output_type != "error", f"{path.name}: {out.get('ename')}: {out.get('evalue')}"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_committed_with_outputs(path):
    nb = nbformat.read(path, as_version=4)
    nbformat.validate(nb)
    code = [c for c in nb.cells if c.cell_type == "code" and c.source.strip()]
    assert code, f"{path.name}: no code cells"
    not_run = [i for i, c in enumerate(code) if c.execution_count is None]
    assert not not_run, f"{path.name}: code cells {not_run} were not run; commit the notebook with its outputs"
    assert [c.execution_count for c in code] == list(range(1, len(code) + 1)), \
        f"{path.name}: cells were not run once each, top to bottom"
    errors = [o for c in code for o in c.outputs if o.output_type == "error"]
    assert not errors, f"{path.name}: a committed cell ended in {errors[0].ename}"
    assert any("image/png" in o.get("data", {}) for c in code for o in c.outputs), f"{path.name}: no figures"
