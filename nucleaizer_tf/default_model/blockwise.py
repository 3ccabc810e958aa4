"""The default model on an image too large for memory: overlapping blocks that give one pass's nuclei.

No file system here: the caller reads each block's pixels and writes its labels
(`nucleaizer_tf.pipelines.large_image`). What makes the blocks agree with each other (and with
`DefaultModel.segment` on the whole image):

* **One stretch, one scale.** Every block is stretched with the whole image's percentile limits
  (`stretch_rgb8_with_limits`) and resized by the same `scale`, a multiple of 1/`SCALE_DENOMINATOR`
  (`snap_scale`) so that a block's resized pixels fall exactly on the whole image's resized grid.
* **Windows on the grids.** A block's *network window* starts on a lattice (`BlockGrid.start_step`
  native pixels) whose resized positions are multiples of the network's pooling factor, and has a
  length whose resized length is a whole number of pixels (`BlockGrid.length_step`); it extends
  `BlockGrid.context` native pixels (≥ the receptive radius at this scale plus the resizing
  footprints) beyond the *label window*. Then the uint8 map over the label window does not depend
  on the block (`tiling.py`'s argument, plus the resizing's shift invariance): every block computes
  the same probabilities for the same pixel. The image's bottom / right edges are mirror-padded to a
  whole resized pixel (at most `length_step` − 1 pixels) the same way for every block.
* **Whole nuclei, kept once.** The label window is the block's *core* (its output chunk) plus `halo`
  pixels (three nucleus diameters) each side. The instance step works region by region, so a
  foreground region that does not touch the label window's inner edges gives exactly the nuclei of
  the whole image. Each block keeps the nuclei whose *anchor* (first pixel in raster order) lies in
  its core, with id = 1 + the anchor's raster index in the whole image: unique by construction, the
  same whatever the block size, and no relabelling table anywhere. A nucleus crosses into at most the
  neighbouring cores, so an output block is its own kept nuclei plus its eight neighbours'
  (`assemble_core`; a pixel two kept nuclei claim goes to the first piece, the block's own).
  A kept nucleus whose foreground region reaches the label window's inner edge (a cluster of
  touching nuclei wider than the halo) may differ from the one-pass result; `keep_anchored` counts
  them (`uncertain`).

Examples
--------
>>> grid = BlockGrid.plan((3000, 2000), 1024, snap_scale(1.0), segment_diameter=20.0, multiple=8, margin=64)
>>> grid.blocks, grid.halo, grid.context
((3, 2), 60, 72)
>>> grid.windows(1, 0).core
(slice(1024, 2048, None), slice(0, 1024, None))
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from fractions import Fraction

import numpy as np
from scipy import ndimage

from nucleaizer_tf.default_model.model import SCALE_LIMITS
from nucleaizer_tf.default_model.preprocess import resize_image, stretch_rgb8_with_limits
from nucleaizer_tf.errors import NucleaizerError

#: block scales are multiples of 1 / SCALE_DENOMINATOR (steps of 6 % at scale 1, well inside the size
#: estimate's own ×1.2 tolerance)
SCALE_DENOMINATOR = 16
#: the label window reaches this many nucleus diameters beyond the block's core
HALO_DIAMETERS = 3.0
MIN_HALO = 32


def snap_scale(scale: float) -> Fraction:
    """`scale` clipped to the model's limits and rounded to the nearest multiple of 1/`SCALE_DENOMINATOR`.

    Parameters
    ----------
    scale
        The factor the image is resized by before the network (trained diameter / nucleus diameter).

    Returns
    -------
    Fraction
        The scale the blocks run at.

    Examples
    --------
    >>> snap_scale(1.0), snap_scale(20 / 16.3), snap_scale(100.0)
    (Fraction(1, 1), Fraction(5, 4), Fraction(8, 1))
    """
    if not (isinstance(scale, (int, float, Fraction)) and math.isfinite(scale) and scale > 0):
        raise ValueError(f"scale must be a positive number, got {scale!r}")
    lo, hi = (round(limit * SCALE_DENOMINATOR) for limit in SCALE_LIMITS)
    steps = min(hi, max(lo, round(float(scale) * SCALE_DENOMINATOR)))
    return Fraction(steps, SCALE_DENOMINATOR)


@dataclass(frozen=True)
class BlockWindows:
    """The three windows of one block, as (row slice, column slice) in image coordinates.

    Attributes
    ----------
    index
        (row, column) of the block in the grid (`BlockGrid.windows` makes them).
    core
        The block's own pixels: its chunk of the output.
    labels
        The core plus the halo (clipped to the image): where its nuclei are computed.
    network
        The labels window plus the context, on the lattice; it may end past the image's last row or
        column (mirror padding, `pad_to_network_window`).

    Examples
    --------
    >>> w = BlockWindows((0, 1), (slice(0, 64), slice(64, 128)), (slice(0, 96), slice(32, 160)),
    ...                  (slice(0, 128), slice(0, 192)))
    >>> w.readable((100, 150))
    (slice(0, 100, None), slice(0, 150, None))
    """

    index: tuple[int, int]
    core: tuple[slice, slice]
    labels: tuple[slice, slice]
    network: tuple[slice, slice]

    def readable(self, shape: tuple[int, int]) -> tuple[slice, slice]:
        """The part of the network window inside an image of `shape` (what the caller reads).

        Parameters
        ----------
        shape
            (rows, columns) of the image.

        Returns
        -------
        (slice, slice)

        Examples
        --------
        >>> BlockWindows((0, 0), (slice(0, 4),) * 2, (slice(0, 6),) * 2, (slice(0, 8),) * 2).readable((7, 9))
        (slice(0, 7, None), slice(0, 8, None))
        """
        return tuple(slice(s.start, min(s.stop, n)) for s, n in zip(self.network, shape))


@dataclass(frozen=True)
class BlockGrid:
    """How an image of `shape` is cut into blocks of `block` pixels at `scale` (see the module docstring).

    Attributes
    ----------
    shape
        (rows, columns) of the image.
    block
        Side of a block's core (the output's chunk), native pixels.
    scale
        The resizing factor every block runs at (`snap_scale`).
    halo
        Native pixels the labels window reaches beyond the core.
    context
        Native pixels the network window reaches beyond the labels window.
    start_step
        Network windows start at multiples of this (native pixels).
    length_step
        Network windows are a multiple of this long, or end at the padded image end.

    Examples
    --------
    >>> grid = BlockGrid.plan((1536, 1536), 512, Fraction(5, 4), segment_diameter=20.0, multiple=8, margin=64)
    >>> grid.start_step, grid.length_step, grid.padded_shape
    (32, 4, (1536, 1536))
    """

    shape: tuple[int, int]
    block: int
    scale: Fraction
    halo: int
    context: int
    start_step: int
    length_step: int

    @classmethod
    def plan(cls, shape: tuple[int, int], block: int, scale: Fraction, *, segment_diameter: float,
             multiple: int, margin: int) -> BlockGrid:
        """The grid for an image of `shape`, nuclei of `segment_diameter / scale` native pixels.

        Parameters
        ----------
        shape
            (rows, columns) of the image.
        block
            Core side in native pixels (at least the halo: a nucleus then reaches only the
            neighbouring cores).
        scale
            A `snap_scale` result.
        segment_diameter, multiple, margin
            The model's nucleus diameter, pooling factor (2^depth) and context margin (resized
            pixels, ≥ the receptive radius; `DefaultModel.segment_diameter`, `.multiple`, `.margin`).

        Returns
        -------
        BlockGrid

        Examples
        --------
        >>> BlockGrid.plan((100, 100), 16, Fraction(1), segment_diameter=20.0, multiple=8, margin=64)
        Traceback (most recent call last):
        ...
        nucleaizer_tf.errors.NucleaizerError: block 16 < the overlap of 60 px nuclei of 20 px need: use a block ≥ 64
        """
        scale = Fraction(scale)
        diameter = segment_diameter / float(scale)
        halo = max(MIN_HALO, math.ceil(HALO_DIAMETERS * diameter))
        if block < halo:
            at_least = int(math.ceil(halo / 64) * 64)
            raise NucleaizerError(f"block {block} < the overlap of {halo} px nuclei of {diameter:g} px need: "
                                  f"use a block ≥ {at_least}")
        # resized pixels the map needs beyond the labels window: the network's receptive radius plus
        # the footprints of the resizing there and back, converted to native pixels
        resize_reach = 2 * math.ceil(scale) + 4
        context = math.ceil((margin + resize_reach) / scale) + 2
        k, r = scale.numerator, scale.denominator
        start_step = multiple * r // math.gcd(k, multiple)
        return cls(tuple(int(n) for n in shape), int(block), scale, int(halo), int(context), int(start_step), int(r))

    @property
    def blocks(self) -> tuple[int, int]:
        """(rows, columns) of blocks (the last ones may be partial)."""
        return tuple(-(-n // self.block) for n in self.shape)

    @property
    def padded_shape(self) -> tuple[int, int]:
        """The image's shape rounded up to a multiple of `length_step` (the mirror-padded end)."""
        return tuple(-(-n // self.length_step) * self.length_step for n in self.shape)

    @property
    def id_dtype(self) -> np.dtype:
        """uint32, or uint64 for an image of 2^32 − 1 pixels or more (ids are 1 + a raster index)."""
        return np.dtype(np.uint32 if self.shape[0] * self.shape[1] < 2**32 - 1 else np.uint64)

    def _axis(self, axis: int, index: int) -> tuple[slice, slice, slice]:
        n, end = self.shape[axis], self.padded_shape[axis]
        c0, c1 = index * self.block, min((index + 1) * self.block, n)
        if not 0 <= c0 < n:
            raise IndexError(f"block {index} outside the {self.blocks[axis]} blocks of axis {axis}")
        l0, l1 = max(0, c0 - self.halo), min(n, c1 + self.halo)
        a0 = max(0, l0 - self.context) // self.start_step * self.start_step
        a1 = a0 + -(-(l1 + self.context - a0) // self.length_step) * self.length_step
        if a1 >= n:  # reaches the image's end: end where every block ending there ends
            a1 = end
        return slice(c0, c1), slice(l0, l1), slice(a0, a1)

    def windows(self, row: int, column: int) -> BlockWindows:
        """The windows of block (`row`, `column`).

        Parameters
        ----------
        row, column
            The block's place in the grid (0-based).

        Returns
        -------
        BlockWindows

        Examples
        --------
        >>> grid = BlockGrid.plan((1000, 1000), 512, Fraction(1), segment_diameter=20.0, multiple=8, margin=64)
        >>> grid.windows(1, 1).network
        (slice(376, 1000, None), slice(376, 1000, None))
        """
        (cy, ly, ay), (cx, lx, ax) = self._axis(0, row), self._axis(1, column)
        return BlockWindows((row, column), (cy, cx), (ly, lx), (ay, ax))

    def indices(self) -> Iterator[tuple[int, int]]:
        """Every block's (row, column), in raster order.

        Returns
        -------
        iterator of (int, int)

        Examples
        --------
        >>> grid = BlockGrid.plan((300, 200), 128, Fraction(1), segment_diameter=20.0, multiple=8, margin=64)
        >>> list(grid.indices())
        [(0, 0), (0, 1), (1, 0), (1, 1), (2, 0), (2, 1)]
        """
        rows, columns = self.blocks
        for i in range(rows):
            for j in range(columns):
                yield i, j

    def neighbours(self, row: int, column: int) -> list[tuple[int, int]]:
        """The block itself first, then the up to eight blocks around it in raster order: the blocks
        whose kept nuclei can reach its core.

        Parameters
        ----------
        row, column
            The block.

        Returns
        -------
        list of (int, int)

        Examples
        --------
        >>> grid = BlockGrid.plan((300, 200), 128, Fraction(1), segment_diameter=20.0, multiple=8, margin=64)
        >>> grid.neighbours(0, 0)
        [(0, 0), (0, 1), (1, 0), (1, 1)]
        """
        rows, columns = self.blocks
        around = [(row + di, column + dj) for di in (-1, 0, 1) for dj in (-1, 0, 1) if (di, dj) != (0, 0)]
        return [(row, column)] + [(i, j) for i, j in around if 0 <= i < rows and 0 <= j < columns]


def pad_to_network_window(pixels: np.ndarray, windows: BlockWindows, shape: tuple[int, int]) -> np.ndarray:
    """The readable part of a network window (`windows.readable(shape)`) mirror-padded past the image's
    end to the full network window.

    Parameters
    ----------
    pixels
        The image over `windows.readable(shape)`.
    windows
        The block's windows.
    shape
        (rows, columns) of the image.

    Returns
    -------
    numpy.ndarray
        The pixels over `windows.network` (`pixels` itself when nothing is missing).

    Examples
    --------
    >>> w = BlockWindows((0, 0), (slice(0, 2),) * 2, (slice(0, 3),) * 2, (slice(0, 4), slice(0, 3)))
    >>> pad_to_network_window(np.arange(9).reshape(3, 3), w, (3, 3))[:, 0]
    array([0, 3, 6, 6])
    """
    ny, nx = windows.network
    extra = (ny.stop - max(ny.start, min(ny.stop, shape[0])), nx.stop - max(nx.start, min(nx.stop, shape[1])))
    if extra == (0, 0):
        return pixels
    return np.pad(pixels, ((0, extra[0]), (0, extra[1])) + ((0, 0),) * (pixels.ndim - 2), mode="symmetric")


def window_probabilities(model, rgb8: np.ndarray, scale: Fraction, *, tile: int | None = 1024,
                         tta: bool = False) -> np.ndarray:
    """uint8 H×W×3 map of a network window at its own (native) size: resized by `scale` (exactly: its
    sides times `scale` are whole), the network in tiles of `tile` resized pixels, resized back.

    Parameters
    ----------
    model
        A `DefaultModel`.
    rgb8
        The window, stretched (`stretch_rgb8_with_limits`).
    scale
        The grid's scale.
    tile, tta
        As for `DefaultModel.probability_map`.

    Returns
    -------
    numpy.ndarray
        uint8 (background, interior, boundary) map, same rows and columns as `rgb8`.

    Examples
    --------
    >>> prob = window_probabilities(DefaultModel.load(), rgb8_window, Fraction(5, 4))  # doctest: +SKIP
    """
    h, w = rgb8.shape[:2]
    scaled = (h * scale.numerator // scale.denominator, w * scale.numerator // scale.denominator)
    if Fraction(scaled[0]) != h * scale or Fraction(scaled[1]) != w * scale:
        raise ValueError(f"a {h}×{w} window does not resize to whole pixels at scale {scale}")
    prob = model.probability_map(resize_image(rgb8, scaled), tile=tile, tta=tta)
    return resize_image(prob, (h, w))


@dataclass(frozen=True)
class KeptNuclei:
    """The nuclei a block keeps, over its labels window.

    Attributes
    ----------
    origin
        (row, column) of the labels window's first pixel in the image.
    labels
        The kept nuclei with their global ids (1 + the anchor's raster index), 0 elsewhere.
    count
        How many nuclei were kept.
    uncertain
        How many of them belong to a foreground region reaching the labels window's inner edge.

    Examples
    --------
    >>> KeptNuclei((0, 0), np.zeros((4, 4), np.uint32), 0, 0).count
    0
    """

    origin: tuple[int, int]
    labels: np.ndarray
    count: int
    uncertain: int


def _inner_edge_regions(regions: np.ndarray, windows: BlockWindows, shape: tuple[int, int]) -> np.ndarray:
    """Ids of the regions touching a side of the labels window that is not the image's border."""
    (ly, lx), touching = windows.labels, []
    if ly.start > 0:
        touching.append(regions[0])
    if ly.stop < shape[0]:
        touching.append(regions[-1])
    if lx.start > 0:
        touching.append(regions[:, 0])
    if lx.stop < shape[1]:
        touching.append(regions[:, -1])
    ids = np.unique(np.concatenate(touching)) if touching else np.zeros(0, regions.dtype)
    return ids[ids > 0]


def keep_anchored(model, labels: np.ndarray, prob: np.ndarray, windows: BlockWindows, grid: BlockGrid) -> KeptNuclei:
    """The nuclei of `labels` (the instance step over the labels window) anchored in the block's core.

    Parameters
    ----------
    model
        The `DefaultModel` whose thresholds made `labels` (to find their foreground regions).
    labels
        int labels over `windows.labels`.
    prob
        The uint8 map `labels` came from (same window).
    windows, grid
        The block and its grid.

    Returns
    -------
    KeptNuclei

    Examples
    --------
    >>> kept = keep_anchored(model, model.instances(prob), prob, grid.windows(0, 1), grid)  # doctest: +SKIP
    >>> kept.count, kept.uncertain                                                      # doctest: +SKIP
    (412, 0)
    """
    (ly, lx), (cy, cx) = windows.labels, windows.core
    width = labels.shape[1]
    flat = labels.ravel()
    at = np.flatnonzero(flat)
    ids, first = np.unique(flat[at], return_index=True)  # the first occurrence: the raster anchor
    anchor_y, anchor_x = np.divmod(at[first], width)
    gy, gx = anchor_y + ly.start, anchor_x + lx.start
    mine = (gy >= cy.start) & (gy < cy.stop) & (gx >= cx.start) & (gx < cx.stop)
    dtype = grid.id_dtype
    lut = np.zeros(int(labels.max(initial=0)) + 1, dtype)
    lut[ids[mine]] = (gy[mine].astype(np.uint64) * grid.shape[1] + gx[mine] + 1).astype(dtype)
    kept = lut[labels]

    uncertain = 0
    if mine.any():
        level = lambda p: int(np.floor(np.clip(p, 0.0, 1.0) * 255.0 + 0.5))  # noqa: E731 (as instances.py)
        seeds = prob[:, :, 1] >= level(model.seed_threshold)
        regions, _ = ndimage.label((prob[:, :, 0] < level(model.foreground_threshold)) | seeds)
        edge = _inner_edge_regions(regions, windows, grid.shape)
        if edge.size:
            near_edge = np.isin(regions, edge) & (kept > 0)
            uncertain = int(np.unique(kept[near_edge]).size)
    return KeptNuclei((ly.start, lx.start), kept, int(mine.sum()), uncertain)


def segment_block(model, pixels: np.ndarray, windows: BlockWindows, grid: BlockGrid,
                  limits: tuple[float, float], *, tile: int | None = 1024, tta: bool = False) -> KeptNuclei:
    """The kept nuclei of one block from the pixels of its network window.

    Parameters
    ----------
    model
        A `DefaultModel`.
    pixels
        The image over `windows.network` (grey or RGB(A), any dtype), already padded
        (`pad_to_network_window`).
    windows, grid
        The block and its grid.
    limits
        The whole image's stretch limits (`stretch_limits`, or `limits_of_sample` of its sub-grid).
    tile, tta
        As for `DefaultModel.probability_map`.

    Returns
    -------
    KeptNuclei

    Examples
    --------
    >>> w = grid.windows(1, 2)                                                              # doctest: +SKIP
    >>> pixels = pad_to_network_window(image[w.readable(grid.shape)], w, grid.shape)        # doctest: +SKIP
    >>> kept = segment_block(DefaultModel.load(), pixels, w, grid, stretch_limits(image))   # doctest: +SKIP
    """
    ny, nx = windows.network
    if pixels.shape[:2] != (ny.stop - ny.start, nx.stop - nx.start):
        raise ValueError(f"pixels of shape {pixels.shape[:2]} for a network window of "
                         f"{(ny.stop - ny.start, nx.stop - nx.start)}")
    prob = window_probabilities(model, stretch_rgb8_with_limits(pixels, limits), grid.scale, tile=tile, tta=tta)
    ly, lx = windows.labels
    prob = np.ascontiguousarray(prob[ly.start - ny.start:ly.stop - ny.start, lx.start - nx.start:lx.stop - nx.start])
    labels = model.instances(prob, scale=float(grid.scale))
    return keep_anchored(model, labels, prob, windows, grid)


def assemble_core(core: tuple[slice, slice], pieces: Sequence[tuple[tuple[int, int], np.ndarray]],
                  dtype=np.uint32) -> np.ndarray:
    """One output block from the kept nuclei of its block and its neighbours.

    Parameters
    ----------
    core
        The block's core (row slice, column slice).
    pieces
        (origin, labels) of each `KeptNuclei`, the block's own first; where two pieces claim a pixel
        the earlier one keeps it.
    dtype
        The output's dtype (`BlockGrid.id_dtype`).

    Returns
    -------
    numpy.ndarray
        The labels of the core.

    Examples
    --------
    >>> a, b = np.array([[5, 5, 0]]), np.array([[7, 7]])
    >>> assemble_core((slice(0, 1), slice(1, 3)), [((0, 0), a), ((0, 2), b)])
    array([[5, 7]], dtype=uint32)
    """
    cy, cx = core
    out = np.zeros((cy.stop - cy.start, cx.stop - cx.start), dtype)
    for (oy, ox), labels in pieces:
        y0, y1 = max(cy.start, oy), min(cy.stop, oy + labels.shape[0])
        x0, x1 = max(cx.start, ox), min(cx.stop, ox + labels.shape[1])
        if y0 >= y1 or x0 >= x1:
            continue
        part = labels[y0 - oy:y1 - oy, x0 - ox:x1 - ox]
        view = out[y0 - cy.start:y1 - cy.start, x0 - cx.start:x1 - cx.start]
        free = (view == 0) & (part != 0)
        view[free] = part[free]
    return out
