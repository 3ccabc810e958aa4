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
    full = "full"


@app.command()
@fail_cleanly
def predict(
    images: Path = typer.Argument(..., help="An image file or a folder of images (png, tif, tiff, bmp, jpg)."),
    out_dir: Path = typer.Argument(..., help="Folder for <stem>.tiff label images (created if needed)."),
    model: Optional[Path] = typer.Option(None, "--model", "-m", help="Legacy matterport/nucleAIzer Mask R-CNN weights (.h5). Fast mode without it uses the shipped default model; full mode: mask_rcnn_final.h5."),
    mode: Mode = typer.Option(Mode.fast, "--mode", help="fast: one segmentation pass per image. full: nucleAIzer's full pipeline (presegmentation, size estimation, U-Net ensemble, Mask R-CNN at two scales, post-processing)."),
    preseg_model: Optional[Path] = typer.Option(None, "--preseg-model", help="Full mode: presegmentation weights (mask_rcnn_presegmentation.h5) [default: --model]."),
    unet: Optional[Path] = typer.Option(None, "--unet", help="Full mode: U-Net ensemble folder (manifest.json + member weights)."),
    postprocess_params: Optional[Path] = typer.Option(None, "--postprocess-params", help="Full mode: the 9 post-processing parameters (a param-search result or a JSON list) [76 32 0 1 44 17 32 25 21]."),
    work_dir: Optional[Path] = typer.Option(None, "--work-dir", help="Full mode: folder for intermediate results; a re-run resumes from it [OUT_DIR/.nucleaizer-work, removed after success unless --keep-intermediate]."),
    keep_intermediate: bool = typer.Option(False, "--keep-intermediate", help="Full mode: keep presegmentations, scale tables, U-Net maps and 2x/4x labels."),
    max_network_size: Optional[int] = typer.Option(None, "--max-network-size", min=64, help="Full mode: cap the 2x/4x Mask R-CNN sizes (the original allows up to 6000) to bound time and memory."),
    confidence: Optional[float] = typer.Option(None, "--confidence", min=0.0, max=1.0, help="Minimum detection score [fast: 0.7, 0.5 with --nucleus-size; full: 0.6 for the final model]."),
    nms: float = typer.Option(0.35, "--nms", min=0.0, max=1.0, help="IoU above which the lower-scoring of two detections is suppressed."),
    max_instances: Optional[int] = typer.Option(None, "--max-instances", min=1, help="Most nuclei per image [800; 1200 with --nucleus-size]."),
    image_size: int = typer.Option(1024, "--image-size", min=64, help="Network input size D (rounded up to a multiple of 64): the padded image's long side is resized to D (full mode: presegmentation)."),
    nucleus_size: Optional[float] = typer.Option(None, "--nucleus-size", min=1.0, help="Typical nucleus diameter in pixels: Mask R-CNN picks D per image so nuclei reach 80 px (nucleAIzer's manual-size mode); the default model rescales to its trained size."),
    padding: float = typer.Option(0.05, "--padding", min=0.0, max=0.5, help="Reflect padding per side, as a fraction of the image size."),
    dilation: int = typer.Option(1, "--dilation", min=0, help="Radius of the per-nucleus dilation (0 = none)."),
    fill_holes: bool = typer.Option(False, "--fill-holes", help="Fill holes inside each nucleus (the original's hole filling was a no-op)."),
    absolute_mask_threshold: bool = typer.Option(False, "--absolute-mask-threshold", help="Cut masks at probability 0.5 instead of matterport 2.1's per-mask min-max mid-point."),
    conversion: Conversion = typer.Option(Conversion.nucleaizer, "--conversion", help="How non-8-bit images become 8-bit RGB: nucleaizer (per-channel min-max) or percentile (1-99.8 %)."),
    overlay: bool = typer.Option(False, "--overlay", help="Also write outline overlays to OUT_DIR/overlays/<stem>.png."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bar or summary."),
) -> None:
    """Segment nuclei in every image and write 16-bit label TIFFs (0 = background, one id per nucleus)."""
    from nucleaizer_tf.pipelines.predict import collect_inputs, predict_files

    files = collect_inputs(images, out_dir)
    for path, what in ((model, "weight file"), (preseg_model, "weight file"), (unet, "U-Net ensemble folder"),
                       (postprocess_params, "parameter file")):
        if path is not None and not path.exists():
            raise NucleaizerError(f"{path}: no such {what}")
    import_tensorflow()
    common = dict(padding=padding, dilation=dilation, fill_holes=fill_holes,
                  absolute_mask_threshold=absolute_mask_threshold, conversion=conversion.value)
    cleanup = None
    if mode is Mode.full:
        segment, settings, cleanup = _full_mode(
            out_dir, model, preseg_model, unet, postprocess_params, work_dir, keep_intermediate, max_network_size,
            confidence, nms, max_instances, image_size, common)
    elif model is None:
        segment, settings = _default_model_mode(nucleus_size, conversion.value)
    else:
        segment, settings = _fast_mode(model, confidence, nms, max_instances, image_size, nucleus_size, common)
    with progress_bar("segmenting", quiet, total=len(files)) as advance:
        report = predict_files(files, out_dir, segment, overlay=overlay, settings=settings, progress=advance)
    if cleanup is not None:
        cleanup(report)
    _finish_predict(report, out_dir, quiet)


def _fast_mode(model, confidence, nms, max_instances, image_size, nucleus_size, common):
    """nucleAIzer's presegmentation (or manual-size mode) with a legacy Mask R-CNN file."""
    from nucleaizer_tf.maskrcnn.config import MaskRCNNConfig
    from nucleaizer_tf.maskrcnn.inference import SegmentOptions, detect, detections_to_labels
    from nucleaizer_tf.maskrcnn.model import MaskRCNN

    preset = MaskRCNNConfig.manual_size() if nucleus_size is not None else MaskRCNNConfig.presegment()
    config = preset.replace(
        DETECTION_MIN_CONFIDENCE=confidence if confidence is not None else preset.DETECTION_MIN_CONFIDENCE,
        DETECTION_NMS_THRESHOLD=nms,
        DETECTION_MAX_INSTANCES=max_instances if max_instances is not None else preset.DETECTION_MAX_INSTANCES,
    )
    options = SegmentOptions(image_size=image_size, nucleus_size=nucleus_size, **common)
    network = MaskRCNN.from_legacy_h5(model, config)

    def segment(image, stem):
        found = detect(network, image, options)
        return detections_to_labels(found, options), {"network_size": found.network_size, "detections": len(found)}

    settings = {"mode": "fast", "model": str(model), "confidence": config.DETECTION_MIN_CONFIDENCE,
                "nms": config.DETECTION_NMS_THRESHOLD, "max_instances": config.DETECTION_MAX_INSTANCES,
                **options.to_dict()}
    return segment, settings


def _default_model_mode(nucleus_size, conversion):
    """The shipped default model (no legacy weights needed)."""
    from nucleaizer_tf.default_model import DefaultModel

    network = DefaultModel.load()

    def segment(image, stem):
        labels, info = network.segment(image, diameter=nucleus_size, return_info=True)
        return labels, info.as_dict()

    return segment, {"mode": "fast", "model": "default", "model_dir": str(network.path),
                     "nucleus_size": nucleus_size}


def _full_mode(out_dir, model, preseg_model, unet, params_file, work_dir, keep, max_network_size,
               confidence, nms, max_instances, image_size, common):
    """nucleAIzer's full pipeline; returns the per-image function, its settings and the work-folder clean-up."""
    import shutil

    from nucleaizer_tf.pipelines.full import FullPipeline, FullSettings
    from nucleaizer_tf.postprocess.params import DEFAULT_PARAMS, read_params

    if model is None or unet is None:
        raise NucleaizerError("--mode full needs --model (mask_rcnn_final.h5) and --unet (a U-Net ensemble folder)")
    settings = FullSettings(
        preseg_size=image_size,
        final_confidence=confidence if confidence is not None else FullSettings.final_confidence,
        nms=nms,
        max_instances=max_instances if max_instances is not None else FullSettings.max_instances,
        params=read_params(params_file) if params_file is not None else DEFAULT_PARAMS,
        max_network_size=max_network_size,
        **common,
    )
    default_work = work_dir is None
    work = out_dir / ".nucleaizer-work" if default_work else work_dir
    pipeline = FullPipeline(work, preseg_model or model, model, unet, settings)

    def cleanup(report):
        pipeline.write_scale_tables()
        if default_work and not keep and not report.failures:
            shutil.rmtree(work, ignore_errors=True)

    record = {"mode": "full", "model": str(model), "preseg_model": str(preseg_model or model), "unet": str(unet),
              "work_dir": str(work), **settings.to_dict()}
    return pipeline.segment, record, cleanup


@app.command("estimate-size")
@fail_cleanly
def estimate_size(
    masks_dir: Path = typer.Argument(..., help="Folder of label images (e.g. a presegmentation, or ground truth)."),
    out: Optional[Path] = typer.Option(None, "--out", help="Also write the original's scales-rcnn-{1,2,4}x.csv and scales-unet.csv here, and sizes.json."),
    exclude_gaps: bool = typer.Option(False, "--exclude-gaps", help="Median over existing objects only (the original counts missing label ids as diameter 0)."),
) -> None:
    """Median nucleus diameter per image and the Mask R-CNN sizes nucleAIzer derives from it (1x/2x/4x)."""
    from nucleaizer_tf.io import LABEL_EXTENSIONS, list_images, read_labels, write_json
    from nucleaizer_tf.postprocess.size import network_sizes, write_scale_csvs

    files = list_images(masks_dir, LABEL_EXTENSIONS)
    if not files:
        raise NucleaizerError(f"{masks_dir}: no label images (tif, tiff, png) in this folder")
    table = network_sizes({p.stem: read_labels(p) for p in files}, include_gaps=not exclude_gaps)
    typer.echo(f"{'image':<40} {'median diam.':>12} {'objects':>7} {'1x':>6} {'2x':>6} {'4x':>6}")
    for row in table.report():
        sizes = [row["scales"][f"{f}x"]["rounded"] for f in (1, 2, 4)]
        median = "no objects" if row["median_diameter"] is None else f"{row['median_diameter']:.4f}"
        typer.echo(f"{row['name'][:40]:<40} {median:>12} {row['n_objects']:7d} "
                   + " ".join(f"{'-' if v is None else int(v):>6}" for v in sizes))
    if out is not None:
        write_scale_csvs(table, out)
        write_json(out / "sizes.json", table.report())


@app.command("param-search")
@fail_cleanly
def param_search(
    images: Path = typer.Argument(..., help="Folder of validation images."),
    masks: Path = typer.Argument(..., help="Folder of their ground-truth label images (same stems)."),
    model: Path = typer.Option(..., "--model", "-m", help="Final Mask R-CNN weights (mask_rcnn_final.h5)."),
    unet: Path = typer.Option(..., "--unet", help="U-Net ensemble folder."),
    preseg_model: Optional[Path] = typer.Option(None, "--preseg-model", help="Presegmentation weights [default: --model]."),
    out: Path = typer.Option(Path("paramsearch.json"), "--out", "-o", help="Result file (best vector, its score, history); `predict --postprocess-params` reads it."),
    work_dir: Path = typer.Option(Path(".nucleaizer-paramsearch"), "--work-dir", help="Intermediate results (reused by a re-run)."),
    time_limit: float = typer.Option(1800.0, "--time-limit", min=1.0, help="Wall-clock limit in seconds (the original's code said 30 s, its documentation 30 min)."),
    seed: int = typer.Option(0, "--seed", help="Seed of the optimiser."),
    faithful_q5: bool = typer.Option(False, "--faithful-q5", help="Evaluate the original's search merge, which ignores scaleThrsh and medianSize (quirk Q5)."),
    image_size: int = typer.Option(1024, "--image-size", min=64, help="Presegmentation network size."),
    max_network_size: Optional[int] = typer.Option(None, "--max-network-size", min=64, help="Cap the 2x/4x Mask R-CNN sizes."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress output."),
) -> None:
    """Search the 9 post-processing parameters that maximise the DSB score on validation images (spec 5.8)."""
    for path, what in ((model, "weight file"), (preseg_model, "weight file"), (unet, "U-Net ensemble folder")):
        if path is not None and not path.exists():
            raise NucleaizerError(f"{path}: no such {what}")
    import_tensorflow()
    from nucleaizer_tf.data.pairs import pair_folders
    from nucleaizer_tf.pipelines.full import FullPipeline, FullSettings, validation_samples
    from nucleaizer_tf.postprocess.search import search_parameters, write_search_result

    n_images = len(pair_folders(images, masks))
    pipeline = FullPipeline(work_dir, preseg_model or model, model, unet,
                            FullSettings(preseg_size=image_size, max_network_size=max_network_size))
    with progress_bar("network stages", quiet, total=n_images) as advance:
        samples = validation_samples(pipeline, masks, images, progress=advance)

    def report(evaluations, best, elapsed):
        if not quiet and (evaluations <= 2 or evaluations % 25 == 0):
            typer.echo(f"  {evaluations:5d} evaluations, best DSB {best:.4f}, {elapsed:6.1f} s", err=True)

    result = search_parameters(samples, time_limit_s=time_limit, seed=seed, faithful_q5=faithful_q5, progress=report)
    write_search_result(out, result)
    summary = result.as_dict()
    typer.echo(f"best {' '.join(str(v) for v in summary['best_vector'])}: DSB {summary['best_score']:.4f} "
               f"(defaults {summary['default_score']:.4f}); written to {out}")


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
