"""Score default models and the classical baseline on the validation split, per modality, in one run.

    python scripts/validate_default_model.py ../shared/data/dsb2018 --model weights/default --old weights/first

DATA holds images/, masks/, validation.txt and classes.csv (id, modality). Every validation image is
segmented whole through the real inference path (`DefaultModel.segment`: size estimation, tiling,
instance step) by each model given, and by the classical baseline (Gaussian, Otsu, distance-transform
watershed); each is scored against its annotation. Prints, per method and modality and overall: images,
DSB 2018 score (mean over images, IoU 0.5–0.95), F1@0.5 (pooled), mean matched IoU, nuclei found / true,
and seconds per image. --predictions scores label images written by another tool (a peer such as
StarDist, `scripts/bench_stardist_peer.py`) in the same table. --json writes the rows.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("data", type=Path, help="folder with images/, masks/, validation.txt, classes.csv")
    parser.add_argument("--model", default=None, help="model folder (default: the shipped one)")
    parser.add_argument("--old", default=None, help="a second model folder to compare with (e.g. weights/first)")
    parser.add_argument("--no-classical", action="store_true", help="leave the classical baseline out")
    parser.add_argument("--predictions", action="append", default=[], metavar="NAME=DIR",
                        help="also score label images another tool wrote (DIR/<id>.tiff), e.g. stardist=/tmp/stardist/labels")
    parser.add_argument("--json", type=Path, default=None, help="write the rows here")
    args = parser.parse_args(argv)

    from nucleaizer_tf.baseline import classical_segment
    from nucleaizer_tf.data import pair_folders, split_pairs
    from nucleaizer_tf.default_model import DefaultModel
    from nucleaizer_tf.default_model.validation import score_by_group, score_rows
    from nucleaizer_tf.io import read_labels, write_json
    from nucleaizer_tf.pipelines.train_default import read_examples, read_groups

    groups = read_groups(args.data / "classes.csv")
    _, val_pairs = split_pairs(pair_folders(args.data / "images", args.data / "masks"), args.data / "validation.txt")
    examples = list(read_examples(val_pairs, groups))
    methods = {"new model" if args.old else "model": DefaultModel.load(args.model).segment}
    if args.old:
        methods["old model"] = DefaultModel.load(args.old).segment
    if not args.no_classical:
        methods["classical"] = classical_segment
    for spec in args.predictions:
        name, _, folder = spec.partition("=")
        if not folder:
            parser.error(f"--predictions takes NAME=DIR, got {spec!r}")
        # the label image of that tool for this image (found by the image's stem)
        methods[name] = lambda image, folder=Path(folder): read_labels(folder / f"{stem_of[id(image)]}.tiff")
    stem_of = {id(image): name for name, _, image, _ in examples}

    rows = []
    print(f"{len(examples)} validation images of {args.data}")
    print(f"{'method':<10} {'modality':<13} {'images':>6} {'DSB':>6} {'F1@0.5':>7} {'IoU':>6} {'found / true':>14} {'s/image':>8}")
    for name, segment in methods.items():
        segment(examples[0][2])  # warm-up: graph tracing is not the method's time
        start = time.perf_counter()
        scores = score_by_group(segment, examples)
        per_image = (time.perf_counter() - start) / len(examples)
        for row in score_rows(scores):
            row.update(method=name, seconds_per_image=per_image)
            rows.append(row)
            print(f"{name:<10} {row['group']:<13} {row['images']:>6} {row['dsb']:>6.3f} {row['f1']:>7.3f} "
                  f"{row['matched_iou']:>6.3f} {row['found']:>6} / {row['true']:<6} {per_image:>8.2f}", flush=True)
    if args.json:
        write_json(args.json, {"data": str(args.data), "model": args.model or "shipped", "old": args.old, "rows": rows})
    return 0


if __name__ == "__main__":
    sys.exit(main())
