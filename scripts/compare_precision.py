"""Accuracy of bfloat16 against float32: the default model's DSB per modality, Mask R-CNN's instances.

    python scripts/compare_precision.py ../shared/data/dsb_train --maskrcnn FIXTURE.h5 --oracle ../shared/oracle

Default model: the shipped model segments every image of DATA/images in float32 and in bfloat16
(automatic size estimation, as `predict` runs it); both are scored against DATA/masks with the DSB
2018 score and grouped by modality (`crossval_default_model.modality`). Note the shipped model was
trained on these images, so this is not a held-out score; what it measures is the change the compute
type makes. Mask R-CNN (optional): the oracle's images in fast mode at the oracle cases' network sizes
and detection settings; the share of float32 instances that have a bfloat16 instance at IoU ≥ 0.9.
Prints markdown tables; `--json` also writes every number.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, str(Path(__file__).resolve().parent))

import numpy as np  # noqa: E402

from nucleaizer_tf.io import read_image, read_labels, write_json  # noqa: E402
from nucleaizer_tf.metrics import iou_matrix, score_dataset, score_image  # noqa: E402

PRECISIONS = ("float32", "bfloat16")


def matched_share(reference: np.ndarray, other: np.ndarray, threshold: float = 0.9) -> tuple[int, int]:
    """(instances of `reference` with an instance of `other` at IoU ≥ threshold, instances of `reference`)."""
    iou, ref_ids, _ = iou_matrix(reference, other)
    if ref_ids.size == 0:
        return 0, 0
    best = iou.max(axis=1) if iou.shape[1] else np.zeros(ref_ids.size)
    return int((best >= threshold).sum()), int(ref_ids.size)


def default_model_table(data: Path) -> tuple[str, dict]:
    from crossval_default_model import MODALITIES, modality

    from nucleaizer_tf import load_model
    from nucleaizer_tf.data import pair_folders

    model = load_model("default")
    scores = {p: {} for p in PRECISIONS}
    groups: dict[str, list[str]] = {m: [] for m in MODALITIES}
    agree = [0, 0]
    for pair in pair_folders(data / "images", data / "masks"):
        image, truth = read_image(pair.image_path), read_labels(pair.mask_path)
        groups[modality(image)].append(pair.stem)
        labels = {}
        for precision in PRECISIONS:
            labels[precision] = model.segment(image, precision=precision)
            scores[precision][pair.stem] = score_image(truth, labels[precision], pair.stem)
        hit, total = matched_share(labels["float32"], labels["bfloat16"])
        agree[0] += hit
        agree[1] += total
    rows = {}
    lines = ["| modality | images | DSB float32 | DSB bfloat16 | change |", "| --- | ---: | ---: | ---: | ---: |"]
    for name, stems in [*groups.items(), ("all", sorted(scores["float32"]))]:
        if not stems:
            continue
        dsb = {p: score_dataset([scores[p][s] for s in stems]).dsb for p in PRECISIONS}
        rows[name] = {"n": len(stems), **dsb, "change": dsb["bfloat16"] - dsb["float32"]}
        lines.append(f"| {name} | {len(stems)} | {dsb['float32']:.4f} | {dsb['bfloat16']:.4f} | "
                     f"{rows[name]['change']:+.4f} |")
    lines.append(f"\nfloat32 nuclei with a bfloat16 nucleus at IoU ≥ 0.9: {agree[0]} of {agree[1]} "
                 f"({100 * agree[0] / max(agree[1], 1):.1f} %)")
    return "\n".join(lines), {"rows": rows, "matched_iou_0.9": agree}


def maskrcnn_table(weights: Path, oracle: Path) -> tuple[str, dict]:
    from nucleaizer_tf import load_model

    cases = json.loads((oracle / "outputs" / "cases.json").read_text())["cases"]
    common = json.loads((oracle / "outputs" / "config.json").read_text())["common_config"]
    model = load_model(str(weights))
    lines = ["| case | network size | float32 instances | matched at IoU ≥ 0.9 | share |",
             "| --- | ---: | ---: | ---: | ---: |"]
    rows, total = {}, [0, 0]
    for name, case in cases.items():
        image = read_image(oracle / case["input"])
        options = {"image_size": int(case["IMAGE_MIN_DIM=IMAGE_MAX_DIM"]),
                   "confidence": float(common["DETECTION_MIN_CONFIDENCE"]),
                   "nms": float(common["DETECTION_NMS_THRESHOLD"]),
                   "max_instances": int(common["DETECTION_MAX_INSTANCES"])}
        labels = {p: model.segment(image, precision=p, **options) for p in PRECISIONS}
        hit, count = matched_share(labels["float32"], labels["bfloat16"])
        total[0] += hit
        total[1] += count
        rows[name] = {"size": options["image_size"], "float32": count, "matched": hit,
                      "bfloat16": int(len(np.unique(labels["bfloat16"])) - 1)}
        lines.append(f"| {name} | {options['image_size']} | {count} | {hit} | {100 * hit / max(count, 1):.1f} % |")
    lines.append(f"| all | | {total[1]} | {total[0]} | {100 * total[0] / max(total[1], 1):.1f} % |")
    return "\n".join(lines), {"rows": rows, "total": total}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("data", type=Path, help="folder with images/ and masks/ (e.g. ../shared/data/dsb_train)")
    parser.add_argument("--maskrcnn", type=Path, help="legacy Mask R-CNN .h5 (e.g. the oracle's fixture weights)")
    parser.add_argument("--oracle", type=Path, default=Path("../shared/oracle"), help="the Mask R-CNN oracle folder")
    parser.add_argument("--json", type=Path, help="also write every number here")
    args = parser.parse_args(argv)
    result = {}
    table, result["default_model"] = default_model_table(args.data)
    print("Default model (shipped weights), DSB 2018 score per modality, float32 vs bfloat16:\n")
    print(table, flush=True)
    if args.maskrcnn is not None:
        table, result["maskrcnn"] = maskrcnn_table(args.maskrcnn, args.oracle)
        print("\nLegacy Mask R-CNN (fast mode), bfloat16 instances against float32:\n")
        print(table)
    if args.json is not None:
        write_json(args.json, result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
