"""Regenerate the bundled example data in `examples/` (synthetic, made by this project, CC0).

examples/images/*.png        8-bit RGB synthetic nucleus images (fluorescence and bright-field styles)
examples/masks/*.tiff        their exact ground-truth label images (uint16)
examples/baseline/*.tiff     the classical baseline's labels (smoothing, Otsu, watershed)

Run: python scripts/make_examples.py [OUT_DIR]   (default: examples/ next to this script's folder)
"""

from __future__ import annotations

import sys
from pathlib import Path

from nucleaizer_tf.baseline import classical_segment
from nucleaizer_tf.io import write_labels, write_rgb
from nucleaizer_tf.synthetic import synthetic_nuclei

# name: (shape, nuclei, diameter, style, seed)
EXAMPLES = {
    "fluo_sparse": ((256, 256), 25, 22.0, "fluorescence", 11),
    "fluo_dense": ((256, 320), 60, 16.0, "fluorescence", 12),
    "brightfield": ((256, 256), 30, 24.0, "brightfield", 13),
}


def make_examples(out: Path) -> None:
    for name, (shape, n, diameter, style, seed) in EXAMPLES.items():
        sample = synthetic_nuclei(shape, n, diameter, style=style, seed=seed)
        write_rgb(out / "images" / f"{name}.png", sample.image)
        write_labels(out / "masks" / f"{name}.tiff", sample.labels, compress=True)
        write_labels(out / "baseline" / f"{name}.tiff", classical_segment(sample.image), compress=True)


if __name__ == "__main__":
    make_examples(Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).resolve().parents[1] / "examples")
