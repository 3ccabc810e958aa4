"""Run / Cancel buttons, a progress bar and a status line: what every long-running widget shows."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from magicgui.widgets import Container, Label, ProgressBar, PushButton

from nucleaizer_tf.napari.engine import Outcome
from nucleaizer_tf.napari.jobs import Job, start_job


class ProgressPanel(Container):
    """Run and Cancel buttons, a progress bar and a status line: what every long-running widget shows.

    The panel runs one job at a time (`start`): Run is disabled and Cancel enabled while it runs, the
    bar and status follow its steps, and when it ends the status says "cancelled" or "failed" before
    the widget's own handler sees the `Outcome`.

    Parameters
    ----------
    run_text : str
        The run button's text ("Segment", "Adapt").
    cancelled_text : str, optional
        The status after Cancel (default "cancelled").

    Attributes
    ----------
    run_button, cancel_button : magicgui.widgets.PushButton
        Start the job; stop it at its next step.
    bar : magicgui.widgets.ProgressBar
        Steps of the current stage (busy when their number is not known).
    status : magicgui.widgets.Label
        The current stage and step, then the result.
    worker : superqt.utils.FunctionWorker or None
        The running (or last) job's thread.

    Examples
    --------
    >>> panel = ProgressPanel("Segment")  # doctest: +SKIP
    >>> panel.show_step("segmenting", 3, None)  # doctest: +SKIP
    """

    def __init__(self, run_text: str, cancelled_text: str = "cancelled"):
        self.cancelled_text = cancelled_text
        self.worker = None
        self._job: Job | None = None
        self.run_button = PushButton(text=run_text)
        self.cancel_button = PushButton(text="Cancel", enabled=False)
        self.bar = ProgressBar(value=0, min=0, max=1, label="progress")
        self.status = Label(value="")
        buttons = Container(widgets=[self.run_button, self.cancel_button], layout="horizontal", labels=False)
        super().__init__(widgets=[buttons, self.bar, self.status], labels=False)
        self.cancel_button.clicked.connect(lambda _=None: self.cancel())

    def start(self, work: Callable[[Job], Any], done: Callable[[Outcome], None]) -> None:
        """Run ``work(job)`` in a worker thread; ``done(outcome)`` on the viewer's thread at the end.

        Parameters
        ----------
        work : callable
            The job; it receives the `Job` (for ``job.show`` and ``job.cancelled``).
        done : callable
            Receives the `Outcome` after the panel has shown how the job ended.

        Examples
        --------
        >>> panel.start(lambda job: engine.call("segment", job.show, job.cancelled, **arguments),
        ...             show_result)  # doctest: +SKIP
        """
        job = self._job = Job(self.show_step)

        def finished(outcome: Outcome) -> None:
            self.set_running(False, complete=outcome.ok)
            if outcome.cancelled:
                self.status.value = self.cancelled_text
            elif outcome.error is not None:
                self.status.value = "failed"
            done(outcome)

        self.set_running(True)
        self.status.value = "starting"
        self.worker = start_job(lambda: work(job), finished)

    def cancel(self) -> None:
        """Stop the running job at its next step (what the Cancel button does).

        Examples
        --------
        >>> panel.cancel()  # doctest: +SKIP
        """
        if self._job is not None and not self.run_button.enabled:
            self._job.cancel()
            self.status.value = "cancelling"

    def set_running(self, running: bool, complete: bool = False) -> None:
        """Enable Cancel and disable Run while a job runs, and the other way round.

        Parameters
        ----------
        running : bool
            Whether a job is running.
        complete : bool, optional
            When it stops: it finished (the bar goes full) rather than failed or was cancelled.

        Examples
        --------
        >>> panel.set_running(True)  # doctest: +SKIP
        """
        self.run_button.enabled = not running
        self.cancel_button.enabled = running
        if running:
            self.bar.max, self.bar.value = 1, 0
        else:
            self.bar.max = max(1, self.bar.max)
            self.bar.value = self.bar.max if complete else min(self.bar.value, self.bar.max)

    def show_step(self, stage: str, done: int, total: int | None) -> None:
        """Show a stage's progress: ``stage: done / total`` (a busy bar when `total` is None).

        Parameters
        ----------
        stage : str
            The stage's name.
        done : int
            Steps done.
        total : int or None
            Steps in all, or None when not known.

        Examples
        --------
        >>> panel.show_step("fine-tuning", 2, 8)  # doctest: +SKIP
        """
        if total:
            self.bar.max = total
            self.bar.value = min(done, total)
            self.status.value = f"{stage}: {done} / {total}"
        else:
            self.bar.max = 0  # busy indicator
            self.status.value = f"{stage}: {done} step{'s' if done != 1 else ''}"
