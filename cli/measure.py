"""`nucleaizer-tf measure`: measurements, ROI sets and GeoJSON for label images from any tool."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from nucleaizer_tf.cli.common import Planes, fail_cleanly, progress_bar


@fail_cleanly
def measure(
    images: Path = typer.Argument(..., help="Folder of the original images (their own values are measured)."),
    labels: Path = typer.Argument(..., help="Folder of label images (TIFF/PNG), ImageJ ROI sets (.zip) or GeoJSON, same file stems."),
    out_dir: Path = typer.Argument(..., help="Folder for measurements/<stem>.csv and summary.csv (created if needed)."),
    save_rois: bool = typer.Option(False, "--save-rois", help="Also write an ImageJ/Fiji ROI set per image: OUT_DIR/rois/<stem>.zip."),
    save_geojson: bool = typer.Option(False, "--save-geojson", help="Also write QuPath detections per image: OUT_DIR/geojson/<stem>.geojson."),
    pixel_size: Optional[float] = typer.Option(None, "--pixel-size", help="Pixel size in µm: adds calibrated µm / µm² columns."),
    planes: Optional[Planes] = typer.Option(None, "--planes", help="Z or time stacks, as predict --planes segmented them: each = every plane against its label stack (rows carry z / t columns), max = the maximum projection."),
    channel: Optional[int] = typer.Option(None, "--channel", min=0, help="Read this channel (0-based) of multi-channel images, as predict --channel did [all: grey or RGB]."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bar or summary."),
) -> None:
    """Per-nucleus measurements (area, shape, intensities per channel) of existing label images."""
    from nucleaizer_tf.io.read import ReadOptions
    from nucleaizer_tf.pipelines.measure import ExportOptions, measure_folders, pair_images_with_labels

    options = ExportOptions(rois=save_rois, geojson=save_geojson, csv=True, pixel_size=pixel_size)
    pairs = pair_images_with_labels(images, labels, out_dir)
    with progress_bar("measuring", quiet, total=len(pairs)) as advance:
        report = measure_folders(pairs, out_dir, options, progress=advance, read=ReadOptions(channel=channel, planes=planes and planes.value))
    if not quiet:
        nuclei = sum(row["nuclei"] for row in report.rows)
        typer.echo(f"measured {nuclei} nuclei in {len(report.rows)} images; wrote {out_dir}")
