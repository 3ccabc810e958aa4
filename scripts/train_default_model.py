"""Retrain the shipped default model (weights/default/) from the DSB sample pairs + synthetic images.

    python scripts/train_default_model.py ../shared/data/dsb_train --out weights/default

DATA is a folder with images/ and masks/ (paired by stem). The recipe is
`nucleaizer_tf.default_model.recipe` (see weights/README.md); the defaults here are the settings of
the shipped file. Writes OUT/default.weights.h5 (best-validation weights, written atomically) and
OUT/manifest.json (architecture, trained nucleus size, recipe, data provenance, sha256) and prints
one line per epoch. About 10 minutes on 2 CPU cores.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from nucleaizer_tf.data import pair_folders  # noqa: E402
from nucleaizer_tf.io import read_image, read_labels, write_json  # noqa: E402

WEIGHTS_FILE = "default.weights.h5"


def read_pairs(data: Path, exclude: set[str] = frozenset()):
    pairs = [p for p in pair_folders(data / "images", data / "masks") if p.stem not in exclude]
    return pairs, [(read_image(p.image_path), read_labels(p.mask_path)) for p in pairs]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("data", type=Path, help="folder with images/ and masks/ (e.g. ../shared/data/dsb_train)")
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parents[1] / "weights" / "default")
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--steps", type=int, default=40, help="batches per epoch")
    parser.add_argument("--synthetic", type=int, default=40, help="synthetic training images")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    from nucleaizer_tf.models.folder import sha256_of
    from nucleaizer_tf.default_model.recipe import manifest_for, train_default_model

    pairs, real = read_pairs(args.data)
    checkpoint = args.out / WEIGHTS_FILE
    start = time.perf_counter()

    def on_epoch(record):
        mark = " *" if record.checkpoint else ""  # the best-validation weights were written
        print(f"epoch {record.epoch:3d}/{args.epochs}  loss {record.loss:.4f}  val {record.val_loss:.4f}  "
              f"lr {record.learning_rate:.1e}  {record.seconds:.0f}s{mark}", flush=True)

    _, history, config = train_default_model(real, epochs=args.epochs, steps_per_epoch=args.steps,
                                             n_synthetic=args.synthetic, seed=args.seed,
                                             checkpoint_path=checkpoint, on_epoch=on_epoch)
    data = {
        "real": {"folder": str(args.data), "source": "Kaggle DSB 2018 stage-1 train (BBBC038v1), CC0 1.0",
                 "stems": [p.stem for p in pairs]},
        "synthetic": {"count": args.synthetic, "generator": "nucleaizer_tf.synthetic.synthetic_nuclei"},
        "command": "python scripts/train_default_model.py " + " ".join(sys.argv[1:] if argv is None else argv),
    }
    manifest = manifest_for(weights_file=WEIGHTS_FILE, sha256=sha256_of(checkpoint), config=config,
                            history=history, data=data)
    write_json(args.out / "manifest.json", manifest)
    print(f"best epoch {history.best_epoch} (val {history.best_value:.4f}); "
          f"{time.perf_counter() - start:.0f}s; wrote {checkpoint} and {args.out / 'manifest.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
