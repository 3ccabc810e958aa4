"""The Jupyter notebooks in notebooks/: built from their jupytext percent-format sources
(notebooks/NN_*.py, by scripts/make_notebooks.py), committed without outputs, in sync with those sources,
and executed top to bottom (headless, with this interpreter) so that a broken API call fails the tests."""

import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
NOTEBOOK_DIR = REPO / "notebooks"
NOTEBOOKS = sorted(NOTEBOOK_DIR.glob("*.ipynb"))
SOURCES = sorted(NOTEBOOK_DIR.glob("[0-9][0-9]_*.py"))  # the percent-format sources of the notebooks
EXPECTED = ["01_quickstart.ipynb", "02_legacy_maskrcnn.ipynb", "03_train_and_adapt.ipynb"]

#: wall-clock limit for one whole notebook (seconds); CI has 2 CPU cores
NOTEBOOK_LIMIT = float(os.environ.get("NUCLEAIZER_NOTEBOOK_LIMIT", 600))
#: set to a folder to keep the executed notebooks (with outputs) for a look
KEEP_EXECUTED = os.environ.get("NUCLEAIZER_NOTEBOOK_OUT")
KERNEL_NAME = "nucleaizer-tf-tests"

_ids = [p.stem for p in NOTEBOOKS]
_ANSI = re.compile(r"\x1b\[[0-9;]*m")  # colour codes in IPython tracebacks


def test_every_notebook_is_present():
    assert [p.name for p in NOTEBOOKS] == EXPECTED


def test_every_source_has_its_notebook_and_vice_versa():
    sources = {p.stem for p in SOURCES}
    notebooks = {p.stem for p in NOTEBOOKS}
    assert sources, "no notebook sources notebooks/NN_*.py"
    assert sorted(notebooks - sources) == [], "notebooks without a notebooks/NN_*.py source"
    assert sorted(sources - notebooks) == [], "sources without a built notebook: run python scripts/make_notebooks.py"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=_ids)
def test_committed_notebook_has_no_outputs(path):
    nb = json.loads(path.read_text())
    assert nb["nbformat"] == 4
    for i, cell in enumerate(nb["cells"]):
        if cell["cell_type"] == "code":
            assert cell.get("outputs") == [], f"{path.name} cell {i} has outputs: strip them"
            assert cell.get("execution_count") is None, f"{path.name} cell {i} has an execution count"
    assert "widgets" not in nb["metadata"]


def test_notebooks_match_their_generator():
    pytest.importorskip("nbformat", reason="needs the [notebooks] extra")
    pytest.importorskip("jupytext", reason="needs the [notebooks] extra")
    done = subprocess.run([sys.executable, str(REPO / "scripts" / "make_notebooks.py"), "--check"],
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stderr + done.stdout


def _kernel_manager(folder: Path):
    """A kernel manager whose only kernel spec runs ipykernel with *this* interpreter (not whatever
    `python3` kernel a user or system Jupyter happens to have registered)."""
    from jupyter_client.kernelspec import KernelSpecManager
    from jupyter_client.manager import AsyncKernelManager

    spec_dir = folder / KERNEL_NAME
    spec_dir.mkdir(parents=True)
    (spec_dir / "kernel.json").write_text(json.dumps({
        "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": f"Python ({sys.prefix})",
        "language": "python",
    }))
    specs = KernelSpecManager(kernel_dirs=[str(folder)], ensure_native_kernel=False)
    return AsyncKernelManager(kernel_name=KERNEL_NAME, kernel_spec_manager=specs)


@pytest.mark.parametrize("path", NOTEBOOKS, ids=_ids)
def test_notebook_executes(path, tmp_path):
    nbformat = pytest.importorskip("nbformat", reason="needs the [notebooks] extra")
    nbclient = pytest.importorskip("nbclient", reason="needs the [notebooks] extra")
    pytest.importorskip("ipykernel", reason="needs the [notebooks] extra")
    pytest.importorskip("matplotlib", reason="needs the [notebooks] extra")
    from nbclient.exceptions import CellExecutionError, CellTimeoutError

    nb = nbformat.read(path, as_version=4)
    # A first cell of our own proves the kernel is this interpreter (same venv as the tests).
    probe = nbformat.v4.new_code_cell(f"import sys\nassert sys.prefix == {sys.prefix!r}, sys.prefix")
    probe["id"] = "interpreter-probe"
    nb.cells.insert(0, probe)

    workdir = tmp_path / "cwd"
    workdir.mkdir()
    env = {k: v for k, v in os.environ.items() if k != "MPLBACKEND"}  # keep ipykernel's inline figures
    env["TF_CPP_MIN_LOG_LEVEL"] = "2"
    env["NUCLEAIZER_NOTEBOOK_QUICK"] = "1"  # the notebooks' own switch: the same cells, shorter training
    env["TMPDIR"] = str(workdir)  # scratch files (notebook 2 writes ~300 MB) stay under pytest's tmp_path
    deadline = time.monotonic() + NOTEBOOK_LIMIT
    client = nbclient.NotebookClient(
        nb,
        km=_kernel_manager(tmp_path / "kernels"),
        timeout_func=lambda cell: max(1, int(deadline - time.monotonic())),  # whole-notebook budget
        resources={"metadata": {"path": str(workdir)}},
    )
    start = time.monotonic()
    try:
        client.execute(cleanup_kc=True, env=env)
    except CellTimeoutError:
        pytest.fail(f"{path.name} ran past its {NOTEBOOK_LIMIT:.0f} s limit", pytrace=False)
    except CellExecutionError as exc:
        pytest.fail(f"{path.name} failed:\n{_ANSI.sub('', str(exc))}", pytrace=False)
    finally:
        if client.km is not None and client.km.has_kernel:
            client._cleanup_kernel()
    print(f"{path.name}: {time.monotonic() - start:.0f} s")
    if KEEP_EXECUTED:
        Path(KEEP_EXECUTED).mkdir(parents=True, exist_ok=True)
        nbformat.write(nb, Path(KEEP_EXECUTED) / path.name)

    figures = sum("image/png" in out.get("data", {}) for cell in nb.cells if cell.cell_type == "code"
                  for out in cell.outputs)
    assert figures >= 1, f"{path.name} showed no figure"
