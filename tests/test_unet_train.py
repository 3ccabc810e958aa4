"""The one U-Net training loop (`nucleaizer_tf.unet.train`): loss, fitting, checkpoints, stopping."""

import os

import numpy as np
import pytest

tf = pytest.importorskip("tensorflow")
import keras  # noqa: E402

from nucleaizer_tf.data import Augment  # noqa: E402
from nucleaizer_tf.synthetic import synthetic_nuclei  # noqa: E402
from nucleaizer_tf.unet.model import build_unet  # noqa: E402
from nucleaizer_tf.unet.train import TrainConfig, save_weights_atomic, soft_jaccard_loss, train_unet  # noqa: E402


def _jaccard(y, x):
    return float(soft_jaccard_loss(tf.constant(y, tf.float32), tf.constant(x, tf.float32)))


def test_soft_jaccard_hand_computed():
    # I = 1·1 + 0·1 = 1; U = (1+1-1) + (0+1-0) = 2
    assert _jaccard([1.0, 1.0], [1.0, 0.0]) == pytest.approx(-0.5)
    # I = 0.5, U = 0.5 + 1 - 0.5 = 1
    assert _jaccard([1.0], [0.5]) == pytest.approx(-0.5)
    # perfect soft match: I = Σ x², U = Σ (2x - x²)
    x = np.array([0.2, 0.9, 1.0])
    assert _jaccard(x, x) == pytest.approx(-(x * x).sum() / (2 * x - x * x).sum(), rel=1e-6)
    # nothing predicted, nothing there: (0 + 1e-40) / (0 + 1e-40) = 1 (the eps survives in float64)
    assert _jaccard(np.zeros((2, 4, 4, 1)), np.zeros((2, 4, 4, 1))) == -1.0
    # something there, nothing predicted: 1e-40 / (Σy + 1e-40) ~ 0
    assert _jaccard([1.0, 0.0], [0.0, 0.0]) == pytest.approx(0.0, abs=1e-30)
    # the whole batch is one sum (not a mean of per-image ratios)
    y = np.array([[1.0, 1.0], [1.0, 0.0]])
    x = np.array([[1.0, 0.0], [1.0, 0.0]])
    assert _jaccard(y, x) == pytest.approx(-2 / 3)


def _foreground_target(image, labels):
    return image, tf.cast(labels > 0, tf.float32)[:, :, None]


def _tiny_set(n=2, size=64):
    items = []
    for seed in range(n):
        s = synthetic_nuclei((size, size), 6, 14.0, seed=seed)
        items.append((s.image, s.labels.astype(np.int32)))
    return items


def _tiny_net():
    keras.utils.set_random_seed(0)
    return build_unet(3, 1, base_filters=4, depth=2, name="tiny")


def _config(**kw):
    base = dict(epochs=12, batch_size=2, crop_size=64, steps_per_epoch=6, learning_rate=1e-2,
                augment=Augment.none(), val_crop_size=None, seed=0)
    base.update(kw)
    return TrainConfig(**base)


def test_trainer_overfits_a_tiny_synthetic_set():
    items = _tiny_set()
    model = _tiny_net()
    history = train_unet(model, items, items, target_fn=_foreground_target, loss=soft_jaccard_loss,
                         config=_config())
    assert len(history.loss) == 12
    assert history.loss[0] > -0.6  # starts poor...
    assert min(history.loss) < -0.8  # ...and fits: soft Jaccard above 0.8
    assert history.monitor == "val_loss" and history.best_value == min(history.val_loss) < -0.8
    assert history.val_loss[history.best_epoch - 1] == history.best_value  # epochs count from 1


def test_best_checkpoint_is_atomic_and_reloadable(tmp_path):
    items = _tiny_set()
    path = tmp_path / "ckpt" / "best.weights.h5"
    model = _tiny_net()
    history = train_unet(model, items, items[:1], target_fn=_foreground_target, loss=soft_jaccard_loss,
                         config=_config(epochs=4, checkpoint_path=path))
    assert path.is_file()
    assert sorted(os.listdir(path.parent)) == ["best.weights.h5"]  # no temporary left behind
    fresh = _tiny_net()
    fresh.load_weights(path)
    # restore_best: the trained model holds the best weights, which are the checkpoint's
    for a, b in zip(model.weights, fresh.weights):
        np.testing.assert_array_equal(a.numpy(), b.numpy())
    assert 1 <= history.best_epoch <= 4
    best = history.epochs[history.best_epoch - 1]
    assert best.checkpoint == str(path)  # the record of the epoch that wrote the checkpoint names it


def test_failed_save_keeps_the_previous_file(tmp_path):
    model = _tiny_net()
    path = tmp_path / "m.weights.h5"
    save_weights_atomic(model, path)
    before = path.read_bytes()

    def explode(filepath, overwrite=True):
        with open(filepath, "wb") as fh:
            fh.write(b"half a file")
        raise OSError("disk full")

    model.save_weights = explode
    with pytest.raises(OSError, match="disk full"):
        save_weights_atomic(model, path)
    assert path.read_bytes() == before
    assert os.listdir(tmp_path) == ["m.weights.h5"]


def test_config_checks_and_schedule():
    with pytest.raises(ValueError, match="weights.h5"):
        TrainConfig(checkpoint_path="model.h5")
    with pytest.raises(ValueError):
        TrainConfig(epochs=0)
    items = _tiny_set(1)
    model = _tiny_net()
    history = train_unet(model, items, None, target_fn=_foreground_target, loss=soft_jaccard_loss,
                         config=_config(epochs=4, steps_per_epoch=1, lr_milestones=(1, 3), lr_gamma=0.1))
    assert history.learning_rates == pytest.approx([1e-2, 1e-3, 1e-3, 1e-4])
    # no validation set: the training loss is monitored
    assert history.monitor == "loss" and history.monitored == history.loss
    assert history.val_loss == [None] * 4


def test_early_stopping_and_progress_stop():
    items = _tiny_set(1)
    model = _tiny_net()
    # learning rate 0: the validation loss never improves after the first epoch
    history = train_unet(model, items, items, target_fn=_foreground_target, loss=soft_jaccard_loss,
                         config=_config(epochs=10, steps_per_epoch=1, learning_rate=0.0, early_stopping_patience=2))
    assert history.stopped_early and len(history.loss) == 3 and history.best_epoch == 1
    seen = []
    history = train_unet(model, items, None, target_fn=_foreground_target, loss=soft_jaccard_loss,
                         config=_config(epochs=10, steps_per_epoch=1),
                         on_epoch=lambda record: seen.append(record.epoch) or record.epoch == 2)
    assert seen == [1, 2] and len(history.loss) == 2 and not history.stopped_early


def test_progress_goes_to_the_reporter_one_step_per_batch():
    from nucleaizer_tf.progress import RecordingReporter

    recorder = RecordingReporter()
    train_unet(_tiny_net(), _tiny_set(1), None, target_fn=_foreground_target, loss=soft_jaccard_loss,
               config=_config(epochs=2, steps_per_epoch=3), reporter=recorder, name="member A")
    assert recorder.stages == [("member A", 6)]
    labels = [label for _, label in recorder.labels]
    assert len(labels) == 6 and labels[0].startswith("epoch 1 loss ") and labels[-1].startswith("epoch 2 loss ")


def test_one_pass_per_epoch_without_steps_per_epoch():
    items = _tiny_set(3, size=48)
    model = _tiny_net()
    history = train_unet(model, items, None, target_fn=_foreground_target, loss=soft_jaccard_loss,
                         config=_config(epochs=2, steps_per_epoch=None, crop_size=32))
    assert history.steps == [2, 2]  # 3 examples, batch 2, last partial batch kept (as the original)
