"""Image readers, the two conversion modes and atomic label writing, on files the tests write."""

import os

import cv2
import numpy as np
import pytest
import tifffile
from PIL import Image

from nucleaizer_tf.errors import ImageReadError
from nucleaizer_tf.io import atomic_path, list_images, read_image, read_labels, to_rgb8, write_json, write_labels

RNG = np.random.default_rng(7)


def _rgb(h=24, w=32, dtype=np.uint8, c=3):
    """Random image of the given dtype; c=0 gives a 2-D grey image."""
    top = np.iinfo(dtype).max if np.issubdtype(dtype, np.integer) else 1.0
    return RNG.uniform(0, top, (h, w, c) if c else (h, w)).astype(dtype)


@pytest.mark.parametrize(
    "name,array",
    [
        ("grey8.png", _rgb(c=0)),
        ("rgb8.png", _rgb()),
        ("rgba8.png", _rgb(c=4)),
        ("grey16.png", _rgb(dtype=np.uint16, c=0)),
        ("rgb16.png", _rgb(dtype=np.uint16)),
        ("rgb8.bmp", _rgb()),
        ("grey8.tif", _rgb(c=0)),
        ("rgb8.tiff", _rgb()),
        ("grey16.tif", _rgb(dtype=np.uint16, c=0)),
        ("rgb16.tif", _rgb(dtype=np.uint16)),
        ("float.tif", _rgb(dtype=np.float32, c=0)),
        ("rgbfloat.tif", _rgb(dtype=np.float32)),
    ],
)
def test_lossless_formats_round_trip_exactly(tmp_path, name, array):
    path = tmp_path / name
    if path.suffix in (".tif", ".tiff"):
        tifffile.imwrite(path, array, photometric="rgb" if array.ndim == 3 else "minisblack")
    else:
        bgr = array if array.ndim == 2 else cv2.cvtColor(array, cv2.COLOR_RGB2BGR if array.shape[2] == 3 else cv2.COLOR_RGBA2BGRA)
        assert cv2.imwrite(str(path), bgr)
    out = read_image(path)
    assert out.dtype == array.dtype
    np.testing.assert_array_equal(out, array)


def test_pil_written_rgba_png_reads_in_rgb_order(tmp_path):
    """The shipped DSB images are RGBA PNGs written by PIL; channel order must be R, G, B, A."""
    array = np.zeros((8, 9, 4), np.uint8)
    array[..., 0], array[..., 1], array[..., 2], array[..., 3] = 10, 20, 30, 255
    Image.fromarray(array, "RGBA").save(tmp_path / "x.png")
    out = read_image(tmp_path / "x.png")
    assert out[0, 0].tolist() == [10, 20, 30, 255]


def test_jpeg_reads_as_rgb_uint8(tmp_path):
    array = np.full((16, 16, 3), (200, 40, 10), np.uint8)
    Image.fromarray(array).save(tmp_path / "x.jpg", quality=95)
    out = read_image(tmp_path / "x.jpg")
    assert out.shape == (16, 16, 3) and out.dtype == np.uint8
    assert np.abs(out.astype(int) - array).max() <= 3  # JPEG is lossy; order must be R, G, B


@pytest.mark.parametrize(
    "maker,needle",
    [
        (lambda p: tifffile.imwrite(p, np.zeros((5, 16, 16), np.uint16)), "multi-page TIFF"),
        (lambda p: tifffile.imwrite(p, np.zeros((4, 5, 16, 16), np.uint8)), "2-D"),
        (lambda p: p.write_bytes(b""), "empty file (0 bytes)"),
        (lambda p: p.write_text("this is not an image"), "not a TIFF file"),
    ],
)
def test_bad_tiffs_raise_one_line_errors_naming_the_file(tmp_path, maker, needle):
    path = tmp_path / "bad.tif"
    maker(path)
    with pytest.raises(ImageReadError) as err:
        read_image(path)
    assert str(path) in str(err.value) and needle in str(err.value)
    assert "\n" not in str(err.value)


def test_truncated_files_are_reported(tmp_path):
    good = tmp_path / "good.png"
    cv2.imwrite(str(good), _rgb(64, 64))
    cut = tmp_path / "cut.png"
    cut.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    with pytest.raises(ImageReadError, match="cut.png: cannot decode PNG; the file is corrupt or truncated"):
        read_image(cut)
    tif = tmp_path / "good.tif"
    tifffile.imwrite(tif, _rgb(64, 64, np.uint16, c=0))
    cut_tif = tmp_path / "cut.tif"
    cut_tif.write_bytes(tif.read_bytes()[:200])  # the header survives: the size check names the cut
    with pytest.raises(ImageReadError, match=r"cut.tif: declares 8,192 bytes of pixels \(64×64\) in a file of 200 "
                                             "bytes, more than its compression can hold; the file is corrupt or truncated"):
        read_image(cut_tif)
    cut_tif.write_bytes(tif.read_bytes()[:6])  # not even a header
    with pytest.raises(ImageReadError, match="cut.tif: cannot decode TIFF"):
        read_image(cut_tif)


def test_missing_unsupported_and_mislabelled_files(tmp_path):
    with pytest.raises(ImageReadError, match="nope.png: no such file"):
        read_image(tmp_path / "nope.png")
    (tmp_path / "notes.txt").write_text("hello")
    with pytest.raises(ImageReadError, match="unsupported file type '.txt'"):
        read_image(tmp_path / "notes.txt")
    (tmp_path / "fake.png").write_text("hello, I am text")
    with pytest.raises(ImageReadError, match="fake.png: not a PNG file"):
        read_image(tmp_path / "fake.png")
    with pytest.raises(ImageReadError, match="is a folder"):
        read_image(tmp_path)


def test_list_images_sorted_filtered(tmp_path):
    for name in ["b.png", "a.tif", "c.txt", ".hidden.png", "d.JPG"]:
        (tmp_path / name).write_bytes(b"x")
    assert [p.name for p in list_images(tmp_path)] == ["a.tif", "b.png", "d.JPG"]
    with pytest.raises(ImageReadError, match="no such folder"):
        list_images(tmp_path / "missing")


# --- conversion rules (spec 2.3) -------------------------------------------------------------------


def test_nucleaizer_mode_uint16_is_per_channel_minmax_with_truncation():
    image = np.zeros((1, 4, 3), np.uint16)
    image[0, :, 0] = [100, 200, 300, 1100]  # range 1000
    image[0, :, 1] = [0, 1, 2, 3]  # range 3
    image[0, :, 2] = 500  # constant channel
    out = to_rgb8(image, "nucleaizer")
    # (x - min) * 255 / (max - min), truncated: 0, 25.5→25, 51, 255 ; 0, 85, 170, 255
    assert out[0, :, 0].tolist() == [0, 25, 51, 255]
    assert out[0, :, 1].tolist() == [0, 85, 170, 255]
    assert out[0, :, 2].tolist() == [0, 0, 0, 0]


def test_nucleaizer_mode_grey_alpha_and_other_dtypes():
    grey = np.array([[0, 7], [128, 255]], np.uint8)
    out = to_rgb8(grey)
    assert out.shape == (2, 2, 3) and (out == grey[:, :, None]).all()
    rgba = np.array([[[1, 2, 3, 9], [4, 5, 6, 0]]], np.uint8)
    assert to_rgb8(rgba).tolist() == [[[1, 2, 3], [4, 5, 6]]]
    # other integer types are cast as numpy did (wrap modulo 256), floats truncated (clipped to 0..255)
    assert to_rgb8(np.array([[300, 7]], np.int32))[0, :, 0].tolist() == [44, 7]
    assert to_rgb8(np.array([[0.9, 254.99, 300.0, -4.0]], np.float32))[0, :, 0].tolist() == [0, 254, 255, 0]
    # grey + alpha (2 channels) keeps the grey channel
    assert to_rgb8(np.dstack([grey, np.full_like(grey, 255)]))[..., 1].tolist() == grey.tolist()


def test_percentile_mode_stretches_sparse_16bit_images():
    image = np.full((100, 100), 1000, np.uint16)
    image[:50] = 1100
    image[0, 0] = 60000  # one hot pixel
    faithful = to_rgb8(image, "nucleaizer")
    stretched = to_rgb8(image, "percentile")
    assert faithful[50, 0, 0] == 0 and faithful[10, 10, 0] == 0  # min-max: both levels nearly black
    assert stretched[50, 0, 0] == 0 and stretched[10, 10, 0] == 255  # 1 % → 1000, 99.8 % → 1100
    assert stretched.dtype == np.uint8 and stretched.shape == (100, 100, 3)
    ramp = np.arange(1001, dtype=np.float64).reshape(1, -1)  # percentiles 10 and 998
    out = to_rgb8(ramp, "percentile")[0, :, 0]
    assert out[10] == 0 and out[998] == 255 and out[504] == 128  # (504-10)/988*255 = 127.5 → 128
    assert (to_rgb8(np.full((5, 5), 7, np.uint16), "percentile") == 0).all()
    with pytest.raises(ValueError, match="unknown conversion mode"):
        to_rgb8(image, "auto")


# --- labels ------------------------------------------------------------------------------------------


def test_labels_written_as_uint16_and_uint32_above_65535(tmp_path):
    small = np.array([[0, 1], [2, 65535]], np.int64)
    write_labels(tmp_path / "s.tiff", small)
    out = tifffile.imread(tmp_path / "s.tiff")
    assert out.dtype == np.uint16 and out.tolist() == small.tolist()
    big = np.array([[0, 65536]], np.int64)
    write_labels(tmp_path / "b.tiff", big)
    assert tifffile.imread(tmp_path / "b.tiff").dtype == np.uint32
    assert read_labels(tmp_path / "b.tiff").tolist() == [[0, 65536]]
    assert sorted(os.listdir(tmp_path)) == ["b.tiff", "s.tiff"]  # no temporary leftovers


def test_failed_write_leaves_previous_file_and_no_temporary(tmp_path):
    target = tmp_path / "x.tiff"
    write_labels(target, np.ones((3, 3), np.uint16))
    before = target.read_bytes()
    with pytest.raises(RuntimeError):
        with atomic_path(target) as tmp:
            tmp.write_bytes(b"partial")
            raise RuntimeError("disk full")
    assert target.read_bytes() == before
    assert os.listdir(tmp_path) == ["x.tiff"]
    with pytest.raises(ValueError):
        write_labels(tmp_path / "neg.tiff", np.array([[-1, 0]]))
    assert not (tmp_path / "neg.tiff").exists()


def test_read_labels_rejects_colour_and_fractions(tmp_path):
    tifffile.imwrite(tmp_path / "rgb.tif", np.zeros((8, 8, 3), np.uint8), photometric="rgb")
    with pytest.raises(ImageReadError, match="must be 2-D"):
        read_labels(tmp_path / "rgb.tif")
    tifffile.imwrite(tmp_path / "f.tif", np.array([[0.5, 1.0]], np.float32))
    with pytest.raises(ImageReadError, match="non-integer"):
        read_labels(tmp_path / "f.tif")
    tifffile.imwrite(tmp_path / "ok.tif", np.array([[0.0, 3.0]], np.float32))
    assert read_labels(tmp_path / "ok.tif").tolist() == [[0, 3]]


def test_json_written_atomically(tmp_path):
    write_json(tmp_path / "a.json", {"x": np.float32(0.5), "n": np.int64(3)})
    assert (tmp_path / "a.json").read_text().strip().startswith("{")


def test_shared_sample_images_and_masks_read(dsb_train):
    images = list_images(dsb_train / "images")
    masks = list_images(dsb_train / "masks")
    assert len(images) == 15 and len(masks) == 15
    for image_path, mask_path in zip(images, masks):
        image, labels = read_image(image_path), read_labels(mask_path)
        assert image.dtype == np.uint8 and image.shape[2] == 4
        assert labels.dtype == np.uint16 and labels.shape == image.shape[:2]
        assert np.array_equal(np.unique(labels)[1:], np.arange(1, labels.max() + 1))
        assert (to_rgb8(image) == image[:, :, :3]).all()
