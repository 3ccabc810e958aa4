"""Time the shipped default model end to end at 256², 1024² and 4096², with bare baselines in the same run.

    python scripts/bench_default_model.py [--sizes 256 1024 4096] [--model weights/default --model weights/first]

Images: a synthetic fluorescence field (nucleaizer_tf.synthetic, 256², nuclei of DIAMETER px) tiled to
each size, so every size has the same nucleus density. Per size, best of N runs after a warm-up:

* `segment`            — DefaultModel.segment with automatic size estimation (stretch, first pass, the
                         scale decision, any second pass, instance step, resize back): what a user gets;
* `segment(diameter)`  — the same with the nucleus diameter given (no estimation pass);
* `segment(tta)`       — `segment(tta=True)`: the final pass averaged over 8 flips/rotations (sizes up
                         to 1024² only; about 8× the network time);
* `network`            — one bare forward pass of the network over the image (tiled as in `segment`),
                         the floor of any method built on this network;
* `classical`          — the classical baseline (nucleaizer_tf.baseline.classical_segment).

Every --model given (default: the shipped one) is timed in the same run, one after the other, on the
same images. Prints a table (seconds per image) and the process's peak memory; --json writes the numbers.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402

DIAMETER = 20.0


def best_of(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[256, 1024, 4096])
    parser.add_argument("--model", action="append", default=None,
                        help="model folder (repeatable; default: the shipped one)")
    parser.add_argument("--diameter", type=float, default=DIAMETER, help="nucleus diameter of the test image")
    parser.add_argument("--no-classical", action="store_true", help="skip the classical baseline")
    parser.add_argument("--json", default=None)
    args = parser.parse_args(argv)

    from nucleaizer_tf.baseline import classical_segment
    from nucleaizer_tf.default_model import DefaultModel, stretch_rgb8
    from nucleaizer_tf.synthetic import synthetic_nuclei

    unit = synthetic_nuclei((256, 256), 40, args.diameter, style="fluorescence", seed=7).image
    results = []
    print(f"{'model':<18} {'size':>6} {'nuclei':>7} {'segment':>9} {'segment(d)':>11} {'segment(tta)':>13} "
          f"{'network':>9} {'classical':>10}  (s/image)")
    models = {name: DefaultModel.load(name) for name in (args.model or [None])}
    for name, model, size in [(name, model, size) for name, model in models.items() for size in args.sizes]:
        reps = int(np.ceil(size / 256))
        image = np.tile(unit, (reps, reps, 1))[:size, :size]
        repeats = 3 if size <= 1024 else 1
        model.segment(image[:256, :256])  # warm-up (graph tracing)
        labels = model.segment(image)
        row = {"model": name or "shipped", "size": size, "nuclei": int(labels.max())}
        row["segment"] = best_of(lambda: model.segment(image), repeats)
        row["segment_diameter"] = best_of(lambda: model.segment(image, nucleus_size=args.diameter), repeats)
        row["segment_tta"] = best_of(lambda: model.segment(image, tta=True), repeats) if size <= 1024 else None
        rgb8 = stretch_rgb8(image)
        row["network"] = best_of(lambda: model.probability_map(rgb8), repeats)
        row["classical"] = None if args.no_classical else best_of(lambda: classical_segment(image), repeats)
        results.append(row)
        classical = "-" if row["classical"] is None else f"{row['classical']:.3f}"
        tta = "-" if row["segment_tta"] is None else f"{row['segment_tta']:.3f}"
        print(f"{row['model'][-18:]:<18} {size:>6} {row['nuclei']:>7} {row['segment']:>9.3f} {row['segment_diameter']:>11.3f} {tta:>13} "
              f"{row['network']:>9.3f} {classical:>10}", flush=True)
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"peak memory {peak_mb:.0f} MB; {os.cpu_count()} CPU cores visible")
    if args.json:
        from nucleaizer_tf.io import atomic_path

        with atomic_path(args.json) as tmp, open(tmp, "w") as fh:
            json.dump({"results": results, "peak_memory_mb": peak_mb, "cpu_count": os.cpu_count()}, fh, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
