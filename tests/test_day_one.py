"""What a Cellpose or StarDist user hits on day one (issue 27): promises the README makes, kept."""

from __future__ import annotations

import sys

import numpy as np
import pytest
import tifffile
from typer.testing import CliRunner

from nucleaizer_tf.cli.main import app

runner = CliRunner()


@pytest.mark.parametrize("missing", ["zarr", "dask"])
def test_large_without_the_dask_extra_is_one_line_naming_the_extra(tmp_path, monkeypatch, missing):
    image = tmp_path / "big.tif"
    tifffile.imwrite(image, np.zeros((256, 256), np.uint8), tile=(128, 128))
    for name in [m for m in sys.modules if m == missing or m.startswith(missing + ".")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, missing, None)  # an import of it now fails as if it were not installed
    result = runner.invoke(app, ["predict", str(image), str(tmp_path / "out"), "--large"])
    assert result.exit_code == 2 and "Traceback" not in result.output, result.output
    errors = [line for line in result.stderr.splitlines() if line.startswith("error")]
    assert errors == [f"error: this needs {missing}, from the optional 'dask' extra: pip install 'nucleaizer-tf[dask]'"]
    assert result.stderr.strip().splitlines()[-1] == errors[0]


def _cli_options() -> set[str]:
    import typer

    found: set[str] = set()

    def walk(command):
        for param in command.params:
            found.update(o for o in (*param.opts, *param.secondary_opts) if o.startswith("--"))
        for sub in getattr(command, "commands", {}).values():
            walk(sub)

    walk(typer.main.get_command(app))
    return found


def test_every_option_the_docs_and_messages_name_exists():
    """README, docs, weights/README and every message in the package and the CLI name only options that
    exist: of a command, or of the script in scripts/ they describe."""
    import re
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    known = _cli_options() | {"--help"} | {"--nworkers", "--nthreads"}  # the last two: dask-worker's own
    for script in (root / "scripts").glob("*.py"):
        known |= set(re.findall(r"add_argument\(\s*\"(--[a-z][a-z0-9-]*)\"", script.read_text()))
    sources = [root / "README.md", root / "docs" / "method.md", root / "weights" / "README.md",
               *(root / "nucleaizer_tf").rglob("*.py"), *(root / "cli").rglob("*.py")]
    named = {}
    for source in sources:
        for option in re.findall(r"(?<![\w-])(--[a-z][a-z0-9-]*)(?![\w])", source.read_text()):
            named.setdefault(option, source.relative_to(root).as_posix())
    missing = {option: where for option, where in named.items() if option not in known}
    assert missing == {}
    assert "--tile" in known  # the default model's tile size, which messages name, is a predict option


def test_a_failed_image_is_named_once(tmp_path):
    images = tmp_path / "images"
    images.mkdir()
    (images / "a.png").write_text("not a png")
    result = runner.invoke(app, ["predict", str(images), str(tmp_path / "out"), "-q"])
    failed = [line for line in result.stderr.splitlines() if line.startswith("failed:")]
    assert failed == [f"failed: {images / 'a.png'}: not a PNG file (its first bytes do not match the format)"]
