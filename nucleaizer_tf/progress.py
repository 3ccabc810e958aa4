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
    """Progress sink: `stage(name, total)` yields `advance(label=None)`; `note(text)`. Silent by default."""

    @contextlib.contextmanager
    def stage(self, name: str, total: int | None = None) -> Iterator[Callable]:
        yield lambda label=None: None

    def note(self, text: str) -> None:
        pass


SILENT = Reporter()


class RecordingReporter(Reporter):
    """Keeps what a job reported: `stages` as (name, total), `labels` as (stage name, label), `notes`.

    For tests and for code that wants the labels afterwards.

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
        self.stages.append((name, total))
        yield lambda label=None: self.labels.append((name, label))

    def note(self, text: str) -> None:
        self.notes.append(text)
