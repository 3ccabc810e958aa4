"""The synthetic generator behind the bundled examples, and the classical baseline scored on them."""

import sys
from pathlib import Path

import numpy as np
import pytest

from nucleaizer_tf.baseline import classical_segment
from nucleaizer_tf.io import read_image, read_labels
from nucleaizer_tf.metrics import score_image
from nucleaizer_tf.synthetic import synthetic_nuclei

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("style", ["fluorescence", "brightfield"])
def test_generator_is_deterministic_and_objects_are_separate(style):
    a = synthetic_nuclei((128, 160), 15, 18.0, style=style, seed=3)
    b = synthetic_nuclei((128, 160), 15, 18.0, style=style, seed=3)
    assert np.array_equal(a.image, b.image) and np.array_equal(a.labels, b.labels)
    assert a.image.shape == (128, 160, 3) and a.image.dtype == np.uint8
    assert a.labels.max() == 15 and np.array_equal(np.unique(a.labels), np.arange(16))
    # no two nuclei touch: each object is one 8-connected component and they never share a border
    from scipy import ndimage

    assert ndimage.label(a.labels > 0, structure=np.ones((3, 3)))[1] == 15
    areas = np.bincount(a.labels.ravel())[1:]
    assert 0.4 * np.pi * 9**2 < np.median(areas) < 1.6 * np.pi * 9**2  # diameter ~18 px


def test_styles_differ_in_polarity():
    fluo = synthetic_nuclei(seed=1, style="fluorescence")
    bf = synthetic_nuclei(seed=1, style="brightfield")
    inside = fluo.labels > 0
    assert fluo.image[inside].mean() > fluo.image[~inside].mean() + 50
    assert bf.image[bf.labels > 0].mean() < bf.image[bf.labels == 0].mean() - 50


@pytest.mark.parametrize("style", ["fluorescence", "brightfield"])
def test_classical_baseline_finds_well_separated_nuclei(style):
    sample = synthetic_nuclei((256, 256), 30, 20.0, style=style, seed=5)
    score = score_image(sample.labels, classical_segment(sample.image))
    assert score.f1 > 0.9 and score.dsb > 0.8


def test_classical_baseline_on_a_blank_image_finds_nothing():
    assert classical_segment(np.full((32, 32, 3), 9, np.uint8)).max() == 0


def test_bundled_examples_are_what_the_script_makes(tmp_path):
    sys.path.insert(0, str(REPO / "scripts"))
    try:
        from make_examples import make_examples
    finally:
        sys.path.pop(0)
    make_examples(tmp_path)
    for sub, reader in (("images", read_image), ("masks", read_labels), ("baseline", read_labels)):
        shipped = sorted((REPO / "examples" / sub).iterdir())
        assert [p.name for p in shipped] == sorted(p.name for p in (tmp_path / sub).iterdir())
        for path in shipped:
            assert np.array_equal(reader(path), reader(tmp_path / sub / path.name)), path
