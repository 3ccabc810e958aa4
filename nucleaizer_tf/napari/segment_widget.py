"""The Segment widget: an image layer, a model and its options in; a Labels layer out."""

from __future__ import annotations

import time

import napari
from magicgui.widgets import CheckBox, ComboBox, Container, FileEdit, FloatSpinBox, SpinBox
from napari.utils.notifications import show_error

from nucleaizer_tf.errors import NucleaizerError, one_line
from nucleaizer_tf.measure import nucleus_summary
from nucleaizer_tf.napari.engine import ENGINE, Engine, Outcome
from nucleaizer_tf.napari.layers import image_of, layer_names
from nucleaizer_tf.napari.model_list import MODELS, ModelList
from nucleaizer_tf.napari.panel import ProgressPanel

PRECISIONS = ["float32", "bfloat16", "auto"]


class SegmentWidget(Container):
    """Segment a 2-D image layer with any model of the model list; adds ``<image> nuclei`` Labels.

    The model runs in the plugin's model process (`nucleaizer_tf.napari.engine`; the viewer stays
    responsive) with a progress bar and a Cancel button; the result is the same label image as
    `nucleaizer-tf predict` gives for the same image and options. Problems (a 3-D layer, an unreadable weight file, a bad option) are shown as one-line
    notifications.

    Parameters
    ----------
    viewer : napari.viewer.Viewer
        The viewer whose layers it reads and adds to.
    models : ModelList, optional
        The model list (default: the one every widget shares).
    engine : Engine, optional
        The process the model runs in (default: the one every widget shares).

    Attributes
    ----------
    image, model : magicgui.widgets.ComboBox
        The image layer and the model.
    add_model : magicgui.widgets.FileEdit
        A model folder's `manifest.json` or a legacy `.h5` to add to the model list.
    nucleus_size : magicgui.widgets.FloatSpinBox
        Nucleus diameter in pixels; 0 = estimated per image.
    precision, tta : magicgui widgets
        The default model's compute type and test-time augmentation.
    seed_threshold, foreground_threshold : magicgui.widgets.FloatSpinBox
        The default model's instance-step thresholds (`predict --seed-threshold`, `--foreground-threshold`);
        0 = the model's own.
    min_size, exclude_edges : magicgui widgets
        Drop nuclei of fewer pixels / touching the border (`predict --min-size`, `--exclude-edges`).
    panel : ProgressPanel
        Run / Cancel, progress and status.

    Examples
    --------
    >>> widget = SegmentWidget(viewer)                      # doctest: +SKIP
    >>> viewer.window.add_dock_widget(widget, name="Segment")  # doctest: +SKIP
    >>> widget.panel.run_button.clicked()                  # doctest: +SKIP
    """

    def __init__(self, viewer: napari.viewer.Viewer, models: ModelList = MODELS, engine: Engine = ENGINE):
        self.viewer = viewer
        self.models = models
        self.engine = engine
        self.image = ComboBox(label="image", choices=lambda _: layer_names(self.viewer, "image"))
        self.model = ComboBox(label="model", choices=lambda _: list(self.models.choices))
        self.add_model = FileEdit(label="add model", mode="r", filter="*.h5 *.json")
        self.nucleus_size = FloatSpinBox(label="nucleus size (px, 0 = auto)", value=0, min=0, max=1000, step=1)
        self.precision = ComboBox(label="precision", choices=PRECISIONS, value="float32")
        self.tta = CheckBox(text="test-time augmentation (8x slower)", value=False)
        self.seed_threshold = FloatSpinBox(label="seed threshold (0 = the model's)", value=0, min=0, max=1, step=0.05)
        self.foreground_threshold = FloatSpinBox(label="foreground threshold (0 = the model's)", value=0, min=0,
                                                 max=1, step=0.05)
        self.min_size = SpinBox(label="min size (px)", value=0, min=0, max=10**6)
        self.exclude_edges = CheckBox(text="exclude nuclei touching the border", value=False)
        self.panel = ProgressPanel("Segment")
        super().__init__(widgets=[self.image, self.model, self.add_model, self.nucleus_size, self.precision,
                                  self.tta, self.seed_threshold, self.foreground_threshold, self.min_size,
                                  self.exclude_edges, self.panel])
        for event in (viewer.layers.events.inserted, viewer.layers.events.removed, viewer.layers.events.reordered):
            event.connect(lambda _=None: self.image.reset_choices())
        models.on_change(self.model.reset_choices)
        self.model.changed.connect(lambda _=None: self._enable_options())
        self.add_model.changed.connect(lambda _=None: self._add_model())
        self.panel.run_button.clicked.connect(lambda _=None: self.run())
        self._enable_options()

    # ------------------------------------------------------------------ model choice
    def _add_model(self) -> None:
        path = self.add_model.value
        if path is None or str(path) in ("", "."):
            return
        try:
            source = self.models.add(path)
        except NucleaizerError as exc:
            show_error(one_line(exc))
            return
        self.model.value = source

    def _enable_options(self) -> None:
        taken = self.models.kind(self.model.value).options if self.model.value else {}
        for name in ("nucleus_size", "precision", "tta", "seed_threshold", "foreground_threshold", "min_size",
                     "exclude_edges"):
            getattr(self, name).enabled = name in taken

    def options(self) -> dict:
        """The chosen options that the chosen model takes, as `Segmenter.segment` keywords.

        Returns
        -------
        dict
            Those of ``nucleus_size`` (None for auto), ``precision``, ``tta``, ``seed_threshold`` and
            ``foreground_threshold`` (None: the model's), ``min_size`` and ``exclude_edges`` that the model takes.

        Examples
        --------
        >>> SegmentWidget(viewer).options()  # doctest: +SKIP
        {'nucleus_size': None, 'tta': False, 'precision': 'float32', 'seed_threshold': None, ...}
        """
        taken = self.models.kind(self.model.value).options
        chosen = {"nucleus_size": self.nucleus_size.value or None, "tta": bool(self.tta.value),
                  "precision": self.precision.value, "seed_threshold": self.seed_threshold.value or None,
                  "foreground_threshold": self.foreground_threshold.value or None,
                  "min_size": int(self.min_size.value), "exclude_edges": bool(self.exclude_edges.value)}
        return {name: value for name, value in chosen.items() if name in taken}

    # ------------------------------------------------------------------ running
    def run(self) -> None:
        """Start segmenting the chosen layer (returns at once; the Labels layer comes when it is done).

        Examples
        --------
        >>> widget.run()  # doctest: +SKIP
        """
        try:
            if not self.image.value:
                raise NucleaizerError("no image layer to segment: open an image first")
            layer = self.viewer.layers[self.image.value]
            image = image_of(layer)
        except NucleaizerError as exc:
            show_error(one_line(exc))
            return
        source, options = self.model.value, self.options()
        started = time.perf_counter()
        self.panel.start(lambda job: self.engine.call("segment", job.show, job.cancelled, source=source, image=image,
                                                      options=options),
                         lambda outcome: self._done(outcome, layer, started))

    def cancel(self) -> None:
        """Stop the running segmentation at its next step (the next tile of the network).

        Examples
        --------
        >>> widget.cancel()  # doctest: +SKIP
        """
        self.panel.cancel()

    def _done(self, outcome: Outcome, layer, started: float) -> None:
        if outcome.error is not None:
            show_error(f"Segment {layer.name}: {outcome.error}")
        if not outcome.ok:
            return
        labels = outcome.value
        self.viewer.add_labels(labels, name=f"{layer.name} nuclei", scale=layer.scale, translate=layer.translate)
        summary = nucleus_summary(labels)
        size = (f", median diameter {summary['median_diameter_px']:.1f} px" if summary["nuclei"] else "")
        self.panel.status.value = f"{summary['nuclei']} nuclei{size} ({time.perf_counter() - started:.1f} s)"
