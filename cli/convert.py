"""`nucleaizer-tf convert-unet`: nucleAIzer's original PyTorch U-Net ensemble → an ensemble folder, without torch."""

from __future__ import annotations

from pathlib import Path

import typer

from nucleaizer_tf.cli.common import fail_cleanly, progress_bar
from nucleaizer_tf.system import import_tensorflow


@fail_cleanly
def convert_unet(
    original: Path = typer.Argument(..., help="The original U-Net folder (kaggle_workflow/unet) with UNet_sigma*_*/UNet_sigma*_* model files."),
    out_dir: Path = typer.Argument(..., help="Ensemble folder to write (manifest.json + one weight file per member); `predict --mode full --unet` reads it."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress output."),
) -> None:
    """Convert the original's whole-module PyTorch U-Net pickles (legacy or zip format) into an ensemble folder.

    The files are read without PyTorch by a restricted unpickler: any global outside the U-Net's own
    classes, PyTorch's layer, tensor and storage types is refused.
    """
    from nucleaizer_tf.unet.torch_import import convert_unet_folder, original_members

    members = original_members(original)
    import_tensorflow()
    with progress_bar("convert-unet", quiet, total=len(members)) as advance:
        folder = convert_unet_folder(original, out_dir, progress=advance)
    if not quiet:
        listed = ", ".join(f"{m.name} (sigma {m.sigma:g})" for m in members)
        typer.echo(f"wrote a {len(members)}-member U-Net ensemble to {folder}: {listed}")
