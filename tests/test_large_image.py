"""segment_large_image: blocks on Dask give the nuclei of one single-process pass, with bounded memory."""

import pickle
import tracemalloc

import numpy as np
import pytest

zarr = pytest.importorskip("zarr")
pytest.importorskip("dask")
tifffile = pytest.importorskip("tifffile")

from scipy import ndimage  # noqa: E402

from nucleaizer_tf.default_model import blockwise  # noqa: E402
from nucleaizer_tf.errors import NucleaizerError  # noqa: E402
from nucleaizer_tf.io.label_zarr import LabelStore  # noqa: E402
from nucleaizer_tf.io.large_image import open_large_image  # noqa: E402
from nucleaizer_tf.metrics import agreement  # noqa: E402
from nucleaizer_tf.pipelines import large_image  # noqa: E402
from nucleaizer_tf.pipelines.large_image import segment_large_image  # noqa: E402
from nucleaizer_tf.synthetic import SyntheticMosaic  # noqa: E402


@pytest.fixture(scope="module")
def model():
    from nucleaizer_tf import load_model

    return load_model("default").model


def mosaic(shape, **kwargs):
    return SyntheticMosaic(shape, n_nuclei=45, **kwargs).window(slice(0, shape[0]), slice(0, shape[1]))


def write_zarr(path, image, chunks=300):
    zarr.create_array(str(path), data=image, chunks=(chunks, chunks) + image.shape[2:])
    return path


def compact(labels):
    """Labels renumbered 1..n (for `ndimage.find_objects`) and the original ids."""
    ids = np.unique(labels)
    ids = ids[ids > 0]
    return np.where(labels > 0, np.searchsorted(ids, labels) + 1, 0), ids


def anchored_ids(labels):
    """How many ids there are, after checking each is 1 + the raster index of its first pixel (so no
    two nuclei can share one)."""
    flat = labels.ravel()
    at = np.flatnonzero(flat)
    ids, first = np.unique(flat[at], return_index=True)
    assert np.array_equal(ids.astype(np.int64), at[first] + 1)
    return ids.size


def crossing_block_borders(labels, block):
    """Nuclei whose pixels lie in more than one block."""
    boxes = ndimage.find_objects(compact(labels)[0])
    return sum(1 for ys, xs in boxes
               if ys.start // block != (ys.stop - 1) // block or xs.start // block != (xs.stop - 1) // block)


def test_blocks_on_two_workers_match_the_single_process_run(tmp_path, model, dask_cluster):
    image = mosaic((1536, 1536))
    source = write_zarr(tmp_path / "big.zarr", image)
    report = segment_large_image(source, tmp_path / "out", block=512, nucleus_size=20,
                                 scheduler=dask_cluster.scheduler.address)
    labels = zarr.open_array(str(report.output))
    assert labels.dtype == np.uint32 and labels.chunks == (512, 512) and labels.shape == (1536, 1536)
    labels = labels[:]
    reference = model.segment(image, diameter=report.nucleus_size)
    check = agreement(reference, labels, threshold=0.99)
    assert check.matched, check
    assert check.objects[0] == check.objects[1] == report.nuclei > 1000
    assert report.engine == "distributed" and report.blocks == (3, 3) and report.uncertain == 0
    assert anchored_ids(labels) == report.nuclei
    assert crossing_block_borders(labels, 512) > 20  # the borders did cut through nuclei
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["big.zarr"]  # no temporaries left


def test_tiled_tiff_reads_as_the_zarr_and_the_estimate_matches_segment(tmp_path, model):
    image = SyntheticMosaic((512, 384), tile=128, n_nuclei=14, diameter=16.0).window(slice(0, 512), slice(0, 384))
    write_zarr(tmp_path / "img.zarr", image, chunks=200)
    tifffile.imwrite(tmp_path / "img.tif", image, tile=(128, 128), bigtiff=True)
    from_zarr = segment_large_image(tmp_path / "img.zarr", tmp_path / "a", block=256, threads=2)
    from_tiff = segment_large_image(tmp_path / "img.tif", tmp_path / "b", block=256, threads=2)
    a, b = zarr.open_array(str(from_zarr.output))[:], zarr.open_array(str(from_tiff.output))[:]
    assert np.array_equal(a, b) and from_zarr.scale == from_tiff.scale
    assert from_zarr.estimated and from_zarr.estimate["passes"]
    # the estimate is segment's own, rounded to a multiple of 1/16
    _, info = model.segment(image, return_info=True)
    assert from_zarr.scale == float(blockwise.snap_scale(info.scale))
    check = agreement(model.segment(image, diameter=from_zarr.nucleus_size), a)
    assert check.matched, check


def test_ome_zarr_input_gives_an_ome_zarr_label_image(tmp_path):
    image = mosaic((300, 260))
    group = zarr.open_group(str(tmp_path / "cells.ome.zarr"), mode="w", zarr_format=2)
    group.create_array("0", data=np.moveaxis(image, -1, 0), chunks=(3, 128, 128))
    axes = [{"name": "c", "type": "channel"}, {"name": "y", "type": "space", "unit": "micrometer"},
            {"name": "x", "type": "space", "unit": "micrometer"}]
    group.attrs["multiscales"] = [{"version": "0.4", "axes": axes, "datasets": [
        {"path": "0", "coordinateTransformations": [{"type": "scale", "scale": [1.0, 0.5, 0.5]}]}]}]
    report = segment_large_image(tmp_path / "cells.ome.zarr", tmp_path / "out", block=128, nucleus_size=20)
    out = zarr.open_group(str(report.output), mode="r")
    attrs = dict(out.attrs)
    assert attrs["multiscales"][0]["axes"] == axes[1:]
    assert attrs["multiscales"][0]["datasets"] == [
        {"path": "0", "coordinateTransformations": [{"type": "scale", "scale": [0.5, 0.5]}]}]
    assert "image-label" in attrs and attrs["nucleaizer_tf"]["nuclei"] == report.nuclei > 10
    assert out["0"].shape == (300, 260) and out["0"].dtype == np.uint32
    # the input is untouched, an earlier result is replaced only on request
    assert sorted(p.name for p in (tmp_path / "cells.ome.zarr").iterdir()) == [".zattrs", ".zgroup", "0"]
    with pytest.raises(NucleaizerError, match="earlier run.*overwrite"):
        segment_large_image(tmp_path / "cells.ome.zarr", tmp_path / "out", block=128, nucleus_size=20)
    again = segment_large_image(tmp_path / "cells.ome.zarr", tmp_path / "out", block=128, nucleus_size=20,
                                overwrite=True)
    assert np.array_equal(zarr.open_group(str(again.output))["0"][:], out["0"][:])


def test_bad_input_and_taken_outputs_give_one_line_errors(tmp_path):
    with pytest.raises(NucleaizerError, match=r"missing\.zarr: no such file or folder"):
        segment_large_image(tmp_path / "missing.zarr", tmp_path / "out")
    zarr.create_array(str(tmp_path / "stack.zarr"), shape=(2, 5, 64, 64), dtype="uint16")
    with pytest.raises(NucleaizerError, match=r"stack\.zarr: an array of shape \(2, 5, 64, 64\)"):
        segment_large_image(tmp_path / "stack.zarr", tmp_path / "out")
    source = write_zarr(tmp_path / "img.zarr", mosaic((100, 100)))
    (tmp_path / "out" / "img.zarr").mkdir(parents=True)
    with pytest.raises(NucleaizerError, match=r"out/img\.zarr: already exists and was not written by nucleaizer-tf"):
        segment_large_image(source, tmp_path / "out")
    with pytest.raises(NucleaizerError, match="into the input"):
        segment_large_image(source, tmp_path / "img.zarr" / "labels")
    with pytest.raises(NucleaizerError, match="block must be"):
        segment_large_image(source, tmp_path / "other", block=10)
    with pytest.raises(NucleaizerError, match="nucleus_size must be"):
        segment_large_image(source, tmp_path / "other", nucleus_size=-3)
    assert not (tmp_path / "other").exists()


def test_a_failing_block_leaves_no_output_and_no_temporaries(tmp_path, monkeypatch):
    source = write_zarr(tmp_path / "img.zarr", mosaic((256, 256)))
    real = blockwise.segment_block

    def flaky(model, pixels, windows, grid, limits, **kwargs):
        if windows.index == (1, 0):
            raise RuntimeError("disk on fire")
        return real(model, pixels, windows, grid, limits, **kwargs)

    monkeypatch.setattr(large_image, "segment_block", flaky)
    failed = r"img\.zarr: block \(1, 0\) \(rows 128:256, columns 0:128\): RuntimeError: disk on fire"
    with pytest.raises(NucleaizerError, match=failed):
        segment_large_image(source, tmp_path / "out", block=128, nucleus_size=20, threads=1)
    assert list((tmp_path / "out").iterdir()) == []


def _block_peak(tmp_path, side, model):
    """Peak traced memory of both stages of block (1, 1) of a side² image in 256-blocks."""
    source = write_zarr(tmp_path / f"m{side}.zarr", mosaic((side, side)), chunks=256)
    image = open_large_image(source)
    grid = blockwise.BlockGrid.plan(image.image_shape, 256, blockwise.snap_scale(1.0), segment_diameter=20.0,
                                    multiple=model.multiple, margin=model.margin)
    store = LabelStore.create(tmp_path / f"o{side}", "m", grid.shape, 256)
    job = large_image.BlockJob(image, store, grid, large_image.image_limits(image))
    assert len(pickle.dumps(job)) < 20_000  # tasks carry paths and numbers, never pixels
    for index in grid.neighbours(1, 1)[1:]:  # the neighbours' hand-over pieces (empty: same size)
        windows = grid.windows(*index)
        shape = tuple(s.stop - s.start for s in windows.labels)
        store.write_piece(index, (windows.labels[0].start, windows.labels[1].start), np.zeros(shape, np.uint32))
    tracemalloc.start()
    large_image.label_block_task(job, (1, 1))
    large_image.write_block_task(job, (1, 1))
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return peak


def test_a_blocks_working_set_does_not_grow_with_the_image(tmp_path, model, monkeypatch):
    monkeypatch.setattr(large_image, "_model", lambda source: model)  # loaded before tracing starts
    small, large = _block_peak(tmp_path, 768, model), _block_peak(tmp_path, 1536, model)
    print(f"traced peak of block (1, 1): {small / 2**20:.1f} MiB (768²), {large / 2**20:.1f} MiB (1536²)")
    assert large < 1.1 * small, (small, large)
    assert large < 40 * 2**20  # 12 MiB measured for a 256-block (network activations are TensorFlow's, untraced)


def test_predict_command_segments_a_zarr_input_in_blocks(tmp_path):
    from typer.testing import CliRunner

    from nucleaizer_tf.cli.main import app

    source = write_zarr(tmp_path / "plate.zarr", mosaic((512, 384)), chunks=128)
    runner = CliRunner()
    done = runner.invoke(app, ["predict", str(source), str(tmp_path / "out"), "--block", "256", "--nucleus-size", "20"])
    assert done.exit_code == 0, done.output
    assert "nuclei in 2×2 blocks of 256 px" in done.output
    labels = zarr.open_array(str(tmp_path / "out" / "plate.zarr"))
    assert labels.shape == (512, 384) and labels.chunks == (256, 256) and labels[:].max() > 0
    # options of the per-image outputs do not apply, in one line, before any work
    refused = runner.invoke(app, ["predict", str(source), str(tmp_path / "out2"), "--overlay", "--confidence", "0.5"])
    assert refused.exit_code == 2 and "--overlay, --confidence do(es) not apply to --large" in refused.output
    assert not (tmp_path / "out2").exists()
