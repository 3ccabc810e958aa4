"""Measure the general recipe's choices: each variant trained the same (shorter) way, scored on validation.

    python scripts/ablate_default_recipe.py ../shared/data/dsb2018 --out /tmp/ablation --epochs 10 \
        --variants shipped depth3 uniform-sampling no-field-augment

Every variant is `GeneralRecipe()` (the shipped model's recipe, without its closing stage unless
--polish-epochs) with one choice changed; all train on
the same prepared images (OUT/store; OUT/store-synthetic for the variant that adds generated images) for the same number of epochs and steps, with the same seed, and
are selected and scored the same way (whole validation images through `DefaultModel.segment`, DSB per
modality). A variant whose model folder OUT/<variant> exists is not trained again; an interrupted one
continues from OUT/<variant>.training with the same command. Prints and writes OUT/ablation.md
(best-validation DSB per modality, the epoch it came from and the training time of every variant).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def variants():
    """Variant name → `GeneralRecipe` overrides (one choice changed from the shipped recipe)."""
    from nucleaizer_tf.default_model.general import ARCHITECTURE

    return {
        "shipped": {},
        "depth3": {"architecture": dict(ARCHITECTURE, depth=3)},  # the first model's capacity
        "wide": {"architecture": dict(ARCHITECTURE, base_filters=24)},
        "crop256": {"crop": 256, "batch": 5},  # about the same pixels per batch
        "uniform-sampling": {"group_power": 1.0},  # every image alike: rare modalities as rare as they are
        "no-field-augment": {"stain": 0.0, "grey": 0.0, "invert": 0.0, "blur": 0.0, "noise": 0.0},
        "narrow-zoom": {"scale_range": (0.8, 1.25)},
        "synthetic": {"synthetic": 40},  # the first recipe's generated images added
    }


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("data", type=Path, help="folder with images/, masks/, validation.txt, classes.csv")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--variants", nargs="+", default=list(variants()), choices=list(variants()))
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--validate-every", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--polish-epochs", type=int, default=0,
                        help="closing-stage epochs of every variant (default 0: the main stage's choices alone)")
    args = parser.parse_args(argv)

    from nucleaizer_tf.default_model.general import GeneralRecipe
    from nucleaizer_tf.pipelines.train_default import train_general_folders

    table = []
    for name in args.variants:
        folder = args.out / name
        work = args.out / f"{name}.training"
        if not (folder / "manifest.json").is_file():
            start = time.perf_counter()
            print(f"== {name}: {variants()[name] or 'the shipped recipe'}", flush=True)
            train_general_folders(args.data / "images", args.data / "masks", folder,
                                  validation=args.data / "validation.txt", groups=args.data / "classes.csv",
                                  work_dir=work, store_dir=args.out / ("store-synthetic" if name == "synthetic" else "store"),
                                  recipe=dataclasses.replace(GeneralRecipe(), polish_epochs=args.polish_epochs,
                                                             **variants()[name]),
                                  epochs=args.epochs, steps_per_epoch=args.steps, validate_every=args.validate_every,
                                  seed=args.seed, resume=(work / "state").is_dir(),
                                  on_epoch=lambda r: print(f"  epoch {r.epoch} loss {r.loss:.4f}"
                                                           + (f" val DSB {r.val_dsb:.4f}" if r.val_dsb is not None else ""),
                                                           flush=True))
            print(f"  {time.perf_counter() - start:.0f} s", flush=True)
        manifest = json.loads((folder / "manifest.json").read_text())
        rows = {r["group"]: r for r in manifest["validation"]}
        table.append((name, manifest["training"]["best_epoch"], manifest["training"]["train_seconds"], rows))

    groups = [g for g in table[0][3] if g != "all"] + ["all"]
    lines = [f"Best validation DSB of each variant ({args.epochs} epochs × {args.steps} steps, seed {args.seed}):", "",
             "| variant | " + " | ".join(groups) + " | best epoch | training s |",
             "| --- | " + " | ".join("---:" for _ in groups) + " | ---: | ---: |"]
    for name, epoch, seconds, rows in table:
        lines.append(f"| {name} | " + " | ".join(f"{rows[g]['dsb']:.3f}" if g in rows else "–" for g in groups)
                     + f" | {epoch} | {seconds:.0f} |")
    text = "\n".join(lines) + "\n"
    print(text)
    (args.out / "ablation.md").write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
