"""Long work off the viewer's thread: a worker thread runs the job (which hands the model work to the
`engine` process), its progress steps come back to the viewer's thread, Cancel stops it at its next
step, and its outcome (value, one-line error or cancelled) is delivered on the viewer's thread."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from superqt.utils import create_worker, ensure_main_thread

from nucleaizer_tf.napari.engine import Outcome, outcome_of

__all__ = ["Job", "start_job"]


class Job:
    """One run of a widget: a cancel flag and progress forwarded to the viewer's thread.

    Parameters
    ----------
    show : callable
        ``show(stage, done, total)``, called on the viewer's thread for each progress step.

    Attributes
    ----------
    show : callable
        `show`, callable from any thread (it runs on the viewer's thread).

    Examples
    --------
    >>> job = Job(panel.show_step)  # doctest: +SKIP
    >>> job.cancel(); job.cancelled()  # doctest: +SKIP
    True
    """

    def __init__(self, show: Callable[[str, int, int | None], None]):
        self._cancel = threading.Event()
        self.show = ensure_main_thread(show)

    def cancel(self) -> None:
        """Ask the job to stop at its next step.

        Examples
        --------
        >>> job.cancel()  # doctest: +SKIP
        """
        self._cancel.set()

    def cancelled(self) -> bool:
        """Whether `cancel` was called (what `Engine.call` polls).

        Returns
        -------
        bool
            True after `cancel`.

        Examples
        --------
        >>> job.cancelled()  # doctest: +SKIP
        False
        """
        return self._cancel.is_set()


def start_job(work: Callable[[], Any], done: Callable[[Outcome], None]):
    """Run ``work()`` in a worker thread; call ``done(outcome)`` on the viewer's thread when it ends.

    Parameters
    ----------
    work : callable
        The job, with no argument.
    done : callable
        Receives the `Outcome` (see `outcome_of`).

    Returns
    -------
    superqt.utils.FunctionWorker
        The started worker.

    Examples
    --------
    >>> worker = start_job(lambda: ENGINE.call("segment", ...), show_result)  # doctest: +SKIP
    """
    worker = create_worker(outcome_of, work, _start_thread=False, _connect={"returned": done})
    worker.start()
    return worker
