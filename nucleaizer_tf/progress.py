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
