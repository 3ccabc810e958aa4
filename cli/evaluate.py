"""`nucleaizer-tf evaluate` and `nucleaizer-tf info`: scoring label images, reporting the environment."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer

from nucleaizer_tf.cli.common import fail_cleanly, progress_bar
from nucleaizer_tf.system import native_stderr_silenced


@fail_cleanly
def info(as_json: bool = typer.Option(False, "--json", help="Print the report as JSON.")) -> None:
    """Versions, the CPU/GPU devices TensorFlow sees, thread settings (paste this into bug reports), and where
    docs/method.md, which the help refers to, is installed."""
    from nucleaizer_tf.system import environment_report

    with native_stderr_silenced():  # device probing logs CUDA errors on machines without a GPU
        report = environment_report()
    if as_json:
        typer.echo(json.dumps(report, indent=2))
        return
    for name, version in report["versions"].items():
        typer.echo(f"{name:>24}  {version}")
    typer.echo(f"{'platform':>24}  {report['platform']}")
    typer.echo(f"{'CPU cores':>24}  {report['cpu_count']}")
    devices = ", ".join(f"{d['name']} ({d['type']})" for d in report["devices"]) or "none"
    typer.echo(f"{'TensorFlow devices':>24}  {devices}")
    typer.echo(f"{'built with CUDA':>24}  {report['built_with_cuda']}")
    threads = report["threads"]
    typer.echo(f"{'threads intra/inter-op':>24}  {threads['intra_op']}/{threads['inter_op']} (0 = one per core)")
    for name, value in report["environment"].items():
        typer.echo(f"{name:>24}  {value}")
    typer.echo(f"{'method (docs/method.md)':>24}  {report['method']}")


@fail_cleanly
def evaluate(
    gt_dir: Path = typer.Argument(..., help="Folder of ground-truth label images (TIFF/PNG, 0 = background), ImageJ ROI sets (.zip) or GeoJSON."),
    pred_dir: Path = typer.Argument(..., help="Folder of predicted label images (or ROI sets / GeoJSON), same file stems."),
    csv_path: Optional[Path] = typer.Option(None, "--csv", help="Write per-image scores to this CSV file."),
    json_path: Optional[Path] = typer.Option(None, "--json", help="Write the summary and per-image scores as JSON."),
    missing_as_empty: bool = typer.Option(
        False, "--missing-as-empty", help="Score a ground truth without prediction as an empty prediction (0), as the original did, instead of failing."
    ),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="Print only the summary line."),
) -> None:
    """Kaggle DSB 2018 score (mean precision over IoU 0.50-0.95), F1 at IoU 0.5 and matched IoU, per image and overall."""
    from nucleaizer_tf.io import check_output_file
    from nucleaizer_tf.io.write import remove_stale_temporaries
    from nucleaizer_tf.pipelines.evaluate import pair_predictions, score_pairs, write_scores_csv

    for path, what in ((csv_path, "--csv file"), (json_path, "--json file")):
        if path is not None:  # before any scoring: a folder, a file in the way or a read-only disk fail now
            check_output_file(path, what)
            remove_stale_temporaries(path.parent, name=path.name)
    pairs = pair_predictions(gt_dir, pred_dir, missing_as_empty=missing_as_empty)
    with progress_bar("scoring", quiet, total=len(pairs)) as advance:
        result = score_pairs(pairs, progress=advance)
    if not quiet:
        typer.echo(f"{'image':<40} {'DSB':>7} {'F1@0.5':>7} {'mIoU':>7} {'GT':>5} {'pred':>5} {'TP':>5} {'FP':>5} {'FN':>5}")
        for s in result.images:
            typer.echo(
                f"{s.name[:40]:<40} {s.dsb:7.4f} {s.f1:7.4f} {s.mean_matched_iou:7.4f} "
                f"{s.n_gt:5d} {s.n_pred:5d} {s.tp:5d} {s.fp:5d} {s.fn:5d}"
            )
    undefined = f", {result.n_undefined} undefined (no objects in either)" if result.n_undefined else ""
    typer.echo(
        f"DSB score {result.dsb:.4f} over {result.n_images} images{undefined}; F1@0.5 {result.f1:.4f}, "
        f"mean matched IoU {result.mean_matched_iou:.4f}; TP {result.tp}, FP {result.fp}, FN {result.fn}"
    )
    if csv_path is not None:
        write_scores_csv(csv_path, result)
    if json_path is not None:
        from nucleaizer_tf.io import write_json

        write_json(json_path, result.to_dict())
