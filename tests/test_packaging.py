"""The distribution installs one top-level import package, `nucleaizer_tf`, with the CLI and the shipped
model inside it; setup.cfg's explicit package list must name every package of the source tree."""

import configparser
import importlib
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def _setup_cfg():
    cfg = configparser.ConfigParser()
    cfg.read(REPO / "setup.cfg")
    return cfg


def _listed(cfg, key):
    return [line.strip() for line in cfg["options"][key].strip().splitlines() if line.strip()]


def test_every_source_package_is_listed_and_mapped():
    cfg = _setup_cfg()
    mapping = dict(line.split(" = ") for line in _listed(cfg, "package_dir"))
    assert mapping == {"nucleaizer_tf": "nucleaizer_tf", "nucleaizer_tf.cli": "cli", "nucleaizer_tf.weights": "weights",
                       "nucleaizer_tf.examples": "examples", "nucleaizer_tf.docs": "docs"}
    found = {"nucleaizer_tf.cli", "nucleaizer_tf.weights", "nucleaizer_tf.examples", "nucleaizer_tf.docs"}
    for init in (REPO / "nucleaizer_tf").rglob("__init__.py"):
        found.add(".".join(init.parent.relative_to(REPO).parts))
    assert sorted(_listed(cfg, "packages")) == sorted(found)


def test_console_script_and_module_entry_point_run_the_same_app():
    cfg = _setup_cfg()
    assert cfg["options.entry_points"]["console_scripts"].strip() == "nucleaizer-tf = nucleaizer_tf.cli.main:main"
    done = subprocess.run([sys.executable, "-m", "nucleaizer_tf", "--version"], capture_output=True, text=True,
                          cwd=REPO.parent)
    from nucleaizer_tf import __version__

    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == f"nucleaizer-tf {__version__}"


def test_no_top_level_cli_module_is_importable_from_outside_the_clone(tmp_path):
    done = subprocess.run([sys.executable, "-c", "import cli"], capture_output=True, text=True, cwd=tmp_path)
    assert done.returncode != 0 and "No module named 'cli'" in done.stderr


def test_shipped_model_is_package_data():
    weights = importlib.import_module("nucleaizer_tf.weights")
    folder = Path(weights.__file__).parent / "default"
    assert (folder / "manifest.json").is_file() and (folder / "default.weights.h5").is_file()
    data = _setup_cfg()["options.package_data"]["nucleaizer_tf.weights"]
    assert "default/manifest.json" in data and "default/*.weights.h5" in data


def test_napari_manifest_and_sample_images_are_package_data():
    cfg = _setup_cfg()
    assert cfg["options.entry_points"]["napari.manifest"].strip() == "nucleaizer-tf = nucleaizer_tf.napari:napari.yaml"
    assert cfg["options.package_data"]["nucleaizer_tf.napari"].split() == ["napari.yaml"]
    assert (REPO / "nucleaizer_tf" / "napari" / "napari.yaml").is_file()
    examples = importlib.import_module("nucleaizer_tf.examples")
    assert sorted(p.name for p in examples.IMAGES.glob("*.png")) == ["brightfield.png", "fluo_dense.png", "fluo_sparse.png"]
    assert cfg["options.package_data"]["nucleaizer_tf.examples"].split() == ["images/*.png", "masks/*.tiff"]


def test_the_method_description_the_help_refers_to_is_installed_and_info_says_where():
    from typer.testing import CliRunner

    from nucleaizer_tf.cli.main import app
    from nucleaizer_tf.docs import METHOD

    assert METHOD == REPO / "docs" / "method.md" and METHOD.is_file()
    assert "method.md" in _setup_cfg()["options.package_data"]["nucleaizer_tf.docs"]
    result = CliRunner().invoke(app, ["info"], env={"COLUMNS": "300"})
    assert result.exit_code == 0 and str(METHOD) in result.stdout
