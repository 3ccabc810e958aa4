"""pix2pix training (docs/method.md §6.6): paired (mask, image) tiles from the shared tf.data layer, BCE GAN + 100·L1.

Per iteration, as the original (batch 1): the generator renders the mask; the discriminator takes
one Adam step on 0.5·(BCE(D(mask, fake), 0) + BCE(D(mask, real), 1)); then the generator takes one
Adam step on BCE(D(mask, fake), 1) + λ·L1(fake, real) through the just-updated discriminator.
Adam lr 2e-4, betas (0.5, 0.999), eps 1e-8 for both.

Schedule (`schedule`): an epoch is one pass over the cluster's n tiles; `niter = iterations // n`
epochs at constant lr (iterations = 5000 in the original), then `decay_epochs` (100) epochs with
lr·(1 - max(0, e + 2 - niter) / (decay_epochs + 1)) for the 0-based epoch e: about 5000 + 100·n
steps. docs/method.md, quirk Q12: the original only saved the generator every 5000 steps, so synthesis used the
generator of step 5000·floor(total / 5000); `Pix2PixConfig.snapshot_every=5000` reproduces this
(`None`, or a run shorter than one snapshot, keeps the final generator).

Data: `pix2pix_dataset` feeds `make_dataset` with the cluster's (image, labels) tiles; augmentation
is the original's random horizontal flip of both halves; the mask becomes the binary foreground
replicated to 3 channels; both are scaled to [-1, 1] (direction BtoA: input mask, target image).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field

import keras
import numpy as np
import tensorflow as tf

from nucleaizer_tf.data.pipeline import Augment, make_dataset
from nucleaizer_tf.pix2pix.discriminator import patch_discriminator
from nucleaizer_tf.pix2pix.generator import unet_generator


@dataclass(frozen=True)
class Pix2PixConfig:
    ngf: int = 64
    ndf: int = 64
    depth: int = 8  # generator down-sampling steps (8 for 256 tiles)
    n_layers: int = 3
    tile: int = 256
    dropout: float = 0.5
    lambda_l1: float = 100.0
    lr: float = 2e-4
    beta_1: float = 0.5
    beta_2: float = 0.999
    iterations: int = 5000  # constant-lr budget: niter = iterations // n_tiles epochs
    decay_epochs: int = 100
    snapshot_every: int | None = 5000  # Q12: use the generator of the last multiple of this step
    flip: bool = True
    seed: int = 0

    def to_dict(self) -> dict:
        return asdict(self)


def schedule(n_tiles: int, iterations: int = 5000, decay_epochs: int = 100) -> tuple[int, int, int]:
    """(niter, total epochs, total steps) for a cluster of `n_tiles` training pairs."""
    if n_tiles < 1:
        raise ValueError("pix2pix needs at least one training pair")
    niter = max(1, iterations // n_tiles)
    epochs = niter + max(0, decay_epochs)
    return niter, epochs, epochs * n_tiles


def lr_factor(epoch: int, niter: int, decay_epochs: int) -> float:
    """pix2pix's linear rule: 1 - max(0, epoch + 2 - niter) / (decay_epochs + 1), clipped at 0."""
    return max(0.0, 1.0 - max(0, epoch + 2 - niter) / float(decay_epochs + 1))


def _to_pair(image, labels):
    mask = tf.cast(labels > 0, tf.float32)[:, :, None] * tf.ones([1, 1, 3], tf.float32)
    return mask * 2.0 - 1.0, image * 2.0 - 1.0


def pix2pix_dataset(examples: Sequence[tuple[np.ndarray, np.ndarray]], tile: int, *, seed: int = 0,
                    flip: bool = True) -> tf.data.Dataset:
    """Endless stream of ([-1, 1] mask (1, t, t, 3), [-1, 1] image (1, t, t, 3)) batches, reshuffled per pass."""
    augment = Augment(flip_h=flip, flip_v=False, rot90=False, color_jitter=0.0)
    return make_dataset(list(examples), crop_size=tile, batch_size=1, augment=augment, target_fn=_to_pair,
                        repeat=True, seed=seed, shuffle=True)


@dataclass
class TrainResult:
    steps: int
    niter: int
    epochs: int
    seconds_per_iteration: float
    generator_step: int  # the step whose generator weights the model now holds (Q12)
    losses: dict[str, list[float]] = field(default_factory=dict)  # per-epoch means

    def to_dict(self) -> dict:
        return asdict(self)


class Pix2PixTrainer:
    """Generator + discriminator + optimisers for one style; `fit` runs the original schedule."""

    def __init__(self, config: Pix2PixConfig = Pix2PixConfig(), generator: keras.Model | None = None):
        self.config = config
        keras.utils.set_random_seed(config.seed)
        self.generator = generator if generator is not None else unet_generator(config.ngf, config.depth,
                                                                                dropout=config.dropout)
        self.discriminator = patch_discriminator(config.ndf, config.n_layers)
        self.g_opt = keras.optimizers.Adam(config.lr, beta_1=config.beta_1, beta_2=config.beta_2, epsilon=1e-8)
        self.d_opt = keras.optimizers.Adam(config.lr, beta_1=config.beta_1, beta_2=config.beta_2, epsilon=1e-8)
        self.g_opt.build(self.generator.trainable_variables)
        self.d_opt.build(self.discriminator.trainable_variables)
        self._bce = keras.losses.BinaryCrossentropy(from_logits=True)
        self._step = tf.function(self._train_step, reduce_retracing=True)
        self._initial = (self.generator.get_weights(), self.discriminator.get_weights())

    def reset(self) -> None:
        """Back to the initial weights with fresh optimiser state, keeping the traced training step.

        Training several styles with one trainer saves the graph tracing (seconds on CPU) per style.
        """
        self.generator.set_weights(self._initial[0])
        self.discriminator.set_weights(self._initial[1])
        for opt in (self.g_opt, self.d_opt):
            for v in opt.variables:
                v.assign(tf.zeros_like(v))

    def set_learning_rate(self, lr: float) -> None:
        self.g_opt.learning_rate.assign(lr)
        self.d_opt.learning_rate.assign(lr)

    def _train_step(self, mask, image):
        g, d = self.generator, self.discriminator
        with tf.GradientTape() as g_tape:
            fake = g(mask, training=True)
            with tf.GradientTape() as d_tape:
                real_logits = d([mask, image], training=True)
                fake_logits = d([mask, tf.stop_gradient(fake)], training=True)
                d_loss = 0.5 * (self._bce(tf.zeros_like(fake_logits), fake_logits)
                                + self._bce(tf.ones_like(real_logits), real_logits))
            d_grads = d_tape.gradient(d_loss, d.trainable_variables)
            self.d_opt.apply_gradients(zip(d_grads, d.trainable_variables))
            fooled = d([mask, fake], training=True)
            g_gan = self._bce(tf.ones_like(fooled), fooled)
            l1 = tf.reduce_mean(tf.abs(fake - image))
            g_loss = g_gan + self.config.lambda_l1 * l1
        g_grads = g_tape.gradient(g_loss, g.trainable_variables)
        self.g_opt.apply_gradients(zip(g_grads, g.trainable_variables))
        return {"d": d_loss, "g_gan": g_gan, "l1": l1}

    def train_step(self, mask, image) -> dict[str, float]:
        """One D step and one G step on a batch of [-1, 1] (mask, image) tensors."""
        return {k: float(v) for k, v in self._step(mask, image).items()}

    def fit(self, examples: Sequence[tuple[np.ndarray, np.ndarray]], *,
            progress: Callable[[int, int, dict], None] | None = None, max_steps: int | None = None) -> TrainResult:
        """Train on one cluster's (image uint8 t×t×3, labels) tiles with the configured schedule."""
        cfg = self.config
        n = len(examples)
        niter, epochs, total = schedule(n, cfg.iterations, cfg.decay_epochs)
        if max_steps is not None:
            total = min(total, max_steps)
        stream = iter(pix2pix_dataset(examples, cfg.tile, seed=cfg.seed, flip=cfg.flip))
        history: dict[str, list[float]] = {"d": [], "g_gan": [], "l1": []}
        epoch_sums = {k: 0.0 for k in history}
        snapshot, snapshot_step = None, 0
        timed, started = 0, None
        for step in range(total):
            epoch = step // n
            if step % n == 0:
                self.set_learning_rate(cfg.lr * lr_factor(epoch, niter, cfg.decay_epochs))
            mask, image = next(stream)
            if step == 1:  # the first step traces the graph: time from the second on
                started = time.perf_counter()
            losses = self._step(mask, image)
            values = {k: float(v) for k, v in losses.items()}
            if step >= 1:
                timed += 1
            for k, v in values.items():
                epoch_sums[k] += v
            if (step + 1) % n == 0 or step + 1 == total:
                count = (step % n) + 1
                for k in history:
                    history[k].append(epoch_sums[k] / count)
                    epoch_sums[k] = 0.0
            if cfg.snapshot_every and (step + 1) % cfg.snapshot_every == 0:
                snapshot, snapshot_step = self.generator.get_weights(), step + 1
            if progress is not None:
                progress(step + 1, total, values)
        per_iteration = (time.perf_counter() - started) / timed if timed and started is not None else float("nan")
        generator_step = total
        if snapshot is not None and snapshot_step != total:
            self.generator.set_weights(snapshot)
            generator_step = snapshot_step
        return TrainResult(total, niter, epochs, per_iteration, generator_step, history)


def mean_l1(generator: keras.Model, examples: Sequence[tuple[np.ndarray, np.ndarray]], *, training: bool = True,
            repeats: int = 1) -> float:
    """Mean absolute error in [-1, 1] units between generator(mask) and image over (image, labels) pairs.

    `training=True` measures what synthesis produces (batch statistics, dropout on); BatchNorm's moving
    statistics are restored afterwards, so evaluation leaves the model unchanged.
    """
    saved = [v.numpy() for v in generator.non_trainable_variables]
    errors = []
    try:
        for _ in range(repeats):
            for image, labels in examples:
                x = np.repeat((np.asarray(labels) > 0)[None, :, :, None], 3, axis=-1).astype(np.float32) * 2 - 1
                y = np.asarray(image, np.float32)[None] / 255.0 * 2 - 1
                errors.append(float(np.mean(np.abs(generator(x, training=training).numpy() - y))))
    finally:
        for v, value in zip(generator.non_trainable_variables, saved):
            v.assign(value)
    return float(np.mean(errors))
