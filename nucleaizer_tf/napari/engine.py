"""The plugin's models run in a separate Python process, never in the viewer's.

Why: TensorFlow loaded into a process whose OpenGL driver has already loaded LLVM (Mesa's software and
AMD drivers do, and napari's canvas loads the driver at start) crashes that process; a child process
started fresh (``spawn``) has no OpenGL. It also means Cancel really stops the work and a model's
memory is not the viewer's. The child loads each model once and keeps it for the next call.

The parent side is `Engine`: ``engine.call(task, progress, cancelled, **arguments)`` runs one task in
the child and returns its value, forwarding progress steps and raising `Cancelled` when asked.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import queue
import sys
import threading
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from typing import Any

from nucleaizer_tf.errors import NucleaizerError, one_line
from nucleaizer_tf.progress import Reporter


class Cancelled(Exception):
    """Raised where a job stops because Cancel was pressed."""


@dataclass(frozen=True)
class Outcome:
    """How a job ended: its value, or the one-line message of its error, or that it was cancelled.

    Attributes
    ----------
    value : Any
        What the job returned (None unless it succeeded).
    error : str or None
        The error's one-line message (`nucleaizer_tf.errors.one_line`); None when it succeeded.
    cancelled : bool
        True when the job stopped because Cancel was pressed.

    Examples
    --------
    >>> Outcome(value=3).ok
    True
    >>> Outcome(error="a.h5: not an HDF5 file").ok
    False
    """

    value: Any = None
    error: str | None = None
    cancelled: bool = False

    @property
    def ok(self) -> bool:
        """True when the job returned normally.

        Returns
        -------
        bool
            Neither an error nor cancelled.

        Examples
        --------
        >>> Outcome(cancelled=True).ok
        False
        """
        return self.error is None and not self.cancelled


def outcome_of(work: Callable[[], Any]) -> Outcome:
    """Run ``work()`` and describe how it ended; never raises an `Exception`.

    Parameters
    ----------
    work : callable
        The job, with no argument.

    Returns
    -------
    Outcome
        Its value; or ``cancelled=True`` for `Cancelled`; or the one-line message of any other error.

    Examples
    --------
    >>> outcome_of(lambda: 1 / 0).error
    'division by zero'
    >>> outcome_of(lambda: 42).value
    42
    """
    try:
        return Outcome(value=work())
    except Cancelled:
        return Outcome(cancelled=True)
    except Exception as exc:  # every error becomes one line for a notification; never a traceback dialog
        return Outcome(error=one_line(exc))


# ---------------------------------------------------------------------------------------------- child side
_PROGRESS = None  # the child's end of the progress queue
_CANCEL = None  # set by the parent to stop the running task at its next step


def _child_init(progress, cancel) -> None:
    global _PROGRESS, _CANCEL
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    _PROGRESS, _CANCEL = progress, cancel


class _ChildReporter(Reporter):
    def stage(self, name: str, total: int | None = None):
        @contextlib.contextmanager
        def opened():
            if _CANCEL.is_set():
                raise Cancelled("cancelled")
            done = 0
            _PROGRESS.put((name, done, total))

            def advance(label=None):
                nonlocal done
                done += 1
                _PROGRESS.put((name, done, total))
                if _CANCEL.is_set():
                    raise Cancelled("cancelled")

            yield advance

        return opened()


def _model(source: str):
    from nucleaizer_tf.models.cache import cached_model

    return cached_model(source)  # a model adapted again into the same folder is loaded again


def _segment(source: str, image, options: dict):
    return _model(source).segment(image, reporter=_ChildReporter(), **options)


def _adapt(out_dir: str, settings: dict, images: dict | None = None, folder: str | None = None):
    from nucleaizer_tf.pipelines.adapt import adapt, adapt_arrays

    if images is not None:
        report = adapt_arrays(images, out_dir, reporter=_ChildReporter(), **settings)
    else:
        report = adapt(folder, out_dir, reporter=_ChildReporter(), **settings)
    adapted = str(report.summary.get("adapted_model", os.path.join(out_dir, "model")))
    return {"adapted_model": adapted, "report": os.path.join(out_dir, "report.md"),
            "scores": report.summary.get("scores")}


TASKS = {"segment": _segment, "adapt": _adapt}


def _run_task(task: str, arguments: dict) -> Outcome:
    """Runs in the child: the task's `Outcome` (picklable); never raises."""
    return outcome_of(lambda: TASKS[task](**arguments))


# --------------------------------------------------------------------------------------------- parent side
class Engine:
    """One child process that runs the plugin's model work, started at the first call.

    The constructor takes no arguments. Tasks: ``"segment"`` (``source``, ``image``, ``options``: the
    labels of `Segmenter.segment`) and ``"adapt"`` (``out_dir``, ``settings`` and ``images`` or ``folder``: a
    dict with the adapted model's folder, the report's path and the scores).

    Attributes
    ----------
    tasks : tuple of str
        The task names `call` takes.

    Examples
    --------
    >>> engine = Engine()
    >>> engine.tasks
    ('segment', 'adapt')
    >>> labels = engine.call("segment", print, lambda: False, source="default", image=image,
    ...                      options={})  # doctest: +SKIP
    """

    tasks = tuple(TASKS)

    def __init__(self):
        self._lock = threading.Lock()
        self._pool: ProcessPoolExecutor | None = None
        self._progress = None
        self._cancel = None

    def _start(self) -> ProcessPoolExecutor:
        if self._pool is None:
            context = multiprocessing.get_context("spawn")
            self._progress, self._cancel = context.Queue(), context.Event()
            self._pool = ProcessPoolExecutor(1, mp_context=context, initializer=_child_init,
                                             initargs=(self._progress, self._cancel))
            _stop_when_the_viewer_quits(self)
        return self._pool

    def call(self, task: str, progress: Callable[[str, int, int | None], None], cancelled: Callable[[], bool],
             **arguments):
        """Run `task` in the child and return its value; one task at a time (later calls wait).

        Parameters
        ----------
        task : str
            One of `tasks`.
        progress : callable
            ``progress(stage, done, total)`` for each step the child reports (called on this thread).
        cancelled : callable
            Polled while the task runs; once it returns True the child stops at its next step.
        **arguments
            The task's arguments (pickled to the child).

        Returns
        -------
        object
            The task's value.

        Raises
        ------
        Cancelled
            When the task stopped because `cancelled()` became True.
        NucleaizerError
            With the child's one-line message when the task failed, or when the child process died (it
            is started again at the next call).

        Examples
        --------
        >>> Engine().call("train", print, lambda: False)
        Traceback (most recent call last):
        ...
        nucleaizer_tf.errors.NucleaizerError: unknown task 'train' (segment, adapt)
        """
        if task not in TASKS:
            raise NucleaizerError(f"unknown task {task!r} ({', '.join(TASKS)})")
        with self._lock:
            pool = self._start()
            self._cancel.clear()
            _drain(self._progress)
            try:
                with _main_module_hidden():  # the child starts here, at the pool's first task
                    future = pool.submit(_run_task, task, arguments)
                while True:
                    if cancelled():
                        self._cancel.set()
                    try:
                        progress(*self._progress.get(timeout=0.1))
                        continue
                    except queue.Empty:
                        pass
                    if future.done():
                        break
                outcome = future.result()
            except BrokenProcessPool:
                self._pool = None
                raise NucleaizerError("the model process stopped unexpectedly (out of memory?); try again") from None
            for step in _drain(self._progress):
                progress(*step)
        if outcome.cancelled:
            raise Cancelled("cancelled")
        if outcome.error is not None:
            raise NucleaizerError(outcome.error)
        return outcome.value

    def stop(self) -> None:
        """Stop the running task at its next step and let the child process end, without waiting.

        What closing the viewer does (so napari does not wait for a long adaptation to finish); the
        next `call` starts a new child.

        Examples
        --------
        >>> Engine().stop()
        """
        pool, self._pool = self._pool, None
        if pool is not None:
            self._cancel.set()
            pool.shutdown(wait=False, cancel_futures=True)

    def close(self) -> None:
        """Stop the child process (the next `call` starts a new one).

        Examples
        --------
        >>> Engine().close()
        """
        with self._lock:
            if self._pool is not None:
                self._pool.shutdown(cancel_futures=True)
                self._pool = None


def _stop_when_the_viewer_quits(engine: Engine) -> None:
    try:
        from qtpy.QtWidgets import QApplication
    except ImportError:  # no Qt: nothing to quit
        return
    app = QApplication.instance()
    if app is not None:
        app.aboutToQuit.connect(engine.stop)


@contextlib.contextmanager
def _main_module_hidden():
    """Start children without re-running the user's main script: `spawn` imports `__main__` from its
    file in the child, which for a script that opens a viewer at its top level would open a second
    viewer there. The child needs nothing from it."""
    main = sys.modules["__main__"]
    saved = {name: main.__dict__[name] for name in ("__file__", "__spec__") if name in main.__dict__}
    main.__dict__.pop("__file__", None)
    main.__spec__ = None
    try:
        yield
    finally:
        main.__dict__.pop("__spec__", None)
        main.__dict__.update(saved)


def _drain(q) -> list:
    items = []
    while True:
        try:
            items.append(q.get_nowait())
        except queue.Empty:
            return items


#: The engine every widget of this Python session shares.
ENGINE = Engine()
