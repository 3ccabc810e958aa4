"""nucleAIzer's original PyTorch U-Net ensemble folder → an ensemble folder the full mode reads, without torch.

An original installation keeps its members as `kaggle_workflow/unet/UNet_sigma<σ>_<k>/UNet_sigma<σ>_<k>`
(a folder and a whole-module `torch.save` file of the same name). Each is read by the restricted
unpickler of `nucleaizer_tf.io.torch_pickle`, checked and converted by `nucleaizer_tf.unet.convert`, and
the ensemble written with `UNetEnsemble.save` (each file atomically, the manifest last).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from nucleaizer_tf.errors import NucleaizerError
from nucleaizer_tf.io import write_json
from nucleaizer_tf.io.digest import sha256_of
from nucleaizer_tf.io.torch_pickle import module_state, named_modules, read_torch_module

__all__ = ["OriginalMember", "convert_unet_folder", "ensemble_folder_for", "fingerprint", "original_members"]

MEMBER_NAME = re.compile(r"^UNet_sigma(\d+(?:\.\d+)?)_(\d+)$")
CONVERSION_RECORD = "conversion.json"
CONVERTED_SUBFOLDER = "unet-converted"


@dataclass(frozen=True)
class OriginalMember:
    """One original member: its name (`UNet_sigma0.5_2`), the sigma in that name and its pickle file.

    Attributes
    ----------
    name : str
        The member's name, ``UNet_sigma<σ>_<k>``.
    sigma : float
        The σ in that name.
    path : pathlib.Path
        Its whole-module `torch.save` file.

    Examples
    --------
    >>> from pathlib import Path
    >>> member = OriginalMember("UNet_sigma0.5_2", 0.5, Path("unet/UNet_sigma0.5_2/UNet_sigma0.5_2"))
    >>> member.sigma
    0.5
    """

    name: str
    sigma: float
    path: Path


def original_members(folder: str | os.PathLike) -> list[OriginalMember]:
    """The members of an original U-Net folder, ordered by sigma then replicate.

    A member is a sub-folder `UNet_sigma<σ>_<k>` holding the file of the same name (the original
    layout), or such a file directly in `folder`. Other entries are ignored.

    Parameters
    ----------
    folder : str or os.PathLike
        The original U-Net folder (`kaggle_workflow/unet`).

    Returns
    -------
    list of OriginalMember
        The members, sorted by σ, then by replicate number k.

    Raises
    ------
    NucleaizerError
        When `folder` is not a folder, holds no member, or a member folder lacks its file.

    Examples
    --------
    >>> [m.name for m in original_members("kaggle_workflow/unet")]  # doctest: +SKIP
    ['UNet_sigma0.0_1', 'UNet_sigma0.0_2', 'UNet_sigma0.5_1', 'UNet_sigma0.5_2', 'UNet_sigma0.5_3', ...]
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise NucleaizerError(f"{folder}: no such U-Net folder")
    members = []
    for entry in folder.iterdir():
        match = MEMBER_NAME.match(entry.name)
        if not match:
            continue
        path = entry / entry.name if entry.is_dir() else entry
        if not path.is_file():
            raise NucleaizerError(f"{path}: missing (member folder {entry.name} holds no model file of its name)")
        members.append((float(match.group(1)), int(match.group(2)), OriginalMember(entry.name, float(match.group(1)), path)))
    if not members:
        raise NucleaizerError(f"{folder}: no U-Net members (expected UNet_sigma<σ>_<k>/UNet_sigma<σ>_<k> files, "
                              "as in kaggle_workflow/unet, or a manifest.json of a converted ensemble)")
    return [m for _, _, m in sorted(members, key=lambda t: (t[0], t[1]))]


def fingerprint(members: list[OriginalMember]) -> str:
    """A short hex digest of the members' names, file sizes and SHA-256 contents.

    Parameters
    ----------
    members : list of OriginalMember
        The members, in order (as `original_members` gives them); every file is read.

    Returns
    -------
    str
        16 hex digits; the same member files give the same fingerprint.

    Examples
    --------
    >>> fingerprint(original_members("kaggle_workflow/unet"))  # doctest: +SKIP
    '3f2a9c0e5b7d1a64'
    """
    lines = "".join(f"{m.name}\0{m.path.stat().st_size}\0{sha256_of(m.path)}\n" for m in members)
    return hashlib.sha256(lines.encode()).hexdigest()[:16]


def _convert_member(member: OriginalMember):
    """(build_unet arguments, Keras model) of one original member; NucleaizerError names its file."""
    from nucleaizer_tf.unet.convert import check_torch_layers, unet_architecture, unet_from_state

    root = read_torch_module(member.path)
    try:
        modules = named_modules(root)
        if root.torch_type.rsplit(".", 1)[-1] != "UNet":
            raise ValueError(f"expected a pickled UNet module, found {root.torch_type}")
        check_torch_layers(modules)
        state = module_state(root)
        return unet_architecture(state), unet_from_state(state, name=member.name)
    except ValueError as exc:
        raise NucleaizerError(f"{member.path}: {exc}") from None


def convert_unet_folder(original: str | os.PathLike, out_dir: str | os.PathLike,
                        progress: Callable[[str], None] | None = None) -> Path:
    """Convert an original PyTorch U-Net ensemble folder into an ensemble folder at `out_dir`.

    Every member is read and converted before anything is written; then the member weights and the
    manifest are written atomically (manifest last) beside `conversion.json`, which records the source.
    Converting the same source into the same folder again does nothing; a folder that already holds a
    different ensemble is refused.

    Parameters
    ----------
    original : str or os.PathLike
        The original folder (`kaggle_workflow/unet`) with `UNet_sigma*_*/UNet_sigma*_*` member files.
    out_dir : str or os.PathLike
        The ensemble folder to write (created if needed).
    progress : callable, optional
        Called with each member's name after it is converted.

    Returns
    -------
    Path
        `out_dir`, which `UNetEnsemble.load` and `predict --mode full --unet` read.

    Examples
    --------
    >>> convert_unet_folder("kaggle_workflow/unet", "unet-ensemble")  # doctest: +SKIP
    PosixPath('unet-ensemble')
    """
    from nucleaizer_tf.unet.ensemble import MANIFEST, MemberSpec, UNetEnsemble
    from nucleaizer_tf.unet.train import WEIGHTS_SUFFIX

    out_dir = Path(out_dir)
    members = original_members(original)
    source = fingerprint(members)
    record = {"source": str(Path(original).resolve()), "fingerprint": source,
              "members": [{"name": m.name, "sigma": m.sigma, "file": m.path.name, "size": m.path.stat().st_size}
                          for m in members]}
    if (out_dir / MANIFEST).exists():
        if _recorded_fingerprint(out_dir) == source:
            return out_dir
        raise NucleaizerError(f"{out_dir}: already holds a different U-Net ensemble; choose a new or empty folder")
    specs, models = [], []
    for member in members:
        arch, model = _convert_member(member)
        specs.append(MemberSpec(member.name, member.sigma, member.name + WEIGHTS_SUFFIX, arch))
        models.append(model)
        if progress is not None:
            progress(member.name)
    write_json(out_dir / CONVERSION_RECORD, record)
    UNetEnsemble(specs, models).save(out_dir)
    return out_dir


def _recorded_fingerprint(folder: Path) -> str | None:
    try:
        return json.loads((folder / CONVERSION_RECORD).read_text()).get("fingerprint")
    except (OSError, ValueError, AttributeError):
        return None


def ensemble_folder_for(path: str | os.PathLike, work_dir: str | os.PathLike | None) -> Path:
    """The ensemble folder to load for `--unet path`: `path` itself if it holds a manifest.json, else the
    conversion of the original PyTorch folder `path` into `work_dir/unet-converted/<fingerprint>/`
    (converted once; a later call with the same member files reuses it). Without a `work_dir` (the
    Python API without caching) the conversion goes to a temporary folder of this process.

    Parameters
    ----------
    path : str or os.PathLike
        A converted ensemble folder (with `manifest.json`) or an original PyTorch U-Net folder.
    work_dir : str or os.PathLike or None
        The work folder the conversion is written into; None = a new temporary folder (not removed).

    Returns
    -------
    pathlib.Path
        The ensemble folder, which `UNetEnsemble.load` reads.

    Raises
    ------
    NucleaizerError
        When `path` is neither a converted ensemble nor an original folder, or a member cannot be
        converted.

    Examples
    --------
    >>> ensemble_folder_for("kaggle_workflow/unet", ".nucleaizer-work")  # doctest: +SKIP
    PosixPath('.nucleaizer-work/unet-converted/3f2a9c0e5b7d1a64')
    """
    from nucleaizer_tf.unet.ensemble import MANIFEST

    path = Path(path)
    if (path / MANIFEST).is_file():
        return path
    if work_dir is None:
        import tempfile

        work_dir = tempfile.mkdtemp(prefix="nucleaizer-tf-unet-")
    target = Path(work_dir) / CONVERTED_SUBFOLDER / fingerprint(original_members(path))
    return convert_unet_folder(path, target)
