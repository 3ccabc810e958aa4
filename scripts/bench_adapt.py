"""Time `adapt` per stage on 10 generated images of 512² (a nuclear-envelope stain the shipped model
has not seen), as the README's preset table reports it.

    python scripts/bench_adapt.py --preset quick [--out DIR]

Prints the seconds of each stage, the total, and the DSB of the starting and the adapted model on the
same images (their generated masks are used for scoring only).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--preset", default="quick")
    parser.add_argument("--images", type=int, default=10)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args(argv)

    from nucleaizer_tf.io import write_labels, write_rgb
    from nucleaizer_tf.pipelines.adapt import adapt
    from nucleaizer_tf.synthetic import rim_stain

    root = args.out or Path(tempfile.mkdtemp(prefix="nucleaizer-bench-adapt-"))
    for i in range(args.images):
        sample = rim_stain(512, 60, 26.0, rim_depth=2.0, seed=i)
        write_rgb(root / "images" / f"stain_{i:02d}.png", sample.image)
        write_labels(root / "masks" / f"stain_{i:02d}.tiff", sample.labels)
    started = time.perf_counter()
    report = adapt(root / "images", root / "adapt", preset=args.preset, evaluate_masks=str(root / "masks"))
    total = time.perf_counter() - started
    s = report.summary
    print(f"adapt --preset {args.preset} on {args.images} images of 512² ({os.cpu_count()} cores): {total:.0f} s")
    for stage, seconds in s["stages"].items():
        print(f"  {stage:<11} {seconds:8.1f} s")
    print(f"  DSB {s['scores']['dsb_before']:.3f} -> {s['scores']['dsb_after']:.3f}; "
          f"{len(s['clusters'])} style(s), {s['synthetic_pairs']} synthetic pairs; report {root / 'adapt' / 'report.md'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
