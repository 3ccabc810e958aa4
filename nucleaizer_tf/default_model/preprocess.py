"""Image preparation shared by training and inference: any image → stretched 8-bit RGB, and resizing.

The default model sees every image through `stretch_rgb8`, a single 1 %–99.8 % percentile stretch
over all kept channels (the same rule as `to_rgb8(mode="percentile")`, colour balance preserved).
Training applies it to the raw training images, so a dim 8-bit fluorescence image, a 16-bit one and a
bright-field one all reach the network with comparable contrast. For images above
`SAMPLE_PIXELS` pixels the percentiles are taken on a regular sub-grid (deterministic), so the
statistic costs the same for a 4096² or an 8000² image.
"""

from __future__ import annotations

import cv2
import numpy as np

from nucleaizer_tf.io.convert import PERCENTILES

#: above this many pixels the stretch percentiles come from a regular sub-grid of the image
SAMPLE_PIXELS = 1 << 22


def as_rgb(image: np.ndarray) -> np.ndarray:
    """H×W (grey), H×W×1/2 (grey, grey+alpha) or H×W×C≥3 (first three kept) → H×W×3, dtype unchanged."""
    image = np.asarray(image)
    if image.ndim == 2:
        return np.repeat(image[:, :, None], 3, axis=2)
    if image.ndim != 3 or image.shape[2] < 1:
        raise ValueError(f"expected a 2-D grey or H×W×C image, got shape {image.shape}")
    if image.shape[2] >= 3:
        return image[:, :, :3]
    return np.repeat(image[:, :, :1], 3, axis=2)


def stretch_limits(rgb: np.ndarray) -> tuple[float, float]:
    """(low, high) intensity of the stretch: percentiles 1 and 99.8 of all finite values."""
    h, w = rgb.shape[:2]
    step = max(1, int(np.ceil(np.sqrt(h * w / SAMPLE_PIXELS))))
    sample = rgb[::step, ::step].astype(np.float64)
    finite = sample[np.isfinite(sample)]
    if finite.size == 0:
        return 0.0, 0.0
    lo, hi = np.percentile(finite, PERCENTILES)
    if hi <= lo:  # nearly constant or very sparse: fall back to the full range
        lo, hi = finite.min(), finite.max()
    return float(lo), float(hi)


def stretch_rgb8(image: np.ndarray) -> np.ndarray:
    """Any-dtype grey/RGB(A) image → uint8 H×W×3 with intensities stretched by `stretch_limits`."""
    rgb = as_rgb(image)
    lo, hi = stretch_limits(rgb)
    if hi <= lo:
        return np.zeros(rgb.shape, np.uint8)
    # uint8 input: a lookup table is exact and avoids a float copy of a large image
    if rgb.dtype == np.uint8:
        lut = np.clip((np.arange(256, dtype=np.float64) - lo) / (hi - lo), 0.0, 1.0) * 255.0
        return np.floor(lut + 0.5).astype(np.uint8)[rgb]
    out = np.empty(rgb.shape, np.uint8)
    for r in range(0, rgb.shape[0], 1024):  # row blocks: bounded float temporaries
        block = np.nan_to_num(rgb[r:r + 1024].astype(np.float64), nan=lo, posinf=hi, neginf=lo)
        out[r:r + 1024] = np.floor(np.clip((block - lo) / (hi - lo), 0.0, 1.0) * 255.0 + 0.5)
    return out


def scaled_shape(shape: tuple[int, int], scale: float) -> tuple[int, int]:
    """Size of an image of `shape` (rows, columns) resized by `scale` (each side at least 1 pixel)."""
    return max(1, int(round(shape[0] * scale))), max(1, int(round(shape[1] * scale)))


def resize_image(image: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Resize an image (H×W or H×W×C, uint8 or float32) to `shape`: area averaging when shrinking,
    bilinear when enlarging (OpenCV), same dtype."""
    h, w = image.shape[:2]
    if (h, w) == tuple(shape):
        return image
    shrink = shape[0] * shape[1] < h * w
    out = cv2.resize(image, (shape[1], shape[0]), interpolation=cv2.INTER_AREA if shrink else cv2.INTER_LINEAR)
    if image.ndim == 3 and out.ndim == 2:  # OpenCV drops a single channel
        out = out[:, :, None]
    return out


def resize_labels(labels: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Nearest-neighbour resize of a label image (pixel-centre mapping, any integer dtype, exact)."""
    h, w = labels.shape
    if (h, w) == tuple(shape):
        return labels
    rows = np.minimum(((np.arange(shape[0]) + 0.5) * h / shape[0]).astype(np.int64), h - 1)
    cols = np.minimum(((np.arange(shape[1]) + 0.5) * w / shape[1]).astype(np.int64), w - 1)
    return labels[rows[:, None], cols[None, :]]
