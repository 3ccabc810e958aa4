"""From napari layers to the arrays the library takes, with one-line errors for layers it cannot use."""

from __future__ import annotations

import numpy as np

from nucleaizer_tf.errors import NucleaizerError


def layer_names(viewer, kind: str) -> list[str]:
    """Names of the viewer's layers of one kind, in the layer list's order.

    Parameters
    ----------
    viewer : napari.viewer.Viewer
        The viewer.
    kind : {"image", "labels"}
        The layer type.

    Returns
    -------
    list of str
        Layer names.

    Examples
    --------
    >>> layer_names(viewer, "image")  # doctest: +SKIP
    ['fluo_dense']
    """
    return [layer.name for layer in viewer.layers if layer._type_string == kind]


def image_of(layer) -> np.ndarray:
    """The 2-D image (grey H×W, or RGB(A) H×W×C) of an image layer, as a NumPy array.

    Multiscale layers give their full-resolution level; dask- or zarr-backed data are read into memory.

    Parameters
    ----------
    layer : napari.layers.Image
        The layer.

    Returns
    -------
    numpy.ndarray
        The pixels in their own dtype.

    Raises
    ------
    NucleaizerError
        For a stack (3-D or more, not RGB), naming the layer and its shape.

    Examples
    --------
    >>> image_of(viewer.layers["fluo_dense"]).shape  # doctest: +SKIP
    (256, 256)
    """
    data = layer.data[0] if getattr(layer, "multiscale", False) else layer.data
    spatial = data.ndim - (1 if layer.rgb else 0)
    if spatial != 2:
        raise NucleaizerError(f"layer {layer.name!r}: a {spatial}-D layer of shape {tuple(data.shape)}; "
                              "choose a 2-D image (grey or RGB) or split the stack into 2-D layers")
    return np.asarray(data)


def labels_of(layer) -> np.ndarray:
    """The 2-D label image of a Labels layer, as a NumPy array.

    Parameters
    ----------
    layer : napari.layers.Labels
        The layer.

    Returns
    -------
    numpy.ndarray
        The labels (0 = background).

    Raises
    ------
    NucleaizerError
        For a layer that is not 2-D, naming it and its shape.

    Examples
    --------
    >>> labels_of(viewer.layers["fluo_dense nuclei"]).max()  # doctest: +SKIP
    87
    """
    data = layer.data[0] if getattr(layer, "multiscale", False) else layer.data
    if data.ndim != 2:
        raise NucleaizerError(f"layer {layer.name!r}: a {data.ndim}-D labels layer of shape {tuple(data.shape)}; "
                              "export takes a 2-D labels layer")
    return np.asarray(data)
