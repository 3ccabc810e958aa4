"""Train a default model with the general recipe (resumably), or the shipped model with its first recipe.

    python scripts/train_default_model.py ../shared/data/dsb2018 --out /tmp/general --work /tmp/general.training
    python scripts/train_default_model.py ../shared/data/dsb_train --recipe first --out weights/first

DATA holds images/, masks/ (paired by stem), validation.txt (the validation ids) and optionally
classes.csv (id, modality: rarer modalities are drawn more often, validation is reported per modality).
The recipe is `nucleaizer_tf.default_model.general` (weights/README.md gives the choices and their
numbers); this script is `nucleaizer_tf.pipelines.train_default.train_general_folders`, the same code
as `nucleaizer-tf train default --init scratch`: the main stage (32 epochs), then the closing stage
(--polish-epochs, 6). Prints one line per epoch and a table per validation. Started again with the same
--work folder and --resume, it continues after the last finished epoch.

--recipe first trains the first shipped model's recipe (`nucleaizer_tf.default_model.recipe`: every pair held in
memory at five scales plus 40 synthetic images, 30 epochs × 40 batches, validation on the training images;
about 12 minutes on 2 cores for the 15 pairs of dsb_train) and writes OUT/default.weights.h5 and
OUT/manifest.json.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import resource
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("data", type=Path, help="folder with images/, masks/, validation.txt [, classes.csv]")
    parser.add_argument("--out", type=Path, required=True, help="the model folder to write")
    parser.add_argument("--work", type=Path, default=None, help="prepared images + resumable state "
                                                                 "(default <out>.training)")
    parser.add_argument("--recipe", choices=("general", "first"), default="general")
    parser.add_argument("--epochs", type=int, default=None, help="main-stage epochs (general 32, first 30)")
    parser.add_argument("--steps", type=int, default=None, help="batches per epoch (general 200, first 40)")
    parser.add_argument("--synthetic", type=int, default=40, help="--recipe first: synthetic training images")
    parser.add_argument("--validate-every", type=int, default=2)
    parser.add_argument("--lr", type=float, default=1e-3, help="initial learning rate")
    parser.add_argument("--polish-epochs", type=int, default=None, help="general: closing-stage epochs (6; 0 = none)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--resume", action="store_true", help="continue the run saved in --work")
    args = parser.parse_args(argv)
    if args.recipe == "first":
        return train_first_recipe(args, argv)

    from nucleaizer_tf.default_model.general import GeneralRecipe
    from nucleaizer_tf.pipelines.train_default import train_general_folders

    classes = args.data / "classes.csv"
    start = time.perf_counter()
    recipe = GeneralRecipe(learning_rate=args.lr)
    if args.polish_epochs is not None:
        recipe = dataclasses.replace(recipe, polish_epochs=args.polish_epochs)

    def on_epoch(record):
        val = f"  val DSB {record.val_dsb:.4f}" if record.val_dsb is not None else ""
        mark = " *" if record.checkpoint else ""
        print(f"epoch {record.epoch:3d}  loss {record.loss:.4f}{val}  lr {record.learning_rate:.1e}  "
              f"{record.seconds:.0f}s{mark}", flush=True)

    def on_validation(epoch, rows):
        for r in rows:
            print(f"    {r['group']:<14} {r['images']:3d} images  DSB {r['dsb']:.3f}  F1 {r['f1']:.3f}  "
                  f"IoU {r['matched_iou']:.3f}  found {r['found']} / {r['true']}", flush=True)

    summary = train_general_folders(args.data / "images", args.data / "masks", args.out,
                                    validation=args.data / "validation.txt",
                                    groups=classes if classes.is_file() else None, work_dir=args.work,
                                    epochs=args.epochs, steps_per_epoch=args.steps, validate_every=args.validate_every,
                                    recipe=recipe, seed=args.seed, resume=args.resume, on_epoch=on_epoch,
                                    on_validation=on_validation)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
    print(f"best epoch {summary.best_epoch} (val DSB {summary.best_val:.4f}); {time.perf_counter() - start:.0f} s "
          f"this run; peak memory {peak:.2f} GB; wrote {args.out}")
    return 0


def train_first_recipe(args, argv) -> int:
    """The first shipped model's recipe: every pair in memory (`recipe.train_default_model`), one run."""
    from nucleaizer_tf.data import pair_folders
    from nucleaizer_tf.default_model.recipe import manifest_for, train_default_model
    from nucleaizer_tf.io import read_image, read_labels, write_json
    from nucleaizer_tf.io.digest import sha256_of

    pairs = pair_folders(args.data / "images", args.data / "masks")
    real = [(read_image(p.image_path), read_labels(p.mask_path)) for p in pairs]
    checkpoint = args.out / "default.weights.h5"
    start = time.perf_counter()

    def on_epoch(record):
        mark = " *" if record.checkpoint else ""  # the best-validation weights were written
        print(f"epoch {record.epoch:3d}  loss {record.loss:.4f}  val {record.val_loss:.4f}  "
              f"lr {record.learning_rate:.1e}  {record.seconds:.0f}s{mark}", flush=True)

    _, history, config = train_default_model(real, epochs=args.epochs or 30, steps_per_epoch=args.steps or 40,
                                             n_synthetic=args.synthetic, seed=args.seed,
                                             checkpoint_path=checkpoint, on_epoch=on_epoch)
    data = {
        "real": {"folder": str(args.data), "source": "Kaggle DSB 2018 stage-1 train (BBBC038v1), CC0 1.0",
                 "stems": [p.stem for p in pairs]},
        "synthetic": {"count": args.synthetic, "generator": "nucleaizer_tf.synthetic.synthetic_nuclei"},
        "command": "python scripts/train_default_model.py " + " ".join(sys.argv[1:] if argv is None else argv),
    }
    manifest = manifest_for(weights_file=checkpoint.name, sha256=sha256_of(checkpoint), config=config,
                            history=history, data=data)
    write_json(args.out / "manifest.json", manifest)
    print(f"best epoch {history.best_epoch} (val {history.best_value:.4f}); "
          f"{time.perf_counter() - start:.0f}s; wrote {checkpoint} and {args.out / 'manifest.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
