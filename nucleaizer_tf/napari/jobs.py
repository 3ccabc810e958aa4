"""Long work off the viewer's thread: a worker thread runs the job (which hands the model work to the
`engine` process), its progress steps come back to the viewer's thread, Cancel stops it at its next
step, and its outcome (value, one-line error or cancelled) is delivered on the viewer's thread."""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from superqt.utils import create_worker, ensure_main_thread

from nucleaizer_tf.errors import one_line
from nucleaizer_tf.napari.engine import Cancelled


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
