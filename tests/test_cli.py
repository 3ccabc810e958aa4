"""The `nucleaizer-tf` command as a user runs it: help, info, evaluate, and one-line errors."""

import csv
import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from nucleaizer_tf.cli.main import app
from nucleaizer_tf.io import write_labels

REPO = Path(__file__).resolve().parents[1]
EXAMPLES = REPO / "examples"
runner = CliRunner()


def _run(*args):
    result = runner.invoke(app, [str(a) for a in args])
    return result.exit_code, result.stdout, result.stderr


def _assert_clean_error(code, out, err, *needles):
    assert code == 2
    assert "Traceback" not in out + err
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    for needle in needles:
        assert needle in lines[0]


def test_help_lists_the_commands():
    code, out, _ = _run("--help")
    assert code == 0
    for command in ("info", "evaluate"):
        assert command in out


def test_console_script_is_installed_and_runs():
    script = Path(sys.executable).with_name("nucleaizer-tf")
    if not script.exists():
        pytest.skip("console script not installed in this environment (install with pip install -e .)")
    done = subprocess.run([str(script), "evaluate", EXAMPLES / "masks", EXAMPLES / "masks", "-q"], capture_output=True, text=True)
    assert done.returncode == 0
    assert done.stdout.startswith("DSB score 1.0000 over 3 images")
    assert done.stderr == ""  # no TensorFlow banner: evaluate does not import TensorFlow


def test_info_reports_versions_devices_and_threads():
    code, out, _ = _run("info", "--json")
    assert code == 0
    report = json.loads(out)
    assert report["versions"]["tensorflow"] != "not installed"
    assert any(d["type"] == "CPU" for d in report["devices"])
    assert set(report["threads"]) == {"intra_op", "inter_op"}


def test_evaluate_shared_masks_against_themselves_is_one(dsb_train):
    code, out, _ = _run("evaluate", dsb_train / "masks", dsb_train / "masks")
    assert code == 0
    assert out.splitlines()[-1].startswith("DSB score 1.0000 over 15 images")
    assert len(out.splitlines()) == 1 + 15 + 1  # header, one row per image, summary


def test_evaluate_examples_writes_json_and_csv(tmp_path):
    code, out, _ = _run("evaluate", EXAMPLES / "masks", EXAMPLES / "baseline",
                        "--json", tmp_path / "s.json", "--csv", tmp_path / "s.csv")
    assert code == 0
    summary = json.loads((tmp_path / "s.json").read_text())
    assert {"dsb", "f1", "mean_matched_iou", "n_images", "tp", "fp", "fn", "images"} <= set(summary)
    assert summary["n_images"] == 3 and len(summary["images"]) == 3
    per_image = [img["dsb"] for img in summary["images"]]
    assert summary["dsb"] == pytest.approx(np.mean(per_image))
    assert f"DSB score {summary['dsb']:.4f} over 3 images" in out
    rows = list(csv.DictReader(open(tmp_path / "s.csv")))
    assert [r["name"] for r in rows] == ["brightfield", "fluo_dense", "fluo_sparse"]
    assert float(rows[0]["dsb"]) == pytest.approx(per_image[0])
    assert "p0.95" in rows[0]


def _label_folder(folder, **images):
    folder.mkdir(parents=True, exist_ok=True)
    for stem, labels in images.items():
        write_labels(folder / f"{stem}.tiff", labels)
    return folder


def test_evaluate_missing_predictions(tmp_path):
    obj = np.zeros((8, 8), np.uint16)
    obj[2:5, 2:5] = 1
    gt = _label_folder(tmp_path / "gt", a=obj, b=obj)
    pred = _label_folder(tmp_path / "pred", a=obj)
    _assert_clean_error(*_run("evaluate", gt, pred), "ground-truth", "without a prediction", "b")
    code, out, _ = _run("evaluate", gt, pred, "--missing-as-empty", "-q")
    assert code == 0 and out.startswith("DSB score 0.5000 over 2 images")  # a: 1.0, b (missing): 0.0


def test_evaluate_errors_are_one_line(tmp_path):
    _assert_clean_error(*_run("evaluate", tmp_path / "nope", EXAMPLES / "masks"), "nope", "does not exist")
    bad = tmp_path / "bad"
    shutil.copytree(EXAMPLES / "masks", bad)
    (bad / "fluo_dense.tiff").write_bytes(b"II*\x00garbage")
    _assert_clean_error(*_run("evaluate", EXAMPLES / "masks", bad), "fluo_dense.tiff", "cannot decode TIFF")
    small = _label_folder(tmp_path / "small", brightfield=np.zeros((4, 4)), fluo_dense=np.zeros((4, 4)),
                          fluo_sparse=np.zeros((4, 4)))
    _assert_clean_error(*_run("evaluate", EXAMPLES / "masks", small), "shape")
