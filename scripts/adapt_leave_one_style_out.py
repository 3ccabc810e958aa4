"""Does `adapt` help on a style the model never saw? Leave-one-style-out on the shared DSB samples.

    python scripts/adapt_leave_one_style_out.py ../shared/data/dsb_train --out weights/adapt_loso

For each held-out style — bright-field, H&E, and as a control three fluorescence images — the shipped
model's recipe (`nucleaizer_tf.default_model.recipe.train_default_model`) trains a model on the other
images only; `adapt` then adapts that model to the held-out images *without their masks* (the masks
are used only to score), twice: with its default fine-tuning (the style's synthetic images plus 40 of
the recipe's generated ones) and with `--synthetic-only` (the same presegmentation and pix2pix stages,
only the fine-tuning redone). The table gives DSB and F1 of the starting model ("before"), of both
adapted models ("after", "synthetic only") and of the classical baseline (`nucleaizer_tf.baseline`)
on the same images, in the same run. Writes OUT/loso.md and OUT/loso.json; the per-style adapt runs
(reports, figures) stay in --work.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def _crossval_module():
    path = Path(__file__).with_name("crossval_default_model.py")
    spec = importlib.util.spec_from_file_location("crossval_default_model", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _merge_with_earlier_rows(json_path: Path, rows: list) -> list:
    """The rows of an earlier run in the same OUT for styles not rerun now, then this run's rows.

    Each style is one row, so the styles can be measured in separate runs (``--styles H&E``) and the
    table in OUT still lists them all.
    """
    import json

    if not json_path.is_file():
        return rows
    rerun = {r["style"] for r in rows}
    earlier = [r for r in json.loads(json_path.read_text(encoding="utf-8")).get("rows", []) if r["style"] not in rerun]
    return earlier + rows


COLUMNS = ("dsb_before", "dsb_after", "dsb_after_synthetic_only", "dsb_baseline",
           "f1_before", "f1_after", "f1_after_synthetic_only", "f1_baseline")


def _cell(value) -> str:
    return "–" if value is None else f"{value:.3f}"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("data", type=Path, help="folder with images/ and masks/ (../shared/data/dsb_train)")
    parser.add_argument("--out", type=Path, required=True, help="where loso.md / loso.json go")
    parser.add_argument("--work", type=Path, default=None, help="models and adapt runs (default: a temporary folder)")
    parser.add_argument("--preset", default="quick")
    parser.add_argument("--epochs", type=int, default=30, help="recipe epochs of the starting models")
    parser.add_argument("--styles", default="bright-field,H&E,fluorescence")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    from nucleaizer_tf.baseline import classical_segment
    from nucleaizer_tf.data import pair_folders
    from nucleaizer_tf.default_model.recipe import train_default_model
    from nucleaizer_tf.io import read_image, read_labels, to_rgb8, write_json
    from nucleaizer_tf.metrics import score_dataset, score_image
    from nucleaizer_tf.pipelines.adapt import adapt

    crossval = _crossval_module()
    modality, link_pairs = crossval.modality, crossval.link_pairs
    work = args.work or Path(tempfile.mkdtemp(prefix="nucleaizer-loso-"))
    pairs = pair_folders(args.data / "images", args.data / "masks")
    style_of = {p.stem: modality(read_image(p.image_path)) for p in pairs}
    rows = []
    for style in args.styles.split(","):
        held = sorted((p for p in pairs if style_of[p.stem] == style), key=lambda p: p.stem)
        if style == "fluorescence":  # the control: three fluorescence images, the others stay in training
            held = held[:3]
        if not held:
            continue
        held_stems = {p.stem for p in held}
        folder = work / style.replace("&", "and")
        link_pairs(held, folder)
        images, masks = folder / "images", folder / "masks"
        start_model = folder / "start_model"
        started = time.perf_counter()
        if not (start_model / "manifest.json").is_file():
            train = [(read_image(p.image_path), read_labels(p.mask_path)) for p in pairs if p.stem not in held_stems]
            model, history, _ = train_default_model(train, epochs=args.epochs, seed=args.seed)
            model.manifest.update({"weights_file": "default.weights.h5", "name": f"recipe without {style}"})
            model.save(start_model, overwrite=True)
        train_s = time.perf_counter() - started
        started = time.perf_counter()
        options = dict(model=str(start_model), preset=args.preset, evaluate_masks=str(masks), seed=args.seed)
        only = adapt(images, folder / "adapt_synthetic_only", include_recipe=False, **options).summary["scores"]
        adapt_s = time.perf_counter() - started
        if not (folder / "adapt").exists():  # the same style stages, only the fine-tuning redone
            shutil.copytree(folder / "adapt_synthetic_only", folder / "adapt", symlinks=True)
        started = time.perf_counter()
        scores = adapt(images, folder / "adapt", include_recipe=True, **options).summary["scores"]
        refit_s = time.perf_counter() - started
        base = score_dataset([score_image(read_labels(p.mask_path), classical_segment(to_rgb8(read_image(p.image_path))))
                              for p in held])
        row = {"style": style, "images": len(held), "dsb_before": scores["dsb_before"], "dsb_after": scores["dsb_after"],
               "f1_before": scores["f1_before"], "f1_after": scores["f1_after"], "dsb_baseline": base.dsb,
               "f1_baseline": base.f1, "dsb_after_synthetic_only": only["dsb_after"],
               "f1_after_synthetic_only": only["f1_after"], "train_seconds": round(train_s),
               "adapt_seconds": round(adapt_s), "refit_seconds": round(refit_s),
               "per_image": scores["per_image"], "per_image_synthetic_only": only["per_image"],
               "report": str(folder / "adapt" / "report.md"),
               "command": "python scripts/adapt_leave_one_style_out.py " + " ".join(sys.argv[1:])}
        rows.append(row)
        print(f"{style}: DSB {row['dsb_before']:.3f} -> {row['dsb_after']:.3f} (synthetic only "
              f"{row['dsb_after_synthetic_only']:.3f}, baseline {row['dsb_baseline']:.3f}); F1 {row['f1_before']:.3f} -> "
              f"{row['f1_after']:.3f}; train {train_s:.0f} s, adapt {adapt_s:.0f} s + {refit_s:.0f} s", flush=True)
    rows = _merge_with_earlier_rows(args.out / "loso.json", rows)
    lines = [f"Leave-one-style-out over the {len(pairs)} DSB 2018 sample images: starting model = the default recipe "
             f"trained without the style ({args.epochs} epochs), adapted with `adapt --preset {args.preset}` on the "
             "style's images without their masks (after: the default fine-tuning; synthetic only: "
             "`--synthetic-only`); scored against their masks. Classical baseline in the same run.", "",
             "| held-out style | images | DSB before | DSB after | DSB synthetic only | DSB baseline | F1 before | F1 after "
             "| F1 synthetic only | F1 baseline |",
             "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
    lines += [f"| {r['style']} | {r['images']} | " + " | ".join(_cell(r.get(k)) for k in COLUMNS) + " |" for r in rows]
    notes = [f"{r['style']}: {r['note']}" for r in rows if r.get("note")]
    if notes:
        lines += ["", *notes]
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "loso.md").write_text("\n".join(lines) + "\n")
    write_json(args.out / "loso.json", {"rows": rows, "preset": args.preset, "epochs": args.epochs,
                                        "command": "python scripts/adapt_leave_one_style_out.py " + " ".join(sys.argv[1:])})
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
