"""The `nucleaizer-tf` command: parse, call the library, show progress. No logic of its own.

One module per group of commands; this one only assembles the application.
"""

from __future__ import annotations

import os

import typer

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # before any TensorFlow import: keep C++ chatter out

from nucleaizer_tf.cli.adapt import adapt  # noqa: E402
from nucleaizer_tf.cli.common import PanelledCommand, new_app  # noqa: E402
from nucleaizer_tf.cli.convert import convert_unet  # noqa: E402
from nucleaizer_tf.cli.evaluate import evaluate, info  # noqa: E402
from nucleaizer_tf.cli.export import export_app  # noqa: E402
from nucleaizer_tf.cli.measure import measure  # noqa: E402
from nucleaizer_tf.cli.postprocess import estimate_size, param_search  # noqa: E402
from nucleaizer_tf.cli.predict import predict  # noqa: E402
from nucleaizer_tf.cli.style import style_transfer  # noqa: E402
from nucleaizer_tf.cli.train import train_app  # noqa: E402

app = new_app("nucleaizer-tf", "nucleAIzer nucleus segmentation in TensorFlow 2 / Keras 3: predict, evaluate, train, adapt.")


def _print_version(value: bool) -> None:
    if value:
        from nucleaizer_tf import __version__

        typer.echo(f"nucleaizer-tf {__version__}")
        raise typer.Exit()


@app.callback()
def _root(version: bool = typer.Option(False, "--version", callback=_print_version, is_eager=True,
                                       expose_value=False, help="Print the version and exit.")) -> None:
    """nucleAIzer nucleus segmentation in TensorFlow 2 / Keras 3: predict, evaluate, train, adapt."""


app.command(cls=PanelledCommand)(predict)
app.command()(evaluate)
app.command("measure")(measure)
app.command("estimate-size")(estimate_size)
app.command("param-search")(param_search)
app.command("style-transfer")(style_transfer)
app.command()(adapt)
app.command("convert-unet")(convert_unet)
app.add_typer(train_app, name="train")
app.add_typer(export_app, name="export")
app.command()(info)


def main() -> None:
    """The `nucleaizer-tf` console script and `python -m nucleaizer_tf`."""
    app(prog_name="nucleaizer-tf")
