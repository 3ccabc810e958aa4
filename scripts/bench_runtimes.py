"""Benchmark (issue 29): the default model on TensorFlow and on OpenVINO, end to end, in one run.

    python scripts/bench_runtimes.py ../shared/data/dsb2018 [--sizes 256 1024 4096] [--repeats 3]
                                     [--images 68] [--json runtimes.json]

Speed: per size S, a real validation image mirror-tiled to S×S goes through
`load_model("default").segment(image, runtime=..., precision=...)` as `predict` runs it (size estimation, every network
pass, the instance step): seconds per image, the median of --repeats after a warm-up, the two runtimes
interleaved (tf, ov, ov-bf16, tf, ...) so machine load hits all alike; also the network alone at 1024²
(`probability_map` at the image's own scale). The conversion (once per weights, then cached on disk) is
timed apart.

Variants: TensorFlow float32 (the reference, the baseline of every speed-up), OpenVINO float32 (the
default where OpenVINO is installed) and OpenVINO bfloat16 (opt-in, `--precision bfloat16`).

Agreement: on --images validation images of DSB 2018 (validation.txt), each variant's labels against
TensorFlow's: F1 at IoU 0.5, the fraction of label images that are identical, and each variant's DSB
score against the annotation. Prints markdown tables and the machine's load average.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402

from bench_speed import tiled  # noqa: E402  (scripts/ is on sys.path when this file runs)

#: column → segment options; the first is the baseline of the speed-ups and of the agreement
VARIANTS = {"TensorFlow": {"runtime": "tensorflow"}, "OpenVINO": {"runtime": "openvino"},
            "OpenVINO bfloat16": {"runtime": "openvino", "precision": "bfloat16"}}
BASE = "TensorFlow"


def timed(run) -> float:
    """Seconds one call of `run` takes."""
    start = time.perf_counter()
    run()
    return time.perf_counter() - start


def speed(model, image: np.ndarray, sizes, repeats: int) -> list[dict]:
    """Median seconds per image of each variant, per size, end to end (and the network alone at 1024²)."""
    from nucleaizer_tf.default_model.preprocess import stretch_rgb8

    rows = []
    for size in sizes:
        picture = tiled(image, size)
        cases = {"end to end": {v: (lambda o=o: model.segment(picture, **o)) for v, o in VARIANTS.items()}}
        if size == 1024:
            rgb8 = stretch_rgb8(picture)
            cases["network alone"] = {
                v: (lambda o=o: model.model.with_precision(o.get("precision", "float32"))
                    .with_runtime(o["runtime"]).probability_map(rgb8)) for v, o in VARIANTS.items()}
        for what, runs in cases.items():
            times = {v: [] for v in VARIANTS}
            for run in runs.values():
                run()  # warm-up: traces and first-shape compilation are not what a folder run pays per image
            for _ in range(repeats):
                for v, run in runs.items():
                    times[v].append(timed(run))
            seconds = {v: statistics.median(t) for v, t in times.items()}
            rows.append({"size": size, "what": what, "seconds": seconds, "repeats": repeats,
                         "speedup": {v: seconds[BASE] / s for v, s in seconds.items()}})
            print(f"  {size}² {what}: " + ", ".join(f"{v} {s:.3f} s" for v, s in seconds.items()), flush=True)
    return rows


def agreement(model, folder: Path, ids: list[str]) -> dict:
    """Each variant's labels against the baseline's, and every variant against the annotation, on `ids`."""
    from nucleaizer_tf.io import read_image, read_labels
    from nucleaizer_tf.metrics import score_dataset, score_image

    identical, f1s, scores = ({v: [] for v in VARIANTS} for _ in range(3))
    for name in ids:
        image = read_image(folder / "images" / f"{name}.png")
        truth = read_labels(folder / "masks" / f"{name}.tiff")
        labels = {v: model.segment(image, **o) for v, o in VARIANTS.items()}
        for v in VARIANTS:
            identical[v].append(bool(np.array_equal(labels[BASE], labels[v])))
            f1s[v].append(score_image(labels[BASE], labels[v]).f1)
            scores[v].append(score_image(truth, labels[v], name))
    return {v: {"images": len(ids), "identical": float(np.mean(identical[v])), "f1_min": float(np.min(f1s[v])),
                "f1_mean": float(np.mean(f1s[v])), "dsb": score_dataset(scores[v]).dsb} for v in VARIANTS}


def maskrcnn_backbone(repeats: int, side: int = 1024) -> dict:
    """The legacy Mask R-CNN's convolutional part (ResNet-101, FPN, RPN; seeded random weights, which do
    not change the time) at side², TensorFlow against OpenVINO float32, and the largest difference."""
    import keras

    from nucleaizer_tf.maskrcnn import MaskRCNN, MaskRCNNConfig
    from nucleaizer_tf.runtime import OpenVINOForward, convert_keras

    keras.utils.set_random_seed(0)
    full = MaskRCNN(MaskRCNNConfig()).keras_model
    names = ("P2", "P3", "P4", "P5", "P6", "rpn_class", "rpn_bbox")
    network = keras.Model(full.inputs[0], [full.output[n] for n in names])
    x = np.random.default_rng(0).normal(0, 30, (1, side, side, 3)).astype(np.float32)
    start = time.perf_counter()
    converted = OpenVINOForward(convert_keras(network, 3))
    conversion = time.perf_counter() - start
    runs = {"tensorflow": lambda: [t.numpy() for t in network(x, training=False)],
            "openvino": lambda: converted.outputs(x)}
    outputs = {r: run() for r, run in runs.items()}
    difference = max(float(np.abs(a - b).max() / max(1e-6, float(np.abs(a).max())))
                     for a, b in zip(outputs["tensorflow"], outputs["openvino"]))
    seconds = {r: statistics.median(timed(run) for _ in range(repeats)) for r, run in runs.items()}
    return {"side": side, "conversion_s": conversion, "seconds": seconds, "relative_difference": difference,
            "speedup": seconds["tensorflow"] / seconds["openvino"]}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("dsb2018", type=Path, help="the DSB 2018 folder (images/, masks/, validation.txt)")
    parser.add_argument("--sizes", type=int, nargs="+", default=[256, 1024, 4096])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--images", type=int, default=68, help="validation images for the agreement [all 68]")
    parser.add_argument("--maskrcnn-backbone", action="store_true",
                        help="also time the legacy Mask R-CNN's ResNet-101 + FPN + RPN at 1024² on both runtimes")
    parser.add_argument("--json", type=Path, help="also write every number here")
    args = parser.parse_args(argv)

    from nucleaizer_tf import load_model
    from nucleaizer_tf.data.pairs import read_stem_list
    from nucleaizer_tf.io import read_image
    from nucleaizer_tf.runtime import openvino_installed

    if not openvino_installed():
        print("error: OpenVINO is not installed: pip install 'nucleaizer-tf[openvino]'", file=sys.stderr)
        return 2
    ids = read_stem_list(args.dsb2018 / "validation.txt")[:args.images]
    model = load_model("default")
    with tempfile.TemporaryDirectory() as cache:  # a cold cache, so the conversion is measured
        os.environ["NUCLEAIZER_TF_CACHE"] = cache
        conversion = timed(lambda: model.prepare(runtime="openvino"))
        print(f"conversion to OpenVINO (once per weights, then cached): {conversion:.1f} s", flush=True)
        print(f"load average before: {os.getloadavg()[0]:.2f}", flush=True)
        rows = speed(model, read_image(args.dsb2018 / "images" / f"{ids[0]}.png"), args.sizes, args.repeats)
        agree = agreement(model, args.dsb2018, ids)
        backbone = maskrcnn_backbone(args.repeats) if args.maskrcnn_backbone else None
    print(f"load average after: {os.getloadavg()[0]:.2f}\n")
    print("| image | what | " + " | ".join(f"{v} s" for v in VARIANTS) + " | "
          + " | ".join(f"{v} speed-up" for v in VARIANTS if v != BASE) + " |")
    print("| ---: | --- |" + " ---: |" * (2 * len(VARIANTS) - 1))
    for row in rows:
        print(f"| {row['size']}² | {row['what']} | " + " | ".join(f"{s:.3f}" for s in row["seconds"].values())
              + " | " + " | ".join(f"{row['speedup'][v]:.2f}×" for v in VARIANTS if v != BASE) + " |")
    print(f"\nAgreement with {BASE} on {len(ids)} DSB 2018 validation images (F1 at IoU 0.5 of the labels, "
          "identical label images) and the DSB score against the annotation:\n")
    print("| runtime | F1 min | F1 mean | identical | DSB |\n| --- | ---: | ---: | ---: | ---: |")
    for v, a in agree.items():
        print(f"| {v} | {a['f1_min']:.4f} | {a['f1_mean']:.4f} | {a['identical']:.1%} | {a['dsb']:.4f} |")
    if backbone:
        print(f"\nLegacy Mask R-CNN, ResNet-101 + FPN + RPN at {backbone['side']}²: TensorFlow "
              f"{backbone['seconds']['tensorflow']:.3f} s, OpenVINO {backbone['seconds']['openvino']:.3f} s "
              f"(×{backbone['speedup']:.2f}; conversion {backbone['conversion_s']:.1f} s; largest difference "
              f"{backbone['relative_difference']:.1e} of an output's range)")
    if args.json:
        args.json.write_text(json.dumps({"conversion_s": conversion, "speed": rows, "agreement": agree,
                                         "maskrcnn_backbone": backbone}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
