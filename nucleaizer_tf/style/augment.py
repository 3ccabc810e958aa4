"""Training-set augmentation (docs/method.md §6.8, `augmentTrainingSet`): 40 px nuclei on 512 canvases, random looks.

Per input pair (every `step`-th, alphabetically):

1. rescale so the median nucleus diameter becomes 40 px (`s = 40 / median`, zero-inclusive median of
   equivalent diameters, docs/method.md, quirk Q3 as in the original): image MATLAB bicubic (antialiased), labels
   MATLAB nearest;
2. fit to 512: an image that fits in 512×512 is put at the top-left of a 512×512 canvas filled with
   the image's per-channel median colour (labels 0) and augmented `num_augment` times; a larger one
   gives random crops instead (2·num_augment crops of rows×512 or 512×cols when one side exceeds 512;
   2·(round(sqrt(rows·cols/512²)) + 2)·num_augment 512×512 crops when both do), each augmented once;
3. `augment_image`: histogram stretch and equalisation, a random 90° rotation, inversion, Gaussian
   blur and grey-level noise with the probabilities and ranges of `SETTINGS` (the original's table);
4. outputs whose labels are empty are dropped.

docs/method.md, quirk Q10 (`compound=True`, faithful): in the "fits in 512" case the original overwrote its canvas with
each augmented version, so the `num_augment` outputs of one image are augmented cumulatively
(rotations, blur and noise accumulate); `compound=False` augments a fresh copy each time.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, replace

import numpy as np
from scipy import ndimage
from skimage.segmentation import relabel_sequential

from nucleaizer_tf.postprocess.resize import matlab_resize_bicubic

EXPECTED_CELL_SIZE = 40.0
CROP_SIZE = 512
_GRAY = np.array([0.298936021293775, 0.587043074451121, 0.114020904255103])  # MATLAB rgb2gray


@dataclass(frozen=True)
class AugmentOptions:
    """One row of the original's augmentation table (`SETTINGS`); probabilities are per output image.

    Attributes
    ----------
    num_augment : int
        Augmented outputs per input that fits in 512×512 (crops: see the module docstring).
    hist_eq : float
        Probability of histogram equalisation (`equalise`).
    hist_stretch : float
        Probability of a histogram stretch (`stretch`).
    hist_stretch_level : float
        Largest saturated fraction `tol` of the stretch (drawn uniformly in [0, level)).
    invert : float
        Probability of inverting the image.
    blur : float
        Probability of a Gaussian blur (`gaussian_blur`).
    blur_level : float
        Largest blur sigma (drawn uniformly in [0, level)).
    noise : float
        Probability of grey-level noise.
    color_flip : float
        Probability of permuting the RGB channels.
    step : int
        Use every `step`-th input (alphabetically).

    Examples
    --------
    >>> SETTINGS["style"].step, SETTINGS["style"].blur_level
    (6, 4.0)
    >>> replace(SETTINGS["validation"], num_augment=3).num_augment
    3
    """

    num_augment: int
    hist_eq: float
    hist_stretch: float
    hist_stretch_level: float
    invert: float
    blur: float
    blur_level: float
    noise: float
    color_flip: float
    step: int


SETTINGS = {
    "real": AugmentOptions(1, 0.05, 0.1, 0.03, 0.1, 0.2, 2.0, 0.2, 0.0, 1),
    "style": AugmentOptions(1, 0.05, 0.1, 0.02, 0.0, 0.2, 4.0, 0.2, 0.0, 6),
    "validation": AugmentOptions(1, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 1),
}


def settings_for(mode: str, num_augment: int | None = None) -> AugmentOptions:
    """The table row of `mode` ("real" = styleData 0, "style" = 1, "validation" = 2), optionally with
    another number of augmentations per input (the workflow uses 5 for style data).

    Parameters
    ----------
    mode : str
        "real", "style" or "validation" (ValueError for others).
    num_augment : int, optional
        Replaces the row's `num_augment`.

    Returns
    -------
    AugmentOptions

    Examples
    --------
    >>> settings_for("style", num_augment=5).num_augment
    5
    >>> settings_for("validation").noise
    0.0
    """
    if mode not in SETTINGS:
        raise ValueError(f"unknown augmentation mode {mode!r}; choose one of {', '.join(SETTINGS)}")
    s = SETTINGS[mode]
    return s if num_augment is None else replace(s, num_augment=int(num_augment))


# --------------------------------------------------------------------------- size normalisation


def _median_diameter(labels: np.ndarray) -> float:
    try:
        from nucleaizer_tf.postprocess.size import median_equivalent_diameter
    except ImportError:  # pragma: no cover - the size module ships with the package
        areas = np.bincount(np.asarray(labels).ravel())[1:]
        return float(np.median(np.sqrt(4 * areas / np.pi))) if areas.size else float("nan")
    return median_equivalent_diameter(labels, include_gaps=True)


def resize_labels_nearest(labels: np.ndarray, out_shape: tuple[int, int], scale: float) -> np.ndarray:
    """MATLAB `imresize(labels, scale, 'nearest')`: output pixel u (0-based) reads floor((u + 0.5) / scale).

    Indices are clipped to the last row / column.

    Parameters
    ----------
    labels : numpy.ndarray
        2-D label image.
    out_shape : tuple of int
        (rows, columns) of the result.
    scale : float
        The resize factor (the mapping uses it, not the size ratio).

    Returns
    -------
    numpy.ndarray
        Labels of `out_shape`, dtype of `labels`.

    Examples
    --------
    >>> resize_labels_nearest(np.array([[1, 2], [3, 4]]), (4, 4), 2.0)
    array([[1, 1, 2, 2],
           [1, 1, 2, 2],
           [3, 3, 4, 4],
           [3, 3, 4, 4]])
    >>> resize_labels_nearest(np.arange(6).reshape(1, 6), (1, 4), 0.6)
    array([[0, 2, 4, 5]])
    """
    rows = np.minimum(np.floor((np.arange(out_shape[0]) + 0.5) / scale).astype(int), labels.shape[0] - 1)
    cols = np.minimum(np.floor((np.arange(out_shape[1]) + 0.5) / scale).astype(int), labels.shape[1] - 1)
    return labels[rows[:, None], cols[None, :]]


def normalise_size(image: np.ndarray, labels: np.ndarray,
                   target: float = EXPECTED_CELL_SIZE) -> tuple[np.ndarray, np.ndarray, float] | None:
    """Rescale so the median nucleus diameter is `target` px; None when there is no nucleus.

    s = target / median with the zero-inclusive median of equivalent diameters (docs/method.md,
    quirk Q3); output size ceil(s·side); image MATLAB bicubic, labels `resize_labels_nearest`.

    Parameters
    ----------
    image : numpy.ndarray
        H×W×3 uint8 image.
    labels : numpy.ndarray
        H×W label image.
    target : float
        Target median diameter in pixels (`EXPECTED_CELL_SIZE`, 40).

    Returns
    -------
    tuple or None
        (image, labels, s), copies when the size does not change; None without nuclei.

    Examples
    --------
    >>> labels = np.zeros((40, 40), np.int32)
    >>> labels[5:15, 5:15] = 1
    >>> labels[20:30, 20:30] = 2  # diameters 11.28: s = 3.545
    >>> image, labels, s = normalise_size(np.zeros((40, 40, 3), np.uint8), labels)
    >>> image.shape, labels.shape, round(s, 3)
    ((142, 142, 3), (142, 142), 3.545)
    """
    median = _median_diameter(labels)
    if not np.isfinite(median) or median <= 0:
        return None
    s = target / median
    out_shape = (max(1, int(np.ceil(s * labels.shape[0] - 1e-9))), max(1, int(np.ceil(s * labels.shape[1] - 1e-9))))
    if out_shape == tuple(labels.shape):
        return image.copy(), labels.copy(), s
    return matlab_resize_bicubic(image, out_shape), resize_labels_nearest(labels, out_shape, s), s


# --------------------------------------------------------------------------- photometric augmentation


def stretch(channel: np.ndarray, tol: float) -> np.ndarray:
    """`imadjust(ch, stretchlim(ch, tol))` on uint8: saturate `tol` at both ends, stretch to [0, 255].

    A channel without spread (limits not increasing) is stretched from [0, 255], i.e. left as it is.

    Parameters
    ----------
    channel : numpy.ndarray
        uint8 2-D channel.
    tol : float
        Fraction saturated at each end.

    Returns
    -------
    numpy.ndarray
        uint8, the shape of `channel`.

    Examples
    --------
    >>> stretch(np.array([[10, 20], [30, 40]], np.uint8), 0.0)
    array([[  0,  85],
           [170, 255]], dtype=uint8)
    """
    hist = np.bincount(channel.ravel(), minlength=256)
    cdf = np.cumsum(hist) / channel.size
    low = int(np.argmax(cdf > tol))
    high = int(np.argmax(cdf >= 1 - tol))
    if high <= low:
        low, high = 0, 255
    out = (channel.astype(np.float64) - low) / (high - low)
    return np.clip(np.floor(np.clip(out, 0, 1) * 255 + 0.5), 0, 255).astype(np.uint8)


def equalise(channel: np.ndarray, levels: int = 64) -> np.ndarray:
    """Histogram equalisation to `levels` grey levels (as MATLAB's `histeq` default, 64).

    Parameters
    ----------
    channel : numpy.ndarray
        uint8 2-D channel.
    levels : int
        Number of output grey levels.

    Returns
    -------
    numpy.ndarray
        uint8, the shape of `channel`.

    Examples
    --------
    >>> equalise(np.array([[10, 20], [30, 40]], np.uint8))
    array([[ 65, 130],
           [190, 255]], dtype=uint8)
    """
    hist = np.bincount(channel.ravel(), minlength=256)
    cdf = np.cumsum(hist) / channel.size
    lut = np.floor(cdf * (levels - 1) + 0.5) / (levels - 1) * 255
    return np.clip(np.floor(lut + 0.5), 0, 255).astype(np.uint8)[channel]


def gaussian_blur(image: np.ndarray, sigma: float) -> np.ndarray:
    """`imfilter(img, fspecial('gaussian', round(5σ)+3, σ), 'replicate')` on uint8.

    The kernel is applied separably along rows and columns, centred as MATLAB centres an even kernel.

    Parameters
    ----------
    image : numpy.ndarray
        uint8 H×W or H×W×C image.
    sigma : float
        Gaussian sigma in pixels.

    Returns
    -------
    numpy.ndarray
        uint8, the shape of `image`.

    Examples
    --------
    >>> blurred = gaussian_blur(np.full((5, 5, 3), 100, np.uint8), 2.0)  # replicate border: constant stays
    >>> blurred.shape, int(blurred.min()), int(blurred.max())
    ((5, 5, 3), 100, 100)
    """
    size = int(np.floor(5 * sigma + 0.5)) + 3
    x = np.arange(size) - (size - 1) / 2.0
    k = np.exp(-(x ** 2) / (2 * max(sigma, 1e-6) ** 2))
    k /= k.sum()
    origin = -1 if size % 2 == 0 else 0  # MATLAB's kernel centre is floor((size+1)/2), 1-based
    out = image.astype(np.float64)
    for axis in (0, 1):
        out = ndimage.correlate1d(out, k, axis=axis, mode="nearest", origin=origin)
    return np.clip(np.floor(out + 0.5), 0, 255).astype(np.uint8)


def _noise(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Grey-level noise (imnoise on the grey version), the difference added to all channels."""
    gray = (image.astype(np.float64) @ _GRAY) / 255.0
    kind = int(rng.integers(1, 4))
    if kind == 1:
        noisy = np.clip(gray + rng.normal(0.0, np.sqrt(rng.uniform() * 0.02), gray.shape), 0, 1)
    else:
        var = rng.uniform() * (4.0 if kind == 2 else 0.1)
        half = np.sqrt(3 * var)  # uniform noise with variance `var`
        noisy = np.clip(gray + gray * rng.uniform(-half, half, gray.shape), 0, 1)
        if kind == 2:
            density = rng.uniform() * 0.05
            u = rng.uniform(size=gray.shape)
            noisy = np.where(u < density / 2, 0.0, np.where(u < density, 1.0, noisy))
    diff = (noisy - gray) * 255.0
    return np.clip(np.floor(image.astype(np.float64) + diff[:, :, None] + 0.5), 0, 255).astype(np.uint8)


def augment_image(image: np.ndarray, labels: np.ndarray, settings: AugmentOptions,
                  rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """One random augmentation of an RGB uint8 image and its labels (`augment_image`, docs/method.md §6.8.4).

    In order: stretch, equalisation, a 90° rotation by k ∈ {1, 2, 3, 4} (image and labels), inversion,
    blur, noise and a channel permutation, each with the probability of `settings`.

    Parameters
    ----------
    image : numpy.ndarray
        uint8 H×W×3 image.
    labels : numpy.ndarray
        H×W labels, rotated with the image.
    settings : AugmentOptions
        Probabilities and ranges.
    rng : numpy.random.Generator
        The random stream.

    Returns
    -------
    tuple of numpy.ndarray
        (uint8 image, labels), contiguous; H and W swap after an odd rotation.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> image, labels = augment_image(np.zeros((8, 6, 3), np.uint8), np.ones((8, 6), np.int32),
    ...                               settings_for("validation"), rng)
    >>> image.shape, labels.shape
    ((8, 6, 3), (8, 6))
    """
    image = np.asarray(image, np.uint8)
    if rng.uniform() < settings.hist_stretch:
        tol = rng.uniform() * settings.hist_stretch_level
        image = np.stack([stretch(image[:, :, c], tol) for c in range(3)], axis=-1)
    if rng.uniform() < settings.hist_eq:
        image = np.stack([equalise(image[:, :, c]) for c in range(3)], axis=-1)
    k = int(rng.integers(1, 5))
    image, labels = np.rot90(image, k), np.rot90(labels, k)
    if rng.uniform() < settings.invert:
        image = 255 - image
    if rng.uniform() < settings.blur:
        sigma = rng.uniform() * settings.blur_level
        if sigma > 0:
            image = gaussian_blur(image, sigma)
    if rng.uniform() < settings.noise:
        image = _noise(image, rng)
    if settings.color_flip and rng.uniform() < settings.color_flip:
        image = image[:, :, rng.permutation(3)]
    return np.ascontiguousarray(image, np.uint8), np.ascontiguousarray(labels)


# --------------------------------------------------------------------------- per image


def _relabel(labels: np.ndarray) -> np.ndarray:
    return relabel_sequential(np.asarray(labels))[0]


def augment_pair(image: np.ndarray, labels: np.ndarray, settings: AugmentOptions, rng: np.random.Generator, *,
                 compound: bool = True, crop: int = CROP_SIZE) -> list[tuple[np.ndarray, np.ndarray]]:
    """All augmented (image, labels) outputs of one pair, empty-label outputs dropped (module doc).

    Parameters
    ----------
    image : numpy.ndarray
        uint8 H×W×3 image.
    labels : numpy.ndarray
        H×W label image.
    settings : AugmentOptions
        The table row.
    rng : numpy.random.Generator
        The random stream.
    compound : bool
        docs/method.md, quirk Q10: True (faithful) augments the "fits in 512" outputs cumulatively.
    crop : int
        Canvas / crop side (`CROP_SIZE`, 512).

    Returns
    -------
    list of (numpy.ndarray, numpy.ndarray)
        (uint8 crop×crop×3 image, uint16 labels relabelled 1..n) pairs; empty when there is no nucleus.

    Examples
    --------
    >>> labels = np.zeros((40, 40), np.int32)
    >>> labels[5:15, 5:15] = 1
    >>> labels[20:30, 20:30] = 2
    >>> outputs = augment_pair(np.full((40, 40, 3), 100, np.uint8), labels, settings_for("real", 3),
    ...                        np.random.default_rng(0))
    >>> len(outputs), outputs[0][0].shape, outputs[0][1].dtype
    (3, (512, 512, 3), dtype('uint16'))
    """
    normalised = normalise_size(np.asarray(image, np.uint8), np.asarray(labels))
    if normalised is None:
        return []
    image, labels, _ = normalised
    rows, cols = labels.shape
    n = max(1, settings.num_augment)
    outputs = []
    if rows <= crop and cols <= crop:
        canvas = np.empty((crop, crop, 3), np.uint8)
        canvas[:] = np.floor(np.median(image.reshape(-1, 3), axis=0) + 0.5).astype(np.uint8)
        canvas[:rows, :cols] = image
        mask = np.zeros((crop, crop), labels.dtype)
        mask[:rows, :cols] = labels
        for _ in range(n):
            out_img, out_mask = augment_image(canvas, mask, settings, rng)
            outputs.append((out_img, out_mask))
            if compound:  # Q10: the next augmentation starts from this one
                canvas, mask = out_img, out_mask
    else:
        if rows <= crop or cols <= crop:
            count = 2 * n
        else:
            count = 2 * (int(np.floor(np.sqrt(rows * cols / crop ** 2) + 0.5)) + 2) * n
        for _ in range(count):
            y = int(rng.integers(0, rows - crop)) if rows > crop else 0
            x = int(rng.integers(0, cols - crop)) if cols > crop else 0
            window = (slice(y, y + min(rows, crop)), slice(x, x + min(cols, crop)))
            outputs.append(augment_image(image[window], _relabel(labels[window]), settings, rng))
    return [(img, _relabel(lab).astype(np.uint16)) for img, lab in outputs if np.any(lab)]


def augment_set(items: Iterable[tuple[str, np.ndarray, np.ndarray]], settings: AugmentOptions, *, seed: int = 0,
                compound: bool = True) -> Iterator[tuple[str, np.ndarray, np.ndarray]]:
    """`augmentTrainingSet` over (name, image, labels) items in the caller's (alphabetical) order.

    Uses every `settings.step`-th item; yields (`<name>_aug<6 hex digits>`, image, labels). The hex
    suffix comes from the seeded generator, so runs are reproducible and names unique per run.

    Parameters
    ----------
    items : iterable of (str, numpy.ndarray, numpy.ndarray)
        (name, uint8 image, labels), in alphabetical order.
    settings : AugmentOptions
        The table row.
    seed : int
        Seed of the one generator used for everything.
    compound : bool
        See `augment_pair`.

    Yields
    ------
    tuple of (str, numpy.ndarray, numpy.ndarray)
        (name, uint8 image, uint16 labels).

    Examples
    --------
    >>> labels = np.zeros((40, 40), np.int32)
    >>> labels[5:15, 5:15] = 1
    >>> items = [(name, np.full((40, 40, 3), 100, np.uint8), labels) for name in ("a", "b")]
    >>> [name for name, _, _ in augment_set(items, settings_for("validation"))]
    ['a_aug0a7d3d', 'b_aug8b2b01']
    >>> [name for name, _, _ in augment_set(items, settings_for("style"))]  # step 6: "a" only
    ['a_aug0a7d3d']
    """
    rng = np.random.default_rng(seed)
    used: set[str] = set()
    for index, (name, image, labels) in enumerate(items):
        if index % max(1, settings.step):
            continue
        for out_image, out_labels in augment_pair(image, labels, settings, rng, compound=compound):
            while True:
                out_name = f"{name}_aug{int(rng.integers(0, 16 ** 6)):06x}"
                if out_name not in used:
                    used.add(out_name)
                    break
            yield out_name, out_image, out_labels
