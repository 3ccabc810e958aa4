"""`python -m cli` runs the same app as the `nucleaizer-tf` console script."""

from cli.main import app

app(prog_name="nucleaizer-tf")
