"""One image through `predict`: read, segment, write — the per-image step every engine runs.

`process_image` (and its three steps, which the local engine's pipelined loop runs on separate threads)
is imported by the local folder loop (`pipelines.predict`) and by the Dask workers
(`pipelines.dask_engine`), so both write the same bytes and report a bad image in the same one line
(`error_message`). A bad image never raises here: it becomes an `ImageOutcome` with `error` set.
"""

from __future__ import annotations

import errno
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from nucleaizer_tf.errors import NucleaizerError
from nucleaizer_tf.io import to_rgb8, write_image, write_labels, write_rgb
from nucleaizer_tf.io.read import ReadOptions, read_input
from nucleaizer_tf.pipelines.measure import ExportOptions, export_image
from nucleaizer_tf.visualize import outline_overlay

# segment(image, stem) -> (labels, extra facts for the record, e.g. the network size used)
SegmentFn = Callable[[np.ndarray, str], "tuple[np.ndarray, dict]"]


@dataclass
class ImageOutcome:
    """What segmenting one input gave: its run-record entry and summary row, or the one-line error.

    Attributes
    ----------
    path : pathlib.Path
        The input image.
    record : dict or None
        Its run-record entry (image, labels, objects, seconds, model facts); None when it failed.
    summary_row : dict or None
        Its `summary.csv` row, when exports were asked for.
    error : str or None
        The one-line error of a failed image, else None.
    disk_full : bool
        Its outputs could not be written because the disk is full (the run stops there).

    Examples
    --------
    >>> outcome = ImageOutcome(Path("images/a.png"), error="images/a.png: empty file (0 bytes)")
    >>> outcome.record is None
    True
    """

    path: Path
    record: dict | None = None
    summary_row: dict | None = None
    error: str | None = None
    disk_full: bool = False


def error_message(exc: BaseException) -> str:
    """The one line a failed image is reported with (by every engine).

    Parameters
    ----------
    exc : BaseException
        What reading, segmenting or writing the image raised.

    Returns
    -------
    str
        The message's first line; where and why for a full or read-only disk; the exception's type in
        front of anything that is not one of ours, a ValueError or an OSError.

    Examples
    --------
    >>> error_message(ValueError("image too small"))
    'image too small'
    >>> error_message(KeyError("x"))
    "KeyError: 'x'"
    """
    message = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    if isinstance(exc, OSError) and exc.strerror:  # a full or read-only disk: where, and why
        message = f"{exc.filename}: {exc.strerror}" if exc.filename is not None else exc.strerror
    if not isinstance(exc, (NucleaizerError, ValueError, OSError)):
        message = f"{type(exc).__name__}: {message}"
    return message


@dataclass
class ImageWork:
    """One image on its way through the folder loop: read, then segmented, then written.

    `error` is set by the first step that failed (later steps pass the image on untouched);
    `seconds` adds up the time the steps spent on this image (not the time it waited between them).

    Attributes
    ----------
    path : pathlib.Path
        The input image.
    image : numpy.ndarray or None
        Its pixels, once read (dropped again by `write_step`).
    labels : numpy.ndarray or None
        Its labels, once segmented (dropped again by `write_step`).
    facts : dict
        What the segmenter reported about the image (network size, estimated nucleus size, ...).
    error : str or None
        The one-line error of the first step that failed.
    seconds : float
        The time the steps spent on this image so far.
    stack_axes : str
        The plane axes in front of `image` and `labels` (``"Z"``, ``"TZ"``) for a stack read with
        ``planes="each"``; ``""`` for a 2-D image.

    Examples
    --------
    >>> work = ImageWork(Path("images/a.png"))
    >>> work.error, work.seconds, work.stack_axes
    (None, 0.0, '')
    """

    path: Path
    image: np.ndarray | None = None
    labels: np.ndarray | None = None
    facts: dict = field(default_factory=dict)
    error: str | None = None
    seconds: float = 0.0
    stack_axes: str = ""


def read_step(path: Path, read: ReadOptions = ReadOptions()) -> ImageWork:
    """Read one input image (the first step of `process_image`); never raises for a bad file.

    Parameters
    ----------
    path : pathlib.Path
        The input image.
    read : ReadOptions, optional
        The pixel limit, the channel and the planes of stacks to read (`nucleaizer_tf.io.read.read_input`).

    Returns
    -------
    ImageWork
        With `image` set, or with `error` set when the file cannot be read.

    Examples
    --------
    >>> work = read_step(Path("images/a.png"))  # doctest: +SKIP
    >>> work.image.shape, work.error            # doctest: +SKIP
    ((256, 256), None)
    """
    started = time.perf_counter()
    work = ImageWork(Path(path))
    try:
        work.image, work.stack_axes = read_input(work.path, read)
    except Exception as exc:  # reported as this image's failure, the run goes on
        work.error = error_message(exc)
    work.seconds += time.perf_counter() - started
    return work


def segment_step(work: ImageWork, segment: SegmentFn) -> ImageWork:
    """Segment an image that was read (the network step); an exception becomes `work.error`.

    Parameters
    ----------
    work : ImageWork
        The image, as `read_step` gives it; one that already failed is passed on untouched.
    segment : callable
        ``segment(image, stem) -> (labels, facts)``.

    Returns
    -------
    ImageWork
        `work`, with `labels` and `facts` set, or `error`; its `seconds` include this step. A stack
        (`work.stack_axes`) is segmented plane by plane (each named ``<stem>_plane<k>``), its ids
        made unique over the stack, its facts ``{"planes": [facts of each plane]}``.

    Examples
    --------
    >>> work = segment_step(read_step(Path("images/a.png")), segment)  # doctest: +SKIP
    >>> int(work.labels.max())                                       # doctest: +SKIP
    42

    With a stand-in segmenter:

    >>> image = np.zeros((4, 4), np.uint8)
    >>> work = segment_step(ImageWork(Path("a.png"), image=image),
    ...                     lambda image, stem: (np.ones(image.shape, np.uint16), {"stem": stem}))
    >>> int(work.labels.max()), work.facts, work.error
    (1, {'stem': 'a'}, None)
    >>> def broken(image, stem):
    ...     raise ValueError("image too small")
    >>> segment_step(ImageWork(Path("b.png"), image=image), broken).error
    'image too small'
    """
    if work.error is not None:
        return work
    started = time.perf_counter()
    try:
        if work.stack_axes:
            work.labels, work.facts = _segment_planes(work.image, len(work.stack_axes), work.path.stem, segment)
        else:
            work.labels, work.facts = segment(work.image, work.path.stem)
    except Exception as exc:
        work.error = error_message(exc)
    work.seconds += time.perf_counter() - started
    return work


def _segment_planes(stack: np.ndarray, n_axes: int, stem: str, segment: SegmentFn) -> tuple[np.ndarray, dict]:
    """Labels of every plane of `stack` (its first `n_axes` axes), ids unique over the stack, and the planes' facts."""
    shape = stack.shape[:n_axes]
    labels = np.zeros(shape + stack.shape[n_axes:n_axes + 2], np.uint32)
    facts, top = [], 0
    for flat, index in enumerate(np.ndindex(*shape)):
        plane, plane_facts = segment(stack[index], f"{stem}_plane{flat}")
        plane = np.asarray(plane)
        labels[index] = np.where(plane > 0, plane.astype(np.uint32) + top, 0)
        top = max(top, int(labels[index].max()))
        facts.append(plane_facts)
    return labels, {"planes": facts}


def write_step(work: ImageWork, out_dir: Path, *, overlay: bool = False, exports: ExportOptions | None = None,
               model_name: str = "") -> ImageOutcome:
    """Write a segmented image's labels (and overlay, exports) and give its outcome; never raises for a
    bad image. The image array is dropped afterwards, so a finished `ImageWork` holds no pixels.

    Writes ``<out_dir>/<stem>.tiff`` and, if asked, ``overlays/<stem>.png``, the class map
    ``probabilities/<stem>.tiff`` (from ``work.facts["probabilities"]``) and the exports of
    `pipelines.measure.export_image`, each atomically.

    Parameters
    ----------
    work : ImageWork
        The image, as `segment_step` gives it; one that failed gives an outcome with its `error`.
    out_dir : pathlib.Path
        The output folder.
    overlay : bool, optional
        Also write an outline overlay PNG (default False).
    exports : ExportOptions, optional
        ROI set, GeoJSON, measurement CSV and class map to write (default None: none).
    model_name : str, optional
        The model, for the summary row.

    Returns
    -------
    ImageOutcome
        Its run-record entry and summary row, or the one-line error of a failed write.

    Examples
    --------
    >>> work = segment_step(read_step(Path("images/a.png")), segment)  # doctest: +SKIP
    >>> write_step(work, Path("out")).record["objects"]                 # doctest: +SKIP
    42
    """
    out_dir = Path(out_dir)
    if work.error is not None:
        return ImageOutcome(work.path, error=work.error)
    started = time.perf_counter()
    image, labels, path = work.image, work.labels, work.path
    work.image = work.labels = None
    probabilities = work.facts.pop("probabilities", None)  # the class map is a file, not a fact of the record
    try:
        target = write_labels(out_dir / f"{path.stem}.tiff", labels, axes=work.stack_axes + "YX")
        if exports is not None and exports.probabilities and probabilities is not None:
            write_image(out_dir / "probabilities" / f"{path.stem}.tiff", probabilities)
        if overlay:
            shown = to_rgb8(image, "nucleaizer" if image.dtype == np.uint8 else "percentile")
            write_rgb(out_dir / "overlays" / f"{path.stem}.png", outline_overlay(shown, labels))
        row = None
        if exports is not None and exports.any:
            row = export_image(out_dir, path.stem, image, labels, exports, {
                "image": str(path), "labels": str(target), "model": model_name,
                "seconds": round(work.seconds + time.perf_counter() - started, 3)}, stack_axes=work.stack_axes)
    except Exception as exc:  # one bad image must not end a night's run; it is reported instead
        full = isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT)
        return ImageOutcome(path, error=error_message(exc), disk_full=full)
    work.seconds += time.perf_counter() - started
    record = {"image": str(path), "labels": str(target),
              "objects": int(np.count_nonzero(np.bincount(labels.ravel())[1:])),
              "seconds": round(work.seconds, 3), **work.facts}
    return ImageOutcome(path, record=record, summary_row=row)


def process_image(path: Path, out_dir: Path, segment: SegmentFn, *, overlay: bool = False,
                  exports: ExportOptions | None = None, model_name: str = "",
                  read: ReadOptions = ReadOptions()) -> ImageOutcome:
    """Read, segment and write one image (labels, overlay, exports); never raises for a bad image.

    The one per-image step of every engine (the local loop, the Dask workers), so all write the same
    bytes: `read_step`, `segment_step` and `write_step` in turn (the pipelined folder loop runs the
    same three on different threads). An image that cannot be read or segmented gives an outcome with
    `error` set. `seconds` in the record is the time of the three steps.

    Parameters
    ----------
    path : pathlib.Path
        The input image.
    out_dir : pathlib.Path
        The output folder.
    segment : callable
        ``segment(image, stem) -> (labels, facts)``.
    overlay : bool, optional
        Also write an outline overlay PNG (default False).
    exports : ExportOptions, optional
        ROI set, GeoJSON and measurement CSV to write (default None: none).
    model_name : str, optional
        The model, for the summary row.
    read : ReadOptions, optional
        How the image is read (`read_step`).

    Returns
    -------
    ImageOutcome
        The image's run-record entry and summary row, or its one-line error.

    Examples
    --------
    >>> outcome = process_image(Path("images/a.png"), Path("out"), segment)  # doctest: +SKIP
    >>> outcome.record["objects"], outcome.error                             # doctest: +SKIP
    (42, None)
    """
    work = segment_step(read_step(Path(path), read), segment)
    return write_step(work, Path(out_dir), overlay=overlay, exports=exports, model_name=model_name)
