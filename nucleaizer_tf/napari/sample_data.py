"""The bundled example images (synthetic, CC0) as napari sample data: File > Open Sample > nucleaizer-tf."""

from __future__ import annotations

import functools

from nucleaizer_tf.examples import IMAGES
from nucleaizer_tf.io import read_image


def example_layer(stem: str) -> list[tuple]:
    """One bundled example as a napari image layer (read as `nucleaizer-tf predict` reads it).

    Parameters
    ----------
    stem : str
        ``"fluo_dense"``, ``"fluo_sparse"`` or ``"brightfield"``.

    Returns
    -------
    list of tuple
        ``[(image, {"name": stem}, "image")]``, napari's layer-data form.

    Examples
    --------
    >>> example_layer("fluo_sparse")[0][0].shape
    (256, 256, 3)
    """
    return [(read_image(IMAGES / f"{stem}.png"), {"name": stem}, "image")]


#: the sample-data commands of the manifest (napari.yaml), one per bundled example
fluo_dense = functools.partial(example_layer, "fluo_dense")
fluo_sparse = functools.partial(example_layer, "fluo_sparse")
brightfield = functools.partial(example_layer, "brightfield")
