"""Run a fully convolutional network over an image of any size in tiles, with a result that does not
depend on the tiling.

The image is first padded (mirror, bottom/right) to a multiple of the network's total pooling factor
`multiple`, and that padded image is what the network sees, whole or in pieces. Each tile is a *core*
of `tile` pixels (a multiple of `multiple`, so every tile sits on the same pooling grid as the whole
image) plus a *context margin* on every side that is clipped at the padded image's borders. The network
runs on core + margin and only the core is kept. When the margin is at least the network's receptive-
field radius, each kept output pixel sees exactly the input values (including the zero padding of
the convolutions at the padded image's borders) that it would see in a single pass over the whole
image, so the stitched map equals the one-piece map; there is no blending and no seam.

Memory is bounded by one tile's activations plus the uint8 output map (3 bytes per pixel).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator

import numpy as np


def unet_receptive_radius(depth: int) -> int:
    """Receptive-field radius (pixels) of `build_unet(depth=depth)`: two 3×3 convolutions per level
    on the way down, at the centre and on the way up, 2×2 poolings and 2×2 stride-2 up-convolutions.
    Convolutions at level l add 2^l each side, poolings and up-convolutions 2^l: 8·2^depth − 6."""
    return 8 * 2**depth - 6


def context_margin(depth: int) -> int:
    """Smallest margin ≥ the receptive radius that keeps tiles on the pooling grid (multiple of 2^depth)."""
    step = 2**depth
    return int(math.ceil(unet_receptive_radius(depth) / step) * step)


def padded_shape(shape: tuple[int, int], multiple: int) -> tuple[int, int]:
    return tuple(int(math.ceil(s / multiple) * multiple) for s in shape)


def windows(shape: tuple[int, int], tile: int, margin: int) -> Iterator[tuple[tuple[slice, slice], tuple[slice, slice]]]:
    """(core, window) slice pairs covering a `shape` image with `tile`-sized cores and context `margin`."""
    h, w = shape
    for y0 in range(0, h, tile):
        y1 = min(y0 + tile, h)
        for x0 in range(0, w, tile):
            x1 = min(x0 + tile, w)
            core = (slice(y0, y1), slice(x0, x1))
            window = (slice(max(0, y0 - margin), min(h, y1 + margin)), slice(max(0, x0 - margin), min(w, x1 + margin)))
            yield core, window


def quantise(prob: np.ndarray) -> np.ndarray:
    """float probabilities in [0, 1] → uint8 round(255·p)."""
    return np.floor(np.clip(prob, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)


def predict_map(
    forward: Callable[[np.ndarray], np.ndarray],
    image: np.ndarray,
    *,
    multiple: int,
    margin: int,
    tile: int | None = None,
) -> np.ndarray:
    """uint8 H×W×C map of `forward` (float32 h×w×3 in [0, 1] → float h×w×C) over uint8 `image` H×W×3.

    `tile` None, or an image whose padded size fits in one tile plus its margins, runs in one piece;
    otherwise tiles of `tile` pixels (rounded up to a multiple of `multiple`) with `margin` context.
    """
    if margin % multiple:
        raise ValueError(f"margin {margin} must be a multiple of {multiple}")
    h, w = image.shape[:2]
    hp, wp = padded_shape((h, w), multiple)
    padded = image if (hp, wp) == (h, w) else np.pad(image, ((0, hp - h), (0, wp - w), (0, 0)), mode="symmetric")
    if tile is None or (hp <= tile + 2 * margin and wp <= tile + 2 * margin):
        return quantise(forward(padded.astype(np.float32) / np.float32(255.0)))[:h, :w]
    tile = int(math.ceil(tile / multiple) * multiple)
    out = None
    for (cy, cx), (wy, wx) in windows((hp, wp), tile, margin):
        prob = forward(padded[wy, wx].astype(np.float32) / np.float32(255.0))
        if out is None:
            out = np.empty((hp, wp, prob.shape[-1]), np.uint8)
        oy, ox = cy.start - wy.start, cx.start - wx.start
        out[cy, cx] = quantise(prob[oy:oy + cy.stop - cy.start, ox:ox + cx.stop - cx.start])
    return out[:h, :w]
