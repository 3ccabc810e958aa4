"""Hostile and malformed files (issue 25): decided from the header, in one line naming the file, with
bounded memory and time, the other inputs still processed.

Every fixture is built here and is a few KB: an image's declared size is patched into the header of a
small valid file, which is what a decompression bomb or a damaged file looks like to a reader.
"""

from __future__ import annotations

import resource
import struct
import subprocess
import sys
import textwrap
import time
import zlib
from pathlib import Path

import cv2
import numpy as np
import pytest
import tifffile
from typer.testing import CliRunner

from nucleaizer_tf.cli.main import app
from nucleaizer_tf.errors import ImageReadError
from nucleaizer_tf.io import read_image, read_labels
from nucleaizer_tf.io.read import MAX_PIXELS

runner = CliRunner()


def _png(path: Path, height: int, width: int) -> Path:
    """An 8×8 grey PNG whose header declares `height` × `width` (IHDR checksum repaired)."""
    data = bytearray(cv2.imencode(".png", np.full((8, 8), 100, np.uint8))[1].tobytes())
    data[16:24] = struct.pack(">II", width, height)
    data[29:33] = struct.pack(">I", zlib.crc32(bytes(data[12:29])))
    path.write_bytes(bytes(data))
    return path


def _bmp(path: Path, height: int, width: int) -> Path:
    data = bytearray(cv2.imencode(".bmp", np.full((8, 8, 3), 100, np.uint8))[1].tobytes())
    data[18:26] = struct.pack("<ii", width, height)
    path.write_bytes(bytes(data))
    return path


def _jpeg(path: Path, height: int, width: int) -> Path:
    data = bytearray(cv2.imencode(".jpg", np.full((16, 16, 3), 100, np.uint8))[1].tobytes())
    sof = data.index(b"\xff\xc0")
    data[sof + 5:sof + 9] = struct.pack(">HH", height, width)
    path.write_bytes(bytes(data))
    return path


def _tiff(path: Path, height: int, width: int, **kwargs) -> Path:
    """A small valid TIFF whose header is then patched to declare `height` × `width`."""
    tifffile.imwrite(path, np.full((64, 64), 7, np.uint8), **kwargs)
    with tifffile.TiffFile(path, mode="r+b") as tif:
        tif.pages[0].tags["ImageWidth"].overwrite(width)
        tif.pages[0].tags["ImageLength"].overwrite(height)
    return path


@pytest.mark.parametrize("make", [_png, _bmp, _jpeg], ids=["png", "bmp", "jpeg"])
def test_a_raster_declaring_too_many_pixels_is_refused_from_its_header(tmp_path, make):
    path = make(tmp_path / f"bomb.{make.__name__[1:].replace('jpeg', 'jpg')}", 40_000, 40_000)
    start = time.perf_counter()
    with pytest.raises(ImageReadError) as error:
        read_image(path)
    message = str(error.value)
    assert message.startswith(str(path)) and "40000×40000 pixels (1,600.0 Mpx)" in message
    assert "--max-pixels" in message and "predict --large" in message
    assert time.perf_counter() - start < 2
    with pytest.raises(ImageReadError, match="--max-pixels"):  # a lower limit is honoured the same way
        read_image(make(tmp_path / f"small{path.suffix}", 300, 300), max_pixels=10_000)


def test_a_tiled_tiff_bomb_is_refused_by_its_size_and_by_its_bytes(tmp_path):
    path = _tiff(tmp_path / "bomb.tif", 100_000, 100_000, tile=(32, 32), compression="zlib")
    with pytest.raises(ImageReadError, match=r"100000×100000 pixels \(10,000.0 Mpx\)"):
        read_image(path)
    # without the pixel limit, the bytes give it away: 10 GB of pixels cannot come out of a few hundred bytes
    with pytest.raises(ImageReadError, match="more than its compression can hold") as error:
        read_image(path, max_pixels=None)
    assert str(error.value).startswith(str(path)) and "10,000,000,000 bytes of pixels (100000×100000)" in str(error.value)
    with pytest.raises(ImageReadError, match="more than its compression can hold"):  # labels are read alike
        read_labels(_tiff(tmp_path / "labels.tif", 12_000, 12_000, compression="zlib"))


def test_an_uncompressed_tiff_shorter_than_its_pixels_is_refused(tmp_path):
    path = _tiff(tmp_path / "short.tif", 1000, 1000)
    with pytest.raises(ImageReadError, match=r"1,000,000 bytes of pixels \(1000×1000\) in a file of"):
        read_image(path)


def test_big_legal_files_are_read(tmp_path):
    """No false alarm: an empty 2048² uint16 label image compresses about 1000:1 with deflate."""
    path = tmp_path / "empty.tif"
    tifffile.imwrite(path, np.zeros((2048, 2048), np.uint16), compression="zlib")
    assert path.stat().st_size < 20_000
    assert read_labels(path).shape == (2048, 2048)
    assert MAX_PIXELS == 250_000_000


def test_refusing_a_bomb_needs_little_memory(tmp_path):
    """In a child process limited to 2 GB of address space beyond what importing took."""
    bomb = _png(tmp_path / "bomb.png", 60_000, 60_000)
    code = textwrap.dedent(f"""
        import resource, sys
        from nucleaizer_tf.io import read_image
        from nucleaizer_tf.errors import ImageReadError
        used = int(open("/proc/self/statm").read().split()[0]) * resource.getpagesize()
        resource.setrlimit(resource.RLIMIT_AS, (used + 2 * 2**30, resource.RLIM_INFINITY))
        try:
            read_image({str(bomb)!r})
        except ImageReadError as exc:
            print("refused:", exc)
        """)
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and done.stdout.startswith(f"refused: {bomb}"), done.stderr[-2000:]
    assert resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss < 2 * 2**20  # KB: under 2 GB


def test_predict_refuses_the_bomb_in_one_line_and_segments_the_rest(tmp_path):
    images = tmp_path / "images"
    images.mkdir()
    cv2.imwrite(str(images / "good.png"), np.pad(np.full((12, 12), 200, np.uint8), 26))
    _png(images / "bomb.png", 50_000, 50_000)
    result = runner.invoke(app, ["predict", str(images), str(tmp_path / "out"), "-q"])
    assert result.exit_code == 1, result.output
    failures = [line for line in result.stderr.splitlines() if line.startswith("failed:")]
    assert len(failures) == 1 and str(images / "bomb.png") in failures[0] and "Mpx" in failures[0]
    assert "Traceback" not in result.output
    assert (tmp_path / "out" / "good.tiff").is_file() and not (tmp_path / "out" / "bomb.tiff").exists()
    # --max-pixels lowers the limit for every image; --large takes whole images elsewhere, so it is refused there
    low = runner.invoke(app, ["predict", str(images / "good.png"), str(tmp_path / "out2"), "--max-pixels", "100",
                              "-q"])
    assert low.exit_code == 1 and "64×64 pixels" in low.stderr and "--max-pixels" in low.stderr
    large = runner.invoke(app, ["predict", str(images / "good.png"), str(tmp_path / "out3"), "--large",
                                "--max-pixels", "100"])
    assert large.exit_code == 2 and "--max-pixels" in large.output and "Traceback" not in large.output


# --------------------------------------------------------------------------- small files, big numbers


def test_json_files_with_huge_numbers_or_deep_nesting_are_one_line_each(tmp_path):
    from nucleaizer_tf.errors import NucleaizerError
    from nucleaizer_tf.postprocess.params import read_params

    params = tmp_path / "params.json"
    params.write_text("[" + "7" * 5000 + ", 30, 1, 1, 41, 12, 21, 17, 20]")
    with pytest.raises(NucleaizerError) as error:
        read_params(params)
    assert str(error.value) == f"{params}: not a valid post-processing parameter file (a number of 5,000 digits)"
    deep = tmp_path / "deep.geojson"
    deep.write_text("[" * 200_000 + "]" * 200_000)
    with pytest.raises(ImageReadError, match=r"deep.geojson: not a valid GeoJSON file \(nested too deeply\)"):
        read_labels(deep, shape=(8, 8))


def test_a_model_manifest_with_a_huge_number_is_refused_by_predict_in_one_line(tmp_path):
    model = tmp_path / "model"
    model.mkdir()
    (model / "manifest.json").write_text('{"format": "nucleaizer-tf/default-model", "format_version": 1' + "0" * 5000 + "}")
    cv2.imwrite(str(tmp_path / "a.png"), np.zeros((32, 32), np.uint8))
    result = runner.invoke(app, ["predict", str(tmp_path / "a.png"), str(tmp_path / "out"), "--model", str(model)])
    assert result.exit_code == 2 and "Traceback" not in result.output
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert lines == [f"error: {model / 'manifest.json'}: not a valid JSON model manifest (a number of 5,001 digits)"]


# --------------------------------------------------------------------------- vector label files


def _roi_zip(path: Path, points_list) -> Path:
    import zipfile

    import roifile

    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        for number, points in enumerate(points_list, start=1):
            roi = roifile.ImagejRoi.frompoints(np.asarray(points, np.float32))
            archive.writestr(f"{number}.roi", roi.tobytes())
    return path


SQUARE = [[2, 2], [10, 2], [10, 10], [2, 10]]


def test_an_roi_zip_declaring_gigabytes_is_refused_before_unpacking(tmp_path):
    path = _roi_zip(tmp_path / "bomb.zip", [SQUARE])
    data = bytearray(path.read_bytes())
    central = data.index(b"PK\x01\x02")
    data[central + 24:central + 28] = struct.pack("<I", 4_000_000_000)  # the declared uncompressed size
    data[22:26] = struct.pack("<I", 4_000_000_000)  # and the local header's
    path.write_bytes(bytes(data))
    with pytest.raises(ImageReadError) as error:
        read_labels(path, shape=(16, 16))
    assert str(error.value) == (f"{path}: unpacks to 4,000,000,000 bytes, more than the 1,073,741,824 an ROI set may "
                                "hold (a ZIP bomb, or not an ROI set)")


def test_an_roi_zip_with_too_many_members_is_refused(tmp_path, monkeypatch):
    from nucleaizer_tf.io import export

    path = _roi_zip(tmp_path / "many.zip", [SQUARE] * 4)
    assert read_labels(path, shape=(16, 16)).max() == 4
    monkeypatch.setattr(export, "MAX_ROI_MEMBERS", 3)
    with pytest.raises(ImageReadError, match=r"many.zip: 4 members, more than the 3 ROIs read"):
        read_labels(path, shape=(16, 16))


@pytest.mark.parametrize("bad,as_json", [(np.nan, "NaN"), (np.inf, "Infinity"), (1e30, "1e30")],
                         ids=["nan", "inf", "huge"])
def test_outline_coordinates_that_are_not_numbers_are_refused_naming_the_outline(tmp_path, bad, as_json):
    path = _roi_zip(tmp_path / "bad.zip", [SQUARE, [[2, 2], [10, 2], [bad, 10.5], [2, 10]]])
    with pytest.raises(ImageReadError, match=r"bad.zip: ROI .* has coordinates (that are not finite|beyond)"):
        read_labels(path, shape=(16, 16))
    geojson = tmp_path / "bad.geojson"
    ring = "[[2, 2], [10, 2], [%s, 10], [2, 10], [2, 2]]" % as_json
    geojson.write_text('{"type": "Polygon", "coordinates": [%s]}' % ring)
    with pytest.raises(ImageReadError, match=r"bad.geojson: feature 1 has coordinates (that are not finite|beyond)"):
        read_labels(geojson, shape=(16, 16))


@pytest.mark.parametrize("payload,needle", [
    ('{"type": "FeatureCollection", "features": [1, 2]}', "feature 1 is not a JSON object"),
    ('{"type": "FeatureCollection", "features": {"a": 1}}', "the FeatureCollection's features are not a list"),
    ('[{"type": "Feature", "properties": [1], "geometry": null}]', "feature 1's properties are not a JSON object"),
    ('{"type": "Feature", "properties": {}, "geometry": "square"}', "feature 1 has no readable geometry"),
])
def test_geojson_features_of_the_wrong_kind_are_named(tmp_path, payload, needle):
    path = tmp_path / "odd.geojson"
    path.write_text(payload)
    with pytest.raises(ImageReadError) as error:
        read_labels(path, shape=(16, 16))
    assert str(error.value).startswith(f"{path}: {needle}")


# --------------------------------------------------------------------------- model folders


def _shipped_manifest() -> dict:
    import json

    from nucleaizer_tf.default_model import shipped_model_dirs

    folder = next(p for p in shipped_model_dirs() if (p / "manifest.json").is_file())
    return json.loads((folder / "manifest.json").read_text()), folder


def _model_folder(tmp_path: Path, manifest) -> Path:
    import json

    folder = tmp_path / "model"
    folder.mkdir(exist_ok=True)
    (folder / "manifest.json").write_text(manifest if isinstance(manifest, str) else json.dumps(manifest))
    return folder


def _without(mapping: dict, key: str) -> dict:
    return {k: v for k, v in mapping.items() if k != key}


@pytest.mark.parametrize("change,needle", [
    (lambda m: _without(m, "weights_file"), "field weights_file is missing"),
    (lambda m: {**m, "architecture": "unet"}, "field architecture must be a JSON object, got 'unet'"),
    (lambda m: {**m, "architecture": {**m["architecture"], "kernel": 5}}, "unknown field architecture.kernel"),
    (lambda m: {**m, "architecture": {**m["architecture"], "base_filters": 200_000}},
     "field architecture.base_filters must be an integer from 1 to 256, got 200000"),
    (lambda m: {**m, "instance": {**m["instance"], "seed_threshold": "high"}},
     "field instance.seed_threshold must be a number from 0 to 1, got 'high'"),
    (lambda m: {**m, "trained_diameter": float("nan")}, "field trained_diameter must be a number from 2 to 1000"),
    (lambda m: {**m, "format_version": 999}, "format_version 999 is not supported"),
    (lambda m: {**m, "weights_file": "../../etc/passwd"}, "field weights_file must be a file name inside the model"),
    (lambda m: "[" * 200_000 + "]" * 200_000, "not a valid JSON model manifest (nested too deeply)"),
])
def test_a_damaged_model_manifest_is_refused_naming_the_field(tmp_path, change, needle):
    from nucleaizer_tf import load_model
    from nucleaizer_tf.errors import NucleaizerError

    manifest, _ = _shipped_manifest()
    folder = _model_folder(tmp_path, change(manifest))
    start = time.perf_counter()
    with pytest.raises(NucleaizerError) as error:
        load_model(folder)
    assert str(error.value).startswith(f"{folder / 'manifest.json'}: {needle}"), str(error.value)
    assert time.perf_counter() - start < 5  # refused before any network is built


def test_weights_that_are_a_link_out_of_the_folder_truncated_or_foreign_are_refused(tmp_path):
    from nucleaizer_tf import load_model
    from nucleaizer_tf.errors import NucleaizerError

    manifest, shipped = _shipped_manifest()
    folder = _model_folder(tmp_path, manifest)
    (folder / manifest["weights_file"]).symlink_to(shipped / manifest["weights_file"])
    with pytest.raises(NucleaizerError, match="is a symbolic link leading outside the model folder"):
        load_model(folder)
    (folder / manifest["weights_file"]).unlink()
    data = (shipped / manifest["weights_file"]).read_bytes()
    (folder / manifest["weights_file"]).write_bytes(data[:4000])
    with pytest.raises(NucleaizerError, match="sha256 does not match"):  # the recorded hash catches it first
        load_model(folder)
    unhashed = _model_folder(tmp_path, _without(manifest, "sha256"))
    with pytest.raises(NucleaizerError) as error:
        load_model(unhashed)
    assert str(error.value).startswith(f"{unhashed / manifest['weights_file']}: cannot load the weights of the model "
                                       f"in {unhashed}")
    # a link that stays inside the folder is fine
    (unhashed / manifest["weights_file"]).unlink()
    (unhashed / "real.weights.h5").write_bytes(data)
    (unhashed / manifest["weights_file"]).symlink_to(unhashed / "real.weights.h5")
    assert load_model(unhashed).kind == "default-model"


def test_a_generator_file_with_a_lambda_layer_is_refused_in_one_line(tmp_path):
    import keras

    from nucleaizer_tf.errors import NucleaizerError
    from nucleaizer_tf.io.digest import sha256_of
    from nucleaizer_tf.io.model_folder import write_manifest
    from nucleaizer_tf.pipelines.style_transfer import load_generator

    inputs = keras.Input((8, 8, 3))
    model = keras.Model(inputs, keras.layers.Lambda(lambda x: x * 2)(inputs))
    folder = tmp_path / "style"
    folder.mkdir()
    model.save(folder / "generator.keras")
    write_manifest(folder, "pix2pix-generator",
                   {"generator": "generator.keras", "sha256": sha256_of(folder / "generator.keras")})
    with pytest.raises(NucleaizerError) as error:
        load_generator(folder)
    assert str(error.value) == f"{folder / 'generator.keras'}: contains a Lambda layer: code in a model file is never run"
    (folder / "generator.keras").write_bytes(b"PK\x03\x04 not really a zip")
    write_manifest(folder, "pix2pix-generator", {"generator": "generator.keras"})
    with pytest.raises(NucleaizerError, match="generator.keras: cannot load the generator"):
        load_generator(folder)


# --------------------------------------------------------------------------- a full disk


@pytest.mark.parametrize("pipelined", [True, False], ids=["pipelined", "sequential"])
def test_a_full_disk_stops_the_run_with_one_message_and_keeps_what_was_finished(tmp_path, monkeypatch, pipelined):
    import errno

    import nucleaizer_tf.pipelines.image_step as image_step
    import nucleaizer_tf.pipelines.predict as predict

    images = tmp_path / "images"
    images.mkdir()
    for i in range(6):
        cv2.imwrite(str(images / f"im{i}.png"), np.pad(np.full((12, 12), 200, np.uint8), 26))
    real_write, written = image_step.write_labels, []

    def filling_disk(path, labels, **options):
        if len(written) == 2:
            raise OSError(errno.ENOSPC, "No space left on device", str(path))
        written.append(path)
        return real_write(path, labels, **options)

    monkeypatch.setattr(image_step, "write_labels", filling_disk)
    segmented = []
    report = predict.predict_files(sorted(images.glob("*.png")), tmp_path / "out",
                                   lambda image, stem: (segmented.append(stem) or np.zeros(image.shape, np.uint16), {}),
                                   pipelined=pipelined)
    assert report.write_error == (f"no space left on {tmp_path / 'out'}: stopped after 2 of 6 images; the 2 finished "
                                  "are kept (free space, then rerun with --skip-existing)")
    assert report.failures == [] and [p.name for p in report.outputs] == ["im0.tiff", "im1.tiff"]
    assert len(segmented) <= 5  # it stopped: not every image was segmented (at most 2 in flight)
    assert sorted(p.name for p in (tmp_path / "out").glob("*.tiff")) == ["im0.tiff", "im1.tiff"]


def test_predict_on_a_full_disk_says_so_once(tmp_path, monkeypatch):
    import errno

    import nucleaizer_tf.pipelines.image_step as image_step

    images = tmp_path / "images"
    images.mkdir()
    for i in range(4):
        cv2.imwrite(str(images / f"im{i}.png"), np.pad(np.full((12, 12), 200, np.uint8), 26))

    def full(path, labels, **options):
        raise OSError(errno.ENOSPC, "No space left on device", str(path))

    monkeypatch.setattr(image_step, "write_labels", full)
    result = runner.invoke(app, ["predict", str(images), str(tmp_path / "out"), "-q"])
    assert result.exit_code == 2 and "Traceback" not in result.output
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert lines == [f"error: no space left on {tmp_path / 'out'}: stopped after 0 of 4 images; the 0 finished are "
                     "kept (free space, then rerun with --skip-existing)"]


def test_a_damaged_resume_journal_only_means_recomputing(tmp_path):
    import json

    from nucleaizer_tf.pipelines.resume import JOURNAL_NAME, RunJournal

    good = {"key": "k", "stem": "a", "input_name": "a.png", "input": "x", "labels": "y", "entry": {"objects": 3}}
    lines = ["[" * 100_000 + "]" * 100_000,  # nested too deep for the parser
             json.dumps({**good, "stem": "b", "entry": "not a mapping"}),
             json.dumps({**good, "stem": "c"}).replace('"objects": 3', '"objects": 1' + "0" * 5000),
             json.dumps({**good, "stem": "d", "summary_row": [1, 2]}),
             json.dumps(good), '{"key": "k", "stem": "e", "entry"']  # the half-written line of a killed run
    (tmp_path / JOURNAL_NAME).write_text("\n".join(lines) + "\n")
    journal = RunJournal(tmp_path, "k")
    assert list(journal.lines) == ["a"]


def test_damaged_stage_records_only_mean_recomputing(tmp_path):
    from nucleaizer_tf.pipelines.stages import ItemCache, StageLog

    log = StageLog(tmp_path / "work", ["a"], lambda stage: "fp")
    log.finish("a", 1.0)
    assert log.done("a")
    for damaged in ("[" * 100_000 + "]" * 100_000, '{"fingerprint": 1' + "0" * 5000 + "}", "[1, 2]", "\xff"):
        log.marker("a").write_text(damaged, encoding="latin-1")
        assert not log.done("a") and log.record("a") == {}
    import json

    ItemCache(tmp_path / "cache", {"model": "m"})
    (tmp_path / "cache" / ItemCache.INDEX).write_text("[" * 100_000 + "]" * 100_000)
    assert ItemCache(tmp_path / "cache", {"model": "m"})._index == {}
    (tmp_path / "cache" / "stage.json").write_text('{"model": 1' + "0" * 5000 + "}")
    (tmp_path / "cache" / "left-over").write_text("from the damaged cache")
    ItemCache(tmp_path / "cache", {"model": "m"})  # a damaged settings record: the cache starts afresh
    assert json.loads((tmp_path / "cache" / "stage.json").read_text()) == {"model": "m"}
    assert not (tmp_path / "cache" / "left-over").exists()


@pytest.mark.parametrize("kind,body,needle", [
    ("maskrcnn", {"weights": "mask_rcnn.h5"}, 'field weights must be {"file": NAME, "sha256": HEX}, got a str'),
    ("maskrcnn", {}, 'field weights must be {"file": NAME, "sha256": HEX}, got nothing'),
    ("full-pipeline", {"presegmentation": {"file": 7}}, "field presegmentation must be"),
])
def test_other_model_kinds_name_the_damaged_field(tmp_path, kind, body, needle):
    import json

    from nucleaizer_tf import load_model
    from nucleaizer_tf.errors import NucleaizerError

    folder = _model_folder(tmp_path, json.dumps({"format": f"nucleaizer-tf/{kind}", "format_version": 1, **body}))
    with pytest.raises(NucleaizerError) as error:
        load_model(folder)
    assert str(error.value).startswith(f"{folder / 'manifest.json'}: {needle}"), str(error.value)


def test_a_groups_csv_with_a_short_line_is_named(tmp_path):
    from nucleaizer_tf.errors import NucleaizerError
    from nucleaizer_tf.pipelines.train_default import read_groups

    path = tmp_path / "classes.csv"
    path.write_text("id,modality\na,fluorescence\nb\n")
    with pytest.raises(NucleaizerError, match=r"classes.csv: line 3 has no id or no modality"):
        read_groups(path)


def test_a_tiff_declaring_an_absurd_tile_count_is_refused_in_seconds(tmp_path):
    path = _tiff(tmp_path / "tiles.tif", 15_000, 15_000, tile=(16, 16), compression="zlib")
    with tifffile.TiffFile(path) as tif:
        offset = tif.pages[0].tags["TileOffsets"].offset
    data = bytearray(path.read_bytes())
    data[offset + 4:offset + 8] = struct.pack("<I", 10**9)  # the tag's value count: a billion tiles
    path.write_bytes(bytes(data))
    start = time.perf_counter()
    with pytest.raises(ImageReadError) as error:
        read_image(path)
    assert str(error.value).startswith(f"{path}: ") and "\n" not in str(error.value)
    assert time.perf_counter() - start < 5
