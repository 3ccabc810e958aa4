#!/usr/bin/env python3
"""Build the Jupyter notebooks `notebooks/NN_*.ipynb` from their jupytext percent-format sources.

Each notebook's reviewable source is `notebooks/NN_name.py`: `# %%` starts a code cell, `# %% [markdown]`
a markdown cell (its lines commented with `# `). jupytext reads it; this script then strips outputs and
execution counts, gives every cell a fixed id (`nbNN-00`, `nbNN-01`, ...), sets the kernel spec and writes
the `.ipynb`, so every run gives byte-identical files. Edit the `.py`, then

    python scripts/make_notebooks.py            # rewrite notebooks/*.ipynb
    python scripts/make_notebooks.py --check    # exit 1 if a committed notebook differs (used by the tests)

`tests/test_notebooks.py` executes every notebook top to bottom and checks that the committed files are
what this script writes.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

NOTEBOOK_DIR = Path(__file__).resolve().parents[1] / "notebooks"
SOURCE_GLOB = "[0-9][0-9]_*.py"

KERNELSPEC = {"name": "python3", "display_name": "Python 3 (ipykernel)", "language": "python"}


def sources(folder: Path = NOTEBOOK_DIR) -> list[Path]:
    """The notebook sources `NN_*.py`, in name order."""
    return sorted(folder.glob(SOURCE_GLOB))


def build(source: Path) -> str:
    """The `.ipynb` text for one percent-format source."""
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
    return nbformat.writes(nb) + "\n"


def essence(text: str):
    """What the check compares: cell kinds, ids and sources, and the kernel spec (not the JSON layout,
    which another nbformat version may write differently)."""
    nb = json.loads(text)
    cells = [(c["cell_type"], c.get("id"), "".join(c["source"]) if isinstance(c["source"], list) else c["source"])
             for c in nb["cells"]]
    return cells, nb.get("metadata", {}).get("kernelspec")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="only compare; exit 1 when a notebook differs")
    args = parser.parse_args(argv)
    found = sources()
    if not found:
        print(f"no notebook sources ({SOURCE_GLOB}) in {NOTEBOOK_DIR}", file=sys.stderr)
        return 1
    stale = []
    for source in found:
        path = source.with_suffix(".ipynb")
        text = build(source)
        old = path.read_text(encoding="utf-8") if path.exists() else None
        if args.check:
            if old is None or essence(old) != essence(text):
                stale.append(path.name)
        elif old != text:
            stale.append(path.name)
            path.write_text(text, encoding="utf-8")
    if args.check and stale:
        print("out of date (run python scripts/make_notebooks.py):", ", ".join(stale), file=sys.stderr)
        return 1
    print(("differ: " if args.check else "written: ") + (", ".join(stale) or "none"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
