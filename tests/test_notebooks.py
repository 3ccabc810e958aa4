"""The Jupyter notebooks in notebooks/: built from their jupytext percent-format sources
(notebooks/NN_*.py, by scripts/make_notebooks.py), committed executed (a reader on a code host sees the
figures) from exactly those sources, and executed again top to bottom (headless, with this interpreter)
so that a broken API call fails the tests and a cell whose stored outputs no longer match what it shows
is caught."""

import json
import os
import re
import subprocess
import sys
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
def test_committed_notebook_is_stored_executed_with_figures(path):
    nb = json.loads(path.read_text())
    assert nb["nbformat"] == 4
    counts = [cell.get("execution_count") for cell in nb["cells"] if cell["cell_type"] == "code"]
    assert counts == list(range(1, len(counts) + 1)), f"{path.name}: not executed top to bottom in one run"
    outputs = [out for cell in nb["cells"] if cell["cell_type"] == "code" for out in cell["outputs"]]
    assert not [out for out in outputs if out["output_type"] == "error"], f"{path.name}: a stored error"
    assert any(mime.startswith("image/") for out in outputs for mime in out.get("data", {})), \
        f"{path.name}: no stored figure"
    stderr = "".join("".join(out["text"]) for out in outputs if out["output_type"] == "stream" and out["name"] == "stderr")
    for chatter in ("cuInit", "oneDNN custom operations", "absl::InitializeLog"):  # TensorFlow's start-up messages
        assert chatter not in stderr, f"{path.name}: TensorFlow's start-up messages are stored ({chatter})"
    assert "widgets" not in nb["metadata"]


def test_notebooks_match_their_generator():
    pytest.importorskip("nbformat", reason="needs the [notebooks] extra")
    pytest.importorskip("jupytext", reason="needs the [notebooks] extra")
    done = subprocess.run([sys.executable, str(REPO / "scripts" / "make_notebooks.py"), "--check"],
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stderr + done.stdout


def _generator():
    """scripts/make_notebooks.py as a module: the one notebook builder and executor."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("make_notebooks", REPO / "scripts" / "make_notebooks.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("path", NOTEBOOKS, ids=_ids)
def test_notebook_executes(path, tmp_path):
    nbformat = pytest.importorskip("nbformat", reason="needs the [notebooks] extra")
    pytest.importorskip("nbclient", reason="needs the [notebooks] extra")
    pytest.importorskip("ipykernel", reason="needs the [notebooks] extra")
    pytest.importorskip("matplotlib", reason="needs the [notebooks] extra")
    from nbclient.exceptions import CellExecutionError, CellTimeoutError

    generator = _generator()
    nb = nbformat.read(path, as_version=4)
    stored = generator.output_kinds(nb)
    for cell in nb.cells:
        if cell.cell_type == "code":
            cell.outputs, cell.execution_count = [], None
    # A first cell of our own proves the kernel is this interpreter (same venv as the tests).
    probe = nbformat.v4.new_code_cell(f"import sys\nassert sys.prefix == {sys.prefix!r}, sys.prefix")
    probe["id"] = "interpreter-probe"
    nb.cells.insert(0, probe)

    workdir = tmp_path / "cwd"
    workdir.mkdir()
    try:
        seconds = generator.execute(nb, workdir, quick=True, limit=NOTEBOOK_LIMIT)
    except CellTimeoutError:
        pytest.fail(f"{path.name} ran past its {NOTEBOOK_LIMIT:.0f} s limit", pytrace=False)
    except CellExecutionError as exc:
        pytest.fail(f"{path.name} failed:\n{_ANSI.sub('', str(exc))}", pytrace=False)
    print(f"{path.name}: {seconds:.0f} s")
    if KEEP_EXECUTED:
        Path(KEEP_EXECUTED).mkdir(parents=True, exist_ok=True)
        nbformat.write(nb, Path(KEEP_EXECUTED) / path.name)

    fresh = generator.output_kinds(nb)[1:]  # without the probe
    changed = [i for i, (old, new) in enumerate(zip(stored, fresh)) if old != new]
    assert not changed, (f"{path.name}: code cells {changed} now show {[fresh[i] for i in changed]}, the stored "
                         f"notebook {[stored[i] for i in changed]}: run python scripts/make_notebooks.py --force")
    figures = sum("image/png" in out.get("data", {}) for cell in nb.cells if cell.cell_type == "code"
                  for out in cell.outputs)
    assert figures >= 1, f"{path.name} showed no figure"
