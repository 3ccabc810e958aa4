"""`load_model`: the one way to get a segmenter, whatever the model is."""

from __future__ import annotations

import os
from pathlib import Path

from nucleaizer_tf.errors import NucleaizerError
from nucleaizer_tf.models.base import Segmenter

SHIPPED = ("default", "shipped")


def segmenter_class(name_or_path=None, mode: str | None = None) -> type[Segmenter]:
    """The class of segmenter `load_model(name_or_path, mode=mode)` returns, found without loading
    anything (for checking options before a slow load); `Segmenter` itself when undecidable."""
    from nucleaizer_tf.models.default import DefaultSegmenter
    from nucleaizer_tf.models.ensemble import EnsembleSegmenter
    from nucleaizer_tf.models.folder import MANIFEST, read_manifest
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

    Parameters
    ----------
    name_or_path
        ``"default"`` (or None): the model shipped with the package. A model folder (a `manifest.json`
        and its weight files): a fine-tuned default model (what `adapt` and `train default` write), a
        U-Net ensemble, a full-pipeline folder or a saved Mask R-CNN. A legacy matterport/nucleAIzer
        Mask R-CNN ``.h5`` (`mask_rcnn_final.h5`, `mask_rcnn_presegmentation.h5`): nucleAIzer's fast mode.
    mode
        ``"full"`` with a legacy ``.h5`` (the final model): nucleAIzer's full pipeline, which also needs
        `unet` (an ensemble folder) and takes `preseg_model` (default: the same file).
    preseg_model, unet
        The full pipeline's other parts.
    work_dir
        Full pipeline only: cache intermediate results here, per image name, so a folder run resumes.

    Returns
    -------
    Segmenter
        With `segment(image, **options) -> labels`, `segment_many(images, **options)`, `describe()`
        and, where the model can be saved, `save(folder)`.

    Examples
    --------
    >>> from nucleaizer_tf import load_model
    >>> labels = load_model("default").segment(image)                   # doctest: +SKIP
    >>> labels = load_model("mask_rcnn_final.h5").segment(image)         # doctest: +SKIP
    >>> labels = load_model("adapt_out/model").segment(image)            # doctest: +SKIP
    """
    from nucleaizer_tf.models.default import DefaultSegmenter
    from nucleaizer_tf.models.ensemble import EnsembleSegmenter
    from nucleaizer_tf.models.folder import MANIFEST, read_manifest
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
        from nucleaizer_tf.models.folder import checked_file

        entry = manifest["weights"]
        return MaskRCNNSegmenter(checked_file(folder, entry["file"], entry.get("sha256"), "weight file"),
                                 source=str(folder))
    raise NucleaizerError(f"{folder}: a {kind} folder is not a segmentation model")
