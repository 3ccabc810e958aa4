"""Pair an image folder with its mask folder by file stem, and carve out a validation split.

`match_stems` is the general matcher (also ground truth <-> predictions for evaluation);
`pair_folders` is its training use.

Training data is two folders, `images/` and `masks/`, whose files match by stem
(`images/a1.png` <-> `masks/a1.tiff`). The stem is the file name without its LAST suffix and is
case-sensitive (`a.b.png` has stem `a.b`; `A.png` does not match `a.tiff`); the suffix itself is
matched case-insensitively (`.PNG` is a PNG). Files of other types (README, validation.txt,
hidden files) are ignored. Anything that does not pair up is an error, raised once with every
problem in one message, because silently training on a subset is worse than stopping.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from nucleaizer_tf.errors import PairingError
from nucleaizer_tf.io import IMAGE_EXTENSIONS, LABEL_EXTENSIONS

_SHOW = 10  # stems listed per side in an error message before "... and N more"


@dataclass(frozen=True)
class Pair:
    """One training example on disk: an image file and the label (instance mask) file of the same stem.

    Parameters
    ----------
    stem : str
        The shared file stem (the file name without its last suffix), e.g. "a1".
    image_path : pathlib.Path
        The image file, e.g. ``images/a1.png``.
    mask_path : pathlib.Path
        The label image file, e.g. ``masks/a1.tiff`` (0 = background, k > 0 = nucleus k).

    Examples
    --------
    >>> pair = Pair("a1", Path("images/a1.png"), Path("masks/a1.tiff"))
    >>> pair.stem, pair.image_path.name, pair.mask_path.name
    ('a1', 'a1.png', 'a1.tiff')
    """

    stem: str
    image_path: Path
    mask_path: Path


def _listing(names: Sequence[str]) -> str:
    shown = ", ".join(names[:_SHOW])
    more = len(names) - _SHOW
    return f"{shown}, ... and {more} more" if more > 0 else shown


def _a(noun: str) -> str:
    return f"{'an' if noun[:1].lower() in 'aeiou' else 'a'} {noun}"


def _files_by_stem(folder: Path, extensions: Sequence[str]) -> tuple[dict[str, Path], list[str]]:
    """Map stem -> file for the files of `folder` with one of `extensions`; also return duplicated stems."""
    found: dict[str, Path] = {}
    duplicates: list[str] = []
    for entry in sorted(folder.iterdir()):
        if entry.name.startswith(".") or not entry.is_file() or entry.suffix.lower() not in extensions:
            continue
        if entry.stem in found:
            duplicates.append(entry.stem)
            continue
        found[entry.stem] = entry
    return found, sorted(set(duplicates))


def match_stems(
    left_dir: str | os.PathLike,
    right_dir: str | os.PathLike,
    *,
    left: tuple[str, Sequence[str]] = ("image", IMAGE_EXTENSIONS),
    right: tuple[str, Sequence[str]] = ("mask", LABEL_EXTENSIONS),
    allow_missing_right: bool = False,
) -> list[tuple[str, Path, Path | None]]:
    """Match the files of two folders by stem: (stem, left file, right file) triples sorted by stem.

    `left` / `right` are (what the files are, for messages; accepted extensions with the dot).
    Raises `PairingError` naming the folders when a folder is missing or holds no usable file, when
    a stem occurs twice in one folder (e.g. `a.png` and `a.tif`: which one is meant?), or when stems
    do not match; the message lists the unmatched stems of each side (first 10, then a count).
    With `allow_missing_right` a left stem without a right file yields (stem, left, None), right
    files without a left one are ignored, and the right folder may be empty (not missing).

    Stems are case-sensitive, suffixes are matched case-insensitively; hidden files, sub-folders and
    files of other types are ignored (see the module docstring).

    Parameters
    ----------
    left_dir, right_dir : str or os.PathLike
        The two folders, e.g. ``images/`` and ``masks/`` (or ground truth and predictions).
    left, right : tuple of (str, sequence of str), optional
        (what the files are, for messages; accepted extensions with the dot). Defaults:
        ``("image", IMAGE_EXTENSIONS)`` and ``("mask", LABEL_EXTENSIONS)``.
    allow_missing_right : bool, optional
        Accept left files without a right one (default False).

    Returns
    -------
    list of (str, pathlib.Path, pathlib.Path or None)
        One (stem, left file, right file) triple per left stem, sorted by stem; the right file is
        None only with `allow_missing_right`.

    Raises
    ------
    PairingError
        With every problem in one message, as listed above.

    Examples
    --------
    >>> triples = match_stems("gt", "predictions", left=("ground truth", (".tif", ".png")),
    ...                       right=("prediction", (".tif",)))  # doctest: +SKIP
    >>> [(stem, gt.name, pred.name) for stem, gt, pred in triples]  # doctest: +SKIP
    [('a1', 'a1.png', 'a1.tif')]
    """
    (left_name, left_exts), (right_name, right_exts) = left, right
    left_dir, right_dir = Path(left_dir), Path(right_dir)
    problems = []
    for name, folder in ((left_name, left_dir), (right_name, right_dir)):
        if not folder.exists():
            problems.append(f"{name} folder {folder} does not exist")
        elif not folder.is_dir():
            problems.append(f"{name} folder {folder} is not a folder")
    if problems:
        raise PairingError("; ".join(problems))

    lefts, left_dups = _files_by_stem(left_dir, left_exts)
    rights, right_dups = _files_by_stem(right_dir, right_exts)
    for name, folder, files, exts, may_be_empty in ((left_name, left_dir, lefts, left_exts, False),
                                                    (right_name, right_dir, rights, right_exts, allow_missing_right)):
        if not files and not may_be_empty:
            problems.append(f"{name} folder {folder} is empty (no {'/'.join(e.lstrip('.') for e in exts)} files)")
    if problems:
        raise PairingError("; ".join(problems))

    for name, folder, dups in ((left_name, left_dir, left_dups), (right_name, right_dir, right_dups)):
        if dups:
            problems.append(f"{len(dups)} stem(s) occur more than once in {name} folder {folder}: {_listing(dups)}")
    if not allow_missing_right:
        no_right = sorted(set(lefts) - set(rights))
        no_left = sorted(set(rights) - set(lefts))
        if no_right:
            problems.append(f"{len(no_right)} {left_name}(s) without {_a(right_name)}: {_listing(no_right)}")
        if no_left:
            problems.append(f"{len(no_left)} {right_name}(s) without {_a(left_name)}: {_listing(no_left)}")
    if problems:
        raise PairingError(
            f"{left_name} files in {left_dir} and {right_name} files in {right_dir} do not pair up by file stem: "
            + "; ".join(problems)
        )
    return [(stem, lefts[stem], rights.get(stem)) for stem in sorted(lefts)]


def pair_folders(images_dir: str | os.PathLike, masks_dir: str | os.PathLike) -> list[Pair]:
    """Return the image/mask pairs of two folders, sorted by stem (every stem must pair; see `match_stems`).

    Parameters
    ----------
    images_dir : str or os.PathLike
        The image folder (files with one of `IMAGE_EXTENSIONS`).
    masks_dir : str or os.PathLike
        The mask folder (label images with one of `LABEL_EXTENSIONS`).

    Returns
    -------
    list of Pair
        One `Pair` per stem, sorted by stem.

    Raises
    ------
    PairingError
        When a folder is missing or empty, a stem occurs twice in a folder, or stems do not pair up.

    Examples
    --------
    >>> pairs = pair_folders("train/images", "train/masks")  # doctest: +SKIP
    >>> pairs[0].stem, pairs[0].image_path.name, pairs[0].mask_path.name  # doctest: +SKIP
    ('a1', 'a1.png', 'a1.tiff')
    """
    return [Pair(stem, image, mask) for stem, image, mask in match_stems(images_dir, masks_dir)]


def read_stem_list(path: str | os.PathLike) -> list[str]:
    """Read a stem list such as the original's `validation.txt`: one stem per line.

    Surrounding whitespace is stripped; blank lines and lines starting with `#` are skipped.

    Parameters
    ----------
    path : str or os.PathLike
        The stem list, a UTF-8 text file.

    Returns
    -------
    list of str
        The stems, in file order.

    Raises
    ------
    PairingError
        When the file cannot be read.

    Examples
    --------
    >>> read_stem_list("train/validation.txt")  # doctest: +SKIP
    ['a1', 'b7']
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise PairingError(f"cannot read stem list {path}: {exc.strerror or exc}") from None
    stems = [line.strip() for line in text.splitlines()]
    return [s for s in stems if s and not s.startswith("#")]


def split_pairs(
    pairs: Sequence[Pair],
    validation: Iterable[str] | str | os.PathLike | float | None = None,
    *,
    seed: int = 0,
) -> tuple[list[Pair], list[Pair]]:
    """Split `pairs` into (train, validation), both keeping the input order.

    `validation` is one of:
    * None: everything is training, validation is empty;
    * a path (str or PathLike) to a stem list file, read with `read_stem_list`;
    * an iterable of stems: exactly those pairs are validation; a stem that names no pair raises
      `PairingError` (a typo must not silently leak a validation image into training);
    * a fraction in [0, 1): `round(fraction * n)` pairs (at least 1 when fraction > 0, at most n - 1)
      drawn with `numpy.random.default_rng(seed)`, so the same seed gives the same split.

    Parameters
    ----------
    pairs : sequence of Pair
        The pairs to split, e.g. from `pair_folders`.
    validation : iterable of str, str, os.PathLike, float or None, optional
        What goes to validation, as listed above (default None).
    seed : int, optional
        Seed of the random draw for a fraction (default 0).

    Returns
    -------
    train : list of Pair
        The training pairs, in input order.
    validation : list of Pair
        The validation pairs, in input order.

    Raises
    ------
    PairingError
        When a validation stem names no pair, or the stem list file cannot be read.
    ValueError
        When a fraction is outside [0, 1).

    Examples
    --------
    >>> pairs = [Pair(s, Path(f"images/{s}.png"), Path(f"masks/{s}.tif")) for s in "abcde"]
    >>> train, val = split_pairs(pairs, ["b", "d"])
    >>> [p.stem for p in train], [p.stem for p in val]
    (['a', 'c', 'e'], ['b', 'd'])
    >>> train, val = split_pairs(pairs, 0.4, seed=0)
    >>> len(train), len(val)
    (3, 2)
    """
    pairs = list(pairs)
    if validation is None:
        return pairs, []
    if isinstance(validation, (str, os.PathLike)):
        validation = read_stem_list(validation)
    if isinstance(validation, (float, int)) and not isinstance(validation, bool):
        fraction = float(validation)
        if not 0.0 <= fraction < 1.0:
            raise ValueError(f"validation fraction must be in [0, 1), got {fraction}")
        n = len(pairs)
        n_val = int(round(fraction * n))
        if fraction > 0 and n > 1:
            n_val = min(max(n_val, 1), n - 1)
        chosen = set(np.random.default_rng(seed).choice(n, size=n_val, replace=False).tolist()) if n_val else set()
        return ([p for i, p in enumerate(pairs) if i not in chosen], [p for i, p in enumerate(pairs) if i in chosen])
    wanted = list(validation)
    known = {p.stem for p in pairs}
    unknown = sorted({s for s in wanted if s not in known})
    if unknown:
        raise PairingError(f"{len(unknown)} validation stem(s) name no image/mask pair: {_listing(unknown)}")
    wanted_set = set(wanted)
    return [p for p in pairs if p.stem not in wanted_set], [p for p in pairs if p.stem in wanted_set]
