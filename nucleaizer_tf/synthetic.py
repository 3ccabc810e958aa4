"""Synthetic nucleus images with exact ground truth, for examples, tests and smoke runs.

Nuclei are random ellipses placed without overlap; the image is a blurred, shaded rendering with
Poisson-like noise, in a fluorescence (bright on dark) or bright-field (dark on light) style. The
generator is deterministic under its seed so tests can assert counts and scores.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage
from skimage.draw import ellipse


@dataclass(frozen=True)
class SyntheticSample:
    """A synthetic image and its exact instance labels (what `synthetic_nuclei` and `rim_stain` return).

    Parameters
    ----------
    image : numpy.ndarray
        (H, W, 3) uint8 RGB image.
    labels : numpy.ndarray
        (H, W) uint16 label image, 0 = background, nuclei numbered 1..n in placement order.

    Examples
    --------
    >>> sample = synthetic_nuclei((64, 64), n_nuclei=5, diameter=12.0, seed=0)
    >>> sample.image.shape, sample.image.dtype, sample.labels.dtype
    ((64, 64, 3), dtype('uint8'), dtype('uint16'))
    """

    image: np.ndarray  # uint8 H×W×3
    labels: np.ndarray  # uint16 H×W, ids 1..n


def synthetic_nuclei(
    shape: tuple[int, int] = (256, 256),
    n_nuclei: int = 30,
    diameter: float = 20.0,
    *,
    style: str = "fluorescence",
    noise: float = 0.04,
    seed: int = 0,
) -> SyntheticSample:
    """Render up to `n_nuclei` non-overlapping elliptical nuclei of mean `diameter` pixels.

    Fewer nuclei are placed when the image is too crowded (placement gives up after a fixed number
    of tries per nucleus), so check `labels.max()` rather than assuming `n_nuclei`. Each ellipse has a
    major axis of 0.8 to 1.3 × `diameter`, a minor/major ratio of 0.6 to 1.0 and a random rotation;
    nuclei keep a gap of at least one pixel so every one stays a separate object. The rendering is
    blurred, textured and noisy, and deterministic under `seed`.

    Parameters
    ----------
    shape : tuple of int, optional
        Image size (H, W) in pixels (default (256, 256)).
    n_nuclei : int, optional
        The number of nuclei to place at most (default 30).
    diameter : float, optional
        Mean nucleus diameter in pixels (default 20.0).
    style : {"fluorescence", "brightfield"}, optional
        "fluorescence" (default): bright blue-ish nuclei on a dark background (a DAPI look);
        "brightfield": dark purple nuclei on a light background (a stain look).
    noise : float, optional
        Standard deviation of the additive Gaussian noise, in units of the [0, 1] signal (default 0.04).
    seed : int, optional
        Seed of `numpy.random.default_rng` (default 0); the same seed gives the same sample.

    Returns
    -------
    SyntheticSample
        The (H, W, 3) uint8 image and the (H, W) uint16 labels, 0 = background, nuclei 1..n.

    Raises
    ------
    ValueError
        For a `style` other than "fluorescence" or "brightfield".

    Examples
    --------
    >>> sample = synthetic_nuclei((64, 64), n_nuclei=5, diameter=12.0, seed=0)
    >>> sample.image.shape, int(sample.labels.max())
    ((64, 64, 3), 5)
    >>> int(synthetic_nuclei((32, 32), n_nuclei=50, diameter=12.0).labels.max())  # too crowded for 50
    4
    """
    if style not in ("fluorescence", "brightfield"):
        raise ValueError(f"unknown style {style!r}; choose 'fluorescence' or 'brightfield'")
    rng = np.random.default_rng(seed)
    h, w = shape
    labels = np.zeros(shape, np.uint16)
    occupied = np.zeros(shape, bool)
    brightness = np.zeros(shape, np.float64)
    count = 0
    for _ in range(n_nuclei * 20):
        if count == n_nuclei:
            break
        r_major = diameter / 2 * rng.uniform(0.8, 1.3)
        r_minor = r_major * rng.uniform(0.6, 1.0)
        cy, cx = rng.uniform(r_major, h - r_major), rng.uniform(r_major, w - r_major)
        rr, cc = ellipse(cy, cx, r_minor, r_major, shape=shape, rotation=rng.uniform(0, np.pi))
        if rr.size < 8:
            continue
        # Keep a one-pixel gap so every nucleus is a separate object even after blurring.
        grown = ndimage.binary_dilation(_mask(rr, cc, shape), iterations=2)
        if (grown & occupied).any():
            continue
        count += 1
        labels[rr, cc] = count
        occupied[rr, cc] = True
        brightness[rr, cc] = rng.uniform(0.55, 1.0)
    texture = ndimage.gaussian_filter(rng.normal(0, 1, shape), 2.0)
    signal = ndimage.gaussian_filter(brightness * (1 + 0.15 * texture), 1.2)
    signal = np.clip(signal + rng.normal(0, noise, shape), 0, 1)
    if style == "fluorescence":
        grey = 0.04 + 0.9 * signal
        image = np.stack([grey * 0.3, grey * 0.6, grey], axis=-1)  # blue-ish DAPI look
    else:
        grey = 0.92 - 0.6 * signal
        image = np.stack([grey * 0.95, grey * 0.75, grey * 0.95], axis=-1)  # purple stain
    return SyntheticSample(np.clip(image * 255 + 0.5, 0, 255).astype(np.uint8), labels)


def _mask(rr, cc, shape):
    out = np.zeros(shape, bool)
    out[rr, cc] = True
    return out


def rim_stain(size: int = 256, n_nuclei: int = 24, diameter: float = 22.0, *, rim_depth: float = 1.5,
              seed: int = 0) -> SyntheticSample:
    """A style the shipped model was not trained on: a nuclear-envelope stain, with its exact labels.

    Bright rims at `rim_depth` pixels inside each nucleus, dark interiors, an uneven red background.
    The labels are those of ``synthetic_nuclei((size, size), n_nuclei, diameter, seed=seed)``.

    Parameters
    ----------
    size : int, optional
        Image height and width in pixels (default 256).
    n_nuclei : int, optional
        The number of nuclei to place at most (default 24; fewer when crowded, see `synthetic_nuclei`).
    diameter : float, optional
        Mean nucleus diameter in pixels (default 22.0).
    rim_depth : float, optional
        Distance in pixels from the nucleus edge to the brightest part of the rim (default 1.5).
    seed : int, optional
        Seed of the nuclei placement, the noise and the direction of the background gradient (default 0).

    Returns
    -------
    SyntheticSample
        The (size, size, 3) uint8 image and the (size, size) uint16 labels, 0 = background.

    Examples
    --------
    >>> sample = rim_stain(128, 10, 18.0, seed=1)
    >>> sample.image.shape, int(sample.labels.max()) > 0
    ((128, 128, 3), True)
    """
    labels = synthetic_nuclei((size, size), n_nuclei=n_nuclei, diameter=diameter, seed=seed).labels
    rng = np.random.default_rng(seed)
    depth = ndimage.distance_transform_edt(labels > 0)
    rim = np.exp(-((depth - rim_depth) ** 2) / 2.0) * (labels > 0)
    yy, xx = np.mgrid[0:size, 0:size] / size
    background = 0.12 + 0.15 * (xx * np.cos(seed) + yy * np.sin(seed)) ** 2
    signal = np.clip(ndimage.gaussian_filter(rim, 0.8) + background + rng.normal(0, 0.06, labels.shape), 0, 1)
    image = (np.stack([signal, 0.35 * signal, 0.25 * signal], -1) * 255).astype(np.uint8)
    return SyntheticSample(image, labels)


class SyntheticMosaic:
    """A synthetic nucleus image of any size, made window by window and never whole: the plane is
    tiled with `synthetic_nuclei` samples of `tile` pixels (`variants` distinct ones, each tile picking
    one by a hash of its position), shifted by `offset` so that tile seams do not fall on a block grid
    of round numbers. For tests and benchmarks of large-image segmentation.

    Parameters
    ----------
    shape
        (rows, columns) of the whole image.
    tile, n_nuclei, diameter, style
        Each tile is `synthetic_nuclei((tile, tile), n_nuclei, diameter, style=style)`.
    variants
        How many distinct tiles are generated (once, when first needed).
    offset
        (rows, columns) the tiling is shifted by.
    seed
        Seed of the first variant (the others follow it).

    Examples
    --------
    >>> mosaic = SyntheticMosaic((5000, 7000), tile=64, n_nuclei=4, diameter=12.0, variants=2)
    >>> window = mosaic.window(slice(4990, 5000), slice(0, 100))
    >>> window.shape, window.dtype
    ((10, 100, 3), dtype('uint8'))
    >>> np.array_equal(mosaic.window(slice(0, 300), slice(50, 90))[100:110], mosaic.window(slice(100, 110), slice(50, 90)))
    True
    """

    def __init__(self, shape: tuple[int, int], *, tile: int = 256, n_nuclei: int = 40, diameter: float = 20.0,
                 variants: int = 8, offset: tuple[int, int] = (100, 37), style: str = "fluorescence", seed: int = 0):
        self.shape = tuple(int(n) for n in shape)
        self.tile, self.offset = int(tile), tuple(int(o) % int(tile) for o in offset)
        self._make = lambda k: synthetic_nuclei((self.tile, self.tile), n_nuclei, diameter, style=style,
                                                seed=seed + k).image
        self.variants = int(variants)
        self._tiles: dict[int, np.ndarray] = {}

    def _variant(self, ty: int, tx: int) -> np.ndarray:
        k = (ty * 7919 + tx * 104729) % self.variants
        if k not in self._tiles:
            self._tiles[k] = self._make(k)
        return self._tiles[k]

    def window(self, rows: slice, columns: slice) -> np.ndarray:
        """uint8 RGB pixels of the image over (`rows`, `columns`).

        Parameters
        ----------
        rows, columns
            Slices with a start and a stop (step 1); clipped to the image.

        Returns
        -------
        numpy.ndarray
            rows × columns × 3 uint8.
        """
        y0, y1 = max(0, rows.start or 0), min(self.shape[0], rows.stop)
        x0, x1 = max(0, columns.start or 0), min(self.shape[1], columns.stop)
        out = np.empty((max(0, y1 - y0), max(0, x1 - x0), 3), np.uint8)
        t, (oy, ox) = self.tile, self.offset
        for ty in range((y0 + oy) // t, (y1 - 1 + oy) // t + 1 if y1 > y0 else 0):
            for tx in range((x0 + ox) // t, (x1 - 1 + ox) // t + 1 if x1 > x0 else 0):
                a0, a1 = max(y0, ty * t - oy), min(y1, (ty + 1) * t - oy)
                b0, b1 = max(x0, tx * t - ox), min(x1, (tx + 1) * t - ox)
                tile = self._variant(ty, tx)
                out[a0 - y0:a1 - y0, b0 - x0:b1 - x0] = tile[a0 - ty * t + oy:a1 - ty * t + oy,
                                                             b0 - tx * t + ox:b1 - tx * t + ox]
        return out
