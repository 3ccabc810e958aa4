"""`nucleaizer-tf predict`: fast mode (legacy Mask R-CNN or the shipped default model) and full mode."""

from __future__ import annotations

from enum import Enum
from pathlib import Path
from typing import Optional

import typer

from nucleaizer_tf.cli.common import fail_cleanly, import_tensorflow, progress_bar
from nucleaizer_tf.errors import NucleaizerError


class Conversion(str, Enum):
    nucleaizer = "nucleaizer"
    percentile = "percentile"


class Mode(str, Enum):
    fast = "fast"
    full = "full"


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
    conversion: Conversion = typer.Option(Conversion.nucleaizer, "--conversion", help="Mask R-CNN modes: how non-8-bit images become 8-bit RGB, nucleaizer (per-channel min-max, the original) or percentile (1-99.8 %). The default model always stretches by percentiles."),
    tta: bool = typer.Option(False, "--tta", help="Default model: average each image's map over its 8 flips and rotations (about 8× slower, slightly tighter outlines)."),
    overlay: bool = typer.Option(False, "--overlay", help="Also write outline overlays to OUT_DIR/overlays/<stem>.png."),
    save_rois: bool = typer.Option(False, "--save-rois", help="Also write an ImageJ/Fiji ROI set per image: OUT_DIR/rois/<stem>.zip."),
    save_geojson: bool = typer.Option(False, "--save-geojson", help="Also write QuPath detections per image: OUT_DIR/geojson/<stem>.geojson."),
    save_csv: bool = typer.Option(False, "--save-csv", help="Also write per-nucleus measurements (OUT_DIR/measurements/<stem>.csv) and OUT_DIR/summary.csv."),
    pixel_size: Optional[float] = typer.Option(None, "--pixel-size", help="Pixel size in µm: adds calibrated µm / µm² columns to the measurements."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bar or summary."),
) -> None:
    """Segment nuclei in every image and write 16-bit label TIFFs (0 = background, one id per nucleus)."""
    from nucleaizer_tf.pipelines.measure import ExportOptions
    from nucleaizer_tf.pipelines.predict import collect_inputs, predict_files

    exports = ExportOptions(rois=save_rois, geojson=save_geojson, csv=save_csv, pixel_size=pixel_size)
    files = collect_inputs(images, out_dir)
    for path, what in ((model, "weight file"), (preseg_model, "weight file"), (unet, "U-Net ensemble folder"),
                       (postprocess_params, "parameter file")):
        if path is not None and not path.exists():
            raise NucleaizerError(f"{path}: no such {what}")
    if tta and (model is not None or mode is Mode.full):
        raise NucleaizerError("--tta applies to the shipped default model only (fast mode without --model)")
    import_tensorflow()
    common = dict(padding=padding, dilation=dilation, fill_holes=fill_holes,
                  absolute_mask_threshold=absolute_mask_threshold, conversion=conversion.value)
    cleanup = None
    if mode is Mode.full:
        segment, settings, cleanup = _full_mode(
            out_dir, model, preseg_model, unet, postprocess_params, work_dir, keep_intermediate, max_network_size,
            confidence, nms, max_instances, image_size, common)
    elif model is None:
        segment, settings = _default_model_mode(nucleus_size, tta)
    else:
        segment, settings = _fast_mode(model, confidence, nms, max_instances, image_size, nucleus_size, common)
    with progress_bar("segmenting", quiet, total=len(files)) as advance:
        report = predict_files(files, out_dir, segment, overlay=overlay, settings=settings, progress=advance,
                               exports=exports)
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


def _default_model_mode(nucleus_size, tta):
    """The shipped default model (no legacy weights needed); it converts any image by itself."""
    import math

    from nucleaizer_tf.default_model import DefaultModel

    network = DefaultModel.load()

    def segment(image, stem):
        labels, info = network.segment(image, diameter=nucleus_size, tta=tta, return_info=True)
        estimated = None if not math.isfinite(info.diameter) else round(float(info.diameter), 2)
        return labels, {"scale": round(float(info.scale), 4), "estimated_diameter": estimated}

    return segment, {"mode": "fast", "model": "default (weights/default)",
                     "model_sha256": network.manifest.get("sha256"), "nucleus_size": nucleus_size, "tta": tta}


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
