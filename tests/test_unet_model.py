"""U-Net architecture (spec 4.2): parameter counts, odd sizes, concatenation order, slim variants."""

import numpy as np
import pytest

keras = pytest.importorskip("keras")

from nucleaizer_tf.unet import BN_EPSILON, BN_MOMENTUM, build_unet  # noqa: E402


def _count(weights):
    return sum(int(np.prod(w.shape)) for w in weights)


@pytest.fixture(scope="module")
def full():
    return build_unet()


def test_parameter_counts_match_original(full):
    assert _count(full.trainable_weights) == 31_043_521
    assert _count(full.non_trainable_weights) == 11_776


def test_batchnorm_settings_are_pytorch_defaults(full):
    bn = full.get_layer("first_bn1")
    assert bn.epsilon == BN_EPSILON == 1e-5
    assert bn.momentum == BN_MOMENTUM == 0.9


@pytest.mark.parametrize("shape", [(37, 53), (256, 256)])
def test_output_shape_equals_input_shape(full, shape):
    out = full(np.random.default_rng(0).random((1, *shape, 3), dtype=np.float32), training=False)
    assert tuple(out.shape) == (1, *shape, 1)
    out = np.asarray(out)
    assert np.all((out >= 0) & (out <= 1))


def test_block_structure_and_names(full):
    widths = {"first": 64, "encoder_1": 128, "encoder_2": 256, "encoder_3": 512, "center": 1024,
              "decoder_3": 512, "decoder_2": 256, "decoder_1": 128, "last": 64}
    for block, width in widths.items():
        assert full.get_layer(f"{block}_conv2").filters == width
    assert full.get_layer("center_up").filters == 512
    assert full.get_layer("decoder_1_up").filters == 64
    assert full.get_layer("last_conv_out").kernel.shape == (1, 1, 64, 1)
    # decoder convs see the concatenation: 1024, 512, 256, 128 input channels
    for block, cin in {"decoder_3": 1024, "decoder_2": 512, "decoder_1": 256, "last": 128}.items():
        assert full.get_layer(f"{block}_conv1").kernel.shape[2] == cin


def test_concatenation_is_upsampled_first_then_skip(full):
    for block, skip in [("decoder_3", "encoder_3_relu2"), ("decoder_2", "encoder_2_relu2"),
                        ("decoder_1", "encoder_1_relu2"), ("last", "first_relu2")]:
        first, second = full.get_layer(f"{block}_concat").input
        assert first is full.get_layer(f"{block}_pad").output
        assert second is full.get_layer(skip).output


def test_concatenation_order_numerically():
    """On a tiny net, the concat output's first half equals the padded upsampled tensor, second the skip."""
    model = build_unet(base_filters=2, depth=2)
    probe = keras.Model(model.input, [model.get_layer("last_concat").output, model.get_layer("last_pad").output,
                                      model.get_layer("first_relu2").output])
    x = np.random.default_rng(1).random((1, 9, 11, 3), dtype=np.float32)
    cat, up, skip = (np.asarray(t) for t in probe(x, training=False))
    np.testing.assert_array_equal(cat[..., :2], up)
    np.testing.assert_array_equal(cat[..., 2:], skip)


def test_odd_size_pads_bottom_right_with_zeros():
    """9 → pool 4 → up 8: the missing last row/column of the upsampled tensor is zero."""
    model = build_unet(base_filters=2, depth=1)
    probe = keras.Model(model.input, model.get_layer("last_pad").output)
    up = np.asarray(probe(np.random.default_rng(2).random((1, 9, 7, 3), dtype=np.float32), training=False))
    assert up.shape == (1, 9, 7, 2)
    assert not up[:, -1].any() and not up[:, :, -1].any()


def test_slim_variant_softmax_three_outputs():
    model = build_unet(base_filters=8, depth=3, out_channels=3, output_activation="softmax", name="slim")
    out = np.asarray(model(np.zeros((2, 19, 21, 3), np.float32), training=False))
    assert out.shape == (2, 19, 21, 3)
    np.testing.assert_allclose(out.sum(-1), 1.0, rtol=1e-5)
    assert model.name == "slim"


def test_linear_and_single_channel_input():
    model = build_unet(in_channels=1, out_channels=3, base_filters=4, depth=2, output_activation="linear")
    assert tuple(model(np.ones((1, 16, 16, 1), np.float32)).shape) == (1, 16, 16, 3)


def test_rejects_unknown_activation():
    with pytest.raises(ValueError, match="output_activation"):
        build_unet(output_activation="tanh")
