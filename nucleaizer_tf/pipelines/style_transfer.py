"""Style-transfer adaptation workflow over folders, resumable stage by stage (docs/method.md §6.1, §6.12).

    IMAGES_DIR (+ masks or a presegmentation model) ──> OUT_DIR/train/{images,masks}

The workflow is steps 3-10 of docs/method.md §6.1. Stages, each finished stage recorded in
`OUT_DIR/stages/<n>_<stage>.json` (`io.stage_cache.StageLog`) with a fingerprint of the
settings it depends on (a rerun skips finished stages whose fingerprint still matches, and redoes a
stage and everything after it when it does not; inside the long stages finished clusters are kept):

1. masks       presegmentation with a legacy Mask R-CNN (`--preseg-model`) -> presegment/<stem>.tiff,
               or the user's masks (`--masks`); images without a mask are left out (reported).
2. clusters    style features, correlation k-means, best 3 per cluster (docs/method.md §6.3) -> clusters/:
               report.csv (every image: cluster, distance, kept), styles.csv (the original's
               Name,Style), features.csv, group_NNN.png contact sheets. `--single-experiment` puts
               every image into group_001 (docs/method.md §6.12).
3. tiles       each cluster's images and masks (clusters with one image: its four quadrants) cut to
               256×256 tiles -> style/<cluster>/tiles/{images,masks} (docs/method.md §6.4).
4. mask_db     the nucleus-shape database -> mask_db.npz (from `--mask-db`: a folder of label images
               or a saved .npz; default: the run's own masks).
5. synth_masks synthetic label images per cluster -> style/<cluster>/synthetic_masks/<cluster>_NNN.tiff.
6. pix2pix     one generator per cluster -> style/<cluster>/model/{generator.keras, manifest.json}.
7. generate    synthetic images -> style/<cluster>/synthetic_images/<cluster>_NNN.png and a
               real-vs-synthetic sheet style/<cluster>/comparison.png.
8. collect     all synthetic pairs -> styled/{images,masks} (the .bat flow, docs/method.md, quirk Q11 resolved).
9. augment     size-normalised, augmented 512 crops -> train/{images,masks} (style data: every 6th
               pair × 5; with `include_real` also the input pairs, real-image settings), then the
               validation carve-out by stem list (docs/method.md §6.9) -> validation/{images,masks}.

`train/` is an `images/` + `masks/` folder pair (RGB PNG + uint16 TIFF, same stems): the training
commands take it as extra data.
"""

from __future__ import annotations

import csv
import json
import os
import shutil
import warnings
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np

from nucleaizer_tf.data.pairs import match_stems, read_stem_list
from nucleaizer_tf.errors import NucleaizerError
from nucleaizer_tf.io.digest import sha256_of
from nucleaizer_tf.io.model_folder import checked_file, read_manifest, write_manifest
from nucleaizer_tf.io.stage_cache import StageLog
from nucleaizer_tf.progress import Reporter
from nucleaizer_tf.io import (LABEL_EXTENSIONS, atomic_path, list_images, read_image, read_labels, to_rgb8, write_json,
                              write_labels, write_rgb)
from nucleaizer_tf.style.synth_masks import SEED as MASK_SEED
from nucleaizer_tf.style.synth_masks import SynthesisOptions
from nucleaizer_tf.style.tiles import TILE, cut_tiles

STAGES = ("masks", "clusters", "tiles", "mask_db", "synth_masks", "pix2pix", "generate", "collect", "augment")
SINGLE_EXPERIMENT_IMAGES = 1000
IMAGES_PER_CLUSTER = 20


# --------------------------------------------------------------------------- settings and reporting


@dataclass(frozen=True)
class StyleTransferSettings:
    """Everything the workflow depends on (the CLI `nucleaizer-tf style-transfer` options, same meanings).

    The quirk switches (Q8-Q15 of docs/method.md) default to False, the original's behaviour; True gives
    the intended one.

    Attributes
    ----------
    masks_dir : str or None
        Label images (``<stem>.tiff``) of the images: presegmentations or annotations. Exactly one of
        `masks_dir` and `preseg_model` is given.
    preseg_model : str or None
        Legacy Mask R-CNN weights (`mask_rcnn_presegmentation.h5`) that presegment the images instead.
    mask_db : str or None
        The nucleus-shape database: a folder of label images or a `mask_db.npz` of an earlier run;
        None (default) = the run's own masks.
    single_experiment : bool
        One style for all images (no clustering) and 1000 synthetic images (default False).
    images_per_cluster : int or None
        Synthetic images per style cluster; None (default) = 20 (1000 with `single_experiment`).
    keep_best : int
        Images kept per cluster, the closest to its centre (3).
    replicates : int
        Replicates of the correlation k-means (30).
    ngf : int
        pix2pix generator width (64 = original; 8-16 for a quick CPU run).
    depth : int
        Generator down-sampling steps (8 for 256 tiles).
    iterations : int
        pix2pix constant-learning-rate iterations per style: 5000 // tiles epochs (5000).
    decay_epochs : int
        pix2pix epochs of linear learning-rate decay after those (100).
    final_generator : bool
        Q12: True synthesises with the final generator, not the one saved at the last multiple of 5000
        steps.
    eval_mode_synthesis : bool
        Q13: True synthesises with BatchNorm moving statistics and no dropout.
    sqrt_mask_resize : bool
        Q8: True resizes database nuclei by sqrt(area ratio), to the target area.
    stretched_simcep : bool
        Q9: True uses random shapes stretched/rotated as accepted.
    n_db_masks : int
        Database nuclei fetched per cluster as candidates for the synthetic masks (750).
    fresh_augmentations : bool
        Q10: True augments a fresh copy per output (the original compounded augmentations).
    augment_copies : int
        Augmented outputs per synthetic image (5).
    style_step : int
        Augment every k-th synthetic image (6, the original's).
    include_real : bool
        Also augment the input images with their masks into the training set (default False).
    validation : str or None
        A stem list file (one stem per line): those images go to ``OUT_DIR/validation`` and anything
        derived from them leaves the training set.
    validation_64_only : bool
        Q15 faithful when True: only 64-character stems (Kaggle ids) are moved to validation.
    seed : int
        Seed of every random choice (clustering, masks, pix2pix, augmentation) (0).
    conversion : str
        `to_rgb8` mode of the input images (``"nucleaizer"``; adapt uses ``"percentile"``, as the
        default model).
    match_cluster : bool
        False = the original's synthetic masks (canvas-filling counts, Normal areas); True = each
        cluster's own nucleus sizes and nuclei per area (what `adapt` uses; see
        `style.synth_masks.SynthesisOptions`).
    last_stage : str
        Stop after this stage (default ``"augment"``, the last; adapt stops after ``"collect"`` and
        trains its own way).

    Examples
    --------
    >>> settings = StyleTransferSettings(masks_dir="masks", ngf=16, iterations=600)
    >>> settings.n_images()
    20
    >>> StyleTransferSettings(masks_dir="masks", single_experiment=True).n_images()
    1000
    """

    masks_dir: str | None = None
    preseg_model: str | None = None
    mask_db: str | None = None
    single_experiment: bool = False
    images_per_cluster: int | None = None  # None: 20 (1000 with single_experiment)
    keep_best: int = 3
    replicates: int = 30
    ngf: int = 64
    depth: int = 8
    iterations: int = 5000
    decay_epochs: int = 100
    # Quirk switches: False = the original's behaviour (faithful default), True = the intended one.
    final_generator: bool = False  # Q12: True synthesises with the final generator, not the 5000-step one
    eval_mode_synthesis: bool = False  # Q13: True uses BatchNorm moving statistics and no dropout
    sqrt_mask_resize: bool = False  # Q8: True resizes DB nuclei by sqrt(area ratio)
    stretched_simcep: bool = False  # Q9: True uses random shapes stretched/rotated as accepted
    n_db_masks: int = 750
    fresh_augmentations: bool = False  # Q10: True augments a fresh copy per output
    augment_copies: int = 5
    style_step: int = 6
    include_real: bool = False
    validation: str | None = None  # stem list file
    validation_64_only: bool = False  # Q15 faithful: only 64-character stems are moved
    seed: int = 0
    conversion: str = "nucleaizer"  # to_rgb8 mode of the input images (adapt: "percentile", as the default model)
    # False = the original's synthetic masks (canvas-filling counts, Normal areas); True = each cluster's
    # own nucleus sizes and nuclei per area (what `adapt` uses; see style.synth_masks.SynthesisOptions)
    match_cluster: bool = False
    last_stage: str = "augment"  # stop after this stage (adapt stops after "collect" and trains its own way)

    def n_images(self) -> int:
        """Synthetic images per cluster: `images_per_cluster`, else 20 (1000 with `single_experiment`).

        Returns
        -------
        int
            The number of synthetic images asked for per cluster.

        Examples
        --------
        >>> StyleTransferSettings(images_per_cluster=40).n_images()
        40
        """
        if self.images_per_cluster is not None:
            return int(self.images_per_cluster)
        return SINGLE_EXPERIMENT_IMAGES if self.single_experiment else IMAGES_PER_CLUSTER

    def synthesis(self) -> SynthesisOptions:
        """The synthetic-mask options of these settings (database size, quirks Q8 and Q9, `match_cluster`).

        Returns
        -------
        SynthesisOptions
            The options of `style.synth_masks.generate_cluster_masks`.

        Examples
        --------
        >>> StyleTransferSettings(sqrt_mask_resize=True).synthesis().linear_area_ratio
        False
        """
        return SynthesisOptions(n_db_masks=self.n_db_masks, linear_area_ratio=not self.sqrt_mask_resize,
                                unstretched_simcep=not self.stretched_simcep, match_cluster=self.match_cluster)

    def pix2pix(self):
        """The pix2pix training configuration of these settings.

        The discriminator width is 64, or `ngf` when that is smaller; without `final_generator` a
        snapshot is kept every 5000 steps (the generator synthesis uses).

        Returns
        -------
        nucleaizer_tf.pix2pix.train.Pix2PixConfig
            Width, depth, tile size, iterations, decay epochs, snapshot interval and seed.

        Examples
        --------
        >>> StyleTransferSettings(ngf=16).pix2pix().ndf  # doctest: +SKIP
        16
        """
        from nucleaizer_tf.pix2pix.train import Pix2PixConfig

        return Pix2PixConfig(ngf=self.ngf, ndf=64 if self.ngf >= 64 else self.ngf, depth=self.depth, tile=TILE,
                             iterations=self.iterations, decay_epochs=self.decay_epochs,
                             snapshot_every=None if self.final_generator else 5000, seed=self.seed)


@dataclass
class RunReport:
    """What a style-transfer run did and made (also written to ``OUT_DIR/run.json``).

    Attributes
    ----------
    out_dir : pathlib.Path
        The run's output folder.
    stages_run : list of str
        The stages run now, in order.
    stages_skipped : list of str
        The stages already done by an earlier run.
    clusters : dict of str to list of str
        The image stems of each style cluster (``group_NNN``).
    missing_masks : list of str
        The image stems left out because they have no mask.
    pix2pix : dict of str to dict
        Per cluster with a trained generator: tiles, steps, generator step, seconds per iteration, ngf.
    n_train : int
        Training pairs written (in ``train/``, or ``styled/`` when the run stops before `augment`).
    n_validation : int
        Validation pairs in ``validation/``.
    comparisons : dict of str to str
        The real-vs-synthetic sheet of each cluster.

    Examples
    --------
    >>> report = run_style_transfer("images", "out", StyleTransferSettings(masks_dir="masks"))  # doctest: +SKIP
    >>> report.n_train, sorted(report.clusters)                                                # doctest: +SKIP
    (120, ['group_001', 'group_002'])
    >>> RunReport(Path("out")).to_dict()["n_train"]
    0
    """

    out_dir: Path
    stages_run: list[str] = field(default_factory=list)
    stages_skipped: list[str] = field(default_factory=list)
    clusters: dict[str, list[str]] = field(default_factory=dict)
    missing_masks: list[str] = field(default_factory=list)
    pix2pix: dict[str, dict] = field(default_factory=dict)
    n_train: int = 0
    n_validation: int = 0
    comparisons: dict[str, str] = field(default_factory=dict)

    def to_dict(self) -> dict:
        """The report as a JSON-able dict (`out_dir` as a string).

        Returns
        -------
        dict
            One entry per field.

        Examples
        --------
        >>> RunReport(Path("out")).to_dict()["out_dir"]
        'out'
        """
        d = asdict(self)
        d["out_dir"] = str(self.out_dir)
        return d


# --------------------------------------------------------------------------- small helpers


def _write_csv(path: Path, header: list[str], rows: list[list]) -> None:
    with atomic_path(path) as tmp, open(tmp, "w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(header)
        writer.writerows(rows)


def _labels_in(folder: Path) -> dict[str, Path]:
    if not folder.is_dir():
        return {}
    return {p.stem: p for p in sorted(folder.iterdir()) if p.is_file() and p.suffix.lower() in LABEL_EXTENSIONS
            and not p.name.startswith(".")}


def carve_out_validation(train_dir: Path, val_dir: Path, stems, *, only_64_characters: bool = False) -> tuple[int, int]:
    """docs/method.md §6.9 `moveToValidation`: move validation images out of a training folder pair.

    For each listed stem, files of `train_dir/{images,masks}` whose stem equals it are MOVED to
    `val_dir/{images,masks}`; derivatives (stems that start with it: augmentations, tiles) are DELETED so
    nothing of a validation image stays in training. With `only_64_characters` (docs/method.md, quirk
    Q15) only 64-character stems (Kaggle ids) are moved, the others deleted.

    Parameters
    ----------
    train_dir : pathlib.Path
        The training folder, with `images/` and `masks/`.
    val_dir : pathlib.Path
        The validation folder; its `images/` and `masks/` are created as needed.
    stems : iterable of str
        The validation stems (empty ones are ignored); each file is matched against the first stem it
        starts with.
    only_64_characters : bool, optional
        Move only 64-character stems (default False: move every exact match).

    Returns
    -------
    moved : int
        Files moved to `val_dir`.
    deleted : int
        Files deleted from `train_dir`.

    Examples
    --------
    >>> carve_out_validation(Path("out/train"), Path("out/validation"), ["img07"])  # doctest: +SKIP
    (2, 10)
    """
    moved = deleted = 0
    stems = [s for s in stems if s]
    for kind in ("images", "masks"):
        folder = train_dir / kind
        if not folder.is_dir():
            continue
        for path in sorted(folder.iterdir()):
            for stem in stems:
                if not path.stem.startswith(stem):
                    continue
                if path.stem == stem and (len(stem) == 64 or not only_64_characters):
                    (val_dir / kind).mkdir(parents=True, exist_ok=True)
                    os.replace(path, val_dir / kind / path.name)
                    moved += 1
                else:
                    path.unlink()
                    deleted += 1
                break
    return moved, deleted


def save_generator(model, folder: Path, manifest: dict) -> Path:
    """A model folder of kind `pix2pix-generator`: the Keras-format generator, then `manifest.json` with
    its sha256 (written last: its presence marks a finished model).

    Both files are written atomically: ``<folder>/generator.keras`` and ``<folder>/manifest.json``.

    Parameters
    ----------
    model : keras.Model
        The trained generator.
    folder : pathlib.Path
        The model folder (created if needed).
    manifest : dict
        More manifest entries (cluster, fingerprint, training configuration and results).

    Returns
    -------
    pathlib.Path
        The written `manifest.json`.

    Examples
    --------
    >>> folder = Path("out/style/group_001/model")
    >>> save_generator(trainer.generator, folder, {"cluster": "group_001"})  # doctest: +SKIP
    PosixPath('out/style/group_001/model/manifest.json')
    """

    folder.mkdir(parents=True, exist_ok=True)
    with atomic_path(folder / "generator.keras") as tmp, warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=DeprecationWarning)  # Keras' own numpy-2 `__array__` notice
        model.save(tmp)
    body = {"generator": "generator.keras", "sha256": sha256_of(folder / "generator.keras"), **manifest}
    return write_manifest(folder, "pix2pix-generator", body)


def load_generator(folder: Path):
    """(generator, manifest) of a folder `save_generator` wrote; the file's sha256 is checked.

    Parameters
    ----------
    folder : pathlib.Path
        A `pix2pix-generator` model folder.

    Returns
    -------
    generator : keras.Model
        The generator (not compiled).
    manifest : dict
        Its manifest.

    Raises
    ------
    NucleaizerError
        When the folder is not a `pix2pix-generator` folder, or its generator file is missing or corrupt.

    Examples
    --------
    >>> generator, manifest = load_generator(Path("out/style/group_001/model"))  # doctest: +SKIP
    >>> manifest["cluster"]                                                       # doctest: +SKIP
    'group_001'
    """
    import keras

    folder, manifest, _ = read_manifest(folder, expect="pix2pix-generator")
    path = checked_file(folder, manifest.get("generator"), manifest.get("sha256"), "generator file")
    _refuse_code_layers(path)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return keras.models.load_model(path, compile=False, safe_mode=True), manifest
    except Exception as exc:  # a damaged or foreign file: Keras raises many types
        raise NucleaizerError(f"{path}: cannot load the generator ({type(exc).__name__}: {str(exc)[:200]})") from None


def _refuse_code_layers(path: Path) -> None:
    """Refuse a .keras file whose configuration holds a Lambda layer (Python code), before Keras reads it."""
    import zipfile

    try:
        with zipfile.ZipFile(path) as archive:
            info = archive.getinfo("config.json")
            if info.file_size > 64 * 2**20:
                raise NucleaizerError(f"{path}: its config.json unpacks to {info.file_size:,} bytes; not a generator")
            config = archive.read(info)
    except (OSError, KeyError, zipfile.BadZipFile):
        return  # not a .keras archive: keras.models.load_model says what it is
    if b'"class_name": "Lambda"' in config or b'"class_name":"Lambda"' in config:
        raise NucleaizerError(f"{path}: contains a Lambda layer: code in a model file is never run")


# --------------------------------------------------------------------------- the workflow


class StyleTransferRun:
    """One style-transfer run over a folder (see the module docstring); `run()` does or resumes it.

    The constructor checks the settings and inputs before any work.

    Parameters
    ----------
    images_dir : str or os.PathLike
        The images of the new style(s).
    out_dir : str or os.PathLike
        The work and output folder; a rerun resumes the finished stages.
    settings : StyleTransferSettings, optional
        What the workflow does (default: the original's settings; `masks_dir` or `preseg_model` must be
        given).
    reporter : Reporter, optional
        Progress and notes (default: silent).

    Attributes
    ----------
    images : list of pathlib.Path
        The input images.
    log : StageLog
        The stage markers, under ``OUT_DIR/stages``.
    report : RunReport
        What the run did, filled by `run`.

    Raises
    ------
    NucleaizerError
        When not exactly one of `masks_dir` and `preseg_model` is given, a given file or folder does not
        exist, or `images_dir` holds no images.

    Examples
    --------
    >>> run = StyleTransferRun("images", "out", StyleTransferSettings(masks_dir="masks"))  # doctest: +SKIP
    >>> report = run.run()                                                               # doctest: +SKIP
    """

    def __init__(self, images_dir, out_dir, settings: StyleTransferSettings = StyleTransferSettings(),
                 reporter: Reporter | None = None):
        self.images_dir = Path(images_dir)
        self.out = Path(out_dir)
        self.s = settings
        self.r = reporter or Reporter()
        self.report = RunReport(self.out)
        if (settings.masks_dir is None) == (settings.preseg_model is None):
            raise NucleaizerError("give exactly one of --masks (a folder of label images) or --preseg-model (a .h5 file)")
        if settings.preseg_model is not None and not Path(settings.preseg_model).is_file():
            raise NucleaizerError(f"{settings.preseg_model}: no such presegmentation model file")
        if settings.mask_db is not None and not Path(settings.mask_db).exists():
            raise NucleaizerError(f"{settings.mask_db}: no such mask database (folder of label images or .npz)")
        if settings.validation is not None and not Path(settings.validation).is_file():
            raise NucleaizerError(f"{settings.validation}: no such stem list")
        self.images = list_images(self.images_dir)
        if not self.images:
            raise NucleaizerError(f"{self.images_dir}: no images")
        self.log = StageLog(self.out / "stages", STAGES, self._stage_key)

    # ----------------------------------------------------------------- stage bookkeeping

    def _stage_key(self, stage: str) -> dict:
        """What `stage` depends on (the stage log fingerprints it together with every earlier stage)."""
        s = self.s
        deps = {
            "masks": ["conversion"],
            "clusters": ["single_experiment", "keep_best", "replicates", "seed"],
            "tiles": [],
            "mask_db": ["mask_db"],
            "synth_masks": ["images_per_cluster", "sqrt_mask_resize", "stretched_simcep", "n_db_masks",
                            "match_cluster", "seed"],
            "pix2pix": ["ngf", "depth", "iterations", "decay_epochs", "final_generator", "seed"],
            "generate": ["eval_mode_synthesis", "seed"],
            "collect": [],
            "augment": ["fresh_augmentations", "augment_copies", "style_step", "include_real", "validation",
                        "validation_64_only", "seed"],
        }
        key = {k: getattr(s, k) for k in deps[stage]}
        if stage == "masks":
            key.update(images=[p.name for p in self.images], masks=[s.masks_dir, s.preseg_model])
        return key

    # ----------------------------------------------------------------- run

    def run(self) -> RunReport:
        """Run or resume the stages up to `settings.last_stage`, then write ``OUT_DIR/run.json``.

        ``OUT_DIR/settings.json`` records the settings first.

        Returns
        -------
        RunReport
            The stages run and skipped, clusters, pix2pix results and pair counts.

        Raises
        ------
        ValueError
            When `settings.last_stage` is not a stage name.

        Examples
        --------
        >>> report = StyleTransferRun("images", "out", settings).run()  # doctest: +SKIP
        """
        self.out.mkdir(parents=True, exist_ok=True)
        write_json(self.out / "settings.json", {"images_dir": str(self.images_dir), **asdict(self.s)})
        steps = {"masks": self.stage_masks, "clusters": self.stage_clusters, "tiles": self.stage_tiles,
                 "mask_db": self.stage_mask_db, "synth_masks": self.stage_synth_masks, "pix2pix": self.stage_pix2pix,
                 "generate": self.stage_generate, "collect": self.stage_collect, "augment": self.stage_augment}
        if self.s.last_stage not in STAGES:
            raise ValueError(f"last_stage must be one of {', '.join(STAGES)}, got {self.s.last_stage!r}")
        ran, skipped = self.log.run(steps, upto=self.s.last_stage, note=self.r.note)
        self.report.stages_run, self.report.stages_skipped = ran, skipped
        self._load_summary()
        write_json(self.out / "run.json", self.report.to_dict())
        return self.report

    def _load_summary(self) -> None:
        clusters = json.loads((self.out / "clusters" / "clusters.json").read_text())
        self.report.clusters = clusters["members"]
        self.report.missing_masks = clusters["missing_masks"]
        for cluster in self.report.clusters:
            manifest = self._cluster_dir(cluster) / "model" / "manifest.json"
            if manifest.is_file():
                m = json.loads(manifest.read_text())
                self.report.pix2pix[cluster] = {**{k: m.get(k) for k in ("n_tiles", "steps", "generator_step",
                                                                         "seconds_per_iteration")},
                                                "ngf": m.get("config", {}).get("ngf")}
            sheet = self._cluster_dir(cluster) / "comparison.png"
            if sheet.is_file():
                self.report.comparisons[cluster] = str(sheet)
        train = "train" if self.s.last_stage == "augment" else "styled"  # the last folder of pairs written
        for kind, attr in ((train, "n_train"), ("validation", "n_validation")):
            folder = self.out / kind / "images"
            setattr(self.report, attr, len(list(folder.glob("*.png"))) if folder.is_dir() else 0)

    def _cluster_dir(self, cluster: str) -> Path:
        return self.out / "style" / cluster

    def _rgb(self, path: Path) -> np.ndarray:
        return to_rgb8(read_image(path), self.s.conversion)

    def _clusters(self) -> dict[str, list[str]]:
        return json.loads((self.out / "clusters" / "clusters.json").read_text())["members"]

    # ----------------------------------------------------------------- 1. masks

    def _mask_dir(self) -> Path:
        return Path(self.s.masks_dir) if self.s.masks_dir is not None else self.out / "presegment"

    def stage_masks(self) -> dict:
        """Stage 1: check the user's masks, or presegment every image with `preseg_model`.

        Presegmentations go to ``OUT_DIR/presegment/<stem>.tiff``; an existing file there is kept.

        Returns
        -------
        dict
            What the stage marker records: ``source``: the mask folder.

        Examples
        --------
        >>> facts = run.stage_masks()  # doctest: +SKIP
        """
        if self.s.preseg_model is None:
            match_stems(self.images_dir, self._mask_dir(), allow_missing_right=True)  # raises on a bad folder
            return {"source": str(self._mask_dir())}
        from nucleaizer_tf.models.load import load_model

        model = load_model(self.s.preseg_model)  # nucleAIzer's presegmentation settings
        model.prepare()
        out = self._mask_dir()
        with self.r.stage("presegmenting", len(self.images)) as advance:
            for path in self.images:
                target = out / f"{path.stem}.tiff"
                if not target.is_file():
                    write_labels(target, model.segment(self._rgb(path)))
                advance(path.stem)
        return {"source": str(out)}

    def _pairs(self) -> tuple[list[tuple[str, Path, Path]], list[str]]:
        matched = match_stems(self.images_dir, self._mask_dir(), allow_missing_right=True)
        return [(s, i, m) for s, i, m in matched if m is not None], [s for s, _, m in matched if m is None]

    # ----------------------------------------------------------------- 2. clusters

    def stage_clusters(self) -> dict:
        """Stage 2: style features and correlation k-means, best `keep_best` per cluster (docs/method.md §6.3).

        Writes ``clusters/``: report.csv, styles.csv, clusters.json, group_NNN.png sheets and (unless
        `single_experiment`: every image in group_001) features.csv.

        Returns
        -------
        dict
            What the stage marker records: ``clusters``: the number of clusters.

        Examples
        --------
        >>> facts = run.stage_clusters()  # doctest: +SKIP
        """
        from nucleaizer_tf.style.clustering import THRASH, cluster_styles, contact_sheet
        from nucleaizer_tf.style.features import FEATURE_NAMES, image_style_features, style_distances

        pairs, missing = self._pairs()
        if missing:
            self.r.note(f"{len(missing)} image(s) without a mask are left out: {', '.join(missing[:5])}"
                        + (" ..." if len(missing) > 5 else ""))
        if not pairs:
            raise NucleaizerError(f"no image in {self.images_dir} has a mask in {self._mask_dir()}")
        folder = self.out / "clusters"
        names = [s for s, _, _ in pairs]
        if self.s.single_experiment:
            members = {"group_001": names}
            rows = [[n, 1, 1, 0.0, True] for n in names]
            thumbs = {"group_001": [(self._rgb(i), True, n[:10]) for n, i, _ in pairs]}
        else:
            feats = []
            with self.r.stage("style features", len(pairs)) as advance:
                for stem, image_path, mask_path in pairs:
                    feats.append(image_style_features(self._rgb(image_path), read_labels(mask_path)))
                    advance(stem)
            feats = np.array(feats)
            _write_csv(folder / "features.csv", ["name", *FEATURE_NAMES],
                       [[n, *(f"{v:.6g}" for v in row)] for n, row in zip(names, feats)])
            result = cluster_styles(names, style_distances(feats).distances, keep=self.s.keep_best,
                                    replicates=self.s.replicates, seed=self.s.seed)
            members = {f"group_{g:03d}": result.members(g) for g in result.groups if result.members(g)}
            rows = [[r["name"], r["style"], r["assigned"], f"{r['distance']:.6f}", r["kept"]] for r in result.rows()]
            by_name = {s: i for s, i, _ in pairs}
            thumbs = {}
            for g in result.groups:
                everyone = result.members(g, kept_only=False)
                thumbs[f"group_{g:03d}"] = [(self._rgb(by_name[n]), result.cluster[names.index(n)] != THRASH, n[:10])
                                            for n in everyone]
            self.r.note(f"{len(names)} images -> {result.k} clusters (k chosen from "
                        + ", ".join(f"{k}: {t:.3f}" for k, t in result.candidates) + ")")
        _write_csv(folder / "report.csv", ["name", "style", "assigned", "distance", "kept"], rows)
        _write_csv(folder / "styles.csv", ["Name", "Style"],
                   [[f"{r[0]}.png", r[1]] for r in rows])
        for cluster, items in thumbs.items():
            sheet = contact_sheet([t[0] for t in items], [t[1] for t in items], [t[2] for t in items])
            write_rgb(folder / f"{cluster}.png", sheet)
        write_json(folder / "clusters.json", {"members": members, "missing_masks": missing})
        return {"clusters": len(members)}

    # ----------------------------------------------------------------- 3. tiles

    def stage_tiles(self) -> dict:
        """Stage 3: each cluster's images and masks cut to 256×256 tiles (docs/method.md §6.4).

        Into ``style/<cluster>/tiles/{images,masks}``; a cluster of one image uses its four quadrants.

        Returns
        -------
        dict
            What the stage marker records: ``tiles``: the number of tiles written.

        Examples
        --------
        >>> facts = run.stage_tiles()  # doctest: +SKIP
        """
        from nucleaizer_tf.style.clustering import quadrants

        pairs = {s: (i, m) for s, i, m in self._pairs()[0]}
        clusters = self._clusters()
        count = 0
        with self.r.stage("tiling", len(clusters)) as advance:
            for cluster, names in clusters.items():
                folder = self._cluster_dir(cluster) / "tiles"
                shutil.rmtree(folder, ignore_errors=True)
                items = [(n, self._rgb(pairs[n][0]), read_labels(pairs[n][1])) for n in names]
                if len(items) <= 1:  # multiplySmallFolders: one image becomes its four quadrants
                    items = [(f"{n}_{q + 1:02d}", qi, ql) for n, img, lab in items
                             for q, (qi, ql) in enumerate(zip(quadrants(img), quadrants(lab)))]
                for name, image, labels in items:
                    for tile_name, timg, tlab in cut_tiles(name, image, labels):
                        write_rgb(folder / "images" / f"{tile_name}.png", timg)
                        write_labels(folder / "masks" / f"{tile_name}.tiff", tlab)
                        count += 1
                advance(cluster)
        return {"tiles": count}

    def _tiles(self, cluster: str) -> list[tuple[np.ndarray, np.ndarray]]:
        folder = self._cluster_dir(cluster) / "tiles"
        return [(self._rgb(i), read_labels(m)) for _, i, m in match_stems(folder / "images", folder / "masks")]

    # ----------------------------------------------------------------- 4. mask database

    def stage_mask_db(self) -> dict:
        """Stage 4: the nucleus-shape database, written atomically to ``OUT_DIR/mask_db.npz``.

        Built from `settings.mask_db` (a folder of label images, or an .npz read as it is), else the run's masks.

        Returns
        -------
        dict
            What the stage marker records: ``objects`` (nuclei in the database) and ``source``.

        Examples
        --------
        >>> facts = run.stage_mask_db()  # doctest: +SKIP
        """
        from nucleaizer_tf.style.maskdb import MaskDB, build_mask_db

        target = self.out / "mask_db.npz"
        source = Path(self.s.mask_db) if self.s.mask_db is not None else self._mask_dir()
        if source.is_file() and source.suffix == ".npz":
            with np.load(source) as arrays:
                db = MaskDB.from_arrays(arrays)
        else:
            if self.s.mask_db is None:
                self.r.note(f"no --mask-db: nucleus shapes come from the run's own masks ({source}); "
                            "the original used a database of 1,047 annotated masks")
            files = list(_labels_in(source).values())
            if not files:
                raise NucleaizerError(f"{source}: no label images (tif, tiff, png) for the mask database")
            with self.r.stage("mask database", len(files)) as advance:
                db = build_mask_db((read_labels(f) for f in files), progress=advance)
        with atomic_path(target) as tmp, open(tmp, "wb") as fh:
            np.savez(fh, **db.to_arrays())
        return {"objects": len(db), "source": str(source)}

    # ----------------------------------------------------------------- 5. synthetic masks

    def stage_synth_masks(self) -> dict:
        """Stage 5: synthetic label images per cluster.

        Into ``style/<cluster>/synthetic_masks/<cluster>_NNN.tiff``; a cluster whose tiles give no
        statistics is noted and skipped.

        Returns
        -------
        dict
            What the stage marker records: ``images``: synthetic masks written per cluster.

        Examples
        --------
        >>> facts = run.stage_synth_masks()  # doctest: +SKIP
        """
        from nucleaizer_tf.style.maskdb import MaskDB
        from nucleaizer_tf.style.synth_masks import cluster_statistics, generate_cluster_masks, images_for_cluster

        with np.load(self.out / "mask_db.npz") as arrays:
            db = MaskDB.from_arrays(arrays)
        clusters = self._clusters()
        totals = {}
        for index, cluster in enumerate(clusters):
            folder = self._cluster_dir(cluster) / "synthetic_masks"
            shutil.rmtree(folder, ignore_errors=True)
            tiles = [lab for _, lab in self._tiles(cluster)]
            try:
                n = images_for_cluster(cluster_statistics(tiles), self.s.n_images())
            except ValueError as exc:
                self.r.note(f"{cluster}: {exc}; no synthetic images for it")
                continue
            with self.r.stage(f"synthetic masks {cluster}", n) as advance:
                labels, _ = generate_cluster_masks(db, tiles, n, seed=MASK_SEED + self.s.seed + index,
                                                   options=self.s.synthesis(), progress=advance)
            for j, lab in enumerate(labels):
                write_labels(folder / f"{cluster}_{j + 1:03d}.tiff", lab)
            totals[cluster] = len(labels)
        return {"images": totals}

    # ----------------------------------------------------------------- 6. pix2pix

    def stage_pix2pix(self) -> dict:
        """Stage 6: one pix2pix generator per cluster, saved with `save_generator`.

        Into ``style/<cluster>/model/``; a generator already trained with the same fingerprint is kept (a
        resumed stage).

        Returns
        -------
        dict
            What the stage marker records: ``models``: steps and seconds per iteration of each generator trained now.

        Examples
        --------
        >>> facts = run.stage_pix2pix()  # doctest: +SKIP
        """
        from nucleaizer_tf.pix2pix.train import Pix2PixTrainer, schedule

        config = self.s.pix2pix()
        results = {}
        trainer = None
        for cluster in self._clusters():
            if not (self._cluster_dir(cluster) / "synthetic_masks").is_dir():
                continue
            folder = self._cluster_dir(cluster) / "model"
            manifest = folder / "manifest.json"
            fingerprint = self.log.fingerprint("pix2pix")
            if manifest.is_file() and json.loads(manifest.read_text()).get("fingerprint") == fingerprint:
                self.r.note(f"{cluster}: pix2pix model already trained, kept")  # resumed mid-stage
                continue
            tiles = self._tiles(cluster)
            _, _, total = schedule(len(tiles), config.iterations, config.decay_epochs)
            if trainer is None:
                trainer = Pix2PixTrainer(config)
            else:
                trainer.reset()  # same initial weights, and the training step stays traced
            with self.r.stage(f"pix2pix {cluster}", total) as advance:
                result = trainer.fit(tiles, progress=lambda step, total, losses: advance(f"L1 {losses['l1']:.3f}"))
            info = {"cluster": cluster, "fingerprint": fingerprint, "config": config.to_dict(), "n_tiles": len(tiles),
                    **result.to_dict()}
            save_generator(trainer.generator, folder, info)
            results[cluster] = {"steps": result.steps, "seconds_per_iteration": result.seconds_per_iteration}
            self.r.note(f"{cluster}: {result.steps} iterations, {result.seconds_per_iteration * 1000:.1f} ms each")
        return {"models": results}

    # ----------------------------------------------------------------- 7. generate

    def stage_generate(self) -> dict:
        """Stage 7: synthetic images from the synthetic masks, and a real-vs-synthetic sheet per cluster.

        Into ``style/<cluster>/synthetic_images/<cluster>_NNN.png`` and ``style/<cluster>/comparison.png``.

        Returns
        -------
        dict
            What the stage marker records: ``images``: the number of synthetic images.

        Examples
        --------
        >>> facts = run.stage_generate()  # doctest: +SKIP
        """
        import keras

        from nucleaizer_tf.pix2pix.generate import generate_images
        from nucleaizer_tf.style.clustering import contact_sheet

        pairs = {s: i for s, i, _ in self._pairs()[0]}
        count = 0
        for index, (cluster, names) in enumerate(self._clusters().items()):
            model_dir = self._cluster_dir(cluster) / "model"
            masks = _labels_in(self._cluster_dir(cluster) / "synthetic_masks")
            if not masks or not (model_dir / "manifest.json").is_file():
                continue
            keras.utils.set_random_seed(self.s.seed + index)
            generator, _ = load_generator(model_dir)
            out = self._cluster_dir(cluster) / "synthetic_images"
            shutil.rmtree(out, ignore_errors=True)  # the stage runs when the models changed: render anew
            shown = []
            with self.r.stage(f"synthesising {cluster}", len(masks)) as advance:
                for name, path in masks.items():
                    target = out / f"{name}.png"
                    image = generate_images(generator, [read_labels(path)], training=not self.s.eval_mode_synthesis)[0]
                    write_rgb(target, image)
                    count += 1
                    if len(shown) < 4:
                        shown.append(image)
                    advance(name)
            real = [self._rgb(pairs[n]) for n in names[:4] if n in pairs]
            sheet = contact_sheet(real + shown, [True] * len(real) + [False] * len(shown),
                                  ["real"] * len(real) + ["synthetic"] * len(shown), thumb=256, columns=4)
            write_rgb(self._cluster_dir(cluster) / "comparison.png", sheet)
        return {"images": count}

    # ----------------------------------------------------------------- 8. collect

    def stage_collect(self) -> dict:
        """Stage 8: every synthetic pair copied to ``OUT_DIR/styled/{images,masks}``.

        The folder is made anew (docs/method.md, quirk Q11 resolved).

        Returns
        -------
        dict
            What the stage marker records: ``pairs``: the number of pairs.

        Examples
        --------
        >>> facts = run.stage_collect()  # doctest: +SKIP
        """
        out = self.out / "styled"
        shutil.rmtree(out, ignore_errors=True)
        count = 0
        for cluster in self._clusters():
            images = self._cluster_dir(cluster) / "synthetic_images"
            masks = _labels_in(self._cluster_dir(cluster) / "synthetic_masks")
            if not images.is_dir():
                continue
            for path in sorted(images.glob("*.png")):
                if path.stem in masks:
                    (out / "images").mkdir(parents=True, exist_ok=True)
                    (out / "masks").mkdir(parents=True, exist_ok=True)
                    shutil.copyfile(path, out / "images" / path.name)
                    shutil.copyfile(masks[path.stem], out / "masks" / f"{path.stem}.tiff")
                    count += 1
        return {"pairs": count}

    # ----------------------------------------------------------------- 9. augment

    def stage_augment(self) -> dict:
        """Stage 9: augmented 512 crops to ``OUT_DIR/train/{images,masks}``, then the validation carve-out.

        Style data: every `style_step`-th pair × `augment_copies`; with `include_real` also the input pairs.

        Returns
        -------
        dict
            What the stage marker records: ``written``, ``validation_moved`` and ``validation_deleted``.

        Examples
        --------
        >>> facts = run.stage_augment()  # doctest: +SKIP
        """
        from nucleaizer_tf.style.augment import augment_set, settings_for

        train = self.out / "train"
        validation = self.out / "validation"
        shutil.rmtree(train, ignore_errors=True)
        shutil.rmtree(validation, ignore_errors=True)
        jobs = []
        styled = self.out / "styled"
        if (styled / "images").is_dir():
            pairs = match_stems(styled / "images", styled / "masks")
            settings = settings_for("style", self.s.augment_copies)
            jobs.append(("style", pairs[:: max(1, self.s.style_step)], replace(settings, step=1)))
        if self.s.include_real:
            jobs.append(("real", self._pairs()[0], settings_for("real")))
        written = 0
        for index, (kind, pairs, settings) in enumerate(jobs):
            items = ((stem, self._rgb(i), read_labels(m)) for stem, i, m in pairs)
            with self.r.stage(f"augmenting {kind} data", len(pairs)) as advance:
                last = None
                for name, image, labels in augment_set(items, settings, seed=self.s.seed + index,
                                                       compound=not self.s.fresh_augmentations):
                    write_rgb(train / "images" / f"{name}.png", image)
                    write_labels(train / "masks" / f"{name}.tiff", labels)
                    written += 1
                    source = name.rsplit("_aug", 1)[0]
                    if source != last:
                        advance(source)
                        last = source
        if written == 0:
            raise NucleaizerError("augmentation wrote no training pair (no synthetic image had a nucleus)")
        moved = deleted = 0
        if self.s.validation is not None:
            stems = read_stem_list(self.s.validation)
            moved, deleted = carve_out_validation(train, validation, stems,
                                                  only_64_characters=self.s.validation_64_only)
            copied = 0
            for stem, image_path, mask_path in self._pairs()[0]:  # the originals themselves
                if stem in stems and not (validation / "images" / f"{stem}.png").exists():
                    write_rgb(validation / "images" / f"{stem}.png", self._rgb(image_path))
                    write_labels(validation / "masks" / f"{stem}.tiff", read_labels(mask_path))
                    copied += 1
            self.r.note(f"validation: {copied + moved} pair(s) in {validation}, {deleted} derived file(s) removed")
        return {"written": written, "validation_moved": moved, "validation_deleted": deleted}


def run_style_transfer(images_dir, out_dir, settings: StyleTransferSettings = StyleTransferSettings(),
                       reporter: Reporter | None = None) -> RunReport:
    """Run (or resume) the style-transfer workflow; see the module doc for stages and outputs.

    Parameters
    ----------
    images_dir : str or os.PathLike
        The images of the new style(s).
    out_dir : str or os.PathLike
        The work and output folder; the training set is ``OUT_DIR/train/{images,masks}``.
    settings : StyleTransferSettings, optional
        What the workflow does; `masks_dir` or `preseg_model` must be given.
    reporter : Reporter, optional
        Progress and notes (default: silent).

    Returns
    -------
    RunReport
        The stages run and skipped, clusters, pix2pix results and pair counts.

    Raises
    ------
    NucleaizerError
        For bad settings or inputs (see `StyleTransferRun`), or a stage that cannot go on (no image with
        a mask, no training pair written).

    Examples
    --------
    >>> settings = StyleTransferSettings(masks_dir="masks", ngf=16, iterations=600)  # doctest: +SKIP
    >>> report = run_style_transfer("images", "out", settings)                      # doctest: +SKIP
    >>> report.n_train                                                              # doctest: +SKIP
    120
    """
    return StyleTransferRun(images_dir, out_dir, settings, reporter).run()
