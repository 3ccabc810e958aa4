"""The default model's manifest, checked field by field before anything is built from it.

A model folder may come from anywhere (a colleague, a download, a damaged disk): every field the
loader uses is checked for its type and range, unknown keys where the network is built are refused,
and the message names the manifest and the field (``architecture.base_filters``).
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Callable

from nucleaizer_tf.errors import NucleaizerError

Check = Callable[[object], str | None]  # None when the value is fine, else what it should be


def _integer(low: int, high: int) -> Check:
    def check(value):
        ok = isinstance(value, int) and not isinstance(value, bool) and low <= value <= high
        return None if ok else f"an integer from {low} to {high}"
    return check


def _number(low: float, high: float) -> Check:
    def check(value):
        ok = (isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
              and low <= value <= high)
        return None if ok else f"a number from {low:g} to {high:g}"
    return check


def _choice(*options: str) -> Check:
    return lambda value: None if value in options else "one of " + ", ".join(repr(o) for o in options)


def _text(value):
    return None if isinstance(value, str) and 0 < len(value) <= 200 else "a text of 1 to 200 characters"


def _file_name(value):
    ok = isinstance(value, str) and 0 < len(value) <= 255 and "/" not in value and "\\" not in value
    return None if ok and value not in (".", "..") else "a file name inside the model folder"


def _sha256(value):
    return None if isinstance(value, str) and re.fullmatch(r"[0-9a-f]{64}", value) else "64 lower-case hex digits"


def _class_weights(value):
    ok = (isinstance(value, list) and len(value) == 3
          and all(_number(1e-3, 1e3)(v) is None for v in value))
    return None if ok else "a list of 3 numbers from 0.001 to 1000"


TOP: dict[str, tuple[Check | type, bool]] = {
    "weights_file": (_file_name, True),
    "sha256": (_sha256, False),
    "architecture": (dict, True),
    "trained_diameter": (_number(2, 1000), True),
    "instance": (dict, False),
}
ARCHITECTURE: dict[str, tuple[Check, bool]] = {
    "in_channels": (_integer(1, 4), False),
    "out_channels": (_integer(3, 3), True),
    "base_filters": (_integer(1, 256), True),
    "depth": (_integer(1, 6), True),
    "output_activation": (_choice("softmax"), True),
    "name": (_text, False),
}
INSTANCE: dict[str, tuple[Check, bool]] = {
    "min_area": (_number(0, 1e6), False),
    "min_seed": (_number(0, 1e6), False),
    "seed_threshold": (_number(0, 1), False),
    "foreground_threshold": (_number(0, 1), False),
    "class_weights": (_class_weights, False),
}


def _check_fields(block: dict, spec: dict, prefix: str, where: str, *, closed: bool) -> None:
    if closed:
        unknown = sorted(str(k) for k in block if k not in spec)
        if unknown:
            raise NucleaizerError(f"{where}: unknown field {prefix}{unknown[0]!s:.60} (known: {', '.join(spec)})")
    for key, (check, required) in spec.items():
        if key not in block:
            if required:
                raise NucleaizerError(f"{where}: field {prefix}{key} is missing")
            continue
        value = block[key]
        if isinstance(check, type):
            problem = None if isinstance(value, check) else f"a JSON {'object' if check is dict else check.__name__}"
        else:
            problem = check(value)
        if problem is not None:
            raise NucleaizerError(f"{where}: field {prefix}{key} must be {problem}, got {_shown(value)}")


def _shown(value) -> str:
    text = repr(value) if not isinstance(value, (dict, list)) else f"a JSON {'object' if isinstance(value, dict) else 'list'}"
    return text if len(text) <= 60 else text[:57] + "..."


def check_manifest(manifest, where: str | os.PathLike) -> None:
    """Refuse a default-model manifest whose fields would build something else than a default model.

    Checked: ``weights_file`` (a file name), ``sha256`` (hex), ``trained_diameter`` (2–1000 px),
    ``architecture`` (the `build_unet` arguments: no unknown key, 1–256 base filters, depth 1–6, 3
    softmax outputs, 1–4 input channels) and ``instance`` (thresholds 0–1, sizes ≥ 0, 3 class weights).
    Other fields (training records, notes) are free.

    Parameters
    ----------
    manifest : object
        The parsed manifest.
    where : str or os.PathLike
        The manifest's path, for the message.

    Raises
    ------
    NucleaizerError
        ``"<where>: field <name> must be <what>, got <value>"``, or a missing or unknown field.

    Examples
    --------
    >>> check_manifest({"weights_file": "w.weights.h5", "trained_diameter": 20, "architecture":
    ...                 {"out_channels": 3, "base_filters": 200000, "depth": 4, "output_activation": "softmax"}},
    ...                "m/manifest.json")
    Traceback (most recent call last):
    nucleaizer_tf.errors.NucleaizerError: m/manifest.json: field architecture.base_filters must be an integer from 1 to 256, got 200000
    """
    where = str(where)
    if not isinstance(manifest, dict):
        raise NucleaizerError(f"{where}: a model manifest must be a JSON object")
    _check_fields(manifest, TOP, "", where, closed=False)
    _check_fields(manifest["architecture"], ARCHITECTURE, "architecture.", where, closed=True)
    _check_fields(manifest.get("instance", {}), INSTANCE, "instance.", where, closed=True)
