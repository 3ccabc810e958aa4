"""Segment a folder of images into label TIFFs (+ overlays and a JSON record of the run).

The segmentation itself is a callable passed in (legacy Mask R-CNN fast mode, the shipped default
model, the full pipeline), so every mode shares one folder loop with the same guarantees: outputs
written atomically, one bad image reported and skipped, a record of settings and versions.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from nucleaizer_tf.errors import NucleaizerError
from nucleaizer_tf.io import IMAGE_EXTENSIONS, list_images, read_image, to_rgb8, write_json, write_labels, write_rgb
from nucleaizer_tf.pipelines.measure import ExportOptions, export_image, write_summary
from nucleaizer_tf.system import package_versions
from nucleaizer_tf.visualize import outline_overlay

RECORD_NAME = "nucleaizer-tf.json"

# segment(image, stem) -> (labels, extra facts for the record, e.g. the network size used)
SegmentFn = Callable[[np.ndarray, str], "tuple[np.ndarray, dict]"]


@dataclass
class PredictReport:
    outputs: list[Path] = field(default_factory=list)
    failures: list[tuple[Path, str]] = field(default_factory=list)
    images: list[dict] = field(default_factory=list)
    record: Path | None = None


def collect_inputs(images: str | os.PathLike, out_dir: str | os.PathLike) -> list[Path]:
    """The image files to segment: one file, or the images of a folder (sorted, non-recursive).

    Refuses an empty folder, two inputs with the same stem (both would write `<stem>.tiff`) and an
    output folder equal to the input folder (outputs could overwrite inputs).
    """
    images, out_dir = Path(images), Path(out_dir)
    if images.is_file():
        if images.suffix.lower() not in IMAGE_EXTENSIONS:
            raise NucleaizerError(f"{images}: unsupported file type {images.suffix!r}; expected one of {', '.join(IMAGE_EXTENSIONS)}")
        files = [images]
    else:
        files = list_images(images)
        if not files:
            raise NucleaizerError(f"{images}: no images ({', '.join(e[1:] for e in IMAGE_EXTENSIONS)}) in this folder")
        if out_dir.exists() and out_dir.resolve() == images.resolve():
            raise NucleaizerError(f"{out_dir}: the output folder must differ from the input folder")
    stems: dict[str, Path] = {}
    for path in files:
        if path.stem in stems:
            raise NucleaizerError(f"{path} and {stems[path.stem]} have the same stem; both would be written to {path.stem}.tiff")
        stems[path.stem] = path
    return files


def predict_files(
    files: list[Path],
    out_dir: str | os.PathLike,
    segment: SegmentFn,
    *,
    overlay: bool = False,
    settings: dict | None = None,
    progress: Callable[[str], None] | None = None,
    exports: ExportOptions | None = None,
) -> PredictReport:
    """Segment each file into `out_dir/<stem>.tiff` (and `out_dir/overlays/<stem>.png`).

    A file that cannot be read or segmented is recorded in `failures` and skipped; the run goes on.
    `out_dir/nucleaizer-tf.json` records the settings, package versions and per-image facts.
    `exports` adds ROI sets, GeoJSON and measurement CSVs per image (and `summary.csv`), see
    `nucleaizer_tf.pipelines.measure.export_image`.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    report = PredictReport()
    summary_rows = []
    for path in files:
        started = time.perf_counter()
        try:
            image = read_image(path)
            labels, facts = segment(image, path.stem)
            target = write_labels(out_dir / f"{path.stem}.tiff", labels)
            if overlay:
                shown = to_rgb8(image, "nucleaizer" if image.dtype == np.uint8 else "percentile")
                write_rgb(out_dir / "overlays" / f"{path.stem}.png", outline_overlay(shown, labels))
            if exports is not None and exports.any:
                summary_rows.append(export_image(out_dir, path.stem, image, labels, exports, {
                    "image": str(path), "labels": str(target), "model": (settings or {}).get("model", ""),
                    "seconds": round(time.perf_counter() - started, 3)}))
        except Exception as exc:  # one bad image must not end a night's run; it is reported instead
            message = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            if not isinstance(exc, (NucleaizerError, ValueError, OSError)):
                message = f"{type(exc).__name__}: {message}"
            report.failures.append((path, message))
        else:
            report.outputs.append(target)
            report.images.append(
                {
                    "image": str(path),
                    "labels": str(target),
                    "objects": int(np.count_nonzero(np.bincount(labels.ravel())[1:])),
                    "seconds": round(time.perf_counter() - started, 3),
                    **facts,
                }
            )
        if progress is not None:
            progress(path.name)
    if exports is not None:
        write_summary(out_dir, summary_rows, exports)
    report.record = write_json(
        out_dir / RECORD_NAME,
        {
            "command": "predict",
            "settings": settings or {},
            "versions": package_versions(),
            "images": report.images,
            "failures": [{"image": str(p), "error": msg} for p, msg in report.failures],
        },
    )
    return report
