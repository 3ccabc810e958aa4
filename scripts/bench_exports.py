"""Time the Fiji / QuPath / spreadsheet exports on a generated label image with 10,000 nuclei.

    python scripts/bench_exports.py [--nuclei 10000] [--out DIR]

Nuclei are discs of diameter 16 px on a 20 px grid (uint16 image with random 16-bit intensities).
Prints seconds for tracing the outlines, writing the ROI set, the GeoJSON, and measuring + writing the CSV.
"""

from __future__ import annotations

import argparse
import math
import tempfile
import time
from pathlib import Path

import numpy as np

from nucleaizer_tf.io import write_geojson, write_roi_zip, write_table_csv
from nucleaizer_tf.measure import basic_measurements, measure_nuclei, trace_outlines


def grid_of_nuclei(count: int, cell: int = 20, radius: float = 8.0) -> np.ndarray:
    """A label image with `count` discs, one per `cell`×`cell` tile, ids 1..count in reading order."""
    side = math.ceil(math.sqrt(count))
    ys, xs = np.mgrid[0 : side * cell, 0 : side * cell]
    labels = (ys // cell) * side + xs // cell + 1
    inside = (ys % cell - (cell - 1) / 2) ** 2 + (xs % cell - (cell - 1) / 2) ** 2 <= radius**2
    labels[~inside | (labels > count)] = 0
    return labels.astype(np.uint16 if count < 65536 else np.uint32)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nuclei", type=int, default=10_000)
    parser.add_argument("--out", type=Path, default=None, help="folder for the files [a temporary folder]")
    args = parser.parse_args()
    labels = grid_of_nuclei(args.nuclei)
    image = np.random.default_rng(0).integers(0, 65535, labels.shape, dtype=np.uint16)
    with tempfile.TemporaryDirectory() as tmp:
        out = args.out or Path(tmp)
        timings = {}
        started = time.perf_counter()
        outlines = trace_outlines(labels)
        timings["trace outlines"] = time.perf_counter() - started
        started = time.perf_counter()
        write_roi_zip(out / "rois.zip", outlines)
        timings["ROI set (zip)"] = time.perf_counter() - started
        started = time.perf_counter()
        write_geojson(out / "nuclei.geojson", outlines, basic_measurements(labels))
        timings["GeoJSON"] = time.perf_counter() - started
        started = time.perf_counter()
        table = measure_nuclei(labels, image)
        write_table_csv(out / "nuclei.csv", table)
        timings["measurements CSV"] = time.perf_counter() - started
    print(f"{len(outlines)} nuclei, label image {labels.shape[1]}x{labels.shape[0]}")
    for name, seconds in timings.items():
        print(f"{name:>18}: {seconds:6.2f} s")


if __name__ == "__main__":
    main()
