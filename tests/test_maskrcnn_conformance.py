"""The Keras 3 Mask R-CNN against matterport 53afbae's own outputs (../shared/oracle, check.md 4-10, 12-15).

One model object, loaded once with the seed-1 fixture weights, runs all three oracle cases
(192, 1024 and 384 pixels): the model is built for every size at once. Each case runs once; the
stage-wise checks feed the oracle's own inputs into the single stages.
"""

from __future__ import annotations

import numpy as np
import pytest

from nucleaizer_tf.maskrcnn import OUTPUT_NAMES, MaskRCNN, MaskRCNNConfig, detection_stage, proposal_stage
from nucleaizer_tf.maskrcnn.anchors import pyramid_anchors, pyramid_anchors_graph
from nucleaizer_tf.maskrcnn.legacy_h5 import load_legacy_weights

CASES = {"S1_04acab76_192": 192, "S2_0e4c2e27_1024": 1024, "S3_synthetic_384": 384}
# The oracle's run settings (outputs/config.json: segmentation_params.json of nucleAIzer).
CONFIG = MaskRCNNConfig().replace(DETECTION_MIN_CONFIDENCE=0.6, DETECTION_NMS_THRESHOLD=0.35,
                                  DETECTION_MAX_INSTANCES=800)


@pytest.fixture(scope="session")
def fixture_weights(legacy_fixture):
    return legacy_fixture.plain, legacy_fixture.gen.weight_array


@pytest.fixture(scope="module")
def model(fixture_weights):
    path, _ = fixture_weights
    net = MaskRCNN(CONFIG)
    report = load_legacy_weights(net.keras_model, path)
    assert report.ok and len(report.loaded) == 233 and report.n_arrays == 690
    return net


@pytest.fixture(scope="module", params=list(CASES))
def case(request, oracle_dir, model):
    """The oracle arrays, the free-running outputs and the stage-wise outputs of one case."""
    name, size = request.param, CASES[request.param]
    ref = dict(np.load(oracle_dir / "outputs" / f"{name}.npz"))
    molded = (ref["resized_image"].astype(np.float64) - np.asarray(CONFIG.MEAN_PIXEL)).astype(np.float32)
    out = model.run_molded(molded[np.newaxis], ref["image_meta"], OUTPUT_NAMES)
    pyramid = [out[k] for k in ("P2", "P3", "P4", "P5")]
    n_ref = int(ref["num_detections"])
    stage = {
        "classifier": model.classifier_stage(pyramid, ref["rpn_rois"]),
        "mask": model.mask_stage(pyramid, ref["detections"][:, :n_ref, :4]),
        "proposals": proposal_stage(ref["rpn_class"], ref["rpn_bbox"], ref["anchors"], CONFIG.with_image_size(size)),
        "detections": detection_stage(ref["rpn_rois"], ref["mrcnn_class"], ref["mrcnn_bbox"], ref["image_meta"],
                                      CONFIG.with_image_size(size)),
    }
    return {"name": name, "size": size, "ref": ref, "out": out, "stage": stage}


def greedy_match(ref_rows: np.ndarray, cand_rows: np.ndarray, scale: np.ndarray) -> list[tuple[int, int]]:
    """check.md's one-to-one matching: L-inf distance (per column divided by `scale`) <= 1.

    Oracle rows in order; the same index is preferred when it qualifies, else the nearest free row.
    """
    free = np.ones(len(cand_rows), bool)
    pairs = []
    for i, row in enumerate(ref_rows):
        dist = np.max(np.abs(cand_rows - row) / scale, axis=1)
        ok = free & (dist <= 1.0)
        if not ok.any():
            continue
        j = i if i < len(cand_rows) and ok[i] else int(np.argmin(np.where(ok, dist, np.inf)))
        free[j] = False
        pairs.append((i, j))
    return pairs


def valid_rows(detections: np.ndarray) -> np.ndarray:
    """Rows before the first class-0 row (matterport's N)."""
    zero = np.flatnonzero(detections[:, 4] == 0)
    return detections[: zero[0] if len(zero) else len(detections)]


DETECTION_SCALE = np.array([1, 1, 1, 1, 1e-3, 1e-4])


def test_same_model_and_graph_for_every_size(model, case):
    """All cases went through one traced graph (no per-size rebuild or retrace)."""
    assert model._function(OUTPUT_NAMES).experimental_get_tracing_count() == 1


def test_check4_anchors(case):
    ref = case["ref"]["anchors"]
    np.testing.assert_array_equal(pyramid_anchors(case["size"], CONFIG), ref)
    feature_maps = [case["out"][f"P{i}"] for i in range(2, 7)]
    np.testing.assert_array_equal(pyramid_anchors_graph(feature_maps, CONFIG).numpy(), ref)


@pytest.mark.parametrize("key", ["C2", "C3", "C4", "C5", "P2", "P3", "P4", "P5", "P6"])
def test_check5_backbone_fpn(case, key):
    ref, x = case["ref"], case["out"][key]
    assert x.shape == tuple(ref[f"{key}_shape"])
    s, cs = ref[f"{key}_stride"]
    sub = x[0, ::s, ::s, ::cs]
    assert np.abs(sub - ref[f"{key}_sub"]).max() <= 1e-4 * np.abs(ref[f"{key}_sub"]).max()
    x64 = x.astype(np.float64)
    stats = np.array([x64.sum(), np.abs(x64).sum(), (x64 ** 2).sum(), x64.min(), x64.max()])
    want = ref[f"{key}_stats"]
    assert abs(stats[0] - want[0]) <= 1e-4 * want[1]
    np.testing.assert_allclose(stats[1:], want[1:], rtol=1e-4, atol=0)


@pytest.mark.parametrize("key,tol", [("rpn_class", 1e-4), ("rpn_class_logits", 2e-4), ("rpn_bbox", 2e-4)])
def test_check6_rpn(case, key, tol):
    assert case["out"][key].shape == case["ref"][key].shape
    assert np.abs(case["out"][key] - case["ref"][key]).max() <= tol


def test_check7_proposal_stage(case):
    got, want = case["stage"]["proposals"], case["ref"]["rpn_rois"]
    assert got.shape == want.shape
    assert (np.abs(got - want).max(axis=2) <= 1e-6).mean() >= 0.995


@pytest.mark.parametrize("key", ["mrcnn_class", "mrcnn_class_logits", "mrcnn_bbox"])
def test_check8_classifier_stage(case, key):
    got, want = case["stage"]["classifier"][key], case["ref"][key]
    assert got.shape == want.shape
    assert np.abs(got - want).max() <= 1e-4


def test_check9_detection_stage(case):
    got, want = case["stage"]["detections"], case["ref"]["detections"]
    assert got.shape == want.shape
    np.testing.assert_array_equal(got[..., :5], want[..., :5])
    assert np.abs(got[..., 5] - want[..., 5]).max() <= 1e-6


def test_check10_mask_stage(case):
    got, want = case["stage"]["mask"][0], case["ref"]["mrcnn_mask_valid"]
    assert got.shape == want.shape
    assert np.abs(got - want).max() <= 2e-4


def _proposal_pairs(case):
    return greedy_match(case["ref"]["rpn_rois"][0], case["out"]["rpn_rois"][0], np.full(4, 1e-5))


def test_check12_13_free_running_proposals_and_heads(case):
    pairs = _proposal_pairs(case)
    assert len(pairs) >= 0.9 * case["ref"]["rpn_rois"].shape[1]
    ref_ix, cand_ix = np.array(pairs).T
    for key, tol in [("mrcnn_class", 1e-4), ("mrcnn_class_logits", 2e-4), ("mrcnn_bbox", 2e-4)]:
        diff = np.abs(case["out"][key][0, cand_ix] - case["ref"][key][0, ref_ix])
        within = diff.reshape(len(pairs), -1).max(axis=1) <= tol
        assert within.mean() >= 0.9, key


def test_check14_15_free_running_detections_and_masks(case):
    ref_det = valid_rows(case["ref"]["detections"][0])
    cand_det = valid_rows(case["out"]["detections"][0])
    assert len(ref_det) == int(case["ref"]["num_detections"])
    pairs = greedy_match(ref_det, cand_det, DETECTION_SCALE)
    assert len(pairs) >= 0.9 * max(len(ref_det), len(cand_det))
    same_box = [(i, j) for i, j in pairs if np.array_equal(ref_det[i, :4], cand_det[j, :4])]
    masks = case["out"]["mrcnn_mask"][0]
    assert not masks[len(cand_det):].any()
    within = [np.abs(masks[j] - case["ref"]["mrcnn_mask_valid"][i]).max() <= 2e-4 for i, j in same_box]
    assert np.mean(within) >= 0.9
