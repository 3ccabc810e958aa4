#!/usr/bin/env python3
"""Build the small nucleus-shape database shipped with the package (`weights/mask_db.npz`).

nucleAIzer synthesises training masks from a database of real nucleus shapes (1,047 annotated label
images, 79k nuclei in the original). `adapt` and `style-transfer` need one; this script measures every
object of such a folder of label images (`nucleaizer_tf.style.maskdb.build_mask_db`: border objects
dropped, touching nuclei merged, 8 shape/size features per object) and keeps an evenly spread
subset of `--objects` of them, chosen in order of object area so every size range stays represented.

    python scripts/build_mask_db.py ../shared/data/mask_db --out weights/mask_db.npz --objects 6000

The shipped file was built from the DSB 2018 stage-1 and other public nucleus masks of the original
nucleAIzer release (CC0 1.0 / public data sets) with the command above.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("masks", type=Path, help="folder of label images (tif, tiff, png)")
    parser.add_argument("--out", type=Path, required=True, help="the .npz to write")
    parser.add_argument("--objects", type=int, default=6000, help="objects to keep (evenly over sorted areas)")
    args = parser.parse_args(argv)

    from nucleaizer_tf.io import LABEL_EXTENSIONS, atomic_path, list_images, read_labels
    from nucleaizer_tf.style.maskdb import build_mask_db

    files = list_images(args.masks, LABEL_EXTENSIONS)
    start = time.perf_counter()
    db = build_mask_db(read_labels(f) for f in files)
    area = db.column("area")
    order = np.argsort(area, kind="stable")
    keep = order[np.unique(np.linspace(0, len(order) - 1, min(args.objects, len(order))).round().astype(int))]
    small = db.subset(np.sort(keep))
    with atomic_path(args.out) as tmp, open(tmp, "wb") as fh:
        np.savez_compressed(fh, **small.to_arrays())
    print(f"{len(files)} label images, {len(db)} objects measured, {len(small)} kept "
          f"(area {small.column('area').min():.0f}-{small.column('area').max():.0f} px², median "
          f"{np.median(small.column('area')):.0f}); {args.out} {args.out.stat().st_size / 1e6:.2f} MB in "
          f"{time.perf_counter() - start:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
