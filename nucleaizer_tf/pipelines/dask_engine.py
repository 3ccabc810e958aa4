"""`predict --engine dask`: the per-image work of the local engine, run on the workers of a Dask cluster.

Each image is one task: the worker reads it, segments it and writes its outputs (atomically) with
`pipelines.image_step.process_image`, exactly the code the local engine runs, so the files are the same
bytes. Every worker process loads the model once, at its first task, and keeps it (`worker_segmenter`);
the client only submits tasks, follows them (the progress bar, the resume journal) and writes the run
record, in input order, as the local engine does.

The cluster is either started and stopped here (`LocalCluster`: `workers` processes with one task
thread each, TensorFlow's threads shared out between them) or an existing one given by its scheduler
address (e.g. started with dask-jobqueue on SLURM, or `dask scheduler` / `dask worker` on several
machines, all seeing the input and output folders at the same paths).

A failing image is that image's failure (its one-line error in the run record), never the run's. A
lost worker's tasks are run again on the others (Dask reschedules them); a task whose worker died
`retries` + 1 times is reported as failed. Tasks are submitted in a bounded window, so a run over a
million images never holds a million futures.

Examples
--------
>>> with dask_client(workers=2) as client:                                            # doctest: +SKIP
...     outcomes = run_on_dask(files, "out", ModelRequest("default"), client=client)
"""

from __future__ import annotations

import contextlib
import itertools
import json
import logging
import os
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

from nucleaizer_tf.errors import NucleaizerError
from nucleaizer_tf.extras import missing_extra_message
from nucleaizer_tf.io.read import ReadOptions

__all__ = ["ModelRequest", "dask_client", "run_on_dask", "segment_image_task", "worker_segmenter"]

#: tasks in flight per worker thread: enough to keep every worker busy, few enough to stay light
WINDOW_PER_THREAD = 4


@dataclass(frozen=True)
class ModelRequest:
    """What a worker needs to load the model itself: the arguments of `load_model` and the options.

    Parameters
    ----------
    model, mode, preseg_model, unet
        As `nucleaizer_tf.load_model` takes them (paths as strings: workers may be other machines).
    options
        The resolved options every image is segmented with (`segment_with_facts(image, **options)`).

    Examples
    --------
    >>> ModelRequest("default", options={"tta": True}).key()
    '{"mode": null, "model": "default", "options": {"tta": true}, "preseg_model": null, "unet": null}'
    """

    model: str | None = "default"
    mode: str | None = None
    preseg_model: str | None = None
    unet: str | None = None
    options: dict = field(default_factory=dict)

    def key(self) -> str:
        """The request as a canonical JSON string (the worker's cache key)."""
        return json.dumps(asdict(self), sort_keys=True, default=str)


def worker_segmenter(request: ModelRequest):
    """The segmenter of `request` in this process: loaded and prepared at the first call, then kept
    (`nucleaizer_tf.models.cache.cached_model`, the process's one model cache).

    Parameters
    ----------
    request
        The model to load.

    Returns
    -------
    Segmenter
        The same object for every call with an equal request.

    Examples
    --------
    >>> segmenter = worker_segmenter(ModelRequest("default"))  # doctest: +SKIP
    >>> segmenter is worker_segmenter(ModelRequest("default"))  # doctest: +SKIP
    True
    """
    from nucleaizer_tf.models.cache import cached_model

    return cached_model(request.model, mode=request.mode, preseg_model=request.preseg_model, unet=request.unet,
                        options=request.options)


def segment_image_task(path: str | os.PathLike, out_dir: str | os.PathLike, request: ModelRequest, *,
                       overlay: bool = False, exports=None, model_name: str = "", read: ReadOptions = ReadOptions()):
    """One image on a worker: read, segment with the worker's model, write (`process_image`).

    Parameters
    ----------
    path, out_dir
        The input image and the output folder (as the worker sees them).
    request
        The model and options (`worker_segmenter` loads it once per worker).
    overlay, exports, model_name, read
        As for `pipelines.image_step.process_image`.

    Returns
    -------
    ImageOutcome
        The image's run-record entry and summary row, or its one-line error.

    Examples
    --------
    >>> outcome = segment_image_task("images/a.png", "out", ModelRequest("default"))  # doctest: +SKIP
    >>> outcome.record["objects"]                                                      # doctest: +SKIP
    42
    """
    from nucleaizer_tf.pipelines.image_step import ImageOutcome, error_message, process_image

    try:
        segmenter = worker_segmenter(request)
    except Exception as exc:  # a model that does not load on this worker fails its images, not the run
        return ImageOutcome(Path(path), error=f"cannot load the model on the worker: {error_message(exc)}")

    def segment(image, stem):
        return segmenter.segment_with_facts(image, name=stem, **request.options)

    return process_image(Path(path), Path(out_dir), segment, overlay=overlay, exports=exports,
                         model_name=model_name, read=read)


@contextlib.contextmanager
def dask_client(*, workers: int | None = None, scheduler: str | None = None) -> Iterator:
    """A `distributed.Client`: of an existing cluster (`scheduler` address) or of a local one made here.

    Parameters
    ----------
    workers
        Local cluster: worker processes (default: one per two cores), each with one task thread and
        an equal share of the cores for TensorFlow. Ignored with `scheduler`.
    scheduler
        Address of a running scheduler, e.g. ``"tcp://10.0.0.5:8786"``.

    Yields
    ------
    distributed.Client
        Closed (and the local cluster stopped) when the block ends.

    Examples
    --------
    >>> with dask_client(workers=2) as client:  # doctest: +SKIP
    ...     print(len(client.scheduler_info()["workers"]))
    2
    """
    try:
        from distributed import Client, LocalCluster
    except ModuleNotFoundError as exc:
        raise NucleaizerError(f"--engine dask: {missing_extra_message(exc)}") from None
    if scheduler is not None:
        try:
            client = Client(scheduler, timeout="20s")
        except OSError as exc:
            raise NucleaizerError(f"cannot reach the Dask scheduler {scheduler}: {exc}") from None
        try:
            yield client
        finally:
            client.close()
        return
    if workers is not None and workers < 1:  # checked before the default: 0 must not mean "the default"
        raise NucleaizerError(f"--workers {workers}: must be at least 1")
    cores = os.cpu_count() or 1
    workers = workers or max(1, cores // 2)
    share = str(max(1, cores // workers))
    # TensorFlow's C++ start-up chatter (CUDA probing on a machine without a GPU) would reach the user's
    # terminal from every worker; Python exceptions still come back with the tasks
    env = {"TF_NUM_INTRAOP_THREADS": share, "TF_NUM_INTEROP_THREADS": "1", "OMP_NUM_THREADS": share,
           "TF_CPP_MIN_LOG_LEVEL": "3"}
    with LocalCluster(n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=None,
                      env=env, silence_logs=logging.ERROR) as cluster, Client(cluster) as client:
        yield client


def run_on_dask(files: Sequence[Path], out_dir: str | os.PathLike, request: ModelRequest, *, client,
                overlay: bool = False, exports=None, model_name: str = "", retries: int = 2,
                done: Callable | None = None, read: ReadOptions = ReadOptions()) -> list:
    """Segment `files` on the cluster of `client`; outcomes in input order.

    Parameters
    ----------
    files, out_dir
        The input images and the output folder (paths the workers can reach).
    request
        The model and options.
    client
        A `distributed.Client` (`dask_client`).
    overlay, exports, model_name, read
        As for `pipelines.image_step.process_image`.
    retries
        Extra attempts of a task whose worker raised or died.
    done
        Called on the client with each `ImageOutcome` as it arrives (the progress bar, the journal).

    Returns
    -------
    list of ImageOutcome
        One per file, in the order of `files`.

    Examples
    --------
    >>> with dask_client(workers=2) as client:                                          # doctest: +SKIP
    ...     outcomes = run_on_dask(files, "out", ModelRequest("default"), client=client)
    >>> [o.error for o in outcomes if o.error]                                          # doctest: +SKIP
    []
    """
    from distributed import as_completed

    from nucleaizer_tf.pipelines.image_step import ImageOutcome, error_message

    files = [Path(p) for p in files]
    threads = sum(client.nthreads().values()) or 1
    window = max(8, WINDOW_PER_THREAD * threads)
    pending = iter(enumerate(files))
    outcomes: dict[int, object] = {}
    where: dict = {}

    def submit(index: int, path: Path):
        future = client.submit(segment_image_task, str(path), str(out_dir), request, overlay=overlay,
                               exports=exports, model_name=model_name, read=read,
                               retries=retries, pure=False,
                               key=f"nucleaizer-{index}-{path.name}")
        where[future.key] = (index, path)
        return future

    queue = as_completed([submit(i, p) for i, p in itertools.islice(pending, window)])
    for future in queue:
        index, path = where.pop(future.key)
        try:
            outcome = future.result()
        except Exception as exc:  # the worker died too often, or the task could not run at all
            outcome = ImageOutcome(path, error=f"failed on the cluster: {error_message(exc)}")
        future.release()
        outcomes[index] = outcome
        if done is not None:
            done(outcome)
        following = next(pending, None)
        if following is not None:
            queue.add(submit(*following))
    return [outcomes[i] for i in range(len(files))]
