#!/usr/bin/env python3
"""Build the Jupyter notebooks `notebooks/NN_*.ipynb` from their jupytext percent-format sources.

Each notebook's reviewable source is `notebooks/NN_name.py`: `# %%` starts a code cell, `# %% [markdown]`
a markdown cell (its lines commented with `# `). jupytext reads it; this script then gives every cell a
fixed id (`nbNN-00`, `nbNN-01`, ...), sets the kernel spec, executes the notebook top to bottom (headless,
with this interpreter, in a scratch folder) and writes the `.ipynb` with its outputs, so a reader on a
code host sees the figures. The notebook's metadata records the SHA-256 of the source it was executed
from (`nucleaizer_tf.executed_source`): outputs are current exactly when that matches the source. Edit
the `.py`, then

    python scripts/make_notebooks.py            # re-execute and rewrite the notebooks whose source changed
    python scripts/make_notebooks.py --check    # exit 1 if a committed notebook's cells or outputs are stale

`tests/test_notebooks.py` runs the check, executes every notebook again (its quick variant) and compares
the kinds of output of every cell with the stored ones.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
import tempfile
import time
from pathlib import Path

NOTEBOOK_DIR = Path(__file__).resolve().parents[1] / "notebooks"
SOURCE_GLOB = "[0-9][0-9]_*.py"

KERNELSPEC = {"name": "python3", "display_name": "Python 3 (ipykernel)", "language": "python"}
KERNEL_NAME = "nucleaizer-tf-notebooks"
#: stored figures larger than this (bytes of base64 PNG) are kept as JPEG: noisy microscopy panels
#: compress badly as PNG (a 2×4 grid of overlays: 1.9 MB)
LARGEST_PNG = 300_000
#: the notebook metadata key holding the SHA-256 of the source its outputs come from
EXECUTED_SOURCE = "executed_source"


def sources(folder: Path = NOTEBOOK_DIR) -> list[Path]:
    """The notebook sources `NN_*.py`, in name order."""
    return sorted(folder.glob(SOURCE_GLOB))


def source_digest(source: Path) -> str:
    """SHA-256 of a notebook source, as recorded in the executed notebook."""
    return hashlib.sha256(source.read_bytes()).hexdigest()


def build(source: Path):
    """The notebook (an nbformat node, not executed) for one percent-format source."""
    import jupytext
    import nbformat

    nb = jupytext.reads(source.read_text(encoding="utf-8"), fmt="py:percent")
    nb.metadata = {"kernelspec": dict(KERNELSPEC), "language_info": {"name": "python"}}
    stem = source.name.split("_")[0]
    for i, cell in enumerate(nb.cells):
        cell["id"] = f"nb{stem}-{i:02d}"
        cell["metadata"] = {}
        if cell["cell_type"] == "code":
            cell["outputs"] = []
            cell["execution_count"] = None
    nbformat.validate(nb)
    return nb


def kernel_manager(folder: Path):
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


def execute(nb, workdir: Path, *, quick: bool = False, limit: float = 3600.0) -> float:
    """Run `nb` top to bottom in place (cwd and TMPDIR `workdir`); the seconds it took. Raises nbclient's
    CellExecutionError / CellTimeoutError (`limit`: seconds for the whole notebook)."""
    import nbclient

    env = {k: v for k, v in os.environ.items() if k != "MPLBACKEND"}  # keep ipykernel's inline figures
    env["TF_CPP_MIN_LOG_LEVEL"] = "2"
    env["TMPDIR"] = str(workdir)  # scratch files (notebook 2 writes ~300 MB) stay in workdir
    env.pop("NUCLEAIZER_NOTEBOOK_QUICK", None)
    if quick:
        env["NUCLEAIZER_NOTEBOOK_QUICK"] = "1"  # the notebooks' own switch: the same cells, shorter training
    deadline = time.monotonic() + limit
    client = nbclient.NotebookClient(nb, km=kernel_manager(workdir / ".kernels"),
                                     timeout_func=lambda cell: max(1, int(deadline - time.monotonic())),
                                     resources={"metadata": {"path": str(workdir)}})
    start = time.monotonic()
    try:
        client.execute(cleanup_kc=True, env=env)
    finally:
        if client.km is not None and client.km.has_kernel:
            client._cleanup_kernel()
    return time.monotonic() - start


def output_kinds(nb) -> list[list[str]]:
    """Per code cell, the kinds of its outputs (``stream:stdout``, ``display_data:image/png`` ...), stderr
    left out (library warnings come and go)."""
    kinds = []
    for cell in nb["cells"]:
        if cell["cell_type"] != "code":
            continue
        found = set()
        for out in cell.get("outputs", []):
            if out["output_type"] == "stream":
                if out.get("name") != "stderr":
                    found.add(f"stream:{out['name']}")
            elif out["output_type"] == "error":
                found.add("error")
            else:  # a figure stored as PNG or as JPEG (`smaller_figures`) is the same kind
                found.update(f"{out['output_type']}:{'image' if mime.startswith('image/') else mime}"
                             for mime in out.get("data", {}))
        kinds.append(sorted(found))
    return kinds


def smaller_figures(nb) -> None:
    """Re-encode the large PNG figures of `nb`'s outputs as JPEG (quality 85), in place."""
    import base64
    import io

    from PIL import Image

    for cell in nb.cells:
        for out in cell.get("outputs", []):
            data = out.get("data", {})
            if len(data.get("image/png", "")) > LARGEST_PNG:
                image = Image.open(io.BytesIO(base64.b64decode(data["image/png"]))).convert("RGB")
                buffer = io.BytesIO()
                image.save(buffer, format="JPEG", quality=85)
                del data["image/png"]
                data["image/jpeg"] = base64.b64encode(buffer.getvalue()).decode("ascii")


def executed(source: Path) -> str:
    """The `.ipynb` text of `source`, executed (full variant) with its outputs."""
    import nbformat

    nb = build(source)
    with tempfile.TemporaryDirectory() as scratch:
        seconds = execute(nb, Path(scratch))
    print(f"{source.name}: executed in {seconds:.0f} s", flush=True)
    smaller_figures(nb)
    for cell in nb.cells:
        cell["metadata"] = {}  # nbclient's timing records would change every run
    nb.metadata = {"kernelspec": dict(KERNELSPEC), "language_info": {"name": "python"},
                   "nucleaizer_tf": {EXECUTED_SOURCE: source_digest(source)}}
    nbformat.validate(nb)
    return nbformat.writes(nb) + "\n"


def essence(nb: dict):
    """What the check compares: cell kinds, ids and sources, and the kernel spec (not the JSON layout,
    which another nbformat version may write differently)."""
    cells = [(c["cell_type"], c.get("id"), "".join(c["source"]) if isinstance(c["source"], list) else c["source"])
             for c in nb["cells"]]
    return cells, nb.get("metadata", {}).get("kernelspec")


def is_current(source: Path) -> bool:
    """Whether the committed notebook of `source` has its cells and was executed from this very source."""
    path = source.with_suffix(".ipynb")
    if not path.exists():
        return False
    old = json.loads(path.read_text(encoding="utf-8"))
    ran = old.get("metadata", {}).get("nucleaizer_tf", {}).get(EXECUTED_SOURCE)
    return ran == source_digest(source) and essence(old) == essence(json.loads(json.dumps(build(source))))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="only compare; exit 1 when a notebook is stale")
    parser.add_argument("--force", action="store_true", help="re-execute every notebook, also the current ones")
    args = parser.parse_args(argv)
    found = sources()
    if not found:
        print(f"no notebook sources ({SOURCE_GLOB}) in {NOTEBOOK_DIR}", file=sys.stderr)
        return 1
    stale = [source for source in found if args.force or not is_current(source)]
    if args.check:
        if stale:
            print("out of date (run python scripts/make_notebooks.py):",
                  ", ".join(s.with_suffix(".ipynb").name for s in stale), file=sys.stderr)
            return 1
        print("all notebooks current")
        return 0
    for source in stale:
        text = executed(source)
        path = source.with_suffix(".ipynb")
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(text, encoding="utf-8")
        tmp.replace(path)
    print("written: " + (", ".join(s.with_suffix(".ipynb").name for s in stale) or "none"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
