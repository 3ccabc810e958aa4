"""Benchmark (issue 17): float32 vs bfloat16 per image size, and the pipelined folder loop.

    python scripts/bench_speed.py --maskrcnn FIXTURE.h5 [--sizes 256 1024 4096] [--repeats 3] [--folder-images 50]

One run, one table, medians of --repeats after a warm-up; every variant of a size runs once per
repeat, interleaved (f32, bf16, f32, bf16, ...), so machine load hits both alike. Per size S (a real
DSB image mirror-tiled to S×S):

  default model     `load_model("default").segment` with nucleus_size = the trained diameter (scale 1,
                    one network pass, so both precisions do the same work), float32 / bfloat16
  default network   the network alone over the image (`DefaultModel.probability_map`: tiles of 1024,
                    no size estimation, no instance step): the floor of the row above
  legacy fast       `load_model(FIXTURE.h5).segment` (nucleAIzer's fast mode, network size 1024 for
                    every image size), float32 / bfloat16
  legacy network    `MaskRCNN.run_molded` alone on the molded 1024² image (detections + masks)

Folder: --folder-images images of 1024² through `predict_files` with the default model (automatic
size estimation, as `predict` runs), pipelined and sequential; wall time against the sum of the
per-image time spent inside the model (the compute the network thread cannot avoid).
Prints a markdown table; --json writes every time. Also prints the load average (a shared machine
inflates every time; the ratios are what to read).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402

PRECISIONS = ("float32", "bfloat16")
SAMPLE = "04acab7636c4cf61d288a5962f15fa456b7bde31a021e5deedfbf51288e4001e.png"


def tiled(image: np.ndarray, side: int) -> np.ndarray:
    """`image` mirror-tiled (flipped copies side by side) and cropped to side × side."""
    block = np.concatenate([image, image[:, ::-1]], axis=1)
    block = np.concatenate([block, block[::-1]], axis=0)
    reps = (-(-side // block.shape[0]), -(-side // block.shape[1])) + (1,) * (image.ndim - 2)
    return np.ascontiguousarray(np.tile(block, reps)[:side, :side])


def variants(size: int, image: np.ndarray, default, legacy, *, floor: bool = True, legacy_floor: bool = False) -> dict:
    """name -> zero-argument callable, for one image size (`legacy` None: no legacy rows)."""
    from nucleaizer_tf.default_model.preprocess import stretch_rgb8

    runs = {}
    diameter = default.model.segment_diameter  # scale 1: the network pass at the image's own size
    rgb8 = stretch_rgb8(image)
    for p in PRECISIONS:
        runs[f"default model {p}"] = lambda p=p: default.segment(image, nucleus_size=diameter, precision=p)
    for p in PRECISIONS if floor else ():
        runs[f"default network {p}"] = lambda p=p: default.model.with_precision(p).probability_map(rgb8)
    if legacy is not None:
        for p in PRECISIONS:
            runs[f"legacy fast {p}"] = lambda p=p: legacy.segment(image, precision=p, confidence=0.6)
        for p in PRECISIONS if legacy_floor else ():
            molded, meta = molded_input(legacy, image)
            network = legacy.network(legacy.resolve_options({"precision": p, "confidence": 0.6}))
            runs[f"legacy network {p}"] = lambda n=network, m=molded, t=meta: n.run_molded(m, t)
    return runs


def molded_input(legacy, image: np.ndarray, side: int = 1024):
    """The image resized to side × side, mean-subtracted, and its image_meta (window = everything)."""
    from nucleaizer_tf.default_model.preprocess import resize_image
    from nucleaizer_tf.io import to_rgb8
    from nucleaizer_tf.maskrcnn import MaskRCNNConfig

    cfg = MaskRCNNConfig.presegment()
    rgb = resize_image(to_rgb8(image), (side, side)).astype(np.float32) - np.asarray(cfg.MEAN_PIXEL, np.float32)
    meta = np.zeros((1, cfg.IMAGE_META_SIZE), np.float32)
    meta[0, 1:4] = (side, side, 3)
    meta[0, 4:8] = (0, 0, side, side)
    return rgb[None], meta


def time_interleaved(runs: dict, repeats: int, warmed: set) -> dict:
    for name, fn in runs.items():  # warm-up once per variant (tracing, building the networks): the
        if name not in warmed:     # signatures leave H and W open, so a new size is not retraced
            fn()
            warmed.add(name)
    times = {name: [] for name in runs}
    for _ in range(repeats):
        for name, fn in runs.items():
            start = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - start)
    return times


def folder_run(default, image: np.ndarray, n: int, repeats: int) -> dict:
    from nucleaizer_tf.io import write_labels
    from nucleaizer_tf.pipelines.predict import predict_files

    result = {"pipelined": [], "sequential": []}
    with tempfile.TemporaryDirectory(prefix="nucleaizer-bench-") as tmp:
        folder = Path(tmp) / "images"
        folder.mkdir()
        files = []
        for i in range(n):  # 16-bit TIFFs, each a different crop, so reading and converting is real work
            shifted = np.roll(image, (37 * i, 53 * i), axis=(0, 1))
            files.append(write_labels(folder / f"img{i:03d}.tif", shifted[..., 0].astype(np.uint16) * 257))
        default.prepare()
        default.segment(image)  # warm-up
        for r in range(repeats):
            for mode in ("pipelined", "sequential"):
                compute = []

                def segment(img, stem):
                    start = time.perf_counter()
                    out = default.segment_with_facts(img, name=stem)
                    compute.append(time.perf_counter() - start)
                    return out

                start = time.perf_counter()
                predict_files(files, Path(tmp) / f"out_{mode}_{r}", segment, overlay=True,
                              pipelined=mode == "pipelined")
                result[mode].append({"wall": time.perf_counter() - start, "compute": sum(compute)})
    return result


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--maskrcnn", type=Path, help="legacy Mask R-CNN .h5 for the legacy rows (e.g. the oracle fixture)")
    parser.add_argument("--data", type=Path, default=Path(__file__).resolve().parents[2] / "shared" / "data" / "dsb_train")
    parser.add_argument("--sizes", type=int, nargs="+", default=[256, 1024, 4096])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--large-repeats", type=int, help="repeats for sizes above 1024² [--repeats]")
    parser.add_argument("--legacy-sizes", type=int, nargs="+", help="sizes with the legacy rows [--sizes]")
    parser.add_argument("--floor-sizes", type=int, nargs="+", help="sizes with the default network row [--sizes]")
    parser.add_argument("--legacy-floor", action="store_true", help="also time MaskRCNN.run_molded alone")
    parser.add_argument("--folder-images", type=int, default=50, help="0 skips the folder rows")
    parser.add_argument("--folder-repeats", type=int, default=1)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)

    from nucleaizer_tf import load_model
    from nucleaizer_tf.io import read_image, write_json
    from nucleaizer_tf.precision import cpu_has_bf16, resolve_precision

    base = read_image(args.data / "images" / SAMPLE)
    default = load_model("default")
    legacy = load_model(str(args.maskrcnn)) if args.maskrcnn else None
    load_before = os.getloadavg()
    table = {}
    warmed: set = set()
    for size in args.sizes:
        image = tiled(base, size)
        repeats = args.repeats if size <= 1024 or args.large_repeats is None else args.large_repeats
        runs = variants(size, image, default, legacy if size in (args.legacy_sizes or args.sizes) else None,
                        floor=size in (args.floor_sizes or args.sizes), legacy_floor=args.legacy_floor)
        table[size] = time_interleaved(runs, repeats, warmed)
        print(f"{size}²: " + ", ".join(f"{k} {statistics.median(v):.3f}" for k, v in table[size].items()),
              file=sys.stderr, flush=True)
    folder = folder_run(default, tiled(base, 1024), args.folder_images, args.folder_repeats) if args.folder_images else None
    load_after = os.getloadavg()

    print(f"python scripts/bench_speed.py {' '.join(sys.argv[1:] if argv is None else argv)}\n")
    print(f"CPU: {os.cpu_count()} cores, AVX512_BF16/AMX reported: {cpu_has_bf16()}, auto = {resolve_precision('auto')}; "
          f"load average {load_before[0]:.1f} at start, {load_after[0]:.1f} at end; "
          f"median of {args.repeats} interleaved runs ({args.large_repeats or args.repeats} above 1024²), "
          "seconds per image\n")
    print("| size | what | float32 s | bfloat16 s | speed-up |")
    print("| ---: | --- | ---: | ---: | ---: |")
    for size, times in table.items():
        for what in ("default model", "default network", "legacy fast", "legacy network"):
            if f"{what} float32" not in times:
                continue
            f32, bf16 = (statistics.median(times[f"{what} {p}"]) for p in PRECISIONS)
            print(f"| {size}² | {what} | {f32:.3f} | {bf16:.3f} | {f32 / bf16:.2f}× |")
    if folder:
        print(f"\nFolder of {args.folder_images} images of 1024² (16-bit TIFF, default model float32, overlays on):\n")
        print("| loop | wall s | sum of per-image compute s | wall / compute |")
        print("| --- | ---: | ---: | ---: |")
        for mode, runs in folder.items():
            wall = statistics.median(r["wall"] for r in runs)
            compute = statistics.median(r["compute"] for r in runs)
            print(f"| {mode} | {wall:.1f} | {compute:.1f} | {wall / compute:.3f} |")
    if args.json:
        write_json(args.json, {"sizes": {str(k): v for k, v in table.items()}, "folder": folder,
                               "load_average": [load_before, load_after], "argv": sys.argv[1:]})
    return 0


if __name__ == "__main__":
    sys.exit(main())
