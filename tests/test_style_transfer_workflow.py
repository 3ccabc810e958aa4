"""Augmentation (spec 6.8), tiles / validation carve-out helpers, and `nucleaizer-tf style-transfer` end to end."""

import json

import numpy as np
import pytest

from nucleaizer_tf.style.augment import (augment_pair, augment_set, equalise, gaussian_blur, normalise_size,
                                         settings_for, stretch)
from nucleaizer_tf.synthetic import synthetic_nuclei

# --------------------------------------------------------------------------- augmentation


def _median_diameter(labels):
    areas = np.bincount(labels.ravel())[1:]
    areas = areas[areas > 0]
    return float(np.median(np.sqrt(4 * areas / np.pi)))


def test_size_normalisation_to_40_px():
    sample = synthetic_nuclei((200, 240), 20, 16, seed=2)
    image, labels, s = normalise_size(sample.image, sample.labels)
    assert s == pytest.approx(40 / _median_diameter(sample.labels))
    assert labels.shape == (int(np.ceil(200 * s)), int(np.ceil(240 * s))) and image.shape[:2] == labels.shape
    assert _median_diameter(labels) == pytest.approx(40, rel=0.05)
    assert normalise_size(sample.image, np.zeros_like(sample.labels)) is None


def test_small_image_goes_on_a_median_coloured_512_canvas():
    sample = synthetic_nuclei((128, 128), 10, 20, seed=1)  # -> ~256 px after the 2x size normalisation
    settings = settings_for("validation", 3)  # no random look changes: canvas content is checkable
    outs = augment_pair(sample.image, sample.labels, settings, np.random.default_rng(0))
    assert len(outs) == 3
    for image, labels in outs:
        assert image.shape == (512, 512, 3) and labels.shape == (512, 512) and labels.dtype == np.uint16
        assert labels.max() == len(np.unique(labels)) - 1  # consecutive ids
        background = image[labels == 0]
        corner = image[-1, -1] if labels[-1, -1] == 0 else image[0, 0]
        assert np.all(np.abs(np.median(background, axis=0) - corner) <= 40)


def test_large_image_gives_random_512_crops():
    sample = synthetic_nuclei((300, 300), 60, 10, seed=4)  # ~1200 px after normalisation to 40 px nuclei
    outs = augment_pair(sample.image, sample.labels, settings_for("real", 1), np.random.default_rng(0))
    rows = int(np.ceil(300 * 40 / _median_diameter(sample.labels)))
    expected = 2 * (int(np.floor(np.sqrt(rows * rows / 512 ** 2) + 0.5)) + 2)
    assert 0 < len(outs) <= expected and all(img.shape == (512, 512, 3) for img, _ in outs)


def test_compounding_q10_switch():
    sample = synthetic_nuclei((128, 128), 10, 20, seed=1)
    settings = settings_for("style", 4).__class__(4, 0, 0, 0, 0, 1.0, 4.0, 0, 0, 1)  # always blur
    fresh = augment_pair(sample.image, sample.labels, settings, np.random.default_rng(3), compound=False)
    compound = augment_pair(sample.image, sample.labels, settings, np.random.default_rng(3), compound=True)
    sharp = lambda img: np.abs(np.diff(img.astype(float), axis=1)).mean()  # noqa: E731
    assert sharp(compound[-1][0]) < sharp(fresh[-1][0])  # blur accumulated over the 4 outputs


def test_photometric_primitives():
    ramp = np.tile(np.arange(50, 150, dtype=np.uint8), (10, 1))
    out = stretch(ramp, 0.0)
    assert out.min() == 0 and out.max() == 255
    assert len(np.unique(equalise(np.tile(np.arange(256, dtype=np.uint8), (4, 1))))) == 64
    flat = np.full((20, 20, 3), 77, np.uint8)
    assert np.array_equal(gaussian_blur(flat, 2.0), flat)


def test_augment_set_uses_every_step_th_item_with_unique_names():
    items = [(f"img{i}", *(lambda s: (s.image, s.labels))(synthetic_nuclei((96, 96), 6, 14, seed=i))) for i in range(7)]
    settings = settings_for("style", 2)  # step 6: items 0 and 6
    out = list(augment_set(items, settings, seed=1))
    sources = {name.rsplit("_aug", 1)[0] for name, _, _ in out}
    assert sources == {"img0", "img6"} and len({n for n, _, _ in out}) == len(out)
    again = list(augment_set(items, settings, seed=1))
    assert [n for n, _, _ in again] == [n for n, _, _ in out]


# --------------------------------------------------------------------------- workflow helpers


def test_tiles_are_a_centred_grid():
    from nucleaizer_tf.pipelines.style_transfer import cut_tiles

    image = np.zeros((256, 320, 3), np.uint8)
    labels = np.arange(256 * 320).reshape(256, 320)
    tiles = list(cut_tiles("a", image, labels))
    assert [t[0] for t in tiles] == ["a_1_1"] and tiles[0][2][0, 0] == labels[0, 32]
    small = list(cut_tiles("b", np.zeros((100, 300, 3), np.uint8), np.ones((100, 300), np.int32)))
    assert [t[0] for t in small] == ["b_1_1"] and small[0][1].shape == (256, 256, 3)


def test_validation_carve_out(tmp_path):
    from nucleaizer_tf.pipelines.style_transfer import carve_out_validation

    k = "f" * 64
    train = tmp_path / "train"
    for kind, ext in (("images", "png"), ("masks", "tiff")):
        (train / kind).mkdir(parents=True)
        for stem in (k, f"{k}_augabc123", "short", "short_aug000001", "other"):
            (train / kind / f"{stem}.{ext}").write_bytes(b"x")
    moved, deleted = carve_out_validation(train, tmp_path / "val", [k, "short"], only_64_characters=True)
    assert (moved, deleted) == (2, 6)  # Q15: "short" is deleted, not moved
    assert sorted(p.name for p in (tmp_path / "val" / "images").iterdir()) == [f"{k}.png"]
    assert sorted(p.name for p in (train / "images").iterdir()) == ["other.png"]


# --------------------------------------------------------------------------- end to end


def test_style_transfer_end_to_end(dsb_train, shared_dir, tmp_path):
    pytest.importorskip("tensorflow")
    import typer
    from typer.testing import CliRunner

    from nucleaizer_tf.cli.style import style_transfer
    from nucleaizer_tf.data import pair_folders
    from nucleaizer_tf.io import read_image, read_labels
    from nucleaizer_tf.pipelines.style_transfer import STAGES

    db = tmp_path / "db"
    db.mkdir()
    for path in sorted((shared_dir / "data" / "mask_db").glob("*.tiff"))[:20]:
        (db / path.name).symlink_to(path)
    app = typer.Typer()
    app.command()(style_transfer)
    out = tmp_path / "out"
    args = [str(dsb_train / "images"), str(out), "--masks", str(dsb_train / "masks"), "--mask-db", str(db),
            "--ngf", "8", "--iterations", "6", "--decay-epochs", "1", "--images-per-cluster", "2",
            "--validation", str(dsb_train / "validation.txt"), "--quiet"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output + repr(result.exception)

    pairs = pair_folders(out / "train" / "images", out / "train" / "masks")  # what `train --extra-data` reads
    assert len(pairs) >= 10
    for pair in pairs[:5]:
        image, labels = read_image(pair.image_path), read_labels(pair.mask_path)
        assert image.dtype == np.uint8 and image.ndim == 3 and image.shape[2] == 3
        assert labels.dtype == np.uint16 and labels.shape == image.shape[:2] and labels.max() > 0
    assert len(pair_folders(out / "validation" / "images", out / "validation" / "masks")) == 4

    run = json.loads((out / "run.json").read_text())
    assert len(run["clusters"]) == 3 and all(len(m) == 3 for m in run["clusters"].values())
    for cluster in run["clusters"]:
        folder = out / "style" / cluster
        assert (folder / "model" / "generator.keras").is_file() and (folder / "comparison.png").is_file()
        assert len(list((folder / "synthetic_images").glob("*.png"))) == 2
        assert (out / "clusters" / f"{cluster}.png").is_file()
        manifest = json.loads((folder / "model" / "manifest.json").read_text())
        assert manifest["config"]["ngf"] == 8 and manifest["steps"] == (6 // manifest["n_tiles"] + 1) * manifest["n_tiles"]
    assert (out / "clusters" / "report.csv").read_text().startswith("name,style,assigned,distance,kept")

    again = CliRunner().invoke(app, args)  # resumable: everything is found done
    assert again.exit_code == 0, again.output
    assert json.loads((out / "run.json").read_text())["stages_skipped"] == list(STAGES)

    # the training set is what `nucleaizer-tf train ... --extra-data` consumes
    from nucleaizer_tf.cli.main import app as main_app

    unet = tmp_path / "unet"
    trained = CliRunner().invoke(main_app, [
        "train", "unet", str(dsb_train / "images"), str(dsb_train / "masks"), "--out", str(unet),
        "--extra-data", str(out / "train"), "--val", str(dsb_train / "validation.txt"),
        "--epochs", "1", "--steps", "1", "--batch", "2", "--crop", "64", "--base-filters", "4", "--no-val-dsb", "-q"])
    assert trained.exit_code == 0, trained.output + repr(trained.exception)
    assert json.loads((unet / "summary.json").read_text())["n_train"] == 11 + len(pairs)


def test_single_experiment_with_own_masks_as_database(tmp_path):
    """No shared data needed: one cluster (spec 6.12), the run's own masks as shape database."""
    pytest.importorskip("tensorflow")
    from nucleaizer_tf.io import write_labels, write_rgb
    from nucleaizer_tf.pipelines.style_transfer import StyleTransferSettings, run_style_transfer

    for i in range(2):
        sample = synthetic_nuclei((160, 160), 12, 20, style="brightfield", seed=i)  # -> one 512 canvas each
        write_rgb(tmp_path / "images" / f"s{i}.png", sample.image)
        write_labels(tmp_path / "masks" / f"s{i}.tiff", sample.labels)
    settings = StyleTransferSettings(masks_dir=str(tmp_path / "masks"), single_experiment=True, images_per_cluster=3,
                                     ngf=4, depth=5, iterations=2, decay_epochs=0, n_db_masks=60, style_step=1,
                                     augment_copies=1, include_real=True)
    report = run_style_transfer(tmp_path / "images", tmp_path / "out", settings)
    assert report.clusters == {"group_001": ["s0", "s1"]}
    assert len(list((tmp_path / "out" / "style" / "group_001" / "synthetic_images").glob("*.png"))) == 3
    names = sorted(p.stem for p in (tmp_path / "out" / "train" / "images").glob("*.png"))
    assert any(n.startswith("group_001_") for n in names) and any(n.startswith("s0_aug") for n in names)
    assert report.pix2pix["group_001"]["steps"] == 2  # 2 tiles, 2 // 2 = 1 epoch, no decay
