"""The notebooks under notebooks/ run top to bottom in a fresh kernel, and show what they say.

Each is executed with nbclient in the ``python3`` kernel, which ipykernel installs into this
interpreter's prefix (jupyter_client starts it with this interpreter), so it sees the same
packages as the tests; a cell that raises fails the test with that cell's error. The working
directory is the test's temporary directory, so a notebook that wrote into the current directory
or read a file next to itself would show up here. Beyond "no error", each test checks that its
notebook produced its figures and the lines it is there to show.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"
KERNEL_CHECK = "import sys\nprint('kernel prefix:', sys.prefix)"

pytestmark = pytest.mark.slow


def _execute(name: str, tmp_path: Path) -> tuple[nbformat.NotebookNode, float]:
    """Run the notebook (plus one cell that names the kernel's interpreter) and return it executed."""
    nb = nbformat.read(NOTEBOOKS / name, as_version=4)
    assert not any(cell.get("outputs") for cell in nb.cells if cell.cell_type == "code"), (
        f"{name} is committed with outputs; clear them before committing"
    )
    nb.cells.append(nbformat.v4.new_code_cell(KERNEL_CHECK))
    client = NotebookClient(nb, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}})
    started = time.perf_counter()
    client.execute()  # raises CellExecutionError, with the failing cell and its traceback
    seconds = time.perf_counter() - started
    print(f"{name}: executed in {seconds:.1f} s")
    kernel = nb.cells.pop()
    assert _text([kernel]).strip() == f"kernel prefix: {sys.prefix}", "the notebook ran in another interpreter's kernel"
    return nb, seconds


def _outputs(nb: nbformat.NotebookNode) -> list[nbformat.NotebookNode]:
    return [out for cell in nb.cells if cell.cell_type == "code" for out in cell.get("outputs", [])]


def _text(cells: list[nbformat.NotebookNode]) -> str:
    """Everything the cells printed (streams) and the plain text of their results."""
    parts = []
    for cell in cells:
        for out in cell.get("outputs", []):
            if out.output_type == "stream":
                parts.append(out.text)
            elif "text/plain" in out.get("data", {}):
                parts.append(out.data["text/plain"])
    return "\n".join(parts)


def _images(nb: nbformat.NotebookNode, mime: str) -> int:
    return sum(mime in out.get("data", {}) for out in _outputs(nb))


@pytest.mark.timeout(300)
def test_quickstart(tmp_path: Path) -> None:
    nb, _ = _execute("quickstart.ipynb", tmp_path)
    text = _text(nb.cells)
    assert "'completed': 100" in text  # hpo.optimize ran its 100 trials
    assert "ray sweep: 30 completed of 30 trials, 2 workers started, 0 died" in text
    assert "best at full fidelity (z = 1)" in text
    assert _images(nb, "image/png") >= 1
    assert not list(tmp_path.iterdir()), "the notebook wrote into its working directory"


@pytest.mark.timeout(600)
def test_mutransfer(tmp_path: Path) -> None:
    nb, _ = _execute("mutransfer.ipynb", tmp_path)
    text = _text(nb.cells)
    assert "36 runs of 100 steps" in text
    assert " SP drift of the best log2 lr, width 32 -> 128:" in text
    assert "muP drift of the best log2 lr, width 32 -> 128:" in text
    # the coordinate check separates the two parameterizations by a wide margin at any seed
    assert "muP activations flat in width (max |slope| < 0.5): True" in text
    assert "SP activations grow with width (max slope > 1): True" in text
    assert _images(nb, "image/png") >= 2
    assert not list(tmp_path.iterdir()), "the notebook wrote into its working directory"


@pytest.mark.timeout(300)
def test_scaling_laws(tmp_path: Path) -> None:
    nb, _ = _execute("scaling_laws.ipynb", tmp_path)
    text = _text(nb.cells)
    for symbol in ("alpha", "beta", "gamma"):  # the true exponents lie in their 95% intervals
        assert f"{symbol}: true " in text
    assert text.count("inside: True") >= 5 and "inside: False" not in text
    assert "mean relative error" in text
    assert "extrapolation: N = 1e+09 is 3.3x above the largest fitted N" in text
    assert "steplaw" in text and "deepseek" in text
    assert _images(nb, "image/svg+xml") >= 1  # plot_fit
    assert _images(nb, "image/png") >= 1
    assert not list(tmp_path.iterdir()), "the notebook wrote into its working directory"
