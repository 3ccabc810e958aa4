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
    """The settings of one style's pix2pix training (the original's values by default).

    Attributes
    ----------
    ngf, ndf : int
        Filters of the generator's and the discriminator's outermost level (64, 64).
    depth : int
        Generator down-sampling steps (8 for 256 tiles).
    n_layers : int
        Discriminator stride-2 layers (3: the 70×70 PatchGAN).
    tile : int
        Side of the training tiles (256).
    dropout : float
        Generator dropout (0.5).
    lambda_l1 : float
        Weight λ of the L1 term (100).
    lr, beta_1, beta_2 : float
        Adam settings of both networks (2e-4, 0.5, 0.999).
    iterations : int
        Constant-lr budget: niter = iterations // n_tiles epochs (5000).
    decay_epochs : int
        Epochs of linear learning-rate decay after them (100).
    snapshot_every : int or None
        docs/method.md, quirk Q12: use the generator of the last multiple of this step (5000); None keeps
        the final generator.
    flip : bool
        Random horizontal flip of both halves (True).
    seed : int
        Seeds Keras (weights, dropout) and the data stream (0).

    Examples
    --------
    >>> config = Pix2PixConfig(depth=6, tile=64, ngf=16, ndf=16)  # a small model for 64 x 64 tiles
    >>> config.to_dict()["tile"], config.snapshot_every
    (64, 5000)
    """

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
        """The settings as a plain dict (`dataclasses.asdict`)."""
        return asdict(self)


def schedule(n_tiles: int, iterations: int = 5000, decay_epochs: int = 100) -> tuple[int, int, int]:
    """(niter, total epochs, total steps) for a cluster of `n_tiles` training pairs.

    niter = max(1, iterations // n_tiles) constant-lr epochs, then `decay_epochs` decaying ones; one
    epoch is one pass over the n_tiles pairs (batch 1).

    Parameters
    ----------
    n_tiles : int
        Training pairs of the cluster; ValueError below 1.
    iterations : int
        The constant-lr budget (5000).
    decay_epochs : int
        Decay epochs (100).

    Returns
    -------
    tuple of int
        (niter, niter + decay_epochs, (niter + decay_epochs) · n_tiles).

    Examples
    --------
    >>> schedule(30)  # 166 + 100 epochs of 30 steps
    (166, 266, 7980)
    >>> schedule(12000)  # more tiles than iterations: one constant epoch
    (1, 101, 1212000)
    """
    if n_tiles < 1:
        raise ValueError("pix2pix needs at least one training pair")
    niter = max(1, iterations // n_tiles)
    epochs = niter + max(0, decay_epochs)
    return niter, epochs, epochs * n_tiles


def lr_factor(epoch: int, niter: int, decay_epochs: int) -> float:
    """pix2pix's linear rule: 1 - max(0, epoch + 2 - niter) / (decay_epochs + 1), clipped at 0.

    Parameters
    ----------
    epoch : int
        0-based epoch.
    niter : int
        Constant-lr epochs (`schedule`).
    decay_epochs : int
        Decay epochs.

    Returns
    -------
    float
        The factor the base learning rate is multiplied by, in [0, 1].

    Examples
    --------
    >>> [round(lr_factor(epoch, 166, 100), 4) for epoch in (0, 164, 165, 200, 265)]
    [1.0, 1.0, 0.9901, 0.6436, 0.0]
    """
    return max(0.0, 1.0 - max(0, epoch + 2 - niter) / float(decay_epochs + 1))


def _to_pair(image, labels):
    mask = tf.cast(labels > 0, tf.float32)[:, :, None] * tf.ones([1, 1, 3], tf.float32)
    return mask * 2.0 - 1.0, image * 2.0 - 1.0


def pix2pix_dataset(examples: Sequence[tuple[np.ndarray, np.ndarray]], tile: int, *, seed: int = 0,
                    flip: bool = True) -> tf.data.Dataset:
    """Endless stream of ([-1, 1] mask (1, t, t, 3), [-1, 1] image (1, t, t, 3)) batches, reshuffled per pass.

    Random `tile` crops of each pair (`make_dataset`), a random horizontal flip of both if `flip`; the
    mask is the binary foreground replicated to 3 channels.

    Parameters
    ----------
    examples : sequence of (numpy.ndarray, numpy.ndarray)
        (uint8 image H×W×3, labels H×W) pairs.
    tile : int
        Crop side t.
    seed : int
        Seed of the stream.
    flip : bool
        Random horizontal flips.

    Returns
    -------
    tf.data.Dataset
        Yields (mask, image) float32 batches of one.

    Examples
    --------
    >>> mask, image = next(iter(pix2pix_dataset(tiles, 256)))  # doctest: +SKIP
    >>> mask.shape, image.shape  # doctest: +SKIP
    (TensorShape([1, 256, 256, 3]), TensorShape([1, 256, 256, 3]))
    """
    augment = Augment(flip_h=flip, flip_v=False, rot90=False, color_jitter=0.0)
    return make_dataset(list(examples), crop_size=tile, batch_size=1, augment=augment, target_fn=_to_pair,
                        repeat=True, seed=seed, shuffle=True)


@dataclass
class TrainResult:
    """What `Pix2PixTrainer.fit` did.

    Attributes
    ----------
    steps : int
        Training steps run.
    niter : int
        Constant-lr epochs of the schedule.
    epochs : int
        Epochs of the schedule (niter + decay epochs).
    seconds_per_iteration : float
        Mean time per step from the second step on (NaN for runs of one step).
    generator_step : int
        The step whose generator weights the model now holds (Q12).
    losses : dict of str to list of float
        Per-epoch means of "d", "g_gan" and "l1".

    Examples
    --------
    >>> result = TrainResult(steps=7980, niter=166, epochs=266, seconds_per_iteration=0.05, generator_step=5000)
    >>> result.to_dict()["generator_step"]  # docs/method.md, quirk Q12: the step-5000 snapshot
    5000
    """

    steps: int
    niter: int
    epochs: int
    seconds_per_iteration: float
    generator_step: int  # the step whose generator weights the model now holds (Q12)
    losses: dict[str, list[float]] = field(default_factory=dict)  # per-epoch means

    def to_dict(self) -> dict:
        """The result as a plain dict (`dataclasses.asdict`)."""
        return asdict(self)


class Pix2PixTrainer:
    """Generator + discriminator + optimisers for one style; `fit` runs the original schedule.

    Parameters
    ----------
    config : Pix2PixConfig
        The settings; `config.seed` seeds Keras when the trainer is built.
    generator : keras.Model, optional
        A generator to train instead of a new `unet_generator(config.ngf, config.depth)`.

    Attributes
    ----------
    config : Pix2PixConfig
        As given.
    generator, discriminator : keras.Model
        The two networks (the discriminator returns logits).
    g_opt, d_opt : keras.optimizers.Adam
        Their optimisers (lr, beta_1, beta_2 of the config, epsilon 1e-8).

    Examples
    --------
    >>> trainer = Pix2PixTrainer(Pix2PixConfig(depth=6, tile=64, ngf=16, ndf=16))  # doctest: +SKIP
    >>> result = trainer.fit(tiles)  # (image uint8 64×64×3, labels) pairs  # doctest: +SKIP
    >>> images = generate_images(trainer.generator, masks)  # doctest: +SKIP
    """

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
        """Set the learning rate of both optimisers."""
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

    Parameters
    ----------
    generator : keras.Model
        The generator.
    examples : sequence of (numpy.ndarray, numpy.ndarray)
        (uint8 image, labels) pairs whose sides fit the generator (multiples of 2^depth).
    training : bool
        Call the generator in training mode (True) or inference mode.
    repeats : int
        Passes over `examples` (more passes average out the dropout noise).

    Returns
    -------
    float
        The mean over all pairs and passes of each pair's mean absolute error.

    Examples
    --------
    >>> mean_l1(trainer.generator, validation_tiles, repeats=3)  # doctest: +SKIP
    0.1873
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
