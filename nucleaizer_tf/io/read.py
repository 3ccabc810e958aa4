"""Readers for the microscopy formats users bring (and their JSON files), with one-line errors that name
the file, bounded before anything is decoded.

PNG/BMP/JPEG go through OpenCV because it keeps 16-bit colour PNGs at 16 bits (Pillow and imageio
reduce them to 8 bits); TIFF goes through tifffile (with imagecodecs for the LZW masks of the
original data). Arrays come back in their native dtype, channels last, RGB(A) order.
"""

from __future__ import annotations

import errno
import json
import os
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import tifffile

from nucleaizer_tf.errors import ImageReadError, NucleaizerError
from nucleaizer_tf.labels import as_label_array

IMAGE_EXTENSIONS = (".png", ".tif", ".tiff", ".bmp", ".jpg", ".jpeg")
LABEL_EXTENSIONS = (".tif", ".tiff", ".png")
VECTOR_LABEL_EXTENSIONS = (".zip", ".geojson")  # ImageJ ROI sets and GeoJSON outlines (need a shape)
LABEL_SOURCE_EXTENSIONS = LABEL_EXTENSIONS + VECTOR_LABEL_EXTENSIONS
_TIFF = (".tif", ".tiff")
_MAGIC = {
    ".png": (b"\x89PNG\r\n\x1a\n",),
    ".bmp": (b"BM",),
    ".jpg": (b"\xff\xd8\xff",),
    ".jpeg": (b"\xff\xd8\xff",),
    ".tif": (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+"),
    ".tiff": (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+"),
}
_KINDS = {".png": "PNG", ".bmp": "BMP", ".jpg": "JPEG", ".jpeg": "JPEG", ".tif": "TIFF", ".tiff": "TIFF"}
MAX_PIXELS = 250_000_000
"""Images with more pixels than this are refused before decoding (`read_image`'s `max_pixels`,
``predict --max-pixels``): a whole image in memory costs about 36 bytes per pixel through segmentation;
larger images go block by block (``predict --large``)."""


PLANES = ("max", "each")
"""How Z and time stacks are read (`ReadOptions.planes`): ``max`` their maximum projection, ``each`` every
plane (`read_planes`); without either a stack is refused."""


@dataclass(frozen=True)
class ReadOptions:
    """How input images are read: `read_image`'s `max_pixels`, `channel` and `planes`, passed on as one value.

    Attributes
    ----------
    max_pixels : int or None
        The largest image read whole (`MAX_PIXELS`); None: no limit.
    channel : int or None
        The channel of multi-channel images to read, as grey; None: all (grey or RGB).
    planes : str or None
        Z or time stacks: ``"max"`` their maximum projection, ``"each"`` every plane (`read_planes`);
        None: a stack is refused.

    Examples
    --------
    >>> ReadOptions(channel=1)
    ReadOptions(max_pixels=250000000, channel=1, planes=None)
    """

    max_pixels: int | None = MAX_PIXELS
    channel: int | None = None
    planes: str | None = None

    def __post_init__(self):
        if self.planes is not None and self.planes not in PLANES:
            raise ValueError(f"planes must be one of {', '.join(PLANES)} or None, got {self.planes!r}")


MAX_COMPRESSION_RATIO = {1: 1, 32773: 128, 5: 4096, 8: 4096, 32946: 4096}
"""The most pixel bytes one file byte can hold, per TIFF compression code (none, PackBits, LZW,
deflate ×2; LZW packs at most about 2,700, deflate about 1,000): a file declaring more is a
decompression bomb or a damaged header. Codecs not listed (zstd, LZMA, JPEG…) have no such bound."""

MAX_JSON_BYTES = 64 * 2**20
"""The largest JSON file read (manifests, parameters, outlines, run records): 64 MB."""
MAX_JSON_DIGITS = 100
"""Integers with more digits than this are refused in a JSON file (no setting needs them)."""

cv2.setLogLevel(0) if hasattr(cv2, "setLogLevel") else None  # libpng chatter is replaced by our message


def _bounded_int(text: str) -> int:
    if len(text.lstrip("-")) > MAX_JSON_DIGITS:
        raise ValueError(f"a number of {len(text.lstrip('-')):,} digits")
    return int(text)


def parse_json(text: str):
    """`json.loads` with integers of at most `MAX_JSON_DIGITS` digits; ValueError or RecursionError otherwise.

    Parameters
    ----------
    text : str
        JSON text.

    Returns
    -------
    object
        The parsed value.

    Examples
    --------
    >>> parse_json('{"a": [1, 2]}')
    {'a': [1, 2]}
    """
    return json.loads(text, parse_int=_bounded_int)


def read_json(path: str | os.PathLike, what: str = "JSON file", error: type[Exception] = NucleaizerError):
    """Parse a JSON file from outside, every failure one `error` naming the file and `what` it should be.

    Bounded: a file over `MAX_JSON_BYTES`, an integer over `MAX_JSON_DIGITS` digits or nesting too
    deep for the parser is refused, not followed. The structure is the caller's to check.

    Parameters
    ----------
    path : str or os.PathLike
        The file.
    what : str, optional
        What the file should be, for the message (e.g. ``"model manifest"``).
    error : type, optional
        The exception raised (default `NucleaizerError`; readers of label files use `ImageReadError`).

    Returns
    -------
    object
        The parsed value.

    Examples
    --------
    >>> import tempfile
    >>> with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as f:
    ...     _ = f.write('{"size": 1' + '0' * 5000 + '}')
    >>> read_json(f.name, "parameter file")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    nucleaizer_tf.errors.NucleaizerError: ...: not a valid parameter file (a number of 5,001 digits)
    """
    path = Path(path)
    try:
        size = path.stat().st_size
        if size > MAX_JSON_BYTES:
            raise error(f"{path}: {size:,} bytes is more than a {what} can be ({MAX_JSON_BYTES:,})")
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise error(f"{path}: cannot read the {what} ({exc.strerror or exc})") from None
    except UnicodeDecodeError:
        raise error(f"{path}: not a valid {what} (not UTF-8 text)") from None
    try:
        return parse_json(text)
    except json.JSONDecodeError as exc:
        raise error(f"{path}: not a valid {what} ({exc.msg} at line {exc.lineno})") from None
    except ValueError as exc:
        raise error(f"{path}: not a valid {what} ({exc})") from None
    except RecursionError:
        raise error(f"{path}: not a valid {what} (nested too deeply)") from None


def list_images(folder: str | os.PathLike, extensions=IMAGE_EXTENSIONS) -> list[Path]:
    """Image files of `folder` (not recursive, hidden files skipped), sorted by name as the original did.

    Broken symbolic links (missing target, loops) with an image extension are listed too, so that
    reading them reports them like any other unreadable input instead of dropping them silently.

    Parameters
    ----------
    folder : str or os.PathLike
        The folder to list.
    extensions : sequence of str, optional
        Accepted lower-case extensions with the dot, matched case-insensitively (default
        `IMAGE_EXTENSIONS`: .png, .tif, .tiff, .bmp, .jpg, .jpeg).

    Returns
    -------
    list of pathlib.Path
        The matching files (and broken links), sorted by name.

    Raises
    ------
    ImageReadError
        When `folder` is a broken link, does not exist or is not a folder.

    Examples
    --------
    >>> [p.name for p in list_images("data/images")]  # doctest: +SKIP
    ['a1.png', 'a2.tif']
    """
    folder = Path(folder)
    if is_broken_link(folder):
        raise ImageReadError(f"{folder}: {broken_link_reason(folder)}")
    if not folder.exists():
        raise ImageReadError(f"{folder}: no such folder")
    if not folder.is_dir():
        raise ImageReadError(f"{folder}: not a folder")
    return sorted(
        p for p in folder.iterdir()
        if (p.is_file() or is_broken_link(p)) and not p.name.startswith(".") and p.suffix.lower() in extensions
    )


def is_broken_link(path: str | os.PathLike) -> bool:
    """True for a symbolic link whose target is missing or that loops back on itself.

    Parameters
    ----------
    path : str or os.PathLike
        The path to test.

    Returns
    -------
    bool
        True for a broken link; False for anything else, including a path that does not exist.

    Examples
    --------
    >>> is_broken_link("no/such/file.png")
    False
    """
    path = Path(path)
    return path.is_symlink() and not path.exists()


def broken_link_reason(path: Path) -> str:
    """`broken symbolic link to TARGET (...)`: why a link cannot be opened.

    Parameters
    ----------
    path : pathlib.Path
        A symbolic link (see `is_broken_link`).

    Returns
    -------
    str
        ``broken symbolic link to TARGET (WHY)``, WHY being "its target does not exist", "a symbolic
        link loop" or "unreadable"; TARGET is "?" when the link itself cannot be read.

    Examples
    --------
    >>> broken_link_reason(Path("images/a1.png"))  # doctest: +SKIP
    'broken symbolic link to /mnt/old/a1.png (its target does not exist)'
    """
    try:
        target = os.readlink(path)
    except OSError:
        target = "?"
    try:
        os.stat(path)
        why = "unreadable"
    except OSError as exc:
        why = "a symbolic link loop" if exc.errno == errno.ELOOP else "its target does not exist"
    return f"broken symbolic link to {target} ({why})"


def _check_file(path: Path, extensions) -> str:
    """Validate existence, size, extension and magic bytes before a decoder gets to fail obscurely."""
    if is_broken_link(path):
        raise ImageReadError(f"{path}: {broken_link_reason(path)}")
    if not path.exists():
        raise ImageReadError(f"{path}: no such file")
    if path.is_dir():
        raise ImageReadError(f"{path}: is a folder, not an image file")
    ext = path.suffix.lower()
    if ext not in extensions:
        raise ImageReadError(f"{path}: unsupported file type {ext or '(no extension)'!r}; expected one of {', '.join(extensions)}")
    size = path.stat().st_size
    if size == 0:
        raise ImageReadError(f"{path}: empty file (0 bytes)")
    with open(path, "rb") as fh:
        head = fh.read(8)
    if not any(head.startswith(m) for m in _MAGIC[ext]):
        raise ImageReadError(f"{path}: not a {_KINDS[ext]} file (its first bytes do not match the format)")
    return ext


def _over_limit(path: Path, height: int, width: int, max_pixels: int | None) -> None:
    """Refuse an image declaring more than `max_pixels` pixels, from its header."""
    if max_pixels is not None and height * width > max_pixels:
        raise ImageReadError(
            f"{path}: {height}×{width} pixels ({height * width / 1e6:,.1f} Mpx) is more than the {max_pixels:,} "
            "read whole (--max-pixels); segment it block by block with predict --large (a tiled TIFF or zarr), "
            "or raise --max-pixels if the memory is there")


def _png_shape(head: bytes) -> tuple[int, int] | None:
    if len(head) >= 24 and head[12:16] == b"IHDR":
        return int.from_bytes(head[20:24], "big"), int.from_bytes(head[16:20], "big")
    return None


def _bmp_shape(head: bytes) -> tuple[int, int] | None:
    if len(head) >= 26:
        width = int.from_bytes(head[18:22], "little", signed=True)
        height = int.from_bytes(head[22:26], "little", signed=True)
        return abs(height), abs(width)
    return None


def _jpeg_shape(head: bytes) -> tuple[int, int] | None:
    """Height and width from the first start-of-frame marker among the first bytes, if there."""
    at = 2
    while at + 9 <= len(head):
        if head[at] != 0xFF:
            return None
        marker = head[at + 1]
        if marker in (0xD8, 0x01) or 0xD0 <= marker <= 0xD7:
            at += 2
            continue
        if 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC):
            return int.from_bytes(head[at + 5:at + 7], "big"), int.from_bytes(head[at + 7:at + 9], "big")
        at += 2 + int.from_bytes(head[at + 2:at + 4], "big")
    return None


_HEADER_SHAPE = {".png": _png_shape, ".bmp": _bmp_shape, ".jpg": _jpeg_shape, ".jpeg": _jpeg_shape}


def _check_raster_header(path: Path, ext: str, max_pixels: int | None) -> None:
    """The declared size of a PNG, BMP or JPEG against `max_pixels`, before OpenCV decodes anything."""
    with open(path, "rb") as fh:
        head = fh.read(1 << 16)
    shape = _HEADER_SHAPE[ext](head)
    if shape is not None:
        _over_limit(path, *shape, max_pixels)


def _read_tiff(path: Path, max_pixels: int | None = MAX_PIXELS, channel: int | None = None,
               planes: str | None = None) -> tuple[np.ndarray, str]:
    """The pixels and the letters of the stacked axes left in front of them ('' unless `planes` is each)."""
    try:
        with tifffile.TiffFile(path) as tif:
            series = tif.series[0]
            axes, shape = series.axes, series.shape
            plane = [n for n, a in zip(shape, axes) if a in "YX"]
            if len(plane) == 2:
                _over_limit(path, *plane, max_pixels)
            declared = float(np.prod(shape, dtype=np.float64)) * series.dtype.itemsize
            size, ratio = path.stat().st_size, MAX_COMPRESSION_RATIO.get(int(tif.pages[0].compression))
            if ratio is not None and declared > ratio * size:
                raise ImageReadError(
                    f"{path}: declares {declared:,.0f} bytes of pixels ({'×'.join(map(str, shape))}) in a file of "
                    f"{size:,} bytes, more than its compression can hold; the file is corrupt or truncated, or hostile")
            if len(tif.series) > 1:  # pages of different shapes, or separate writes: never keep only the first
                raise ImageReadError(
                    f"{path}: multi-page TIFF ({len(tif.series)} images in {len(tif.pages)} pages); "
                    "nucleaizer-tf segments one 2-D image per file: save each page as its own file"
                )
            colour = int(tif.pages[0].photometric) in _COLOUR_PHOTOMETRIC
            channels = _channel_axis(axes, shape, colour)
            stacked = [i for i, (a, n) in enumerate(zip(axes, shape)) if n > 1 and a not in "YXSC"]
            if planes and stacked and len(plane) == 2:
                _over_limit(path, int(np.prod([shape[i] for i in stacked])) * plane[0], plane[1], max_pixels)
            elif len(tif.pages) > 1 and (stacked or channels is None) and "S" not in axes and len(shape) > 2:
                raise ImageReadError(
                    f"{path}: multi-page TIFF ({len(tif.pages)} pages, axes {axes} {shape}); "
                    "nucleaizer-tf segments 2-D images: segment every plane with --planes each, or the stack's "
                    "maximum projection with --planes max"
                )
            if channels is not None:
                n = shape[channels]
                if channel is None:
                    raise ImageReadError(f"{path}: {n} channels (axes {axes}, shape {shape}); choose the nuclear "
                                         f"one with --channel 0…{n - 1} (channel= in Python)")
                if not 0 <= channel < n:
                    raise ImageReadError(f"{path}: has no channel {channel} (it has {n}: 0…{n - 1})")
            data = series.asarray()
    except ImageReadError:
        raise
    except Exception as exc:  # tifffile raises many types for truncated/corrupt data
        raise ImageReadError(f"{path}: cannot decode TIFF ({type(exc).__name__}: {exc}); the file is corrupt or truncated") from None
    kept = ""
    if planes and stacked:
        rest = [i for i in range(len(axes)) if i not in stacked]
        if planes == "max":  # the brightest value of every pixel over the planes (Z, T)
            data = data.max(axis=tuple(stacked))
        else:  # every plane: the planes' axes in front, in the file's order
            data = np.moveaxis(data, stacked, list(range(len(stacked))))
            kept = "".join(axes[i] for i in stacked)
        if channels is not None:
            channels = len(kept) + rest.index(channels)
        axes = kept + "".join(axes[i] for i in rest)
    if channels is not None:  # the chosen channel of a multi-channel image: grey from here on
        return np.take(data, channel, axis=channels), kept
    # Planar colour (S, Y, X) → samples last; anything else 3-D is a stack.
    if data.ndim - len(kept) == 3 and axes.endswith("YX") and axes[len(kept)] == "S" and data.shape[len(kept)] <= 4 \
            and data.shape[-1] > 4:
        data = np.moveaxis(data, len(kept), -1)
    return _colour_channel(path, data, channel, len(kept)), kept


_COLOUR_PHOTOMETRIC = (2, 3, 6)  # RGB, palette, YCbCr: samples that are colours, not channels


def _channel_axis(axes: str, shape: tuple[int, ...], colour: bool) -> int | None:
    """Index of the axis holding channels that are not colours (C, or samples of a grey image), if any."""
    return next((i for i, (a, n) in enumerate(zip(axes, shape)) if n > 1 and (a == "C" or (a == "S" and not colour))),
                None)


def _colour_channel(path: Path, data: np.ndarray, channel: int | None, stacked: int = 0) -> np.ndarray:
    """`data` itself, or its colour component `channel` as a grey image (after `stacked` plane axes)."""
    if channel is None:
        return data
    colour = data.ndim - stacked == 3
    n = data.shape[-1] if colour else 1
    if not 0 <= channel < n:
        raise ImageReadError(f"{path}: has no channel {channel} (it has {n}: 0…{n - 1})")
    return data[..., channel] if colour else data


def _read_raster(path: Path, ext: str, max_pixels: int | None = MAX_PIXELS, channel: int | None = None) -> np.ndarray:
    kind = _KINDS[ext]
    _check_raster_header(path, ext, max_pixels)
    data = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if data is None:
        raise ImageReadError(f"{path}: cannot decode {kind}; the file is corrupt or truncated")
    if data.ndim == 3 and data.shape[2] == 3:
        data = cv2.cvtColor(data, cv2.COLOR_BGR2RGB)
    elif data.ndim == 3 and data.shape[2] == 4:
        data = cv2.cvtColor(data, cv2.COLOR_BGRA2RGBA)
    return _colour_channel(path, data, channel)


def _read_array(path: Path, extensions, max_pixels: int | None = MAX_PIXELS, channel: int | None = None,
                planes: str | None = None) -> tuple[np.ndarray, str]:
    """The file's pixels as stored (after the extension, file and size checks), a single channel squeezed,
    and the letters of the plane axes in front of them (`planes` each)."""
    ext = _check_file(path, extensions)
    data, stacked = (_read_tiff(path, max_pixels, channel, planes) if ext in _TIFF else
                     (_read_raster(path, ext, max_pixels, channel), ""))
    data = np.asarray(data)
    return (data[..., 0] if data.ndim - len(stacked) == 3 and data.shape[-1] == 1 else data), stacked


def read_image(path: str | os.PathLike, *, max_pixels: int | None = MAX_PIXELS, channel: int | None = None,
               planes: str | None = None) -> np.ndarray:
    """Read a 2-D image (grey H×W, or H×W×C with C ≤ 4) in its native dtype (uint8, uint16, float...).

    A 3-D stack, a multi-page TIFF, an empty, truncated or non-image file raises `ImageReadError`
    naming the file. Conversion to the network's 8-bit RGB is `to_rgb8`'s job, not this one's.
    The size is checked from the header before anything is decoded: more than `max_pixels` pixels, or
    a TIFF declaring more pixel bytes than its file can hold (`MAX_COMPRESSION_RATIO`), is refused.

    PNG/BMP/JPEG are read with OpenCV (16-bit colour stays 16-bit), TIFF with tifffile (planar colour
    moved channels last); colour comes back in RGB(A) order, a single channel is squeezed to H×W and
    a bool image becomes uint8 0/255.

    Parameters
    ----------
    path : str or os.PathLike
        An image file with one of `IMAGE_EXTENSIONS`.
    max_pixels : int or None, optional
        The largest image read whole (default `MAX_PIXELS`, 2.5·10⁸); None: no limit.
    channel : int, optional
        Read only this channel (0-based), as a grey image: of a multi-channel TIFF (ImageJ hyperstack
        or OME-TIFF axis C, or several grey samples per pixel), or a colour component of an RGB image.
        A multi-channel image without it is refused with one line listing the channels; an RGB image
        without it is read in colour.
    planes : str, optional
        ``"max"``: read a Z or time stack (a multi-page TIFF with axes Z, T…) as its maximum projection
        (every plane's pixels count against `max_pixels`); None (default): a stack is refused. Every
        plane of a stack is `read_planes`' job.

    Returns
    -------
    numpy.ndarray
        (H, W) or (H, W, C) image, C ≤ 4, H and W ≥ 2, in the file's integer or float dtype.

    Raises
    ------
    ImageReadError
        As described above, and for a missing file, a folder, an unsupported extension, a file whose
        first bytes do not match its extension, an image smaller than 2 pixels in a dimension, larger
        than `max_pixels`, or an unsupported pixel type.

    Examples
    --------
    >>> image = read_image("data/images/a1.png")  # doctest: +SKIP
    >>> image.shape, image.dtype  # doctest: +SKIP
    ((512, 640, 3), dtype('uint8'))
    """
    if planes == "each":
        raise ValueError("read_image reads 2-D images; read every plane of a stack with read_planes")
    data, _ = _read_array(Path(path), IMAGE_EXTENSIONS, max_pixels, channel, planes)
    return _checked_image(Path(path), data)


def read_planes(path: str | os.PathLike, *, max_pixels: int | None = MAX_PIXELS,
                channel: int | None = None) -> tuple[np.ndarray, str]:
    """Read an image, or every plane of a Z or time stack, and the letters of the stack's axes.

    What ``predict --planes each`` segments: a stack (a multi-page TIFF with axes Z, T…, ImageJ
    hyperstack or OME-TIFF) comes back with its plane axes in front, in the file's order; a 2-D image
    as `read_image` reads it, with no plane axes. Every plane's pixels count against `max_pixels`.

    Parameters
    ----------
    path : str or os.PathLike
        An image file with one of `IMAGE_EXTENSIONS`.
    max_pixels : int or None, optional
        The most pixels read, over all planes (default `MAX_PIXELS`); None: no limit.
    channel : int, optional
        The channel to read, as `read_image` takes it.

    Returns
    -------
    planes : numpy.ndarray
        (P1, ..., H, W) or (P1, ..., H, W, C): one plane per index of the leading axes.
    axes : str
        The letters of those leading axes (``"Z"``, ``"TZ"``...); ``""`` for a 2-D image.

    Raises
    ------
    ImageReadError
        As `read_image`, naming the file.

    Examples
    --------
    >>> planes, axes = read_planes("stacks/embryo.tif")  # doctest: +SKIP
    >>> planes.shape, axes                              # doctest: +SKIP
    ((12, 512, 512), 'Z')
    """
    path = Path(path)
    data, axes = _read_array(path, IMAGE_EXTENSIONS, max_pixels, channel, "each")
    return _checked_image(path, data, len(axes)), axes


def read_input(path: str | os.PathLike, read: ReadOptions = ReadOptions()) -> tuple[np.ndarray, str]:
    """An input image read as `read` says, and the letters of its plane axes: what `predict` and `measure` read.

    Parameters
    ----------
    path : str or os.PathLike
        An image file with one of `IMAGE_EXTENSIONS`.
    read : ReadOptions, optional
        The pixel limit, the channel, and what to do with Z/T stacks.

    Returns
    -------
    image : numpy.ndarray
        As `read_planes` gives it with ``read.planes == "each"``, else as `read_image` does.
    axes : str
        The plane axes in front of `image` (``"Z"``, ``"TZ"``...); ``""`` for a 2-D image.

    Raises
    ------
    ImageReadError
        As `read_image`, naming the file.

    Examples
    --------
    >>> image, axes = read_input("stacks/embryo.tif", ReadOptions(channel=1, planes="each"))  # doctest: +SKIP
    >>> image.shape, axes                                                                   # doctest: +SKIP
    ((12, 512, 512), 'Z')
    """
    if read.planes == "each":
        return read_planes(path, max_pixels=read.max_pixels, channel=read.channel)
    return read_image(path, max_pixels=read.max_pixels, channel=read.channel, planes=read.planes), ""


def _checked_image(path: Path, data: np.ndarray, stacked: int = 0) -> np.ndarray:
    """`data` as a 2-D grey or colour image (after `stacked` plane axes), or the one-line error naming `path`."""
    plane = data.shape[stacked:]
    if len(plane) not in (2, 3) or (len(plane) == 3 and plane[2] > 4):
        raise ImageReadError(
            f"{path}: array of shape {plane} is not a 2-D image (grey or up to 4 channels); "
            "3-D stacks and multi-channel volumes must be split into 2-D images first"
        )
    if min(plane[:2]) < 2:
        raise ImageReadError(f"{path}: image of shape {plane} is too small to segment")
    if data.dtype == bool:
        data = data.astype(np.uint8) * 255
    if not (np.issubdtype(data.dtype, np.integer) or np.issubdtype(data.dtype, np.floating)):
        raise ImageReadError(f"{path}: unsupported pixel type {data.dtype}")
    return data


def read_labels(path: str | os.PathLike, shape: tuple[int, ...] | None = None) -> np.ndarray:
    """Read a label image (0 = background, k > 0 = object k) as a 2-D integer array (or a stack of them).

    Float files holding whole numbers are accepted (some tools save labels as float32); anything
    with colour channels or fractional values is refused, since silently casting would merge objects.
    An ImageJ ROI set (`.zip`) or a GeoJSON (`.geojson`, e.g. from QuPath) is also a label source:
    its outlines are filled at the pixel centres into an image of `shape` (required for those, since
    outlines carry no image size; ignored for label images).

    Parameters
    ----------
    path : str or os.PathLike
        A label image (one of `LABEL_EXTENSIONS`: .tif, .tiff, .png) or an outline file (one of
        `VECTOR_LABEL_EXTENSIONS`: .zip, .geojson).
    shape : tuple of int, optional
        (H, W) of the image the outlines belong to; needed for outline files. (P1, ..., H, W), the
        shape of a stack read by `read_planes`: the file is read as a label stack of that shape.

    Returns
    -------
    numpy.ndarray
        (H, W) non-negative integer label image (or a stack of the `shape` asked for): the file's
        integer dtype (int32 for bool, int64 for whole-number floats); uint16 (uint32 above 65,535
        ids) for outline files.

    Raises
    ------
    ImageReadError
        Naming the file, when it cannot be read, is not 2-D, holds fractional or negative values, or
        is an outline file given without `shape`.

    Examples
    --------
    >>> gt = read_labels("gt/a.tiff")                        # doctest: +SKIP
    >>> drawn = read_labels("fiji/a.zip", shape=gt.shape)   # doctest: +SKIP
    """
    path = Path(path)
    stack = shape is not None and len(shape) > 2
    if path.suffix.lower() in VECTOR_LABEL_EXTENSIONS:
        if stack:
            raise ImageReadError(f"{path}: outlines are 2-D; the labels of a stack must be a label TIFF stack")
        from nucleaizer_tf.io.export import read_vector_labels

        return read_vector_labels(path, shape)
    data, _ = _read_array(path, LABEL_EXTENSIONS, planes="each" if stack else None)
    if stack and data.shape != tuple(shape):
        raise ImageReadError(f"{path}: a label stack of shape {data.shape}, but its image has {tuple(shape)}")
    if not stack and data.ndim != 2:
        raise ImageReadError(f"{path}: a label image must be 2-D (one integer id per pixel), got shape {data.shape}")
    if data.dtype == bool:
        return data.astype(np.int32)
    try:
        return as_label_array(data, "the label image", ndim=data.ndim if stack else 2)
    except ValueError as exc:
        raise ImageReadError(f"{path}: {exc}") from None
