"""`make_dataset`: crops, augmentations keep image and labels aligned, determinism, target_fn, real data.

The synthetic examples encode position in the image: channel 0 = label id of the pixel, channel 1 =
source row, channel 2 = source column. After any crop / flip / rotation, every output pixel must
still satisfy image[..., 0] == labels == source_labels[image[..., 1], image[..., 2]], and the
coordinates must form a rigidly moved window of the source.
"""

import numpy as np
import pytest
import tensorflow as tf

from nucleaizer_tf.data import Augment, color_jitter, load_pair, make_dataset, pair_folders, split_pairs

NO_AUG = Augment.none()


def _encoded(h, w, seed):
    """Labels: random ids 1..255 everywhere (any misalignment is visible); image = (id, row, col)."""
    labels = np.random.default_rng(seed).integers(1, 256, (h, w)).astype(np.int32)
    rows, cols = np.mgrid[:h, :w]
    return np.stack([labels, rows, cols], axis=-1).astype(np.uint8), labels


def _stream(ds):
    return [tuple(np.asarray(t) for t in tf.nest.flatten(el)) for el in ds]


def _check_aligned(image, labels, source_labels):
    """Assert the encoding relation everywhere; return the (row step, col step) pair of the transform."""
    assert image.dtype == np.uint8 and labels.dtype == np.int32
    assert np.array_equal(image[..., 0].astype(np.int32), labels)
    assert np.array_equal(labels, source_labels[image[..., 1], image[..., 2]])
    coords = image[..., 1:].astype(int)
    step0, step1 = coords[1, 0] - coords[0, 0], coords[0, 1] - coords[0, 0]
    assert {abs(int(step0 @ step0)), abs(int(step1 @ step1))} == {1} and int(step0 @ step1) == 0
    i, j = np.arange(image.shape[0])[:, None, None], np.arange(image.shape[1])[None, :, None]
    expected = coords[0, 0] + i * step0 + j * step1
    assert np.array_equal(coords, expected)  # a rigidly moved window, not a scramble
    return tuple(step0), tuple(step1)


@pytest.mark.parametrize(
    "augment, n_variants",
    [
        (NO_AUG, 1),
        (Augment(flip_h=True, flip_v=False, rot90=False), 2),
        (Augment(flip_h=False, flip_v=True, rot90=False), 2),
        (Augment(flip_h=False, flip_v=False, rot90=True), 4),
        (Augment(), 8),  # flips + rotations reach all 8 symmetries of the square
    ],
)
def test_crop_and_geometry_keep_image_and_labels_aligned(augment, n_variants):
    sources = [_encoded(40, 48, 0), _encoded(37, 33, 1)]
    ds = make_dataset(sources, crop_size=32, augment=augment, repeat=24, image_dtype="uint8", seed=3)
    variants, offsets = set(), set()
    for image, labels in ds.unbatch():
        image, labels = image.numpy(), labels.numpy()
        assert image.shape == (32, 32, 3)
        rows, cols = image[..., 1], image[..., 2]
        source = next((lab for _, lab in sources if rows.max() < lab.shape[0] and cols.max() < lab.shape[1]
                       and np.array_equal(lab[rows, cols], labels)), None)
        assert source is not None, "labels do not match the source labels at the image's encoded positions"
        variants.add(_check_aligned(image, labels, source))
        offsets.add(tuple(image[..., 1:].min(axis=(0, 1))))
    assert len(variants) == n_variants
    assert len(offsets) > 5  # the crop window moves


def test_smaller_image_is_padded_bottom_right_with_background_labels():
    image, labels = _encoded(20, 30, 2)
    (out_img, out_lab), = _stream(make_dataset([(image, labels)], crop_size=32, augment=NO_AUG,
                                               image_dtype="uint8", pad_value=7))
    out_img, out_lab = out_img[0], out_lab[0]
    assert np.array_equal(out_img[:20, :30], image) and np.array_equal(out_lab[:20, :30], labels)
    assert (out_img[20:] == 7).all() and (out_img[:, 30:] == 7).all()
    assert (out_lab[20:] == 0).all() and (out_lab[:, 30:] == 0).all()

    (ref_img, ref_lab), = _stream(make_dataset([(image, labels)], crop_size=(24, 33), augment=NO_AUG,
                                               image_dtype="uint8", pad_mode="reflect"))
    ref_img, ref_lab = ref_img[0], ref_lab[0]
    assert ref_img.shape == (24, 33, 3)
    window = np.pad(image, ((0, 4), (0, 3), (0, 0)), mode="reflect")  # rows fit after padding: offset 0
    assert np.array_equal(ref_img, window)
    assert np.array_equal(ref_lab[:20, :30], labels) and (ref_lab[20:] == 0).all() and (ref_lab[:, 30:] == 0).all()


def test_float_output_and_colour_jitter_leave_labels_untouched():
    sources = [_encoded(40, 48, 0), _encoded(36, 36, 1)]
    common = dict(crop_size=32, batch_size=2, repeat=3, seed=5)
    plain = _stream(make_dataset(sources, image_dtype="uint8", **common))
    as_float = _stream(make_dataset(sources, **common))
    jittered = _stream(make_dataset(sources, augment=Augment(color_jitter=0.2), **common))
    for (p_img, p_lab), (f_img, f_lab), (j_img, j_lab) in zip(plain, as_float, jittered):
        assert f_img.dtype == np.float32 and np.allclose(f_img * 255.0, p_img)
        assert np.array_equal(p_lab, f_lab) and np.array_equal(p_lab, j_lab)
        assert j_img.dtype == np.float32 and 0.0 <= j_img.min() and j_img.max() <= 1.0
        assert not np.allclose(j_img, f_img, atol=1e-3)


def test_colour_jitter_components():
    rng = np.random.default_rng(0)
    image = tf.constant(rng.uniform(0.1, 0.8, (8, 8, 3)), tf.float32)
    seed = tf.constant([1, 2], tf.int64)
    bright = color_jitter(image, (0.2, 0.0, 0.0, 0.0), seed).numpy()
    ratio = bright / image.numpy()
    assert np.allclose(ratio, ratio.flat[0], atol=1e-5) and 0.8 <= ratio.flat[0] <= 1.2 and ratio.flat[0] != 1.0
    grey = tf.constant(np.repeat(rng.uniform(0, 1, (8, 8, 1)), 3, axis=2), tf.float32)
    for strengths in ((0.0, 0.0, 0.0, 0.2), (0.0, 0.0, 0.2, 0.0)):  # hue and saturation cannot colour grey
        assert np.allclose(color_jitter(grey, strengths, seed).numpy(), grey.numpy(), atol=1e-5)
    assert not np.allclose(color_jitter(image, (0.0, 0.0, 0.0, 0.2), seed).numpy(), image.numpy(), atol=1e-3)
    with pytest.raises(ValueError):
        Augment(color_jitter=(0.2, 0.2, 0.2, 0.6))


def test_same_seed_same_stream_different_seed_different():
    sources = [_encoded(40, 48, i) for i in range(5)]

    def build(seed, **kw):
        return make_dataset(sources, crop_size=24, batch_size=2, repeat=3, seed=seed,
                            augment=Augment(color_jitter=0.1), **kw)

    first = _stream(build(7))
    assert len(first) == 8  # 3 passes × 5 examples in batches of 2
    for other in (_stream(build(7)), _stream(build(7, num_parallel_calls=1, prefetch=False))):
        assert all(np.array_equal(a, b) for x, y in zip(first, other) for a, b in zip(x, y))
    different = _stream(build(8))
    assert not all(np.array_equal(x[1], y[1]) for x, y in zip(first, different))


def test_passes_are_permutations_and_iterations_reshuffle_deterministically():
    sources = [(np.full((4, 4, 3), i, np.uint8), np.full((4, 4), i, np.int32)) for i in range(8)]

    def ids(ds):
        return [int(lab[0, 0, 0]) for _, lab in ds]

    ds = make_dataset(sources, crop_size=None, augment=NO_AUG, repeat=3, seed=1)
    run1, run2 = ids(ds), ids(ds)
    passes = [run1[i:i + 8] for i in (0, 8, 16)]
    assert all(sorted(p) == list(range(8)) for p in passes) and passes[0] != passes[1]
    assert run1 != run2  # a new iteration (a new Keras epoch) gets a new stream ...
    fresh = make_dataset(sources, crop_size=None, augment=NO_AUG, repeat=3, seed=1)
    assert ids(fresh) == run1 and ids(fresh) == run2  # ... determined by the seed
    fixed = make_dataset(sources, crop_size=None, augment=NO_AUG, seed=1, reshuffle_each_iteration=False)
    assert ids(fixed) == ids(fixed)
    assert ids(make_dataset(sources, crop_size=None, shuffle=False, augment=NO_AUG)) == list(range(8))
    endless = make_dataset(sources, crop_size=None, augment=NO_AUG, repeat=True, seed=1)
    assert ids(endless.take(24)) == run1


def test_target_fn_runs_after_augmentation():
    sources = [_encoded(40, 48, 0), _encoded(48, 40, 1)]

    def target_fn(image, labels):
        return {"image": image, "foreground": tf.cast(labels > 127, tf.float32)[..., None]}

    ds = make_dataset(sources, crop_size=32, batch_size=2, repeat=4, target_fn=target_fn, seed=2)
    assert ds.element_spec["foreground"].shape.as_list() == [None, 32, 32, 1]
    for el in ds:
        ids_from_image = np.round(el["image"].numpy()[..., 0] * 255.0)
        assert np.array_equal(el["foreground"].numpy()[..., 0], (ids_from_image > 127).astype(np.float32))


def test_argument_errors():
    src = [_encoded(8, 8, 0)]
    with pytest.raises(ValueError, match="square crop"):
        make_dataset(src, crop_size=(16, 32))
    with pytest.raises(ValueError, match="uint8 H×W×3"):
        make_dataset([(np.zeros((8, 8), np.uint8), np.zeros((8, 8), np.int32))])
    with pytest.raises(ValueError, match="pad_mode"):
        make_dataset(src, pad_mode="wrap")


def test_real_dsb_pairs(dsb_train):
    pairs = pair_folders(dsb_train / "images", dsb_train / "masks")
    assert len(pairs) == 15
    train, val = split_pairs(pairs, dsb_train / "validation.txt")
    assert len(train) == 11 and len(val) == 4
    source_ids = [set(np.unique(load_pair(p)[1]).tolist()) for p in pairs]

    ds = make_dataset(pairs, crop_size=128, batch_size=4, shuffle=False, seed=0)
    assert ds.element_spec[0].shape.as_list() == [None, 128, 128, 3]
    batches = _stream(ds)
    assert [len(b[0]) for b in batches] == [4, 4, 4, 3]
    crops = [(img, lab) for images, labels in batches for img, lab in zip(images, labels)]
    for (image, labels), ids in zip(crops, source_ids):  # shuffle=False: crop k comes from pair k
        assert image.dtype == np.float32 and image.shape == (128, 128, 3) and 0 <= image.min() <= image.max() <= 1
        assert labels.dtype == np.int32 and set(np.unique(labels).tolist()) <= ids
    assert sum(len(np.unique(lab)) > 1 for _, lab in crops) >= 12  # crops do contain nuclei

    from_files = _stream(make_dataset(pairs, crop_size=128, batch_size=4, shuffle=False, seed=0, cache=False))
    assert all(np.array_equal(a, b) for x, y in zip(batches, from_files) for a, b in zip(x, y))

    whole = make_dataset(val, crop_size=None, augment=Augment.maskrcnn(), image_dtype="uint8", shuffle=False)
    for (image, labels), pair in zip(whole, val):
        _, src_labels = load_pair(pair)
        assert image.shape[1:3] == src_labels.shape and labels.shape[1:] == src_labels.shape
        assert np.array_equal(labels[0].numpy(), src_labels) or np.array_equal(labels[0].numpy(), src_labels[:, ::-1])
