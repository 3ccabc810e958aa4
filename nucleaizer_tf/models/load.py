"""`load_model`: the one way to get a segmenter, whatever the model is."""

from __future__ import annotations

import os
from pathlib import Path

from nucleaizer_tf.errors import NucleaizerError
from nucleaizer_tf.io.model_folder import MANIFEST, file_entry, read_manifest
from nucleaizer_tf.models.base import Segmenter

SHIPPED = ("default", "shipped")


def segmenter_class(name_or_path=None, mode: str | None = None) -> type[Segmenter]:
    """The class of segmenter `load_model(name_or_path, mode=mode)` returns, found without loading anything.

    For checking options (`Segmenter.resolve_options` is a class method) before a slow load. Only the
    folder's `manifest.json` is read, no weight file.

    Parameters
    ----------
    name_or_path : str or os.PathLike, optional
        What `load_model` takes: ``"default"``/``"shipped"`` or None (the shipped model), a model folder
        or its `manifest.json`, or a legacy Mask R-CNN `.h5` file.
    mode : str, optional
        ``"full"`` for the full pipeline (then `name_or_path` is not looked at); None or ``"fast"``
        otherwise.

    Returns
    -------
    type
        `DefaultSegmenter`, `MaskRCNNSegmenter` (any existing file other than a `manifest.json`),
        `EnsembleSegmenter` or `FullSegmenter`; `Segmenter` itself when undecidable (no such path, no
        readable manifest, a kind that is not a segmentation model).

    Examples
    --------
    >>> segmenter_class("default").__name__
    'DefaultSegmenter'
    >>> segmenter_class("mask_rcnn_final.h5", mode="full").__name__
    'FullSegmenter'
    >>> segmenter_class("default").resolve_options({"tta": True})["tta"]
    True
    """
    from nucleaizer_tf.models.default import DefaultSegmenter
    from nucleaizer_tf.models.ensemble import EnsembleSegmenter
    from nucleaizer_tf.models.full import FullSegmenter
    from nucleaizer_tf.models.maskrcnn import MaskRCNNSegmenter

    if mode == "full":
        return FullSegmenter
    if name_or_path is None or str(name_or_path) in SHIPPED:
        return DefaultSegmenter
    path = Path(name_or_path)
    if path.is_file() and path.name != MANIFEST:
        return MaskRCNNSegmenter
    try:
        kind = read_manifest(path)[2]
    except NucleaizerError:
        return Segmenter
    return {"default-model": DefaultSegmenter, "unet-ensemble": EnsembleSegmenter, "full-pipeline": FullSegmenter,
            "maskrcnn": MaskRCNNSegmenter}.get(kind, Segmenter)


def load_model(name_or_path: str | os.PathLike | None = "default", *, mode: str | None = None,
               preseg_model: str | os.PathLike | None = None, unet: str | os.PathLike | None = None,
               work_dir: str | os.PathLike | None = None) -> Segmenter:
    """A segmenter for a model name, model folder or legacy weight file.

    The one way to get a segmenter, whatever the model is. Every segmenter has the same methods
    (`Segmenter.segment`, `Segmenter.segment_many`, `Segmenter.describe`, `Segmenter.save`) and refuses,
    with a one-line `NucleaizerError`, an option that does not apply to it or a value that makes no sense.

    Parameters
    ----------
    name_or_path : str or os.PathLike or None, optional
        What to load (default ``"default"``):

        - ``"default"`` (or ``"shipped"``, or None): the model shipped with the package.
        - A model folder (a `manifest.json` and its weight files, sha256-checked): a fine-tuned default
          model (what `adapt` and `train default` write), a U-Net ensemble, a full-pipeline folder or a
          saved Mask R-CNN; its `manifest.json` may be given instead of the folder.
        - A legacy matterport/nucleAIzer Mask R-CNN ``.h5`` (`mask_rcnn_final.h5`,
          `mask_rcnn_presegmentation.h5`): nucleAIzer's fast mode.
    mode : {None, "fast", "full"}, optional
        ``"full"`` with a legacy ``.h5`` (the final model): nucleAIzer's full pipeline, which also needs
        `unet` and takes `preseg_model`. None (default) or ``"fast"``: the model `name_or_path` names.
    preseg_model : str or os.PathLike, optional
        Full pipeline only: the presegmentation Mask R-CNN ``.h5`` (default: the same file as
        `name_or_path`).
    unet : str or os.PathLike, optional
        Full pipeline only, and required there: the U-Net ensemble folder (a converted ensemble, or the
        original PyTorch `kaggle_workflow/unet` folder, converted once into the work folder, or into a
        temporary folder without one).
    work_dir : str or os.PathLike, optional
        Full pipeline only (``mode="full"`` or a full-pipeline folder): cache intermediate results here,
        per image name, so a folder run resumes. None (default) keeps nothing on disk.

    Returns
    -------
    Segmenter
        A `DefaultSegmenter`, `MaskRCNNSegmenter`, `EnsembleSegmenter` or `FullSegmenter`, with
        `segment(image, **options) -> labels`, `segment_many(images, **options)`, `describe()` and,
        where the model can be saved, `save(folder)`.

    Raises
    ------
    NucleaizerError
        For an unknown `mode`; ``mode="full"`` without `unet` or with the shipped model; `preseg_model`,
        `unet` or `work_dir` given for a model that is not the full pipeline; a path that does not exist;
        a folder without a readable manifest, with a missing or corrupt (sha256) weight file, or of a kind
        that is not a segmentation model (a style-transfer generator).

    See Also
    --------
    segmenter_class : The class `load_model` would return, found without loading anything.

    Notes
    -----
    The default model and a U-Net ensemble are loaded now. A legacy ``.h5`` is only inspected now (a
    wrong file fails here) and its network built on first use; the full pipeline checks that its parts
    exist and loads its networks on first need. `Segmenter.prepare` loads everything at once.

    Examples
    --------
    The shipped model, with the nucleus size estimated per image or given in pixels:

    >>> from nucleaizer_tf import load_model
    >>> model = load_model("default")                                    # doctest: +SKIP
    >>> labels = model.segment(image)                                    # doctest: +SKIP
    >>> labels = model.segment(image, nucleus_size=25)                   # doctest: +SKIP

    A fine-tuned model folder, and nucleAIzer's fast and full modes from its legacy files:

    >>> labels = load_model("adapt_out/model").segment(image)            # doctest: +SKIP
    >>> labels = load_model("mask_rcnn_final.h5").segment(image)         # doctest: +SKIP
    >>> full = load_model("mask_rcnn_final.h5", mode="full",
    ...                   unet="unet_ensemble/", work_dir="work/")       # doctest: +SKIP

    Settings that do not fit are refused before anything is loaded:

    >>> load_model("default", unet="unet_ensemble/")
    Traceback (most recent call last):
    ...
    nucleaizer_tf.errors.NucleaizerError: --unet applies to the full pipeline only (--mode full)
    """
    from nucleaizer_tf.system import import_tensorflow

    import_tensorflow()  # before any model module imports it: no start-up chatter in a notebook
    from nucleaizer_tf.models.default import DefaultSegmenter
    from nucleaizer_tf.models.ensemble import EnsembleSegmenter
    from nucleaizer_tf.models.full import FullSegmenter
    from nucleaizer_tf.models.maskrcnn import MaskRCNNSegmenter

    if mode not in (None, "fast", "full"):
        raise NucleaizerError(f"mode must be 'fast' or 'full', got {mode!r}")
    shipped = name_or_path is None or str(name_or_path) in SHIPPED
    if mode == "full":
        if shipped or unet is None:
            raise NucleaizerError("the full pipeline needs the final Mask R-CNN weights (mask_rcnn_final.h5) "
                                  "and a U-Net ensemble folder (--model FINAL.h5 --unet DIR)")
        return FullSegmenter(preseg_model or name_or_path, name_or_path, unet, work_dir=work_dir)
    for value, what in ((preseg_model, "--preseg-model"), (unet, "--unet")):
        if value is not None:
            raise NucleaizerError(f"{what} applies to the full pipeline only (--mode full)")
    if work_dir is not None and segmenter_class(name_or_path) is not FullSegmenter:
        raise NucleaizerError("--work-dir applies to the full pipeline only")
    if shipped:
        return DefaultSegmenter.load(None)
    path = Path(name_or_path)
    if not path.exists():
        if path.suffix.lower() == ".h5":
            raise NucleaizerError(f"{path}: no such weight file")
        raise NucleaizerError(f"{path}: no such model (expected 'default', a model folder with {MANIFEST} "
                              "or a legacy Mask R-CNN .h5 file)")
    if path.is_file() and path.name != MANIFEST:
        return MaskRCNNSegmenter(path)
    folder, manifest, kind = read_manifest(path)
    if kind == "default-model":
        return DefaultSegmenter.load(folder)
    if kind == "unet-ensemble":
        return EnsembleSegmenter.load(folder)
    if kind == "full-pipeline":
        return FullSegmenter.from_folder(folder, manifest, work_dir=work_dir)
    if kind == "maskrcnn":
        return MaskRCNNSegmenter(file_entry(folder, manifest, "weights", "weight file"), source=str(folder))
    raise NucleaizerError(f"{folder}: a {kind} folder is not a segmentation model")
