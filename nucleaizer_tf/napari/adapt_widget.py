"""The Adapt widget: nucleAIzer's adaptation loop on image layers or a folder; the adapted model joins
the model list."""

from __future__ import annotations

import time
from pathlib import Path

import napari
from magicgui.widgets import CheckBox, ComboBox, Container, FileEdit, RadioButtons, Select
from napari.utils.notifications import show_error, show_info

from nucleaizer_tf.errors import NucleaizerError, one_line
from nucleaizer_tf.napari.engine import ENGINE, Engine, Outcome
from nucleaizer_tf.napari.layers import image_of, layer_names
from nucleaizer_tf.napari.model_list import MODELS, ModelList
from nucleaizer_tf.napari.panel import ProgressPanel

PRESET_NAMES = ["quick", "standard", "original"]
FROM_LAYERS, FROM_FOLDER = "image layers", "a folder"


class AdaptWidget(Container):
    """Adapt a model to the style of some images without annotation (`nucleaizer-tf adapt`).

    The images are the chosen image layers (written to ``OUT/inputs``) or a folder. The loop runs in
    the plugin's model process with a progress bar per stage and a Cancel button; a rerun with the same
    output folder continues where it stopped. When it is done, ``OUT/model`` is added to the model list
    (Segment can use it at once) and the report's path is shown.

    Parameters
    ----------
    viewer : napari.viewer.Viewer
        The viewer whose image layers it offers.
    models : ModelList, optional
        The model list (default: the one every widget shares).
    engine : Engine, optional
        The process the loop runs in (default: the one every widget shares).

    Attributes
    ----------
    source : magicgui.widgets.RadioButtons
        Image layers or a folder.
    layers : magicgui.widgets.Select
        The image layers to adapt to.
    folder, out : magicgui.widgets.FileEdit
        The image folder (when adapting to a folder) and the output folder.
    preset, model : magicgui.widgets.ComboBox
        The preset (`nucleaizer_tf.pipelines.adapt.PRESETS`) and the starting model.
    single_experiment : magicgui.widgets.CheckBox
        One style for all images (no clustering).
    panel : ProgressPanel
        Run / Cancel, progress and status.

    Examples
    --------
    >>> widget = AdaptWidget(viewer)                         # doctest: +SKIP
    >>> widget.out.value = "adapted"                         # doctest: +SKIP
    >>> widget.run()                                         # doctest: +SKIP
    """

    def __init__(self, viewer: napari.viewer.Viewer, models: ModelList = MODELS, engine: Engine = ENGINE):
        self.viewer = viewer
        self.models = models
        self.engine = engine
        self.source = RadioButtons(label="images from", choices=[FROM_LAYERS, FROM_FOLDER], value=FROM_LAYERS)
        self.layers = Select(label="image layers", choices=lambda _: layer_names(self.viewer, "image"))
        self.folder = FileEdit(label="image folder", mode="d", visible=False)
        self.out = FileEdit(label="output folder", mode="d")
        self.preset = ComboBox(label="preset", choices=PRESET_NAMES, value="quick")
        self.model = ComboBox(label="starting model", choices=lambda _: list(self.models.choices))
        self.single_experiment = CheckBox(text="one style for all images", value=False)
        self.panel = ProgressPanel("Adapt", cancelled_text="cancelled (Adapt again to continue)")
        super().__init__(widgets=[self.source, self.layers, self.folder, self.out, self.preset, self.model,
                                  self.single_experiment, self.panel])
        for event in (viewer.layers.events.inserted, viewer.layers.events.removed):
            event.connect(lambda _=None: self.layers.reset_choices())
        models.on_change(self.model.reset_choices)
        self.source.changed.connect(lambda _=None: self._show_source())
        self.panel.run_button.clicked.connect(lambda _=None: self.run())

    def _show_source(self) -> None:
        layers = self.source.value == FROM_LAYERS
        self.layers.visible, self.folder.visible = layers, not layers

    def arguments(self) -> dict:
        """What the run gets: ``images`` (name -> array) or ``folder``, ``out_dir`` and ``settings``.

        Returns
        -------
        dict
            The arguments of the engine's ``"adapt"`` task.

        Raises
        ------
        NucleaizerError
            With no output folder, no chosen image layer, a 3-D layer, or a missing image folder.

        Examples
        --------
        >>> widget.arguments()["settings"]  # doctest: +SKIP
        {'preset': 'quick', 'model': 'default', 'single_experiment': False}
        """
        out = self.out.value
        if out is None or str(out) in ("", "."):
            raise NucleaizerError("choose an output folder for the adapted model")
        settings = {"preset": self.preset.value, "model": self.model.value,
                    "single_experiment": bool(self.single_experiment.value)}
        if self.source.value == FROM_FOLDER:
            folder = Path(self.folder.value or "")
            if str(folder) in ("", "."):
                raise NucleaizerError("choose the image folder to adapt to")
            if not folder.is_dir():
                raise NucleaizerError(f"{folder}: no such image folder")
            return {"folder": str(folder), "out_dir": str(out), "settings": settings}
        if not self.layers.value:
            raise NucleaizerError("choose the image layers to adapt to")
        images = {name: image_of(self.viewer.layers[name]) for name in self.layers.value}
        return {"images": images, "out_dir": str(out), "settings": settings}

    def run(self) -> None:
        """Start the adaptation (returns at once; the model list grows when it is done).

        Examples
        --------
        >>> widget.run()  # doctest: +SKIP
        """
        try:
            arguments = self.arguments()
        except NucleaizerError as exc:
            show_error(one_line(exc))
            return
        started = time.perf_counter()
        self.panel.start(lambda job: self.engine.call("adapt", job.show, job.cancelled, **arguments),
                         lambda outcome: self._done(outcome, Path(arguments["out_dir"]), started))

    def cancel(self) -> None:
        """Stop the adaptation at its next step; a rerun continues from the last finished stage.

        Examples
        --------
        >>> widget.cancel()  # doctest: +SKIP
        """
        self.panel.cancel()

    def _done(self, outcome: Outcome, out: Path, started: float) -> None:
        if outcome.error is not None:
            show_error(f"Adapt: {outcome.error}")
        if not outcome.ok:
            return
        result = outcome.value
        try:
            source = self.models.add(result["adapted_model"], label=f"adapted: {out.name}")
        except NucleaizerError as exc:
            show_error(f"Adapt: {one_line(exc)}")
            return
        self.panel.status.value = f"adapted in {time.perf_counter() - started:.0f} s; report: {result['report']}"
        show_info(f"adapted model {source} added to the model list; report: {result['report']}")
