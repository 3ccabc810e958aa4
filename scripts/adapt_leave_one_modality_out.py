"""Does `adapt` close the gap on a modality the model never saw? Leave-one-modality-out on DSB 2018.

    python scripts/adapt_leave_one_modality_out.py ../shared/data/dsb2018 --out weights/adapt_lomo --work /tmp/lomo

For each held-out modality (`--modalities`, default ``stained``; ``brightfield`` is the second, smaller
row), in one run:

1. model **A**: the general recipe (`pipelines.train_default.train_general_folders`, the shipped model's
   code path and defaults) trained on the training ids of the other modalities, selected on their
   validation ids; resumable in WORK/A_<modality>.training. `--start MODALITY=DIR` uses a model A
   trained before.
2. **A + adapt**: `nucleaizer-tf adapt` from A on all of that modality's images (training and
   validation ids together, *without their masks*: nucleAIzer adapts on the experiment it is about to
   segment), once per component (`--variants`): ``synthetic`` (pix2pix renderings in the images' styles,
   nucleAIzer's way), ``self`` (self-training on A's confident nuclei), ``both``, each with adapt's
   default presegmentation view (auto: as they are or inverted grey, whichever A is surer of);
   ``self-as-is`` self-training with the images shown to A as they are (`--presegment-view as-is`).
   ``--seeds self=0,1,2`` runs that variant once per adapt seed (the fine-tuning's crops and order;
   CPU training is not bit-reproducible either) and adds a row with their mean.
3. model **P**: `--ceiling` (default the shipped model, the general recipe *with* the modality).
4. the classical baseline (`nucleaizer_tf.baseline`).

All are scored (DSB, F1@0.5) on the held-out modality's validation ids and, as a control, on the
fluorescence validation ids; "share of gap" is (adapted − A) / (P − A) in DSB on the held-out modality.
Writes OUT/lomo.md and OUT/lomo.json (rows of earlier runs in OUT for other modalities are kept); the
adapt runs (reports, before/after figures) and each method's scores stay in WORK, so a rerun with more
variants only runs and scores those (delete WORK/scores to measure again).
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

VARIANTS = {"synthetic": dict(synthetic=True, self_training=False),
            "self": dict(synthetic=False, self_training=True),
            "both": dict(synthetic=True, self_training=True),
            # self-training with the images shown to A as they are (`--presegment-view as-is`), not the auto view
            "self-as-is": dict(synthetic=False, self_training=True, presegment_view="as-is")}
CONTROL = "fluorescence"


def link(files, folder: Path) -> Path:
    """`folder` holding symbolic links to `files` (kept if already there)."""
    folder.mkdir(parents=True, exist_ok=True)
    for source in files:
        target = folder / Path(source).name
        if not target.exists():
            target.symlink_to(Path(source).resolve())
    return folder


def without_modality(data: Path, groups: dict, held: str, folder: Path) -> Path:
    """`folder` as a DSB-style data folder (images/, masks/, validation.txt, classes.csv) without `held`."""
    from nucleaizer_tf.data import pair_folders

    pairs = [p for p in pair_folders(data / "images", data / "masks") if groups.get(p.stem) != held]
    link([p.image_path for p in pairs], folder / "images")
    link([p.mask_path for p in pairs], folder / "masks")
    kept = {p.stem for p in pairs}
    validation = [s for s in (data / "validation.txt").read_text().split() if s in kept]
    (folder / "validation.txt").write_text("\n".join(validation) + "\n")
    with open(folder / "classes.csv", "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["id", "modality"])
        writer.writerows([s, groups.get(s, "")] for s in sorted(kept))
    return folder


def train_model_a(data: Path, groups: dict, held: str, work: Path) -> Path:
    """Model A (the general recipe without `held`), trained or resumed in WORK."""
    from nucleaizer_tf.pipelines.train_default import train_general_folders

    out = work / f"A_{held}"
    if (out / "manifest.json").is_file():
        return out
    source = without_modality(data, groups, held, work / f"without_{held}")
    state = work / f"A_{held}.training"

    def on_epoch(record):
        val = f"  val DSB {record.val_dsb:.4f}" if record.val_dsb is not None else ""
        print(f"  A without {held}: epoch {record.epoch:3d}  loss {record.loss:.4f}{val}  {record.seconds:.0f}s", flush=True)

    train_general_folders(source / "images", source / "masks", out, validation=source / "validation.txt",
                          groups=source / "classes.csv", work_dir=state,
                          resume=(state / "state" / "history.json").is_file(), on_epoch=on_epoch)
    return out


def score(segment, examples) -> dict:
    """DSB and F1 of `segment` on (name, group, image, labels) examples, with seconds per image."""
    from nucleaizer_tf.default_model.validation import ALL, score_by_group

    start = time.perf_counter()
    total = score_by_group(segment, examples)[ALL]
    return {"dsb": total.dsb, "f1": total.f1, "images": total.n_images,
            "seconds_per_image": (time.perf_counter() - start) / max(1, total.n_images),
            "per_image": {s.name: s.dsb for s in total.images}}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("data", type=Path, help="DSB-style folder: images/, masks/, validation.txt, classes.csv")
    parser.add_argument("--out", type=Path, required=True, help="where lomo.md / lomo.json go")
    parser.add_argument("--work", type=Path, required=True, help="models A, adapt runs (resumable)")
    parser.add_argument("--modalities", default="stained", help="held-out modalities, comma-separated")
    parser.add_argument("--variants", default="self,synthetic,both", help=f"adapt components: {', '.join(VARIANTS)}")
    parser.add_argument("--preset", default="quick", help="adapt preset")
    parser.add_argument("--epochs", type=int, default=None, help="override the preset's fine-tuning epochs")
    parser.add_argument("--iterations", type=int, default=None, help="override the preset's pix2pix iterations")
    parser.add_argument("--start", action="append", default=[], metavar="MODALITY=DIR",
                        help="a model A trained before for that modality")
    parser.add_argument("--ceiling", default=None, help="model P (default: the shipped model)")
    parser.add_argument("--seeds", action="append", default=[], metavar="VARIANT=S,S,...",
                        help="adapt seeds of a variant (default 0 for every variant); with several, the variant is "
                        "run once per seed and a row gives their mean")
    args = parser.parse_args(argv)

    from nucleaizer_tf.baseline import classical_segment
    from nucleaizer_tf.data import pair_folders, split_pairs
    from nucleaizer_tf.default_model import DefaultModel
    from nucleaizer_tf.io import write_json
    from nucleaizer_tf.pipelines.adapt import adapt
    from nucleaizer_tf.pipelines.train_default import read_examples, read_groups

    variants = [v for v in args.variants.split(",") if v]
    seeds = {v: [0] for v in variants}
    for spec in args.seeds:
        variant, _, values = spec.partition("=")
        if variant not in seeds or not values:
            parser.error(f"--seeds takes VARIANT=S,S,... for a variant of --variants, got {spec!r}")
        seeds[variant] = [int(x) for x in values.split(",") if x]
    unknown = [v for v in variants if v not in VARIANTS]
    if unknown:
        parser.error(f"unknown variants {unknown}; choose from {', '.join(VARIANTS)}")
    starts = dict(spec.split("=", 1) for spec in args.start)
    groups = read_groups(args.data / "classes.csv")
    pairs = pair_folders(args.data / "images", args.data / "masks")
    _, val_pairs = split_pairs(pairs, args.data / "validation.txt")
    rows = []
    for held in [m for m in args.modalities.split(",") if m]:
        start = time.perf_counter()
        model_a = Path(starts[held]) if held in starts else train_model_a(args.data, groups, held, args.work)
        train_seconds = time.perf_counter() - start
        images = link([p.image_path for p in pairs if groups.get(p.stem) == held], args.work / f"{held}_images")
        methods = {"A": DefaultModel.load(model_a).segment}
        times, seeded = {}, {}
        for variant, seed in [(v, s) for v in variants for s in seeds[v]]:
            suffix = "" if seed == 0 else f"_seed{seed}"
            run = args.work / f"adapt_{held}_{variant}{suffix}"
            name = f"A + adapt ({variant})" if seed == 0 else f"A + adapt ({variant}, seed {seed})"
            seeded.setdefault(variant, []).append(name)
            scored = all((args.work / "scores" / held / f"{name}.{g}.json").is_file() for g in (held, CONTROL))
            if scored and (run / "report.json").is_file():  # measured before: its adapt run is not redone
                summary = json.loads((run / "report.json").read_text())
            else:
                summary = adapt(images, run, model=str(model_a), preset=args.preset, epochs=args.epochs,
                                iterations=args.iterations, seed=seed, **VARIANTS[variant]).summary
            times[name] = sum(v for v in summary["stages"].values() if v)  # as recorded, also when resumed
            methods[name] = DefaultModel.load(run / "model").segment
            print(f"{held}: adapt {variant} (seed {seed}) took {times[name]:.0f} s", flush=True)
        methods["P"] = DefaultModel.load(args.ceiling).segment
        methods["classical"] = classical_segment
        table = {}
        for group in (held, CONTROL):
            examples = list(read_examples([p for p in val_pairs if groups.get(p.stem) == group], groups))
            for name, segment in methods.items():
                cached = args.work / "scores" / held / f"{name}.{group}.json"  # a rerun with more variants reuses it
                if not cached.is_file():
                    write_json(cached, score(segment, examples))
                table.setdefault(name, {})[group] = json.loads(cached.read_text())
                print(f"{held} held out | {name:<24} {group:<13} DSB {table[name][group]['dsb']:.3f}  "
                      f"F1 {table[name][group]['f1']:.3f}", flush=True)
        for variant, names in seeded.items():  # several seeds: their mean, after the single runs
            if len(names) > 1:
                mean = f"A + adapt ({variant}, mean of {len(names)} seeds)"
                cells = {g: {k: sum(table[n][g][k] for n in names) / len(names) for k in ("dsb", "f1")}
                         for g in (held, CONTROL)}
                order = list(table)  # the mean row right after its seeds' rows
                order.insert(order.index(names[-1]) + 1, mean)
                table = {name: cells if name == mean else table[name] for name in order}
                times[mean] = sum(times[n] for n in names) / len(names)
        gap = table["P"][held]["dsb"] - table["A"][held]["dsb"]
        for name in table:
            table[name]["share_of_gap"] = (table[name][held]["dsb"] - table["A"][held]["dsb"]) / gap if gap > 0 else None
        rows.append({"held_out": held, "model_a": str(model_a), "preset": args.preset, "methods": table,
                     "adapt_seconds": times, "model_a_seconds": train_seconds, "adapt_images": len(list(images.iterdir())),
                     "command": "python scripts/adapt_leave_one_modality_out.py " + " ".join(sys.argv[1:] if argv is None else argv)})
    args.out.mkdir(parents=True, exist_ok=True)
    json_path = args.out / "lomo.json"
    if json_path.is_file():  # keep the rows of other modalities measured earlier
        earlier = json.loads(json_path.read_text()).get("rows", [])
        rows = [r for r in earlier if r["held_out"] not in {x["held_out"] for x in rows}] + rows
    write_json(json_path, {"rows": rows})
    lines = ["| held out | model | DSB held out | F1 held out | share of gap | DSB fluorescence (control) | adapt s |",
             "| --- | --- | ---: | ---: | ---: | ---: | ---: |"]
    for row in rows:
        for name, cells in row["methods"].items():
            held, share = row["held_out"], cells["share_of_gap"]
            seconds = f"{row['adapt_seconds'][name]:.0f}" if name in row["adapt_seconds"] else ""
            lines.append(f"| {held} | {name} | {cells[held]['dsb']:.3f} | {cells[held]['f1']:.3f} | "
                         f"{'–' if share is None else f'{share:.2f}'} | {cells[CONTROL]['dsb']:.3f} | {seconds} |")
    (args.out / "lomo.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
