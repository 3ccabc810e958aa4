"""The nine post-processing parameters of nucleAIzer (docs/method.md §5.3) and their JSON files.

The vector keeps the ORIGINAL integer units, in the original order; the properties give the values the
algorithms use (``scale_threshold / 100``, ``prob_threshold * 65535 / 32``, ``min_overlap / 10000``).
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Sequence

from ..errors import NucleaizerError

__all__ = [
    "PARAM_NAMES",
    "LOWER",
    "UPPER",
    "X0",
    "DEFAULT",
    "DEFAULT_PARAMS",
    "SCALE_UNET",
    "PostprocessParams",
    "as_params",
    "read_params",
    "write_params",
]

#: U-Net threshold denominator (hard-coded ``scaleUNET`` in the original).
SCALE_UNET = 32

PARAM_NAMES: tuple[str, ...] = (
    "scale_threshold",
    "prob_threshold",
    "erosion_radius",
    "dilation_radius",
    "min_size",
    "min_overlap",
    "max_v",
    "c_area",
    "median_size",
)

#: Search bounds and start point of the original genetic algorithm (spec 5.8), and the shipped defaults.
LOWER: tuple[int, ...] = (50, 15, 0, 1, 30, 0, 20, 10, 10)
UPPER: tuple[int, ...] = (80, 32, 2, 2, 50, 20, 40, 30, 30)
X0: tuple[int, ...] = (75, 30, 1, 1, 41, 12, 21, 17, 20)
DEFAULT: tuple[int, ...] = (76, 32, 0, 1, 44, 17, 32, 25, 21)


def _as_int(value, name: str) -> int:
    """An integral number (int, numpy integer, or a float holding a whole number) as a Python int."""
    if isinstance(value, bool):
        raise ValueError(f"parameter {name} must be an integer, got {value!r}")
    try:
        f = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"parameter {name} must be an integer, got {value!r}") from None
    if not math.isfinite(f) or f != round(f):
        raise ValueError(f"parameter {name} must be an integer, got {value!r}")
    return int(round(f))


@dataclass(frozen=True)
class PostprocessParams:
    """The 9-parameter vector (original integer units; defaults = the shipped ``[76,32,0,1,44,17,32,25,21]``).

    Frozen; every value is converted to a Python int on construction (whole-number floats and numpy
    integers are accepted). The properties give the scaled values the algorithms use
    (docs/method.md §5.3).

    Parameters
    ----------
    scale_threshold : int, default 76
        Max occupied fraction (in %) for an object to be accepted when merging 2x and 4x
        (`scale_fraction` = 0.76).
    prob_threshold : int, default 32
        U-Net threshold in 1/32 steps of the 16-bit range (32 -> E >= 65535; `prob_level`).
    erosion_radius : int, default 0
        Disk radius, inner limit of the contour correction; >= 0.
    dilation_radius : int, default 1
        Disk radius, outer limit of the contour correction; >= 0.
    min_size : int, default 44
        Objects with area <= min_size (px^2 at 2x resolution) are removed; >= 0.
    min_overlap : int, default 17
        Min fraction (in 1/10000) of object pixels on U-Net foreground to count as supported
        (`overlap_fraction` = 0.0017).
    max_v : int, default 32
        Objects whose area after the ring correction is <= max_v (px^2) are dropped; >= 0.
    c_area : int, default 25
        Min area (px^2) of a supported object; unsupported ones need 4 * c_area (`unsupported_area`); >= 0.
    median_size : int, default 21
        2x result used alone if its median equivalent diameter exceeds this (px).

    Raises
    ------
    ValueError
        If a value is not a whole number, or a radius, `min_size`, `max_v` or `c_area` is negative.

    Examples
    --------
    >>> p = PostprocessParams(min_size=30)
    >>> p.to_vector()
    [76, 32, 0, 1, 30, 17, 32, 25, 21]
    >>> p.scale_fraction, p.prob_level, p.overlap_fraction, p.unsupported_area
    (0.76, 65535.0, 0.0017, 100)
    >>> PostprocessParams.from_vector([75.0, 30, 1, 1, 41, 12, 21, 17, 20]).within_bounds()
    True
    """

    scale_threshold: int = DEFAULT[0]
    prob_threshold: int = DEFAULT[1]
    erosion_radius: int = DEFAULT[2]
    dilation_radius: int = DEFAULT[3]
    min_size: int = DEFAULT[4]
    min_overlap: int = DEFAULT[5]
    max_v: int = DEFAULT[6]
    c_area: int = DEFAULT[7]
    median_size: int = DEFAULT[8]

    def __post_init__(self):
        for f in fields(self):
            object.__setattr__(self, f.name, _as_int(getattr(self, f.name), f.name))
        for name in ("erosion_radius", "dilation_radius", "min_size", "max_v", "c_area"):
            if getattr(self, name) < 0:
                raise ValueError(f"parameter {name} must be >= 0, got {getattr(self, name)}")

    # -- scalings used by the algorithms -------------------------------------------------------------
    @property
    def scale_fraction(self) -> float:
        """``scale_threshold / 100`` (0.76 by default)."""
        return self.scale_threshold / 100

    @property
    def prob_level(self) -> float:
        """Threshold on the 16-bit ensemble map: ``prob_threshold * 65535 / 32`` (65535.0 by default)."""
        return self.prob_threshold * 65535 / SCALE_UNET

    @property
    def overlap_fraction(self) -> float:
        """``min_overlap / 10000`` (0.0017 by default)."""
        return self.min_overlap / 10000

    @property
    def unsupported_area(self) -> int:
        """Minimum area of an object without U-Net support: ``4 * c_area``."""
        return 4 * self.c_area

    # -- conversions ------------------------------------------------------------------------------------
    @classmethod
    def from_vector(cls, vector: Sequence) -> "PostprocessParams":
        """From the 9 values in the original order; whole-number floats are accepted (optimisers give them)."""
        values = list(vector)
        if len(values) != len(PARAM_NAMES):
            raise ValueError(f"a post-processing parameter vector has 9 values, got {len(values)}")
        return cls(*values)

    def to_vector(self) -> list[int]:
        """The 9 values in the original order, as Python ints."""
        return [getattr(self, name) for name in PARAM_NAMES]

    def to_dict(self) -> dict:
        """``{name: value}`` for the 9 parameters, in the original order."""
        return {name: getattr(self, name) for name in PARAM_NAMES}

    def within_bounds(self, lower: Sequence[int] = LOWER, upper: Sequence[int] = UPPER) -> bool:
        """True if every value lies in [lower, upper] (the search box of the original by default)."""
        return all(lo <= v <= hi for v, lo, hi in zip(self.to_vector(), lower, upper))


DEFAULT_PARAMS = PostprocessParams()


def as_params(params) -> PostprocessParams:
    """Accept a PostprocessParams, a 9-sequence in the original order, a name->value dict, or None.

    Parameters
    ----------
    params : PostprocessParams, sequence, dict or None
        A PostprocessParams (returned as it is); 9 values in the order of `PARAM_NAMES`; a dict of some
        of those names (the others keep their defaults); or None for `DEFAULT_PARAMS`.

    Returns
    -------
    PostprocessParams
        The parameters.

    Raises
    ------
    ValueError
        For unknown names, a sequence that does not hold 9 values, or invalid values.

    Examples
    --------
    >>> as_params(None) is DEFAULT_PARAMS
    True
    >>> as_params({"min_size": 30}).min_size
    30
    >>> as_params(X0).to_vector()
    [75, 30, 1, 1, 41, 12, 21, 17, 20]
    """
    if params is None:
        return DEFAULT_PARAMS
    if isinstance(params, PostprocessParams):
        return params
    if isinstance(params, dict):
        unknown = set(params) - set(PARAM_NAMES)
        if unknown:
            raise ValueError(f"unknown post-processing parameters: {sorted(unknown)}")
        return PostprocessParams(**params)
    return PostprocessParams.from_vector(params)


# ---------------------------------------------------------------------------------------------------------
# files


def read_params(path: str | os.PathLike) -> PostprocessParams:
    """Read parameters from JSON: a parameter-search result (``best_vector``), a plain 9-vector,
    ``{"params": [...]}`` / ``{"vector": [...]}``, or an object with the 9 named values.

    The keys are tried in the order ``best_vector``, ``params``, ``vector``; the named values are used
    only when none of these keys is present. An object holding all 9 names may carry other keys too; one
    holding only some of them (and nothing else) gives those values with the defaults for the rest.

    Parameters
    ----------
    path : str or os.PathLike
        JSON file, e.g. written by `write_params` or `write_search_result`.

    Returns
    -------
    PostprocessParams
        The parameters read.

    Raises
    ------
    NucleaizerError
        Naming the file when it is missing, not JSON, or holds none of these (or invalid values).

    Examples
    --------
    >>> import os, tempfile
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     path = os.path.join(tmp, "params.json")
    ...     with open(path, "w") as f:
    ...         _ = f.write("[75, 30, 1, 1, 41, 12, 21, 17, 20]")
    ...     read_params(path).min_size
    41
    """
    from nucleaizer_tf.io.read import read_json

    path = Path(path)
    data = read_json(path, "post-processing parameter file")

    candidate = data
    if isinstance(data, dict):
        for key in ("best_vector", "params", "vector"):
            if key in data:
                candidate = data[key]
                break
        else:
            if set(data) >= set(PARAM_NAMES):
                candidate = {k: data[k] for k in PARAM_NAMES}
    try:
        if isinstance(candidate, dict):
            return as_params(candidate)
        if isinstance(candidate, list):
            return PostprocessParams.from_vector(candidate)
    except (ValueError, TypeError) as exc:
        raise NucleaizerError(f"{path}: invalid post-processing parameters: {exc}") from None
    raise NucleaizerError(
        f"{path}: expected a parameter-search result (with 'best_vector'), a JSON list of 9 integers "
        f"({', '.join(PARAM_NAMES)}) or an object with those 9 keys"
    )


def write_params(path: str | os.PathLike, params) -> Path:
    """Write ``{"vector": [...9 ints...], <name>: <value>, ...}`` atomically (readable by read_params).

    Parameters
    ----------
    path : str or os.PathLike
        Output JSON file; missing parent folders are created.
    params : PostprocessParams, sequence, dict or None
        Anything `as_params` accepts.

    Returns
    -------
    pathlib.Path
        The path written.

    Examples
    --------
    >>> import os, tempfile
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     path = write_params(os.path.join(tmp, "params.json"), {"min_size": 30})
    ...     read_params(path).to_vector()
    [76, 32, 0, 1, 30, 17, 32, 25, 21]
    """
    from ..io import write_json

    p = as_params(params)
    return write_json(path, {"vector": p.to_vector(), **p.to_dict()})
