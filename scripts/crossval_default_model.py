"""Cross-validate the default model's recipe on the shared DSB sample pairs, next to the classical baseline.

    python scripts/crossval_default_model.py ../shared/data/dsb_train --out weights/first/crossval

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
folder); --reuse skips training for folds whose weights are already there. About 3 × 6 min on 2 idle cores.

With --pix2pix N the script also measures nucleAIzer's recipe for its general model: for each fold,
the style-transfer workflow (`nucleaizer_tf.pipelines.style_transfer`, adapt's quick settings: pix2pix
ngf 16, 600 iterations, synthetic masks following each style cluster's annotated nuclei, shapes from
--mask-db) learns the styles of that fold's training images only and renders N synthetic images per
style, and a second model is trained with the recipe plus those rendered pairs. Both models and the
baseline segment the held-back fold in the same run; their predictions go to
OUT/predictions/{model,model_pix2pix,baseline}/ and the table gets the pix2pix columns.
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


def link_pairs(pairs, folder: Path) -> Path:
    """`folder/images` and `folder/masks` holding symbolic links to the pairs' files (kept if already there)."""
    for p in pairs:
        for sub, source in (("images", p.image_path), ("masks", p.mask_path)):
            link = folder / sub / Path(source).name
            link.parent.mkdir(parents=True, exist_ok=True)
            if not link.exists():
                link.symlink_to(Path(source).resolve())
    return folder


def rendered_pairs(args, pairs, held, folder: Path) -> list:
    """pix2pix renderings in the styles of the pairs not in `held`, from synthetic masks that follow their
    annotated nuclei (the style-transfer workflow up to its collected pairs, in `folder`)."""
    from nucleaizer_tf.pipelines.adapt import shipped_mask_db
    from nucleaizer_tf.pipelines.style_transfer import StyleTransferSettings, run_style_transfer

    inputs = link_pairs([p for p in pairs if p.stem not in held], folder / "inputs")
    settings = StyleTransferSettings(masks_dir=str(inputs / "masks"), mask_db=args.mask_db or str(shipped_mask_db()),
                                     images_per_cluster=args.pix2pix, ngf=args.ngf, iterations=args.iterations,
                                     decay_epochs=0, sqrt_mask_resize=True, match_cluster=True,
                                     conversion="percentile", last_stage="collect", seed=args.seed)
    run_style_transfer(inputs / "images", folder / "style", settings)
    styled = folder / "style" / "styled"
    return [(read_image(q.image_path), read_labels(q.mask_path)) for q in pair_folders(styled / "images", styled / "masks")]


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
    parser.add_argument("--pix2pix", type=int, default=0,
                        help="also train each fold with N pix2pix renderings per style of its training images (0 = off)")
    parser.add_argument("--mask-db", default=None, help="nucleus-shape database of the renderings (default: the shipped one)")
    parser.add_argument("--ngf", type=int, default=16)
    parser.add_argument("--iterations", type=int, default=600)
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
    pred_base = args.out / "predictions" / "baseline"
    timing = {k: [] for k in (["model", "model_pix2pix"] if args.pix2pix else ["model"]) + ["baseline"]}
    style_seconds = []
    for k in range(args.folds):
        held = sorted(s for s in fold_of if fold_of[s] == k)
        train = [(images[s], masks[s]) for s in sorted(fold_of) if fold_of[s] != k]
        print(f"fold {k + 1}/{args.folds}: held back {', '.join(s[:8] for s in held)}", flush=True)
        variants = {"model": ()}
        if args.pix2pix:
            started = time.perf_counter()
            variants["model_pix2pix"] = rendered_pairs(args, pairs, held, work / f"fold{k}_style")
            style_seconds.append(time.perf_counter() - started)
            print(f"  {len(variants['model_pix2pix'])} rendered pairs in {style_seconds[-1]:.0f} s", flush=True)
        for variant, rendered in variants.items():
            weights = work / f"fold{k}{variant[5:]}.weights.h5"
            if args.reuse and weights.is_file():
                from nucleaizer_tf.default_model.model import build_network

                network = build_network(ARCHITECTURE)
                network.load_weights(weights)
                model = DefaultModel(network, {"architecture": ARCHITECTURE, "trained_diameter": TRAINED_DIAMETER,
                                               "instance": INSTANCE})
            else:
                def on_epoch(record):
                    if record.epoch % 5 == 0:
                        print(f"  {variant} epoch {record.epoch}  loss {record.loss:.4f}  val {record.val_loss:.4f}",
                              flush=True)

                model, history, _ = train_default_model(train, epochs=args.epochs, steps_per_epoch=args.steps,
                                                        n_synthetic=args.synthetic, rendered=rendered, seed=args.seed,
                                                        checkpoint_path=weights, on_epoch=on_epoch)
            for stem in held:
                t = time.perf_counter()
                labels = model.segment(images[stem])
                timing[variant].append(time.perf_counter() - t)
                write_labels(args.out / "predictions" / variant / f"{stem}.tiff", labels, compress=True)
        for stem in held:
            t = time.perf_counter()
            base = classical_segment(to_rgb8(images[stem]))
            timing["baseline"].append(time.perf_counter() - t)
            write_labels(pred_base / f"{stem}.tiff", base, compress=True)

    masks_dir = args.data / "masks"
    scored = {k: evaluate_folders(masks_dir, args.out / "predictions" / k) for k in timing}
    rows = {k: summarise(v, groups) for k, v in scored.items()}
    by_name = {k: {s.name: s for s in v.images} for k, v in scored.items()}
    by_model, by_base = by_name["model"], by_name["baseline"]
    p2p = "model_pix2pix" in rows
    lines = [
        f"{args.folds}-fold cross-validation over the {len(pairs)} DSB 2018 sample images (stratified by modality); "
        "DSB score = mean over IoU thresholds 0.50..0.95 of TP/(TP+FP+FN), F1 and mean matched IoU at IoU 0.5.",
        "",
        "| modality | images | default model DSB | " + ("+ pix2pix DSB | " if p2p else "") + "baseline DSB | model F1 | "
        + ("+ pix2pix F1 | " if p2p else "") + "baseline F1 | model IoU | " + ("+ pix2pix IoU | " if p2p else "")
        + "baseline IoU |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |" + (" ---: | ---: | ---: |" if p2p else ""),
    ]
    columns = ["model", "model_pix2pix", "baseline"] if p2p else ["model", "baseline"]
    for name in [*MODALITIES, "all"]:
        if name not in rows["model"]:
            continue
        cells = [rows[c][name][metric] for metric in ("dsb", "f1", "iou") for c in columns]  # IoU NaN: nothing matched
        lines.append(f"| {name} | {rows['model'][name]['n']} | "
                     + " | ".join("–" if np.isnan(v) else f"{v:.3f}" for v in cells) + " |")
    wins = sum(by_model[s].dsb > by_base[s].dsb for s in groups["fluorescence"])
    lines += ["", f"Per image, the model's DSB score is higher than the baseline's on {wins} of the "
              f"{len(groups['fluorescence'])} fluorescence images."]
    if p2p:
        better = sum(by_name["model_pix2pix"][s].dsb > by_model[s].dsb for s in by_model)
        lines += ["", f"With pix2pix renderings ({args.pix2pix} per style of each fold's training images, ngf {args.ngf}, "
                  f"{args.iterations} iterations; style transfer {sum(style_seconds):.0f} s in all) the DSB score is "
                  f"higher on {better} of the {len(by_model)} images."]
    lines += [
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
        "per_image_dsb": {s: {k: by_name[k][s].dsb for k in scored} for s in sorted(by_model)},
        "seconds_per_image": {k: float(np.mean(v)) for k, v in timing.items()},
        "settings": {"folds": args.folds, "epochs": args.epochs, "steps": args.steps, "synthetic": args.synthetic,
                     "seed": args.seed, "instance": dict(INSTANCE), "pix2pix": args.pix2pix, "ngf": args.ngf,
                     "iterations": args.iterations, "mask_db": args.mask_db},
        "style_transfer_seconds": style_seconds,
        "command": "python scripts/crossval_default_model.py " + " ".join(sys.argv[1:] if argv is None else argv),
    })
    return 0


if __name__ == "__main__":
    sys.exit(main())
