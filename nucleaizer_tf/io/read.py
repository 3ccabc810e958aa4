"""Readers for the microscopy formats users bring, with one-line errors that name the file.

PNG/BMP/JPEG go through OpenCV because it keeps 16-bit colour PNGs at 16 bits (Pillow and imageio
reduce them to 8 bits); TIFF goes through tifffile (with imagecodecs for the LZW masks of the
original data). Arrays come back in their native dtype, channels last, RGB(A) order.
"""

from __future__ import annotations

import errno
import os
from pathlib import Path

import cv2
import numpy as np
import tifffile

from nucleaizer_tf.errors import ImageReadError
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

cv2.setLogLevel(0) if hasattr(cv2, "setLogLevel") else None  # libpng chatter is replaced by our message


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


def _read_tiff(path: Path) -> np.ndarray:
    try:
        with tifffile.TiffFile(path) as tif:
            series = tif.series[0]
            axes, shape = series.axes, series.shape
            if len(tif.series) > 1:  # pages of different shapes, or separate writes: never keep only the first
                raise ImageReadError(
                    f"{path}: multi-page TIFF ({len(tif.series)} images in {len(tif.pages)} pages); "
                    "nucleaizer-tf segments one 2-D image per file: save each page as its own file"
                )
            if len(tif.pages) > 1 and len(tif.series) == 1 and "S" not in axes and len(shape) > 2:
                raise ImageReadError(
                    f"{path}: multi-page TIFF ({len(tif.pages)} pages, axes {axes} {shape}); "
                    "nucleaizer-tf segments 2-D images: save each plane as its own file"
                )
            data = series.asarray()
    except ImageReadError:
        raise
    except Exception as exc:  # tifffile raises many types for truncated/corrupt data
        raise ImageReadError(f"{path}: cannot decode TIFF ({type(exc).__name__}: {exc}); the file is corrupt or truncated") from None
    # Planar colour (C, Y, X) with few channels → channels last; anything else 3-D is a stack.
    if data.ndim == 3 and axes.endswith("YX") and axes[0] in "CS" and data.shape[0] <= 4 and data.shape[-1] > 4:
        data = np.moveaxis(data, 0, -1)
    return data


def _read_raster(path: Path, kind: str) -> np.ndarray:
    data = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if data is None:
        raise ImageReadError(f"{path}: cannot decode {kind}; the file is corrupt or truncated")
    if data.ndim == 3 and data.shape[2] == 3:
        data = cv2.cvtColor(data, cv2.COLOR_BGR2RGB)
    elif data.ndim == 3 and data.shape[2] == 4:
        data = cv2.cvtColor(data, cv2.COLOR_BGRA2RGBA)
    return data


def _read_array(path: Path, extensions) -> np.ndarray:
    """The file's pixels as stored (after the extension and file checks), a single channel squeezed."""
    ext = _check_file(path, extensions)
    data = np.asarray(_read_tiff(path) if ext in _TIFF else _read_raster(path, _KINDS[ext]))
    return data[:, :, 0] if data.ndim == 3 and data.shape[2] == 1 else data


def read_image(path: str | os.PathLike) -> np.ndarray:
    """Read a 2-D image (grey H×W, or H×W×C with C ≤ 4) in its native dtype (uint8, uint16, float...).

    A 3-D stack, a multi-page TIFF, an empty, truncated or non-image file raises `ImageReadError`
    naming the file. Conversion to the network's 8-bit RGB is `to_rgb8`'s job, not this one's.

    PNG/BMP/JPEG are read with OpenCV (16-bit colour stays 16-bit), TIFF with tifffile (planar colour
    moved channels last); colour comes back in RGB(A) order, a single channel is squeezed to H×W and
    a bool image becomes uint8 0/255.

    Parameters
    ----------
    path : str or os.PathLike
        An image file with one of `IMAGE_EXTENSIONS`.

    Returns
    -------
    numpy.ndarray
        (H, W) or (H, W, C) image, C ≤ 4, H and W ≥ 2, in the file's integer or float dtype.

    Raises
    ------
    ImageReadError
        As described above, and for a missing file, a folder, an unsupported extension, a file whose
        first bytes do not match its extension, an image smaller than 2 pixels in a dimension or an
        unsupported pixel type.

    Examples
    --------
    >>> image = read_image("data/images/a1.png")  # doctest: +SKIP
    >>> image.shape, image.dtype  # doctest: +SKIP
    ((512, 640, 3), dtype('uint8'))
    """
    path = Path(path)
    data = _read_array(path, IMAGE_EXTENSIONS)
    if data.ndim not in (2, 3) or (data.ndim == 3 and data.shape[2] > 4):
        raise ImageReadError(
            f"{path}: array of shape {data.shape} is not a 2-D image (grey or up to 4 channels); "
            "3-D stacks and multi-channel volumes must be split into 2-D images first"
        )
    if min(data.shape[:2]) < 2:
        raise ImageReadError(f"{path}: image of shape {data.shape} is too small to segment")
    if data.dtype == bool:
        data = data.astype(np.uint8) * 255
    if not (np.issubdtype(data.dtype, np.integer) or np.issubdtype(data.dtype, np.floating)):
        raise ImageReadError(f"{path}: unsupported pixel type {data.dtype}")
    return data


def read_labels(path: str | os.PathLike, shape: tuple[int, int] | None = None) -> np.ndarray:
    """Read a label image (0 = background, k > 0 = object k) as a 2-D integer array.

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
        (H, W) of the image the outlines belong to; needed for outline files, ignored otherwise.

    Returns
    -------
    numpy.ndarray
        (H, W) non-negative integer label image: the file's integer dtype (int32 for bool, int64 for
        whole-number floats); uint16 (uint32 above 65,535 ids) for outline files.

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
    if path.suffix.lower() in VECTOR_LABEL_EXTENSIONS:
        from nucleaizer_tf.io.export import read_vector_labels

        return read_vector_labels(path, shape)
    data = _read_array(path, LABEL_EXTENSIONS)
    if data.ndim != 2:
        raise ImageReadError(f"{path}: a label image must be 2-D (one integer id per pixel), got shape {data.shape}")
    if data.dtype == bool:
        return data.astype(np.int32)
    try:
        return as_label_array(data, "the label image")
    except ValueError as exc:
        raise ImageReadError(f"{path}: {exc}") from None
