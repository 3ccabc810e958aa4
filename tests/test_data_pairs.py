"""Folder pairing, validation splits and pair loading of `nucleaizer_tf.data`."""

import numpy as np
import pytest
import tifffile
from PIL import Image

from nucleaizer_tf.data import Pair, load_pair, match_stems, pair_folders, read_stem_list, split_pairs
from nucleaizer_tf.errors import ImageReadError, PairingError


def _touch(folder, *names):
    folder.mkdir(parents=True, exist_ok=True)
    for name in names:
        (folder / name).write_bytes(b"")


def _folders(tmp_path, images, masks):
    _touch(tmp_path / "images", *images)
    _touch(tmp_path / "masks", *masks)
    return tmp_path / "images", tmp_path / "masks"


def test_pairs_by_stem_sorted_ignoring_other_files(tmp_path):
    images, masks = _folders(
        tmp_path,
        ["b.tif", "a.png", "c.d.JPG", "README.md", ".hidden.png", "validation.txt"],
        ["a.tiff", "b.png", "c.d.tif", "notes.txt"],
    )
    pairs = pair_folders(images, masks)
    assert [p.stem for p in pairs] == ["a", "b", "c.d"]
    assert pairs[0] == Pair("a", images / "a.png", masks / "a.tiff")
    assert pairs[2].image_path.name == "c.d.JPG" and pairs[2].mask_path.name == "c.d.tif"


def test_unmatched_stems_on_both_sides_in_one_message(tmp_path):
    images, masks = _folders(
        tmp_path, ["a.png", "b.png", "only_img.png", "A2.png"], ["a.tiff", "b.tiff", "only_mask.tiff", "a2.tiff"])
    with pytest.raises(PairingError) as err:
        pair_folders(images, masks)
    msg = str(err.value)
    assert "2 image(s) without a mask: A2, only_img" in msg  # stems are case-sensitive
    assert "2 mask(s) without an image: a2, only_mask" in msg
    assert str(images) in msg and str(masks) in msg


def test_long_unmatched_list_is_truncated_with_count(tmp_path):
    images, masks = _folders(tmp_path, [f"img{i:02d}.png" for i in range(25)] + ["x.png"], ["x.tiff"])
    with pytest.raises(PairingError) as err:
        pair_folders(images, masks)
    msg = str(err.value)
    assert "25 image(s) without a mask: img00, img01" in msg and "img09, ... and 15 more" in msg
    assert "img10" not in msg and "mask(s) without" not in msg


def test_missing_folders_are_named(tmp_path):
    with pytest.raises(PairingError) as err:
        pair_folders(tmp_path / "nope_images", tmp_path / "nope_masks")
    msg = str(err.value)
    assert f"image folder {tmp_path / 'nope_images'} does not exist" in msg
    assert f"mask folder {tmp_path / 'nope_masks'} does not exist" in msg


def test_empty_folder_is_named(tmp_path):
    images, masks = _folders(tmp_path, ["a.png"], ["README.md"])
    with pytest.raises(PairingError, match=rf"mask folder {masks} is empty \(no tif/tiff/png files\)"):
        pair_folders(images, masks)


def test_duplicate_stem_in_one_folder_is_refused(tmp_path):
    images, masks = _folders(tmp_path, ["a.png", "a.tif"], ["a.tiff"])
    with pytest.raises(PairingError, match="occur more than once in image folder .*: a"):
        pair_folders(images, masks)


def test_match_stems_with_missing_right_allowed(tmp_path):
    gt, pred = _folders(tmp_path, ["a.tiff", "b.tiff", "c.png"], ["a.tiff", "zz.tiff"])
    kinds = dict(left=("ground-truth", (".tiff", ".png")), right=("prediction", (".tiff",)))
    expected = r"2 ground-truth\(s\) without a prediction: b, c; 1 prediction\(s\) without a ground-truth: zz"
    with pytest.raises(PairingError, match=expected):
        match_stems(gt, pred, **kinds)
    assert match_stems(gt, pred, allow_missing_right=True, **kinds) == [
        ("a", gt / "a.tiff", pred / "a.tiff"), ("b", gt / "b.tiff", None), ("c", gt / "c.png", None)]
    (pred / "a.tiff").unlink()
    (pred / "zz.tiff").unlink()
    assert [r for _, _, r in match_stems(gt, pred, allow_missing_right=True, **kinds)] == [None] * 3
    with pytest.raises(PairingError, match="does not exist"):
        match_stems(gt, tmp_path / "nope", allow_missing_right=True, **kinds)


def _pairs(n):
    return [Pair(f"s{i}", f"images/s{i}.png", f"masks/s{i}.tiff") for i in range(n)]


def test_split_by_stem_list_and_file(tmp_path):
    pairs = _pairs(6)
    train, val = split_pairs(pairs, ["s4", "s1"])
    assert [p.stem for p in val] == ["s1", "s4"] and [p.stem for p in train] == ["s0", "s2", "s3", "s5"]
    listing = tmp_path / "validation.txt"
    listing.write_text("# held out\ns1\n\n  s4  \n")
    assert read_stem_list(listing) == ["s1", "s4"]
    assert split_pairs(pairs, listing) == (train, val)
    assert split_pairs(pairs, str(listing)) == (train, val)


def test_split_none_and_fraction_with_seed():
    pairs = _pairs(10)
    assert split_pairs(pairs, None) == (pairs, [])
    train, val = split_pairs(pairs, 0.3, seed=1)
    assert len(val) == 3 and len(train) == 7 and set(train).isdisjoint(val) and set(train) | set(val) == set(pairs)
    assert split_pairs(pairs, 0.3, seed=1) == (train, val)
    assert any(split_pairs(pairs, 0.3, seed=s)[1] != val for s in range(2, 6))
    assert len(split_pairs(pairs, 0.01)[1]) == 1  # a positive fraction never yields an empty validation set
    with pytest.raises(ValueError):
        split_pairs(pairs, 1.0)


def test_split_unknown_stem_raises():
    with pytest.raises(PairingError, match="2 validation stem\\(s\\) name no image/mask pair: nope, s9"):
        split_pairs(_pairs(3), ["s1", "s9", "nope"])
    with pytest.raises(PairingError, match="cannot read stem list"):
        read_stem_list("/nonexistent/validation.txt")


def test_load_pair_contract_and_size_mismatch(tmp_path):
    (tmp_path / "images").mkdir()
    (tmp_path / "masks").mkdir()
    grey = (np.arange(6 * 8).reshape(6, 8) * 5).astype(np.uint8)
    Image.fromarray(grey).save(tmp_path / "images" / "a.png")
    labels = np.zeros((6, 8), np.uint16)
    labels[1:3, 2:5] = 300
    tifffile.imwrite(tmp_path / "masks" / "a.tiff", labels)
    Image.fromarray(grey[:5]).save(tmp_path / "images" / "b.png")
    tifffile.imwrite(tmp_path / "masks" / "b.tiff", labels)

    pairs = pair_folders(tmp_path / "images", tmp_path / "masks")
    image, lab = load_pair(pairs[0])
    assert image.dtype == np.uint8 and image.shape == (6, 8, 3)
    assert np.array_equal(image[:, :, 1], grey)
    assert lab.dtype == np.int32 and np.array_equal(lab, labels)
    with pytest.raises(ImageReadError) as err:
        load_pair(pairs[1])
    assert "b.png is 5×8" in str(err.value) and "b.tiff is 6×8" in str(err.value)
