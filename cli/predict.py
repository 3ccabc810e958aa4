"""`nucleaizer-tf predict`: fast mode (legacy Mask R-CNN or the shipped default model) and full mode."""

from __future__ import annotations

from enum import Enum
from pathlib import Path
from typing import Optional

import typer

from nucleaizer_tf.cli.common import CliReporter, Planes, fail_cleanly
from nucleaizer_tf.system import import_tensorflow


#: the panels of `predict --help`
INPUTS = "Inputs, outputs and the model"
DEFAULT = "Default model"
MASKRCNN = "Legacy Mask R-CNN"
FULL = "Full pipeline (--mode full)"
SCALE = "Scale-out"
EXPORTS = "Exports"


class Conversion(str, Enum):
    nucleaizer = "nucleaizer"
    percentile = "percentile"


class Precision(str, Enum):
    float32 = "float32"
    bfloat16 = "bfloat16"
    auto = "auto"


class Runtime(str, Enum):
    """`--runtime`: the values of `nucleaizer_tf.runtime.RUNTIMES` (a test checks)."""

    auto = "auto"
    tensorflow = "tensorflow"
    openvino = "openvino"


class Mode(str, Enum):
    fast = "fast"
    full = "full"


class Engine(str, Enum):
    local = "local"
    dask = "dask"


@fail_cleanly
def predict(
    images: Path = typer.Argument(..., help="An image file or a folder of images (png, tif, tiff, bmp, jpg)."),
    out_dir: Path = typer.Argument(..., help="Folder for <stem>.tiff label images (created if needed)."),
    model: Optional[Path] = typer.Option(None, "--model", "-m", help="A model folder (manifest.json + weights: a fine-tuned default model from adapt or train default, a U-Net ensemble, a full-pipeline folder) or legacy matterport/nucleAIzer Mask R-CNN weights (.h5). Without it: the shipped default model; full mode: mask_rcnn_final.h5.", rich_help_panel=INPUTS),
    mode: Mode = typer.Option(Mode.fast, "--mode", help="fast: one segmentation pass per image. full: nucleAIzer's full pipeline (presegmentation, size estimation, U-Net ensemble, Mask R-CNN at two scales, post-processing).", rich_help_panel=INPUTS),
    tile: Optional[int] = typer.Option(None, "--tile", min=64, help="Default model: side of the tiles large images are run in (memory grows with its square; the labels are the same for any tile) [1024].", rich_help_panel=DEFAULT),
    seed_threshold: Optional[float] = typer.Option(None, "--seed-threshold", min=0.0, max=1.0, help="Default model: interior probability a nucleus seed needs (higher: fewer, surer nuclei; splits fewer touching ones) [the model's, 0.5 for the shipped one].", rich_help_panel=DEFAULT),
    foreground_threshold: Optional[float] = typer.Option(None, "--foreground-threshold", min=0.0, max=1.0, help="Default model: a pixel belongs to a nucleus where P(background) is below this (higher: larger outlines) [the model's, 0.45 for the shipped one].", rich_help_panel=DEFAULT),
    min_size: Optional[int] = typer.Option(None, "--min-size", min=0, help="Default model: drop nuclei of fewer pixels, at the image's resolution [0].", rich_help_panel=DEFAULT),
    exclude_edges: bool = typer.Option(False, "--exclude-edges", help="Default model: drop nuclei touching the image border (they are cut, so their size and shape are wrong).", rich_help_panel=DEFAULT),
    tta: bool = typer.Option(False, "--tta", help="Default model: average each image's map over its 8 flips and rotations (about 8× slower, slightly tighter outlines).", rich_help_panel=DEFAULT),
    confidence: Optional[float] = typer.Option(None, "--confidence", min=0.0, max=1.0, help="Mask R-CNN: minimum detection score [fast: 0.7, 0.5 with --nucleus-size; full: 0.6 for the final model].", rich_help_panel=MASKRCNN),
    nms: Optional[float] = typer.Option(None, "--nms", min=0.0, max=1.0, help="Mask R-CNN: IoU above which the lower-scoring of two detections is suppressed [0.35].", rich_help_panel=MASKRCNN),
    max_instances: Optional[int] = typer.Option(None, "--max-instances", min=1, help="Mask R-CNN: most nuclei per image [800; 1200 with --nucleus-size].", rich_help_panel=MASKRCNN),
    image_size: Optional[int] = typer.Option(None, "--image-size", min=64, help="Mask R-CNN: network input size D (rounded up to a multiple of 64): the padded image's long side is resized to D (full mode: presegmentation) [1024].", rich_help_panel=MASKRCNN),
    nucleus_size: Optional[float] = typer.Option(None, "--nucleus-size", "--diameter", min=1.0, help="Typical nucleus diameter in pixels (--diameter is Cellpose's name for it): Mask R-CNN picks D per image so nuclei reach 80 px (nucleAIzer's manual-size mode); the default model rescales so nuclei reach its segment diameter (24 px for the shipped one) instead of estimating it.", rich_help_panel=INPUTS),
    padding: Optional[float] = typer.Option(None, "--padding", min=0.0, max=0.5, help="Mask R-CNN: reflect padding per side, as a fraction of the image size [0.05].", rich_help_panel=MASKRCNN),
    dilation: Optional[int] = typer.Option(None, "--dilation", min=0, help="Mask R-CNN: radius of the per-nucleus dilation (0 = none) [1].", rich_help_panel=MASKRCNN),
    fill_holes: bool = typer.Option(False, "--fill-holes", help="Mask R-CNN: fill holes inside each nucleus (the original's hole filling was a no-op).", rich_help_panel=MASKRCNN),
    absolute_mask_threshold: bool = typer.Option(False, "--absolute-mask-threshold", help="Mask R-CNN: cut masks at probability 0.5 instead of matterport 2.1's per-mask min-max mid-point.", rich_help_panel=MASKRCNN),
    conversion: Optional[Conversion] = typer.Option(None, "--conversion", help="Mask R-CNN modes: how non-8-bit images become 8-bit RGB, nucleaizer (per-channel min-max, the original) or percentile (1-99.8 %) [nucleaizer]. The default model always stretches by percentiles.", rich_help_panel=MASKRCNN),
    preseg_model: Optional[Path] = typer.Option(None, "--preseg-model", help="Full mode: presegmentation weights (mask_rcnn_presegmentation.h5) [default: --model].", rich_help_panel=FULL),
    unet: Optional[Path] = typer.Option(None, "--unet", help="Full mode: U-Net ensemble folder (manifest.json + member weights).", rich_help_panel=FULL),
    postprocess_params: Optional[Path] = typer.Option(None, "--postprocess-params", help="Full mode: the 9 post-processing parameters (a param-search result or a JSON list) [76 32 0 1 44 17 32 25 21].", rich_help_panel=FULL),
    work_dir: Optional[Path] = typer.Option(None, "--work-dir", help="Full mode: folder for intermediate results; a re-run resumes from it [OUT_DIR/.nucleaizer-work, removed after success unless --keep-intermediate].", rich_help_panel=FULL),
    keep_intermediate: bool = typer.Option(False, "--keep-intermediate", help="Full mode: keep presegmentations, scale tables, U-Net maps and 2x/4x labels.", rich_help_panel=FULL),
    max_network_size: Optional[int] = typer.Option(None, "--max-network-size", min=64, help="Full mode: cap the 2x/4x Mask R-CNN sizes (the original allows up to 6000) to bound time and memory.", rich_help_panel=FULL),
    precision: Optional[Precision] = typer.Option(None, "--precision", help="Compute type of the networks: float32, bfloat16, or auto (bfloat16 where the CPU reports AVX512_BF16 or AMX, or a GPU's fast half type; else float32). Weights stay float32; softmax/sigmoid outputs, box decoding, NMS and ROI align stay float32 [float32: every model; README 'Speed and precision' gives the measured speed and accuracy].", rich_help_panel=INPUTS),
    runtime: Optional[Runtime] = typer.Option(None, "--runtime", help="Where the default model's network (or a U-Net ensemble's members) runs: auto (OpenVINO where the optional extra is installed, pip install 'nucleaizer-tf[openvino]', else TensorFlow), tensorflow (the reference) or openvino (about 1.2x faster on CPUs, the same labels; converted once per model and cached in ~/.cache/nucleaizer-tf). The run record says which ran [auto].", rich_help_panel=INPUTS),
    overlay: bool = typer.Option(False, "--overlay", help="Also write outline overlays to OUT_DIR/overlays/<stem>.png.", rich_help_panel=EXPORTS),
    save_rois: bool = typer.Option(False, "--save-rois", help="Also write an ImageJ/Fiji ROI set per image: OUT_DIR/rois/<stem>.zip.", rich_help_panel=EXPORTS),
    save_geojson: bool = typer.Option(False, "--save-geojson", help="Also write QuPath detections per image: OUT_DIR/geojson/<stem>.geojson.", rich_help_panel=EXPORTS),
    save_csv: bool = typer.Option(False, "--save-csv", help="Also write per-nucleus measurements (OUT_DIR/measurements/<stem>.csv) and OUT_DIR/summary.csv.", rich_help_panel=EXPORTS),
    save_probabilities: bool = typer.Option(False, "--save-probabilities", help="Default model: also write the network's class map per image, OUT_DIR/probabilities/<stem>.tiff: 8-bit RGB at the image's resolution, red = P(background), green = P(interior), blue = P(boundary) (0-255), for your own post-processing or to check the model.", rich_help_panel=EXPORTS),
    pixel_size: Optional[float] = typer.Option(None, "--pixel-size", help="Pixel size in µm: adds calibrated µm / µm² columns to the measurements.", rich_help_panel=EXPORTS),
    engine: Engine = typer.Option(Engine.local, "--engine", help="local: this process. dask: the images are read, segmented and written on Dask workers (--workers local processes, or the cluster at --scheduler); the same files and run record. Needs nucleaizer-tf[dask]; fast mode only.", rich_help_panel=SCALE),
    workers: Optional[int] = typer.Option(None, "--workers", min=1, help="--engine dask: local worker processes to start for the run [one per two cores].", rich_help_panel=SCALE),
    scheduler: Optional[str] = typer.Option(None, "--scheduler", help="--engine dask: address of a running Dask scheduler (e.g. tcp://10.0.0.5:8786; SLURM via dask-jobqueue), instead of local workers. Give absolute paths the workers can reach.", rich_help_panel=SCALE),
    large: bool = typer.Option(False, "--large", help="IMAGES is one image larger than memory (zarr, OME-Zarr, tiled BigTIFF): segmented block by block with the default model (on Dask workers with --workers / --scheduler, else threads in this process) into OUT_DIR/<name>.zarr, uint32 labels chunked like the blocks. A .zarr input is always treated so.", rich_help_panel=SCALE),
    block: int = typer.Option(1024, "--block", min=64, help="--large: block side in pixels; memory per worker grows with its square (about 1.2 GB at 1024).", rich_help_panel=SCALE),
    planes: Optional[Planes] = typer.Option(None, "--planes", help="Z or time stacks (multi-page TIFFs with axes Z, T: ImageJ hyperstacks, OME-TIFF): each = segment every plane in 2-D, a label stack out with the same axes (ids unique over the stack; --save-csv rows carry z / t columns, ROIs their plane); max = segment the maximum projection. Without it a stack is refused. True 3-D segmentation is not offered.", rich_help_panel=INPUTS),
    channel: Optional[int] = typer.Option(None, "--channel", min=0, help="Segment this channel (0-based) only, as grey: of multi-channel TIFFs (ImageJ hyperstacks, OME-TIFF; a multi-channel image without it is refused, listing its channels) or a colour component of RGB images [all: grey or RGB].", rich_help_panel=INPUTS),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace output files that no run of this tool wrote (without it such an image fails in one line and the others are segmented; files an earlier run wrote are replaced anyway). --large: replace an earlier result of this tool at OUT_DIR/<name>.zarr (anything else there is refused).", rich_help_panel=INPUTS),
    max_pixels: Optional[int] = typer.Option(None, "--max-pixels", min=1, help="Refuse images with more pixels than this, from their header before decoding (a whole image costs about 36 bytes per pixel); larger ones go block by block with --large [250000000].", rich_help_panel=INPUTS),
    skip_existing: bool = typer.Option(False, "--skip-existing", help="Resume an interrupted run: keep the images an earlier run into OUT_DIR finished with the same settings, model and input (checked by checksum); a changed setting recomputes everything.", rich_help_panel=INPUTS),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bar or summary.", rich_help_panel=INPUTS),
) -> None:
    """Segment nuclei in every image and write 16-bit label TIFFs (0 = background, one id per nucleus).

    Options that do not apply to the chosen model are refused with one line."""
    from nucleaizer_tf.io.read import ReadOptions
    from nucleaizer_tf.pipelines.measure import ExportOptions
    from nucleaizer_tf.pipelines.predict import run_predict

    given = {"confidence": confidence, "nms": nms, "max_instances": max_instances, "image_size": image_size,
             "nucleus_size": nucleus_size, "padding": padding, "dilation": dilation,
             "fill_holes": fill_holes or None, "absolute_mask_threshold": absolute_mask_threshold or None,
             "conversion": None if conversion is None else conversion.value, "tta": tta or None, "tile": tile,
             "seed_threshold": seed_threshold, "foreground_threshold": foreground_threshold, "min_size": min_size,
             "exclude_edges": exclude_edges or None,
             "postprocess_params": postprocess_params, "max_network_size": max_network_size,
             "precision": None if precision is None else precision.value,
             "runtime": None if runtime is None else runtime.value}
    options = {name: value for name, value in given.items() if value is not None}
    if large or images.name.lower().endswith(".zarr"):
        _predict_large(images, out_dir, model=model, options=options, mode=mode, block=block, channel=channel,
                       overwrite=overwrite, workers=workers, scheduler=scheduler, quiet=quiet,
                       per_image={"--overlay": overlay, "--save-rois": save_rois, "--save-geojson": save_geojson,
                                  "--save-csv": save_csv, "--save-probabilities": save_probabilities,
                                  "--skip-existing": skip_existing,
                                  "--max-pixels": max_pixels is not None, "--planes": planes is not None},
                       on_dask=engine is Engine.dask)
        return
    import_tensorflow()
    report = run_predict(images, out_dir, model=model, mode=mode.value if mode is Mode.full else None,
                         preseg_model=preseg_model, unet=unet, work_dir=work_dir, keep_intermediate=keep_intermediate,
                         options=options, overlay=overlay, reporter=CliReporter(quiet),
                         exports=ExportOptions(rois=save_rois, geojson=save_geojson, csv=save_csv,
                                               pixel_size=pixel_size, probabilities=save_probabilities),
                         skip_existing=skip_existing, engine=engine.value, workers=workers, scheduler=scheduler,
                         overwrite=overwrite,
                         read=ReadOptions(channel=channel, planes=planes and planes.value) if max_pixels is None else
                         ReadOptions(max_pixels, channel, planes and planes.value))
    _finish_predict(report, out_dir, quiet)


def _predict_large(images: Path, out_dir: Path, *, model, options: dict, mode, block: int, channel, overwrite: bool,
                   workers, scheduler, quiet: bool, per_image: dict, on_dask: bool) -> None:
    """`predict --large`: one image larger than memory, block by block (`pipelines.large_image`)."""
    from nucleaizer_tf.pipelines.large_image import segment_large_image

    refused = [flag for flag, on in per_image.items() if on] + [f"--{k.replace('_', '-')}" for k in options
                                                                 if k not in ("nucleus_size", "tta", "runtime")]
    if mode is Mode.full:
        refused.append("--mode full")
    if refused:
        raise ValueError(f"{', '.join(refused)} do(es) not apply to --large (the default model in blocks; it takes "
                         "--nucleus-size, --tta, --runtime, --model, --block, --channel, --workers, --scheduler)")
    if on_dask and workers is None and scheduler is None:  # --engine dask alone: local workers, the default count
        import os

        workers = max(1, (os.cpu_count() or 2) // 2)
    import_tensorflow()
    report = segment_large_image(images, out_dir, block=block, nucleus_size=options.get("nucleus_size"),
                                 runtime=options.get("runtime", "auto"),
                                 model=model, channel=channel, tta=bool(options.get("tta")), overwrite=overwrite,
                                 workers=workers, scheduler=scheduler, reporter=CliReporter(quiet))
    if not quiet:
        typer.echo(f"wrote {report.output}: {report.nuclei} nuclei in {report.blocks[0]}×{report.blocks[1]} blocks "
                   f"of {report.block} px (nucleus size {report.nucleus_size:.1f} px, "
                   f"{'estimated' if report.estimated else 'given'}) in {report.seconds:.0f} s")
    if report.uncertain:
        typer.echo(f"warning: {report.uncertain} nuclei lie in touching clusters wider than the block overlap; "
                   "they may differ slightly from a one-piece run (a larger --block reduces them)", err=True)


def _finish_predict(report, out_dir: Path, quiet: bool) -> None:
    """Summary line; failures listed one per line on stderr (always, even when the run record could not
    be written), exit code 1 if any image failed, 2 if the run record could not be written."""
    if not quiet:
        objects = sum(item["objects"] for item in report.images)
        kept = f", {report.skipped} kept from an earlier run" if report.skipped else ""
        typer.echo(f"wrote {len(report.outputs)} label images ({objects} nuclei{kept}) to {out_dir}")
    for path, message in report.failures:  # named once, also when the message starts with it
        typer.echo(f"failed: {message if message.startswith(f'{path}:') else f'{path}: {message}'}", err=True)
    if report.write_error:
        typer.echo(f"error: {report.write_error}", err=True)
        raise typer.Exit(2)
    if report.failures:
        typer.echo(f"error: {len(report.failures)} of {len(report.failures) + len(report.outputs)} images failed", err=True)
        raise typer.Exit(1)
