"""Benchmark of `segment_large_image` (the issue's acceptance numbers).

1. `--check N` (default 4000): an N×N synthetic mosaic as a zarr array, segmented in `--block`
   blocks on `--workers` local workers, against the single-process tiled run
   `load_model("default").model.segment(image, nucleus_size=...)`: every nucleus matched at IoU ≥ 0.99
   both ways, none split, ids unique (each id is 1 + the raster index of its nucleus's first pixel).
2. `--timing N` (e.g. 8000 or 20000; 0 = skip): an N×N mosaic written block by block to a zarr store
   (never whole in memory), segmented on `--workers` local workers; reports the time and each
   worker's peak resident memory (the kernel's high-water mark, VmHWM, and RSS sampled every
   second through `client.run`).

Prints one JSON object per part. Run from the repository root, e.g.

    PYTHONPATH=. python scripts/bench_large_image.py --check 4000 --timing 8000 --workers 2
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def write_mosaic(path: Path, side: int, block: int) -> Path:
    """An side×side uint8 RGB mosaic written to a zarr array chunk by chunk."""
    import zarr

    from nucleaizer_tf.synthetic import SyntheticMosaic

    mosaic = SyntheticMosaic((side, side), n_nuclei=45)
    array = zarr.create_array(str(path), shape=(side, side, 3), chunks=(block, block, 3), dtype="uint8")
    for y in range(0, side, block):
        for x in range(0, side, block):
            array[y:y + block, x:x + block] = mosaic.window(slice(y, y + block), slice(x, x + block))
    return path


def _rss() -> int:
    import psutil

    return psutil.Process().memory_info().rss


def _peak_rss() -> int:
    """This process's resident-memory high-water mark in bytes: Linux's VmHWM, which starts afresh in a
    new program (`ru_maxrss` does not: a worker spawned by a process that had used 2 GB reports 2 GB)."""
    status = Path("/proc/self/status")
    if status.is_file():
        for line in status.read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024  # kB
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # kB on Linux, bytes on macOS


class WorkerMemory:
    """Samples every worker's RSS once a second while a run is going (and reads the peaks at the end)."""

    def __init__(self, client):
        self.client, self.sampled, self._stop = client, {}, threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def _loop(self):
        while not self._stop.wait(1.0):
            try:
                for worker, rss in self.client.run(_rss).items():
                    self.sampled[worker] = max(self.sampled.get(worker, 0), rss)
            except Exception:  # the cluster is closing
                return

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()

    def summary(self) -> dict:
        peaks = self.client.run(_peak_rss)
        gib = 2**30
        return {"peak_rss_gib": {w: round(v / gib, 3) for w, v in peaks.items()},
                "sampled_rss_gib": {w: round(v / gib, 3) for w, v in self.sampled.items()}}


def check(side: int, block: int, workers: int, folder: Path, nucleus_size: float) -> dict:
    import zarr

    from nucleaizer_tf import load_model
    from nucleaizer_tf.metrics import agreement
    from nucleaizer_tf.pipelines.dask_engine import dask_client
    from nucleaizer_tf.pipelines.large_image import segment_large_image

    source = write_mosaic(folder / f"check{side}.zarr", side, block)
    image = zarr.open_array(str(source))[:]
    with dask_client(workers=workers) as client, WorkerMemory(client) as memory:
        report = segment_large_image(source, folder / "out", block=block, nucleus_size=nucleus_size, client=client,
                                     overwrite=True)
        worker_memory = memory.summary()
    labels = zarr.open_array(str(report.output))[:]
    started = time.time()
    reference = load_model("default").model.segment(image, nucleus_size=report.nucleus_size)
    single_seconds = time.time() - started
    result = agreement(reference, labels, threshold=0.99)
    flat = labels.ravel()
    at = np.flatnonzero(flat)
    ids, first = np.unique(flat[at], return_index=True)
    return {"part": "check", "image": [side, side], "block": block, "workers": workers,
            "scale": report.scale, "nuclei_blocks": report.nuclei, "nuclei_single": int(reference.max()),
            "uncertain": report.uncertain, "blocks_seconds": report.seconds,
            "single_process_seconds": round(single_seconds, 2),
            "worst_iou": result.worst_iou, "below_0.99": result.below, "split": result.split,
            "identical_pixels": bool(np.array_equal(labels > 0, reference > 0)),
            "ids_unique": bool(np.array_equal(ids.astype(np.int64), at[first] + 1)),
            "matched": result.matched, **worker_memory}


def timing(side: int, block: int, workers: int, folder: Path, nucleus_size: float) -> dict:
    from nucleaizer_tf.pipelines.dask_engine import dask_client
    from nucleaizer_tf.pipelines.large_image import segment_large_image

    started = time.time()
    source = write_mosaic(folder / f"timing{side}.zarr", side, block)
    written = time.time() - started
    with dask_client(workers=workers) as client, WorkerMemory(client) as memory:
        report = segment_large_image(source, folder / "out", block=block, nucleus_size=nucleus_size, client=client,
                                     overwrite=True)
        worker_memory = memory.summary()
    blocks = report.blocks[0] * report.blocks[1]
    return {"part": "timing", "image": [side, side], "block": block, "workers": workers,
            "mosaic_write_seconds": round(written, 1), "seconds": report.seconds, "blocks": blocks,
            "seconds_per_block": round(report.seconds / blocks, 2), "nuclei": report.nuclei,
            "uncertain": report.uncertain, "client_peak_rss_gib": round(_peak_rss() / 2**30, 3), **worker_memory}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", type=int, default=4000, help="side of the equality check image (0 = skip)")
    parser.add_argument("--timing", type=int, default=0, help="side of the timed mosaic (0 = skip)")
    parser.add_argument("--block", type=int, default=1024)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--nucleus-size", type=float, default=20.0)
    parser.add_argument("--tmp", default=None, help="folder for the zarr stores (default: a new one in /tmp)")
    args = parser.parse_args(argv)
    folder = Path(args.tmp or tempfile.mkdtemp(prefix="bench_large_image."))
    folder.mkdir(parents=True, exist_ok=True)
    try:
        if args.check:
            print(json.dumps(check(args.check, args.block, args.workers, folder, args.nucleus_size)), flush=True)
        if args.timing:
            print(json.dumps(timing(args.timing, args.block, args.workers, folder, args.nucleus_size)), flush=True)
    finally:
        if args.tmp is None:
            shutil.rmtree(folder, ignore_errors=True)
    return 0


if __name__ == "__main__":
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    raise SystemExit(main())
