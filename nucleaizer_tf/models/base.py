"""What every segmenter of the model facade offers: `segment`, `segment_many`, `describe`, `save`.

A segmenter owns a set of named options, each with a default and a check. `segment(image, **options)`
refuses an option the model does not take (a Mask R-CNN threshold given to the default model, say)
and a value that makes no sense (a negative nucleus size), with one line that names the option, so a
setting is never silently ignored. `resolve_options` returns every applied setting, defaults
included, for the run record.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from nucleaizer_tf.errors import NucleaizerError


@dataclass(frozen=True)
class Option:
    """One option of a segmenter: its default and a check returning a problem (or None)."""

    default: Any
    check: Callable[[Any], str | None] | None = None
    help: str = ""


def positive(value) -> str | None:
    try:
        ok = math.isfinite(float(value)) and float(value) > 0
    except (TypeError, ValueError):
        ok = False
    return None if ok else "must be a finite number above 0"


def fraction(value) -> str | None:
    try:
        ok = 0.0 <= float(value) <= 1.0
    except (TypeError, ValueError):
        ok = False
    return None if ok else "must be between 0 and 1"


def at_least(minimum: int) -> Callable[[Any], str | None]:
    def check(value) -> str | None:
        ok = isinstance(value, (int, np.integer)) and not isinstance(value, bool) and value >= minimum
        return None if ok else f"must be a whole number of at least {minimum}"

    return check


def one_of(*choices) -> Callable[[Any], str | None]:
    def check(value) -> str | None:
        return None if value in choices else f"must be one of {', '.join(map(str, choices))}"

    return check


def boolean(value) -> str | None:
    return None if isinstance(value, (bool, np.bool_)) else "must be true or false"


class Segmenter:
    """Base of the segmenters `load_model` returns; subclasses set `kind`, `title`, `options` and
    implement `_segment(image, options, name) -> (labels, facts)`.

    Examples
    --------
    >>> from nucleaizer_tf import load_model
    >>> model = load_model("default")
    >>> labels = model.segment(image)                      # doctest: +SKIP
    >>> labels = model.segment(image, nucleus_size=30)     # doctest: +SKIP
    """

    kind: ClassVar[str] = ""
    title: ClassVar[str] = ""
    options: ClassVar[dict[str, Option]] = {}

    # ------------------------------------------------------------------ options

    @classmethod
    def resolve_options(cls, options: dict | None = None) -> dict:
        """Every option of this kind of model with the given values applied and checked (defaults for
        the rest); a class method, so options can be checked before a slow model load."""
        options = dict(options or {})
        unknown = sorted(set(options) - set(cls.options))
        if unknown:
            names = ", ".join(_flag(n) for n in unknown)
            takes = ", ".join(_flag(n) for n in cls.options) or "no options"
            raise NucleaizerError(f"{names} does not apply to the {cls.title} (it takes {takes})")
        resolved = {}
        for name, option in cls.options.items():
            value = options.get(name, option.default)
            if value is not None and option.check is not None:
                problem = option.check(value)
                if problem:
                    raise NucleaizerError(f"{_flag(name)} {value!r}: {problem}")
            resolved[name] = value
        return cls._fill_defaults(resolved)

    @classmethod
    def _fill_defaults(cls, resolved: dict) -> dict:
        """Replace defaults that depend on other options (None) by the values that will apply."""
        return resolved

    # ------------------------------------------------------------------ segmentation

    def segment(self, image, **options) -> np.ndarray:
        """Label image (uint16, uint32 above 65,535 nuclei; 0 = background) of one 2-D image of any dtype.

        Examples
        --------
        >>> labels = load_model("default").segment(image)  # doctest: +SKIP
        """
        return self.segment_with_facts(image, **options)[0]

    def segment_with_facts(self, image, *, name: str | None = None, **options) -> tuple[np.ndarray, dict]:
        """(labels, facts): the facts (network size, estimated nucleus size, ...) go to the run record.
        `name` identifies the image for models that cache intermediate results (the full pipeline)."""
        return self._segment(_as_image(image), self.resolve_options(options), name)

    def segment_many(self, images: Iterable, **options) -> Iterator[np.ndarray]:
        """Labels of each image of a list or iterator, in order (options checked once, before the first).

        Examples
        --------
        >>> for labels in load_model("default").segment_many(images):  # doctest: +SKIP
        ...     print(labels.max(), "nuclei")
        """
        resolved = self.resolve_options(options)
        for image in images:
            yield self._segment(_as_image(image), resolved, None)[0]

    def prepare(self, **options) -> dict:
        """Check the options and load or build every network they need now, so that a bad weight file
        fails before the first image rather than on each; returns the resolved options."""
        return self.resolve_options(options)

    def _segment(self, image: np.ndarray, options: dict, name: str | None) -> tuple[np.ndarray, dict]:
        raise NotImplementedError

    # ------------------------------------------------------------------ identity and saving

    def describe(self) -> dict:
        """What the run record says about the model: its kind, where it came from, its checksum."""
        return {"kind": self.kind}

    def record_settings(self, options: dict) -> dict:
        """The applied settings as the run record lists them (resolved options)."""
        return dict(options)

    def save(self, folder, *, overwrite: bool = False) -> Path:
        """Write the model as a model folder (`manifest.json` + weights) that `load_model` reads."""
        raise NucleaizerError(f"the {self.title} cannot be saved as a model folder")

    def __repr__(self) -> str:
        facts = ", ".join(f"{k}={v!r}" for k, v in self.describe().items() if k != "kind")
        return f"<{type(self).__name__} {facts}>"


def _flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def _as_image(image) -> np.ndarray:
    array = np.asarray(image)
    if array.ndim not in (2, 3) or (array.ndim == 3 and array.shape[2] > 4) or min(array.shape[:2]) < 2:
        raise NucleaizerError(f"expected a 2-D image (grey H×W or H×W×C with C ≤ 4), got shape {array.shape}")
    return array


def labels_dtype(labels: np.ndarray) -> np.ndarray:
    """uint16 labels, uint32 above 65,535 objects (what the label writers store)."""
    top = int(labels.max(initial=0))
    return labels.astype(np.uint16 if top <= np.iinfo(np.uint16).max else np.uint32, copy=False)
