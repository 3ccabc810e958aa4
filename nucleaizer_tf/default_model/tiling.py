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
    Convolutions at level l add 2^l each side, poolings and up-convolutions 2^l: 8·2^depth − 6.

    Parameters
    ----------
    depth : int
        Number of poolings of the U-Net.

    Returns
    -------
    int

    Examples
    --------
    >>> [unet_receptive_radius(depth) for depth in (2, 3, 4)]
    [26, 58, 122]
    """
    return 8 * 2**depth - 6


def context_margin(depth: int) -> int:
    """Smallest margin ≥ the receptive radius that keeps tiles on the pooling grid (multiple of 2^depth).

    Parameters
    ----------
    depth : int
        Number of poolings of the U-Net.

    Returns
    -------
    int

    Examples
    --------
    >>> [context_margin(depth) for depth in (2, 3, 4)]
    [28, 64, 128]
    """
    step = 2**depth
    return int(math.ceil(unet_receptive_radius(depth) / step) * step)


def padded_shape(shape: tuple[int, int], multiple: int) -> tuple[int, int]:
    """`shape` with each side rounded up to a multiple of `multiple` (the network's pooling factor).

    Parameters
    ----------
    shape : tuple of int
        (rows, columns).
    multiple : int
        The total pooling factor 2^depth.

    Returns
    -------
    tuple of int

    Examples
    --------
    >>> padded_shape((100, 250), 16)
    (112, 256)
    """
    return tuple(int(math.ceil(s / multiple) * multiple) for s in shape)


def windows(shape: tuple[int, int], tile: int, margin: int) -> Iterator[tuple[tuple[slice, slice], tuple[slice, slice]]]:
    """(core, window) slice pairs covering a `shape` image with `tile`-sized cores and context `margin`.

    Cores are row-major, the last ones in each direction cut at the border; each window is its core
    grown by `margin` on every side and clipped to the image.

    Parameters
    ----------
    shape : tuple of int
        (rows, columns) of the (padded) image.
    tile : int
        Core side.
    margin : int
        Context on each side.

    Yields
    ------
    core : tuple of slice
        (rows, columns) of the kept core.
    window : tuple of slice
        (rows, columns) the network sees.

    Examples
    --------
    >>> for core, window in windows((5, 7), 4, 2):
    ...     print([(s.start, s.stop) for s in core], [(s.start, s.stop) for s in window])
    [(0, 4), (0, 4)] [(0, 5), (0, 6)]
    [(0, 4), (4, 7)] [(0, 5), (2, 7)]
    [(4, 5), (0, 4)] [(2, 5), (0, 6)]
    [(4, 5), (4, 7)] [(2, 5), (2, 7)]
    """
    h, w = shape
    for y0 in range(0, h, tile):
        y1 = min(y0 + tile, h)
        for x0 in range(0, w, tile):
            x1 = min(x0 + tile, w)
            core = (slice(y0, y1), slice(x0, x1))
            window = (slice(max(0, y0 - margin), min(h, y1 + margin)), slice(max(0, x0 - margin), min(w, x1 + margin)))
            yield core, window


def quantise(prob: np.ndarray) -> np.ndarray:
    """float probabilities in [0, 1] → uint8 round(255·p).

    Values are clipped to [0, 1] first; halves round up (floor(255·p + 0.5)).

    Parameters
    ----------
    prob : numpy.ndarray
        Float probabilities.

    Returns
    -------
    numpy.ndarray
        uint8, the shape of `prob`.

    Examples
    --------
    >>> quantise(np.array([0.0, 0.5, 0.999, 1.2]))
    array([  0, 128, 255, 255], dtype=uint8)
    """
    return np.floor(np.clip(prob, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)


def predict_map(
    forward: Callable[[np.ndarray], np.ndarray],
    image: np.ndarray,
    *,
    multiple: int,
    margin: int,
    tile: int | None = None,
    on_window: Callable[[], None] | None = None,
) -> np.ndarray:
    """uint8 H×W×C map of `forward` (float32 h×w×3 in [0, 1] → float h×w×C) over uint8 `image` H×W×3.

    `tile` None, or an image whose padded size fits in one tile plus its margins, runs in one piece;
    otherwise tiles of `tile` pixels (rounded up to a multiple of `multiple`) with `margin` context.

    Parameters
    ----------
    forward : callable
        The network on one batchless window: float32 h×w×3 in [0, 1] → float h×w×C.
    image : numpy.ndarray
        uint8 H×W×3 image; it is mirror-padded (bottom/right) to multiples of `multiple`.
    multiple : int
        The network's total pooling factor 2^depth.
    margin : int
        Context margin, a multiple of `multiple` (ValueError otherwise), e.g. `context_margin(depth)`.
    tile : int, optional
        Core size of the tiles; None = one piece.
    on_window : callable, optional
        Called with no argument after each run of `forward` (once per tile): a progress tick, and the
        point where a caller can stop a long run by raising.

    Returns
    -------
    numpy.ndarray
        uint8 H×W×C map (`quantise` of the probabilities), cropped back to the image.

    Examples
    --------
    >>> def forward(x):  # a stand-in for the network: grey level and its complement
    ...     grey = x.mean(axis=-1, keepdims=True)
    ...     return np.concatenate([grey, 1 - grey], axis=-1)
    >>> image = (np.arange(30 * 50 * 3) % 251).astype(np.uint8).reshape(30, 50, 3)
    >>> whole = predict_map(forward, image, multiple=8, margin=8)
    >>> tiled = predict_map(forward, image, multiple=8, margin=8, tile=8)
    >>> whole.shape, whole.dtype, bool(np.array_equal(whole, tiled))
    ((30, 50, 2), dtype('uint8'), True)
    """
    if margin % multiple:
        raise ValueError(f"margin {margin} must be a multiple of {multiple}")
    h, w = image.shape[:2]
    hp, wp = padded_shape((h, w), multiple)
    padded = image if (hp, wp) == (h, w) else np.pad(image, ((0, hp - h), (0, wp - w), (0, 0)), mode="symmetric")
    tick = on_window or (lambda: None)
    if tile is None or (hp <= tile + 2 * margin and wp <= tile + 2 * margin):
        whole = quantise(forward(padded.astype(np.float32) / np.float32(255.0)))[:h, :w]
        tick()
        return whole
    tile = int(math.ceil(tile / multiple) * multiple)
    out = None
    for (cy, cx), (wy, wx) in windows((hp, wp), tile, margin):
        prob = forward(padded[wy, wx].astype(np.float32) / np.float32(255.0))
        if out is None:
            out = np.empty((hp, wp, prob.shape[-1]), np.uint8)
        oy, ox = cy.start - wy.start, cx.start - wx.start
        out[cy, cx] = quantise(prob[oy:oy + cy.stop - cy.start, ox:ox + cx.stop - cx.start])
        tick()
    return out[:h, :w]
