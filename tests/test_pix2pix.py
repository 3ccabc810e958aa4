"""pix2pix generator / discriminator / training / synthesis (spec 6.6-6.7), kept small for CPU."""

import numpy as np
import pytest

pytest.importorskip("tensorflow")

from nucleaizer_tf.pix2pix import (Pix2PixConfig, Pix2PixTrainer, generate_images, output_to_uint8,  # noqa: E402
                                   patch_discriminator, schedule, unet_generator)
from nucleaizer_tf.pix2pix.train import lr_factor, mean_l1  # noqa: E402
from nucleaizer_tf.synthetic import synthetic_nuclei  # noqa: E402


def _trainable(model):
    return int(sum(np.prod(v.shape) for v in model.trainable_variables))


def test_original_sizes():
    assert _trainable(patch_discriminator(64, 3)) == 2_768_705  # spec 6.6 / 9
    g = unet_generator(64, 8)
    assert round(_trainable(g) / 1e4) == 5441  # ≈ 54.41 M
    d = patch_discriminator(64, 3)
    x = np.zeros((1, 256, 256, 3), np.float32)
    assert d([x, x]).shape == (1, 30, 30, 1)  # 70×70 patches on a 256 tile (PyTorch geometry)


def test_generator_depth_and_any_multiple_size():
    g = unet_generator(8, 6)
    for size in (64, 128):
        y = g(np.zeros((1, size, size, 3), np.float32), training=False)
        assert y.shape == (1, size, size, 3) and np.abs(np.asarray(y)).max() <= 1.0
    assert [layer.name for layer in g.layers if "dropout" in layer.name] == ["up4_dropout"]
    assert sorted(layer.name for layer in unet_generator(8, 8).layers if "dropout" in layer.name) == \
        ["up4_dropout", "up5_dropout", "up6_dropout"]


def test_schedule_and_learning_rate_rule():
    assert schedule(3) == (1666, 1766, 5298)  # 5000 // 3 + 100 epochs of 3 iterations
    assert schedule(60) == (83, 183, 10980)
    niter = 1666
    assert lr_factor(0, niter, 100) == 1.0 and lr_factor(niter - 2, niter, 100) == 1.0
    assert lr_factor(niter - 1, niter, 100) == pytest.approx(1 - 1 / 101)
    assert lr_factor(niter + 99, niter, 100) == 0.0


def _pairs(n, seed0):
    return [(s.image, s.labels) for s in (synthetic_nuclei((64, 64), 6, 12, seed=seed0 + i) for i in range(n))]


def test_training_reduces_held_out_l1():
    train, held_out = _pairs(8, 0), _pairs(4, 100)
    config = Pix2PixConfig(ngf=8, ndf=8, depth=6, tile=64, iterations=240, decay_epochs=10, snapshot_every=None)
    trainer = Pix2PixTrainer(config)
    before = mean_l1(trainer.generator, held_out, repeats=2)
    result = trainer.fit(train)
    after = mean_l1(trainer.generator, held_out, repeats=2)
    assert result.steps == (240 // 8 + 10) * 8
    assert after < 0.5 * before, (before, after)
    assert len(result.losses["l1"]) == result.epochs and result.losses["l1"][-1] < result.losses["l1"][0]
    assert result.seconds_per_iteration > 0


def test_q12_snapshot_generator_is_used():
    config = Pix2PixConfig(ngf=4, ndf=4, depth=6, tile=64, iterations=4, decay_epochs=2, snapshot_every=5)
    trainer = Pix2PixTrainer(config)
    result = trainer.fit(_pairs(2, 0))
    assert result.steps == 8 and result.generator_step == 5  # the last multiple of snapshot_every
    trainer.reset()
    final = trainer.fit(_pairs(2, 0), max_steps=3)
    assert final.generator_step == 3  # shorter than one snapshot: the final generator


def test_generation_in_training_mode_is_stochastic_and_leaves_the_model_unchanged():
    g = unet_generator(8, 6)
    labels = synthetic_nuclei((128, 128), 10, 14, seed=1).labels
    before = [v.numpy().copy() for v in g.non_trainable_variables]
    a, b = generate_images(g, [labels, labels])  # quirk Q13: BN batch statistics + dropout on
    assert a.dtype == np.uint8 and a.shape == (128, 128, 3)
    assert not np.array_equal(a, b)
    assert all(np.array_equal(x, v.numpy()) for x, v in zip(before, g.non_trainable_variables))
    c, d = generate_images(g, [labels, labels], training=False)
    assert np.array_equal(c, d)


def test_output_conversion_truncates():
    assert output_to_uint8(np.array([-1.0, 0.0, 1.0, 2.0])).tolist() == [0, 127, 255, 255]
