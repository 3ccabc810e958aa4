"""Cross-validate the default model's recipe on the shared DSB sample pairs, next to the classical baseline.

    python scripts/crossval_default_model.py ../shared/data/dsb_train --out weights/default/crossval

The 15 pairs are split into K folds (default 3) stratified by modality — fluorescence, bright-field,
H&E, decided from each image's colours (`modality`) — and for each fold a model is trained with the
shipped model's recipe (`nucleaizer_tf.default_model.recipe`, same epochs and steps) on the other
folds (plus the recipe's synthetic images) and segments the held-back fold with automatic size
estimation. The classical baseline (`nucleaizer_tf.baseline.classical_segment`: Gaussian smoothing,
Otsu, distance-transform watershed) segments the same images in the same run.

Both sets of predictions are written as label TIFFs to OUT/predictions/{model,baseline}/ and scored
with the code behind `nucleaizer-tf evaluate` (so `nucleaizer-tf evaluate DATA/masks
OUT/predictions/model` reproduces the "all" row). The per-modality table is printed and written to
OUT/crossval.md, every number to OUT/crossval.json. Fold weights go to --work (default: a temporary
folder); --reuse skips training for folds whose weights are already there. About 3 × 10 min on 2 cores.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402

from nucleaizer_tf.baseline import classical_segment  # noqa: E402
from nucleaizer_tf.data import pair_folders  # noqa: E402
from nucleaizer_tf.io import read_image, read_labels, to_rgb8, write_json, write_labels  # noqa: E402

MODALITIES = ("fluorescence", "bright-field", "H&E")


def modality(image: np.ndarray) -> str:
    """fluorescence (dark background), H&E (pink: green well below red) or bright-field (the rest).

    On the 15 DSB samples: the ten grey, dark images are fluorescence; of the four light, purple
    images the one with mean green / mean red 0.62 is the H&E tissue section, the others are >= 0.85."""
    rgb = to_rgb8(image).astype(np.float64)
    if np.median(rgb.mean(axis=2)) < 100:
        return "fluorescence"
    r, g = rgb[..., 0].mean(), rgb[..., 1].mean()
    return "H&E" if g < 0.75 * r else "bright-field"


def stratified_folds(stems_by_modality: dict[str, list[str]], k: int) -> dict[str, int]:
    """stem -> fold: modalities in MODALITIES order, stems sorted, dealt round-robin over the folds
    (continuing across modalities, so fold sizes differ by at most one)."""
    fold, i = {}, 0
    for m in MODALITIES:
        for stem in sorted(stems_by_modality.get(m, [])):
            fold[stem] = i % k
            i += 1
    return fold


def summarise(result, groups: dict[str, list[str]]) -> dict:
    by_name = {s.name: s for s in result.images}
    from nucleaizer_tf.metrics import score_dataset

    rows = {}
    for name, stems in list(groups.items()) + [("all", sorted(by_name))]:
        if not stems:
            continue
        d = score_dataset([by_name[s] for s in stems])
        rows[name] = {"n": len(stems), "dsb": d.dsb, "f1": d.f1, "iou": d.mean_matched_iou}
    return rows


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("data", type=Path, help="folder with images/ and masks/ (e.g. ../shared/data/dsb_train)")
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parents[1] / "weights" / "default" / "crossval")
    parser.add_argument("--work", type=Path, default=None, help="where fold weights go (default: a temporary folder)")
    parser.add_argument("--folds", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument("--synthetic", type=int, default=40)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--reuse", action="store_true", help="reuse fold weights found in --work")
    args = parser.parse_args(argv)

    from nucleaizer_tf.default_model.model import DefaultModel
    from nucleaizer_tf.default_model.recipe import ARCHITECTURE, INSTANCE, TRAINED_DIAMETER, train_default_model
    from nucleaizer_tf.pipelines.evaluate import evaluate_folders

    work = args.work or Path(tempfile.mkdtemp(prefix="nucleaizer-cv-"))
    pairs = pair_folders(args.data / "images", args.data / "masks")
    images = {p.stem: read_image(p.image_path) for p in pairs}
    masks = {p.stem: read_labels(p.mask_path) for p in pairs}
    groups = {m: [] for m in MODALITIES}
    for stem, image in images.items():
        groups[modality(image)].append(stem)
    fold_of = stratified_folds(groups, args.folds)
    pred_model, pred_base = args.out / "predictions" / "model", args.out / "predictions" / "baseline"
    timing = {"model": [], "baseline": []}
    for k in range(args.folds):
        held = sorted(s for s in fold_of if fold_of[s] == k)
        train = [(images[s], masks[s]) for s in sorted(fold_of) if fold_of[s] != k]
        weights = work / f"fold{k}.weights.h5"
        print(f"fold {k + 1}/{args.folds}: held back {', '.join(s[:8] for s in held)}", flush=True)
        if args.reuse and weights.is_file():
            from nucleaizer_tf.default_model.model import build_network

            network = build_network(ARCHITECTURE)
            network.load_weights(weights)
            model = DefaultModel(network, {"architecture": ARCHITECTURE, "trained_diameter": TRAINED_DIAMETER,
                                           "instance": INSTANCE})
        else:
            def on_epoch(record):
                if record.epoch % 5 == 0:
                    print(f"  epoch {record.epoch}  loss {record.loss:.4f}  val {record.val_loss:.4f}", flush=True)

            model, history, _ = train_default_model(train, epochs=args.epochs, steps_per_epoch=args.steps,
                                                    n_synthetic=args.synthetic, seed=args.seed,
                                                    checkpoint_path=weights, on_epoch=on_epoch)
        for stem in held:
            t = time.perf_counter()
            labels = model.segment(images[stem])
            timing["model"].append(time.perf_counter() - t)
            t = time.perf_counter()
            base = classical_segment(to_rgb8(images[stem]))
            timing["baseline"].append(time.perf_counter() - t)
            write_labels(pred_model / f"{stem}.tiff", labels, compress=True)
            write_labels(pred_base / f"{stem}.tiff", base, compress=True)

    masks_dir = args.data / "masks"
    scored = {"model": evaluate_folders(masks_dir, pred_model), "baseline": evaluate_folders(masks_dir, pred_base)}
    rows = {k: summarise(v, groups) for k, v in scored.items()}
    by_model, by_base = ({s.name: s for s in scored[k].images} for k in ("model", "baseline"))
    lines = [
        f"{args.folds}-fold cross-validation over the {len(pairs)} DSB 2018 sample images (stratified by modality); "
        "DSB score = mean over IoU thresholds 0.50..0.95 of TP/(TP+FP+FN), F1 and mean matched IoU at IoU 0.5.",
        "",
        "| modality | images | default model DSB | baseline DSB | model F1 | baseline F1 | model IoU | baseline IoU |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for name in [*MODALITIES, "all"]:
        if name not in rows["model"]:
            continue
        m, b = rows["model"][name], rows["baseline"][name]
        cells = [m["dsb"], b["dsb"], m["f1"], b["f1"], m["iou"], b["iou"]]  # IoU is NaN when nothing matched
        lines.append(f"| {name} | {m['n']} | " + " | ".join("–" if np.isnan(v) else f"{v:.3f}" for v in cells) + " |")
    wins = sum(by_model[s].dsb > by_base[s].dsb for s in groups["fluorescence"])
    lines += ["", f"Per image, the model's DSB score is higher than the baseline's on {wins} of the "
              f"{len(groups['fluorescence'])} fluorescence images.",
              "", f"Seconds per image (256×256/320, 2 CPU cores): model {np.mean(timing['model']):.2f}, "
              f"baseline {np.mean(timing['baseline']):.2f}."]
    table = "\n".join(lines)
    print(table)
    (args.out).mkdir(parents=True, exist_ok=True)
    (args.out / "crossval.md").write_text(table + "\n")
    write_json(args.out / "crossval.json", {
        "folds": {s: fold_of[s] for s in sorted(fold_of)},
        "modality": {s: m for m, stems in groups.items() for s in stems},
        "rows": rows,
        "per_image_dsb": {s: {"model": by_model[s].dsb, "baseline": by_base[s].dsb} for s in sorted(by_model)},
        "seconds_per_image": {k: float(np.mean(v)) for k, v in timing.items()},
        "settings": {"folds": args.folds, "epochs": args.epochs, "steps": args.steps, "synthetic": args.synthetic,
                     "seed": args.seed, "instance": dict(INSTANCE)},
        "command": "python scripts/crossval_default_model.py " + " ".join(sys.argv[1:] if argv is None else argv),
    })
    return 0


if __name__ == "__main__":
    sys.exit(main())
