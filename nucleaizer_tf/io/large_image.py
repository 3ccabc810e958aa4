"""Images larger than memory, read window by window: zarr arrays, OME-Zarr images and (Big)TIFF files.

`open_large_image(path)` checks the file and returns a `LargeImage`: a small, picklable description
(path, format, axes, shape) whose `read(rows, columns)` returns one window as a (Y, X) or (Y, X, C)
numpy array. The file is opened lazily, once per process, so the same object can be sent to Dask
workers on other machines (zarr stores of TIFF files cannot be pickled; their paths can).

* zarr: an array (2-D grey, (Y, X, C) or (C, Y, X) with at most 4 channels), zarr format 2 or 3.
* OME-Zarr (0.4, 0.5): the highest-resolution level (the first dataset of the first multiscales
  entry, usually "0") of an image group; its axes metadata says which axis is which; t and z axes
  must have one plane.
* TIFF: `tifffile.imread(path, aszarr=True)`; a tiled (Big)TIFF is read tile by tile, a pyramid at
  its full-resolution level; tifffile's axes (YX, YXS, SYX, CYX, ...) say which axis is which.

Examples
--------
>>> image = open_large_image("slide.ome.zarr")           # doctest: +SKIP
>>> image.image_shape, image.channels                    # doctest: +SKIP
((40000, 60000), 3)
>>> window = image.read(slice(0, 1024), slice(0, 1024))  # doctest: +SKIP
"""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from nucleaizer_tf.errors import ImageReadError

ZARR_SUFFIX = ".zarr"
TIFF_SUFFIXES = (".tif", ".tiff", ".btf", ".tf8", ".ome.tif", ".ome.tiff")
MAX_CHANNELS = 4
_OPEN: dict[tuple, object] = {}
_OPEN_LOCK = threading.Lock()


@dataclass(frozen=True)
class LargeImage:
    """One large 2-D image on disk (see the module docstring); picklable, opened lazily per process.

    Attributes
    ----------
    path
        The file or zarr folder.
    format
        "zarr", "ome-zarr" or "tiff".
    array_path
        The array inside the zarr group ("" = the store itself), e.g. "0" for OME-Zarr.
    axes
        One letter per stored axis: "y", "x", "c" (channels) or "-" (an axis of one plane, dropped).
    stored_shape
        Shape of the stored array.
    dtype
        Its numpy dtype (as a string).
    channel
        The one channel segmented (as grey), or None for all (grey, or RGB(A)).
    ome
        For OME-Zarr: {"version", "zarr_format", "axes", "transforms"} of the y and x axes of the level
        read, for the labels' metadata; else None.

    Examples
    --------
    >>> image = LargeImage("a.zarr", "zarr", "", "yxc", (5000, 4000, 3), "uint8")
    >>> image.image_shape, image.channels, image.name
    ((5000, 4000), 3, 'a')
    """

    path: str
    format: str
    array_path: str
    axes: str
    stored_shape: tuple[int, ...]
    dtype: str
    channel: int | None = None
    ome: dict | None = field(default=None, compare=False)

    @property
    def image_shape(self) -> tuple[int, int]:
        """(rows, columns)."""
        return self.stored_shape[self.axes.index("y")], self.stored_shape[self.axes.index("x")]

    @property
    def channels(self) -> int | None:
        """Number of channels delivered by `read` (None: a 2-D grey image)."""
        if "c" not in self.axes or self.channel is not None:
            return None
        return self.stored_shape[self.axes.index("c")]

    @property
    def name(self) -> str:
        """The file's name without its suffixes (".ome.zarr", ".zarr", ".ome.tif", ...)."""
        name = Path(self.path.rstrip("/\\")).name
        for suffix in sorted(TIFF_SUFFIXES + (".ome.zarr", ZARR_SUFFIX), key=len, reverse=True):
            if name.lower().endswith(suffix) and len(name) > len(suffix):
                return name[: -len(suffix)]
        return Path(name).stem or name

    def _array(self):
        key = (self.path, self.format, self.array_path)
        with _OPEN_LOCK:
            if key not in _OPEN:
                _OPEN[key] = _open_array(self.path, self.format, self.array_path)
            return _OPEN[key]

    def _index(self, rows: slice, columns: slice) -> tuple:
        pick = {"y": rows, "x": columns, "c": slice(None) if self.channel is None else self.channel, "-": 0}
        return tuple(pick[a] for a in self.axes)

    def _to_yxc(self, pixels: np.ndarray) -> np.ndarray:
        kept = [a for a in self.axes if a != "-" and not (a == "c" and self.channel is not None)]
        order = [kept.index(a) for a in "yxc" if a in kept]
        return np.ascontiguousarray(np.transpose(pixels, order))

    def read(self, rows: slice, columns: slice) -> np.ndarray:
        """The pixels of one window, (Y, X) or (Y, X, C), in the stored dtype.

        Parameters
        ----------
        rows, columns
            The window (slices; a step reads a regular sub-grid).

        Returns
        -------
        numpy.ndarray

        Examples
        --------
        >>> open_large_image("a.zarr").read(slice(0, 512), slice(512, 1024)).shape  # doctest: +SKIP
        (512, 512, 3)
        """
        try:
            pixels = np.asarray(self._array()[self._index(rows, columns)])
        except Exception as exc:  # a corrupt or missing chunk: name the file and the window
            raise ImageReadError(f"{self.path}: cannot read rows {rows.start}:{rows.stop}, columns "
                                 f"{columns.start}:{columns.stop}: {exc}") from None
        return self._to_yxc(pixels)

    def to_dask(self, chunks: int | None = None):
        """The image as a lazy dask array, (Y, X) or (Y, X, C) (`dask.array.from_zarr`).

        Parameters
        ----------
        chunks
            Side of the chunks (None: the stored chunks).

        Returns
        -------
        dask.array.Array

        Examples
        --------
        >>> open_large_image("slide.tif").to_dask(1024)  # doctest: +SKIP
        dask.array<...>
        """
        import dask.array as da

        array = da.from_zarr(self._array())
        array = array[self._index(slice(None), slice(None))]
        kept = [a for a in self.axes if a != "-" and not (a == "c" and self.channel is not None)]
        array = array.transpose([kept.index(a) for a in "yxc" if a in kept])
        if chunks is not None:
            array = array.rechunk((chunks, chunks) + ((-1,) if array.ndim == 3 else ()))
        return array


def _open_array(path: str, fmt: str, array_path: str):
    import zarr

    if fmt == "tiff":
        import tifffile

        store = tifffile.imread(path, aszarr=True, series=0, level=0)
        node = zarr.open(store, mode="r")
        return node if isinstance(node, zarr.Array) else node[array_path or "0"]
    node = zarr.open(path, mode="r")
    return node[array_path] if array_path else node


def _axes_from_shape(path: str, shape: tuple[int, ...]) -> str:
    if len(shape) == 2:
        return "yx"
    if len(shape) == 3 and shape[2] <= MAX_CHANNELS:
        return "yxc"
    if len(shape) == 3 and shape[0] <= MAX_CHANNELS:
        return "cyx"
    raise ImageReadError(f"{path}: an array of shape {tuple(shape)}; expected a 2-D grey image or (Y, X, C) "
                         f"with at most {MAX_CHANNELS} channels")


def _axes_from_names(path: str, names: list[str], shape: tuple[int, ...], what: str) -> str:
    """One letter per axis from named axes (OME-Zarr's, tifffile's): y, x, c; single planes become '-'."""
    letters = []
    for name, size in zip(names, shape):
        name = name.lower()
        if name in ("y", "x"):
            letters.append(name)
        elif name in ("c", "s"):
            letters.append("c")
        elif size == 1:
            letters.append("-")
        else:
            raise ImageReadError(f"{path}: {what} has {size} planes along axis {name!r} (shape {tuple(shape)}); "
                                 "only 2-D images (Y, X, optional channels) can be segmented")
    if letters.count("c") > 1:  # e.g. tifffile's C and S: a channel axis of one plane is dropped
        letters = ["-" if a == "c" and size == 1 else a for a, size in zip(letters, shape)]
    if sorted(a for a in letters if a != "-") not in (["x", "y"], ["c", "x", "y"]):
        raise ImageReadError(f"{path}: {what} has axes {''.join(names)} (shape {tuple(shape)}); expected Y and X "
                             "and at most one channel axis")
    return "".join(letters)


def _check_channels(path: str, axes: str, shape: tuple[int, ...], channel: int | None) -> None:
    count = shape[axes.index("c")] if "c" in axes else 1
    if channel is not None:
        if not 0 <= channel < count:
            raise ImageReadError(f"{path}: channel {channel} asked for, the image has {count} channel(s) "
                                 f"(0..{count - 1})")
    elif count > MAX_CHANNELS:
        raise ImageReadError(f"{path}: {count} channels; choose the nuclear stain's channel (channel=0..{count - 1})")


def _ome_level(path: str, attrs: dict) -> tuple[str, dict] | None:
    """(dataset path, ome facts) of an OME-Zarr group's full-resolution level, or None if not OME."""
    version = None
    if "ome" in attrs and isinstance(attrs["ome"], dict):
        version, attrs = attrs["ome"].get("version", "0.5"), attrs["ome"]
    multiscales = attrs.get("multiscales")
    if not multiscales:
        return None
    try:
        first = multiscales[0]
        dataset = first["datasets"][0]
        version = version or first.get("version", "0.4")
        axes = [a["name"] if isinstance(a, dict) else str(a) for a in first.get("axes", [])]
        transforms = dataset.get("coordinateTransformations", [])
    except (KeyError, IndexError, TypeError) as exc:
        raise ImageReadError(f"{path}: malformed OME-Zarr multiscales metadata ({exc!r})") from None
    return str(dataset["path"]), {"version": str(version), "axes": axes, "transforms": transforms,
                                   "axis_meta": first.get("axes", [])}


def _yx_only(ome: dict, letters: str) -> dict:
    """The OME facts restricted to the y and x axes (what a 2-D label image keeps)."""
    keep = [i for i, a in enumerate(letters) if a in "yx"]
    transforms = []
    for t in ome["transforms"]:
        t = dict(t)
        for key in ("scale", "translation"):
            if isinstance(t.get(key), list) and len(t[key]) == len(letters):
                t[key] = [t[key][i] for i in keep]
        transforms.append(t)
    meta = ome["axis_meta"]
    axes = [meta[i] if i < len(meta) and isinstance(meta[i], dict) else {"name": "yx"[k], "type": "space"}
            for k, i in enumerate(keep)]
    return {"version": ome["version"], "axes": axes, "transforms": transforms}


def open_large_image(path: str | os.PathLike, *, channel: int | None = None) -> LargeImage:
    """Check a zarr array, OME-Zarr image or TIFF file and describe it for window-by-window reading.

    Parameters
    ----------
    path
        A zarr array folder, an OME-Zarr image folder (its full-resolution level is read) or a
        (Big)TIFF file.
    channel
        Segment only this channel (0-based) as a grey image, e.g. the DAPI channel of a multi-channel
        fluorescence image; None = all channels (grey or RGB(A), at most 4).

    Returns
    -------
    LargeImage

    Raises
    ------
    ImageReadError
        (a `NucleaizerError`) naming the path and the problem: missing, not zarr / TIFF, not 2-D,
        too many channels, a non-numeric dtype.

    Examples
    --------
    >>> open_large_image("missing.zarr")
    Traceback (most recent call last):
    ...
    nucleaizer_tf.errors.ImageReadError: missing.zarr: no such file or folder
    """
    import zarr

    source = Path(path)
    if not source.exists():
        raise ImageReadError(f"{source}: no such file or folder")
    if channel is not None and (isinstance(channel, bool) or not isinstance(channel, (int, np.integer))):
        raise ImageReadError(f"{source}: channel must be a whole number, got {channel!r}")
    if source.is_file():
        if not source.name.lower().endswith(TIFF_SUFFIXES):
            raise ImageReadError(f"{source}: not a zarr folder or TIFF file (large images are read from "
                                 f"{ZARR_SUFFIX} folders or {', '.join(TIFF_SUFFIXES[:2])} files)")
        image = _describe_tiff(source)
    else:
        try:
            node = zarr.open(str(source), mode="r")
        except Exception as exc:
            reason = f"{type(exc).__name__}: {exc}"
            raise ImageReadError(f"{source}: not a zarr array or OME-Zarr image ({reason})") from None
        image = _describe_zarr(source, node)
    dtype = np.dtype(image.dtype)
    if not (np.issubdtype(dtype, np.integer) or np.issubdtype(dtype, np.floating)) or dtype == np.bool_:
        raise ImageReadError(f"{source}: pixels of type {dtype}; expected integer or floating-point intensities")
    if min(image.image_shape) < 1:
        raise ImageReadError(f"{source}: an empty image of shape {image.stored_shape}")
    _check_channels(str(source), image.axes, image.stored_shape, channel)
    return LargeImage(image.path, image.format, image.array_path, image.axes, image.stored_shape, image.dtype,
                      None if channel is None else int(channel), image.ome)


def _describe_zarr(source: Path, node) -> LargeImage:
    import zarr

    if isinstance(node, zarr.Array):
        shape = tuple(int(n) for n in node.shape)
        return LargeImage(str(source), "zarr", "", _axes_from_shape(str(source), shape), shape, str(node.dtype))
    level = _ome_level(str(source), dict(node.attrs))
    if level is None:
        arrays = sorted(name for name, _ in node.arrays())
        hint = f" (arrays inside: {', '.join(arrays[:5])}; give the path of one)" if arrays else ""
        raise ImageReadError(f"{source}: a zarr group without OME-Zarr multiscales metadata{hint}")
    level_path, ome = level
    try:
        array = node[level_path]
    except KeyError:
        raise ImageReadError(f"{source}: the OME-Zarr level {level_path!r} named in its metadata is missing") from None
    shape = tuple(int(n) for n in array.shape)
    names = ome["axes"] or (["y", "x"] if len(shape) == 2 else None)
    if names is None or len(names) != len(shape):
        raise ImageReadError(f"{source}: OME-Zarr level {level_path!r} has shape {shape} but axes {names}")
    axes = _axes_from_names(str(source), names, shape, f"OME-Zarr level {level_path!r}")
    ome = {**_yx_only(ome, axes), "zarr_format": int(array.metadata.zarr_format), "level": level_path}
    return LargeImage(str(source), "ome-zarr", level_path, axes, shape, str(array.dtype), None, ome)


def _describe_tiff(source: Path) -> LargeImage:
    import tifffile

    try:
        with tifffile.TiffFile(source) as tif:
            series = tif.series[0]
            names, shape = list(series.axes), tuple(int(n) for n in series.shape)
        array = _open_array(str(source), "tiff", "")
    except Exception as exc:
        raise ImageReadError(f"{source}: not a readable TIFF file ({type(exc).__name__}: {exc})") from None
    if tuple(array.shape) != shape:  # the zarr view of a series keeps its axes; check rather than assume
        raise ImageReadError(f"{source}: TIFF series of shape {shape} reads as {tuple(array.shape)}")
    axes = _axes_from_names(str(source), names, shape, "the TIFF image")
    return LargeImage(str(source), "tiff", "", axes, shape, str(array.dtype))
