"""`python -m nucleaizer_tf` runs the same app as the `nucleaizer-tf` console script."""

from nucleaizer_tf.cli.main import main

main()
