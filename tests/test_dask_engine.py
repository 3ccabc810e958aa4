"""`predict --engine dask`: the same files as the local engine, bad images and lost workers survived."""

from __future__ import annotations

import json
import os
import signal

import numpy as np
import pytest

distributed = pytest.importorskip("distributed", reason="the Dask engine needs dask[distributed] (the test extra)")

from nucleaizer_tf.errors import NucleaizerError  # noqa: E402
from nucleaizer_tf.io import write_rgb  # noqa: E402
from nucleaizer_tf.pipelines.dask_engine import ModelRequest, dask_client, run_on_dask  # noqa: E402
from nucleaizer_tf.pipelines.predict import RECORD_NAME, run_predict  # noqa: E402
from nucleaizer_tf.synthetic import synthetic_nuclei  # noqa: E402

N_IMAGES = 12


@pytest.fixture(scope="module")
def images(tmp_path_factory):
    folder = tmp_path_factory.mktemp("images")
    for i in range(N_IMAGES):
        sample = synthetic_nuclei((96, 112), 6, 18.0, style=("fluorescence", "brightfield")[i % 2], seed=i)
        write_rgb(folder / f"img{i:02d}.png", np.ascontiguousarray(sample.image[..., :3]))
    return folder


@pytest.fixture(scope="module")
def cluster(dask_cluster):
    return dask_cluster


@pytest.fixture(scope="module")
def local_run(images, tmp_path_factory):
    out = tmp_path_factory.mktemp("local")
    report = run_predict(images, out)
    assert len(report.outputs) == N_IMAGES and not report.failures
    return out


def _same_files(a, b, names):
    for name in names:
        assert (a / name).read_bytes() == (b / name).read_bytes(), name


def _images_without_timings(out):
    record = json.loads((out / RECORD_NAME).read_text())
    return [{k: v for k, v in entry.items() if k not in ("seconds", "labels")} for entry in record["images"]]


def test_two_workers_write_the_local_engines_bytes(images, local_run, cluster, tmp_path):
    out = tmp_path / "dask"
    address = cluster.scheduler.address
    report = run_predict(images, out, engine="dask", scheduler=address)
    names = [f"img{i:02d}.tiff" for i in range(N_IMAGES)]
    assert [p.name for p in report.outputs] == names and not report.failures
    _same_files(local_run, out, names)
    # the same run record, in input order, apart from timings and the output folder's name
    assert _images_without_timings(out) == _images_without_timings(local_run)
    local_settings = json.loads((local_run / RECORD_NAME).read_text())["settings"]
    assert json.loads((out / RECORD_NAME).read_text())["settings"] == local_settings
    # and the resume journal: a rerun keeps every image
    again = run_predict(images, out, engine="dask", scheduler=address, skip_existing=True)
    assert again.skipped == N_IMAGES and not again.failures


def test_a_bad_image_fails_alone(images, cluster, tmp_path):
    folder = tmp_path / "in"
    folder.mkdir()
    for path in sorted(images.iterdir())[:3]:
        (folder / path.name).write_bytes(path.read_bytes())
    (folder / "broken.png").write_bytes(b"not a png")
    report = run_predict(folder, tmp_path / "out", engine="dask", scheduler=cluster.scheduler.address)
    assert len(report.outputs) == 3
    ((path, message),) = report.failures
    assert path.name == "broken.png" and message
    record = json.loads((tmp_path / "out" / RECORD_NAME).read_text())
    assert [f["image"] for f in record["failures"]] == [str(folder / "broken.png")]


def test_engine_settings_are_checked_before_any_work(images, tmp_path):
    with pytest.raises(NucleaizerError, match="--engine"):
        run_predict(images, tmp_path / "a", engine="spark")
    with pytest.raises(NucleaizerError, match="dask only"):
        run_predict(images, tmp_path / "b", workers=2)
    with pytest.raises(NucleaizerError, match="full pipeline"):
        run_predict(images, tmp_path / "c", model=None, mode="full", engine="dask")
    with pytest.raises(NucleaizerError, match="--workers 0: must be at least 1"):
        with dask_client(workers=0):
            pass


def test_a_lost_worker_does_not_lose_images(images, local_run, cluster, tmp_path):
    """Last in the module: it kills one of the cluster's workers (its nanny starts a new one)."""
    files = sorted(images.iterdir())
    out = tmp_path / "lost"
    out.mkdir()
    pids = cluster.run(os.getpid)
    killed = []

    def kill_one(outcome):
        if not killed:  # the first image is back: kill a worker while the others are in flight
            victim = sorted(pids.values())[0]
            os.kill(victim, signal.SIGKILL)
            killed.append(victim)

    outcomes = run_on_dask(files, out, ModelRequest("default"), client=cluster, done=kill_one)
    assert killed and [o.error for o in outcomes] == [None] * N_IMAGES
    _same_files(local_run, out, [f"img{i:02d}.tiff" for i in range(N_IMAGES)])
