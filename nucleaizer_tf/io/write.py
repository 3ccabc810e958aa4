"""Writers that never leave a half-written file: each writes to a temporary name, then renames."""

from __future__ import annotations

import contextlib
import errno
import json
import os
import re
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np
import tifffile

from nucleaizer_tf.labels import label_dtype


SOFTWARE = "nucleaizer-tf"
"""The Software tag of the label TIFFs this package writes (`is_own_label_file`)."""


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike):
    """Yield a temporary path beside `path` (same suffixes, so writers pick the format); rename on success.

    On any exception the temporary file is removed and `path` keeps its previous content (or stays absent).

    The parent folder is created if needed. The temporary is named ``.<name>.XXXXXXXX.tmp<suffixes>``
    (see `is_temporary_name`) and gets the usual file permissions (0666 less the umask).

    Parameters
    ----------
    path : str or os.PathLike
        The file to write.

    Yields
    ------
    pathlib.Path
        The temporary file (already created, empty) to write to; it replaces `path` when the block ends
        without an exception.

    Examples
    --------
    >>> with atomic_path("out/a.tiff") as tmp:  # doctest: +SKIP
    ...     tifffile.imwrite(tmp, labels)
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    # All suffixes are kept ("x.weights.h5" → ".x.weights.h5.XXXX.tmp.weights.h5"): Keras checks them.
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=f".tmp{''.join(path.suffixes)}", dir=path.parent)
    os.close(fd)
    os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600 files; outputs get the usual permissions
    try:
        yield Path(tmp)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


# What `atomic_path` names its temporaries: "." + name + "." + mkstemp's 8 random characters + ".tmp" +
# the name's suffixes. Only files matching exactly this (suffixes included) are ever cleaned up.
_TEMPORARY = re.compile(r"^\.(?P<name>.+)\.[a-z0-9_]{8}\.tmp(?P<suffixes>.*)$")


def is_temporary_name(name: str) -> bool:
    """True for a file name `atomic_path` gives its temporaries (``.<name>.XXXXXXXX.tmp<suffixes>``).

    Parameters
    ----------
    name : str
        A file name (no folder).

    Returns
    -------
    bool
        True when `name` matches the pattern exactly, the trailing suffixes included.

    Examples
    --------
    >>> is_temporary_name(".a.tiff.k3j_9x0q.tmp.tiff"), is_temporary_name(".a.tiff")
    (True, False)
    """
    match = _TEMPORARY.match(name)
    return bool(match) and match["suffixes"] == "".join(Path(match["name"]).suffixes)


def remove_stale_temporaries(folder: str | os.PathLike, *, before: float | None = None,
                             recursive: bool = False, name: str | None = None) -> list[Path]:
    """Remove the temporaries `atomic_path` left in `folder` when a run was killed mid-write.

    Only files whose name matches `atomic_path`'s pattern exactly and whose modification time is older
    than `before` (default: now; call it before this run writes anything, so none of its own live
    temporaries can match) are removed. A missing folder is not an error.

    Parameters
    ----------
    folder
        The folder an output is written to.
    before
        A `time.time()` value; newer temporaries (another process's live write) are left alone.
    recursive
        Also clean the folders below `folder` (a work folder of intermediate results).
    name
        Only the temporaries of this one output file (for a file in a folder the run does not own).

    Returns
    -------
    list of Path
        The files removed.

    Examples
    --------
    >>> remove_stale_temporaries("out")  # doctest: +SKIP
    [PosixPath('out/.a.tiff.k3j_9x0q.tmp.tiff')]
    """
    folder = Path(folder)
    before = time.time() if before is None else before
    if not folder.is_dir():
        return []
    candidates = folder.rglob(".*.tmp*") if recursive else folder.glob(".*.tmp*")
    removed = []
    for path in candidates:
        if not is_temporary_name(path.name):
            continue
        if name is not None and _TEMPORARY.match(path.name)["name"] != name:
            continue
        with contextlib.suppress(OSError):  # vanished meanwhile, or not ours to remove
            if path.is_file() and not path.is_symlink() and path.stat().st_mtime < before:
                path.unlink()
                removed.append(path)
    return removed


def _unwritable(folder: Path, given: bool = True) -> str | None:
    """Why files cannot be created in `folder` (created first if absent), or None; creates nothing."""
    existing = folder
    while not existing.exists() and not existing.is_symlink() and existing != existing.parent:
        existing = existing.parent
    if existing.exists() and not existing.is_dir():
        return "it is an existing file, not a folder" if existing == folder and given else f"{existing} is a file, not a folder"
    if not existing.exists():
        return f"{existing} is a broken symbolic link"
    try:
        fd, probe = tempfile.mkstemp(prefix=".nucleaizer-probe.", dir=existing)
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        return exc.strerror or os.strerror(exc.errno or errno.EIO)
    return None


def check_writable_folder(folder: str | os.PathLike, what: str = "output folder") -> Path:
    """Check up front that `folder` can be created (if absent) and written; create nothing.

    A probe file is created and removed in `folder`, or in its nearest existing parent when `folder`
    does not exist yet. Raises `NucleaizerError` naming the path and the reason (a file in the way,
    no permission, read-only file system, disk full).

    Parameters
    ----------
    folder : str or os.PathLike
        The folder to be written to.
    what : str, optional
        What the folder is, for the message (default "output folder").

    Returns
    -------
    pathlib.Path
        `folder` as a Path.

    Raises
    ------
    NucleaizerError
        As described above.

    Examples
    --------
    >>> check_writable_folder("out")  # doctest: +SKIP
    PosixPath('out')
    """
    from nucleaizer_tf.errors import NucleaizerError

    folder = Path(folder)
    reason = _unwritable(folder)
    if reason:
        raise NucleaizerError(f"{folder}: cannot write the {what}: {reason}")
    return folder


def check_output_file(path: str | os.PathLike, what: str = "output file") -> Path:
    """Check up front that the file `path` can be written: not a folder, its folder writable.

    Like `check_writable_folder`, a probe file is created and removed in the file's folder (or its
    nearest existing parent); nothing else is created.

    Parameters
    ----------
    path : str or os.PathLike
        The file to be written.
    what : str, optional
        What the file is, for the message (default "output file").

    Returns
    -------
    pathlib.Path
        `path` as a Path.

    Raises
    ------
    NucleaizerError
        Naming the path and the reason (an existing folder, a file in the way, no permission,
        read-only file system, disk full).

    Examples
    --------
    >>> check_output_file("scores.csv")  # doctest: +SKIP
    PosixPath('scores.csv')
    """
    from nucleaizer_tf.errors import NucleaizerError

    path = Path(path)
    reason = "it is an existing folder" if path.is_dir() else _unwritable(path.parent, given=False)
    if reason:
        raise NucleaizerError(f"{path}: cannot write the {what}: {reason}")
    return path


def _umask() -> int:
    current = os.umask(0)
    os.umask(current)
    return current


def write_labels(path: str | os.PathLike, labels: np.ndarray, *, compress: bool = False, axes: str = "YX") -> Path:
    """Write a 2-D label image (or a stack of them) as a 16-bit TIFF (32-bit above 65,535 objects), atomically.

    A stack (`axes` longer than ``"YX"``, e.g. ``"ZYX"``) is written with its axes in the file: as an
    ImageJ hyperstack when its axes come in ImageJ's order (T, Z, C) and its ids fit 16 bits, else as a
    tifffile shaped TIFF; both open in Fiji, napari and tifffile with the same axes.

    Parameters
    ----------
    path : str or os.PathLike
        The TIFF file to write (its folder is created if needed).
    labels : numpy.ndarray
        (H, W) label image, or (P1, ..., H, W) stack, 0 = background, non-negative ids; stored as
        `label_dtype` gives.
    compress : bool, optional
        zlib compression (default False: uncompressed).
    axes : str, optional
        One letter per axis of `labels`, ending in ``"YX"`` (default ``"YX"``: a 2-D image).

    Returns
    -------
    pathlib.Path
        `path` as a Path.

    Raises
    ------
    ValueError
        When `labels` does not have the dimensions `axes` names, or holds negative ids.

    Examples
    --------
    >>> write_labels("out/a1.tiff", labels, compress=True)  # doctest: +SKIP
    PosixPath('out/a1.tiff')
    >>> write_labels("out/embryo.tiff", stack, axes="ZYX")  # doctest: +SKIP
    PosixPath('out/embryo.tiff')
    """
    labels = np.asarray(labels)
    if labels.ndim != len(axes) or not axes.endswith("YX"):
        what = "a label image must be 2-D" if axes == "YX" else f"labels of axes {axes!r} must have {len(axes)} dimensions"
        raise ValueError(f"{what}, got shape {labels.shape}")
    if labels.size and labels.min() < 0:
        raise ValueError("label ids must be non-negative")
    data = labels.astype(label_dtype(labels), copy=False)
    stack = {}
    if axes != "YX":
        order = [_IMAGEJ_AXES.find(a) for a in axes[:-2]]
        imagej = data.dtype == np.uint16 and -1 not in order and order == sorted(set(order))
        stack = {"imagej": True} if imagej else {}
        stack["metadata"] = {"axes": axes}
    with atomic_path(path) as tmp:
        tifffile.imwrite(tmp, data, compression="zlib" if compress else None, photometric="minisblack",
                         software=SOFTWARE, **stack)
    return Path(path)


_IMAGEJ_AXES = "TZC"  # the plane axes ImageJ hyperstacks know, in their order


def is_own_label_file(path: str | os.PathLike) -> bool:
    """Whether `path` is a label TIFF `write_labels` wrote (its Software tag says `SOFTWARE`).

    Parameters
    ----------
    path : str or os.PathLike
        Any file.

    Returns
    -------
    bool
        False for anything else, also for a file that is not a readable TIFF.

    Examples
    --------
    >>> import tempfile
    >>> folder = Path(tempfile.mkdtemp())
    >>> is_own_label_file(write_labels(folder / "a.tiff", np.zeros((4, 4), np.uint16)))
    True
    >>> (folder / "b.tiff").write_text("my notes") and is_own_label_file(folder / "b.tiff")
    False
    """
    try:
        with tifffile.TiffFile(path) as tif:
            tag = tif.pages[0].tags.get("Software")
            return tag is not None and tag.value == SOFTWARE
    except Exception:  # not a TIFF, damaged, unreadable: not one of ours
        return False


def write_image(path: str | os.PathLike, image: np.ndarray) -> Path:
    """Write a grey, RGB or RGBA image as a TIFF in its own dtype (16-bit stays 16-bit), atomically.

    What `read_image` reads back unchanged: the napari plugin hands image layers to folder-based
    pipelines (`adapt`) this way.

    Parameters
    ----------
    path : str or os.PathLike
        The TIFF file to write (its folder is created if needed).
    image : numpy.ndarray
        (H, W), (H, W, 3) or (H, W, 4), integer or float.

    Returns
    -------
    pathlib.Path
        `path` as a Path.

    Raises
    ------
    ValueError
        For any other shape.

    Examples
    --------
    >>> write_image("inputs/a1.tiff", image)  # doctest: +SKIP
    PosixPath('inputs/a1.tiff')
    """
    image = np.asarray(image)
    if not (image.ndim == 2 or (image.ndim == 3 and image.shape[2] in (3, 4))):
        raise ValueError(f"expected a grey, RGB or RGBA image, got shape {image.shape}")
    photometric = "minisblack" if image.ndim == 2 else "rgb"
    extras = {"extrasamples": ["unassalpha"]} if image.ndim == 3 and image.shape[2] == 4 else {}
    with atomic_path(path) as tmp:
        tifffile.imwrite(tmp, image, photometric=photometric, **extras)
    return Path(path)


def safe_stem(name: str) -> str:
    """A file stem for a free-form name (a napari layer's): path separators and control or reserved
    characters become ``_``; an empty or dot-only name becomes ``image``.

    Parameters
    ----------
    name : str
        Any text.

    Returns
    -------
    str
        A name that is one file in one folder on every common file system.

    Examples
    --------
    >>> safe_stem("fluo: dense/1")
    'fluo_ dense_1'
    >>> safe_stem("..")
    'image'
    """
    stem = "".join("_" if ch in '/\\:*?"<>|' or ord(ch) < 32 else ch for ch in name).strip()
    return stem if stem.strip(".") else "image"


def write_rgb(path: str | os.PathLike, image: np.ndarray) -> Path:
    """Write an 8-bit RGB (or grey) image, e.g. an overlay PNG, atomically.

    The format follows the suffix of `path`, as OpenCV's `imwrite` chooses it.

    Parameters
    ----------
    path : str or os.PathLike
        The image file to write (its folder is created if needed), e.g. ``overlay.png``.
    image : numpy.ndarray
        (H, W, 3) RGB or (H, W) grey image, normally uint8.

    Returns
    -------
    pathlib.Path
        `path` as a Path.

    Raises
    ------
    OSError
        When OpenCV cannot encode the image.

    Examples
    --------
    >>> write_rgb("out/a1_overlay.png", overlay)  # doctest: +SKIP
    PosixPath('out/a1_overlay.png')
    """
    image = np.asarray(image)
    if image.ndim == 3 and image.shape[2] == 3:
        image = cv2.cvtColor(image, cv2.COLOR_RGB2BGR)
    with atomic_path(path) as tmp:
        if not cv2.imwrite(str(tmp), image):
            raise OSError(f"{path}: could not encode image of shape {image.shape} and dtype {image.dtype}")
    return Path(path)


def write_json(path: str | os.PathLike, payload) -> Path:
    """Write `payload` as indented JSON, atomically.

    NumPy scalars and arrays and `pathlib.Path` values are converted (to numbers, lists and strings);
    keys keep their order.

    Parameters
    ----------
    path : str or os.PathLike
        The JSON file to write (its folder is created if needed).
    payload : object
        Anything `json.dumps` takes, with the conversions above.

    Returns
    -------
    pathlib.Path
        `path` as a Path.

    Raises
    ------
    TypeError
        For a value that cannot be converted.

    Examples
    --------
    >>> write_json("out/scores.json", {"dsb": np.float64(0.71), "images": 12})  # doctest: +SKIP
    PosixPath('out/scores.json')
    """
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(payload, indent=2, sort_keys=False, default=_jsonable) + "\n")
    return Path(path)


def _jsonable(value):
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")
