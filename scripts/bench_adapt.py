"""Time `adapt` per stage on 10 generated images of 512² (a nuclear-envelope stain the shipped model
has not seen), as the README's preset table reports it.

    python scripts/bench_adapt.py --preset quick [--out DIR] [--self-training] [--no-synthetic]

Prints the seconds of each stage, the total, and the DSB of the starting and the adapted model on the
same images (their generated masks are used for scoring only).

    python scripts/bench_adapt.py --preset original --iterations 120 --decay-epochs 0

times a preset whose pix2pix schedule is too long to wait for: everything runs with the preset's
settings except the pix2pix iterations, and the script also prints the style stage and the total
projected to the preset's own schedule (`pix2pix.train.schedule`) from the measured seconds per pix2pix
iteration of each style (the other stages as measured).
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
    parser.add_argument("--iterations", type=int, default=None, help="shorter pix2pix run; projects the preset's")
    parser.add_argument("--decay-epochs", type=int, default=None, help="shorter pix2pix run; projects the preset's")
    parser.add_argument("--self-training", action=argparse.BooleanOptionalAction, default=None,
                        help="adapt's --self-training / --no-self-training (default: adapt's default)")
    parser.add_argument("--synthetic", action=argparse.BooleanOptionalAction, default=None,
                        help="adapt's --synthetic / --no-synthetic (default: adapt's default)")
    args = parser.parse_args(argv)

    from nucleaizer_tf.io import write_labels, write_rgb
    from nucleaizer_tf.pipelines.adapt import PRESETS, adapt
    from nucleaizer_tf.pix2pix.train import schedule
    from nucleaizer_tf.synthetic import rim_stain

    root = args.out or Path(tempfile.mkdtemp(prefix="nucleaizer-bench-adapt-"))
    for i in range(args.images):
        sample = rim_stain(512, 60, 26.0, rim_depth=2.0, seed=i)
        write_rgb(root / "images" / f"stain_{i:02d}.png", sample.image)
        write_labels(root / "masks" / f"stain_{i:02d}.tiff", sample.labels)
    started = time.perf_counter()
    components = {k: v for k, v in (("self_training", args.self_training), ("synthetic", args.synthetic)) if v is not None}
    report = adapt(root / "images", root / "adapt", preset=args.preset, evaluate_masks=str(root / "masks"),
                   iterations=args.iterations, decay_epochs=args.decay_epochs, **components)
    total = time.perf_counter() - started
    s = report.summary
    print(f"adapt --preset {args.preset} on {args.images} images of 512² ({os.cpu_count()} cores): {total:.0f} s")
    for stage, seconds in s["stages"].items():
        print(f"  {stage:<11} {seconds:8.1f} s")
    print(f"  DSB {s['scores']['dsb_before']:.3f} -> {s['scores']['dsb_after']:.3f}; "
          f"{len(s['clusters'])} style(s), {s['synthetic_pairs']} synthetic pairs, "
          f"{s['fine_tune'].get('self_training_pairs') or 0} self-training images; report {root / 'adapt' / 'report.md'}")
    if args.iterations is not None or args.decay_epochs is not None:
        preset = PRESETS[args.preset]
        extra = 0.0
        for name, run in s["pix2pix"].items():
            steps = schedule(run["n_tiles"], preset.iterations, preset.decay_epochs)[2]
            extra += (steps - run["steps"]) * run["seconds_per_iteration"]
            print(f"  {name}: {run['steps']} pix2pix steps run at {run['seconds_per_iteration']:.3f} s; the preset's "
                  f"schedule has {steps} ({run['n_tiles']} tiles, {preset.iterations} iterations + "
                  f"{preset.decay_epochs} decay epochs)")
        print(f"  projected to the preset's schedule: style {s['stages']['style'] + extra:.0f} s, "
              f"total {total + extra:.0f} s ({(total + extra) / 3600:.1f} h)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
