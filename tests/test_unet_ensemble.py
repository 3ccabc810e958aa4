"""U-Net ensemble (spec 4.4–4.5): 16-bit quantisation, MATLAB-rounded mean, folder format, inference."""

import json

import numpy as np
import pytest

pytest.importorskip("tensorflow")
# numpy 2 deprecation raised inside Keras save_weights, not in this package
pytestmark = pytest.mark.filterwarnings("ignore:__array__ implementation:DeprecationWarning")

from nucleaizer_tf.errors import NucleaizerError  # noqa: E402
from nucleaizer_tf.unet.ensemble import (  # noqa: E402
    MANIFEST,
    UNetEnsemble,
    _inference_fn,
    ensemble_mean,
    make_seeded_ensemble,
    member_names,
    predict_probability,
    quantize16,
)

TINY = dict(base_filters=4, depth=4)


def _p_at(k_half: float) -> np.float32:
    """A float32 p whose float32 product with 65535 is exactly k_half (checked, not assumed)."""
    p = np.float32(k_half / 65535)
    assert np.multiply(p, 65535, dtype=np.float32) == k_half
    return p


# ---------------------------------------------------------------------------------------------- numbers

def test_quantize16_rounds_like_img_as_uint():
    p = np.array([0.0, 1.0, _p_at(2.5), _p_at(3.5), _p_at(32766.5), 0.5, 1e-6], np.float32)
    # float32 product, halves to even: 2.5 → 2, 3.5 → 4, 32766.5 → 32766, 32767.5 → 32768; 0.065535 → 0
    np.testing.assert_array_equal(quantize16(p), [0, 65535, 2, 4, 32766, 32768, 0])
    assert quantize16(p).dtype == np.uint16


def test_quantize16_matches_scikit_image():
    util = pytest.importorskip("skimage.util")
    rng = np.random.default_rng(0)
    p = np.concatenate([rng.random(5000, dtype=np.float32), [_p_at(k + 0.5) for k in (2, 3, 4, 10, 32766)]])
    p = p.astype(np.float32).reshape(5, -1)
    np.testing.assert_array_equal(quantize16(p), util.img_as_uint(p))


def test_quantize16_clips_and_refuses_nan():
    np.testing.assert_array_equal(quantize16(np.array([-0.2, 1.3], np.float32)), [0, 65535])
    with pytest.raises(ValueError, match="NaN"):
        quantize16(np.array([np.nan], np.float32))
    with pytest.raises(ValueError):
        quantize16(np.array([1], np.uint8))


def test_ensemble_mean_rounds_half_away_from_zero():
    u16 = lambda *v: np.array(v, np.uint16)  # noqa: E731
    # two members: exact halves 1.5 → 2, 2.5 → 3 (numpy: 2), 32767.5 → 32768, 65534.5 → 65535
    out = ensemble_mean([u16(1, 2, 0, 65534, 7), u16(2, 3, 65535, 65535, 7)])
    np.testing.assert_array_equal(out, [2, 3, 32768, 65535, 7])
    # four members: 2.5 → 3, 1.25 → 1, 1.75 → 2
    np.testing.assert_array_equal(ensemble_mean([u16(1, 1, 1), u16(2, 1, 2), u16(3, 1, 2), u16(4, 2, 2)]),
                                  [3, 1, 2])
    assert out.dtype == np.uint16


def test_ensemble_of_seven_as_in_spec():
    # E = round((1/7)·Σ round(65535·p_k)): 4/7 = 0.571 → 1, 3/7 = 0.43 → 0, 458741/7 = 65534.43 → 65534
    maps = [np.array([0, 0, 65535, 65535], np.uint16) for _ in range(6)]
    maps.append(np.array([4, 3, 65531, 65535], np.uint16))
    np.testing.assert_array_equal(ensemble_mean(maps), [1, 0, 65534, 65535])
    # from probabilities: seven maps of p = 0.5 → 32768 each (32767.5 to even) → 32768
    p = [np.full((2, 2), 0.5, np.float32)] * 7
    np.testing.assert_array_equal(ensemble_mean([quantize16(x) for x in p]), 32768)


def test_ensemble_mean_checks_inputs():
    with pytest.raises(ValueError):
        ensemble_mean([])
    with pytest.raises(ValueError, match="shape"):
        ensemble_mean([np.zeros((2, 2), np.uint16), np.zeros((2, 3), np.uint16)])
    with pytest.raises(ValueError, match="uint16"):
        ensemble_mean([np.zeros((2, 2), np.float32)])


def test_member_names_follow_the_original():
    assert member_names((0, 0, 0.5, 0.5, 0.5, 1, 2)) == [
        "UNet_sigma0.0_1", "UNet_sigma0.0_2", "UNet_sigma0.5_1", "UNet_sigma0.5_2", "UNet_sigma0.5_3",
        "UNet_sigma1.0_1", "UNet_sigma2.0_1"]


# ---------------------------------------------------------------------------------------------- folder format

@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    folder = tmp_path_factory.mktemp("ensemble")
    return folder, make_seeded_ensemble(folder, sigmas=(0.0, 1.0), seed=3, **TINY)


@pytest.fixture(scope="module")
def image():
    return np.random.default_rng(5).integers(0, 256, (37, 53, 3), dtype=np.uint8)


def test_save_load_round_trip_gives_identical_predictions(tiny, image):
    folder, ensemble = tiny
    loaded = UNetEnsemble.load(folder)
    assert [m.name for m in loaded.members] == ["UNet_sigma0.0_1", "UNet_sigma1.0_1"]
    assert loaded.sigmas == (0.0, 1.0)
    e1, e2 = ensemble.predict(image), loaded.predict(image)
    assert e1.shape == (37, 53) and e1.dtype == np.uint16
    np.testing.assert_array_equal(e1, e2)
    np.testing.assert_array_equal(e1, ensemble_mean(ensemble.predict_maps(image)))


def test_manifest_records_full_architecture(tiny):
    folder, _ = tiny
    manifest = json.loads((folder / MANIFEST).read_text())
    assert manifest["format_version"] == 1
    member = manifest["members"][1]
    assert member["sigma"] == 1.0 and member["weights"] == "UNet_sigma1.0_1.weights.h5"
    assert member["architecture"] == {"in_channels": 3, "out_channels": 1, "base_filters": 4, "depth": 4,
                                      "output_activation": "sigmoid"}
    assert not [p for p in folder.iterdir() if p.name.startswith(".")]  # no temporary files left


def test_seeded_members_are_reproducible_and_distinct(tiny, tmp_path, image):
    _, ensemble = tiny
    again = make_seeded_ensemble(tmp_path, sigmas=(0.0, 1.0), seed=3, **TINY)
    np.testing.assert_array_equal(again.predict(image), ensemble.predict(image))
    a, b = ensemble.predict_maps(image)
    assert not np.array_equal(a, b)


def test_probability_map_odd_size_range_and_no_retracing(tiny, image):
    _, ensemble = tiny
    model = ensemble.models[0]
    p = predict_probability(model, image)
    assert p.shape == (37, 53) and p.dtype == np.float32
    assert 0.0 <= p.min() and p.max() <= 1.0
    predict_probability(model, np.zeros((64, 48, 3), np.uint8))
    assert _inference_fn(model).experimental_get_tracing_count() == 1


def test_input_is_scaled_to_unit_range_without_normalisation(tiny, image):
    _, ensemble = tiny
    model = ensemble.models[0]
    direct = np.asarray(model(image[None].astype(np.float32) / 255.0, training=False))[0, :, :, 0]
    np.testing.assert_allclose(predict_probability(model, image), direct, atol=1e-6)


def test_grey_and_rgba_inputs(tiny, image):
    _, ensemble = tiny
    grey = image[:, :, 0]
    np.testing.assert_array_equal(ensemble.predict(grey), ensemble.predict(np.dstack([grey] * 3)))
    rgba = np.dstack([image, np.full(image.shape[:2], 7, np.uint8)])
    np.testing.assert_array_equal(ensemble.predict(rgba), ensemble.predict(image))
    with pytest.raises(ValueError, match="8-bit"):
        ensemble.predict(image.astype(np.float32))


def test_load_errors_name_the_problem(tiny, tmp_path):
    folder, _ = tiny
    with pytest.raises(NucleaizerError, match="folder not found"):
        UNetEnsemble.load(tmp_path / "nope")
    with pytest.raises(NucleaizerError, match="manifest.json: missing"):
        UNetEnsemble.load(tmp_path)

    broken = tmp_path / "broken"
    broken.mkdir()
    manifest = json.loads((folder / MANIFEST).read_text())
    (broken / MANIFEST).write_text(json.dumps(manifest))
    with pytest.raises(NucleaizerError, match=r"UNet_sigma0.0_1.weights.h5: weight file of ensemble member"):
        UNetEnsemble.load(broken)

    for member in manifest["members"]:
        (broken / member["weights"]).write_bytes((folder / member["weights"]).read_bytes())
    manifest["members"][0]["architecture"]["base_filters"] = 8
    (broken / MANIFEST).write_text(json.dumps(manifest))
    with pytest.raises(NucleaizerError, match="cannot load the weights of member 'UNet_sigma0.0_1'"):
        UNetEnsemble.load(broken)

    (broken / MANIFEST).write_text(json.dumps({**manifest, "format_version": 99}))
    with pytest.raises(NucleaizerError, match="format version 99"):
        UNetEnsemble.load(broken)
    (broken / MANIFEST).write_text("{not json")
    with pytest.raises(NucleaizerError, match="not a valid JSON ensemble manifest"):
        UNetEnsemble.load(broken)
    (broken / MANIFEST).write_text(json.dumps({**manifest, "members": [{"name": "x"}]}))
    with pytest.raises(NucleaizerError, match="member 0 is invalid"):
        UNetEnsemble.load(broken)
