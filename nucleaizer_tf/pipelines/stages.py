"""The one stage cache of the resumable workflows (full prediction, style transfer, adapt).

Two pieces, both keyed by what the results depend on:

* `StageLog` — a workflow of named stages run in order. Each finished stage leaves
  `<folder>/<n>_<stage>.json` holding the fingerprint of the settings it (and every stage before it)
  depends on. A rerun skips finished stages whose fingerprint still matches and redoes the first one
  that does not, and every stage after it.
* `ItemCache` — per-item results of one stage (a label image per input image, say) in a folder whose
  `stage.json` records the settings they were made with; other settings clear the folder. Each stored
  file's size and sha256 go to `items.json` beside it; a cached file that does not match them (truncated
  by a crash, damaged, replaced) or that can no longer be read is recomputed, never trusted.

Examples
--------
>>> log = StageLog(out / "stages", ["presegment", "train"], lambda stage: {"seed": 0})  # doctest: +SKIP
>>> if not log.done("presegment"):                                                   # doctest: +SKIP
...     log.finish("presegment", seconds=3.2)
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import shutil
import time
import threading
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from nucleaizer_tf.errors import NucleaizerError


def fingerprint(payload) -> str:
    """Short sha256 of a JSON-able payload (keys sorted): equal settings, equal fingerprint."""
    return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()[:16]


class StageLog:
    """Finished-stage markers of an ordered workflow; `key(stage)` gives what that stage depends on."""

    def __init__(self, folder: str | Path, stages: Sequence[str], key: Callable[[str], object]):
        self.folder = Path(folder)
        self.stages = tuple(stages)
        self._key = key

    def fingerprint(self, stage: str) -> str:
        """Fingerprint of `stage` and of every stage before it."""
        upto = self.stages[: self.stages.index(stage) + 1]
        return fingerprint({name: self._key(name) for name in upto})

    def marker(self, stage: str) -> Path:
        return self.folder / f"{self.stages.index(stage) + 1}_{stage}.json"

    def done(self, stage: str) -> bool:
        """True when `stage` finished with the settings it would use now."""
        marker = self.marker(stage)
        if not marker.is_file():
            return False
        try:
            return json.loads(marker.read_text()).get("fingerprint") == self.fingerprint(stage)
        except (OSError, ValueError):
            return False

    def record(self, stage: str) -> dict:
        """What `finish` recorded for `stage` ({} if nothing)."""
        try:
            return json.loads(self.marker(stage).read_text())
        except (OSError, ValueError):
            return {}

    def finish(self, stage: str, seconds: float, extra: dict | None = None) -> None:
        from nucleaizer_tf.io import write_json

        write_json(self.marker(stage), {"stage": stage, "fingerprint": self.fingerprint(stage),
                                        "seconds": round(seconds, 2), **(extra or {})})

    def invalidate_from(self, stage: str) -> None:
        """Forget `stage` and every later one (they are redone)."""
        for later in self.stages[self.stages.index(stage):]:
            with contextlib.suppress(FileNotFoundError):
                self.marker(later).unlink()

    def run(self, steps: dict[str, Callable[[], dict | None]], *, upto: str | None = None,
            note: Callable[[str], None] | None = None) -> tuple[list[str], list[str]]:
        """Run the workflow (or resume it): stages already done are skipped, the first one that is not
        and every later one (up to `upto`) are run in order and recorded with the seconds they took and
        the dict their step returned. Returns (stages run, stages skipped)."""
        stages = self.stages if upto is None else self.stages[: self.stages.index(upto) + 1]
        pending = self.pending(upto)
        ran, skipped = [], []
        for stage in stages:
            if stage not in pending:
                skipped.append(stage)
                if note is not None:
                    note(f"[{stage}] already done, skipped")
                continue
            if stage == pending[0]:
                self.invalidate_from(stage)
            started = time.perf_counter()
            extra = steps[stage]()
            self.finish(stage, time.perf_counter() - started, extra)
            ran.append(stage)
        return ran, skipped

    def pending(self, upto: str | None = None) -> list[str]:
        """The stages to run now (up to `upto`): from the first one not done, in order."""
        stages = self.stages if upto is None else self.stages[: self.stages.index(upto) + 1]
        for i, stage in enumerate(stages):
            if not self.done(stage):
                return list(stages[i:])
        return []


class ItemCache:
    """Per-item results of one stage made with one set of settings (`folder` None: no cache)."""

    INDEX = "items.json"

    def __init__(self, folder: str | Path | None, key: dict):
        self.folder = None if folder is None else Path(folder)
        self._lock = threading.Lock()
        self._index: dict[str, dict] = {}
        if self.folder is None:
            return
        record = self.folder / "stage.json"
        if self.folder.exists():
            try:
                same = json.loads(record.read_text()) == key
            except (OSError, ValueError):
                same = False
            if not same:
                shutil.rmtree(self.folder)  # made with other settings or models: stale
        self.folder.mkdir(parents=True, exist_ok=True)
        if not record.exists():
            from nucleaizer_tf.io import write_json

            write_json(record, key)
        from nucleaizer_tf.io.write import remove_stale_temporaries

        # left by a kill mid-write; "older than now": this cache has written nothing yet (a long-lived
        # process, a notebook, must still clean what a killed run left after it started)
        remove_stale_temporaries(self.folder)
        try:
            index = json.loads((self.folder / self.INDEX).read_text())
            self._index = index if isinstance(index, dict) else {}
        except (OSError, ValueError):
            self._index = {}

    def intact(self, name: str) -> bool:
        """True when the cached file `name` has the size and sha256 recorded when it was stored."""
        from nucleaizer_tf.pipelines.resume import file_digest

        expected = self._index.get(name)
        if self.folder is None or not isinstance(expected, dict):
            return False
        try:
            return file_digest(self.folder / name) == expected
        except OSError:
            return False

    def _remember(self, name: str) -> None:
        from nucleaizer_tf.io import write_json
        from nucleaizer_tf.pipelines.resume import file_digest

        with self._lock:
            self._index[name] = file_digest(self.folder / name)
            write_json(self.folder / self.INDEX, self._index)

    def cached(self, name: str | None, compute: Callable[[], np.ndarray], *, labels: bool) -> np.ndarray:
        """The cached array `name` (a label TIFF when `labels`, else an image), computed and stored if
        absent or unreadable; `name` None computes without caching."""
        from nucleaizer_tf.io import read_image, read_labels, write_labels, write_rgb

        if self.folder is None or name is None:
            return compute()
        path = self.folder / name
        if path.exists() or path.is_symlink():
            if self.intact(name):
                try:
                    return read_labels(path) if labels else read_image(path)
                except NucleaizerError:
                    pass
            path.unlink()  # a damaged intermediate (truncated, a bad disk) or one without a checksum
        value = compute()
        (write_labels if labels else write_rgb)(path, value)
        self._remember(name)
        return value
