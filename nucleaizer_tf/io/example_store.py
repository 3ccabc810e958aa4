"""A folder of prepared training examples read by memory map: training memory independent of the data set.

A training set of hundreds of real images, each size-normalised, is far larger than the crops a batch
needs. `write_example_store` appends every prepared example (uint8 H×W×3 image, integer labels) to two
flat files as it is made, so only one example is ever in memory while writing; `ExampleStore` maps them
and hands out one example at a time, so the operating system, not the training process, decides what
stays in memory.

Folder layout (written under a temporary name and renamed when complete):

* ``images.u8`` — every image's bytes, row-major H×W×3, one after the other;
* ``labels.u16`` — every label image as uint16 (instance ids up to 65,535 per image);
* ``index.json`` — format, version, and per example its name, group (e.g. the modality), height, width
  and offsets, plus free-form ``info`` (how the examples were prepared).
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from nucleaizer_tf.errors import NucleaizerError
from nucleaizer_tf.io.read import read_json

FORMAT = "nucleaizer-tf/example-store"
VERSION = 1
_IMAGES, _LABELS, _INDEX = "images.u8", "labels.u16", "index.json"


@dataclass(frozen=True)
class StoredExample:
    """Where one example lies in the store's flat files.

    Attributes
    ----------
    name, group : str
        The example's name (the image stem) and group (e.g. its modality).
    height, width : int
        Its size.
    offset : int
        Its first pixel's index into ``labels.u16`` (``images.u8`` starts at 3 × offset).

    Examples
    --------
    >>> StoredExample("a", "fluorescence", 4, 5, 0).height
    4
    """

    name: str
    group: str
    height: int
    width: int
    offset: int  # in pixels, into labels.u16; images.u8 starts at 3 × offset


class ExampleStore:
    """Read-only view of a folder written by `write_example_store`.

    Parameters
    ----------
    folder : str or os.PathLike
        The store folder.

    Attributes
    ----------
    folder : pathlib.Path
        As given.
    examples : list of StoredExample
        Name, group and shape of every example, in the order written.
    info : dict
        What the writer recorded about the preparation.

    Raises
    ------
    NucleaizerError
        When the folder is not a complete store of a supported version.

    Examples
    --------
    >>> store = write_example_store("cache", [("a", "fluorescence", image, labels)])  # doctest: +SKIP
    >>> store = ExampleStore("cache")                                                  # doctest: +SKIP
    >>> image, labels = store.get(0)                                                   # doctest: +SKIP
    >>> store.groups()                                                                 # doctest: +SKIP
    ['fluorescence']
    """

    def __init__(self, folder: str | os.PathLike):
        self.folder = Path(folder)
        index_path = self.folder / _INDEX
        index = read_json(index_path, "example store index")
        if not isinstance(index, dict) or index.get("format") != FORMAT or index.get("version") != VERSION:
            raise NucleaizerError(f"{index_path}: not an example store of version {VERSION}")
        try:
            self.examples = [StoredExample(str(e["name"]), str(e["group"]), int(e["height"]), int(e["width"]),
                                           int(e["offset"])) for e in index["examples"]]
        except (KeyError, TypeError, ValueError) as exc:
            raise NucleaizerError(f"{index_path}: malformed example entry ({exc})") from None
        self.info = index.get("info", {})
        pixels = sum(e.height * e.width for e in self.examples)
        for name, size in ((_IMAGES, 3 * pixels), (_LABELS, 2 * pixels)):
            path = self.folder / name
            if not path.is_file() or path.stat().st_size != size:
                raise NucleaizerError(f"{path}: expected {size} bytes for {len(self.examples)} examples")
        self._images = np.memmap(self.folder / _IMAGES, np.uint8, "r") if pixels else np.zeros(0, np.uint8)
        self._labels = np.memmap(self.folder / _LABELS, np.uint16, "r") if pixels else np.zeros(0, np.uint16)

    def __len__(self) -> int:
        return len(self.examples)

    def get(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        """(uint8 H×W×3 image, int32 H×W labels) of example `index`, copied out of the map."""
        e = self.examples[int(index)]
        n = e.height * e.width
        image = np.array(self._images[3 * e.offset:3 * (e.offset + n)]).reshape(e.height, e.width, 3)
        labels = self._labels[e.offset:e.offset + n].astype(np.int32).reshape(e.height, e.width)
        return image, labels

    def groups(self) -> list[str]:
        """The group of every example, in order."""
        return [e.group for e in self.examples]

    def names(self) -> list[str]:
        """The name of every example, in order."""
        return [e.name for e in self.examples]


def write_example_store(folder: str | os.PathLike, examples: Iterable[tuple[str, str, np.ndarray, np.ndarray]], *,
                        info: dict | None = None) -> ExampleStore:
    """Write `examples` — (name, group, uint8 H×W×3 image, integer H×W labels) — as a store folder.

    The examples are consumed one at a time (an iterator keeps memory to one example). The folder is
    written under ``.<name>.partial`` beside `folder` and renamed when complete; an existing `folder` is
    refused, so a store is never mixed from two runs.

    Parameters
    ----------
    folder : str or os.PathLike
        The store folder to create.
    examples : iterable of tuple
        ``(name, group, image, labels)``; images uint8 H×W×3, labels integer ids in [0, 65535] of the
        same H×W.
    info : dict, optional
        JSON-ready notes kept in the index (e.g. how the examples were prepared).

    Returns
    -------
    ExampleStore
        The store just written.

    Raises
    ------
    NucleaizerError
        When `folder` exists, or an example is not a uint8 RGB image with matching labels in range.

    Examples
    --------
    >>> labels = np.zeros((4, 5), np.int32); labels[1:3, 1:3] = 7
    >>> image = np.zeros((4, 5, 3), np.uint8)
    >>> import tempfile; root = Path(tempfile.mkdtemp())
    >>> store = write_example_store(root / "store", [("a", "fluorescence", image, labels)], info={"scale": 1})
    >>> len(store), store.groups(), int(store.get(0)[1].max())
    (1, ['fluorescence'], 7)
    """
    folder = Path(folder)
    if folder.exists():
        raise NucleaizerError(f"{folder} already exists; an example store is written once into a new folder")
    partial = folder.parent / f".{folder.name}.partial"
    if partial.exists():
        shutil.rmtree(partial)
    partial.mkdir(parents=True)
    entries, offset = [], 0
    try:
        with open(partial / _IMAGES, "wb") as images, open(partial / _LABELS, "wb") as labels_file:
            for name, group, image, labels in examples:
                image, labels = np.asarray(image), np.asarray(labels)
                if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3 or labels.shape != image.shape[:2]:
                    raise NucleaizerError(f"{name}: a stored example is a uint8 H×W×3 image with H×W labels, "
                                          f"got {image.dtype} {image.shape} and {labels.shape}")
                if labels.size and (labels.min() < 0 or labels.max() > np.iinfo(np.uint16).max):
                    raise NucleaizerError(f"{name}: label ids must lie in 0..65535 to be stored")
                images.write(np.ascontiguousarray(image).tobytes())
                labels_file.write(np.ascontiguousarray(labels, dtype=np.uint16).tobytes())
                entries.append({"name": str(name), "group": str(group), "height": int(image.shape[0]),
                                "width": int(image.shape[1]), "offset": offset})
                offset += image.shape[0] * image.shape[1]
        index = {"format": FORMAT, "version": VERSION, "examples": entries, "info": info or {}}
        (partial / _INDEX).write_text(json.dumps(index, indent=1))
        os.replace(partial, folder)
    except BaseException:
        shutil.rmtree(partial, ignore_errors=True)
        raise
    return ExampleStore(folder)
