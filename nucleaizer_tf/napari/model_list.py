"""The models the widgets offer: the shipped default model, model folders and legacy weights the user
picked, and the models `adapt` wrote. Shared by every widget of a session."""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from pathlib import Path

from nucleaizer_tf.errors import NucleaizerError
from nucleaizer_tf.models.load import SHIPPED, segmenter_class

SHIPPED_LABEL = "shipped default model"


class ModelList:
    """An ordered list of (label, source) model choices, with listeners.

    `source` is what `nucleaizer_tf.load_model` takes: ``"default"``, a model folder, its
    `manifest.json` or a legacy Mask R-CNN `.h5`. The constructor takes no arguments; the list starts
    with the shipped default model.

    Attributes
    ----------
    choices : list of tuple
        ``(label, source)`` pairs, in the order shown.

    Examples
    --------
    >>> models = ModelList()
    >>> models.choices
    [('shipped default model', 'default')]
    >>> models.add("adapted/model", label="adapted: stain B")  # doctest: +SKIP
    'adapted/model'
    """

    def __init__(self):
        self.choices: list[tuple[str, str]] = [(SHIPPED_LABEL, "default")]
        self._listeners: list[Callable[[], None]] = []
        self._lock = threading.Lock()

    def add(self, source: str | os.PathLike, label: str | None = None) -> str:
        """Add a model folder, a `manifest.json` or a legacy `.h5` (once; adding it again renames it).

        Only the manifest is read (`nucleaizer_tf.models.load.segmenter_class`); the weights are loaded
        by the `engine` process at the model's first use.

        Parameters
        ----------
        source : str or os.PathLike
            The model, as `load_model` takes it.
        label : str, optional
            Its name in the model menus (default: the path).

        Returns
        -------
        str
            The source as stored (the key of `load` and of the menus).

        Raises
        ------
        NucleaizerError
            When `source` does not exist or is not a segmentation model.

        Examples
        --------
        >>> ModelList().add("no/such/model")
        Traceback (most recent call last):
        ...
        nucleaizer_tf.errors.NucleaizerError: no/such/model: no such model folder or weight file
        """
        source = str(source)
        if source not in SHIPPED:
            if not Path(source).exists():
                raise NucleaizerError(f"{source}: no such model folder or weight file")
            if segmenter_class(source).__name__ == "Segmenter":
                raise NucleaizerError(f"{source}: not a segmentation model (a model folder with a manifest.json, "
                                      "or a Mask R-CNN .h5)")
        label = label or source
        with self._lock:
            self.choices = [c for c in self.choices if c[1] != source] + [(label, source)]
        for listener in list(self._listeners):
            listener()
        return source

    def on_change(self, listener: Callable[[], None]) -> None:
        """Call `listener()` whenever a model is added (the widgets refresh their menus).

        Parameters
        ----------
        listener : callable
            Called with no argument.

        Examples
        --------
        >>> models = ModelList()
        >>> models.on_change(lambda: print("changed"))
        >>> models.add("default")
        changed
        'default'
        """
        self._listeners.append(listener)

    def kind(self, source: str):
        """The segmenter class `source` loads as, without loading it (for the options it takes).

        Parameters
        ----------
        source : str
            A source of `choices`.

        Returns
        -------
        type
            A `nucleaizer_tf.models.base.Segmenter` subclass.

        Examples
        --------
        >>> sorted(ModelList().kind("default").options)  # doctest: +NORMALIZE_WHITESPACE
        ['exclude_edges', 'foreground_threshold', 'min_size', 'nucleus_size', 'precision', 'runtime',
         'save_probabilities', 'seed_threshold', 'tile', 'tta']
        """
        return segmenter_class(source)


#: The list every widget of this Python session shares.
MODELS = ModelList()
