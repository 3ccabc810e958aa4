"""The method description, installed as `nucleaizer_tf.docs`: the command help and docstrings refer to
docs/method.md, and a user with only the wheel finds it at `METHOD` (``nucleaizer-tf info`` prints it).

This folder is `docs/` in the repository and `nucleaizer_tf/docs/` in an installed distribution.
"""

from pathlib import Path

#: docs/method.md: nucleAIzer's method stage by stage, as this package implements it
METHOD = Path(__file__).resolve().with_name("method.md")
