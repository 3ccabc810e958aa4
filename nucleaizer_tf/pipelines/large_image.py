"""`segment_large_image`: the default model on an image larger than memory, block by block on Dask.

1. The input (zarr, OME-Zarr, (Big)TIFF; `nucleaizer_tf.io.large_image`) is checked, and the output
   `OUT/<name>.zarr` (`nucleaizer_tf.io.label_zarr`) must be free (or an earlier result of this tool,
   with `overwrite`).
2. The global decisions are made once: the percentile stretch limits, from the same regular
   sub-grid `DefaultModel.segment` would use on the whole image (exact below 4 megapixels), and the
   scale, from `nucleus_size` or estimated as `segment` does, on the image's central 1024² window
   (other windows if it finds no nucleus), then rounded to a multiple of 1/16
   (`nucleaizer_tf.default_model.blockwise`).
3. Every block runs on a worker: read its network window, stretch, network, instance step, keep
   the nuclei anchored in its core (ids unique by construction), hand them to its neighbours through
   a scratch file; then each output block is assembled from its own and its neighbours' nuclei and
   written once. Nothing a task holds grows with the image: one network window, nine hand-over
   pieces.
4. The store is renamed into place and the report returned.

The blocks run on a `distributed` cluster (`client`, or one started with `workers` processes, or
reached at `scheduler`), else in this process on Dask's threaded scheduler.

Examples
--------
>>> report = segment_large_image("slide.ome.zarr", "out", nucleus_size=18, workers=4)  # doctest: +SKIP
>>> report.output, report.nuclei                                                        # doctest: +SKIP
(PosixPath('out/slide.zarr'), 153029)
"""

from __future__ import annotations

import math
import os
import time
import uuid
from dataclasses import asdict, dataclass, field
from fractions import Fraction
from pathlib import Path

import numpy as np

from nucleaizer_tf.default_model.blockwise import (
    BlockGrid,
    assemble_core,
    pad_to_network_window,
    segment_block,
    snap_scale,
)
from nucleaizer_tf.errors import NucleaizerError
from nucleaizer_tf.io.convert import limits_of_sample, sample_step, three_channels
from nucleaizer_tf.io.label_zarr import (
    LabelStore,
    check_label_output,
    label_output_path,
    remove_stale_label_temporaries,
)
from nucleaizer_tf.io.large_image import LargeImage, open_large_image
from nucleaizer_tf.io.model_folder import read_manifest
from nucleaizer_tf.progress import SILENT, Reporter

__all__ = ["LargeImageReport", "ModelFacts", "estimate_scale_task", "image_limits", "label_block_task",
           "model_facts", "segment_large_image", "write_block_task"]

#: the smallest block side accepted
MIN_BLOCK = 64


@dataclass(frozen=True)
class ModelFacts:
    """What the client needs of the model to plan the blocks (read from its manifest: no TensorFlow).

    Attributes
    ----------
    source
        The model folder, or None for the shipped model.
    segment_diameter, multiple, margin
        As `DefaultModel.segment_diameter` (the nucleus size segmenting brings nuclei to), `.multiple`
        (2^depth) and `.margin`.
    name
        The manifest's name.

    Examples
    --------
    >>> model_facts().multiple, model_facts().margin
    (16, 128)
    """

    source: str | None
    segment_diameter: float
    multiple: int
    margin: int
    name: str = ""


def model_facts(model: str | os.PathLike | None = None) -> ModelFacts:
    """The facts of the shipped default model (None, "default") or of a default-model folder.

    Parameters
    ----------
    model
        None or "default" for the shipped model, else a folder written by `DefaultModel.save`.

    Returns
    -------
    ModelFacts

    Examples
    --------
    >>> model_facts().segment_diameter
    24.0
    """
    from nucleaizer_tf.default_model.model import MANIFEST, segment_diameter_of, shipped_model_dirs
    from nucleaizer_tf.default_model.tiling import context_margin

    source = None if model is None or str(model) == "default" else str(model)
    if source is None:
        found = [p for p in shipped_model_dirs() if (p / MANIFEST).is_file() or p.is_file()]
        if not found:
            raise NucleaizerError("the shipped default model was not found")
        path = found[0]
    else:
        path = Path(source)
    _, manifest, _ = read_manifest(path, expect="default-model")
    depth = int(manifest["architecture"]["depth"])
    return ModelFacts(source, segment_diameter_of(manifest), 2**depth, context_margin(depth),
                      str(manifest.get("name", "")))


def _model(source: str | None):
    """The `DefaultModel` of `source` from the process's one model cache (`models.cache.cached_model`), so
    a worker that also segments whole images loads it once."""
    from nucleaizer_tf.models.cache import cached_model

    return cached_model(str(source) if source else "default", options={}).model


def image_limits(image: LargeImage) -> tuple[float, float]:
    """The stretch limits of the whole image: percentiles 1 and 99.8 of the regular sub-grid
    `DefaultModel.segment` would sample (every pixel up to 4 megapixels), read without the rest.

    Parameters
    ----------
    image
        The input.

    Returns
    -------
    (float, float)

    Examples
    --------
    >>> image_limits(open_large_image("slide.zarr"))  # doctest: +SKIP
    (3.0, 212.0)
    """
    step = sample_step(image.image_shape)
    sample = image.read(slice(None, None, step), slice(None, None, step))
    return limits_of_sample(three_channels(sample))


def _estimation_windows(shape: tuple[int, int], side: int) -> list[tuple[slice, slice]]:
    """The central `side`² window (the one `DefaultModel.estimate_scale` uses), then four more around it."""
    h, w = shape

    def at(fy, fx):
        y0, x0 = max(0, min(h - side, int(h * fy) - side // 2)), max(0, min(w - side, int(w * fx) - side // 2))
        return slice(y0, min(h, y0 + side)), slice(x0, min(w, x0 + side))

    y0, x0 = max(0, (h - side) // 2), max(0, (w - side) // 2)
    central = (slice(y0, min(h, y0 + side)), slice(x0, min(w, x0 + side)))
    others = [at(fy, fx) for fy in (0.25, 0.75) for fx in (0.25, 0.75)] if max(h, w) > 2 * side else []
    return [central] + [o for o in others if o != central]


def estimate_scale_task(image: LargeImage, limits: tuple[float, float], model: str | None = None,
                        runtime: str = "tensorflow") -> dict:
    """Estimate the scale as `DefaultModel.segment` does, on the central window (then others, while none
    finds a nucleus), at full resolution.

    Parameters
    ----------
    image, limits
        The input and its stretch limits (`image_limits`).
    model
        The model source (`ModelFacts.source`).

    Returns
    -------
    dict
        {"scale", "passes", "window"}: the estimated scale (before rounding), the estimation passes
        and the window (rows, columns as [start, stop]) they looked at.

    Examples
    --------
    >>> estimate_scale_task(open_large_image("slide.zarr"), (3.0, 212.0))["scale"]  # doctest: +SKIP
    0.9
    """
    from nucleaizer_tf.default_model.model import SAMPLE_SIDE
    from nucleaizer_tf.default_model.preprocess import stretch_rgb8_with_limits

    segmenter = _model(model).with_runtime(runtime)
    result = None
    for rows, columns in _estimation_windows(image.image_shape, SAMPLE_SIDE):
        rgb8 = stretch_rgb8_with_limits(image.read(rows, columns), limits)
        scale, passes, _ = segmenter.estimate_scale(rgb8)
        result = {"scale": float(scale), "passes": passes,
                  "window": [[rows.start, rows.stop], [columns.start, columns.stop]]}
        if passes and math.isfinite(passes[-1]["median_diameter"]):
            break
    return result


@dataclass(frozen=True)
class BlockJob:
    """Everything a block task needs (picklable; sent with every task).

    Attributes
    ----------
    image, store, grid
        The input, the output being written, the block grid.
    limits
        The stretch limits.
    model
        The model source (`ModelFacts.source`).
    tile, tta
        As for `DefaultModel.probability_map`.
    runtime
        Where the network runs ("tensorflow" or "openvino", see `nucleaizer_tf.runtime`).

    Examples
    --------
    >>> job = BlockJob(open_large_image("a.zarr"), store, grid, (3.0, 212.0))  # doctest: +SKIP
    >>> label_block_task(job, (0, 0))                                          # doctest: +SKIP
    (1203, 0)
    """

    image: LargeImage
    store: LabelStore
    grid: BlockGrid
    limits: tuple[float, float]
    model: str | None = None
    tile: int | None = 1024
    tta: bool = False
    runtime: str = "tensorflow"

    def where(self, index: tuple[int, int]) -> str:
        """The file and the block `index` covers, for error messages.

        Parameters
        ----------
        index
            (row, column) of the block.

        Returns
        -------
        str
        """
        core = self.grid.windows(*index).core
        return (f"{self.image.path}: block {index} (rows {core[0].start}:{core[0].stop}, columns "
                f"{core[1].start}:{core[1].stop})")


def label_block_task(job: BlockJob, index: tuple[int, int]) -> tuple[int, int]:
    """Stage 1 of a block: segment its network window, keep the nuclei anchored in its core and leave
    them in the scratch folder for its neighbours.

    Parameters
    ----------
    job
        The run.
    index
        (row, column) of the block.

    Returns
    -------
    (int, int)
        (nuclei kept, of which uncertain: in a foreground region wider than the overlap).

    Examples
    --------
    >>> label_block_task(job, (0, 0))  # doctest: +SKIP
    (1203, 0)
    """
    try:
        model = _model(job.model).with_runtime(job.runtime)
        windows = job.grid.windows(*index)
        pixels = pad_to_network_window(job.image.read(*windows.readable(job.grid.shape)), windows, job.grid.shape)
        kept = segment_block(model, pixels, windows, job.grid, job.limits, tile=job.tile, tta=job.tta)
        job.store.write_piece(index, kept.origin, kept.labels)
        return kept.count, kept.uncertain
    except NucleaizerError:
        raise
    except Exception as exc:
        raise NucleaizerError(f"{job.where(index)}: {type(exc).__name__}: {exc}") from exc


def write_block_task(job: BlockJob, index: tuple[int, int], *labelled) -> tuple[int, int]:
    """Stage 2 of a block: its output chunk from its own and its neighbours' kept nuclei, written once.

    Parameters
    ----------
    job
        The run.
    index
        (row, column) of the block.
    labelled
        The results of `label_block_task` for the block and its neighbours (dependencies only).

    Returns
    -------
    (int, int)
        `index`.

    Examples
    --------
    >>> write_block_task(job, (0, 0), (1203, 0), (988, 0), (1010, 0), (1100, 0))  # doctest: +SKIP
    (0, 0)
    """
    try:
        windows = job.grid.windows(*index)
        pieces = [job.store.read_piece(n) for n in job.grid.neighbours(*index)]
        job.store.write_block(windows.core, assemble_core(windows.core, pieces, job.grid.id_dtype))
        return index
    except NucleaizerError:
        raise
    except Exception as exc:
        raise NucleaizerError(f"{job.where(index)}: {type(exc).__name__}: {exc}") from exc


def _block_graph(job: BlockJob) -> tuple[dict, list, list]:
    """(graph, label keys, write keys) of the two stages over every block."""
    token = uuid.uuid4().hex[:12]
    label = {ij: (f"nucleaizer-label-{token}", *ij) for ij in job.grid.indices()}
    write = {ij: (f"nucleaizer-write-{token}", *ij) for ij in job.grid.indices()}
    graph = {}
    for ij in job.grid.indices():
        graph[label[ij]] = (label_block_task, job, ij)
        graph[write[ij]] = (write_block_task, job, ij, *[label[n] for n in job.grid.neighbours(*ij)])
    return graph, list(label.values()), list(write.values())


class _DistributedRunner:
    def __init__(self, client, retries: int = 2):
        self.client, self.retries = client, retries

    def one(self, fn, *args):
        return self.client.submit(fn, *args, pure=False, retries=self.retries).result()

    def blocks(self, job: BlockJob, advance) -> list:
        from distributed import as_completed

        graph, label_keys, write_keys = _block_graph(job)
        labelled, written = self.client.get(graph, [label_keys, write_keys], sync=False, retries=self.retries)
        try:
            for future in as_completed(written):
                index = future.result()
                advance(f"block {index}")
            return self.client.gather(labelled)
        finally:
            self.client.cancel(labelled + written)


class _ThreadedRunner:
    def __init__(self, threads: int | None):
        self.threads = threads

    def one(self, fn, *args):
        return fn(*args)

    def blocks(self, job: BlockJob, advance) -> list:
        import dask.threaded
        from dask.callbacks import Callback

        graph, label_keys, write_keys = _block_graph(job)
        writes = set(write_keys)

        def done(key, result, dsk, state, worker_id):
            if key in writes:
                advance(f"block {tuple(key[1:])}")

        with Callback(posttask=done):
            labelled, _ = dask.threaded.get(graph, [label_keys, write_keys], num_workers=self.threads)
        return list(labelled)


@dataclass
class LargeImageReport:
    """What `segment_large_image` did.

    Attributes
    ----------
    source, output
        The input and the label store written (`<name>.zarr`).
    shape
        (rows, columns) of the image.
    block, blocks
        The block side and the grid (rows, columns of blocks).
    scale
        The scale every block ran at (a multiple of 1/16).
    nucleus_size
        The nucleus diameter that scale stands for, native pixels (trained diameter / scale).
    estimated
        Whether the scale was estimated (else it came from `nucleus_size`).
    estimate
        The estimation's result (`estimate_scale_task`), or None.
    limits
        The stretch limits.
    nuclei
        Nuclei written.
    uncertain
        Nuclei in a foreground region wider than the overlap: they may differ slightly from a
        one-piece run (0 in the usual case).
    seconds
        Wall time.
    engine
        "distributed" or "threads".

    Examples
    --------
    >>> report.to_dict()["nuclei"]  # doctest: +SKIP
    153029
    """

    source: str
    output: Path
    shape: tuple[int, int]
    block: int
    blocks: tuple[int, int]
    scale: float
    nucleus_size: float
    estimated: bool
    limits: tuple[float, float]
    nuclei: int = 0
    uncertain: int = 0
    seconds: float = 0.0
    engine: str = "threads"
    estimate: dict | None = field(default=None)

    def to_dict(self) -> dict:
        """The report as plain values (the output path as a string).

        Returns
        -------
        dict
        """
        out = asdict(self)
        out["output"] = str(self.output)
        return out


def _jsonable(value):
    """`value` with tuples as lists and non-finite floats (a pass that found nothing) as None."""
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, (float, np.floating)):
        return float(value) if math.isfinite(value) else None
    if isinstance(value, np.integer):
        return int(value)
    return value


def _checked_block(block) -> int:
    if isinstance(block, bool) or not isinstance(block, (int, np.integer)) or block < MIN_BLOCK:
        raise NucleaizerError(f"block must be a whole number of pixels, at least {MIN_BLOCK}; got {block!r}")
    return int(block)


def _checked_size(nucleus_size):
    if nucleus_size is None:
        return None
    if isinstance(nucleus_size, bool) or not isinstance(nucleus_size, (int, float, np.number)) or not (
            math.isfinite(nucleus_size) and nucleus_size > 0):
        raise NucleaizerError(f"nucleus_size must be a positive number of pixels; got {nucleus_size!r}")
    return float(nucleus_size)


def segment_large_image(source: str | os.PathLike, out_dir: str | os.PathLike, *, block: int = 1024,
                        nucleus_size: float | None = None, model: str | os.PathLike | None = None,
                        channel: int | None = None, tta: bool = False, runtime: str = "auto",
                        overwrite: bool = False, client=None, workers: int | None = None, scheduler: str | None = None,
                        threads: int | None = None, reporter: Reporter = SILENT) -> LargeImageReport:
    """Segment the nuclei of an image larger than memory into `out_dir/<name>.zarr` (uint32 labels).

    Parameters
    ----------
    source
        A zarr array (2-D grey or (Y, X, C)), an OME-Zarr image (its full-resolution level) or a
        (Big)TIFF file; read window by window, never whole.
    out_dir
        Output folder; gets `<name>.zarr` (chunks = `block`; for OME-Zarr input an OME-Zarr label
        image). The input is never written to.
    block
        Side of the blocks (and of the output's chunks), native pixels.
    nucleus_size
        Typical nucleus diameter in pixels; None = estimated as `DefaultModel.segment` does. Either
        way the scale is rounded to a multiple of 1/16 (the report says which).
    model
        None / "default" for the shipped default model, or a default-model folder (fine-tuned).
    channel
        Segment only this channel (0-based) as grey; None = all (grey or RGB(A)).
    tta
        Average the network over the 8 flips / rotations (8× the time).
    runtime
        Where the network runs: "auto" (default: OpenVINO where installed), "tensorflow" or "openvino"
        (see `nucleaizer_tf.runtime`).
    overwrite
        Replace an earlier result of this tool at `<name>.zarr` (anything else there is refused).
    client
        A `distributed.Client` to run the blocks on.
    workers
        Without `client`: start a local cluster of this many single-thread worker processes.
    scheduler
        Without `client`: the address of a running Dask scheduler (workers must see `source` and
        `out_dir` at the same paths).
    threads
        With none of the three: threads of Dask's threaded scheduler in this process (default: the
        cores).
    reporter
        Progress (`nucleaizer_tf.progress.Reporter`).

    Returns
    -------
    LargeImageReport

    Raises
    ------
    NucleaizerError
        One line naming the file and the problem (unreadable or 4-D input, an output that is taken,
        a failed block).

    Examples
    --------
    >>> report = segment_large_image("slide.zarr", "out", block=1024, nucleus_size=20)  # doctest: +SKIP
    >>> import zarr
    >>> labels = zarr.open_array(report.output)                                         # doctest: +SKIP
    >>> labels.chunks                                                                   # doctest: +SKIP
    (1024, 1024)
    """
    from nucleaizer_tf.runtime import resolve_runtime

    started = time.time()
    block, nucleus_size = _checked_block(block), _checked_size(nucleus_size)
    runtime = resolve_runtime(runtime)
    image = open_large_image(source, channel=channel)
    final = label_output_path(out_dir, image.name)
    check_label_output(final, overwrite=overwrite, source=image.path)
    from nucleaizer_tf.io.write import check_writable_folder

    check_writable_folder(out_dir)
    facts = model_facts(model)
    remove_stale_label_temporaries(out_dir, image.name, before=started)

    if client is not None:
        return _run(image, final, out_dir, _DistributedRunner(client), "distributed", block, nucleus_size, facts,
                    tta, runtime, started, reporter)
    if workers is not None or scheduler is not None:
        from nucleaizer_tf.pipelines.dask_engine import dask_client

        with dask_client(workers=workers, scheduler=scheduler) as started_client:
            return _run(image, final, out_dir, _DistributedRunner(started_client), "distributed", block,
                        nucleus_size, facts, tta, runtime, started, reporter)
    return _run(image, final, out_dir, _ThreadedRunner(threads), "threads", block, nucleus_size, facts, tta, runtime,
                started, reporter)


def _run(image: LargeImage, final: Path, out_dir, runner, engine: str, block: int, nucleus_size, facts: ModelFacts,
         tta: bool, runtime: str, started: float, reporter: Reporter) -> LargeImageReport:
    with reporter.stage("reading the intensity range", 1) as advance:
        limits = image_limits(image)
        advance(image.name)
    estimate = None
    if nucleus_size is None:
        with reporter.stage("estimating the nucleus size", 1) as advance:
            estimate = runner.one(estimate_scale_task, image, limits, facts.source, runtime)
            advance(image.name)
        raw_scale = estimate["scale"]
    else:
        raw_scale = facts.segment_diameter / nucleus_size
    scale = snap_scale(raw_scale)
    grid = BlockGrid.plan(image.image_shape, block, scale, segment_diameter=facts.segment_diameter,
                          multiple=facts.multiple, margin=facts.margin)
    report = LargeImageReport(image.path, final, grid.shape, block, grid.blocks, float(scale),
                              facts.segment_diameter / float(scale), nucleus_size is None, limits,
                              engine=engine, estimate=estimate)
    reporter.note(f"{image.name}: scale {scale} (nuclei of {report.nucleus_size:.3g} px), "
                  f"{grid.blocks[0]}×{grid.blocks[1]} blocks of {block}")
    store = LabelStore.create(out_dir, image.name, grid.shape, block, dtype=grid.id_dtype, ome=image.ome)
    try:
        job = BlockJob(image, store, grid, limits, facts.source, tta=tta, runtime=runtime)
        with reporter.stage("segmenting blocks", grid.blocks[0] * grid.blocks[1]) as advance:
            labelled = runner.blocks(job, advance)
        report.nuclei = int(sum(count for count, _ in labelled))
        report.uncertain = int(sum(uncertain for _, uncertain in labelled))
        report.seconds = round(time.time() - started, 2)
        record = {**report.to_dict(), "scale_fraction": str(Fraction(scale)), "model": facts.source or "default",
                  "model_name": facts.name, "runtime": runtime,
                  "ids": "1 + the raster index (row * width + column) of each nucleus's first pixel"}
        record.pop("output")
        report.output = store.commit(_jsonable(record))
    except BaseException:
        store.discard()
        raise
    if report.uncertain:
        reporter.note(f"{image.name}: {report.uncertain} nuclei lie in clusters wider than the blocks' overlap "
                      "and may differ slightly from a one-piece run")
    return report
