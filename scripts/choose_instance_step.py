"""Choose the default model's segment diameter and instance-step thresholds on the validation split (never
on anything else).

    python scripts/choose_instance_step.py ../shared/data/dsb2018 --model weights/default [--apply]

First the segment diameter (the nucleus size `segment` brings nuclei to; `DefaultModel.segment_diameter`):
the validation images are segmented through the whole inference path once per --diameters value with
the current thresholds, and the value with the best overall DSB score among those that lower no modality
by more than --tolerance against the current one is kept. Then the thresholds, at that diameter. The
network runs once per validation image (size estimation with the model's current settings, then
the probability map at the chosen scale, resized back to the image); the instance step
(`labels_from_probabilities`) is then repeated on the cached maps for every combination of seed
threshold, foreground threshold and minimum nucleus area in the grid, each scored by the DSB score
(mean over images) overall and per modality. The cached maps keep the scale chosen with the current
settings, while the settings also steer the size estimation: so the best --confirm combinations (and the
current one) are scored again through the whole inference path (`DefaultModel.segment`), and the best
of those is the choice. Prints both tables; --apply writes the choice into the model folder's manifest
(``segment_diameter`` and the `instance` block; the weights are unchanged).
"""

from __future__ import annotations

import argparse
import itertools
import os
import sys
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

SEEDS = (0.5, 0.6, 0.7, 0.8)
FOREGROUNDS = (0.35, 0.45, 0.55, 0.65)
MIN_AREAS = (15, 30, 60)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("data", type=Path, help="folder with images/, masks/, validation.txt, classes.csv")
    parser.add_argument("--model", default=None, help="model folder (default: the shipped one)")
    parser.add_argument("--apply", action="store_true", help="write the best settings into the model's manifest")
    parser.add_argument("--confirm", type=int, default=8, help="combinations re-scored through segment (default 8)")
    parser.add_argument("--diameters", default="20,22,24,26,28",
                        help="segment diameters to try, comma-separated (default 20,22,24,26,28; '' keeps the current)")
    parser.add_argument("--tolerance", type=float, default=0.005,
                        help="a diameter may lower no modality's DSB by more than this (default 0.005)")
    args = parser.parse_args(argv)

    from nucleaizer_tf.data import pair_folders, split_pairs
    from nucleaizer_tf.default_model import DefaultModel
    from nucleaizer_tf.default_model.instances import labels_from_probabilities
    from nucleaizer_tf.default_model.preprocess import resize_image, stretch_rgb8
    from nucleaizer_tf.default_model.validation import ALL, score_by_group
    from nucleaizer_tf.pipelines.train_default import read_examples, read_groups

    model = DefaultModel.load(args.model)
    groups = read_groups(args.data / "classes.csv")
    _, val_pairs = split_pairs(pair_folders(args.data / "images", args.data / "masks"), args.data / "validation.txt")
    examples = list(read_examples(val_pairs, groups))
    diameter = choose_diameter(model, examples, [float(d) for d in args.diameters.split(",") if d], args.tolerance)
    cached = []
    for name, group, image, labels in examples:
        rgb8 = stretch_rgb8(image)
        scale, _, prob = model.estimate_scale(rgb8)
        if prob is None:
            prob = model._prob_at(rgb8, scale, 1024)
        cached.append((name, group, resize_image(prob, rgb8.shape[:2]), scale, labels))
    print(f"{len(cached)} validation images; network maps cached")

    def evaluate(seed, foreground, min_area):
        by_name = {}
        for name, _, prob, scale, _ in cached:
            by_name[name] = labels_from_probabilities(
                prob, min_area=max(1, round(min_area / scale**2)), min_seed=max(1, round(model.min_seed / scale**2)),
                seed_threshold=seed, foreground_threshold=foreground)
        examples = [(name, group, name, labels) for name, group, _, _, labels in cached]
        return score_by_group(lambda name: by_name[name], examples)

    current = (model.seed_threshold, model.foreground_threshold, model.min_area)
    results = []
    for combo in sorted(set(itertools.product(SEEDS, FOREGROUNDS, MIN_AREAS)) | {current}):
        scores = evaluate(*combo)
        results.append((scores[ALL].dsb, combo, {g: s.dsb for g, s in scores.items()}))
    results.sort(key=lambda r: -r[0])
    names = [g for g in results[0][2] if g != ALL]
    print(f"{'seed':>5} {'fg':>5} {'area':>5} {'all':>6} " + " ".join(f"{g[:12]:>12}" for g in names))
    for dsb, combo, per in results[:10] + [r for r in results if r[1] == current]:
        mark = "  (current)" if combo == current else ""
        print(f"{combo[0]:>5} {combo[1]:>5} {combo[2]:>5} {dsb:>6.3f} " + " ".join(f"{per[g]:>12.3f}" for g in names) + mark)
    confirmed = []
    for combo in dict.fromkeys([r[1] for r in results[:args.confirm]] + [current]):
        model.seed_threshold, model.foreground_threshold, model.min_area = combo
        scores = score_by_group(model.segment, examples)
        confirmed.append((scores[ALL].dsb, combo, {g: s.dsb for g, s in scores.items()}))
    confirmed.sort(key=lambda r: -r[0])
    print("through segment (size estimation with each setting):")
    for dsb, combo, per in confirmed:
        mark = "  (current)" if combo == current else ""
        print(f"{combo[0]:>5} {combo[1]:>5} {combo[2]:>5} {dsb:>6.3f} " + " ".join(f"{per[g]:>12.3f}" for g in names) + mark)
    best = confirmed[0][1]
    if args.apply and (best != current or diameter != model.manifest.get("segment_diameter", model.trained_diameter)):
        from nucleaizer_tf.default_model.model import shipped_model_dirs

        folder = Path(args.model) if args.model else shipped_model_dirs()[-1]
        model.manifest["segment_diameter"] = diameter
        model.manifest["instance"] = {**model.manifest.get("instance", {}), "seed_threshold": best[0],
                                      "foreground_threshold": best[1], "min_area": best[2]}
        model.save(folder, overwrite=True)
        print(f"wrote segment diameter {diameter:g}, seed {best[0]}, foreground {best[1]}, min_area {best[2]} "
              f"into {folder}/manifest.json")
    return 0


def choose_diameter(model, examples, diameters: list[float], tolerance: float) -> float:
    """The best-scoring segment diameter (set on `model`) among those within `tolerance` of the current one per group."""
    from nucleaizer_tf.default_model.validation import ALL, score_by_group

    current = model.segment_diameter
    rows = {}
    for d in sorted(set(diameters) | {current}):
        model.segment_diameter = d
        rows[d] = {g: s.dsb for g, s in score_by_group(model.segment, examples).items()}
    names = [g for g in rows[current] if g != ALL]
    allowed = [d for d in rows if all(rows[d][g] >= rows[current][g] - tolerance for g in names)]
    best = max(allowed, key=lambda d: rows[d][ALL])
    print(f"{'diameter':>8} {'all':>6} " + " ".join(f"{g[:12]:>12}" for g in names))
    for d, per in rows.items():
        mark = "  (current)" if d == current else "  (chosen)" if d == best else "" if d in allowed else "  (lowers a modality)"
        print(f"{d:>8g} {per[ALL]:>6.3f} " + " ".join(f"{per[g]:>12.3f}" for g in names) + mark)
    model.segment_diameter = best
    return best


if __name__ == "__main__":
    sys.exit(main())
