"""`nucleaizer-tf estimate-size` and `nucleaizer-tf param-search`: nucleAIzer's scale table and the search
of its 9 post-processing parameters."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from nucleaizer_tf.cli.common import fail_cleanly, progress_bar
from nucleaizer_tf.system import import_tensorflow
from nucleaizer_tf.errors import NucleaizerError


@fail_cleanly
def estimate_size(
    masks_dir: Path = typer.Argument(..., help="Folder of label images (e.g. a presegmentation, or ground truth)."),
    out: Optional[Path] = typer.Option(None, "--out", help="Also write the original's scales-rcnn-{1,2,4}x.csv and scales-unet.csv here, and sizes.json."),
    exclude_gaps: bool = typer.Option(False, "--exclude-gaps", help="Median over existing objects only (the original counts missing label ids as diameter 0)."),
) -> None:
    """Median nucleus diameter per image and the Mask R-CNN sizes nucleAIzer derives from it (1x/2x/4x)."""
    from nucleaizer_tf.io import (LABEL_EXTENSIONS, check_writable_folder, list_images, read_labels,
                                  remove_stale_temporaries, write_json)
    from nucleaizer_tf.postprocess.size import measure, network_sizes, write_scale_csvs

    if out is not None:
        check_writable_folder(out)
        remove_stale_temporaries(out)
    files = list_images(masks_dir, LABEL_EXTENSIONS)
    if not files:
        raise NucleaizerError(f"{masks_dir}: no label images (tif, tiff, png) in this folder")
    records = []
    for path in files:
        try:
            records.append(measure(path.stem, read_labels(path), include_gaps=not exclude_gaps))
        except ValueError as exc:
            raise NucleaizerError(f"{path}: {str(exc).removeprefix(path.stem + ': ')}") from None
    table = network_sizes(records, include_gaps=not exclude_gaps)
    typer.echo(f"{'image':<40} {'median diam.':>12} {'objects':>7} {'1x':>6} {'2x':>6} {'4x':>6}")
    for row in table.report():
        sizes = [row["scales"][f"{f}x"]["rounded"] for f in (1, 2, 4)]
        median = "no objects" if row["median_diameter"] is None else f"{row['median_diameter']:.4f}"
        typer.echo(f"{row['name'][:40]:<40} {median:>12} {row['n_objects']:7d} "
                   + " ".join(f"{'-' if v is None else int(v):>6}" for v in sizes))
    if out is not None:
        write_scale_csvs(table, out)
        write_json(out / "sizes.json", table.report())


@fail_cleanly
def param_search(
    images: Path = typer.Argument(..., help="Folder of validation images."),
    masks: Path = typer.Argument(..., help="Folder of their ground-truth label images (same stems)."),
    model: Path = typer.Option(..., "--model", "-m", help="Final Mask R-CNN weights (mask_rcnn_final.h5)."),
    unet: Path = typer.Option(..., "--unet", help="U-Net ensemble folder."),
    preseg_model: Optional[Path] = typer.Option(None, "--preseg-model", help="Presegmentation weights [default: --model]."),
    out: Path = typer.Option(Path("paramsearch.json"), "--out", "-o", help="Result file (best vector, its score, history); `predict --postprocess-params` reads it."),
    work_dir: Path = typer.Option(Path(".nucleaizer-paramsearch"), "--work-dir", help="Intermediate results (reused by a re-run)."),
    time_limit: float = typer.Option(1800.0, "--time-limit", min=1.0, help="Wall-clock limit in seconds (the original's code said 30 s, its documentation 30 min)."),
    seed: int = typer.Option(0, "--seed", help="Seed of the optimiser."),
    faithful_q5: bool = typer.Option(False, "--faithful-q5", help="Evaluate the original's search merge, which ignores scaleThrsh and medianSize (quirk Q5)."),
    image_size: int = typer.Option(1024, "--image-size", min=64, help="Presegmentation network size."),
    max_network_size: Optional[int] = typer.Option(None, "--max-network-size", min=64, help="Cap the 2x/4x Mask R-CNN sizes."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress output."),
) -> None:
    """Search the 9 post-processing parameters that maximise the DSB score on validation images (docs/method.md §5.8)."""
    for path, what in ((model, "weight file"), (preseg_model, "weight file"), (unet, "U-Net ensemble folder")):
        if path is not None and not path.exists():
            raise NucleaizerError(f"{path}: no such {what}")
    import_tensorflow()
    from nucleaizer_tf.data.pairs import pair_folders
    from nucleaizer_tf.full import FullPipeline, FullSettings
    from nucleaizer_tf.pipelines.full import validation_samples
    from nucleaizer_tf.postprocess.search import search_parameters, write_search_result

    n_images = len(pair_folders(images, masks))
    pipeline = FullPipeline(work_dir, preseg_model or model, model, unet,
                            FullSettings(preseg_size=image_size, max_network_size=max_network_size))
    with progress_bar("network stages", quiet, total=n_images) as advance:
        samples = validation_samples(pipeline, masks, images, progress=advance)

    def report(evaluations, best, elapsed):
        if not quiet and (evaluations <= 2 or evaluations % 25 == 0):
            typer.echo(f"  {evaluations:5d} evaluations, best DSB {best:.4f}, {elapsed:6.1f} s", err=True)

    result = search_parameters(samples, time_limit_s=time_limit, seed=seed, faithful_q5=faithful_q5, progress=report)
    write_search_result(out, result)
    summary = result.to_dict()
    typer.echo(f"best {' '.join(str(v) for v in summary['best_vector'])}: DSB {summary['best_score']:.4f} "
               f"(defaults {summary['default_score']:.4f}); written to {out}")
