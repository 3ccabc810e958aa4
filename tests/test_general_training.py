"""The general recipe's streamed training: the example store, the new augmentations, sampling weights,
and a tiny end-to-end run that validates by the real score, checkpoints every epoch and resumes."""

import json

import numpy as np
import pytest
import tensorflow as tf
from scipy import ndimage

from nucleaizer_tf.data import Augment, make_dataset
from nucleaizer_tf.errors import NucleaizerError
from nucleaizer_tf.io.example_store import ExampleStore, write_example_store


def _square(h=120, w=100, side=20, top=30, left=40, label=5):
    labels = np.zeros((h, w), np.int32)
    labels[top:top + side, left:left + side] = label
    image = np.zeros((h, w, 3), np.uint8)
    image[labels > 0] = 200
    return image, labels


def test_store_round_trip_and_memory_map(tmp_path):
    a, b = _square(), _square(64, 80, side=10, label=300)
    store = write_example_store(tmp_path / "s", iter([("a", "fluo", *a), ("b", "stained", *b)]), info={"k": 1})
    again = ExampleStore(tmp_path / "s")
    assert len(again) == 2 and again.names() == ["a", "b"] and again.groups() == ["fluo", "stained"]
    for i, (image, labels) in enumerate((a, b)):
        got_image, got_labels = again.get(i)
        assert np.array_equal(got_image, image) and np.array_equal(got_labels, labels)
        assert got_labels.dtype == np.int32
    assert isinstance(store._images, np.memmap) and again.info == {"k": 1}
    assert not list(tmp_path.glob(".*partial"))


def test_store_refuses_an_existing_folder_a_torn_file_and_bad_examples(tmp_path):
    write_example_store(tmp_path / "s", [("a", "g", *_square())])
    with pytest.raises(NucleaizerError, match="already exists"):
        write_example_store(tmp_path / "s", [("a", "g", *_square())])
    with open(tmp_path / "s" / "labels.u16", "r+b") as f:
        f.truncate(100)
    with pytest.raises(NucleaizerError, match="labels.u16: expected"):
        ExampleStore(tmp_path / "s")
    image, labels = _square()
    with pytest.raises(NucleaizerError, match="0..65535"):
        write_example_store(tmp_path / "t", [("big", "g", image, labels * 20000)])
    assert not (tmp_path / "t").exists() and not (tmp_path / ".t.partial").exists()


def test_sample_weights_decide_which_items_are_drawn(tmp_path):
    store = write_example_store(tmp_path / "s", [("a", "g", *_square(label=1)), ("b", "g", *_square(label=2))])
    ds = make_dataset(store, crop_size=None, batch_size=1, repeat=True, sample_weights=[0.0, 1.0],
                      augment=Augment.none(), image_dtype="uint8")
    drawn = {int(labels.numpy().max()) for _, labels in ds.take(20)}
    assert drawn == {2}
    ds = make_dataset(store, crop_size=None, batch_size=1, repeat=True, sample_weights=[1.0, 3.0],
                      augment=Augment.none(), image_dtype="uint8")
    counts = np.bincount([int(labels.numpy().max()) for _, labels in ds.take(400)], minlength=3)
    assert 0.65 < counts[2] / 400 < 0.85  # 3 : 1
    with pytest.raises(ValueError, match="sample_weights"):
        make_dataset(store, sample_weights=[1.0])


def test_zoom_scales_objects_and_keeps_labels_aligned():
    image, labels = _square(200, 200, side=20, top=90, left=90)
    for factor in (0.5, 2.0):
        ds = make_dataset([(image, labels)], crop_size=64, batch_size=1, repeat=8, image_dtype="uint8",
                          augment=Augment(flip_h=False, flip_v=False, rot90=False, scale=(factor, factor)), seed=1)
        sides = []
        for crop, crop_labels in ds.unbatch():
            crop, crop_labels = crop.numpy(), crop_labels.numpy()
            assert set(np.unique(crop_labels)) <= {0, 5}
            inside = crop_labels == 5
            core = ndimage.binary_erosion(inside, iterations=2)  # resampling blurs the edge by a pixel
            assert (crop[core] > 150).all() and (crop[~ndimage.binary_dilation(inside, iterations=2)] < 50).all()
            rows = np.flatnonzero(inside.any(axis=1))
            if len(rows) and 0 < rows[0] and rows[-1] < 63:  # the whole square is in the crop
                sides.append(len(rows))
        assert sides and all(abs(s - 20 * factor) <= 1 for s in sides)


def test_stain_jitter_changes_colour_images_only():
    from nucleaizer_tf.data.pipeline import photometric

    rng = np.random.default_rng(0)
    colour = tf.constant(rng.uniform(0.2, 0.9, (16, 16, 3)), tf.float32)
    grey = tf.tile(colour[:, :, :1], [1, 1, 3])
    augment = Augment(stain=0.3)
    for seed in range(5):
        assert np.array_equal(photometric(grey, augment, tf.constant([seed, 0])).numpy(), grey.numpy())
    changed = [not np.allclose(photometric(colour, augment, tf.constant([s, 0])).numpy(), colour.numpy())
               for s in range(5)]
    assert all(changed)


def test_invert_and_grey_do_what_they_say():
    from nucleaizer_tf.data.pipeline import photometric

    image = tf.constant(np.random.default_rng(1).uniform(0, 1, (8, 8, 3)), tf.float32)
    inverted = photometric(image, Augment(invert=1.0), tf.constant([0, 0])).numpy()
    assert np.allclose(inverted, 1.0 - image.numpy())
    grey = photometric(image, Augment(grey=1.0), tf.constant([0, 0])).numpy()
    assert np.allclose(grey[..., 0], grey[..., 1]) and np.allclose(grey[..., 0], grey[..., 2])


def test_augment_refuses_nonsense():
    with pytest.raises(ValueError, match="scale"):
        Augment(scale=(2.0, 1.0))
    with pytest.raises(ValueError, match="probability"):
        Augment(invert=1.5)
    with pytest.raises(ValueError, match="blur"):
        Augment(blur=-1.0)


def _write_folder(root, n=6, size=96):
    from nucleaizer_tf.io import write_image, write_labels
    from nucleaizer_tf.synthetic import synthetic_nuclei

    (root / "images").mkdir(parents=True)
    (root / "masks").mkdir()
    groups = []
    for i in range(n):
        style = "fluorescence" if i % 3 else "brightfield"
        sample = synthetic_nuclei((size, size), 8, 14.0, style=style, seed=i)
        write_image(root / "images" / f"im{i}.tiff", (np.clip(sample.image, 0, 1) * 255).astype(np.uint8))
        write_labels(root / "masks" / f"im{i}.tiff", sample.labels)
        groups.append(f"im{i},{style}")
    (root / "validation.txt").write_text("im0\nim1\n")
    (root / "classes.csv").write_text("id,modality\n" + "\n".join(groups) + "\n")
    return root


def test_tiny_streamed_training_validates_checkpoints_and_resumes(tmp_path):
    from nucleaizer_tf.default_model import DefaultModel
    from nucleaizer_tf.default_model.general import ARCHITECTURE, GeneralRecipe
    from nucleaizer_tf.pipelines.train_default import train_general_folders

    recipe = GeneralRecipe(architecture=dict(ARCHITECTURE, base_filters=4), batch=2, crop=64, synthetic=2,
                           polish_epochs=1)
    data = _write_folder(tmp_path / "data")
    args = dict(validation=data / "validation.txt", groups=data / "classes.csv", work_dir=tmp_path / "work",
                steps_per_epoch=2, validate_every=1, recipe=recipe)
    rows = []
    first = train_general_folders(data / "images", data / "masks", tmp_path / "m1", epochs=2,
                                  on_validation=lambda epoch, r: rows.append((epoch, r)), **args)
    assert first.n_train == 4 + 2 and first.n_val == 2 and first.val_metric == "val_dsb"
    assert ExampleStore(tmp_path / "work" / "store").groups().count("synthetic") == 2
    assert [e["epoch"] for e in first.epochs] == [1, 2] and all(e["val_dsb"] is not None for e in first.epochs)
    assert [epoch for epoch, _ in rows] == [1, 2, 1]  # the main stage's 2 epochs, then the closing stage's
    assert {r["group"] for r in rows[0][1]} == {"brightfield", "fluorescence", "all"}
    assert (tmp_path / "work" / "state" / "history.json").is_file()
    assert (tmp_path / "work" / "polish_after_epoch_2" / "history.json").is_file()
    logged = [json.loads(line) for line in (tmp_path / "work" / "validation.jsonl").read_text().splitlines()]
    assert [(entry["stage"], entry["epoch"]) for entry in logged] == [("main", 1), ("main", 2), ("polish", 1)]
    polish = first.settings["polish"]
    main_best = max(e["val_dsb"] for e in first.epochs)
    assert polish["kept"] == (polish["best_val"] > main_best)
    assert first.best_val == (polish["best_val"] if polish["kept"] else main_best)
    model = DefaultModel.load(tmp_path / "m1")
    manifest = model.manifest
    assert manifest["training"]["recipe"] == "nucleaizer_tf.default_model.general"
    assert manifest["architecture"]["base_filters"] == 4 and manifest["training"]["general_recipe"]["crop"] == 64
    assert manifest["training"]["data"]["validation_ids"] == ["im0", "im1"]
    assert manifest["training"]["data"]["train_groups"] == {"fluorescence": 3, "brightfield": 1, "synthetic": 2}
    assert manifest["validation"][-1]["group"] == "all"
    assert manifest["validation"][-1]["dsb"] == pytest.approx(first.best_val)  # the kept weights' rows
    assert manifest["training"]["polish"]["config"]["augment"]["invert"] == 0.0
    assert manifest["training"]["polish"]["config"]["learning_rate"] == 1e-4
    assert manifest["training"]["polish"]["kept"] == polish["kept"]
    assert model.segment(np.zeros((40, 40), np.uint8)).shape == (40, 40)

    # the same work folder: refused without resume; with it and more epochs, continues after epoch 2
    with pytest.raises(NucleaizerError, match="--resume"):
        train_general_folders(data / "images", data / "masks", tmp_path / "m2", epochs=3, **args)
    second = train_general_folders(data / "images", data / "masks", tmp_path / "m2", epochs=3, resume=True, **args)
    assert second.resumed_from == 2
    assert [e["epoch"] for e in second.epochs] == [1, 2, 3]
    # the closing stage starts again from the longer main stage, in a state folder of its own
    assert (tmp_path / "work" / "polish_after_epoch_3" / "history.json").is_file()
    with pytest.raises(NucleaizerError, match="validation"):
        train_general_folders(data / "images", data / "masks", tmp_path / "m3", epochs=1,
                              validation=None, work_dir=tmp_path / "w3")
