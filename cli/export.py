"""`nucleaizer-tf export`: a model in the formats other tools read."""

from __future__ import annotations

from pathlib import Path

import typer

from nucleaizer_tf.cli.common import fail_cleanly, new_app
from nucleaizer_tf.system import import_tensorflow

export_app = new_app("export", "Write a model in the formats other tools read: a bioimage.io package for deepImageJ, QuPath, ilastik and the model zoo.")


@export_app.command("bioimageio")
@fail_cleanly
def export_bioimageio(
    model: str = typer.Argument(..., help="'default' (the shipped model), a default-model folder (what adapt and train default write) or a U-Net ensemble folder (convert-unet, train ensemble)."),
    out: Path = typer.Argument(..., help="The bioimage.io package to write (.zip): rdf.yaml, the network as a TensorFlow SavedModel, test tensors, cover, documentation."),
    name: str = typer.Option(None, "--name", help="The model's name in the zoo [the manifest's name]."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace an existing OUT."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No summary."),
) -> None:
    """Write a default model or a U-Net ensemble as a bioimage.io model package (spec 0.5) for deepImageJ, QuPath, ilastik and the zoo.

    Needs the optional extra: pip install 'nucleaizer-tf[bioimageio]'. The package's network gives a
    probability map (a default model: background / interior / boundary; an ensemble: nucleus); the size
    normalisation and the instance step of `predict` are described in its documentation, not done by
    zoo consumers (README "The bioimage.io model zoo")."""
    from nucleaizer_tf.pipelines.zoo_export import export_bioimageio as export

    import_tensorflow()
    written = export(model, out, overwrite=overwrite, name=name)
    if not quiet:
        typer.echo(f"wrote the bioimage.io package {written} ({written.stat().st_size / 1e6:.1f} MB); "
                   "check it with: bioimageio test " + str(written))
