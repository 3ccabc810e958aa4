"""The bundled examples: synthetic images made by this project (`scripts/make_examples.py`, CC0) and
their masks. Installed as `nucleaizer_tf.examples` (the napari plugin's sample data).

Examples
--------
>>> sorted(p.name for p in IMAGES.glob("*.png"))
['brightfield.png', 'fluo_dense.png', 'fluo_sparse.png']
"""

from pathlib import Path

#: the folder of the example images (PNG) and of their masks (TIFF, same stems)
IMAGES = Path(__file__).parent / "images"
MASKS = Path(__file__).parent / "masks"
