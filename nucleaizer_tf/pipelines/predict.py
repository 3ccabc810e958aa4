"""Segment a folder of images into label TIFFs (+ overlays and a JSON record of the run).

The per-image step (read, segment, write; `ImageOutcome`) is `pipelines.image_step`, which the Dask
engine runs too.

`run_predict` is what `nucleaizer-tf predict` runs: it loads the model through the model facade
(`nucleaizer_tf.load_model`: the shipped default model, a model folder, a legacy Mask R-CNN file, the
full pipeline), checks the options against it before anything slow happens, and runs the one folder
loop, `predict_files`, with the same guarantees for every model: outputs written atomically, one bad
image reported and skipped, a record of every applied setting, the model and the package versions.
"""

from __future__ import annotations

import os
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from nucleaizer_tf.errors import NucleaizerError
from nucleaizer_tf.io.digest import fingerprint
from nucleaizer_tf.io import IMAGE_EXTENSIONS, check_writable_folder, list_images, remove_stale_temporaries, write_json
from nucleaizer_tf.io.read import ReadOptions, is_broken_link
from nucleaizer_tf.pipelines.image_step import (
    ImageOutcome,
    ImageWork,
    SegmentFn,
    read_step,
    segment_step,
    write_step,
)
from nucleaizer_tf.pipelines.measure import SUMMARY_NAME, ExportOptions, write_summary
from nucleaizer_tf.pipelines.resume import RunJournal, output_files
from nucleaizer_tf.progress import SILENT, Reporter
from nucleaizer_tf.system import package_versions

RECORD_NAME = "nucleaizer-tf.json"



@dataclass
class PredictReport:
    """What a `predict` run did: the label files written, the images that failed, the run record.

    Attributes
    ----------
    outputs : list of pathlib.Path
        The label images written (``<out_dir>/<stem>.tiff``), in input order.
    failures : list of tuple
        ``(input path, one-line error)`` of each image that could not be read, segmented or written.
    images : list of dict
        The run record's entry of each segmented image (image, labels, objects, seconds, model facts).
    record : pathlib.Path or None
        The run record, ``<out_dir>/nucleaizer-tf.json`` (None if it could not be written).
    skipped : int
        Images not recomputed (`skip_existing`).
    write_error : str or None
        Why the run record or `summary.csv` could not be written (disk full...), else None.

    Examples
    --------
    >>> report = run_predict("images/", "out/")                  # doctest: +SKIP
    >>> for path, error in report.failures:                      # doctest: +SKIP
    ...     print(error)
    images/broken.png: empty file (0 bytes)
    >>> PredictReport().skipped
    0
    """

    outputs: list[Path] = field(default_factory=list)
    failures: list[tuple[Path, str]] = field(default_factory=list)
    images: list[dict] = field(default_factory=list)
    record: Path | None = None
    skipped: int = 0  # images not recomputed (`skip_existing`)
    write_error: str | None = None  # the run record or summary.csv could not be written (disk full...)


def collect_inputs(images: str | os.PathLike, out_dir: str | os.PathLike) -> list[Path]:
    """The image files to segment: one file, or the images of a folder (sorted, non-recursive).

    Refuses an empty folder, two inputs with the same stem (both would write `<stem>.tiff`), an
    output folder equal to the input folder, and any output path (label image, overlay, exports, run
    record) that is an input: no run writes over a file it did not create. A broken symbolic link is
    an input like any other (it is reported as unreadable).

    Parameters
    ----------
    images : str or os.PathLike
        An image file, or a folder of images (`nucleaizer_tf.io.IMAGE_EXTENSIONS`).
    out_dir : str or os.PathLike
        The output folder the run will write.

    Returns
    -------
    list of pathlib.Path
        The input files, sorted.

    Raises
    ------
    NucleaizerError
        For a file of an unsupported type, a folder without images, an output folder equal to the
        input folder, two inputs with the same stem, or an output path that is an input.

    Examples
    --------
    >>> collect_inputs("images/", "out/")  # doctest: +SKIP
    [PosixPath('images/a.png'), PosixPath('images/b.tif')]
    """
    images, out_dir = Path(images), Path(out_dir)
    if images.is_file() or (is_broken_link(images) and images.suffix.lower() in IMAGE_EXTENSIONS):
        if images.suffix.lower() not in IMAGE_EXTENSIONS:
            raise NucleaizerError(f"{images}: unsupported file type {images.suffix!r}; expected one of {', '.join(IMAGE_EXTENSIONS)}")
        files = [images]
    else:
        files = list_images(images)
        if not files:
            raise NucleaizerError(f"{images}: no images ({', '.join(e[1:] for e in IMAGE_EXTENSIONS)}) in this folder")
        if out_dir.exists() and out_dir.resolve() == images.resolve():
            raise NucleaizerError(f"{out_dir}: the output folder must differ from the input folder")
    stems: dict[str, Path] = {}
    for path in files:
        if path.stem in stems:
            raise NucleaizerError(f"{path} and {stems[path.stem]} have the same stem; both would be written to {path.stem}.tiff")
        stems[path.stem] = path
    inputs = {_real(path): path for path in files}
    for stem in stems:
        for output in output_files(out_dir, stem, overlay=True, exports=ExportOptions(True, True, True, probabilities=True)) + [
                out_dir / RECORD_NAME, out_dir / SUMMARY_NAME]:
            if _real(output) in inputs:
                raise NucleaizerError(f"{inputs[_real(output)]}: this input would be overwritten by the output "
                                      f"{output}; choose another output folder")
    return files


def _real(path: Path) -> str:
    return os.path.realpath(path)


def finish_run(out_dir: str | os.PathLike, outcomes: list[ImageOutcome], *, settings: dict | None = None,
               exports: ExportOptions | None = None, planned: int | None = None) -> PredictReport:
    """The report of a run from its outcomes (in input order), with `summary.csv` (exports) and the
    run record `nucleaizer-tf.json` written.

    The run record holds the command, the settings, the package versions, one entry per segmented
    image and the failures. A record that cannot be written (a full disk) does not raise: the report
    says why in `write_error`, so the failures still reach the user.

    Parameters
    ----------
    out_dir : str or os.PathLike
        The output folder.
    outcomes : list of ImageOutcome
        One per input, in input order.
    settings : dict, optional
        The applied settings for the run record (model description and resolved options).
    exports : ExportOptions, optional
        The exports of the run; with `exports.csv`, `summary.csv` is written too.
    planned : int, optional
        How many images the run was given (default: one per outcome); when an outcome says the disk
        is full, `write_error` says so once, with how many were finished, and those outcomes are not
        listed as failures.

    Returns
    -------
    PredictReport
        Outputs, failures, per-image entries and the run record's path.

    Examples
    --------
    >>> outcomes = [process_image(path, Path("out"), segment) for path in files]  # doctest: +SKIP
    >>> report = finish_run("out", outcomes, settings={"model": "default"})       # doctest: +SKIP
    >>> report.record                                                             # doctest: +SKIP
    PosixPath('out/nucleaizer-tf.json')
    """
    out_dir = Path(out_dir)
    report = PredictReport()
    if any(o.disk_full for o in outcomes):  # one message for the run, not one per image
        done = sum(o.error is None for o in outcomes)
        report.write_error = (f"no space left on {out_dir}: stopped after {done} of {planned or len(outcomes)} "
                              f"images; the {done} finished are kept (free space, then rerun with --skip-existing)")
    for outcome in outcomes:
        if outcome.disk_full:
            continue
        if outcome.error is not None:
            report.failures.append((outcome.path, outcome.error))
        else:
            report.outputs.append(Path(outcome.record["labels"]))
            report.images.append(outcome.record)
    try:  # the failures must reach the user even when the disk filled up during the run
        if exports is not None:
            write_summary(out_dir, [o.summary_row for o in outcomes if o.summary_row is not None], exports)
        report.record = write_json(
            out_dir / RECORD_NAME,
            {
                "command": "predict",
                "settings": settings or {},
                "versions": package_versions(),
                "images": report.images,
                "failures": [{"image": str(p), "error": msg} for p, msg in report.failures],
            },
        )
    except OSError as exc:
        where = exc.filename if exc.filename is not None else out_dir / RECORD_NAME
        report.write_error = report.write_error or f"{where}: cannot write the run record ({exc.strerror or exc})"
    return report


#: images read ahead of the network, and written behind it, by the pipelined folder loop
PIPELINE_DEPTH = 2


def predict_files(
    files: list[Path],
    out_dir: str | os.PathLike,
    segment: SegmentFn,
    *,
    overlay: bool = False,
    settings: dict | None = None,
    progress: Callable[[ImageOutcome], None] | None = None,
    exports: ExportOptions | None = None,
    pipelined: bool = True,
    read: ReadOptions = ReadOptions(),
) -> PredictReport:
    """Segment each file into `out_dir/<stem>.tiff` (and `out_dir/overlays/<stem>.png`).

    A file that cannot be read or segmented is recorded in `failures` and skipped; the run goes on.
    A full disk stops the run: the images finished so far are kept and `write_error` says so once.
    `out_dir/nucleaizer-tf.json` records the settings, package versions and per-image facts.
    `exports` adds ROI sets, GeoJSON and measurement CSVs per image (and `summary.csv`), see
    `nucleaizer_tf.pipelines.measure.export_image`.

    `pipelined` (the default) overlaps the disk with the network: a reader thread reads the next
    images (at most `PIPELINE_DEPTH` ahead) and a writer thread writes the finished ones (at most
    `PIPELINE_DEPTH` behind) while `segment` runs on the calling thread, so a segmenter is never
    called from two threads. The outputs, the order of the run record and the handling of a bad
    image are those of the sequential loop (`pipelined=False`, one image at a time). An exception
    that ends the run (KeyboardInterrupt) still lets the images already segmented be written.

    Parameters
    ----------
    files : list of pathlib.Path
        The input images, as `collect_inputs` gives them.
    out_dir : str or os.PathLike
        The output folder (created if needed).
    segment : callable
        ``segment(image, stem) -> (labels, facts)``; always called from the calling thread.
    overlay : bool, optional
        Also write ``overlays/<stem>.png`` (default False).
    settings : dict, optional
        The applied settings for the run record; its ``model`` entry goes to the summary rows.
    progress : callable, optional
        Called with each input's `ImageOutcome` right after its outputs are written (or it failed).
    exports : ExportOptions, optional
        ROI set, GeoJSON and measurement CSV per image (default None: none).
    pipelined : bool, optional
        Overlap reading and writing with `segment` (default True).
    read : ReadOptions, optional
        How the images are read (`read_step`).

    Returns
    -------
    PredictReport
        Outputs, failures, per-image entries and the run record's path.

    Examples
    --------
    >>> report = predict_files(files, "out", segment)                   # doctest: +SKIP
    >>> same = predict_files(files, "out_seq", segment, pipelined=False)  # doctest: +SKIP
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    model_name = (settings or {}).get("model", "")

    full: list[bool] = []

    def write(work: ImageWork) -> ImageOutcome:
        if full:  # the disk filled up: the images still in flight are not written
            return ImageOutcome(work.path, error="not written: the disk is full", disk_full=True)
        outcome = write_step(work, out_dir, overlay=overlay, exports=exports, model_name=model_name)
        if outcome.disk_full:
            full.append(True)
        if progress is not None:  # right after the write (on the writer thread when pipelined), so a
            progress(outcome)  # resume journal never lags behind the files on disk
        return outcome

    outcomes: list[ImageOutcome] = []
    if not pipelined or len(files) < 2:
        for path in files:
            if full:
                break
            outcomes.append(write(segment_step(read_step(path, read), segment)))
    else:
        _pipelined_loop(files, segment, write, outcomes.append, read=read, stop=lambda: bool(full))
    return finish_run(out_dir, outcomes, settings=settings, exports=exports, planned=len(files))


def _pipelined_loop(files: list[Path], segment: SegmentFn, write: Callable[[ImageWork], ImageOutcome],
                    done: Callable[[ImageOutcome], None], depth: int = PIPELINE_DEPTH,
                    read: ReadOptions = ReadOptions(), stop: Callable[[], bool] = lambda: False) -> None:
    """read (thread) → segment (this thread) → write (thread), bounded queues, outcomes in input order."""
    from collections import deque
    from concurrent.futures import ThreadPoolExecutor

    reader = ThreadPoolExecutor(1, thread_name_prefix="nucleaizer-read")
    writer = ThreadPoolExecutor(1, thread_name_prefix="nucleaizer-write")
    upcoming = iter(files)
    reads: deque = deque(reader.submit(read_step, path, read) for _, path in zip(range(depth), upcoming))
    writes: deque = deque()
    try:
        while reads and not stop():
            work = reads.popleft().result()
            following = next(upcoming, None)
            if following is not None:
                reads.append(reader.submit(read_step, following, read))
            writes.append(writer.submit(write, segment_step(work, segment)))
            while writes and (len(writes) > depth or writes[0].done()):
                done(writes.popleft().result())
        while writes:
            done(writes.popleft().result())
    finally:
        reader.shutdown(wait=True, cancel_futures=True)
        writer.shutdown(wait=True)  # what was segmented before an interruption is still written


WORK_DIR_NAME = ".nucleaizer-work"


def run_predict(
    images: str | os.PathLike,
    out_dir: str | os.PathLike,
    *,
    model: str | os.PathLike | None = "default",
    mode: str | None = None,
    preseg_model: str | os.PathLike | None = None,
    unet: str | os.PathLike | None = None,
    work_dir: str | os.PathLike | None = None,
    keep_intermediate: bool = False,
    options: dict | None = None,
    overlay: bool = False,
    exports: ExportOptions | None = None,
    reporter: Reporter = SILENT,
    skip_existing: bool = False,
    engine: str = "local",
    workers: int | None = None,
    scheduler: str | None = None,
    read: ReadOptions = ReadOptions(),
    overwrite: bool = False,
) -> PredictReport:
    """Segment an image or a folder of images into `out_dir` with any model.

    Parameters
    ----------
    images, out_dir : str or os.PathLike
        An image file or folder (see `collect_inputs`), and the output folder.
    model, mode, preseg_model, unet : optional
        What `nucleaizer_tf.load_model` takes: "default", a model folder or a legacy `.h5`; `mode="full"`
        with the final `.h5`, `unet` (an ensemble folder) and optionally `preseg_model`.
    work_dir, keep_intermediate : optional
        Full pipeline: where intermediate results are cached (a rerun resumes from them); by default
        `out_dir/.nucleaizer-work`, removed after a run without failures unless `keep_intermediate`.
    options : dict, optional
        The model's options (`segment(image, **options)`); an option the model does not take, or a
        nonsensical value, raises `NucleaizerError` before any model is loaded.
    overlay : bool, optional
        Also write an outline overlay per image, `out_dir/overlays/<stem>.png` (default False).
    exports : ExportOptions, optional
        ROI sets, GeoJSON and measurement CSVs per image (`pipelines.measure.ExportOptions`).
    reporter : Reporter, optional
        Progress (`nucleaizer_tf.progress.Reporter`): one stage, "segmenting", a step per image.
    skip_existing : bool, optional
        Resume: an image whose outputs an earlier run into `out_dir` finished with the same settings,
        model and input is not recomputed; its old record entry is kept (`pipelines.resume`).
    engine, workers, scheduler
        ``"local"``: this process (reading and writing overlapped with the network). ``"dask"``: the
        images are read, segmented and written on the workers of a Dask cluster, `workers` local
        processes started for the run or the running cluster at `scheduler`
        (`pipelines.dask_engine`); the same files, run record and resume journal. The full pipeline
        runs locally only.
    read : ReadOptions, optional
        How images are read: images with more than `read.max_pixels` pixels are refused from their
        header, each as its own failure (default `nucleaizer_tf.io.read.MAX_PIXELS`; None: no limit;
        ``predict --large`` takes bigger ones); `read.channel` picks one channel of multi-channel images.
    overwrite : bool, optional
        Replace output files that no run of this tool into `out_dir` wrote (default False: such an
        image fails with one line naming the file, and the other images are segmented).

    Returns
    -------
    PredictReport
        Outputs, failures, per-image facts and the run record's path.

    Raises
    ------
    NucleaizerError
        Before anything slow: bad inputs (see `collect_inputs`), a missing `preseg_model` or `unet`, an
        option the model does not take or a bad value, `work_dir`/`keep_intermediate` without the full
        pipeline, an output or work folder that cannot be written; then any error of `load_model`.
        A bad image does not raise: it is listed in the report's `failures`.

    Examples
    --------
    >>> report = run_predict("images/", "out/", options={"nucleus_size": 25})  # doctest: +SKIP
    >>> len(report.outputs), report.failures                                   # doctest: +SKIP
    (12, [])
    >>> report = run_predict("images/", "out/", skip_existing=True)           # doctest: +SKIP
    >>> report.skipped                                                         # doctest: +SKIP
    12
    """
    from nucleaizer_tf.models.full import FullSegmenter
    from nucleaizer_tf.models.load import load_model, segmenter_class

    options = dict(options or {})
    if exports is not None and exports.probabilities:  # the model hands its class map over with the labels
        options["save_probabilities"] = True
    started = time.time()
    files = collect_inputs(images, out_dir)
    for path, what in ((preseg_model, "weight file"), (unet, "U-Net ensemble folder")):
        if path is not None and not Path(path).exists():
            raise NucleaizerError(f"{path}: no such {what}")
    kind = segmenter_class(model, mode)
    kind.resolve_options(options)  # refuse inapplicable options before a slow load
    full = kind is FullSegmenter
    if engine not in ("local", "dask"):
        raise NucleaizerError(f"--engine {engine!r}: must be local or dask")
    if engine == "dask" and full:
        raise NucleaizerError("--engine dask runs the one-pass models; the full pipeline (--mode full) runs locally")
    if engine != "dask" and (workers is not None or scheduler is not None):
        raise NucleaizerError("--workers and --scheduler apply to --engine dask only")
    if (keep_intermediate or work_dir is not None) and not full:
        raise NucleaizerError("--work-dir and --keep-intermediate apply to the full pipeline only (--mode full)")
    if read.planes == "each":  # a label stack out; these files are per 2-D image
        flat = [flag for flag, on in (("--overlay", overlay), ("--save-geojson", exports and exports.geojson),
                                      ("--save-probabilities", exports and exports.probabilities)) if on]
        if flat:
            raise NucleaizerError(f"{', '.join(flat)} do(es) not apply to --planes each (the label stack opens as an "
                                  "overlay in Fiji and napari; QuPath detections are 2-D)")
    out_dir = Path(out_dir)
    check_writable_folder(out_dir)  # before any slow load: a read-only or full disk fails now, in one line
    default_work = full and work_dir is None
    work = out_dir / WORK_DIR_NAME if default_work else work_dir
    if full:
        check_writable_folder(work, "work folder")
    with reporter.stage("loading the model"):  # a status line on a terminal: the load takes seconds
        segmenter = load_model(model, mode=mode, preseg_model=preseg_model, unet=unet, work_dir=work if full else None)
        resolved = segmenter.prepare(**options)
    settings = {"mode": "full" if full else "fast", **segmenter.describe(), **segmenter.record_settings(resolved),
                **({} if read.channel is None else {"channel": read.channel}),
                **({} if read.planes is None else {"planes": read.planes})}

    # Temporaries a killed run left behind (named by atomic_path, older than this run) go first.
    for folder in (out_dir, *(out_dir / sub for sub in ("overlays", "rois", "geojson", "measurements", "probabilities"))):
        remove_stale_temporaries(folder, before=started)
    if full:
        remove_stale_temporaries(work, before=started, recursive=True)

    journal = RunJournal(out_dir, fingerprint({"settings": settings, "overlay": overlay,
                                               "exports": None if exports is None else vars(exports)}))
    reused = {}
    if skip_existing:
        for path in files:
            entry = journal.finished(path, overlay=overlay, exports=exports)
            if entry is not None:
                reused[path] = entry
    blocked = {}  # outputs that would replace a file no run of this tool wrote
    if not overwrite:
        for path in files:
            if path not in reused:
                foreign = journal.foreign_output(path.stem, output_files(out_dir, path.stem, overlay=overlay,
                                                                         exports=exports))
                if foreign is not None:
                    blocked[path] = (f"{foreign}: exists and was not written by nucleaizer-tf; not replaced "
                                     "(--overwrite replaces it)")
    todo = [path for path in files if path not in reused and path not in blocked]

    def segment(image, stem):
        return segmenter.segment_with_facts(image, name=stem, **options)

    def finished(outcome: ImageOutcome):
        advance(outcome.path.name)
        if outcome.error is None:  # its files are written: a rerun with --skip-existing keeps them
            journal.add(outcome.path, outcome.record,
                        output_files(out_dir, outcome.path.stem, overlay=overlay, exports=exports))

    with reporter.stage("segmenting", len(files)) as advance:
        for _ in reused:
            advance(None)
        if engine == "dask":
            from nucleaizer_tf.pipelines.dask_engine import ModelRequest

            request = ModelRequest(*(None if v is None else str(v) for v in (model, mode, preseg_model, unet)),
                                   options=options)
            report = _predict_on_dask(todo, out_dir, request, settings=settings, overlay=overlay, exports=exports,
                                      workers=workers, scheduler=scheduler, done=finished, read=read)
        else:
            report = predict_files(todo, out_dir, segment, overlay=overlay, settings=settings, progress=finished,
                                   exports=exports, read=read)
    rows = _summary_rows(out_dir) if exports is not None and exports.csv else {}
    if reused or blocked:
        report = _merge_reused(out_dir, files, reused, report, journal, rows, settings, exports, blocked)
    journal.compact(report.images, rows)
    if full:
        segmenter.write_scale_tables()
        if default_work and not keep_intermediate and not report.failures:
            shutil.rmtree(work, ignore_errors=True)
    return report


def _predict_on_dask(files, out_dir, request, *, settings, overlay, exports, workers, scheduler, done, read):
    """`predict_files` with the images segmented on a Dask cluster (`pipelines.dask_engine`)."""
    from nucleaizer_tf.pipelines.dask_engine import dask_client, run_on_dask

    out_dir.mkdir(parents=True, exist_ok=True)
    outcomes = []
    if files:
        with dask_client(workers=workers, scheduler=scheduler) as client:
            outcomes = run_on_dask(files, out_dir, request, client=client, overlay=overlay, exports=exports,
                                   model_name=settings.get("model", ""), done=done, read=read)
    return finish_run(out_dir, outcomes, settings=settings, exports=exports)


def _summary_rows(out_dir: Path) -> dict[str, dict]:
    """The rows of `out_dir/summary.csv` by label stem (as written: strings)."""
    import csv

    try:
        with open(out_dir / SUMMARY_NAME, newline="", encoding="utf-8") as fh:
            return {Path(row["labels"]).stem: row for row in csv.DictReader(fh) if row.get("labels")}
    except (OSError, KeyError, ValueError, csv.Error):  # a damaged summary only means no rows to reuse
        return {}


def _merge_reused(out_dir, files, reused, report, journal, rows, settings, exports, blocked) -> PredictReport:
    """One report and run record: the reused entries, the new ones and the refused, in input order."""
    new = {Path(entry["image"]): entry for entry in report.images}
    failed = {**dict(report.failures), **blocked}
    outcomes = []
    for path in files:
        if path in reused:
            row = journal.summary_row(path.stem)
            if row is not None:
                row = {**row, "image": str(path), "labels": reused[path]["labels"]}
                rows[path.stem] = row
            outcomes.append(ImageOutcome(path, record=reused[path], summary_row=row))
        elif path in failed:
            outcomes.append(ImageOutcome(path, error=failed[path]))
        elif path in new:
            outcomes.append(ImageOutcome(path, record=new[path], summary_row=rows.get(path.stem)))
    merged = finish_run(out_dir, outcomes, settings=settings, exports=exports)
    merged.skipped = len(reused)
    merged.write_error = merged.write_error or report.write_error
    return merged
