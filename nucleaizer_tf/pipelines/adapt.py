"""nucleAIzer's parameter-free adaptation loop in one call: a model learns a new image style without
annotation.

    IMAGES ──presegment──> nuclei of the starting model ──style──> clusters, synthetic masks with each
    style's nucleus sizes and density, one pix2pix per style, synthetic annotated images ──finetune──>
    OUT/model ──segment──> OUT/labels ──report──> OUT/report.md, OUT/report.json, OUT/before_after.png

Stages (each resumable: a finished stage is recorded in `OUT/work/stages/`, with a fingerprint of the
settings it depends on; a rerun after Ctrl-C continues where it stopped, and a changed setting redoes
the stages it affects):

1. presegment  the starting model (`--model`: the shipped default model, a fine-tuned model folder or
               legacy Mask R-CNN weights) segments every image -> OUT/work/presegment/<stem>.tiff;
               an image that cannot be read is reported and skipped. The images are shown to it as they
               are or as inverted grey (`presegment_view`; by default a default model sees light-field
               images both ways and the view in which more of its nuclei are confident is kept).
2. style       the style-transfer workflow (`pipelines.style_transfer`) on those nuclei, up to its
               collected synthetic pairs -> OUT/work/style/styled/{images,masks}; clusters and
               real-vs-synthetic sheets under OUT/work/style/. Synthetic masks follow each cluster's
               own nucleus sizes and nuclei per area (`match_cluster`), database nuclei are resized to
               the target area (docs/method.md, quirk Q8: the intended form), images are read with the
               percentile stretch the default model uses.
3. finetune    the default model (the starting one when it is a default model, else the shipped one)
               trained further on the synthetic pairs and/or its own confident nuclei (`self_training`)
               (+ `--masks` annotations, + the recipe's own generated images, `include_recipe`, on by
               default), its batch normalisation kept as it was, at `FINE_TUNE_LEARNING_RATE`
               -> OUT/model/ (a model folder `predict --model` and `load_model` read).
4. segment     IMAGES segmented again with the adapted model -> OUT/labels/<stem>.tiff (+ run record).
5. report      OUT/report.json and OUT/report.md (stages, times, clusters, nucleus counts before and
               after, DSB before/after on `evaluate_masks` if given) and OUT/before_after.png.

Presets set the pix2pix width and iterations and the fine-tuning length (`PRESETS`).
"""

from __future__ import annotations

import json
import math
import os
import shutil
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np

from nucleaizer_tf.errors import NucleaizerError
from nucleaizer_tf.io import list_images, read_image, read_labels, safe_stem, write_image, write_json, write_labels, write_rgb
from nucleaizer_tf.io.stage_cache import StageLog
from nucleaizer_tf.progress import SILENT, Reporter

STAGES = ("presegment", "style", "finetune", "segment", "report")
#: where `adapt_arrays` writes the images it is given, inside OUT
INPUTS_DIR = "inputs"
#: fewer presegmented nuclei than this (of at least `MIN_NUCLEUS_AREA` px²) cannot describe a style
MIN_NUCLEI = 10
MIN_NUCLEUS_AREA = 35
SHIPPED_MASK_DB = "mask_db.npz"
#: images in the report's before/after figure: those the adaptation changed most
FIGURE_ROWS = 4
#: how the starting model may be shown the images: as they are, as inverted grey, or the better of both
VIEWS = ("auto", "as-is", "inverted")
#: Adam's learning rate of the fine-tuning (a third of the recipe's own fine-tuning rate: it keeps
#: more of what the starting model knew; weights/README.md, leave-one-modality-out)
FINE_TUNE_LEARNING_RATE = 1e-4


@dataclass(frozen=True)
class AdaptPreset:
    """pix2pix width (`ngf`), constant-rate iterations and decay epochs, synthetic images per style,
    and the fine-tuning length (epochs × batches of 16 crops).

    Attributes
    ----------
    ngf : int
        pix2pix generator width.
    iterations : int
        pix2pix constant-learning-rate iterations per style.
    decay_epochs : int
        pix2pix epochs of linear learning-rate decay after those.
    images_per_cluster : int or None
        Synthetic images per style; None = the style-transfer default (20, 1000 with a single
        experiment).
    epochs : int
        Fine-tuning epochs.
    steps_per_epoch : int
        Fine-tuning batches (of 16 crops) per epoch.

    Examples
    --------
    >>> PRESETS["quick"]
    AdaptPreset(ngf=16, iterations=600, decay_epochs=0, images_per_cluster=20, epochs=8, steps_per_epoch=20)
    >>> PRESETS["original"].ngf
    64
    """

    ngf: int
    iterations: int
    decay_epochs: int
    images_per_cluster: int | None
    epochs: int
    steps_per_epoch: int


PRESETS = {
    # 195 s for 10 images of 512² on 2 idle CPU cores, standard 827 s (README, "adapt"; scripts/bench_adapt.py)
    "quick": AdaptPreset(ngf=16, iterations=600, decay_epochs=0, images_per_cluster=20, epochs=8, steps_per_epoch=20),
    "standard": AdaptPreset(ngf=32, iterations=2000, decay_epochs=20, images_per_cluster=40, epochs=15,
                            steps_per_epoch=30),
    # nucleAIzer's pix2pix (ngf 64, 5000 // tiles epochs + 100 decay epochs, 20 images per style, 1000
    # with a single experiment) and the default model's full training length
    "original": AdaptPreset(ngf=64, iterations=5000, decay_epochs=100, images_per_cluster=None, epochs=30,
                            steps_per_epoch=40),
}


@dataclass(frozen=True)
class AdaptSettings:
    """What `adapt` does (the CLI's `nucleaizer-tf adapt` options, same names).

    Attributes
    ----------
    model : str
        The starting model: ``"default"`` (the shipped model), a fine-tuned model folder or legacy
        Mask R-CNN weights (default ``"default"``).
    preset : str
        ``"quick"`` (default), ``"standard"`` or ``"original"``: pix2pix size and iterations and the
        fine-tuning length (`PRESETS`).
    single_experiment : bool
        One style for all images (no clustering) (default False).
    mask_db : str or None
        The nucleus-shape database; None (default) = the one shipped with the package.
    masks : str or None
        Annotations of some of the images, used for fine-tuning too.
    include_recipe : bool
        Add 40 of the default recipe's generated training images to the fine-tuning (default True: it
        keeps what the starting model knew; measured in weights/README.md, leave-one-style-out).
    synthetic : bool
        Learn the styles with pix2pix and fine-tune on annotated synthetic images rendered in them
        (nucleAIzer's way; default True).
    self_training : bool or None
        Fine-tune on the starting model's own confident nuclei in the images, the uncertain pixels
        left out of the loss (`default_model.self_training`; needs a default model to start from).
        None (default): on when the starting model is a default model, off for Mask R-CNN.
    min_confidence : float
        Self-training keeps a nucleus whose mean foreground probability is at least this (0.85).
    presegment_view : str
        How the starting model is shown the images when presegmenting: ``"as-is"``, ``"inverted"``
        (`default_model.preprocess.inverted_grey`: dark nuclei on a light field shown as a
        fluorescence-trained model knows them) or ``"auto"`` (default: with a default model, the
        light-field images, `is_light_field`, are segmented both ways and kept in the view where more
        of the nuclei are confident, `confident_pixels`; other images and a Mask R-CNN start: as-is).
        The fine-tuning sees the images as they are, and with self-training also in their kept view.
    evaluate_masks : str or None
        Annotations to score before/after (never used for training).
    nucleus_size : float or None
        Nucleus diameter in pixels for the presegmentation; None (default) = estimated per image.
    seed : int
        Seed of the style transfer and the fine-tuning (0).
    ngf, iterations, decay_epochs, epochs : int or None
        Overrides of the preset's values (None: the preset's value); `decay_epochs` may be 0.

    Examples
    --------
    >>> settings = AdaptSettings(preset="standard", epochs=5)
    >>> settings.resolved_preset().epochs
    5
    """

    model: str = "default"
    preset: str = "quick"
    single_experiment: bool = False
    mask_db: str | None = None  # None: the database shipped with the package
    masks: str | None = None  # annotations of some of the images, used for fine-tuning too
    include_recipe: bool = True  # add 40 of the default recipe's generated training images to the fine-tuning
    synthetic: bool = True  # pix2pix renderings in the images' styles
    self_training: bool | None = None  # the starting model's confident nuclei (None: with a default model)
    min_confidence: float = 0.85
    presegment_view: str = "auto"  # as-is, inverted (grey) or auto (the view with more confident nuclei)
    evaluate_masks: str | None = None  # annotations to score before/after (never used for training)
    nucleus_size: float | None = None  # for the presegmentation (None: estimated per image)
    seed: int = 0
    # overrides of the preset (None: the preset's value)
    ngf: int | None = None
    iterations: int | None = None
    decay_epochs: int | None = None
    epochs: int | None = None

    def resolved_preset(self) -> AdaptPreset:
        """The preset with the overrides `ngf`, `iterations`, `decay_epochs` and `epochs` applied.

        Returns
        -------
        AdaptPreset
            The values the run uses.

        Raises
        ------
        NucleaizerError
            For an unknown preset, or an override that is not a whole number of at least 1.

        Examples
        --------
        >>> AdaptSettings(iterations=300).resolved_preset().iterations
        300
        >>> AdaptSettings(preset="original", decay_epochs=0).resolved_preset().decay_epochs
        0
        >>> AdaptSettings(preset="fast").resolved_preset()
        Traceback (most recent call last):
        ...
        nucleaizer_tf.errors.NucleaizerError: --preset must be one of quick, standard, original, got 'fast'
        """
        if self.preset not in PRESETS:
            raise NucleaizerError(f"--preset must be one of {', '.join(PRESETS)}, got {self.preset!r}")
        base = PRESETS[self.preset]
        changes = {k: v for k, v in (("ngf", self.ngf), ("iterations", self.iterations),
                                     ("decay_epochs", self.decay_epochs), ("epochs", self.epochs)) if v is not None}
        for name, value in changes.items():
            least = 0 if name == "decay_epochs" else 1
            if not isinstance(value, int) or value < least:
                raise NucleaizerError(f"--{name.replace('_', '-')} must be a whole number of at least {least}, "
                                      f"got {value!r}")
        return replace(base, **changes)


@dataclass
class AdaptReport:
    """What an adaptation run did.

    Attributes
    ----------
    out_dir : pathlib.Path
        The output folder.
    stages_run : list of str
        The stages run now, in order.
    stages_skipped : list of str
        The stages already done by an earlier run.
    failures : list of tuple
        ``(image, one-line error)`` of each image the presegmentation skipped.
    summary : dict
        The content of ``OUT/report.json``.

    Examples
    --------
    >>> report = adapt("new_stain/", "adapted/")        # doctest: +SKIP
    >>> report.summary["scores"], report.stages_skipped  # doctest: +SKIP
    (None, [])
    """

    out_dir: Path
    stages_run: list[str] = field(default_factory=list)
    stages_skipped: list[str] = field(default_factory=list)
    failures: list[tuple[str, str]] = field(default_factory=list)
    summary: dict = field(default_factory=dict)


def shipped_mask_db() -> Path:
    """The small nucleus-shape database shipped with the package (`weights/mask_db.npz`).

    Returns
    -------
    pathlib.Path
        Its path inside the installed package.

    Examples
    --------
    >>> shipped_mask_db().name
    'mask_db.npz'
    """
    from importlib.resources import files

    return Path(str(files("nucleaizer_tf.weights"))) / SHIPPED_MASK_DB


class AdaptRun:
    """One adaptation run over a folder (see the module docstring); `run()` does or resumes it.

    The constructor checks the settings, inputs and options before any work.

    Parameters
    ----------
    images_dir : str or os.PathLike
        The new experiment's images.
    out_dir : str or os.PathLike
        The output folder; it must differ from `images_dir`.
    settings : AdaptSettings, optional
        What the run does (default: `AdaptSettings()`).
    reporter : Reporter, optional
        Progress and notes (default: silent).

    Attributes
    ----------
    images : list of pathlib.Path
        The input images.
    preset : AdaptPreset
        The preset with the overrides applied.
    mask_db : pathlib.Path
        The nucleus-shape database used.
    start_kind : type
        The class of the starting model (see `models.load.segmenter_class`).
    log : StageLog
        The stage markers, under ``OUT/work/stages``.
    report : AdaptReport
        What the run did, filled by `run`.

    Raises
    ------
    NucleaizerError
        For a bad preset or override, no images, an output folder equal to the image folder, a missing
        mask database, mask folder or starting model, or a `nucleus_size` the starting model refuses.

    Examples
    --------
    >>> run = AdaptRun("new_stain/", "adapted/", AdaptSettings(preset="quick"))  # doctest: +SKIP
    >>> report = run.run()                                                       # doctest: +SKIP
    """

    def __init__(self, images_dir, out_dir, settings: AdaptSettings = AdaptSettings(), reporter: Reporter = SILENT):
        self.images_dir, self.out = Path(images_dir), Path(out_dir)
        self.s, self.r = settings, reporter
        self.preset = settings.resolved_preset()
        self.images = list_images(self.images_dir)
        if not self.images:
            raise NucleaizerError(f"{self.images_dir}: no images")
        if self.out.exists() and self.out.resolve() == self.images_dir.resolve():
            raise NucleaizerError(f"{self.out}: the output folder must differ from the image folder")
        for value, what in ((settings.mask_db, "mask database"), (settings.masks, "mask folder"),
                            (settings.evaluate_masks, "mask folder")):
            if value is not None and not Path(value).exists():
                raise NucleaizerError(f"{value}: no such {what}")
        self.mask_db = Path(settings.mask_db) if settings.mask_db is not None else shipped_mask_db()
        if not self.mask_db.exists():
            raise NucleaizerError(f"{self.mask_db}: the shipped mask database is missing (reinstall, or give --mask-db)")
        from nucleaizer_tf.models.load import SHIPPED, segmenter_class

        if str(settings.model) not in SHIPPED and not Path(settings.model).exists():
            raise NucleaizerError(f"{settings.model}: no such model (expected 'default', a model folder or a .h5 file)")
        self.start_kind = segmenter_class(settings.model)
        from nucleaizer_tf.models.default import DefaultSegmenter

        if settings.self_training is None:  # by default: wherever it can, from a default model
            settings = replace(settings, self_training=self.start_kind is DefaultSegmenter)
            self.s = settings
        if not (settings.synthetic or settings.self_training or settings.masks):
            raise NucleaizerError("adapt needs something to learn from: synthetic images (--synthetic), "
                                  "self-training (--self-training) or annotations (--masks)")
        if settings.self_training:
            if self.start_kind is not DefaultSegmenter:
                raise NucleaizerError(f"{settings.model}: self-training needs a default model to start from "
                                      "(its probability maps say which nuclei are confident)")
        if not 0.0 < settings.min_confidence <= 1.0:
            raise NucleaizerError(f"--min-confidence must be in (0, 1], got {settings.min_confidence}")
        if settings.presegment_view not in VIEWS:
            raise NucleaizerError(f"--presegment-view must be one of {', '.join(VIEWS)}, got {settings.presegment_view!r}")
        self.start_kind.resolve_options(self._preseg_options())  # refuse a wrong option before any work
        self.work = self.out / "work"
        self.log = StageLog(self.work / "stages", STAGES, self._stage_key)
        self.report = AdaptReport(self.out)

    # ----------------------------------------------------------------- bookkeeping

    def _preseg_options(self) -> dict:
        return {} if self.s.nucleus_size is None else {"nucleus_size": self.s.nucleus_size}

    def _stage_key(self, stage: str) -> dict:
        s, p = self.s, self.preset
        return {
            "presegment": {"images": [f.name for f in self.images], "model": s.model, "options": self._preseg_options(),
                           "probabilities": s.self_training, "view": s.presegment_view,
                           "min_confidence": s.min_confidence if self._auto_view() else None},
            "style": {"synthetic": s.synthetic, "single_experiment": s.single_experiment, "mask_db": str(self.mask_db),
                      "ngf": p.ngf, "iterations": p.iterations, "decay_epochs": p.decay_epochs,
                      "images_per_cluster": p.images_per_cluster, "seed": s.seed},
            "finetune": {"masks": s.masks, "include_recipe": s.include_recipe, "epochs": p.epochs,
                         "steps": p.steps_per_epoch, "seed": s.seed, "self_training": s.self_training,
                         "min_confidence": s.min_confidence, "learning_rate": FINE_TUNE_LEARNING_RATE,
                         "freeze_normalization": True},
            "segment": {},
            "report": {"evaluate_masks": s.evaluate_masks},
        }[stage]

    def run(self) -> AdaptReport:
        """Run or resume the five stages (see the module docstring).

        Returns
        -------
        AdaptReport
            The stages run and skipped, the images the presegmentation skipped and the report's content.

        Examples
        --------
        >>> report = AdaptRun("new_stain/", "adapted/").run()  # doctest: +SKIP
        """
        self.out.mkdir(parents=True, exist_ok=True)
        steps = {"presegment": self.stage_presegment, "style": self.stage_style, "finetune": self.stage_finetune,
                 "segment": self.stage_segment, "report": self.stage_report}
        ran, skipped = self.log.run(steps, note=self.r.note)
        self.report.stages_run, self.report.stages_skipped = ran, skipped
        self.report.failures = [tuple(f) for f in self.log.record("presegment").get("failures", [])]
        self.report.summary = json.loads((self.out / "report.json").read_text())
        return self.report

    # ----------------------------------------------------------------- 1. presegment

    def _presegment_dir(self) -> Path:
        return self.work / "presegment"

    def _probabilities_dir(self) -> Path:
        return self.work / "probabilities"

    def _before_dir(self) -> Path:
        """The starting model's nuclei in the images as they are (the report's "before")."""
        as_is = self.work / "before"
        return as_is if as_is.is_dir() else self._presegment_dir()

    def _auto_view(self) -> bool:
        """Whether stage 1 chooses the view: "auto" with a default model (a Mask R-CNN start: as-is)."""
        from nucleaizer_tf.models.default import DefaultSegmenter

        return self.s.presegment_view == "auto" and self.start_kind is DefaultSegmenter

    def inverted_stems(self) -> list[str]:
        """The images stage 1 kept in inverted grey (after it ran).

        Returns
        -------
        list of str
            Their stems.

        Examples
        --------
        >>> run.inverted_stems()  # doctest: +SKIP
        ['h_e_01', 'h_e_02']
        """
        return list(self.log.record("presegment").get("inverted", []))

    def stage_presegment(self) -> dict:
        """Stage 1: the starting model segments every image into ``OUT/work/presegment/<stem>.tiff``.

        With ``presegment_view="auto"`` and a default model, every light-field image (`is_light_field`:
        bright-field, stained tissue) is segmented as it is and as inverted grey; if over those images a
        larger share of the nuclei's pixels lies in confident nuclei (`confident_pixels`) in inverted
        grey, they are kept so, and the as-is nuclei of every image go to ``OUT/work/before/`` for the
        report. ``"as-is"`` / ``"inverted"`` show every image so. An image that cannot be read is
        reported and skipped. Fewer than `MIN_NUCLEI` nuclei of at least `MIN_NUCLEUS_AREA` px² in all
        images stop the run with a `NucleaizerError`.

        Returns
        -------
        dict
            What the stage marker records: ``model`` (its description), ``nuclei`` (per image),
            ``failures``, ``view`` (what the light-field images were kept as, or the view asked for),
            ``inverted`` (the stems kept inverted), ``light_field`` (their number, auto) and
            ``confident_share`` (per view over the light-field images, auto).

        Examples
        --------
        >>> facts = run.stage_presegment()  # doctest: +SKIP
        """
        from nucleaizer_tf.default_model.preprocess import inverted_grey, is_light_field
        from nucleaizer_tf.default_model.self_training import confident_pixels
        from nucleaizer_tf.models.load import load_model

        model = load_model(self.s.model)
        options = model.prepare(**self._preseg_options())
        auto = self._auto_view()
        with_maps = self.s.self_training or auto  # needs a default model (checked in __init__ / _auto_view)
        staging = self.work / "views"
        for folder in (self._presegment_dir(), self._probabilities_dir(), self.work / "before", staging):
            shutil.rmtree(folder, ignore_errors=True)
        failures, counts, readable, light = [], {}, [], []
        confident = {"as-is": np.zeros(2), "inverted": np.zeros(2)}  # light-field images: (confident px, nucleus px)
        with self.r.stage("presegmenting", len(self.images)) as advance:
            for path in self.images:
                try:
                    image = read_image(path)
                    views = ["as-is", "inverted"] if auto and is_light_field(image) else \
                        ["as-is" if auto else self.s.presegment_view]
                    found = {}
                    for view in views:
                        shown = inverted_grey(image) if view == "inverted" else image
                        if with_maps:  # the map the labels came from: self-training targets, the view's confidence
                            found[view] = model.model.segment(shown, nucleus_size=self.s.nucleus_size, return_info=True,
                                                              keep_probabilities=True)
                        else:
                            found[view] = model.segment(shown, **options), None
                except (NucleaizerError, ValueError, OSError) as exc:  # one bad image only skips itself
                    failures.append((str(path), str(exc).splitlines()[0]))
                    self.r.note(f"skipped: {exc}")
                else:
                    readable.append(path.stem)
                    if len(views) > 1:
                        light.append(path.stem)
                    for view, (labels, info) in found.items():
                        write_labels(staging / view / "labels" / f"{path.stem}.tiff", labels)
                        if info is not None and self.s.self_training:
                            write_image(staging / view / "maps" / f"{path.stem}.tiff", info.probabilities)
                        if len(views) > 1:
                            confident[view] += confident_pixels(info.probabilities, labels, self.s.min_confidence)
                        sizes = np.bincount(labels.ravel())[1:]
                        counts.setdefault(view, {})[path.stem] = int(np.count_nonzero(sizes >= MIN_NUCLEUS_AREA))
                advance(path.name)
        share = {view: float(c / n) if n else 0.0 for view, (c, n) in confident.items()} if light else {}
        if auto:  # the light-field images in the view the model is surer of, the others as they are
            view = "inverted" if share and share["inverted"] > share["as-is"] else "as-is"
            inverted = light if view == "inverted" else []
        else:  # every image in the view asked for
            view = self.s.presegment_view
            inverted = readable if view == "inverted" else []
        if light:
            self.r.note(f"presegmentation: {len(light)} light-field image(s) kept {view} ({_share_text(share)})")
        flipped = set(inverted)
        kept = {stem: "inverted" if stem in flipped else "as-is" for stem in readable}
        nuclei = {stem: counts[kept[stem]][stem] for stem in sorted(readable)}
        usable = sum(nuclei.values())
        if usable < MIN_NUCLEI:
            raise NucleaizerError(
                f"{self.images_dir}: the starting model found {usable} nuclei of at least {MIN_NUCLEUS_AREA} px² in "
                f"{len(nuclei)} readable image(s); adapt needs at least {MIN_NUCLEI} to learn their style "
                "(add images, or start from another --model)")
        for stem, v in kept.items():
            for source, target in (("labels", self._presegment_dir()), ("maps", self._probabilities_dir())):
                if (staging / v / source / f"{stem}.tiff").is_file():
                    target.mkdir(parents=True, exist_ok=True)
                    shutil.copy2(staging / v / source / f"{stem}.tiff", target / f"{stem}.tiff")
        if auto and inverted:  # the report's "before": the starting model on the images as they are
            (staging / "as-is" / "labels").rename(self.work / "before")
        shutil.rmtree(staging, ignore_errors=True)
        return {"model": model.describe(), "nuclei": nuclei, "failures": failures, "view": view,
                "inverted": sorted(inverted), "light_field": len(light), "confident_share": share}

    # ----------------------------------------------------------------- 2. style

    def _style_settings(self):
        from nucleaizer_tf.pipelines.style_transfer import StyleTransferSettings

        p = self.preset
        return StyleTransferSettings(masks_dir=str(self._presegment_dir()), mask_db=str(self.mask_db),
                                     single_experiment=self.s.single_experiment,
                                     images_per_cluster=p.images_per_cluster, ngf=p.ngf, iterations=p.iterations,
                                     decay_epochs=p.decay_epochs, sqrt_mask_resize=True, match_cluster=True,
                                     conversion="percentile", last_stage="collect", seed=self.s.seed)

    def stage_style(self) -> dict:
        """Stage 2: the style-transfer workflow on those nuclei, up to its collected synthetic pairs.

        Into ``OUT/work/style/``; no synthetic pair at all stops the run with a `NucleaizerError`.

        Returns
        -------
        dict
            What the stage marker records: ``clusters``, ``pix2pix``, ``synthetic_pairs`` and ``comparisons``.

        Examples
        --------
        >>> facts = run.stage_style()  # doctest: +SKIP
        """
        from nucleaizer_tf.pipelines.style_transfer import run_style_transfer

        if not self.s.synthetic:
            shutil.rmtree(self.work / "style", ignore_errors=True)
            return {"clusters": {}, "pix2pix": {}, "synthetic_pairs": 0, "comparisons": {}}
        run = run_style_transfer(self.images_dir, self.work / "style", self._style_settings(), self.r)
        if run.n_train == 0:
            raise NucleaizerError(f"{self.images_dir}: no synthetic training image could be made (no style "
                                  "cluster had nuclei large enough to learn from)")
        return {"clusters": run.clusters, "pix2pix": run.pix2pix, "synthetic_pairs": run.n_train,
                "comparisons": run.comparisons}

    # ----------------------------------------------------------------- 3. finetune

    def _pairs(self, images_dir: Path, masks_dir: Path) -> list[tuple[np.ndarray, np.ndarray]]:
        """(image, labels) of the images that have a mask of the same stem."""
        from nucleaizer_tf.data.pairs import match_stems

        matched = match_stems(images_dir, masks_dir, allow_missing_right=True)
        return [(read_image(i), read_labels(m)) for _, i, m in matched if m is not None]

    def stage_finetune(self) -> dict:
        """Stage 3: the default model trained further on the synthetic pairs, saved as ``OUT/model/``.

        Starts from the starting model when it is a default model, else from the shipped one; adds the
        `masks` annotations and, with `include_recipe`, the recipe's generated images. ``OUT/model/`` is
        replaced on a rerun.

        Returns
        -------
        dict
            What the stage marker records: ``pairs``, ``synthetic_pairs``, ``loss`` (per epoch),
            ``train_seconds`` and ``config``.

        Examples
        --------
        >>> facts = run.stage_finetune()  # doctest: +SKIP
        """
        from nucleaizer_tf.default_model import DefaultModel
        from nucleaizer_tf.default_model.recipe import fine_tune, synthetic_items
        from nucleaizer_tf.models.default import DefaultSegmenter

        styled = self.work / "style" / "styled"
        pairs = self._pairs(styled / "images", styled / "masks") if self.s.synthetic else []
        n_synthetic = len(pairs)
        own = self._self_training_pairs() if self.s.self_training else []
        pairs += own
        if self.s.masks is not None:
            pairs += self._pairs(self.images_dir, Path(self.s.masks))
        if not pairs:
            raise NucleaizerError(f"{self.images_dir}: nothing to fine-tune on (no synthetic image, no confident "
                                  "nucleus, no annotation)")
        if self.s.include_recipe:
            pairs += synthetic_items(40, seed=self.s.seed + 1)
        if self.start_kind is DefaultSegmenter:
            from nucleaizer_tf.models.load import load_model

            model = load_model(self.s.model).model
        else:
            self.r.note("the starting model is not a default model: its nuclei taught the styles, and the shipped "
                        "default model is the one fine-tuned (to fine-tune Mask R-CNN use train maskrcnn "
                        f"--extra-data {styled})")
            model = DefaultModel.load()
        p = self.preset
        _, history, config = fine_tune(model, pairs, epochs=p.epochs, steps_per_epoch=p.steps_per_epoch,
                                       learning_rate=FINE_TUNE_LEARNING_RATE, freeze_normalization=True,
                                       seed=self.s.seed, reporter=self.r)
        n_other = len(pairs) - n_synthetic - len(own)
        notes = {"adapted": {"images": str(self.images_dir), "preset": self.s.preset, "synthetic_pairs": n_synthetic,
                             "self_training_pairs": len(own), "annotated_pairs": n_other,
                             "epochs": len(history.loss), "from": self.s.model}}
        model.save(self.out / "model", overwrite=True, **notes)  # adapt made this folder: a rerun replaces it
        return {"pairs": len(pairs), "synthetic_pairs": n_synthetic, "self_training_pairs": len(own),
                "loss": history.loss,
                "train_seconds": round(float(sum(history.seconds)), 1), "config": config.to_dict()}

    def _self_training_pairs(self) -> list[tuple[np.ndarray, np.ndarray]]:
        """(image, `confident_targets`) of every presegmented image with at least one confident nucleus,
        the image as it is and, where the presegmentation saw it inverted, also so."""
        from nucleaizer_tf.default_model.preprocess import inverted_grey
        from nucleaizer_tf.default_model.self_training import confident_targets

        inverted = set(self.inverted_stems())
        pairs = []
        for path in self.images:
            labels_path, map_path = self._presegment_dir() / f"{path.stem}.tiff", self._probabilities_dir() / f"{path.stem}.tiff"
            if not (labels_path.is_file() and map_path.is_file()):
                continue
            prob = read_image(map_path).astype(np.float32) / np.float32(255.0)
            targets = confident_targets(prob, read_labels(labels_path), min_confidence=self.s.min_confidence)
            if targets.max() > 0:
                image = read_image(path)
                pairs.append((image, targets))
                if path.stem in inverted:  # the view its targets came from: the model keeps knowing it
                    pairs.append((inverted_grey(image), targets))
        return pairs

    # ----------------------------------------------------------------- 4. segment

    def stage_segment(self) -> dict:
        """Stage 4: the images segmented with the adapted model into ``OUT/labels/`` (+ run record).

        With `run_predict`, so a bad image is reported, not fatal.

        Returns
        -------
        dict
            What the stage marker records: ``outputs`` (label files written) and ``failures``.

        Examples
        --------
        >>> facts = run.stage_segment()  # doctest: +SKIP
        """
        from nucleaizer_tf.pipelines.predict import run_predict

        report = run_predict(self.images_dir, self.out / "labels", model=self.out / "model", reporter=self.r)
        return {"outputs": len(report.outputs), "failures": [(str(p), m) for p, m in report.failures]}

    # ----------------------------------------------------------------- 5. report

    def stage_report(self) -> dict:
        """Stage 5: ``OUT/report.json``, ``OUT/report.md`` and ``OUT/before_after.png``.

        Nucleus counts before and after per image, and DSB/F1 before and after with `evaluate_masks`.

        Returns
        -------
        dict
            What the stage marker records: nothing ({}).

        Examples
        --------
        >>> facts = run.stage_report()  # doctest: +SKIP
        """
        before_dir, after_dir = self._before_dir(), self.out / "labels"
        rows = []
        for path in self.images:
            before, after = before_dir / f"{path.stem}.tiff", after_dir / f"{path.stem}.tiff"
            if before.is_file() and after.is_file():
                rows.append((path, read_labels(before), read_labels(after)))
        figure = self.out / "before_after.png"
        shown = most_changed([(b, a) for _, b, a in rows], FIGURE_ROWS)
        write_rgb(figure, before_after_figure([(read_image(rows[i][0]), rows[i][1], rows[i][2], rows[i][0].stem)
                                               for i in shown]))
        scores = self._scores(rows) if self.s.evaluate_masks is not None else None
        stages = {stage: self.log.record(stage) for stage in STAGES[:-1]}
        summary = {
            "images": str(self.images_dir), "out": str(self.out), "preset": self.s.preset,
            "preset_values": asdict(self.preset), "settings": asdict(self.s),
            "starting_model": stages["presegment"].get("model"), "adapted_model": str(self.out / "model"),
            "presegment_view": stages["presegment"].get("view", "as-is"),
            "confident_share": stages["presegment"].get("confident_share", {}),
            "stages": {k: v.get("seconds") for k, v in stages.items()},
            "failures": stages["presegment"].get("failures", []),
            "clusters": stages["style"].get("clusters", {}), "pix2pix": stages["style"].get("pix2pix", {}),
            "synthetic_pairs": stages["style"].get("synthetic_pairs"),
            "fine_tune": {k: stages["finetune"].get(k) for k in ("pairs", "self_training_pairs", "loss", "train_seconds")},
            "nuclei": {p.stem: {"before": int(len(np.unique(b)) - (b == 0).any()),
                                "after": int(len(np.unique(a)) - (a == 0).any())} for p, b, a in rows},
            "scores": scores,
            "figures": {"before_after": figure.name,
                        "clusters": sorted(str(p.relative_to(self.out)) for p in
                                           (self.work / "style" / "clusters").glob("group_*.png")),
                        "real_vs_synthetic": sorted(str(p.relative_to(self.out)) for p in
                                                    (self.work / "style" / "style").glob("*/comparison.png"))},
        }
        write_json(self.out / "report.json", summary)
        atomic_text(self.out / "report.md", report_markdown(summary))
        return {}

    def _scores(self, rows) -> dict:
        from nucleaizer_tf.metrics import score_dataset, score_image

        masks = Path(self.s.evaluate_masks)
        before, after, names = [], [], []
        for path, b, a in rows:
            gt_path = next((masks / f"{path.stem}{ext}" for ext in (".tiff", ".tif", ".png")
                            if (masks / f"{path.stem}{ext}").is_file()), None)
            if gt_path is None:
                continue
            gt = read_labels(gt_path)
            before.append(score_image(gt, b, name=path.stem))
            after.append(score_image(gt, a, name=path.stem))
            names.append(path.stem)
        if not names:
            raise NucleaizerError(f"{masks}: no annotation matches an image of {self.images_dir} by stem")
        b, a = score_dataset(before), score_dataset(after)
        return {"n_images": len(names), "dsb_before": b.dsb, "dsb_after": a.dsb, "f1_before": b.f1, "f1_after": a.f1,
                "per_image": {n: {"before": x.dsb, "after": y.dsb} for n, x, y in zip(names, before, after)}}


def atomic_text(path: Path, text: str) -> Path:
    """Write `text` to `path` atomically (a temporary file beside it, renamed on success).

    Parameters
    ----------
    path : pathlib.Path
        The file to write; its folder is created if needed.
    text : str
        The content.

    Returns
    -------
    pathlib.Path
        `path`.

    Examples
    --------
    >>> atomic_text(Path("adapted/report.md"), report_markdown(summary))  # doctest: +SKIP
    PosixPath('adapted/report.md')
    """
    from nucleaizer_tf.io import atomic_path

    with atomic_path(path) as tmp:
        tmp.write_text(text)
    return path


def most_changed(pairs, n: int) -> list[int]:
    """Indices of the `n` (before, after) label pairs that differ most, most changed first.

    The change of a pair is 1 − the DSB 2018 score of `after` against `before` (0: the same nuclei or
    none in either; 1: no nucleus kept); ties keep the input order.

    Parameters
    ----------
    pairs : sequence of tuple of numpy.ndarray
        ``(before labels, after labels)`` of each image.
    n : int
        How many to return.

    Returns
    -------
    list of int
        Up to `n` indices into `pairs`.

    Examples
    --------
    >>> same = np.zeros((8, 8), np.int32); same[2:5, 2:5] = 1
    >>> moved = np.zeros((8, 8), np.int32); moved[5:8, 5:8] = 1
    >>> most_changed([(same, same), (same, moved), (same, same)], 2)
    [1, 0]
    """
    from nucleaizer_tf.metrics import score_image

    scores = [score_image(before, after).dsb for before, after in pairs]
    change = [0.0 if math.isnan(x) else 1.0 - x for x in scores]  # NaN: no nucleus before or after
    return sorted(range(len(pairs)), key=lambda i: -change[i])[:n]


def before_after_figure(items) -> np.ndarray:
    """uint8 RGB sheet: per (image, before labels, after labels, name) one row of two outline overlays
    (starting model left, adapted model right), captioned with the nucleus counts.

    Parameters
    ----------
    items : iterable of tuple
        ``(image, before labels, after labels, name)``; images of any dtype (percentile-stretched for
        display), names cut to 16 characters in the captions.

    Returns
    -------
    numpy.ndarray
        The H×W×3 uint8 sheet, 384-pixel thumbnails in two columns.

    Examples
    --------
    >>> sheet = before_after_figure([(image, before, after, "a")])  # doctest: +SKIP
    >>> write_rgb(Path("adapted/before_after.png"), sheet)           # doctest: +SKIP
    """
    from nucleaizer_tf.io import to_rgb8
    from nucleaizer_tf.style.clustering import contact_sheet
    from nucleaizer_tf.visualize import outline_overlay

    tiles, captions = [], []
    for image, before, after, name in items:
        rgb = to_rgb8(image, "percentile")
        for labels, when in ((before, "before"), (after, "after")):
            tiles.append(outline_overlay(rgb, labels))
            captions.append(f"{name[:16]} {when}: {int(len(np.unique(labels)) - (labels == 0).any())} nuclei")
    return contact_sheet(tiles, captions=captions, thumb=384, columns=2)


def _share_text(share: dict) -> str:
    """The confident shares of the presegmentation views, as the progress note and the report say them."""
    return "share of the nuclei's pixels in confident nuclei: " + ", ".join(f"{v} {x:.2f}" for v, x in share.items())


def report_markdown(summary: dict) -> str:
    """The human-readable `report.md` of an adaptation run.

    Parameters
    ----------
    summary : dict
        The run's `report.json` content (as `AdaptRun.stage_report` makes it).

    Returns
    -------
    str
        Markdown: the starting and adapted models, stage times, styles, nuclei per image, scores against
        the annotations (if any) and the skipped images.

    Examples
    --------
    >>> summary = {"images": "new_stain", "preset": "quick", "preset_values": {"ngf": 16, "epochs": 8},
    ...            "adapted_model": "adapted/model", "stages": {"presegment": 12.5, "style": 250.0},
    ...            "clusters": {"group_001": ["a", "b"]}, "pix2pix": {"group_001": {"steps": 600}},
    ...            "synthetic_pairs": 20, "figures": {"real_vs_synthetic": []},
    ...            "nuclei": {"a": {"before": 31, "after": 40}}, "failures": []}
    >>> print(report_markdown(summary).splitlines()[0])
    # Adaptation report: new_stain
    >>> for line in report_markdown(summary).splitlines():
    ...     if line.startswith("| a "):
    ...         print(line)
    | a | 31 | 40 |
    """
    def fmt(x):
        return "–" if x is None or (isinstance(x, float) and math.isnan(x)) else (f"{x:.3f}" if isinstance(x, float) else str(x))

    lines = [f"# Adaptation report: {summary['images']}", "",
             f"Starting model: `{(summary.get('starting_model') or {}).get('model', '?')}`; preset "
             f"`{summary['preset']}` ({', '.join(f'{k} {v}' for k, v in summary['preset_values'].items())}); "
             f"adapted model: `{summary['adapted_model']}` (use it with `nucleaizer-tf predict IMAGES OUT --model "
             f"{summary['adapted_model']}`).", "",
             "![before and after](before_after.png)", "",
             "*Left: the starting model. Right: the adapted model. The images it changed most.*", "", "## Stages", "",
             "| stage | seconds |", "| --- | ---: |"]
    lines += [f"| {k} | {fmt(v)} |" for k, v in summary["stages"].items()]
    if summary.get("confident_share"):
        lines += ["", f"Presegmentation: light-field images shown {summary['presegment_view']} "
                  f"({_share_text(summary['confident_share'])})."]
    lines += ["", f"## Styles ({len(summary['clusters'])} cluster(s), {summary['synthetic_pairs']} synthetic pairs)", ""]
    for cluster, members in summary["clusters"].items():
        p2p = summary["pix2pix"].get(cluster, {})
        lines.append(f"- **{cluster}**: {len(members)} image(s) ({', '.join(members[:6])}"
                     f"{' …' if len(members) > 6 else ''}); pix2pix {p2p.get('steps', '–')} iterations")
    lines += [""] + [f"![{Path(f).parent.name}]({f})" for f in summary["figures"]["real_vs_synthetic"]]
    lines += ["", "## Nuclei per image", "", "| image | before | after |", "| --- | ---: | ---: |"]
    lines += [f"| {n} | {v['before']} | {v['after']} |" for n, v in summary["nuclei"].items()]
    if summary.get("scores"):
        s = summary["scores"]
        lines += ["", f"## Against annotations ({s['n_images']} images)", "", "| | before | after |",
                  "| --- | ---: | ---: |", f"| DSB | {fmt(s['dsb_before'])} | {fmt(s['dsb_after'])} |",
                  f"| F1@0.5 | {fmt(s['f1_before'])} | {fmt(s['f1_after'])} |"]
    if summary["failures"]:
        lines += ["", "## Skipped images", ""] + [f"- `{p}`: {m}" for p, m in summary["failures"]]
    return "\n".join(lines) + "\n"


def adapt(images_dir: str | os.PathLike, out_dir: str | os.PathLike, settings: AdaptSettings | None = None,
          reporter: Reporter = SILENT, **options) -> AdaptReport:
    """Adapt a model to the style of `images_dir` without annotation (or resume), writing `out_dir`.

    Parameters
    ----------
    images_dir, out_dir : str or os.PathLike
        The new experiment's images (any size, bit depth, grey or colour) and the output folder:
        `model/` (the adapted model), `labels/` (the images segmented with it), `report.md`,
        `report.json`, `before_after.png` and `work/` (the stages' results, for resuming).
    settings : AdaptSettings, optional
        What the run does; keywords given too replace its fields.
    **options
        `AdaptSettings` fields as keywords (`model`, `preset`, `single_experiment`, `mask_db`, `masks`,
        `include_recipe`, `evaluate_masks`, `nucleus_size`, `seed`, `ngf`, `iterations`,
        `decay_epochs`, `epochs`).
    reporter : Reporter, optional
        Progress (`nucleaizer_tf.progress.Reporter`).

    Returns
    -------
    AdaptReport
        The stages run and skipped, skipped images and the report's content.

    Raises
    ------
    NucleaizerError
        For bad settings or inputs (see `AdaptRun`), or a stage that cannot go on (too few nuclei for a
        style, no synthetic training image, annotations that match no image).

    Examples
    --------
    >>> from nucleaizer_tf.pipelines.adapt import adapt
    >>> report = adapt("new_stain/", "adapted/", preset="quick")          # doctest: +SKIP
    >>> from nucleaizer_tf import load_model
    >>> labels = load_model("adapted/model").segment(image)               # doctest: +SKIP
    """
    if settings is None:
        settings = AdaptSettings(**options)
    elif options:
        settings = replace(settings, **options)
    return AdaptRun(images_dir, out_dir, settings, reporter).run()


def adapt_arrays(images: dict, out_dir: str | os.PathLike, settings: AdaptSettings | None = None,
                 reporter: Reporter = SILENT, **options) -> AdaptReport:
    """`adapt` on images held in memory (napari layers, say) rather than a folder.

    The images are written as TIFFs in their own dtype to ``OUT/inputs/<name>.tiff`` (names made
    file-safe with `nucleaizer_tf.io.safe_stem`), which is then the run's image folder, so a rerun with
    the same images resumes like `adapt` does.

    Parameters
    ----------
    images : dict of str to numpy.ndarray
        Name -> 2-D image (grey, RGB or RGBA, any dtype); at least one.
    out_dir : str or os.PathLike
        The output folder, as for `adapt`.
    settings : AdaptSettings, optional
        What the run does; keywords given too replace its fields.
    reporter : Reporter, optional
        Progress.
    **options
        `AdaptSettings` fields as keywords.

    Returns
    -------
    AdaptReport
        As `adapt` returns it.

    Raises
    ------
    NucleaizerError
        For no image, two names that become the same file name, an image that is not 2-D grey / RGB /
        RGBA, and everything `adapt` refuses.

    Examples
    --------
    >>> report = adapt_arrays({"field 1": image1, "field 2": image2}, "adapted/", preset="quick")  # doctest: +SKIP
    >>> report.summary["adapted_model"]                                                              # doctest: +SKIP
    'adapted/model'
    """
    if not images:
        raise NucleaizerError("adapt needs at least one image")
    stems = {}
    for name, image in images.items():
        stem = safe_stem(str(name))
        if stem in stems:
            raise NucleaizerError(f"{name!r} and {stems[stem]!r}: two images would both be saved as {stem}.tiff; "
                                  "rename one")
        shape = np.shape(image)
        if not (len(shape) == 2 or (len(shape) == 3 and shape[2] in (3, 4))):
            raise NucleaizerError(f"{name}: an image of shape {shape} is not a 2-D grey or RGB(A) image")
        stems[stem] = name
    folder = Path(out_dir) / INPUTS_DIR
    for stem, name in stems.items():
        write_image(folder / f"{stem}.tiff", np.asarray(images[name]))
    return adapt(folder, out_dir, settings, reporter, **options)
