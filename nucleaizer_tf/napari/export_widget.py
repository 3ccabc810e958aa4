"""The Export widget: a Labels layer (say, after correcting it with napari's label tools) to the files
Fiji, QuPath and spreadsheets open, through the same writers as `nucleaizer-tf predict`."""

from __future__ import annotations

import napari
from magicgui.widgets import CheckBox, ComboBox, Container, FileEdit, FloatSpinBox, Label, PushButton
from napari.utils.notifications import show_error, show_info

from nucleaizer_tf.errors import NucleaizerError, one_line
from nucleaizer_tf.io import safe_stem
from nucleaizer_tf.napari.layers import image_of, labels_of, layer_names
from nucleaizer_tf.pipelines.measure import ExportOptions, export_labels

NO_IMAGE = "(none: shape columns only)"


class ExportWidget(Container):
    """Write a Labels layer as a label TIFF, an ImageJ ROI zip, QuPath GeoJSON and a measurements CSV.

    Files are named after the layer (``labels/<name>.tiff``, ``rois/<name>.zip``,
    ``geojson/<name>.geojson``, ``measurements/<name>.csv`` in the chosen folder); the intensity
    columns come from the chosen image layer's own values. Existing files are replaced only with
    "overwrite" ticked; otherwise the export stops with a notification before writing anything.

    Parameters
    ----------
    viewer : napari.viewer.Viewer
        The viewer whose layers it offers.

    Attributes
    ----------
    labels_layer, image_layer : magicgui.widgets.ComboBox
        The Labels layer to export, and the image layer for intensities (or none).
    out : magicgui.widgets.FileEdit
        The output folder.
    label_tiff, rois, geojson, csv, overwrite : magicgui.widgets.CheckBox
        What to write; whether to replace existing files.
    pixel_size : magicgui.widgets.FloatSpinBox
        µm per pixel for calibrated columns; 0 = pixels only.
    export_button : magicgui.widgets.PushButton
        Writes the files.
    status : magicgui.widgets.Label
        What was written.

    Examples
    --------
    >>> widget = ExportWidget(viewer)        # doctest: +SKIP
    >>> widget.out.value = "exports"         # doctest: +SKIP
    >>> widget.export()                      # doctest: +SKIP
    """

    def __init__(self, viewer: napari.viewer.Viewer):
        self.viewer = viewer
        self.labels_layer = ComboBox(label="labels", choices=lambda _: layer_names(self.viewer, "labels"))
        self.image_layer = ComboBox(label="intensities from",
                              choices=lambda _: [NO_IMAGE] + layer_names(self.viewer, "image"))
        self.out = FileEdit(label="output folder", mode="d")
        self.label_tiff = CheckBox(text="label TIFF", value=True)
        self.rois = CheckBox(text="ImageJ / Fiji ROI set (.zip)", value=True)
        self.geojson = CheckBox(text="QuPath GeoJSON", value=True)
        self.csv = CheckBox(text="measurements CSV", value=True)
        self.pixel_size = FloatSpinBox(label="pixel size (µm, 0 = none)", value=0, min=0, max=1000, step=0.001)
        self.overwrite = CheckBox(text="overwrite existing files", value=False)
        self.export_button = PushButton(text="Export")
        self.status = Label(value="")
        super().__init__(widgets=[self.labels_layer, self.image_layer, self.out, self.label_tiff, self.rois, self.geojson,
                                  self.csv, self.pixel_size, self.overwrite, self.export_button, self.status])
        for event in (viewer.layers.events.inserted, viewer.layers.events.removed):
            event.connect(lambda _=None: self.reset_choices())
        self.export_button.clicked.connect(lambda _=None: self.export())

    def export(self) -> list:
        """Write the chosen files; problems are shown as a one-line notification.

        Returns
        -------
        list of pathlib.Path
            The files written (empty when the export failed).

        Examples
        --------
        >>> widget.export()  # doctest: +SKIP
        [PosixPath('exports/labels/cells nuclei.tiff'), ...]
        """
        try:
            if not self.labels_layer.value:
                raise NucleaizerError("no labels layer to export: segment an image or open a label image first")
            out = self.out.value
            if out is None or str(out) in ("", "."):
                raise NucleaizerError("choose an output folder")
            layer = self.viewer.layers[self.labels_layer.value]
            labels = labels_of(layer)
            image = None if self.image_layer.value in (None, NO_IMAGE) else image_of(self.viewer.layers[self.image_layer.value])
            csv_or_geojson = bool(self.csv.value or self.geojson.value)
            options = ExportOptions(rois=bool(self.rois.value), geojson=bool(self.geojson.value),
                                    csv=bool(self.csv.value),
                                    pixel_size=(self.pixel_size.value or None) if csv_or_geojson else None)
            if not (options.any or self.label_tiff.value):
                raise NucleaizerError("choose at least one kind of file to export")
            written = export_labels(out, safe_stem(layer.name), labels, image, options=options,
                                    label_tiff=bool(self.label_tiff.value), overwrite=bool(self.overwrite.value))
        except (NucleaizerError, OSError, ValueError) as exc:
            show_error(f"Export: {one_line(exc)}")
            self.status.value = "not exported"
            return []
        self.status.value = f"{len(written)} file{'s' if len(written) != 1 else ''} written to {out}"
        show_info(self.status.value)
        return written
