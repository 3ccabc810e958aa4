"""`nucleaizer-tf adapt`: nucleAIzer's parameter-free loop — a model learns a new image style without
annotation. No logic of its own: `nucleaizer_tf.pipelines.adapt` decides."""

from __future__ import annotations

from enum import Enum
from pathlib import Path
from typing import Optional

import typer

from nucleaizer_tf.cli.common import CliReporter, fail_cleanly
from nucleaizer_tf.system import import_tensorflow


class View(str, Enum):
    auto = "auto"
    as_is = "as-is"
    inverted = "inverted"


class Preset(str, Enum):
    quick = "quick"
    standard = "standard"
    original = "original"


@fail_cleanly
def adapt(
    images: Path = typer.Argument(..., help="Folder of images of the new experiment (any size, bit depth, grey or colour); no annotation needed."),
    out_dir: Path = typer.Argument(..., help="Output folder: model/ (the adapted model), labels/, report.md, report.json, before_after.png, work/ (for resuming)."),
    model: str = typer.Option("default", "--model", "-m", help="Starting model: 'default' (the shipped model), a model folder, or legacy Mask R-CNN weights (.h5; its nuclei teach the style and the shipped default model is fine-tuned)."),
    preset: Preset = typer.Option(Preset.quick, "--preset", help="quick: pix2pix ngf 16, 600 iterations, 8 fine-tuning epochs (minutes on a laptop). standard: ngf 32, 2000 iterations, 15 epochs. original: nucleAIzer's ngf 64, 5000 iterations + 100 decay epochs, 30 epochs."),
    single_experiment: bool = typer.Option(False, "--single-experiment", help="All images are one style (no clustering)."),
    mask_db: Optional[Path] = typer.Option(None, "--mask-db", help="Nucleus-shape database: a folder of label images or a mask_db.npz [the database shipped with the package]."),
    masks: Optional[Path] = typer.Option(None, "--masks", help="Annotations of some of the images (same stems): added to the fine-tuning."),
    include_recipe: bool = typer.Option(True, "--include-recipe/--synthetic-only", help="Fine-tune on the style's synthetic images plus 40 of the default recipe's generated training images, which keeps what the model knew (measured leave-one-style-out, DSB: bright-field 0.219 vs 0.190, H&E 0.203 vs 0.133, fluorescence control 0.702 vs 0.650), or on the synthetic images only."),
    synthetic: bool = typer.Option(True, "--synthetic/--no-synthetic", help="Learn the images' styles with pix2pix and fine-tune on annotated synthetic images rendered in them (nucleAIzer's way)."),
    self_training: Optional[bool] = typer.Option(None, "--self-training/--no-self-training", help="Also fine-tune on the starting model's own confident nuclei in these images; uncertain pixels are left out of the loss (needs a default model to start from) [on with a default model, off for Mask R-CNN]."),
    min_confidence: float = typer.Option(0.85, "--min-confidence", min=0.0, max=1.0, help="Self-training keeps a nucleus whose mean foreground probability is at least this."),
    presegment_view: View = typer.Option(View.auto, "--presegment-view", help="How the starting model is shown the images when presegmenting: as-is, inverted (grey, inverted: dark nuclei on a light field become bright on dark, as in fluorescence), or auto (a default model sees light-field images, such as bright-field and stained tissue, both ways, and they are kept in the view in which more of its nuclei are confident; other images and Mask R-CNN: as-is). The fine-tuning sees the images as they are, and with self-training also in the kept view."),
    evaluate_masks: Optional[Path] = typer.Option(None, "--evaluate-masks", help="Annotations to score the starting and the adapted model against in the report (never used for training)."),
    nucleus_size: Optional[float] = typer.Option(None, "--nucleus-size", "--diameter", min=1.0, help="Nucleus diameter in pixels for the presegmentation (--diameter: the same) [estimated per image]."),
    ngf: Optional[int] = typer.Option(None, "--ngf", min=1, help="Override the preset's pix2pix width."),
    iterations: Optional[int] = typer.Option(None, "--iterations", min=1, help="Override the preset's pix2pix iterations."),
    decay_epochs: Optional[int] = typer.Option(None, "--decay-epochs", min=0, help="Override the preset's pix2pix learning-rate decay epochs."),
    epochs: Optional[int] = typer.Option(None, "--epochs", min=1, help="Override the preset's fine-tuning epochs."),
    seed: int = typer.Option(0, "--seed", help="Seed of every random choice."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bars or notes, only the summary."),
) -> None:
    """Adapt a model to a new image style without annotation: presegment, learn the styles (pix2pix), render
    annotated synthetic images in them, fine-tune, segment again, report. Ctrl-C and a rerun continue."""
    from nucleaizer_tf.pipelines.adapt import AdaptSettings, adapt as run_adapt

    settings = AdaptSettings(model=model, preset=preset.value, single_experiment=single_experiment,
                             mask_db=None if mask_db is None else str(mask_db), masks=None if masks is None else str(masks),
                             include_recipe=include_recipe, synthetic=synthetic, self_training=self_training,
                             min_confidence=min_confidence, presegment_view=presegment_view.value,
                             evaluate_masks=None if evaluate_masks is None else str(evaluate_masks),
                             nucleus_size=nucleus_size, seed=seed, ngf=ngf, iterations=iterations,
                             decay_epochs=decay_epochs, epochs=epochs)
    import_tensorflow()
    report = run_adapt(images, out_dir, settings, CliReporter(quiet))
    summary = report.summary
    resumed = f" (resumed: {', '.join(report.stages_skipped)} already done)" if report.stages_skipped else ""
    typer.echo(f"adapted model: {out_dir / 'model'}; labels: {out_dir / 'labels'}; report: {out_dir / 'report.md'}{resumed}")
    typer.echo(f"{len(summary['clusters'])} style(s), {summary['synthetic_pairs']} synthetic pairs, "
               f"{summary['fine_tune'].get('self_training_pairs') or 0} self-training images; "
               + ", ".join(f"{k} {v:.0f} s" for k, v in summary["stages"].items() if v is not None))
    if summary.get("scores"):
        s = summary["scores"]
        typer.echo(f"DSB on {s['n_images']} annotated images: {s['dsb_before']:.3f} before, {s['dsb_after']:.3f} after")
    for path, message in report.failures:
        typer.echo(f"skipped: {path}: {message}", err=True)
    if report.failures:
        raise typer.Exit(1)
