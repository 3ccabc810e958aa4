"""Resuming an interrupted `predict` run (`--skip-existing`).

Every finished image appends one line to `OUT/.nucleaizer-tf.journal.jsonl`: the fingerprint of the
run's settings (model description with its weights' checksum, resolved options, overlay and exports),
the input's size and sha256, the label file's size and sha256 and the image's run-record entry.
A line is appended as soon as the image is written, so a run stopped by Ctrl-C, a kill or a power
cut leaves a journal of what it finished; a half-written last line is ignored.

With `--skip-existing`, an image is not recomputed when its journal line has the current fingerprint,
its input is unchanged, its label file is still there with the recorded checksum and its overlay, ROI
set, GeoJSON and measurements (when asked for) are still there; its old run-record entry (and
`summary.csv` row) is reused, so the record of a resumed run equals an uninterrupted one apart from timings. A changed
setting or model changes the fingerprint, so every image is recomputed.

Examples
--------
>>> journal = RunJournal("out", fingerprint({"model": "default"}))  # doctest: +SKIP
>>> journal.finished(Path("images/a.png"), exports=None, overlay=False)  # doctest: +SKIP
{'image': 'images/a.png', 'labels': 'out/a.tiff', 'objects': 12, 'seconds': 0.41}
"""

from __future__ import annotations

import contextlib
import json
import os
import threading
from pathlib import Path

from nucleaizer_tf.io.digest import file_digest
from nucleaizer_tf.io.read import parse_json
from nucleaizer_tf.io.write import _jsonable

JOURNAL_NAME = ".nucleaizer-tf.journal.jsonl"
MAX_JOURNAL_BYTES = 1 << 30  # about two million images' lines


def _journal_line(line) -> bool:
    """Whether a parsed journal line has the fields `RunJournal` uses, of the right types."""
    return (isinstance(line, dict) and isinstance(line.get("key"), str) and isinstance(line.get("stem"), str)
            and isinstance(line.get("input_name"), str) and isinstance(line.get("entry"), dict)
            and isinstance(line.get("summary_row"), (dict, type(None))))

__all__ = ["JOURNAL_NAME", "RunJournal", "output_files"]


def output_files(out_dir: Path, stem: str, *, overlay: bool, exports) -> list[Path]:
    """Every file `process_image` writes for `stem` with these options (the label image first).

    Parameters
    ----------
    out_dir : pathlib.Path
        The run's output folder.
    stem : str
        The input image's file stem.
    overlay : bool
        Whether an outline overlay is written (``overlays/<stem>.png``).
    exports : ExportOptions or None
        The per-image exports asked for: ``rois/<stem>.zip``, ``geojson/<stem>.geojson``,
        ``measurements/<stem>.csv``, ``probabilities/<stem>.tiff``; None = none.

    Returns
    -------
    list of pathlib.Path
        ``<out_dir>/<stem>.tiff``, then the overlay and export files asked for.

    Examples
    --------
    >>> from pathlib import Path
    >>> [str(p) for p in output_files(Path("out"), "a", overlay=True, exports=None)]
    ['out/a.tiff', 'out/overlays/a.png']
    """
    files = [out_dir / f"{stem}.tiff"]
    if overlay:
        files.append(out_dir / "overlays" / f"{stem}.png")
    if exports is not None:
        if exports.rois:
            files.append(out_dir / "rois" / f"{stem}.zip")
        if exports.geojson:
            files.append(out_dir / "geojson" / f"{stem}.geojson")
        if exports.csv:
            files.append(out_dir / "measurements" / f"{stem}.csv")
        if exports.probabilities:
            files.append(out_dir / "probabilities" / f"{stem}.tiff")
    return files


class RunJournal:
    """The finished images of the runs into `out_dir` made with the settings `key` (a fingerprint).

    The journal is ``<out_dir>/.nucleaizer-tf.journal.jsonl`` (`JOURNAL_NAME`), one JSON line per
    finished image. Opening it reads the lines with this `key` (the latest per stem) for resuming, and
    the digests of every file any run wrote, whatever its settings (`written`), so a run never replaces
    a file this tool did not write (`foreign_output`). A half-written last line is ignored; a journal
    that cannot be read is an empty one.

    Parameters
    ----------
    out_dir : str or os.PathLike
        The run's output folder.
    key : str
        The fingerprint of the run's settings (model description with its weights' checksum, resolved
        options, overlay and exports), see `fingerprint`.

    Attributes
    ----------
    out_dir : pathlib.Path
        The output folder.
    path : pathlib.Path
        The journal file.
    key : str
        The settings fingerprint.
    lines : dict of str to dict
        The latest journal line with this key, by image stem.
    written : dict of str to dict
        By image stem, the latest digest of every output file written for it (``labels`` and the
        paths of the other outputs relative to `out_dir`), over all lines.

    Examples
    --------
    >>> journal = RunJournal("out", fingerprint({"model": "default"}))          # doctest: +SKIP
    >>> journal.finished(Path("images/a.png"), overlay=False, exports=None)     # doctest: +SKIP
    {'image': 'images/a.png', 'labels': 'out/a.tiff', 'objects': 12, 'seconds': 0.41}
    """

    def __init__(self, out_dir: str | os.PathLike, key: str):
        self.out_dir = Path(out_dir)
        self.path = self.out_dir / JOURNAL_NAME
        self.key = key
        self._lock = threading.Lock()
        self.lines: dict[str, dict] = {}  # stem -> the latest line with this key
        self.written: dict[str, dict] = {}  # stem -> {output name: its latest digest}, any key
        with contextlib.suppress(OSError, UnicodeDecodeError):
            if self.path.stat().st_size > MAX_JOURNAL_BYTES:
                return  # not a journal this tool wrote: everything is recomputed
            for text in self.path.read_text(encoding="utf-8").splitlines():
                try:
                    line = parse_json(text)
                except (ValueError, RecursionError):
                    continue  # the half-written last line of a killed run, or a damaged one
                if _journal_line(line):
                    self._remember(line)
                    if line["key"] == key:
                        self.lines[line["stem"]] = line

    def _remember(self, line: dict) -> None:
        """Fold a line's output digests into `written` (later lines win)."""
        outputs = line.get("outputs") if isinstance(line.get("outputs"), dict) else {}
        self.written.setdefault(line["stem"], {}).update({"labels": line.get("labels"), **outputs})

    def finished(self, image: Path, *, overlay: bool, exports) -> dict | None:
        """The old run-record entry of `image` if it need not be recomputed, else None.

        An image need not be recomputed when its journal line has this key and the same input file
        name, the input's size and sha256 are unchanged, its label file has the recorded size and sha256,
        the other outputs asked for exist and, with measurements, a summary row was recorded.

        Parameters
        ----------
        image : pathlib.Path
            The input image.
        overlay : bool
            Whether this run writes overlays.
        exports : ExportOptions or None
            The exports this run writes.

        Returns
        -------
        dict or None
            The recorded entry with ``image`` and ``labels`` set to this run's paths, or None.

        Examples
        --------
        >>> journal.finished(Path("images/a.png"), overlay=True, exports=None) is None  # doctest: +SKIP
        False
        """
        stem = image.stem
        line = self.lines.get(stem)
        if line is None or line.get("input_name") != image.name:
            return None
        if exports is not None and exports.csv and line.get("summary_row") is None:
            return None
        try:
            if file_digest(image) != line.get("input"):
                return None
            files = output_files(self.out_dir, stem, overlay=overlay, exports=exports)
            if file_digest(files[0]) != line.get("labels"):
                return None
            if not all(path.is_file() for path in files[1:]):
                return None
        except OSError:
            return None
        return {**line["entry"], "image": str(image), "labels": str(self.out_dir / f"{stem}.tiff")}

    def foreign_output(self, stem: str, files: list[Path]) -> Path | None:
        """The first of `files` (`output_files` of `stem`, label image first) that exists and that no run
        of this tool into this folder wrote, or None: what a run must not replace unasked.

        A file counts as this tool's when a journal line (under any settings) recorded it as written
        for `stem` — it is then replaced even if it changed since, as a damaged output is — or, for the
        label image, when it is a label TIFF this package wrote (a run killed between writing it and
        journaling it). A symbolic link is never replaced.

        Parameters
        ----------
        stem : str
            The input image's file stem.
        files : list of pathlib.Path
            The files a run would write for it, the label image first.

        Returns
        -------
        pathlib.Path or None
            The file that would be replaced although this tool did not write it.

        Examples
        --------
        >>> journal.foreign_output("a", output_files(Path("out"), "a", overlay=False, exports=None))  # doctest: +SKIP
        PosixPath('out/a.tiff')
        """
        from nucleaizer_tf.io.write import is_own_label_file

        recorded = self.written.get(stem, {})
        for number, path in enumerate(files):
            if not (path.exists() or path.is_symlink()):
                continue
            name = "labels" if number == 0 else path.relative_to(self.out_dir).as_posix()
            ours = recorded.get(name) is not None or (number == 0 and is_own_label_file(path))
            if path.is_symlink() or not ours:
                return path
        return None

    def _outputs(self, stem: str) -> dict:
        return {name: digest for name, digest in self.written.get(stem, {}).items() if name != "labels"}

    def summary_row(self, stem: str) -> dict | None:
        """The `summary.csv` row recorded for `stem` (see `compact`), or None.

        Parameters
        ----------
        stem : str
            The input image's file stem.

        Returns
        -------
        dict or None
            The row as recorded, or None when there is no line or no row for `stem`.

        Examples
        --------
        >>> journal.summary_row("a")["objects"]  # doctest: +SKIP
        '12'
        """
        line = self.lines.get(stem)
        return None if line is None else line.get("summary_row")

    def add(self, image: Path, entry: dict, files: list[Path] | None = None) -> None:
        """Append the line of `image`, just written; a file that cannot be read is not journaled.

        The line (key, stem, input file name, input and label file digests, the other outputs'
        digests, run-record entry) is flushed and synced at once, so a killed run leaves a journal of
        what it finished. A journal that cannot be written never fails the run.

        Parameters
        ----------
        image : pathlib.Path
            The input image; its labels are ``<out_dir>/<stem>.tiff``.
        entry : dict
            Its run-record entry.
        files : list of pathlib.Path, optional
            Everything written for it (`output_files`, label image first); the others' digests are kept.

        Examples
        --------
        >>> journal.add(Path("images/a.png"), {"image": "images/a.png", "labels": "out/a.tiff"})  # doctest: +SKIP
        """
        stem = image.stem
        try:
            line = {"key": self.key, "stem": stem, "input_name": image.name, "input": file_digest(image),
                    "labels": file_digest(self.out_dir / f"{stem}.tiff"), "entry": entry,
                    "outputs": {path.relative_to(self.out_dir).as_posix(): file_digest(path)
                                for path in (files or [])[1:]}}
        except OSError:
            return
        with self._lock:
            self.lines[stem] = line
            self._remember(line)
            with contextlib.suppress(OSError):  # the journal only saves time; never fail a run for it
                with open(self.path, "a", encoding="utf-8") as fh:
                    fh.write(json.dumps(line, default=_jsonable) + "\n")
                    fh.flush()
                    os.fsync(fh.fileno())

    def compact(self, entries: list[dict], summary_rows: dict[str, dict] | None = None) -> None:
        """Rewrite the journal (atomically): the lines of the run record's `entries`, and what earlier
        runs wrote for other images.

        Each kept line gets its entry as recorded (timings of the whole step), its summary row and every
        output digest known for its image (`written`) attached. For images outside `entries` one line
        keeps what was written for them, so their files are still known as this tool's. A journal that
        cannot be written is left as it is.

        Parameters
        ----------
        entries : list of dict
            The run record's image entries (each with its ``labels`` path).
        summary_rows : dict of str to dict, optional
            `summary.csv` rows by label stem.

        Examples
        --------
        >>> journal.compact(report.images, rows)  # doctest: +SKIP
        """
        from nucleaizer_tf.io.write import atomic_path

        with self._lock:
            kept, stems = [], set()
            for entry in entries:
                stem = Path(entry["labels"]).stem
                if stem in self.lines:
                    line = {**self.lines[stem], "entry": entry, "outputs": self._outputs(stem)}
                    if summary_rows and stem in summary_rows:
                        line["summary_row"] = summary_rows[stem]
                    kept.append(line)
                    stems.add(stem)
            for stem, written in self.written.items():  # provenance only: never matches a run's key
                if stem not in stems:
                    kept.append({"key": "", "stem": stem, "input_name": "", "labels": written.get("labels"),
                                 "entry": {}, "outputs": self._outputs(stem)})
            with contextlib.suppress(OSError):
                with atomic_path(self.path) as tmp:
                    tmp.write_text("".join(json.dumps(line, default=_jsonable) + "\n" for line in kept), encoding="utf-8")
