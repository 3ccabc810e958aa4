"""The label image of a large image, written block by block into a zarr store, renamed into place when whole.

`LabelStore.create` makes the output array (uint32, chunks = the block size, fill 0) under a
temporary name beside the final one, `.<name>.zarr.XXXXXXXX.tmp`, plus a scratch folder
`.<name>.zarr.XXXXXXXX.scratch` for the nuclei blocks hand to their neighbours
(`write_piece` / `read_piece`). Workers write each output block once (`write_block`, whole chunks, so
no two writers share a chunk). `commit` records what made the labels in the store's attributes
(key `nucleaizer_tf`), renames the store to `<name>.zarr` and removes the scratch folder; an
interrupted run leaves only hidden temporaries, which the next run of the same output removes.

For an OME-Zarr input the store is an OME-Zarr label image (NGFF 0.4 on zarr format 2, or 0.5 on
zarr format 3, as the input): a group with `multiscales` (one level, "0", the input level's y/x
scale and translation) and `image-label` metadata, so napari or Fiji can open it next to the image.
Otherwise it is a plain zarr (format 3) array.

An existing `<name>.zarr` is never replaced unless it carries this tool's `nucleaizer_tf` attributes
and `overwrite` is asked for (`check_label_output`).

Examples
--------
>>> store = LabelStore.create("out", "slide", (40000, 60000), 1024)    # doctest: +SKIP
>>> store.write_block((slice(0, 1024), slice(0, 1024)), block_labels)  # doctest: +SKIP
>>> store.commit({"nuclei": 123456})                                   # doctest: +SKIP
PosixPath('out/slide.zarr')
"""

from __future__ import annotations

import contextlib
import os
import re
import secrets
import shutil
import threading
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from nucleaizer_tf.errors import NucleaizerError

__all__ = ["KIND", "MARKER", "LabelStore", "check_label_output", "label_output_path", "remove_stale_label_temporaries"]

#: the attribute key marking a store this tool wrote
MARKER = "nucleaizer_tf"
KIND = "large-image-labels"
_ARRAYS: dict[str, object] = {}
_ARRAYS_LOCK = threading.Lock()


def label_output_path(out_dir: str | os.PathLike, name: str) -> Path:
    """Where the labels of image `name` go: `out_dir/<name>.zarr`.

    Parameters
    ----------
    out_dir
        The output folder.
    name
        The input's name (`LargeImage.name`).

    Returns
    -------
    Path

    Examples
    --------
    >>> label_output_path("out", "slide")
    PosixPath('out/slide.zarr')
    """
    return Path(out_dir) / f"{name}.zarr"


def _marker(path: Path) -> dict | None:
    """This tool's attributes of an existing zarr store at `path`, or None (not ours, not zarr)."""
    import zarr

    try:
        attrs = dict(zarr.open(str(path), mode="r").attrs)
    except Exception:
        return None
    mark = attrs.get(MARKER)
    return mark if isinstance(mark, dict) and mark.get("kind") == KIND else None


def check_label_output(path: str | os.PathLike, *, overwrite: bool = False,
                       source: str | os.PathLike | None = None) -> Path:
    """Refuse an output path that is taken, unless by an earlier result of this tool and `overwrite`.

    Parameters
    ----------
    path
        The final `<name>.zarr`.
    overwrite
        Replace an earlier result of this tool (never anything else).
    source
        The input image: an output inside it, or equal to it, is refused (the input is never written).

    Returns
    -------
    Path

    Raises
    ------
    NucleaizerError
        Naming the path and why.

    Examples
    --------
    >>> check_label_output("out/slide.zarr", source="slide.zarr")  # doctest: +SKIP
    PosixPath('out/slide.zarr')
    """
    path = Path(path)
    if source is not None:
        src, out = Path(source).resolve(), path.resolve()
        if out == src or src in out.parents:
            raise NucleaizerError(f"{path}: the output would be written into the input {source}; choose another "
                                  "output folder")
    if path.exists() or path.is_symlink():
        if _marker(path) is None:
            raise NucleaizerError(f"{path}: already exists and was not written by nucleaizer-tf; refusing to "
                                  "overwrite it (choose another output folder or remove it)")
        if not overwrite:
            raise NucleaizerError(f"{path}: already exists (the labels of an earlier run); pass overwrite=True "
                                  "(--overwrite) to replace it")
    return path


def remove_stale_label_temporaries(out_dir: str | os.PathLike, name: str, *, before: float) -> list[Path]:
    """Remove the temporaries an interrupted run of output `name` left in `out_dir` (older than `before`).

    Parameters
    ----------
    out_dir, name
        Where the output `<name>.zarr` goes.
    before
        A `time.time()` value: only temporaries last modified earlier are removed (never a live run's).

    Returns
    -------
    list of Path
        The folders removed.

    Examples
    --------
    >>> remove_stale_label_temporaries("out", "slide", before=time.time())  # doctest: +SKIP
    []
    """
    pattern = re.compile(rf"^\.{re.escape(name)}\.zarr\.[0-9a-f]{{8}}\.(tmp|scratch|old)$")
    removed = []
    folder = Path(out_dir)
    if not folder.is_dir():
        return removed
    for entry in folder.iterdir():
        if pattern.match(entry.name) and entry.is_dir() and not entry.is_symlink():
            with contextlib.suppress(OSError):
                if entry.stat().st_mtime < before:
                    shutil.rmtree(entry)
                    removed.append(entry)
    return removed


def _ome_attributes(ome: dict, name: str) -> dict:
    multiscales = [{"name": name, "axes": ome["axes"],
                    "datasets": [{"path": "0", "coordinateTransformations": ome["transforms"]
                                  or [{"type": "scale", "scale": [1.0, 1.0]}]}]}]
    label = {"colors": [], "properties": []}
    if ome["version"].startswith("0.5"):
        return {"ome": {"version": ome["version"], "multiscales": multiscales, "image-label": label}}
    multiscales[0]["version"] = ome["version"]
    return {"multiscales": multiscales, "image-label": {"version": ome["version"], **label}}


@dataclass(frozen=True)
class LabelStore:
    """An output label store being written (picklable: workers reopen it by path).

    Attributes
    ----------
    final
        The `<name>.zarr` it becomes.
    temporary
        The store while it is written.
    scratch
        The folder of the blocks' hand-over pieces.
    array_path
        The label array inside the store ("" = the store is the array; "0" for OME-Zarr).

    Examples
    --------
    >>> LabelStore("out/a.zarr", "out/.a.zarr.0a1b2c3d.tmp", "out/.a.zarr.0a1b2c3d.scratch", "").array_path
    ''
    """

    final: str
    temporary: str
    scratch: str
    array_path: str

    @classmethod
    def create(cls, out_dir: str | os.PathLike, name: str, shape: tuple[int, int], block: int, *,
               dtype=np.uint32, ome: dict | None = None) -> LabelStore:
        """Create the empty output array (and its OME-Zarr group) under a temporary name.

        Parameters
        ----------
        out_dir, name
            The output is `out_dir/<name>.zarr`.
        shape, block
            The image's (rows, columns) and the block side (the chunks).
        dtype
            uint32 (uint64 for images of 2^32 pixels or more).
        ome
            `LargeImage.ome` of an OME-Zarr input (write an OME-Zarr label image), or None.

        Returns
        -------
        LabelStore

        Examples
        --------
        >>> store = LabelStore.create("out", "slide", (5000, 4000), 1024)  # doctest: +SKIP
        >>> Path(store.temporary).name                                      # doctest: +SKIP
        '.slide.zarr.3f9a0c1e.tmp'
        """
        import zarr

        folder = Path(out_dir)
        folder.mkdir(parents=True, exist_ok=True)
        final = label_output_path(folder, name)
        token = secrets.token_hex(4)
        temporary, scratch = folder / f".{final.name}.{token}.tmp", folder / f".{final.name}.{token}.scratch"
        scratch.mkdir()
        chunks = (min(block, shape[0]), min(block, shape[1]))
        if ome is None:
            zarr.create_array(str(temporary), shape=shape, chunks=chunks, dtype=dtype, fill_value=0,
                              dimension_names=("y", "x"))
            return cls(str(final), str(temporary), str(scratch), "")
        fmt = int(ome.get("zarr_format", 2))
        group = zarr.open_group(str(temporary), mode="w-", zarr_format=fmt)
        options = {"chunk_key_encoding": {"name": "v2", "separator": "/"}} if fmt == 2 else {
            "dimension_names": ("y", "x")}
        group.create_array("0", shape=shape, chunks=chunks, dtype=dtype, fill_value=0, **options)
        group.attrs.update(_ome_attributes(ome, name))
        return cls(str(final), str(temporary), str(scratch), "0")

    def _array(self):
        import zarr

        with _ARRAYS_LOCK:
            if self.temporary not in _ARRAYS:
                path = os.path.join(self.temporary, self.array_path) if self.array_path else self.temporary
                _ARRAYS[self.temporary] = zarr.open_array(path, mode="r+")
            return _ARRAYS[self.temporary]

    def write_block(self, core: tuple[slice, slice], labels: np.ndarray) -> None:
        """Write one output block (a whole chunk, or the image's last partial one).

        Parameters
        ----------
        core
            The block's (row slice, column slice).
        labels
            Its labels.

        Examples
        --------
        >>> store.write_block((slice(0, 1024), slice(1024, 2048)), labels)  # doctest: +SKIP
        """
        try:
            self._array()[core] = labels
        except Exception as exc:
            raise NucleaizerError(f"{self.final}: cannot write rows {core[0].start}:{core[0].stop}, columns "
                                  f"{core[1].start}:{core[1].stop}: {exc}") from None

    def _piece(self, index: tuple[int, int]) -> Path:
        return Path(self.scratch) / f"{index[0]}_{index[1]}.npz"

    def write_piece(self, index: tuple[int, int], origin: tuple[int, int], labels: np.ndarray) -> None:
        """Keep block `index`'s nuclei (over its labels window at `origin`) for its neighbours (atomically).

        Parameters
        ----------
        index
            (row, column) of the block.
        origin
            (row, column) of its labels window in the image.
        labels
            Its kept nuclei.

        Examples
        --------
        >>> store.write_piece((0, 1), (0, 964), kept_labels)  # doctest: +SKIP
        """
        from nucleaizer_tf.io.write import atomic_path

        with atomic_path(self._piece(index)) as tmp:
            np.savez_compressed(tmp, origin=np.asarray(origin, np.int64), labels=labels)

    def read_piece(self, index: tuple[int, int]) -> tuple[tuple[int, int], np.ndarray]:
        """(origin, labels) written by `write_piece` for block `index`.

        Parameters
        ----------
        index
            (row, column) of the block.

        Returns
        -------
        ((int, int), numpy.ndarray)

        Examples
        --------
        >>> origin, labels = store.read_piece((0, 1))  # doctest: +SKIP
        """
        try:
            with np.load(self._piece(index)) as data:
                return tuple(int(v) for v in data["origin"]), data["labels"]
        except OSError as exc:
            raise NucleaizerError(f"{self._piece(index)}: cannot read a block's hand-over file: {exc}") from None

    def commit(self, record: dict) -> Path:
        """Record `record` (with this tool's marker), rename the store to its final name, drop the scratch.

        An earlier result of this tool at the final name (checked by `check_label_output`) is replaced.

        Parameters
        ----------
        record
            JSON-ready facts of the run, stored under the `nucleaizer_tf` attribute.

        Returns
        -------
        Path
            The final `<name>.zarr`.

        Examples
        --------
        >>> store.commit({"nuclei": 1234})  # doctest: +SKIP
        PosixPath('out/slide.zarr')
        """
        import zarr

        zarr.open(self.temporary, mode="r+").attrs[MARKER] = {"kind": KIND, **record}
        with _ARRAYS_LOCK:
            _ARRAYS.pop(self.temporary, None)
        final = Path(self.final)
        old = None
        if final.exists():
            old = final.with_name(f".{final.name}.{secrets.token_hex(4)}.old")
            os.rename(final, old)
        os.rename(self.temporary, final)
        for leftover in (old, Path(self.scratch)):
            if leftover is not None:
                shutil.rmtree(leftover, ignore_errors=True)
        return final

    def discard(self) -> None:
        """Remove the temporary store and the scratch folder (a failed or interrupted run).

        Examples
        --------
        >>> store.discard()  # doctest: +SKIP
        """
        with _ARRAYS_LOCK:
            _ARRAYS.pop(self.temporary, None)
        for path in (self.temporary, self.scratch):
            shutil.rmtree(path, ignore_errors=True)

