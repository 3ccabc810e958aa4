"""The one tf.data input layer: image/label pairs -> shuffled, cropped, augmented, batched tensors.

Every trainer (Mask R-CNN, the U-Net ensemble, pix2pix) starts from the same stream of
(image, labels) examples and differs only in the crop, the augmentations and the targets it
derives from the labels; so there is one `make_dataset`, and per-model targets are a `target_fn`
mapped after augmentation.

Design choices:
* The folders are small (tens to a few thousand images): pairs are decoded once in Python and kept
  in memory as one flat tensor per kind plus offsets, so examples of different sizes coexist and
  every later step is an in-graph op (`cache=False` instead reads the files on every visit).
* Reproducibility independent of parallelism: every random draw is a stateless op whose seed is
  derived from (seed, iteration, pass, example index) with `stateless_fold_in`; nothing depends on
  the order in which parallel map calls run, nor on `tf.random.set_seed`. A new iteration over the
  same dataset object (Keras starts one per epoch) gets a fresh stream: the k-th iteration of any
  dataset built with the same arguments yields the same elements.
* Geometry (crop, flips, rot90) is applied with the same draws to image and labels, so instance ids
  stay aligned with pixels; colour jitter touches the image only. Labels stay int32 instance ids.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from nucleaizer_tf.data.loading import load_pair
from nucleaizer_tf.data.pairs import Pair
from nucleaizer_tf.system import import_tensorflow

tf = import_tensorflow()  # the first import of TensorFlow without its start-up chatter

AUTOTUNE = tf.data.AUTOTUNE
_SALT = 0x6E75636C  # "nucl": second word of the root seed, so seed 0 is not the all-zero key
_GRAY = (0.299, 0.587, 0.114)  # ITU-R 601 luma, as torchvision's rgb_to_grayscale


@dataclass(frozen=True)
class Augment:
    """Random, label-preserving transforms applied per example (all off = `Augment.none()`).

    The crop is not here but in `make_dataset`: it fixes the output shape, which a validation set
    needs too, while these transforms are what one switches off for validation.

    * flip_h / flip_v: left-right / up-down flip, each with probability 0.5.
    * rot90: rotate by k·90° with k uniform in {0, 1, 2, 3} (needs a square crop to batch).
    * color_jitter: torchvision `ColorJitter` strengths on the image only; a float s means
      (brightness, contrast, saturation, hue) = (s, s, s, s), or give a 4-tuple. Brightness, contrast
      and saturation factors are drawn from [max(0, 1 - x), 1 + x], the hue shift from [-h, h]
      (fraction of the colour circle, h <= 0.5); the four are applied in a random order, as torchvision.
    * scale: (low, high) zoom factor drawn log-uniformly per example; the crop is taken from a window of
      crop / factor pixels and resized to the crop (image bilinear with antialiasing, labels nearest),
      so the objects' size varies by that factor. Needs a crop.
    * stain: haematoxylin–eosin–DAB jitter for colour (stained) images: in scikit-image's HED
      optical-density space each stain is scaled by a factor in [1 - s, 1 + s] and shifted by
      [-s/4, s/4]; grey images are left alone.
    * grey / invert: probabilities of turning the image grey (luma) and of inverting it (bright
      nuclei on dark become dark on bright and back: fluorescence ↔ bright-field).
    * blur: Gaussian blur with sigma uniform in [0, blur] pixels, on half of the examples.
    * noise: Gaussian noise with a standard deviation uniform in [0, noise] (image range 1), on half of
      the examples.

    Photometric transforms run in this order: stain, colour jitter, grey, invert, blur, noise.

    The presets are `none()`, `unet()`, `pix2pix()` and `maskrcnn()` (the original trainings).

    Parameters
    ----------
    flip_h : bool, optional
        Random left-right flip (default True).
    flip_v : bool, optional
        Random up-down flip (default True).
    rot90 : bool, optional
        Random rotation by a multiple of 90° (default True).
    color_jitter : float or tuple of 4 floats, optional
        ColorJitter strengths (brightness, contrast, saturation, hue), all >= 0 and hue <= 0.5; a float
        is used for all four (default 0.0 = off). Stored as a 4-tuple of floats.
    scale : tuple of 2 floats, optional
        (low, high) zoom range (default None = off).
    grey, invert : float, optional
        Probabilities in [0, 1] (default 0 = off).
    stain, blur, noise : float, optional
        Strengths, >= 0 (default 0 = off).

    Raises
    ------
    ValueError
        When `color_jitter` is negative, has a hue above 0.5 or is not a float or a 4-tuple; for a
        `scale` that is not 0 < low <= high; for probabilities outside [0, 1] or negative strengths.

    Examples
    --------
    >>> Augment(color_jitter=0.2).color_jitter
    (0.2, 0.2, 0.2, 0.2)
    >>> unet = Augment.unet()
    >>> unet.flip_h, unet.flip_v, unet.rot90, unet.color_jitter, unet.scale
    (True, False, False, (0.2, 0.2, 0.2, 0.2), None)
    >>> Augment.none() == Augment(False, False, False)
    True
    >>> Augment(scale=(0.8, 1.25), stain=0.1).photometric
    True
    """

    flip_h: bool = True
    flip_v: bool = True
    rot90: bool = True
    color_jitter: float | tuple[float, float, float, float] = 0.0
    scale: tuple[float, float] | None = None
    grey: float = 0.0
    invert: float = 0.0
    stain: float = 0.0
    blur: float = 0.0
    noise: float = 0.0

    def __post_init__(self):
        jitter = self.color_jitter
        jitter = (float(jitter),) * 4 if np.isscalar(jitter) else tuple(float(x) for x in jitter)
        if len(jitter) != 4 or min(jitter) < 0 or jitter[3] > 0.5:
            raise ValueError(
                f"color_jitter must be >= 0 (hue <= 0.5), as a float or a 4-tuple; got {self.color_jitter!r}")
        object.__setattr__(self, "color_jitter", jitter)
        if self.scale is not None:
            scale = tuple(float(x) for x in self.scale)
            if len(scale) != 2 or not 0 < scale[0] <= scale[1]:
                raise ValueError(f"scale must be None or (low, high) with 0 < low <= high, got {self.scale!r}")
            object.__setattr__(self, "scale", scale)
        for name in ("grey", "invert"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"{name} is a probability in [0, 1], got {getattr(self, name)!r}")
        for name in ("stain", "blur", "noise"):
            if not getattr(self, name) >= 0.0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)!r}")

    @property
    def photometric(self) -> bool:
        """Whether any transform of the image's values (not its geometry) is on."""
        return any(x > 0 for x in self.color_jitter) or self.field_transforms

    @property
    def field_transforms(self) -> bool:
        """Whether any of stain, grey, invert, blur or noise is on (colour jitter aside)."""
        return any(getattr(self, name) > 0 for name in ("grey", "invert", "stain", "blur", "noise"))

    @classmethod
    def none(cls) -> Augment:
        """No random transform (validation, inference-like streams)."""
        return cls(flip_h=False, flip_v=False, rot90=False, color_jitter=0.0)

    @classmethod
    def unet(cls) -> Augment:
        """The original U-Net training: horizontal flip + ColorJitter(0.2, 0.2, 0.2, 0.2) (docs/method.md §6.10)."""
        return cls(flip_h=True, flip_v=False, rot90=False, color_jitter=0.2)

    @classmethod
    def pix2pix(cls) -> Augment:
        """The original pix2pix training: horizontal flip only (docs/method.md §6.6), the same as `maskrcnn()`."""
        return cls.maskrcnn()

    @classmethod
    def maskrcnn(cls) -> Augment:
        """Matterport's default training augmentation: horizontal flip only (docs/method.md §6.11)."""
        return cls(flip_h=True, flip_v=False, rot90=False, color_jitter=0.0)


# --------------------------------------------------------------------------- sources


def _check_arrays(image, labels, where: str) -> tuple[np.ndarray, np.ndarray]:
    image, labels = np.asarray(image), np.asarray(labels)
    if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"{where}: image must be uint8 H×W×3, got {image.dtype} {image.shape}")
    if labels.ndim != 2 or not np.issubdtype(labels.dtype, np.integer):
        raise ValueError(f"{where}: labels must be a 2-D integer array, got {labels.dtype} {labels.shape}")
    if labels.shape != image.shape[:2]:
        raise ValueError(f"{where}: image is {image.shape[:2]} but labels are {labels.shape}")
    return image, labels.astype(np.int32)


class _MemorySource:
    """All examples in two flat tensors + offsets: random access by index inside the graph."""

    def __init__(self, examples: Sequence[tuple[np.ndarray, np.ndarray]]):
        shapes = np.array([lab.shape for _, lab in examples], dtype=np.int64)
        areas = shapes[:, 0] * shapes[:, 1]
        self._lab_off = tf.constant(np.concatenate([[0], np.cumsum(areas)[:-1]]), tf.int64)
        self._img_off = self._lab_off * 3
        self._shapes = tf.constant(shapes, tf.int64)
        self._images = tf.convert_to_tensor(np.concatenate([img.ravel() for img, _ in examples]))
        self._labels = tf.convert_to_tensor(np.concatenate([lab.ravel() for _, lab in examples]))

    def __call__(self, index):
        h, w = self._shapes[index][0], self._shapes[index][1]
        image = tf.reshape(tf.slice(self._images, [self._img_off[index]], [h * w * 3]), tf.stack([h, w, 3]))
        labels = tf.reshape(tf.slice(self._labels, [self._lab_off[index]], [h * w]), tf.stack([h, w]))
        return image, labels


class _LoadingSource:
    """Calls `load(index)` -> (uint8 H×W×3 image, int32 labels) on every visit: files read again each time
    (folders too large to hold in memory), or an `ExampleStore`'s memory map."""

    def __init__(self, load: Callable[[int], tuple[np.ndarray, np.ndarray]]):
        self._load = load

    def __call__(self, index):
        image, labels = tf.numpy_function(lambda i: self._load(int(i)), [index], [tf.uint8, tf.int32],
                                          stateful=False)
        image.set_shape([None, None, 3])
        labels.set_shape([None, None])
        return image, labels


# --------------------------------------------------------------------------- in-graph transforms


def _window(size, target: int, seed):
    """Indices of a random `target`-long window into `size` (offset 0 and overrun when size < target)."""
    room = tf.maximum(size - target, 0)
    offset = tf.random.stateless_uniform([], seed, minval=0, maxval=room + 1, dtype=tf.int64)
    index = offset + tf.range(target, dtype=tf.int64)
    return index, index < size


def _reflect(index, size):
    """numpy 'reflect' padding indices (edge not repeated), valid for any overrun and size >= 1."""
    period = tf.maximum(2 * (size - 1), 1)
    m = index % period
    return tf.where(m < size, m, period - m)


def random_crop(image, labels, crop_hw: tuple[int, int], seed, *, pad_mode: str = "constant", pad_value: int = 0):
    """Crop the same random `crop_hw` window from image (H×W×C) and labels (H×W); `seed`: shape-[2] int.

    A dimension smaller than the crop is padded at the bottom/right (as the original U-Net loader):
    labels with 0 (background) always; the image with `pad_value` ("constant") or by mirroring
    ("reflect", numpy's mode; note mirrored nuclei then carry no label). The window offset is drawn
    uniformly per dimension with stateless ops, so the same `seed` gives the same window.

    Parameters
    ----------
    image : tf.Tensor
        (H, W, C) image of any dtype.
    labels : tf.Tensor
        (H, W) label image (instance ids, 0 = background), any integer dtype.
    crop_hw : tuple of int
        The window size (h, w) in pixels.
    seed : tf.Tensor
        Shape-[2] integer stateless seed.
    pad_mode : {"constant", "reflect"}, optional
        How the image is padded where it is smaller than the crop (default "constant").
    pad_value : int, optional
        The image padding value for "constant", cast to the image's dtype (default 0).

    Returns
    -------
    image : tf.Tensor
        (h, w, C) crop of the image's dtype.
    labels : tf.Tensor
        (h, w) crop of the labels' dtype.

    Examples
    --------
    >>> import tensorflow as tf  # doctest: +SKIP
    >>> image, labels = tf.zeros([100, 120, 3], tf.uint8), tf.zeros([100, 120], tf.int32)  # doctest: +SKIP
    >>> crop, crop_labels = random_crop(image, labels, (128, 128), tf.constant([0, 1]))  # doctest: +SKIP
    >>> crop.shape, crop_labels.shape  # doctest: +SKIP
    (TensorShape([128, 128, 3]), TensorShape([128, 128]))
    """
    shape = tf.shape(labels, out_type=tf.int64)
    h, w = shape[0], shape[1]
    seed_y, seed_x = tf.unstack(tf.random.experimental.stateless_split(seed, 2))
    rows, rows_in = _window(h, crop_hw[0], seed_y)
    cols, cols_in = _window(w, crop_hw[1], seed_x)
    inside = rows_in[:, None] & cols_in[None, :]
    r, c = tf.minimum(rows, h - 1), tf.minimum(cols, w - 1)
    out_labels = tf.where(inside, tf.gather(tf.gather(labels, r, axis=0), c, axis=1), tf.zeros([], labels.dtype))
    if pad_mode == "reflect":
        out_image = tf.gather(tf.gather(image, _reflect(rows, h), axis=0), _reflect(cols, w), axis=1)
    else:
        out_image = tf.gather(tf.gather(image, r, axis=0), c, axis=1)
        out_image = tf.where(inside[:, :, None], out_image, tf.cast(pad_value, image.dtype))
    return out_image, out_labels


def random_zoom_crop(image, labels, crop_hw: tuple[int, int], scale: tuple[float, float], seed, *,
                     pad_mode: str = "constant", pad_value: int = 0):
    """`random_crop` of a window crop / f (f log-uniform in `scale`) resized to `crop_hw`: objects zoomed by f.

    The image is resized bilinearly with antialiasing (uint8 in, uint8 out), the labels by nearest
    neighbour, so instance ids stay ids.

    Parameters
    ----------
    image : tf.Tensor
        (H, W, 3) uint8 image.
    labels : tf.Tensor
        (H, W) integer label image.
    crop_hw : tuple of int
        The output size (h, w).
    scale : tuple of float
        (low, high) range of the zoom factor f, drawn log-uniformly.
    seed : tf.Tensor
        Shape-[2] integer stateless seed.
    pad_mode, pad_value
        As `random_crop`, for windows larger than the image.

    Returns
    -------
    image : tf.Tensor
        (h, w, 3) uint8 crop.
    labels : tf.Tensor
        (h, w) crop of the labels' dtype.

    Examples
    --------
    >>> import tensorflow as tf  # doctest: +SKIP
    >>> image, labels = tf.zeros([300, 300, 3], tf.uint8), tf.zeros([300, 300], tf.int32)  # doctest: +SKIP
    >>> crop, crop_labels = random_zoom_crop(image, labels, (128, 128), (0.8, 1.25), tf.constant([0, 1]))  # doctest: +SKIP
    >>> crop.shape, crop_labels.shape  # doctest: +SKIP
    (TensorShape([128, 128, 3]), TensorShape([128, 128]))
    """
    zoom_key, crop_key = tf.unstack(tf.random.experimental.stateless_split(seed, 2))
    low, high = math.log(scale[0]), math.log(scale[1])
    factor = tf.exp(tf.random.stateless_uniform([], zoom_key, low, high)) if high > low else tf.constant(scale[0])
    window = [tf.maximum(tf.cast(tf.round(side / factor), tf.int64), 1) for side in crop_hw]
    image, labels = random_crop(image, labels, window, crop_key, pad_mode=pad_mode, pad_value=pad_value)
    image = tf.image.resize(tf.cast(image, tf.float32), crop_hw, method="bilinear", antialias=True)
    image = tf.cast(tf.clip_by_value(tf.round(image), 0.0, 255.0), tf.uint8)
    labels = tf.image.resize(labels[:, :, None], crop_hw, method="nearest")[:, :, 0]
    return image, labels


def random_geometry(image, labels, seed, *, flip_h: bool, flip_v: bool, rot90: bool):
    """Flip / rotate image and labels with the same draws (`seed`: shape-[2] int), so they stay aligned.

    Each enabled flip happens with probability 0.5; the rotation is by k·90° with k uniform in
    {0, 1, 2, 3} (a non-square image then comes back W×H for odd k).

    Parameters
    ----------
    image : tf.Tensor
        (H, W, C) image of any dtype.
    labels : tf.Tensor
        (H, W) label image of any dtype.
    seed : tf.Tensor
        Shape-[2] integer stateless seed.
    flip_h : bool
        Random left-right flip.
    flip_v : bool
        Random up-down flip.
    rot90 : bool
        Random rotation by a multiple of 90°.

    Returns
    -------
    image : tf.Tensor
        The transformed image, same dtype.
    labels : tf.Tensor
        The labels transformed alike, same dtype.

    Examples
    --------
    >>> import tensorflow as tf  # doctest: +SKIP
    >>> image, labels = tf.zeros([64, 64, 3], tf.uint8), tf.zeros([64, 64], tf.int32)  # doctest: +SKIP
    >>> image, labels = random_geometry(image, labels, tf.constant([0, 1]),
    ...                                 flip_h=True, flip_v=True, rot90=True)  # doctest: +SKIP
    """
    draw = tf.random.stateless_uniform([2], seed)
    k = tf.random.stateless_uniform([], tf.random.experimental.stateless_fold_in(seed, 1), 0, 4, dtype=tf.int32)
    labels = labels[:, :, None]
    for enabled, p, axis in ((flip_h, draw[0], 1), (flip_v, draw[1], 0)):
        if enabled:
            flip = p < 0.5
            image = tf.cond(flip, lambda a=image, ax=axis: tf.reverse(a, [ax]), lambda a=image: a)
            labels = tf.cond(flip, lambda a=labels, ax=axis: tf.reverse(a, [ax]), lambda a=labels: a)
    if rot90:
        image, labels = tf.image.rot90(image, k), tf.image.rot90(labels, k)
    return image, labels[:, :, 0]


def _gray(image):
    return tf.reduce_sum(image * tf.constant(_GRAY, image.dtype), axis=-1, keepdims=True)


def _blend(image, other, factor):
    return tf.clip_by_value(factor * image + (1.0 - factor) * other, 0.0, 1.0)


def color_jitter(image, strengths: tuple[float, float, float, float], seed):
    """torchvision-style ColorJitter on a float image in [0, 1] (see `Augment`); returns float in [0, 1].

    Brightness, contrast and saturation factors are drawn from [max(0, 1 - x), 1 + x], the hue shift
    from [-h, h]; the four are applied in a random order; a strength of 0 leaves that step out.

    Parameters
    ----------
    image : tf.Tensor
        (H, W, 3) float RGB image with values in [0, 1].
    strengths : tuple of 4 floats
        (brightness, contrast, saturation, hue) strengths, as `Augment.color_jitter` holds them.
    seed : tf.Tensor
        Shape-[2] integer stateless seed.

    Returns
    -------
    tf.Tensor
        (H, W, 3) jittered image of the same float dtype, values in [0, 1].

    Examples
    --------
    >>> import tensorflow as tf  # doctest: +SKIP
    >>> image = tf.fill([32, 32, 3], 0.5)  # doctest: +SKIP
    >>> color_jitter(image, (0.2, 0.2, 0.2, 0.2), tf.constant([0, 1])).shape  # doctest: +SKIP
    TensorShape([32, 32, 3])
    """
    b, c, s, h = strengths
    seeds = tf.random.experimental.stateless_split(seed, 5)

    def factor(x, i):
        return tf.random.stateless_uniform([], seeds[i], max(0.0, 1.0 - x), 1.0 + x)

    ops = [
        (b > 0, lambda im: tf.clip_by_value(im * factor(b, 0), 0.0, 1.0)),
        (c > 0, lambda im: _blend(im, tf.reduce_mean(_gray(im)), factor(c, 1))),
        (s > 0, lambda im: _blend(im, _gray(im), factor(s, 2))),
        (h > 0, lambda im: tf.image.adjust_hue(im, tf.random.stateless_uniform([], seeds[3], -h, h))),
    ]
    ops = [fn if on else (lambda im: im) for on, fn in ops]
    order = tf.argsort(tf.random.stateless_uniform([4], seeds[4]))
    for step in range(4):
        image = tf.switch_case(order[step], [functools.partial(fn, image) for fn in ops])
    return image


def _stain_matrices():
    from skimage.color import hed_from_rgb, rgb_from_hed

    return tf.constant(rgb_from_hed, tf.float32), tf.constant(hed_from_rgb, tf.float32)


def stain_jitter(image, strength: float, seed):
    """HED stain jitter of a float RGB image in [0, 1] (see `Augment.stain`); grey images pass unchanged.

    Parameters
    ----------
    image : tf.Tensor
        (H, W, 3) float32 image in [0, 1].
    strength : float
        s: each stain's optical density is scaled by [1 - s, 1 + s] and shifted by [-s/4, s/4].
    seed : tf.Tensor
        Shape-[2] integer stateless seed.

    Returns
    -------
    tf.Tensor
        The jittered (H, W, 3) float32 image in [0, 1]; the input itself when it is grey.

    Examples
    --------
    >>> import tensorflow as tf  # doctest: +SKIP
    >>> stain_jitter(tf.fill([8, 8, 3], 0.5), 0.1, tf.constant([0, 1])).shape  # doctest: +SKIP
    TensorShape([8, 8, 3])
    """
    rgb_from_hed, hed_from_rgb = _stain_matrices()
    scale_key, shift_key = tf.unstack(tf.random.experimental.stateless_split(seed, 2))
    alpha = tf.random.stateless_uniform([3], scale_key, 1.0 - strength, 1.0 + strength)
    beta = tf.random.stateless_uniform([3], shift_key, -strength / 4, strength / 4)
    od = -tf.math.log(tf.maximum(image, 1.0 / 255.0))
    hed = tf.tensordot(od, hed_from_rgb, 1) * alpha + beta
    jittered = tf.clip_by_value(tf.exp(-tf.tensordot(hed, rgb_from_hed, 1)), 0.0, 1.0)
    colour = tf.reduce_max(image, axis=-1) - tf.reduce_min(image, axis=-1)
    return tf.cond(tf.reduce_max(colour) > 1.5 / 255.0, lambda: jittered, lambda: image)


def _gaussian_blur(image, sigma):
    """Blur a float H×W×C image with a Gaussian of standard deviation `sigma` (a scalar tensor, >= 0)."""
    radius = 6
    x = tf.range(-radius, radius + 1, dtype=tf.float32)
    kernel = tf.exp(-0.5 * tf.square(x / tf.maximum(sigma, 1e-3)))
    kernel = kernel / tf.reduce_sum(kernel)
    channels = tf.shape(image)[-1]
    padded = tf.pad(image[None], [[0, 0], [radius, radius], [radius, radius], [0, 0]], mode="REFLECT")
    rows = tf.tile(tf.reshape(kernel, [-1, 1, 1, 1]), [1, 1, channels, 1])
    cols = tf.tile(tf.reshape(kernel, [1, -1, 1, 1]), [1, 1, channels, 1])
    out = tf.nn.depthwise_conv2d(padded, rows, [1, 1, 1, 1], "VALID")
    return tf.nn.depthwise_conv2d(out, cols, [1, 1, 1, 1], "VALID")[0]


def photometric(image, augment: Augment, seed):
    """`augment`'s photometric transforms of a float RGB image in [0, 1], in the order of `Augment`.

    Parameters
    ----------
    image : tf.Tensor
        (H, W, 3) float32 image in [0, 1].
    augment : Augment
        Its stain, colour jitter, grey, invert, blur and noise settings are applied (geometry is not).
    seed : tf.Tensor
        Shape-[2] integer stateless seed.

    Returns
    -------
    tf.Tensor
        The transformed (H, W, 3) float32 image in [0, 1].

    Examples
    --------
    >>> import tensorflow as tf  # doctest: +SKIP
    >>> inverted = photometric(tf.fill([4, 4, 3], 0.25), Augment(invert=1.0), tf.constant([0, 1]))  # doctest: +SKIP
    >>> float(inverted[0, 0, 0])  # doctest: +SKIP
    0.75
    """
    keys = tf.unstack(tf.random.experimental.stateless_split(seed, 8))
    draw = tf.random.stateless_uniform([6], keys[0])
    if augment.stain > 0:
        image = stain_jitter(image, augment.stain, keys[1])
    if any(x > 0 for x in augment.color_jitter):
        # colour jitter alone keeps the seed it always had, so earlier streams are unchanged
        image = color_jitter(image, augment.color_jitter, keys[2] if augment.field_transforms else seed)
    if augment.grey > 0:
        image = tf.cond(draw[0] < augment.grey, lambda: tf.tile(_gray(image), [1, 1, 3]), lambda: image)
    if augment.invert > 0:
        image = tf.cond(draw[1] < augment.invert, lambda: 1.0 - image, lambda: image)
    if augment.blur > 0:
        sigma = tf.random.stateless_uniform([], keys[3], 0.0, augment.blur)
        image = tf.cond(draw[2] < 0.5, lambda: _gaussian_blur(image, sigma), lambda: image)
    if augment.noise > 0:
        std = tf.random.stateless_uniform([], keys[4], 0.0, augment.noise)
        noise = tf.random.stateless_normal(tf.shape(image), keys[5]) * std
        image = tf.cond(draw[3] < 0.5, lambda: tf.clip_by_value(image + noise, 0.0, 1.0), lambda: image)
    return image


# --------------------------------------------------------------------------- the dataset


def _epochs(repeat) -> tf.data.Dataset:
    if repeat is True:
        return tf.data.Dataset.counter()
    if repeat is False or repeat is None:
        return tf.data.Dataset.range(1)
    if int(repeat) < 1:
        raise ValueError(f"repeat must be True, False or a positive number of passes, got {repeat!r}")
    return tf.data.Dataset.range(int(repeat))


def make_dataset(
    items: Sequence[Pair | tuple[np.ndarray, np.ndarray]],
    *,
    crop_size: int | tuple[int, int] | None = 256,
    batch_size: int = 1,
    drop_remainder: bool = False,
    shuffle: bool = True,
    seed: int = 0,
    augment: Augment = Augment(),
    target_fn: Callable | None = None,
    repeat: bool | int = False,
    reshuffle_each_iteration: bool = True,
    cache: bool = True,
    prefetch: bool = True,
    image_mode: str = "nucleaizer",
    image_dtype: str = "float32",
    pad_mode: str = "constant",
    pad_value: int = 0,
    num_parallel_calls: int = AUTOTUNE,
    sample_weights: Sequence[float] | None = None,
) -> tf.data.Dataset:
    """Build the training/validation stream over `items` (`Pair`s, or in-memory (image, labels) arrays).

    Per example, in this order: random crop to `crop_size` (int or (h, w); None = whole image,
    e.g. Mask R-CNN, whose target_fn resizes to 1024) with bottom/right padding of smaller images
    (`pad_mode` "constant" with `pad_value` in uint8 units, or "reflect"; labels always pad with 0);
    `augment`'s flips / rot90 (same draws for image and labels) and colour jitter (image only);
    conversion to `image_dtype` ("float32" in [0, 1], default, or "uint8"); then
    `target_fn(image, labels)` (labels int32 instance ids) whose return value, any tf.data structure,
    becomes the element; without target_fn the element is (image, labels). Then `batch(batch_size,
    drop_remainder)` — examples of different sizes need a crop or batch_size 1 — and prefetch.

    `repeat`: False = one pass, True = endless, n = n passes; each pass is reshuffled (if `shuffle`)
    and re-augmented. Randomness is a pure function of (seed, k, pass, example index), k counting
    the iterations started over this dataset object: two datasets built with the same arguments
    yield identical streams, also under parallel maps, and each new iteration (Keras starts one per
    epoch) gets the next stream of that sequence; `reshuffle_each_iteration=False` makes every
    iteration repeat the first. `cache=True` decodes every item once, now (read errors surface
    here); `cache=False` with `Pair` items re-reads the files on every visit (folders too big for
    memory). `image_mode` is the `to_rgb8` conversion used to read images.

    Parameters
    ----------
    items : sequence of Pair or of (numpy.ndarray, numpy.ndarray), or ExampleStore
        The examples: `Pair`s, or in-memory (image, labels) with image (H, W, 3) uint8 and labels (H, W)
        integer instance ids of the same H, W (converted to int32), or an
        `nucleaizer_tf.io.example_store.ExampleStore`, read example by example from its memory map
        (training memory then does not grow with the data set).
    crop_size : int, tuple of int or None, optional
        The random crop, square or (h, w) (default 256); None = whole images.
    batch_size : int, optional
        Examples per batch, >= 1 (default 1).
    drop_remainder : bool, optional
        Drop a last, smaller batch (default False).
    shuffle : bool, optional
        Shuffle the examples on every pass (default True).
    seed : int, optional
        The root seed of all random draws (default 0).
    augment : Augment, optional
        The random transforms (default ``Augment()``: both flips and rot90, no colour jitter).
    target_fn : callable, optional
        ``target_fn(image, labels)`` -> the element (any tf.data structure); None (default) keeps
        (image, labels).
    repeat : bool or int, optional
        False (default) = one pass, True = endless, n = n passes.
    reshuffle_each_iteration : bool, optional
        Give each new iteration over the dataset the next stream (default True); False repeats the
        first.
    cache : bool, optional
        Decode every item once, now (default True); False with `Pair` items reads the files on every
        visit.
    prefetch : bool, optional
        Prefetch batches with AUTOTUNE (default True).
    image_mode : {"nucleaizer", "percentile"}, optional
        The `to_rgb8` conversion used to read images (default "nucleaizer").
    image_dtype : {"float32", "uint8"}, optional
        The element's image type: "float32" in [0, 1] (default) or "uint8".
    pad_mode : {"constant", "reflect"}, optional
        Image padding of images smaller than the crop (default "constant"); labels always pad with 0.
    pad_value : int, optional
        The "constant" padding value in uint8 units, in [0, 255] (default 0).
    num_parallel_calls : int, optional
        Parallelism of the per-example maps (default ``tf.data.AUTOTUNE``); the output does not depend
        on it.
    sample_weights : sequence of float, optional
        One non-negative weight per item: each pass then draws len(items) examples with replacement,
        item i with probability weight_i / Σ weights (e.g. to balance rare image kinds); None (default)
        visits every item once per pass.

    Returns
    -------
    tf.data.Dataset
        Batches of ``target_fn(image, labels)``, or of (image, labels): image (batch, h, w, 3) float32
        or uint8, labels (batch, h, w) int32 instance ids (h, w = the crop; the image size without one).

    Raises
    ------
    ValueError
        For no items, an unknown `pad_mode` or `image_dtype`, `pad_value` outside [0, 255],
        `batch_size` < 1, a bad `crop_size` or `repeat`, rot90 with a non-square crop, or arrays that
        are not uint8 H×W×3 images with matching 2-D integer labels.
    ImageReadError
        When a `Pair` cannot be read (with `cache=True`, here).

    Examples
    --------
    >>> from nucleaizer_tf.data import pair_folders
    >>> pairs = pair_folders("train/images", "train/masks")  # doctest: +SKIP
    >>> ds = make_dataset(pairs, crop_size=256, batch_size=4, augment=Augment.unet(),
    ...                   repeat=True)  # doctest: +SKIP
    >>> image, labels = next(iter(ds))  # doctest: +SKIP
    >>> image.shape, image.dtype, labels.shape, labels.dtype  # doctest: +SKIP
    (TensorShape([4, 256, 256, 3]), tf.float32, TensorShape([4, 256, 256]), tf.int32)
    """
    from nucleaizer_tf.io.example_store import ExampleStore

    store = items if isinstance(items, ExampleStore) else None
    items = list(range(len(store))) if store is not None else list(items)
    if not items:
        raise ValueError("make_dataset needs at least one example")
    if sample_weights is not None:
        sample_weights = np.asarray(sample_weights, np.float64)
        if sample_weights.shape != (len(items),) or not np.all(np.isfinite(sample_weights)) \
                or sample_weights.min() < 0 or sample_weights.sum() <= 0:
            raise ValueError("sample_weights must hold one finite weight >= 0 per item, not all 0")
    if pad_mode not in ("constant", "reflect"):
        raise ValueError(f"pad_mode must be 'constant' or 'reflect', got {pad_mode!r}")
    if image_dtype not in ("float32", "uint8"):
        raise ValueError(f"image_dtype must be 'float32' or 'uint8', got {image_dtype!r}")
    if not 0 <= pad_value <= 255:
        raise ValueError(f"pad_value is in uint8 units and must be in [0, 255], got {pad_value}")
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    crop_hw = None if crop_size is None else (
        (int(crop_size), int(crop_size)) if np.isscalar(crop_size) else tuple(int(x) for x in crop_size))
    if crop_hw is not None and (len(crop_hw) != 2 or min(crop_hw) < 1):
        raise ValueError(f"crop_size must be a positive int, an (h, w) pair or None, got {crop_size!r}")
    if augment.rot90 and crop_hw is not None and crop_hw[0] != crop_hw[1]:
        raise ValueError(
            f"rot90 turns a {crop_hw[0]}×{crop_hw[1]} crop into {crop_hw[1]}×{crop_hw[0]}; use a square crop")

    if augment.scale is not None and crop_hw is None:
        raise ValueError("Augment.scale needs a crop_size")

    all_pairs = all(isinstance(it, Pair) for it in items)
    if store is not None:
        source = _LoadingSource(store.get)
    elif not cache and all_pairs:
        source = _LoadingSource(lambda i: load_pair(items[i], mode=image_mode))
    else:
        examples = [
            load_pair(it, mode=image_mode) if isinstance(it, Pair) else _check_arrays(*it, where=f"items[{i}]")
            for i, it in enumerate(items)
        ]
        source = _MemorySource(examples)
    n = len(items)
    use_photometric = augment.photometric
    log_weights = None if sample_weights is None else tf.constant(
        np.log(np.maximum(sample_weights / sample_weights.sum(), 1e-300))[None], tf.float64)
    root = tf.constant([int(seed), _SALT], tf.int64)
    fold = tf.random.experimental.stateless_fold_in

    def examples_of_pass(run, epoch):
        key = fold(fold(root, run), epoch)
        shuffle_key, augment_key = tf.unstack(tf.random.experimental.stateless_split(key, 2))
        order = tf.range(n, dtype=tf.int64)
        if log_weights is not None:
            order = tf.random.stateless_categorical(log_weights, n, shuffle_key, dtype=tf.int64)[0]
        elif shuffle:
            order = tf.argsort(tf.random.stateless_uniform([n], shuffle_key), stable=True)
            order = tf.cast(order, tf.int64)
        return tf.data.Dataset.from_tensor_slices(order).map(lambda i: (i, fold(augment_key, i)))

    def example(index, key):
        crop_key, geometry_key, jitter_key = tf.unstack(tf.random.experimental.stateless_split(key, 3))
        image, labels = source(index)
        if augment.scale is not None:
            image, labels = random_zoom_crop(image, labels, crop_hw, augment.scale, crop_key, pad_mode=pad_mode,
                                             pad_value=pad_value)
        elif crop_hw is not None:
            image, labels = random_crop(image, labels, crop_hw, crop_key, pad_mode=pad_mode, pad_value=pad_value)
        image, labels = random_geometry(image, labels, geometry_key,
                                        flip_h=augment.flip_h, flip_v=augment.flip_v, rot90=augment.rot90)
        if crop_hw is not None:  # restore the static shape (rot90 needs a square crop, checked above)
            image.set_shape([crop_hw[0], crop_hw[1], 3])
            labels.set_shape([crop_hw[0], crop_hw[1]])
        if use_photometric or image_dtype == "float32":
            image = tf.cast(image, tf.float32) / 255.0
            if use_photometric:
                image = photometric(image, augment, jitter_key)
            if image_dtype == "uint8":
                image = tf.cast(tf.round(image * 255.0), tf.uint8)
        return image, labels

    if reshuffle_each_iteration:
        # Counts the iterations started over this dataset object: the k-th (0-based) gets run key k.
        # A variable rather than Dataset.random, whose values would also depend on tf.random.set_seed.
        started = tf.Variable(0, dtype=tf.int64, trainable=False, name="iterations_started")
        runs = tf.data.Dataset.range(1).map(lambda _: started.assign_add(1) - 1)
    else:
        runs = tf.data.Dataset.from_tensors(tf.constant(0, tf.int64))
    epochs = _epochs(repeat)
    ds = runs.flat_map(lambda run: epochs.map(lambda e: (run, e)))
    ds = ds.flat_map(examples_of_pass)
    if repeat is not True:
        passes = 1 if repeat is False or repeat is None else int(repeat)
        ds = ds.apply(tf.data.experimental.assert_cardinality(n * passes))
    ds = ds.map(example, num_parallel_calls=num_parallel_calls, deterministic=True)
    if target_fn is not None:
        ds = ds.map(target_fn, num_parallel_calls=num_parallel_calls, deterministic=True)
    ds = ds.batch(batch_size, drop_remainder=drop_remainder)
    if prefetch:
        ds = ds.prefetch(AUTOTUNE)
    return ds
