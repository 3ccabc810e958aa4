"""The one progress protocol of every long job (predict, style transfer, adapt, training).

A job reports to a `Reporter`: `with reporter.stage(name, total) as advance:` opens a stage of `total`
steps (None = unknown) and `advance(label)` marks one done; `reporter.note(text)` passes a remark on.
The base class is silent; the command line draws one progress bar per stage
(`nucleaizer_tf.cli.common.CliReporter`), a notebook or a GUI can subclass it.

Examples
--------
>>> class Printer(Reporter):
...     def note(self, text):
...         print(text)
>>> with Printer().stage("segmenting", 3) as advance:
...     for name in ("a", "b", "c"):
...         advance(name)
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator


class Reporter:
    """Progress sink: `stage(name, total)` yields `advance(label=None)`; `note(text)`. Silent by default.

    A job calls only these two methods; a subclass overrides them to show or keep what is reported
    (`RecordingReporter`, the command line's `nucleaizer_tf.cli.common.CliReporter`). `SILENT` is the
    shared silent instance that jobs take as their default.

    Attributes
    ----------
    stage : method
        ``stage(name, total=None)``: a context manager opening a stage of `total` steps (None = unknown);
        it yields ``advance(label=None)``, to be called once per finished step.
    note : method
        ``note(text)``: passes a remark on (the base class drops it).

    Examples
    --------
    >>> reporter = Reporter()
    >>> with reporter.stage("training", total=2) as advance:
    ...     advance("epoch 1")
    ...     advance("epoch 2")
    >>> reporter.note("nothing is shown")
    """

    @contextlib.contextmanager
    def stage(self, name: str, total: int | None = None) -> Iterator[Callable]:
        """Open a stage of `total` steps; yields the function that marks one step done.

        Parameters
        ----------
        name : str
            What the stage does, e.g. ``"segmenting"``; a progress bar shows it.
        total : int, optional
            Number of steps, or None (default) when not known in advance.

        Yields
        ------
        callable
            ``advance(label=None)``: call it once per finished step, with an optional label (an image
            name, the current loss). The base class's does nothing.

        Examples
        --------
        >>> with SILENT.stage("segmenting", 1) as advance:
        ...     advance("image 1")
        """
        yield lambda label=None: None

    def note(self, text: str) -> None:
        """Pass a remark on (a skipped image, a setting in force); the base class drops it.

        Parameters
        ----------
        text : str
            The remark, one line.

        Examples
        --------
        >>> SILENT.note("skipped a.png: no nuclei")
        """
        pass


SILENT = Reporter()


class RecordingReporter(Reporter):
    """Keeps what a job reported: `stages` as (name, total), `labels` as (stage name, label), `notes`.

    For tests and for code that wants the labels afterwards. The constructor takes no arguments.

    Attributes
    ----------
    stages : list of tuple
        ``(name, total)`` of every stage opened, in order.
    labels : list of tuple
        ``(stage name, label)`` of every `advance` call, in order (label None when none was given).
    notes : list of str
        Every `note` text, in order.

    Examples
    --------
    >>> recorder = RecordingReporter()
    >>> with recorder.stage("scoring", 2) as advance:
    ...     advance("a"); advance("b")
    >>> recorder.stages, recorder.labels
    ([('scoring', 2)], [('scoring', 'a'), ('scoring', 'b')])
    """

    def __init__(self):
        self.stages: list[tuple[str, int | None]] = []
        self.labels: list[tuple[str, object]] = []
        self.notes: list[str] = []

    @contextlib.contextmanager
    def stage(self, name: str, total: int | None = None) -> Iterator[Callable]:
        """Record the stage in `stages`; its `advance(label=None)` appends ``(name, label)`` to `labels`.

        Parameters
        ----------
        name : str
            The stage's name.
        total : int, optional
            Number of steps, or None (default) when not known.

        Yields
        ------
        callable
            ``advance(label=None)``, recording each call.

        Examples
        --------
        >>> recorder = RecordingReporter()
        >>> with recorder.stage("loading") as advance:
        ...     advance()
        >>> recorder.stages, recorder.labels
        ([('loading', None)], [('loading', None)])
        """
        self.stages.append((name, total))
        yield lambda label=None: self.labels.append((name, label))

    def note(self, text: str) -> None:
        """Append `text` to `notes`.

        Parameters
        ----------
        text : str
            The remark.

        Examples
        --------
        >>> recorder = RecordingReporter()
        >>> recorder.note("2 images skipped")
        >>> recorder.notes
        ['2 images skipped']
        """
        self.notes.append(text)
