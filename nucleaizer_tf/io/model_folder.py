"""The one folder format of every model nucleaizer-tf saves: `manifest.json` + weight files, sha256-checked.

A model folder holds its weight files and a `manifest.json` that says what the folder is
(`"format": "nucleaizer-tf/<kind>"`, `"format_version"`), everything needed to rebuild the network,
and, beside each weight file it names, that file's sha256. The manifest is written last (atomically),
so a folder with a manifest is always complete; a reader checks every listed file before using it.

Kinds and where each names its files:

===================  =======================================================================
kind                 files
===================  =======================================================================
`default-model`      `weights_file` + `sha256` (the shipped model and every fine-tuned copy)
`unet-ensemble`      per member: `weights` + `sha256`
`full-pipeline`      `presegmentation`, `final` (legacy `.h5` files, each `{file, sha256}`),
                     `unet` (a sub-folder that is itself a `unet-ensemble` model folder)
`maskrcnn`           `weights`: `{file, sha256}` (a legacy `.h5`, e.g. after fine-tuning)
`pix2pix-generator`  `generator` + `sha256` (style transfer's per-style image generator)
===================  =======================================================================

Folders written before this format (a default model with `weights_file`/`sha256` but no `format`, an
ensemble without per-member hashes) still load; files without a recorded hash are not checked.

Examples
--------
>>> folder, manifest, kind = read_manifest("weights/default")  # doctest: +SKIP
>>> kind                                                       # doctest: +SKIP
'default-model'
"""

from __future__ import annotations

import os
from pathlib import Path

from nucleaizer_tf.errors import NucleaizerError
from nucleaizer_tf.io.digest import sha256_of
from nucleaizer_tf.io.read import read_json

MANIFEST = "manifest.json"
FORMAT_PREFIX = "nucleaizer-tf/"
KINDS = ("default-model", "unet-ensemble", "full-pipeline", "maskrcnn", "pix2pix-generator")
FORMAT_VERSION = 1
"""The manifest layout version this nucleaizer-tf reads and writes, for every kind."""


def kind_of(manifest: dict) -> str | None:
    """The model kind a manifest describes (None if it is no nucleaizer-tf model manifest).

    Parameters
    ----------
    manifest : dict
        The parsed `manifest.json`.

    Returns
    -------
    str or None
        One of `KINDS`, from ``"format": "nucleaizer-tf/<kind>"``; ``"default-model"`` for a manifest
        without a format that has `weights_file` and `architecture` (written before the format field
        existed); else None.

    Examples
    --------
    >>> kind_of({"format": "nucleaizer-tf/unet-ensemble", "format_version": 1})
    'unet-ensemble'
    >>> kind_of({"weights_file": "default.weights.h5", "architecture": {}})
    'default-model'
    >>> kind_of({"format": "nucleaizer-tf/unknown"}) is None
    True
    """
    fmt = manifest.get("format")
    if isinstance(fmt, str) and fmt.startswith(FORMAT_PREFIX) and fmt[len(FORMAT_PREFIX):] in KINDS:
        return fmt[len(FORMAT_PREFIX):]
    if fmt is None and "weights_file" in manifest and "architecture" in manifest:
        return "default-model"  # written before the format field existed
    return None


def read_manifest(path: str | os.PathLike, expect: str | None = None) -> tuple[Path, dict, str]:
    """(folder, manifest, kind) of a model folder or of its `manifest.json`.

    Parameters
    ----------
    path : str or os.PathLike
        A model folder, or the `manifest.json` file itself.
    expect : str, optional
        The kind the folder must be (one of `KINDS`); None (default) accepts any kind.

    Returns
    -------
    folder : pathlib.Path
        The folder holding the manifest.
    manifest : dict
        The parsed manifest.
    kind : str
        Its model kind (see `kind_of`).

    Raises
    ------
    NucleaizerError
        Naming the path, when there is no readable manifest, when it describes no known model kind or
        a `format_version` other than `FORMAT_VERSION`, or when it is not of kind `expect` (if given).

    Examples
    --------
    >>> folder, manifest, kind = read_manifest("adapted/model", expect="default-model")  # doctest: +SKIP
    """
    path = Path(path)
    manifest_path = path if path.is_file() else path / MANIFEST
    if not manifest_path.is_file():
        raise NucleaizerError(f"{path}: no {MANIFEST} (not a nucleaizer-tf model folder)")
    manifest = read_json(manifest_path, "JSON model manifest")
    kind = kind_of(manifest) if isinstance(manifest, dict) else None
    if kind is None:
        raise NucleaizerError(f"{manifest_path}: not a nucleaizer-tf model manifest (kinds: {', '.join(KINDS)})")
    version = manifest.get("format_version", None if "format" not in manifest else "missing")
    if version is not None and (version != FORMAT_VERSION or isinstance(version, bool)):
        raise NucleaizerError(f"{manifest_path}: format_version {str(version)[:20]} is not supported (this "
                              f"nucleaizer-tf reads {FORMAT_VERSION}); a newer nucleaizer-tf may read it")
    if expect is not None and kind != expect:
        raise NucleaizerError(f"{manifest_path}: a {kind} folder, expected a {expect}")
    return manifest_path.parent, manifest, kind


def checked_file(folder: Path, name: str, sha256: str | None, what: str) -> Path:
    """`folder/name` after checking it exists and, when a hash is recorded, that it matches.

    Parameters
    ----------
    folder : pathlib.Path
        The model folder.
    name : str
        A file name from the folder's manifest; it must stay inside `folder` (not absolute, no ``..``).
    sha256 : str or None
        The recorded hex sha256; None or empty = not checked.
    what : str
        What the file is, for the messages (``"weight file"``).

    Returns
    -------
    pathlib.Path
        ``folder / name``.

    Raises
    ------
    NucleaizerError
        When `name` is no file name or points outside the folder (also through a symbolic link), the
        file is missing or its sha256 differs.

    Examples
    --------
    >>> entry = manifest["weights"]                                                     # doctest: +SKIP
    >>> checked_file(folder, entry["file"], entry.get("sha256"), "weight file")        # doctest: +SKIP
    PosixPath('my_model/mask_rcnn_final.h5')
    """
    if not isinstance(name, str) or not name:
        raise NucleaizerError(f"{Path(folder) / MANIFEST}: the {what} must be named by a file name, got {str(name)[:40]!r}")
    path = Path(folder) / name
    if Path(name).is_absolute() or ".." in Path(name).parts:
        raise NucleaizerError(f"{Path(folder) / MANIFEST}: {what} {name!r} must be a file inside the model folder")
    if path.is_symlink() and not path.resolve().is_relative_to(Path(folder).resolve()):
        raise NucleaizerError(f"{path}: the {what} is a symbolic link leading outside the model folder "
                              f"(to {path.resolve()}); copy the file into the folder instead")
    if not path.is_file():
        raise NucleaizerError(f"{path}: {what} named in {Path(folder) / MANIFEST} is missing")
    if sha256 and sha256_of(path) != sha256:
        raise NucleaizerError(f"{path}: sha256 does not match {Path(folder) / MANIFEST} (corrupt or replaced file)")
    return path


def file_entry(folder: str | os.PathLike, manifest: dict, key: str, what: str) -> Path:
    """The file a manifest's ``key: {"file": NAME, "sha256": HEX}`` entry names, checked (`checked_file`).

    Parameters
    ----------
    folder : str or os.PathLike
        The model folder.
    manifest : dict
        Its parsed manifest.
    key : str
        The entry (``"weights"``, ``"presegmentation"``, ...).
    what : str
        What the file is, for the messages.

    Returns
    -------
    pathlib.Path
        The checked file.

    Raises
    ------
    NucleaizerError
        Naming the manifest and the field, when the entry is missing or not ``{"file": str[, "sha256": str]}``;
        and as `checked_file`.

    Examples
    --------
    >>> file_entry("m", {"weights": "mask_rcnn.h5"}, "weights", "weight file")
    Traceback (most recent call last):
    nucleaizer_tf.errors.NucleaizerError: m/manifest.json: field weights must be {"file": NAME, "sha256": HEX}, got a str
    """
    entry = manifest.get(key)
    if not (isinstance(entry, dict) and isinstance(entry.get("file"), str)
            and isinstance(entry.get("sha256", ""), str)):
        raise NucleaizerError(f"{Path(folder) / MANIFEST}: field {key} must be {{\"file\": NAME, \"sha256\": HEX}}, "
                              f"got {'nothing' if entry is None else 'a ' + type(entry).__name__}")
    return checked_file(folder, entry["file"], entry.get("sha256"), what)


def prepare_folder(folder: str | os.PathLike, *, overwrite: bool = False) -> Path:
    """Create `folder` for a new model; refuse one that already holds a model unless `overwrite`.

    Parameters
    ----------
    folder : str or os.PathLike
        The model folder to write; created with its parents if absent.
    overwrite : bool, optional
        Accept a folder that already has a `manifest.json` (default False).

    Returns
    -------
    pathlib.Path
        The folder, now existing.

    Raises
    ------
    NucleaizerError
        When `folder` is a file, or already holds a model and `overwrite` is False.

    Examples
    --------
    >>> prepare_folder("my_model")  # doctest: +SKIP
    PosixPath('my_model')
    """
    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        raise NucleaizerError(f"{folder}: exists and is not a folder")
    if (folder / MANIFEST).exists() and not overwrite:
        raise NucleaizerError(f"{folder}: already holds a model ({MANIFEST}); choose another folder")
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def write_manifest(folder: str | os.PathLike, kind: str, manifest: dict, format_version: int = FORMAT_VERSION) -> Path:
    """Write `manifest.json` of a `kind` folder (atomically; call it after every weight file is written).

    Parameters
    ----------
    folder : str or os.PathLike
        The model folder.
    kind : str
        One of `KINDS`; written as ``"format": "nucleaizer-tf/<kind>"``.
    manifest : dict
        The rest of the manifest (weight file names, their sha256, what rebuilds the network); any
        ``format`` or ``format_version`` in it is replaced.
    format_version : int, optional
        The version of the kind's manifest layout (default `FORMAT_VERSION`, what `read_manifest` reads).

    Returns
    -------
    pathlib.Path
        The written `manifest.json`.

    Raises
    ------
    ValueError
        For an unknown `kind`.

    Examples
    --------
    >>> body = {"weights": {"file": "mask_rcnn.h5", "sha256": sha256_of("my_model/mask_rcnn.h5")}}  # doctest: +SKIP
    >>> write_manifest("my_model", "maskrcnn", body)                                                # doctest: +SKIP
    PosixPath('my_model/manifest.json')
    """
    from nucleaizer_tf.io import write_json

    if kind not in KINDS:
        raise ValueError(f"unknown model kind {kind!r}")
    body = {"format": FORMAT_PREFIX + kind, "format_version": format_version,
            **{k: v for k, v in manifest.items() if k not in ("format", "format_version")}}
    return write_json(Path(folder) / MANIFEST, body)
