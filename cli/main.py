"""The `nucleaizer-tf` command: parse, call the library, show progress. No logic of its own.

One module per group of commands; this one only assembles the application.
"""

from __future__ import annotations

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # before any TensorFlow import: keep C++ chatter out

from cli.common import new_app  # noqa: E402
from cli.evaluate import evaluate, info  # noqa: E402
from cli.postprocess import estimate_size, param_search  # noqa: E402
from cli.predict import predict  # noqa: E402
from cli.style import style_transfer  # noqa: E402
from cli.train import train_app  # noqa: E402

app = new_app("nucleaizer-tf", "nucleAIzer nucleus segmentation in TensorFlow 2 / Keras 3: predict, evaluate, train, adapt.")
app.command()(predict)
app.command()(evaluate)
app.command("estimate-size")(estimate_size)
app.command("param-search")(param_search)
app.command("style-transfer")(style_transfer)
app.add_typer(train_app, name="train")
app.command()(info)


def main() -> None:  # pragma: no cover - console-script entry
    app()
