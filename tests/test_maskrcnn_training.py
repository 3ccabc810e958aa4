"""Mask R-CNN training: over-fitting a tiny synthetic image, legacy checkpoints, resume, layer groups, train.json.

The network is the real ResNet-101/FPN graph at 128 x 128 with a small training config (32 ROIs, anchors
8..128 px). It starts from the seeded legacy fixture (a nucleAIzer-format .h5, i.e. the fine-tuning path) and
trains the RPN and the heads (`(mrcnn\\_.*)|(rpn\\_.*)`) with the backbone and FPN fixed: the fixture's random
FPN laterals are tiny against large C5 activations, so training them at an over-fitting learning rate is
unstable, and a frozen backbone keeps the test within a minute on a CPU.
"""

from __future__ import annotations

import contextlib
import json

import numpy as np
import pytest

keras = pytest.importorskip("keras")
tf = pytest.importorskip("tensorflow")

from nucleaizer_tf.data import Augment  # noqa: E402
from nucleaizer_tf.errors import NucleaizerError  # noqa: E402
from nucleaizer_tf.maskrcnn.config import MaskRCNNConfig  # noqa: E402
from nucleaizer_tf.maskrcnn.inference import SegmentOptions  # noqa: E402
from nucleaizer_tf.maskrcnn.legacy_h5 import inspect_legacy_h5, load_legacy_weights  # noqa: E402
from nucleaizer_tf.maskrcnn.model import MaskRCNN  # noqa: E402
from nucleaizer_tf.maskrcnn.training import (  # noqa: E402
    LAYER_REGEX,
    LOSS_NAMES,
    EpochGroup,
    MaskRCNNTrainer,
    find_checkpoints,
    read_train_json,
)
from nucleaizer_tf.metrics import score_image  # noqa: E402
from nucleaizer_tf.progress import RecordingReporter  # noqa: E402

TINY = MaskRCNNConfig().with_image_size(128).replace(
    RPN_ANCHOR_SCALES=(8, 16, 32, 64, 128), TRAIN_ROIS_PER_IMAGE=32, POST_NMS_ROIS_TRAINING=256,
    POST_NMS_ROIS_INFERENCE=256, RPN_TRAIN_ANCHORS_PER_IMAGE=64, DETECTION_MIN_CONFIDENCE=0.7,
    MASK_POOL_SIZE=7, MASK_SHAPE=(14, 14))  # same weights; a 4x cheaper mask head (it runs on every ROI)
RPN_AND_HEADS = r"(mrcnn\_.*)|(rpn\_.*)"
STEPS = 90
LEARNING_RATE = 0.03
#: two epochs of 30 steps at the over-fitting rate, then one at a tenth of it to settle (a single
#: 90-step group at 0.03 ends wherever the last large steps left it: sometimes a confident box on
#: empty background)
SCHEDULE = [EpochGroup(RPN_AND_HEADS, 2, LEARNING_RATE), EpochGroup(RPN_AND_HEADS, 1, LEARNING_RATE / 10)]
STEPS_PER_EPOCH = 30
VIEW = SegmentOptions(image_size=128, padding=0.0, dilation=0)


def synthetic():
    image = np.full((128, 128, 3), 30, np.uint8)
    labels = np.zeros((128, 128), np.int32)
    yy, xx = np.mgrid[:128, :128]
    for i, (cy, cx, r) in enumerate([(32, 34, 16), (80, 88, 19), (96, 28, 14)]):
        disc = (yy - cy) ** 2 + (xx - cx) ** 2 < r * r
        labels[disc] = i + 1
        image[disc] = (200, 180, 160)
    return image, labels


@pytest.fixture(scope="module")
def fixture_h5(oracle_dir, tmp_path_factory):
    """The oracle's seeded 2-class legacy file (only the plain layout: conftest's fixture writes two)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("gen_fixture_weights_training", oracle_dir / "gen_fixture_weights.py")
    gen = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(gen)
    path = tmp_path_factory.mktemp("fixture") / "fixture.h5"
    gen.write_fixture(str(path), gen.load_manifest(str(oracle_dir / "weights_manifest.json")))
    return path


@pytest.fixture(scope="module")
def trained(fixture_h5, tmp_path_factory):
    from types import SimpleNamespace

    keras.utils.set_random_seed(0)
    trainer = MaskRCNNTrainer(TINY, seed=0)
    report = trainer.load_weights(fixture_h5)  # a 2-class legacy file: fine-tuning start
    assert report.ok
    image, labels = synthetic()
    out = tmp_path_factory.mktemp("overfit")
    recorder = RecordingReporter()
    history = trainer.train([(image, labels)], SCHEDULE, out_dir=out, steps_per_epoch=STEPS_PER_EPOCH,
                            augment=Augment.none(), reporter=recorder)
    losses = [step for record in history.epochs for step in record.step_losses]
    return SimpleNamespace(trainer=trainer, history=history, losses=losses, out=out,
                           image=image, labels=labels, recorder=recorder)


def test_overfit_drives_every_loss_down(trained):
    assert len(trained.losses) == STEPS
    # the head losses of a step depend on how many proposals happen to be positive: compare the largest of
    # the first 10 steps with the median of the last 20
    early = {k: max(step[k] for step in trained.losses[:10]) for k in LOSS_NAMES}
    late = {k: float(np.median([step[k] for step in trained.losses[-20:]])) for k in LOSS_NAMES}
    for name in LOSS_NAMES:
        assert early[name] > 0, name
        assert late[name] < 0.5 * early[name], (name, early[name], late[name])
    assert late["rpn_class_loss"] < 0.1 and late["mrcnn_class_loss"] < 0.1
    record = trained.history.epochs[0]
    assert [e.epoch for e in trained.history.epochs] == [1, 2, 3]
    assert [e.learning_rate for e in trained.history.epochs] == [LEARNING_RATE, LEARNING_RATE, LEARNING_RATE / 10]
    assert record.steps == STEPS_PER_EPOCH and set(LOSS_NAMES) <= set(record.losses) and record.seconds_per_step > 0
    # progress: one stage, one labelled step per batch
    assert trained.recorder.stages == [("training", STEPS)] and len(trained.recorder.labels) == STEPS
    assert trained.recorder.labels[0][1].startswith("epoch 1 rpn_cls ") and " loss " in trained.recorder.labels[0][1]


def test_overfit_model_detects_the_training_objects(trained):
    """The three nuclei are the model's three most confident detections, with their masks.

    Only the top three are scored: 90 steps on one image leave a few confident extra boxes (two nuclei
    in one box, a part of one), and nucleAIzer's merge paints lower-scoring detections over higher
    ones (docs/method.md §2.3), so the full label image depends on those leftovers from run to run.
    """
    from nucleaizer_tf.maskrcnn.inference import Detections, detect, detections_to_labels

    found = detect(trained.trainer.model, trained.image, VIEW)
    top = Detections(rois=found.rois[:3], class_ids=found.class_ids[:3], scores=found.scores[:3],
                     box_masks=found.box_masks[:3], image_shape=found.image_shape,
                     network_size=found.network_size)
    assert len(top) == 3 and top.scores.min() > 0.9, found.scores
    score = score_image(trained.labels, detections_to_labels(top, VIEW))
    assert score.n_gt == 3 and score.tp == 3 and score.fp == 0, score
    assert min(score.matched_ious) > 0.7, score


def test_checkpoint_is_legacy_and_predicts_in_a_fresh_model(trained):
    assert [epoch for epoch, _ in find_checkpoints(trained.out)] == [1, 2, 3]
    epoch, path = find_checkpoints(trained.out)[-1]
    assert path.name == "mask_rcnn_nuclei_0003.h5"
    info = inspect_legacy_h5(path)
    assert info["n_layers_with_weights"] == 233 and info["n_arrays"] == 690
    fresh = MaskRCNN(TINY)
    report = load_legacy_weights(fresh, path, strict=True)
    assert report.ok and report.n_arrays == 690
    np.testing.assert_array_equal(fresh.segment(trained.image, VIEW),
                                  trained.trainer.model.segment(trained.image, VIEW))
    state = json.loads((trained.out / "train_state.json").read_text())
    assert state["history"]["epochs"][-1]["checkpoint"] == str(path)


def test_interrupted_training_resumes(trained, tmp_path):
    trainer = trained.trainer
    item = [(trained.image, trained.labels)]
    groups = [EpochGroup(RPN_AND_HEADS, 2, 1e-4)]

    class Interrupt(RecordingReporter):  # Ctrl-C during the first step of epoch 2
        def stage(self, name, total=None):
            def advance(label=None):
                if label.startswith("epoch 2"):
                    raise KeyboardInterrupt
            return contextlib.nullcontext(advance)

    with pytest.raises(KeyboardInterrupt):
        trainer.train(item, groups, out_dir=tmp_path, steps_per_epoch=2, augment=Augment.none(), reporter=Interrupt())
    assert [e for e, _ in find_checkpoints(tmp_path)] == [1]
    epoch1 = [w.numpy().copy() for w in trainer.model.keras_model.get_layer("mrcnn_mask").weights]
    trainer.model.keras_model.get_layer("mrcnn_mask").weights[0].assign(
        np.zeros_like(epoch1[0]))  # what the interrupted epoch left must not survive the resume

    recorder = RecordingReporter()
    history = trainer.train(item, groups, out_dir=tmp_path, steps_per_epoch=2, augment=Augment.none(), resume=True,
                            reporter=recorder)
    assert history.resumed_from == 1 and recorder.stages == [("training", 2)]  # only epoch 2 is left
    assert [label.split()[:2] for _, label in recorder.labels] == [["epoch", "2"]] * 2
    assert [e.epoch for e in history.epochs] == [1, 2]
    assert [e for e, _ in find_checkpoints(tmp_path)] == [1, 2]
    kernel = trainer.model.keras_model.get_layer("mrcnn_mask").weights[0].numpy()
    assert np.abs(kernel - epoch1[0]).max() < 1e-2 and np.abs(kernel).max() > 0  # continued from checkpoint 1


def test_layer_groups_follow_the_original_regexes(trained):
    trainer = trained.trainer
    every = [layer.name for layer in trainer.selected_layers("all")]
    assert len(every) == 235  # 233 legacy groups, rpn_model counted as its three layers
    heads = {layer.name for layer in trainer.selected_layers("heads")}
    assert {"rpn_conv_shared", "fpn_c5p5", "mrcnn_mask", "mrcnn_class_bn1"} <= heads
    assert not any(n.startswith(("res", "bn", "conv1")) for n in heads)
    five = {layer.name for layer in trainer.selected_layers("5+")}
    assert {"res5a_branch2a", "bn5c_branch2c", "res5a_branch1"} <= five and "res4w_branch2c" not in five
    assert heads < five
    four = {layer.name for layer in trainer.selected_layers("4+")}
    three = {layer.name for layer in trainer.selected_layers("3+")}
    assert five < four < three and "res4a_branch2a" in four and "res3a_branch2a" in three
    assert "res2a_branch2a" not in three and "bn_conv1" in every
    train, decay = trainer.trainable_variables("heads")
    bn_params = 2 * sum(1 for n in heads if "_bn" in n)  # gamma and beta train, but without weight decay
    assert len(train) - len(decay) == bn_params
    assert set(LAYER_REGEX) == {"all", "3+", "4+", "5+", "heads"}
    step, optimizer = trainer.make_step("heads", 0.001)
    assert optimizer.global_clipnorm == 5.0 and optimizer.momentum == 0.9


def test_train_json_in_the_original_format(tmp_path):
    path = tmp_path / "train.json"
    path.write_text(json.dumps({"train_params": {
        "train_dir": "kaggle_workflow/outputs/train_maskrcnn", "input_model": "mask_rcnn_coco.h5",
        "blank_mrcnn": "true", "output_model": "out.h5",
        "epoch_groups": [{"layers": "all", "epochs": "1", "learning_rate": "0.001"},
                         {"layers": "5+", "epochs": "1", "learning_rate": "0.0005"},
                         {"layers": "heads", "epochs": "1", "learning_rate": "0.0001"}],
        "step_ratio": "1.0", "show_inputs": "false", "random_augmentation_level": "0", "train_to_val_seed": "0",
        "train_to_val_ratio": "0.0", "use_eval_in_val": "false", "detection_nms_threshold": "0.35",
        "rpn_nms_threshold": "0.55", "image_size": "1024"}}))
    plan = read_train_json(path)
    assert [(g.layers, g.epochs, g.learning_rate) for g in plan.epoch_groups] == [
        ("all", 1, 0.001), ("5+", 1, 0.0005), ("heads", 1, 0.0001)]
    assert plan.blank_mrcnn and plan.train_to_val_seed == "0" and plan.train_to_val_ratio == 0.0
    assert plan.steps_per_epoch(15) == 15 and plan.image_size == 1024
    cfg = plan.config()
    assert cfg.IMAGE_MAX_DIM == 1024 and cfg.RPN_NMS_THRESHOLD == 0.55 and cfg.TRAIN_ROIS_PER_IMAGE == 512
    path.write_text(json.dumps({"epoch_groups": [{"layers": "heads", "epochs": 1, "learning_rate": 0.001}],
                                "random_augmentation_level": 2}))
    with pytest.raises(NucleaizerError, match="random_augmentation_level"):
        read_train_json(path)
    path.write_text(json.dumps({"epoch_groups": [{"layers": "(unclosed", "epochs": 1, "learning_rate": 0.001}]}))
    with pytest.raises(NucleaizerError, match="layers"):
        read_train_json(path)
