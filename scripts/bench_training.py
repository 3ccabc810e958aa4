"""Benchmark: seconds per training step of the legacy Mask R-CNN and of the faithful U-Net.

  maskrcnn : one SGD step of the full recipe (ResNet-101/FPN, 2000 proposals, 512 ROIs, mask head on every
             ROI, 5 losses + weight decay, clip-norm) on a synthetic --size² image with ~60 nuclei, for the
             layer group(s) given (default: all and heads); the input pipeline (tf.data + in-graph targets)
             is included, as in training.
  unet     : one Adam step of `build_unet()` (31 M parameters) at batch 12 × 256² through the shared
             U-Net loop (crop, flip, colour jitter, soft targets, soft-Jaccard).

Each is the median over --steps steps after one warm-up step (tracing). Weights are random (scratch
initialisation): step time does not depend on them.

`--compare-head-gradient` runs the Mask R-CNN steps twice in the same process: with the classifier
head's window-convolution gradient as matrix products (`maskrcnn.heads.WindowConv2D`, the default) and
with TensorFlow's own Conv2D kernel gradient (the baseline), and prints the speed-up.

Usage: python scripts/bench_training.py [--size 512] [--steps 3] [--groups all,heads] [--skip-unet] [--skip-maskrcnn]
                                        [--compare-head-gradient]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def bench_maskrcnn(size: int, steps: int, groups: list[str]) -> dict:
    import keras
    import tensorflow as tf

    from nucleaizer_tf.maskrcnn.config import MaskRCNNConfig
    from nucleaizer_tf.maskrcnn.training import MaskRCNNTrainer, init_from_scratch
    from nucleaizer_tf.synthetic import synthetic_nuclei

    keras.utils.set_random_seed(0)
    config = MaskRCNNConfig().with_image_size(size)
    start = time.perf_counter()
    trainer = MaskRCNNTrainer(config)
    init_from_scratch(trainer.model)
    build = time.perf_counter() - start
    sample = synthetic_nuclei((size, size), 60, size / 16, seed=0)
    examples, _ = trainer.prepare([(sample.image, sample.labels.astype("int32"))])
    out = {"size": size, "build_seconds": build, "train_rois": config.TRAIN_ROIS_PER_IMAGE}
    for group in groups:
        step = trainer.step_for(group, config.LEARNING_RATE)
        times = []
        first = None
        for i, batch in enumerate(trainer.dataset(examples, epoch=1, steps=steps + 1)):
            t0 = time.perf_counter()
            values = step(batch, tf.constant(i, tf.int64))
            float(values["loss"])
            dt = time.perf_counter() - t0
            if i == 0:
                first = dt
            else:
                times.append(dt)
        out[group] = {"seconds_per_step": statistics.median(times), "first_step_seconds": first,
                      "steps": len(times)}
    return out


def bench_head_gradient(size: int, steps: int, groups: list[str]) -> dict:
    """The Mask R-CNN steps with the window-convolution gradient, then with TensorFlow's (the baseline)."""
    import keras

    from nucleaizer_tf.maskrcnn.heads import WindowConv2D

    fast = bench_maskrcnn(size, steps, groups)
    matrix_products = WindowConv2D.convolution_op
    WindowConv2D.convolution_op = keras.layers.Conv2D.convolution_op  # this benchmark's baseline only
    try:
        baseline = bench_maskrcnn(size, steps, groups)
    finally:
        WindowConv2D.convolution_op = matrix_products
    speedup = {g: baseline[g]["seconds_per_step"] / fast[g]["seconds_per_step"] for g in groups}
    return {"window_gradient": fast, "conv2d_gradient": baseline, "speedup": speedup}


def bench_unet(steps: int, batch: int = 12, crop: int = 256) -> dict:
    import keras

    from nucleaizer_tf.synthetic import synthetic_nuclei
    from nucleaizer_tf.unet.model import build_unet
    from nucleaizer_tf.unet.targets import soft_target_items, target_fn
    from nucleaizer_tf.unet.train import TrainConfig, soft_jaccard_loss, train_unet

    keras.utils.set_random_seed(0)
    model = build_unet()
    samples = [synthetic_nuclei((crop, crop), 30, 20.0, seed=s) for s in range(batch)]
    items = soft_target_items([(s.image, s.labels.astype("int32")) for s in samples], sigma=1.0)
    config = TrainConfig(epochs=2, steps_per_epoch=steps, batch_size=batch, crop_size=crop)
    history = train_unet(model, items, None, target_fn=target_fn, loss=soft_jaccard_loss, config=config)
    return {"batch": batch, "crop": crop, "parameters": int(model.count_params()),
            "seconds_per_step": history.seconds[1] / steps, "first_epoch_seconds": history.seconds[0],
            "steps": steps}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--groups", default="all,heads")
    parser.add_argument("--skip-unet", action="store_true")
    parser.add_argument("--skip-maskrcnn", action="store_true")
    parser.add_argument("--compare-head-gradient", action="store_true",
                        help="Mask R-CNN steps also with TensorFlow's Conv2D gradient in the head (baseline)")
    args = parser.parse_args()
    from nucleaizer_tf.system import environment_report

    report = {"devices": [d["name"] for d in environment_report()["devices"]]}
    groups = [g for g in args.groups.split(",") if g]
    if args.compare_head_gradient:
        report["maskrcnn"] = bench_head_gradient(args.size, args.steps, groups)
    elif not args.skip_maskrcnn:
        report["maskrcnn"] = bench_maskrcnn(args.size, args.steps, groups)
    if "maskrcnn" in report:
        print(json.dumps({"maskrcnn": report["maskrcnn"]}), flush=True)
    if not args.skip_unet:
        report["unet"] = bench_unet(args.steps)
        print(json.dumps({"unet": report["unet"]}), flush=True)
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
