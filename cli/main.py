"""The `nucleaizer-tf` command: parse, call the library, show progress. No logic of its own."""

from __future__ import annotations

import json
import os
from enum import Enum
from pathlib import Path
from typing import Optional

import typer

from cli.common import fail_cleanly, import_tensorflow, native_stderr_silenced, progress_bar
from nucleaizer_tf.errors import NucleaizerError

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # before any TensorFlow import: keep C++ chatter out

app = typer.Typer(
    name="nucleaizer-tf",
    help="nucleAIzer nucleus segmentation in TensorFlow 2 / Keras 3: predict, evaluate, train, adapt.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)


@app.command()
@fail_cleanly
def info(as_json: bool = typer.Option(False, "--json", help="Print the report as JSON.")) -> None:
    """Versions, the CPU/GPU devices TensorFlow sees, and thread settings (paste this into bug reports)."""
    from nucleaizer_tf.system import environment_report

    with native_stderr_silenced():  # device probing logs CUDA errors on machines without a GPU
        report = environment_report()
    if as_json:
        typer.echo(json.dumps(report, indent=2))
        return
    for name, version in report["versions"].items():
        typer.echo(f"{name:>24}  {version}")
    typer.echo(f"{'platform':>24}  {report['platform']}")
    typer.echo(f"{'CPU cores':>24}  {report['cpu_count']}")
    devices = ", ".join(f"{d['name']} ({d['type']})" for d in report["devices"]) or "none"
    typer.echo(f"{'TensorFlow devices':>24}  {devices}")
    typer.echo(f"{'built with CUDA':>24}  {report['built_with_cuda']}")
    threads = report["threads"]
    typer.echo(f"{'threads intra/inter-op':>24}  {threads['intra_op']}/{threads['inter_op']} (0 = one per core)")
    for name, value in report["environment"].items():
        typer.echo(f"{name:>24}  {value}")


@app.command()
@fail_cleanly
def evaluate(
    gt_dir: Path = typer.Argument(..., help="Folder of ground-truth label images (TIFF/PNG, 0 = background)."),
    pred_dir: Path = typer.Argument(..., help="Folder of predicted label images, same file stems."),
    csv_path: Optional[Path] = typer.Option(None, "--csv", help="Write per-image scores to this CSV file."),
    json_path: Optional[Path] = typer.Option(None, "--json", help="Write the summary and per-image scores as JSON."),
    missing_as_empty: bool = typer.Option(
        False, "--missing-as-empty", help="Score a ground truth without prediction as an empty prediction (0), as the original did, instead of failing."
    ),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="Print only the summary line."),
) -> None:
    """Kaggle DSB 2018 score (mean precision over IoU 0.50-0.95), F1 at IoU 0.5 and matched IoU, per image and overall."""
    from nucleaizer_tf.pipelines.evaluate import pair_predictions, score_pairs, write_scores_csv

    pairs = pair_predictions(gt_dir, pred_dir, missing_as_empty=missing_as_empty)
    with progress_bar("scoring", quiet, total=len(pairs)) as advance:
        result = score_pairs(pairs, progress=advance)
    if not quiet:
        typer.echo(f"{'image':<40} {'DSB':>7} {'F1@0.5':>7} {'mIoU':>7} {'GT':>5} {'pred':>5} {'TP':>5} {'FP':>5} {'FN':>5}")
        for s in result.images:
            typer.echo(
                f"{s.name[:40]:<40} {s.dsb:7.4f} {s.f1:7.4f} {s.mean_matched_iou:7.4f} "
                f"{s.n_gt:5d} {s.n_pred:5d} {s.tp:5d} {s.fp:5d} {s.fn:5d}"
            )
    undefined = f", {result.n_undefined} undefined (no objects in either)" if result.n_undefined else ""
    typer.echo(
        f"DSB score {result.dsb:.4f} over {result.n_images} images{undefined}; F1@0.5 {result.f1:.4f}, "
        f"mean matched IoU {result.mean_matched_iou:.4f}; TP {result.tp}, FP {result.fp}, FN {result.fn}"
    )
    if csv_path is not None:
        write_scores_csv(csv_path, result)
    if json_path is not None:
        from nucleaizer_tf.io import write_json

        write_json(json_path, result.as_dict())


class Conversion(str, Enum):
    nucleaizer = "nucleaizer"
    percentile = "percentile"


class Mode(str, Enum):
    fast = "fast"


@app.command()
@fail_cleanly
def predict(
    images: Path = typer.Argument(..., help="An image file or a folder of images (png, tif, tiff, bmp, jpg)."),
    out_dir: Path = typer.Argument(..., help="Folder for <stem>.tiff label images (created if needed)."),
    model: Path = typer.Option(..., "--model", "-m", help="Legacy matterport/nucleAIzer Mask R-CNN weights (.h5), e.g. mask_rcnn_presegmentation.h5."),
    mode: Mode = typer.Option(Mode.fast, "--mode", help="fast: one Mask R-CNN pass per image (nucleAIzer's presegmentation)."),
    confidence: Optional[float] = typer.Option(None, "--confidence", min=0.0, max=1.0, help="Minimum detection score [0.7; 0.5 with --nucleus-size]."),
    nms: float = typer.Option(0.35, "--nms", min=0.0, max=1.0, help="IoU above which the lower-scoring of two detections is suppressed."),
    max_instances: Optional[int] = typer.Option(None, "--max-instances", min=1, help="Most nuclei per image [800; 1200 with --nucleus-size]."),
    image_size: int = typer.Option(1024, "--image-size", min=64, help="Network input size D (rounded up to a multiple of 64): the padded image's long side is resized to D."),
    nucleus_size: Optional[float] = typer.Option(None, "--nucleus-size", min=1.0, help="Typical nucleus diameter in pixels; picks D per image so nuclei reach 80 px (nucleAIzer's manual-size mode)."),
    padding: float = typer.Option(0.05, "--padding", min=0.0, max=0.5, help="Reflect padding per side, as a fraction of the image size."),
    dilation: int = typer.Option(1, "--dilation", min=0, help="Radius of the per-nucleus dilation (0 = none)."),
    fill_holes: bool = typer.Option(False, "--fill-holes", help="Fill holes inside each nucleus (the original's hole filling was a no-op)."),
    absolute_mask_threshold: bool = typer.Option(False, "--absolute-mask-threshold", help="Cut masks at probability 0.5 instead of matterport 2.1's per-mask min-max mid-point."),
    conversion: Conversion = typer.Option(Conversion.nucleaizer, "--conversion", help="How non-8-bit images become 8-bit RGB: nucleaizer (per-channel min-max) or percentile (1-99.8 %)."),
    overlay: bool = typer.Option(False, "--overlay", help="Also write outline overlays to OUT_DIR/overlays/<stem>.png."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bar or summary."),
) -> None:
    """Segment nuclei in every image and write 16-bit label TIFFs (0 = background, one id per nucleus)."""
    from nucleaizer_tf.maskrcnn.config import MaskRCNNConfig
    from nucleaizer_tf.pipelines.predict import collect_inputs, predict_files

    files = collect_inputs(images, out_dir)
    if not model.is_file():
        raise NucleaizerError(f"{model}: no such weight file")
    preset = MaskRCNNConfig.manual_size() if nucleus_size is not None else MaskRCNNConfig.presegment()
    config = preset.replace(
        DETECTION_MIN_CONFIDENCE=confidence if confidence is not None else preset.DETECTION_MIN_CONFIDENCE,
        DETECTION_NMS_THRESHOLD=nms,
        DETECTION_MAX_INSTANCES=max_instances if max_instances is not None else preset.DETECTION_MAX_INSTANCES,
    )
    import_tensorflow()
    from nucleaizer_tf.maskrcnn.inference import SegmentOptions, detect, detections_to_labels
    from nucleaizer_tf.maskrcnn.model import MaskRCNN

    options = SegmentOptions(
        image_size=image_size,
        nucleus_size=nucleus_size,
        padding=padding,
        dilation=dilation,
        fill_holes=fill_holes,
        absolute_mask_threshold=absolute_mask_threshold,
        conversion=conversion.value,
    )
    with native_stderr_silenced():  # TensorFlow probes for CUDA on first use and logs the failure
        network = MaskRCNN.from_legacy_h5(model, config)

    def segment(image):
        found = detect(network, image, options)
        return detections_to_labels(found, options), {"network_size": found.network_size, "detections": len(found)}

    settings = {
        "mode": mode.value,
        "model": str(model),
        "confidence": config.DETECTION_MIN_CONFIDENCE,
        "nms": config.DETECTION_NMS_THRESHOLD,
        "max_instances": config.DETECTION_MAX_INSTANCES,
        **options.to_dict(),
    }
    with progress_bar("segmenting", quiet, total=len(files)) as advance:
        report = predict_files(files, out_dir, segment, overlay=overlay, settings=settings, progress=advance)
    _finish_predict(report, out_dir, quiet)


def _finish_predict(report, out_dir: Path, quiet: bool) -> None:
    """Summary line; failures listed one per line on stderr, exit code 1 if any image failed."""
    if not quiet:
        objects = sum(item["objects"] for item in report.images)
        typer.echo(f"wrote {len(report.outputs)} label images ({objects} nuclei) to {out_dir}")
    if report.failures:
        for path, message in report.failures:
            typer.echo(f"failed: {path}: {message}", err=True)
        typer.echo(f"error: {len(report.failures)} of {len(report.failures) + len(report.outputs)} images failed", err=True)
        raise typer.Exit(1)


def main() -> None:  # pragma: no cover - console-script entry
    app()
