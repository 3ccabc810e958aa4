"""Benchmark: fast Mask R-CNN prediction vs a bare ResNet-101 forward pass, same size, same run.

Prints s/image (median of --repeats after one warm-up) of
  fast   : nucleaizer-tf's whole fast mode on a 1024² image (conversion, reflect padding, resize,
           network, unmolding, dilation, merge) with the given legacy weights
  resnet : a bare keras.applications ResNet-101 (no top) forward on a 1024² input
their ratio, and each one's peak resident memory (each runs in its own process, so the peaks are
separate). Targets (issue 3, CPU): ratio ≤ 1.6, peak RSS ≤ 3 GB.

Usage: python scripts/bench_maskrcnn.py WEIGHTS.h5 [--size 1024] [--repeats 3]
(WEIGHTS: e.g. the seeded file of ../shared/oracle/gen_fixture_weights.py, or a real mask_rcnn_*.h5)
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def _time(fn, repeats: int) -> float:
    fn()  # warm-up: tracing, oneDNN kernel selection
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def child(which: str, weights: str, size: int, repeats: int) -> dict:
    import numpy as np

    if which == "fast":
        from nucleaizer_tf.maskrcnn import MaskRCNN
        from nucleaizer_tf.synthetic import synthetic_nuclei

        model = MaskRCNN.from_legacy_h5(weights)
        image = synthetic_nuclei((size, size), 400, 24.0, seed=0).image
        facts = {"objects": int(model.segment(image).max())}
        seconds = _time(lambda: model.segment(image), repeats)
    else:
        import keras
        import tensorflow as tf

        net = keras.applications.ResNet101(weights=None, include_top=False, input_shape=(size, size, 3))
        forward = tf.function(lambda x: net(x, training=False))
        batch = tf.constant(np.random.default_rng(0).normal(size=(1, size, size, 3)).astype("float32"))
        facts = {}
        seconds = _time(lambda: forward(batch).numpy(), repeats)
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: kB
    return {"seconds": seconds, "peak_rss_mb": peak_mb, **facts}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("weights")
    parser.add_argument("--size", type=int, default=1024)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--child", choices=("fast", "resnet"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(args.child, args.weights, args.size, args.repeats)))
        return
    results = {}
    for which in ("resnet", "fast"):
        done = subprocess.run(
            [sys.executable, __file__, args.weights, "--size", str(args.size), "--repeats", str(args.repeats), "--child", which],
            capture_output=True, text=True, check=True,
        )
        results[which] = json.loads(done.stdout.strip().splitlines()[-1])
    fast, bare = results["fast"], results["resnet"]
    print(f"image size {args.size}x{args.size}, {os.cpu_count()} CPU cores, median of {args.repeats}")
    print(f"  fast prediction   {fast['seconds']:.2f} s/image   peak RSS {fast['peak_rss_mb'] / 1024:.2f} GB   ({fast['objects']} objects)")
    print(f"  bare ResNet-101   {bare['seconds']:.2f} s/image   peak RSS {bare['peak_rss_mb'] / 1024:.2f} GB")
    print(f"  ratio fast / bare {fast['seconds'] / bare['seconds']:.2f}")


if __name__ == "__main__":
    main()
