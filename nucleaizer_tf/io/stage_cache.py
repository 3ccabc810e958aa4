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
import shutil
import time
import threading
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from nucleaizer_tf.errors import NucleaizerError
from nucleaizer_tf.io.digest import file_digest, fingerprint



def _read_record(path: Path) -> dict:
    """A JSON object this module wrote, or {} when it is missing, damaged, hostile or not an object."""
    from nucleaizer_tf.io.read import MAX_JSON_BYTES, parse_json

    try:
        value = parse_json(path.read_text(encoding="utf-8")) if path.stat().st_size <= MAX_JSON_BYTES else None
    except (OSError, ValueError, RecursionError):
        return {}
    return value if isinstance(value, dict) else {}

class StageLog:
    """Finished-stage markers of an ordered workflow; `key(stage)` gives what that stage depends on.

    Each finished stage leaves ``<folder>/<n>_<stage>.json`` (n counts from 1) holding the fingerprint
    of the keys of that stage and of every stage before it, the seconds it took and what its step
    returned. A rerun skips finished stages whose fingerprint still matches and redoes the first one
    that does not, and every stage after it.

    Parameters
    ----------
    folder : str or pathlib.Path
        Where the markers are written (created on the first one).
    stages : sequence of str
        The stage names, in the order they run.
    key : callable
        ``key(stage) -> object``: the JSON-able settings `stage` depends on.

    Attributes
    ----------
    folder : pathlib.Path
        The marker folder.
    stages : tuple of str
        The stage names, in order.

    Examples
    --------
    >>> log = StageLog(out / "stages", ["presegment", "train"], lambda stage: {"seed": 0})  # doctest: +SKIP
    >>> ran, skipped = log.run({"presegment": presegment, "train": train})              # doctest: +SKIP
    >>> log.pending()                                                                   # doctest: +SKIP
    []
    """

    def __init__(self, folder: str | Path, stages: Sequence[str], key: Callable[[str], object]):
        self.folder = Path(folder)
        self.stages = tuple(stages)
        self._key = key

    def fingerprint(self, stage: str) -> str:
        """Fingerprint of `stage` and of every stage before it.

        Parameters
        ----------
        stage : str
            One of `stages`.

        Returns
        -------
        str
            `fingerprint` of ``{name: key(name)}`` for `stage` and the stages before it.

        Examples
        --------
        >>> log.fingerprint("train")  # doctest: +SKIP
        '9b1c40e2d6a7f583'
        """
        upto = self.stages[: self.stages.index(stage) + 1]
        return fingerprint({name: self._key(name) for name in upto})

    def marker(self, stage: str) -> Path:
        """The marker file of `stage`: ``<folder>/<n>_<stage>.json``, n its place in `stages` from 1.

        Parameters
        ----------
        stage : str
            One of `stages`.

        Returns
        -------
        pathlib.Path
            The marker's path (it may not exist).

        Examples
        --------
        >>> StageLog("out/stages", ["presegment", "train"], dict).marker("train")  # doctest: +SKIP
        PosixPath('out/stages/2_train.json')
        """
        return self.folder / f"{self.stages.index(stage) + 1}_{stage}.json"

    def done(self, stage: str) -> bool:
        """True when `stage` finished with the settings it would use now.

        Parameters
        ----------
        stage : str
            One of `stages`.

        Returns
        -------
        bool
            Whether its marker exists, can be read and holds the current fingerprint.

        Examples
        --------
        >>> log.done("presegment")  # doctest: +SKIP
        True
        """
        marker = self.marker(stage)
        return marker.is_file() and _read_record(marker).get("fingerprint") == self.fingerprint(stage)

    def record(self, stage: str) -> dict:
        """What `finish` recorded for `stage` ({} if nothing).

        Parameters
        ----------
        stage : str
            One of `stages`.

        Returns
        -------
        dict
            The marker's content (``stage``, ``fingerprint``, ``seconds`` and the step's own entries),
            or {} when there is no readable marker.

        Examples
        --------
        >>> log.record("train")["seconds"]  # doctest: +SKIP
        812.4
        """
        return _read_record(self.marker(stage))

    def finish(self, stage: str, seconds: float, extra: dict | None = None) -> None:
        """Write the marker of `stage` (atomically): its fingerprint, `seconds` and `extra`.

        Parameters
        ----------
        stage : str
            One of `stages`.
        seconds : float
            How long the stage took (recorded rounded to 0.01 s).
        extra : dict, optional
            More entries for the marker (what the stage's step returned).

        Examples
        --------
        >>> log.finish("presegment", seconds=3.2, extra={"images": 12})  # doctest: +SKIP
        """
        from nucleaizer_tf.io import write_json

        write_json(self.marker(stage), {"stage": stage, "fingerprint": self.fingerprint(stage),
                                        "seconds": round(seconds, 2), **(extra or {})})

    def invalidate_from(self, stage: str) -> None:
        """Forget `stage` and every later one (they are redone): their markers are removed.

        Parameters
        ----------
        stage : str
            One of `stages`.

        Examples
        --------
        >>> log.invalidate_from("train")  # doctest: +SKIP
        """
        for later in self.stages[self.stages.index(stage):]:
            with contextlib.suppress(FileNotFoundError):
                self.marker(later).unlink()

    def run(self, steps: dict[str, Callable[[], dict | None]], *, upto: str | None = None,
            note: Callable[[str], None] | None = None) -> tuple[list[str], list[str]]:
        """Run the workflow (or resume it).

        Stages already done are skipped; the first one that is not and every later one (up to `upto`)
        are run in order and recorded with the seconds they took and the dict their step returned. The
        markers of the first stage run and of every stage after it are removed before it starts, so a
        stage that fails leaves no marker claiming later stages are done.

        Parameters
        ----------
        steps : dict of str to callable
            ``steps[stage]() -> dict | None`` runs one stage; the dict (if any) goes to its marker.
        upto : str, optional
            The last stage to run (default: all of them).
        note : callable, optional
            Called with one line for each stage skipped (``"[stage] already done, skipped"``).

        Returns
        -------
        ran : list of str
            The stages run now, in order.
        skipped : list of str
            The stages that were already done.

        Examples
        --------
        >>> ran, skipped = log.run({"presegment": presegment, "train": train}, note=print)  # doctest: +SKIP
        [presegment] already done, skipped
        >>> ran, skipped                                                                   # doctest: +SKIP
        (['train'], ['presegment'])
        """
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
        """The stages to run now (up to `upto`): from the first one not done, in order.

        Parameters
        ----------
        upto : str, optional
            The last stage to consider (default: all of them).

        Returns
        -------
        list of str
            The first stage not done and every stage after it (up to `upto`); [] when all are done.

        Examples
        --------
        >>> log.pending()  # doctest: +SKIP
        ['train']
        """
        stages = self.stages if upto is None else self.stages[: self.stages.index(upto) + 1]
        for i, stage in enumerate(stages):
            if not self.done(stage):
                return list(stages[i:])
        return []


class ItemCache:
    """Per-item results of one stage made with one set of settings (`folder` None: no cache).

    The folder's `stage.json` records the settings (`key`) its files were made with; a folder made with
    other settings is cleared when the cache is opened. Each stored file's size and sha256 go to
    `items.json`; a cached file that does not match them (truncated by a crash, damaged, replaced) or
    that can no longer be read is recomputed, never trusted. Temporaries left by a killed run are
    removed when the cache is opened.

    Parameters
    ----------
    folder : str or pathlib.Path or None
        The stage's cache folder (created if needed); None computes everything and stores nothing.
    key : dict
        What the results depend on (settings, model file identities), JSON-able.

    Attributes
    ----------
    folder : pathlib.Path or None
        The cache folder.
    INDEX : str
        The name of the per-file size and sha256 index, ``"items.json"``.

    Examples
    --------
    >>> cache = ItemCache(work / "presegment", {"model": file_key(h5), "size": 1024})         # doctest: +SKIP
    >>> labels = cache.cached("a.tiff", lambda: presegment(image), labels=True)             # doctest: +SKIP
    """

    INDEX = "items.json"

    def __init__(self, folder: str | Path | None, key: dict):
        self.folder = None if folder is None else Path(folder)
        self._lock = threading.Lock()
        self._index: dict[str, dict] = {}
        if self.folder is None:
            return
        record = self.folder / "stage.json"
        if self.folder.exists():
            if _read_record(record) != key:
                shutil.rmtree(self.folder)  # made with other settings or models: stale
        self.folder.mkdir(parents=True, exist_ok=True)
        if not record.exists():
            from nucleaizer_tf.io import write_json

            write_json(record, key)
        from nucleaizer_tf.io.write import remove_stale_temporaries

        # left by a kill mid-write; "older than now": this cache has written nothing yet (a long-lived
        # process, a notebook, must still clean what a killed run left after it started)
        remove_stale_temporaries(self.folder)
        self._index = _read_record(self.folder / self.INDEX)

    def intact(self, name: str) -> bool:
        """True when the cached file `name` has the size and sha256 recorded when it was stored.

        Parameters
        ----------
        name : str
            A file name in the cache folder.

        Returns
        -------
        bool
            False as well without a cache folder, without a recorded digest or for an unreadable file.

        Examples
        --------
        >>> cache.intact("a.tiff")  # doctest: +SKIP
        True
        """

        expected = self._index.get(name)
        if self.folder is None or not isinstance(expected, dict):
            return False
        try:
            return file_digest(self.folder / name) == expected
        except OSError:
            return False

    def _remember(self, name: str) -> None:
        from nucleaizer_tf.io import write_json

        with self._lock:
            self._index[name] = file_digest(self.folder / name)
            write_json(self.folder / self.INDEX, self._index)

    def cached(self, name: str | None, compute: Callable[[], np.ndarray], *, labels: bool) -> np.ndarray:
        """The cached array `name`, computed and stored (atomically) if absent, damaged or unreadable.

        Parameters
        ----------
        name : str or None
            The file name in the cache folder (its suffix picks the format); None computes without
            caching.
        compute : callable
            ``compute() -> numpy.ndarray``, called only when the file cannot be used.
        labels : bool
            True: the array is a label image (a TIFF); False: an image (8-bit RGB or a 16-bit map, a PNG).

        Returns
        -------
        numpy.ndarray
            The cached or newly computed array.

        Examples
        --------
        >>> E = cache.cached("a.png", lambda: ensemble.predict(rgb), labels=False)  # doctest: +SKIP
        """
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
