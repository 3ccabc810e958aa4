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
from nucleaizer_tf.progress import SILENT, Reporter


@dataclass(frozen=True)
class Option:
    """One option of a segmenter: its default and a check returning a problem (or None).

    Attributes
    ----------
    default : Any
        The value that applies when the caller does not give the option. None may stand for "decided
        later" (for instance an estimated nucleus size); None is never passed to `check`.
    check : callable or None, optional
        ``check(value) -> str | None``: None when `value` is acceptable, otherwise the problem as a short
        phrase ("must be between 0 and 1") that `Segmenter.resolve_options` puts after the option's name.
        None (the default) accepts any value.
    help : str, optional
        One line describing the option (empty by default).

    Examples
    --------
    >>> option = Option(0.5, fraction, "foreground where the probability is at least this")
    >>> option.default
    0.5
    >>> option.check(2)
    'must be between 0 and 1'
    """

    default: Any
    check: Callable[[Any], str | None] | None = None
    help: str = ""


def positive(value) -> str | None:
    """Option check: `value` is a finite number above 0.

    Parameters
    ----------
    value : object
        The value to check; anything `float()` accepts (an int, a float, a numeric string).

    Returns
    -------
    str or None
        None when `value` is acceptable, else ``"must be a finite number above 0"``.

    Examples
    --------
    >>> positive(25) is None
    True
    >>> positive(-3)
    'must be a finite number above 0'
    >>> positive(float("inf"))
    'must be a finite number above 0'
    """
    try:
        ok = math.isfinite(float(value)) and float(value) > 0
    except (TypeError, ValueError):
        ok = False
    return None if ok else "must be a finite number above 0"


def fraction(value) -> str | None:
    """Option check: `value` is a number between 0 and 1 (both included).

    Parameters
    ----------
    value : object
        The value to check; anything `float()` accepts.

    Returns
    -------
    str or None
        None when ``0 <= float(value) <= 1``, else ``"must be between 0 and 1"``.

    Examples
    --------
    >>> fraction(0.7) is None
    True
    >>> fraction(1.5)
    'must be between 0 and 1'
    """
    try:
        ok = 0.0 <= float(value) <= 1.0
    except (TypeError, ValueError):
        ok = False
    return None if ok else "must be between 0 and 1"


def at_least(minimum: int) -> Callable[[Any], str | None]:
    """Option check factory: a check that accepts whole numbers of at least `minimum`.

    Parameters
    ----------
    minimum : int
        The smallest accepted value.

    Returns
    -------
    callable
        ``check(value) -> str | None``: None for a Python or NumPy integer (not a bool) that is at least
        `minimum`, else ``"must be a whole number of at least <minimum>"``. Floats are refused, even
        whole ones such as ``2.0``.

    Examples
    --------
    >>> check = at_least(1)
    >>> check(800) is None
    True
    >>> check(0)
    'must be a whole number of at least 1'
    >>> check(2.0)
    'must be a whole number of at least 1'
    """
    def check(value) -> str | None:
        ok = isinstance(value, (int, np.integer)) and not isinstance(value, bool) and value >= minimum
        return None if ok else f"must be a whole number of at least {minimum}"

    return check


def one_of(*choices) -> Callable[[Any], str | None]:
    """Option check factory: a check that accepts exactly one of the given values.

    Parameters
    ----------
    *choices
        The accepted values.

    Returns
    -------
    callable
        ``check(value) -> str | None``: None when `value` is one of `choices`, else
        ``"must be one of <choices, comma-separated>"``.

    Examples
    --------
    >>> check = one_of("nucleaizer", "percentile")
    >>> check("percentile") is None
    True
    >>> check("minmax")
    'must be one of nucleaizer, percentile'
    """
    def check(value) -> str | None:
        return None if value in choices else f"must be one of {', '.join(map(str, choices))}"

    return check


def boolean(value) -> str | None:
    """Option check: `value` is a bool (Python or NumPy); 0 and 1 are refused.

    Parameters
    ----------
    value : object
        The value to check.

    Returns
    -------
    str or None
        None for True or False, else ``"must be true or false"``.

    Examples
    --------
    >>> boolean(True) is None
    True
    >>> boolean(1)
    'must be true or false'
    """
    return None if isinstance(value, (bool, np.bool_)) else "must be true or false"


class Segmenter:
    """Base of the segmenters `load_model` returns.

    A segmenter turns 2-D images into label images (`segment`, `segment_many`), checks its options
    (`resolve_options`), says what it is for the run record (`describe`) and, where it can, saves itself
    as a model folder (`save`). Subclasses set `kind`, `title` and `options` and implement
    ``_segment(image, options, name, advance) -> (labels, facts)``, calling ``advance()`` after each
    step of the work (a tile of the network, or the whole image), so a reporter can show progress and a
    GUI can stop a long run by raising in it.

    Attributes
    ----------
    kind : str
        The model kind as the run record and the model folder's manifest name it (``"default-model"``,
        ``"maskrcnn"``, ``"unet-ensemble"``, ``"full-pipeline"``).
    title : str
        The model's name in messages (``"default model"``).
    options : dict of str to Option
        Every option the model takes, by name; any other option is refused.

    Examples
    --------
    >>> from nucleaizer_tf import load_model
    >>> model = load_model("default")                      # doctest: +SKIP
    >>> labels = model.segment(image)                      # doctest: +SKIP
    >>> labels = model.segment(image, nucleus_size=30)     # doctest: +SKIP
    """

    kind: ClassVar[str] = ""
    title: ClassVar[str] = ""
    options: ClassVar[dict[str, Option]] = {}

    # ------------------------------------------------------------------ options

    @classmethod
    def resolve_options(cls, options: dict | None = None) -> dict:
        """Every option of this kind of model with the given values applied and checked.

        A class method, so options can be checked before a slow model load.

        Parameters
        ----------
        options : dict, optional
            Option values by name (underscores, as in `segment`'s keywords); the others take their
            defaults. None means no options.

        Returns
        -------
        dict
            Every option of the model, in the order of `options`, with the defaults that depend on other
            options (None) replaced by the values that will apply.

        Raises
        ------
        NucleaizerError
            For an option the model does not take, or a value its check refuses; the one-line message
            names the option as a command-line flag (``--nucleus-size``).

        Examples
        --------
        >>> from nucleaizer_tf.models.default import DefaultSegmenter
        >>> resolved = DefaultSegmenter.resolve_options({"nucleus_size": 25})
        >>> {name: resolved[name] for name in ("nucleus_size", "tta", "tile", "precision", "min_size")}
        {'nucleus_size': 25, 'tta': False, 'tile': 1024, 'precision': 'float32', 'min_size': 0}
        >>> resolved["runtime"] in ("tensorflow", "openvino")  # auto: OpenVINO where it is installed
        True
        >>> DefaultSegmenter.resolve_options({"confidence": 0.5})  # a Mask R-CNN option
        Traceback (most recent call last):
        ...
        nucleaizer_tf.errors.NucleaizerError: --confidence does not apply to the default model (it takes ...)
        """
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

    def segment(self, image, *, channel: int | None = None, reporter: Reporter = SILENT, **options) -> np.ndarray:
        """Label image of one 2-D image of any dtype.

        Parameters
        ----------
        image : array_like
            A grey H×W or H×W×C image (C ≤ 4), at least 2 pixels each way, of any dtype.
        channel : int, optional
            Segment this channel (0-based) of a multi-channel image only, as grey: channels last
            (Y, X, C) or first (C, Y, X), whichever axis is the shorter (``predict --channel``).
        reporter : Reporter, optional
            Progress (`nucleaizer_tf.progress`): one stage, advanced after each step of the work (each
            tile of the default model's network; the whole image for the other models). An exception
            raised by its ``advance`` stops the run there. Silent by default.
        **options
            The model's options (see its `options`); the others take their defaults.

        Returns
        -------
        numpy.ndarray
            H×W labels: 0 = background, 1..n = nuclei; uint16, uint32 above 65,535 nuclei.

        Raises
        ------
        NucleaizerError
            For an image of another shape, an option the model does not take or a bad option value.

        Examples
        --------
        >>> labels = load_model("default").segment(image)  # doctest: +SKIP
        >>> int(labels.max())  # the number of nuclei       # doctest: +SKIP
        412
        >>> nuclei = load_model("default").segment(dapi_and_actin, channel=0)  # doctest: +SKIP
        """
        return self.segment_with_facts(image, channel=channel, reporter=reporter, **options)[0]

    def segment_with_facts(self, image, *, channel: int | None = None, name: str | None = None,
                           reporter: Reporter = SILENT, **options) -> tuple[np.ndarray, dict]:
        """Labels of one image together with the facts the run record keeps about it.

        Parameters
        ----------
        image : array_like
            A 2-D image, as for `segment`.
        channel : int, optional
            The channel to segment, as for `segment`.
        name : str, optional
            Identifies the image for models that cache intermediate results (the full pipeline, with a
            work folder) and names the progress stage; otherwise ignored.
        reporter : Reporter, optional
            Progress, as for `segment`.
        **options
            The model's options, as for `segment`.

        Returns
        -------
        labels : numpy.ndarray
            As `segment` returns them.
        facts : dict
            What the model found out on the way (network size, estimated nucleus size, ...).

        Examples
        --------
        >>> labels, facts = load_model("default").segment_with_facts(image)  # doctest: +SKIP
        >>> facts                                                            # doctest: +SKIP
        {'scale': 0.8, 'estimated_diameter': 31.25}
        """
        image = _as_image(image, channel)
        resolved = self.resolve_options(options)
        with reporter.stage(f"segmenting {name}" if name else "segmenting") as advance:
            return self._segment(image, resolved, name, advance)

    def segment_many(self, images: Iterable, *, channel: int | None = None, **options) -> Iterator[np.ndarray]:
        """Labels of each image of a list or iterator, in order.

        The options are checked once, before the first image is read from `images`.

        Parameters
        ----------
        images : iterable of array_like
            2-D images, as for `segment`; an iterator is consumed lazily, one image at a time.
        channel : int, optional
            The channel to segment of each, as for `segment`.
        **options
            The model's options, as for `segment`.

        Yields
        ------
        numpy.ndarray
            The labels of each image, as `segment` returns them.

        Examples
        --------
        >>> for labels in load_model("default").segment_many(images):  # doctest: +SKIP
        ...     print(labels.max(), "nuclei")
        """
        resolved = self.resolve_options(options)
        for image in images:
            yield self._segment(_as_image(image, channel), resolved, None, _no_tick)[0]

    def prepare(self, **options) -> dict:
        """Check the options and load or build every network they need now.

        So a bad weight file fails before the first image rather than on each.

        Parameters
        ----------
        **options
            The model's options, as for `segment`.

        Returns
        -------
        dict
            The resolved options (see `resolve_options`).

        Examples
        --------
        >>> model = load_model("mask_rcnn_final.h5")           # doctest: +SKIP
        >>> settings = model.prepare(confidence=0.6)           # doctest: +SKIP
        """
        resolved = self.resolve_options(options)
        self._load_networks(resolved)
        return resolved

    def _load_networks(self, options: dict) -> None:
        """Load or build the networks resolved `options` need (the kinds that load lazily override this)."""

    def _segment(self, image: np.ndarray, options: dict, name: str | None,
                 advance: Callable[[], None]) -> tuple[np.ndarray, dict]:
        raise NotImplementedError

    # ------------------------------------------------------------------ identity and saving

    def describe(self) -> dict:
        """What the run record says about the model: its kind, where it came from, its checksum.

        Returns
        -------
        dict
            At least ``{"kind": kind}``; subclasses add the model's source and, where known, its sha256.

        Examples
        --------
        >>> load_model("default").describe()["kind"]  # doctest: +SKIP
        'default-model'
        """
        return {"kind": self.kind}

    def record_settings(self, options: dict) -> dict:
        """The applied settings as the run record lists them.

        Parameters
        ----------
        options : dict
            Resolved options (see `resolve_options`).

        Returns
        -------
        dict
            A copy of `options` (the full pipeline lists its own settings block instead); where the
            network ran on TensorFlow because OpenVINO is not installed, ``runtime_note`` says so.

        Examples
        --------
        >>> model = load_model("default")                              # doctest: +SKIP
        >>> model.record_settings(model.resolve_options({"tta": True}))  # doctest: +SKIP
        {'nucleus_size': None, 'tta': True, 'tile': 1024, 'precision': 'float32'}
        """
        from nucleaizer_tf.runtime import INSTALL_OPENVINO, openvino_installed

        settings = dict(options)
        if settings.get("runtime") == "tensorflow" and not openvino_installed():
            settings["runtime_note"] = f"OpenVINO is not installed ({INSTALL_OPENVINO}): the networks ran on TensorFlow"
        return settings

    def save(self, folder, *, overwrite: bool = False) -> Path:
        """Write the model as a model folder (`manifest.json` + weights) that `load_model` reads.

        Parameters
        ----------
        folder : str or os.PathLike
            The folder to write (created if needed).
        overwrite : bool, optional
            Replace a model already in `folder` (default False: refuse).

        Returns
        -------
        pathlib.Path
            The model folder.

        Raises
        ------
        NucleaizerError
            When the kind of model cannot be saved (the base class), or `folder` already holds a model and
            `overwrite` is False.

        Examples
        --------
        >>> load_model("mask_rcnn_final.h5").save("my_model")  # doctest: +SKIP
        PosixPath('my_model')
        """
        raise NucleaizerError(f"the {self.title} cannot be saved as a model folder")

    def __repr__(self) -> str:
        facts = ", ".join(f"{k}={v!r}" for k, v in self.describe().items() if k != "kind")
        return f"<{type(self).__name__} {facts}>"


def _flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def _no_tick(label=None) -> None:
    return None


def _as_image(image, channel: int | None = None) -> np.ndarray:
    """`image` as a checked 2-D array; with `channel`, that channel of a (Y, X, C) or (C, Y, X) array."""
    array = np.asarray(image)
    if channel is not None:
        if array.ndim != 3:
            raise NucleaizerError(f"channel={channel} picks a channel of a multi-channel image (Y, X, C or C, Y, X), "
                                  f"got shape {array.shape}")
        axis = 0 if array.shape[0] < array.shape[-1] else 2  # the channels: the shorter of the outer axes
        if not 0 <= channel < array.shape[axis]:
            raise NucleaizerError(f"channel={channel}: the image of shape {array.shape} has {array.shape[axis]} channels "
                                  f"(0…{array.shape[axis] - 1})")
        array = np.take(array, channel, axis=axis)
    if array.ndim not in (2, 3) or (array.ndim == 3 and array.shape[2] > 4) or min(array.shape[:2]) < 2:
        hint = "; pick one channel with channel=N" if array.ndim == 3 else ""
        raise NucleaizerError(f"expected a 2-D image (grey H×W or H×W×C with C ≤ 4), got shape {array.shape}{hint}")
    return array
