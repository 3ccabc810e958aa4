"""`nucleaizer-tf train ...` end to end on the shared DSB sample, and U-Net over-fitting on its soft target.

The Mask R-CNN run is the real recipe shrunk for a CPU: 256 px instead of 1024, 32 ROIs instead of 512,
one `heads` epoch of 2 steps from scratch. The U-Net runs use a narrow network (`--base-filters 4`).
"""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

typer_testing = pytest.importorskip("typer.testing")
tf = pytest.importorskip("tensorflow")

from nucleaizer_tf.cli.train import train_app  # noqa: E402

runner = typer_testing.CliRunner()


def invoke(*args):
    result = runner.invoke(train_app, [str(a) for a in args])
    assert result.exit_code == 0, (result.output, result.exception)
    return result


def test_maskrcnn_cli_runs_on_the_dsb_sample(dsb_train, tmp_path):
    config = tmp_path / "train.json"
    config.write_text(json.dumps({"train_params": {
        "epoch_groups": [{"layers": "heads", "epochs": "1", "learning_rate": "0.001"}],
        "step_ratio": "1.0", "train_to_val_ratio": "0.0", "image_size": "1024"}}))
    out = tmp_path / "run"
    result = invoke("maskrcnn", dsb_train / "images", dsb_train / "masks", "--init", "scratch", "--config", config,
                    "--out", out, "--image-size", 256, "--steps", 2, "--rois", 32, "--val", "none", "-q")
    assert "s/step" in result.output
    assert (out / "mask_rcnn_nuclei_0001.h5").is_file() and (out / "mask_rcnn_trained.h5").is_file()
    summary = json.loads((out / "summary.json").read_text())
    assert summary["kind"] == "maskrcnn" and summary["n_train"] == 15 and summary["n_val"] == 0
    (epoch,) = summary["epochs"]
    assert epoch["steps"] == 2 and epoch["layers"] == "heads"
    assert all(math.isfinite(v) for v in epoch["losses"].values()) and epoch["losses"]["rpn_class_loss"] > 0
    assert summary["settings"]["config"]["IMAGE_MAX_DIM"] == 256 and summary["settings"]["init"] == "scratch"
    # a second run into the same folder must not silently overwrite: it needs --resume
    again = runner.invoke(train_app, ["maskrcnn", str(dsb_train / "images"), str(dsb_train / "masks"),
                                      "--init", "scratch", "--out", str(out)])
    assert again.exit_code == 2 and "--resume" in again.output


def test_unet_and_ensemble_cli(dsb_train, tmp_path):
    from nucleaizer_tf.io import read_image, to_rgb8
    from nucleaizer_tf.unet.ensemble import UNetEnsemble

    common = ["--epochs", 1, "--batch", 4, "--crop", 64, "--base-filters", 4, "--steps", 2, "-q"]
    one = tmp_path / "unet"
    result = invoke("unet", dsb_train / "images", dsb_train / "masks", "--out", one, "--sigma", 1,
                    "--val", dsb_train / "validation.txt", *common)
    assert "val" in result.output
    summary = json.loads((one / "summary.json").read_text())
    assert summary["n_train"] == 11 and summary["n_val"] == 4 and len(summary["epochs"]) == 1
    (epoch,) = summary["epochs"]
    assert epoch["epoch"] == 1 and epoch["member"] == "UNet_sigma1.0_1"
    assert epoch["val_dsb"] is not None and epoch["val_loss"] < 0 and epoch["monitored"] == epoch["val_loss"]
    member = UNetEnsemble.load(one)
    assert member.sigmas == (1.0,) and member.members[0].name == "UNet_sigma1.0_1"

    ens = tmp_path / "ensemble"
    invoke("ensemble", dsb_train / "images", dsb_train / "masks", "--out", ens, "--sigmas", "0,2",
           "--val", "none", *common)
    ensemble = UNetEnsemble.load(ens)
    assert ensemble.sigmas == (0.0, 2.0)
    image = to_rgb8(read_image(sorted((dsb_train / "images").iterdir())[0]))
    assert ensemble.predict(image).shape == image.shape[:2]
    # resume keeps finished members: nothing is left to train
    result = invoke("ensemble", dsb_train / "images", dsb_train / "masks", "--out", ens, "--sigmas", "0,2",
                    "--val", "none", "--resume", *common)
    assert json.loads((ens / "summary.json").read_text())["epochs"] == []


def test_unet_overfits_its_soft_target(tmp_path):
    """A small U-Net driven by the real loop, loss and targets reaches the 20/235 soft target of one image."""
    import keras

    from nucleaizer_tf.data import Augment
    from nucleaizer_tf.unet.model import build_unet
    from nucleaizer_tf.unet.targets import soft_target_items, target_fn
    from nucleaizer_tf.unet.train import TrainConfig, soft_jaccard_loss, train_unet

    image = np.full((64, 64, 3), 40, np.uint8)
    labels = np.zeros((64, 64), np.int32)
    yy, xx = np.mgrid[:64, :64]
    for i, (cy, cx, r) in enumerate([(18, 20, 9), (42, 44, 12)]):
        disc = (yy - cy) ** 2 + (xx - cx) ** 2 < r * r
        labels[disc] = i + 1
        image[disc] = (190, 170, 150)
    keras.utils.set_random_seed(0)
    model = build_unet(base_filters=8)
    items = soft_target_items([(image, labels)], sigma=1.0)
    config = TrainConfig(epochs=10, steps_per_epoch=5, batch_size=1, crop_size=64, learning_rate=1e-2,
                         augment=Augment.none(), restore_best=True)
    history = train_unet(model, items, None, target_fn=target_fn, loss=soft_jaccard_loss, config=config)
    # With 20/235 targets the soft Jaccard cannot reach -1: its optimum (a 0/1 map on the object) is about
    # -0.66 for this image; a perfect copy of the target scores about -0.5.
    assert history.loss[0] > -0.35 and min(history.loss) < -0.45, history.loss
    from nucleaizer_tf.unet.ensemble import predict_probability

    pred = predict_probability(model, image) >= 0.5
    truth = labels > 0
    assert (pred & truth).sum() / (pred | truth).sum() > 0.85  # the thresholded map is the object


def test_train_default_fine_tunes_into_a_model_folder_predict_reads(tmp_path):
    """`train default` on annotated images: a model folder that loads, changed weights, no overwrite."""
    from nucleaizer_tf import load_model
    from nucleaizer_tf.io import write_labels, write_rgb
    from nucleaizer_tf.synthetic import synthetic_nuclei

    for i in range(3):
        sample = synthetic_nuclei((96, 96), 8, 18.0, seed=i)
        write_rgb(tmp_path / "images" / f"a{i}.png", np.ascontiguousarray(sample.image[..., :3]))
        write_labels(tmp_path / "masks" / f"a{i}.tiff", sample.labels)
    out = tmp_path / "model"
    invoke("default", tmp_path / "images", tmp_path / "masks", "--out", out, "--epochs", 2, "--steps", 2,
           "--val", "none", "-q")
    summary = json.loads((out / "summary.json").read_text())
    assert summary["kind"] == "default" and summary["n_train"] == 3 and len(summary["epochs"]) == 2
    model, shipped = load_model(out), load_model("default")
    assert model.kind == "default-model" and json.loads((out / "manifest.json").read_text())["trained"]["init"] == "shipped"
    changed = [not np.array_equal(a.numpy(), b.numpy())
               for a, b in zip(model.model.network.weights, shipped.model.network.weights)]
    assert any(changed)
    assert model.segment(sample.image).shape == (96, 96)
    again = runner.invoke(train_app, ["default", str(tmp_path / "images"), str(tmp_path / "masks"), "--out", str(out)])
    assert again.exit_code == 2 and "already holds a model" in again.output
    bad = runner.invoke(train_app, ["default", str(tmp_path / "images"), str(tmp_path / "masks"), "--out",
                                    str(tmp_path / "m2"), "--lr", "-1"])
    assert bad.exit_code == 2 and "--lr" in bad.output


def test_train_default_from_scratch_is_the_general_recipe_and_needs_validation(tmp_path):
    """`train default --init scratch`: the streamed general recipe, resumable from --work; one-line refusals."""
    from nucleaizer_tf.io import write_labels, write_rgb
    from nucleaizer_tf.synthetic import synthetic_nuclei

    for i in range(4):
        sample = synthetic_nuclei((96, 96), 8, 18.0, seed=i)
        write_rgb(tmp_path / "images" / f"a{i}.png", np.ascontiguousarray(sample.image[..., :3]))
        write_labels(tmp_path / "masks" / f"a{i}.tiff", sample.labels)
    (tmp_path / "val.txt").write_text("a0\n")
    images, masks = tmp_path / "images", tmp_path / "masks"
    no_val = runner.invoke(train_app, ["default", str(images), str(masks), "--out", str(tmp_path / "m0"),
                                       "--init", "scratch"])
    assert no_val.exit_code == 2 and "validation" in no_val.output and "Traceback" not in no_val.output
    not_scratch = runner.invoke(train_app, ["default", str(images), str(masks), "--out", str(tmp_path / "m0"),
                                            "--groups", str(tmp_path / "val.txt")])
    assert not_scratch.exit_code == 2 and "--init scratch" in not_scratch.output
    (tmp_path / "groups.csv").write_text("name,kind\na0,fluorescence\n")
    bad_groups = runner.invoke(train_app, ["default", str(images), str(masks), "--out", str(tmp_path / "m0"),
                                           "--init", "scratch", "--val", str(tmp_path / "val.txt"),
                                           "--groups", str(tmp_path / "groups.csv"), "--work", str(tmp_path / "w0")])
    assert bad_groups.exit_code == 2 and "groups.csv: a groups CSV needs the columns id and modality" in bad_groups.output
    assert "Traceback" not in bad_groups.output
    out = tmp_path / "model"
    invoke("default", images, masks, "--out", out, "--init", "scratch", "--val", tmp_path / "val.txt",
           "--epochs", 1, "--steps", 1, "--polish-epochs", 1, "--work", tmp_path / "work", "-q")
    summary = json.loads((out / "summary.json").read_text())
    manifest = json.loads((out / "manifest.json").read_text())
    assert summary["val_metric"] == "val_dsb" and summary["n_train"] == 3 and summary["n_val"] == 1
    assert manifest["training"]["recipe"] == "nucleaizer_tf.default_model.general"
    assert manifest["training"]["polish"]["epochs_run"] == 1
    assert (tmp_path / "work" / "state" / "last.weights.h5").is_file()
