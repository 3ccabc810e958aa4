"""Benchmark (issue 16): `predict` on the local engine and on 1 and 2 local Dask workers, same run.

    python scripts/bench_scale.py [--images 200] [--size 512] [--workers 1 2]

Generates --images synthetic fluorescence / bright-field images of --size² (`nucleaizer_tf.synthetic`,
~4 % of the area in nuclei of the trained diameter), then segments the folder with the shipped default
model: once with `--engine local` and once per --workers count with `--engine dask`, each into its own
output folder. Prints images/s of each run, the speed-up against one worker, the start-up cost of the
cluster (workers started, TensorFlow imported and the model loaded on each: the time to the first
finished image), and checks that every label file is byte-identical to the local engine's. Also prints
the load average (a shared machine inflates every time; the ratios are what to read).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402

from nucleaizer_tf.progress import Reporter  # noqa: E402


def make_images(folder: Path, count: int, size: int) -> None:
    from nucleaizer_tf.io import write_rgb
    from nucleaizer_tf.synthetic import synthetic_nuclei

    folder.mkdir(parents=True, exist_ok=True)
    n = max(1, int(0.04 * size * size / (np.pi * 10.0 ** 2)))
    for i in range(count):
        sample = synthetic_nuclei((size, size), n, 20.0, style=("fluorescence", "brightfield")[i % 2], seed=i)
        write_rgb(folder / f"field{i:04d}.png", np.ascontiguousarray(sample.image[..., :3]))


class FirstImageClock(Reporter):
    """Progress sink noting when the first image finished (the start-up cost of a run)."""

    def __init__(self):
        self.first = None

    @contextlib.contextmanager
    def stage(self, name, total=None):
        def advance(label=None):
            if self.first is None and label is not None:
                self.first = time.perf_counter()
        yield advance


def timed_run(images: Path, out: Path, **engine) -> dict:
    from nucleaizer_tf.pipelines.predict import run_predict

    probe = FirstImageClock()
    start = time.perf_counter()
    report = run_predict(images, out, reporter=probe, **engine)
    wall = time.perf_counter() - start
    n = len(report.outputs)
    first = (probe.first - start) if probe.first else float("nan")
    rest = wall - first
    return {"images": n, "failures": len(report.failures), "wall_s": wall, "images_per_s": n / wall,
            "first_image_s": first, "steady_images_per_s": (n - 1) / rest if n > 1 and rest > 0 else float("nan")}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=200)
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    args = parser.parse_args(argv)

    with tempfile.TemporaryDirectory(prefix="bench_scale_") as tmp:
        tmp = Path(tmp)
        make_images(tmp / "images", args.images, args.size)
        runs = {"local": timed_run(tmp / "images", tmp / "out_local")}
        for n in args.workers:
            runs[f"dask, {n} worker{'s' if n > 1 else ''}"] = timed_run(
                tmp / "images", tmp / f"out_dask{n}", engine="dask", workers=n)
        names = sorted(p.name for p in (tmp / "out_local").glob("*.tiff"))
        identical = {f"out_dask{n}": all((tmp / "out_local" / f).read_bytes() == (tmp / f"out_dask{n}" / f).read_bytes()
                                         for f in names) for n in args.workers}

    one = runs.get("dask, 1 worker")
    print(f"{args.images} images of {args.size}², shipped default model; {os.cpu_count()} cores; "
          f"load average {os.getloadavg()[0]:.1f}")
    print()
    print("| engine | images/s (whole run) | images/s after the first image | time to the first image (s) | "
          "speed-up vs 1 worker (steady) |")
    print("| --- | ---: | ---: | ---: | ---: |")
    for name, r in runs.items():
        speedup = r["steady_images_per_s"] / one["steady_images_per_s"] if one and name.startswith("dask") else None
        print(f"| {name} | {r['images_per_s']:.2f} | {r['steady_images_per_s']:.2f} | {r['first_image_s']:.1f} | "
              + (f"{speedup:.2f}× |" if speedup else "– |"))
    print()
    print("label files byte-identical to the local engine's:", identical)
    bad = [name for name, r in runs.items() if r["failures"] or r["images"] != args.images]
    if bad or not all(identical.values()):
        print("FAILED:", bad or identical, file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
