"""Stem, DownSample, MixFFN and Block: contract, numerics, argument checks."""

import keras
import numpy as np
import pytest

from keras_wavevit.layers import Block, ClassBlock, DepthwiseConvGELU, DownSample, MixFFN, Stem
from tests.layer_checks import (  # noqa: F401 (fixture)
    created_weights,
    dense_reference,
    gelu_derivative_reference,
    gelu_reference,
    layer_contract_test,
    raises_before_weights,
    randomize_weights,
)

LAYER_CASES = [
    (MixFFN, dict(dim=8, hidden_dim=32), (2, 4, 6, 8), (2, 4, 6, 8)),
    (Block, dict(dim=16, num_heads=2, mlp_ratio=2, sr_ratio=2), (2, 8, 8, 16), (2, 8, 8, 16)),
    (
        Block,
        dict(dim=16, num_heads=2, mlp_ratio=2, attention_type="standard", drop_path_rate=0.1),
        (2, 4, 2, 16),
        (2, 4, 2, 16),
    ),
    (Stem, dict(hidden_dim=8, dim=16), (2, 16, 24, 3), (2, 4, 6, 16)),
    (Stem, dict(hidden_dim=8, dim=16, stride=2), (2, 16, 8, 3), (2, 8, 4, 16)),
    (Stem, dict(hidden_dim=8, dim=16, stride=2, first_stride=2), (2, 16, 8, 3), (2, 8, 4, 16)),
    (DownSample, dict(dim=32), (2, 8, 6, 16), (2, 4, 3, 32)),
    (DepthwiseConvGELU, dict(kernel_size=3, padding="same"), (2, 4, 6, 8), (2, 4, 6, 8)),
]


test_layer_contract = layer_contract_test(LAYER_CASES)


def test_mix_ffn_uses_exact_gelu():
    layer = MixFFN(dim=4, hidden_dim=8)
    x = np.random.default_rng(3).normal(size=(1, 3, 3, 4)).astype("float32")
    layer(x)
    randomize_weights(layer, 13)
    out = np.asarray(layer(x))
    hidden = dense_reference(layer.fc1, x.astype(np.float64))
    kernel, bias = (np.asarray(w, np.float64) for w in layer.dwconv.get_weights())
    padded = np.pad(hidden, ((0, 0), (1, 1), (1, 1), (0, 0)))
    conv = np.zeros_like(hidden)
    for i in range(3):
        for j in range(3):
            conv += padded[:, i : i + 3, j : j + 3, :] * kernel[i, j, :, 0]
    expected = dense_reference(layer.fc2, gelu_reference(conv + bias))
    np.testing.assert_allclose(out, expected, atol=2e-5)
    tanh_gelu = dense_reference(
        layer.fc2, np.asarray(keras.activations.gelu(conv + bias, approximate=True))
    )
    assert np.abs(tanh_gelu - expected).max() > 1e-5  # the check can tell the two apart


def test_mix_ffn_calls_its_depthwise_conv_layer():
    # The depthwise conv is a layer MixFFN calls (not a weight container it
    # reads): its output is the GELU of conv + bias, and MixFFN is
    # fc2(dwconv(fc1(x))).
    layer = MixFFN(dim=4, hidden_dim=8)
    x = np.random.default_rng(3).normal(size=(1, 3, 3, 4)).astype("float32")
    layer(x)
    randomize_weights(layer, 13)
    assert isinstance(layer.dwconv, keras.layers.DepthwiseConv2D)
    hidden = layer.fc1(x)
    stock = keras.layers.DepthwiseConv2D(3, padding="same")
    stock.build(hidden.shape)
    stock.set_weights(layer.dwconv.get_weights())
    np.testing.assert_allclose(
        np.asarray(layer.dwconv(hidden)), gelu_reference(np.asarray(stock(hidden), np.float64)), atol=1e-5
    )
    np.testing.assert_allclose(
        np.asarray(layer(x)), np.asarray(layer.fc2(layer.dwconv(hidden))), atol=1e-6
    )
    assert [w.path for w in layer.dwconv.weights] == [
        f"{layer.name}/dwconv/kernel", f"{layer.name}/dwconv/bias"
    ]


@pytest.mark.parametrize("height, width", [(2, 2), (1, 1), (2, 5), (4, 4)])
def test_depthwise_conv_gelu_on_maps_smaller_than_the_kernel(height, width):
    # Maps with a side under 3 run as explicit zero padding + "valid" conv
    # (TensorFlow's "same" depthwise kernels are slow there): values and
    # gradients must equal the "same" conv's, computed here in float64.
    import tensorflow as tf

    rng = np.random.default_rng(height * 10 + width)
    x = rng.normal(size=(3, height, width, 6)).astype("float32")
    upstream = rng.normal(size=x.shape).astype("float32")
    layer = DepthwiseConvGELU(3, padding="same")
    layer.build(x.shape)
    randomize_weights(layer, 5)
    kernel, bias = (np.asarray(w, np.float64) for w in layer.get_weights())
    assert layer._pads_explicitly(x.shape) == (min(height, width) < 3)
    padded = np.pad(x.astype(np.float64), ((0, 0), (1, 1), (1, 1), (0, 0)))
    conv = np.zeros(x.shape)
    for i in range(3):
        for j in range(3):
            conv += padded[:, i : i + height, j : j + width, :] * kernel[i, j, :, 0]
    pre = conv + bias
    grad_pre = upstream * gelu_derivative_reference(pre)
    expected_kernel_grad = np.zeros((3, 3, 6))
    for i in range(3):
        for j in range(3):
            expected_kernel_grad[i, j] = (
                padded[:, i : i + height, j : j + width, :] * grad_pre
            ).sum((0, 1, 2))
    inputs = tf.constant(x)

    @tf.function
    def forward_and_gradients():
        with tf.GradientTape() as tape:
            tape.watch(inputs)
            outputs = layer(inputs)
        return outputs, tape.gradient(
            outputs, [inputs, layer.kernel, layer.bias], output_gradients=upstream
        )

    outputs, (grad_x, grad_kernel, grad_bias) = forward_and_gradients()
    np.testing.assert_allclose(np.asarray(outputs), gelu_reference(pre), atol=2e-5)
    np.testing.assert_allclose(np.asarray(grad_kernel)[..., 0], expected_kernel_grad, atol=1e-4)
    np.testing.assert_allclose(np.asarray(grad_bias), grad_pre.sum((0, 1, 2)), atol=1e-4)
    padded_grad = np.zeros(padded.shape)
    for i in range(3):
        for j in range(3):
            padded_grad[:, i : i + height, j : j + width, :] += grad_pre * kernel[i, j, :, 0]
    np.testing.assert_allclose(np.asarray(grad_x), padded_grad[:, 1:-1, 1:-1, :], atol=1e-4)


def test_depthwise_conv_gelu_refuses_another_activation():
    with pytest.raises(ValueError, match=r"DepthwiseConvGELU always applies the exact GELU; received activation='relu'"):
        DepthwiseConvGELU(3, activation="relu")


def test_stochastic_depth_drops_whole_samples_and_rescales():
    block = Block(dim=8, num_heads=1, mlp_ratio=1, sr_ratio=1, drop_path_rate=0.5)
    ones = np.ones((256, 2, 2, 8), "float32")
    kept = np.asarray(block.drop_path(ones, training=True))
    per_sample = kept.reshape(256, -1)
    assert set(np.unique(per_sample)) <= {0.0, 2.0}
    assert np.all(per_sample.min(axis=1) == per_sample.max(axis=1))
    assert 0.3 < per_sample[:, 0].mean() / 2 < 0.7
    np.testing.assert_array_equal(np.asarray(block.drop_path(ones, training=False)), ones)


def test_block_is_pre_norm_residual_in_inference():
    block = Block(dim=8, num_heads=2, mlp_ratio=2, attention_type="standard", drop_path_rate=0.3)
    x = np.random.default_rng(4).normal(size=(2, 2, 2, 8)).astype("float32")
    out = np.asarray(block(x, training=False))
    after_attention = x + np.asarray(block.attn(block.norm1(x)))
    expected = after_attention + np.asarray(block.mlp(block.norm2(after_attention)))
    np.testing.assert_allclose(out, expected, atol=1e-5)


def test_epsilons_and_momentum_match_the_official_model():
    block = Block(dim=16, num_heads=2, mlp_ratio=2, sr_ratio=2)
    block.build((None, 8, 8, 16))
    assert block.norm1.epsilon == block.norm2.epsilon == 1e-6
    assert block.attn.kv_norm.epsilon == 1e-5
    for batch_norm in (block.attn.reduce_bn, block.attn.filter_bn):
        assert batch_norm.epsilon == 1e-5 and batch_norm.momentum == 0.9
    assert Stem(hidden_dim=8, dim=16).norm.epsilon == 1e-5
    assert DownSample(dim=8).norm.epsilon == 1e-5
    class_block = ClassBlock(dim=8, num_heads=2, mlp_ratio=2)
    assert class_block.norm1.epsilon == class_block.norm2.epsilon == 1e-6


def _conv_reference(x, kernel, stride):
    """A bias-free 'same'-padded (kernel // 2) strided convolution in float64."""
    size = kernel.shape[0]
    padded = np.pad(x, ((0, 0), (size // 2,) * 2, (size // 2,) * 2, (0, 0)))
    height = (x.shape[1] - 1) // stride + 1
    width = (x.shape[2] - 1) // stride + 1
    out = np.zeros((x.shape[0], height, width, kernel.shape[-1]))
    for i in range(size):
        for j in range(size):
            window = padded[:, i : i + stride * height : stride, j : j + stride * width : stride]
            out += window @ kernel[i, j]
    return out


def _stem_reference(stem, x, first_stride, proj_stride):
    """The stem in float64: conv-BN-ReLU x3 (inference statistics), projection, LayerNorm."""
    weights = {w.path.split("/", 1)[1]: np.asarray(w, np.float64) for w in stem.weights}
    for index, stride in enumerate((first_stride, 1, 1)):
        x = _conv_reference(x, weights[f"conv{index}/kernel"], stride)
        bn = {name: weights[f"bn{index}/{name}"] for name in ("gamma", "beta", "moving_mean", "moving_variance")}
        x = (x - bn["moving_mean"]) / np.sqrt(bn["moving_variance"] + stem.conv_layers[2].epsilon)
        x = np.maximum(x * bn["gamma"] + bn["beta"], 0.0)
    x = _conv_reference(x, weights["proj/kernel"], proj_stride) + weights["proj/bias"]
    x = (x - x.mean(-1, keepdims=True)) / np.sqrt(x.var(-1, keepdims=True) + stem.norm.epsilon)
    return x * weights["norm/gamma"] + weights["norm/beta"]


@pytest.mark.parametrize(
    "kwargs, strides",
    [(dict(stride=4), (2, 2)), (dict(stride=2), (1, 2)), (dict(stride=2, first_stride=2), (2, 1))],
)
def test_stem_matches_a_float64_reference(kwargs, strides):
    rng = np.random.default_rng(5)
    x = rng.normal(size=(2, 16, 8, 3))
    stem = Stem(hidden_dim=4, dim=8, **kwargs)
    stem(x.astype("float32"))
    stem.set_weights(
        [
            rng.uniform(0.5, 2.0, w.shape) if "variance" in w.path
            else rng.normal(size=w.shape) / np.sqrt(np.prod(w.shape[:-1]) if len(w.shape) > 1 else 1)
            for w in stem.weights
        ]
    )
    out = np.asarray(stem(x.astype("float32"), training=False))
    np.testing.assert_allclose(out, _stem_reference(stem, x, *strides), atol=1e-4)


CONSTRUCTOR_CASES = [
    (lambda: Stem(hidden_dim=0, dim=16), r"hidden_dim must be a positive integer; received hidden_dim=0"),
    (lambda: Stem(hidden_dim=8, dim=0), r"dim must be a positive integer; received dim=0"),
    (lambda: Stem(hidden_dim=8, dim=16, stride=8), r"stride must be one of \(2, 4\); received stride=8"),
    (lambda: Stem(hidden_dim=8, dim=16, stride=4.0), r"stride must be one of \(2, 4\); received stride=4.0"),
    (lambda: Stem(hidden_dim=8, dim=16, stride=4, first_stride=1), r"first_stride must be None or one of \(2,\) with stride=4; received first_stride=1"),
    (lambda: Stem(hidden_dim=8, dim=16, stride=2, first_stride=4), r"first_stride must be None or one of \(1, 2\) with stride=2; received first_stride=4"),
    (lambda: DownSample(dim=0), r"dim must be a positive integer; received dim=0"),
    (lambda: MixFFN(dim=16, hidden_dim=0), r"hidden_dim must be a positive integer; received hidden_dim=0"),
    (lambda: MixFFN(dim=2.5, hidden_dim=8), r"dim must be a positive integer; received dim=2.5"),
    (lambda: Block(dim=16, num_heads=2, mlp_ratio=0), r"mlp_ratio must be a positive number; received mlp_ratio=0"),
    (lambda: Block(dim=16, num_heads=2, mlp_ratio=4, sr_ratio=0), r"sr_ratio must be an integer >= 1; received sr_ratio=0"),
    (lambda: Block(dim=16, num_heads=2, mlp_ratio=4, attention_type="window"), r"attention_type must be one of \('wave', 'standard'\); received attention_type='window'"),
    (lambda: Block(dim=16, num_heads=2, mlp_ratio=4, drop_path_rate=1.5), r"drop_path_rate must be in \[0, 1\); received drop_path_rate=1.5"),
    (lambda: Block(dim=16, num_heads=3, mlp_ratio=4, attention_type="standard"), r"received dim=16, num_heads=3"),
    (lambda: Block(dim=18, num_heads=2, mlp_ratio=4), r"dim must be divisible by 4 .*received dim=18"),
]


@pytest.mark.parametrize("build, message", CONSTRUCTOR_CASES)
def test_constructors_reject_before_creating_weights(created_weights, build, message):  # noqa: F811
    raises_before_weights(created_weights, message, build)


@pytest.mark.parametrize(
    "layer, shape, message",
    [
        (lambda: Block(dim=16, num_heads=2, mlp_ratio=2), (1, 8, 8, 8), r"Block expects a feature map \(batch, height, width, 16\); received shape \(1, 8, 8, 8\)"),
        (lambda: Stem(hidden_dim=8, dim=16), (1, 32, 3), r"Stem expects a feature map \(batch, height, width, channels\); received shape \(1, 32, 3\)"),
        (lambda: DownSample(dim=16), (1, 32, 3), r"DownSample expects a feature map \(batch, height, width, channels\)"),
        (lambda: MixFFN(dim=16, hidden_dim=32), (1, 4, 4, 8), r"MixFFN expects a feature map \(batch, height, width, 16\)"),
    ],
)
def test_layers_reject_wrong_inputs_at_build(layer, shape, message):
    with pytest.raises(ValueError, match=message):
        layer()(np.zeros(shape, "float32"))
