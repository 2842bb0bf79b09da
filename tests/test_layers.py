"""Every layer: config, shapes, save/load, mixed precision; numerics vs numpy."""

import math

import keras
import numpy as np
import pytest

from keras_wavevit import (
    DWT2D,
    IDWT2D,
    Attention,
    Block,
    ClassAttention,
    ClassBlock,
    DownSample,
    MeanClassToken,
    MixFFN,
    Stem,
    TokenLabelHead,
    WaveAttention,
)
from tests.layer_checks import run_layer_test

LAYER_CASES = [
    (DWT2D, {}, (2, 8, 6, 4), (2, 4, 3, 16)),
    (IDWT2D, {}, (2, 4, 3, 16), (2, 8, 6, 4)),
    (Attention, dict(dim=16, num_heads=2), (2, 4, 6, 16), (2, 4, 6, 16)),
    (WaveAttention, dict(dim=16, num_heads=2, sr_ratio=2), (2, 8, 12, 16), (2, 8, 12, 16)),
    (WaveAttention, dict(dim=16, num_heads=4, sr_ratio=1), (2, 4, 4, 16), (2, 4, 4, 16)),
    (ClassAttention, dict(dim=16, num_heads=2), (2, 9, 16), (2, 1, 16)),
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
    (DownSample, dict(dim=32), (2, 8, 6, 16), (2, 4, 3, 32)),
    (ClassBlock, dict(dim=16, num_heads=2, mlp_ratio=2), (2, 9, 16), (2, 9, 16)),
    (MeanClassToken, {}, (2, 3, 4, 8), (2, 13, 8)),
    (TokenLabelHead, dict(num_classes=5, token_label=True), (2, 9, 16), (2, 5)),
    (TokenLabelHead, dict(num_classes=5), (2, 9, 16), (2, 5)),
]


@pytest.mark.parametrize(
    "layer_class, init_kwargs, input_shape, output_shape",
    LAYER_CASES,
    ids=[f"{case[0].__name__}-{index}" for index, case in enumerate(LAYER_CASES)],
)
def test_layer_contract(layer_class, init_kwargs, input_shape, output_shape, tmp_path):
    run_layer_test(layer_class, init_kwargs, input_shape, output_shape, tmp_path)


def _gelu(x):
    return 0.5 * x * (1.0 + np.vectorize(math.erf)(x / math.sqrt(2.0)))


def _softmax(x):
    e = np.exp(x - x.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def _randomize(layer, seed):
    """Replaces the small default init by N(0, 1/fan_in)-like weights so that
    mistakes in scale or head split change the output visibly."""
    rng = np.random.default_rng(seed)
    layer.set_weights(
        [rng.normal(size=w.shape) / math.sqrt(max(w.shape[0], 1)) for w in layer.get_weights()]
    )


def _dense(layer, x):
    kernel, bias = (np.asarray(w, np.float64) for w in layer.get_weights())
    return x @ kernel + bias


def _attention(query, key, value, heads):
    """Reference multi-head attention on (batch, tokens, channels) in float64."""
    batch, tokens, channels = query.shape
    split = lambda t: t.reshape(batch, -1, heads, channels // heads).transpose(0, 2, 1, 3)  # noqa: E731
    q, k, v = split(query), split(key), split(value)
    weights = _softmax(q @ k.transpose(0, 1, 3, 2) / math.sqrt(channels // heads))
    return (weights @ v).transpose(0, 2, 1, 3).reshape(batch, -1, channels)


def test_attention_matches_float64_reference():
    layer = Attention(dim=12, num_heads=3)
    x = np.random.default_rng(1).normal(size=(2, 3, 4, 12)).astype("float32")
    layer(x)
    _randomize(layer, 11)
    out = np.asarray(layer(x))
    tokens = x.reshape(2, 12, 12).astype(np.float64)
    key_value = _dense(layer.kv, tokens)
    expected = _dense(
        layer.proj, _attention(_dense(layer.q, tokens), key_value[..., :12], key_value[..., 12:], 3)
    )
    np.testing.assert_allclose(out.reshape(2, 12, 12), expected, atol=2e-5)


def test_class_attention_matches_float64_reference():
    layer = ClassAttention(dim=8, num_heads=2)
    x = np.random.default_rng(2).normal(size=(2, 5, 8)).astype("float32")
    layer(x)
    _randomize(layer, 12)
    out = np.asarray(layer(x))
    tokens = x.astype(np.float64)
    key_value = _dense(layer.kv, tokens)
    query = _dense(layer.q, tokens[:, :1])
    expected = _dense(layer.proj, _attention(query, key_value[..., :8], key_value[..., 8:], 2))
    np.testing.assert_allclose(out, expected, atol=2e-5)


def test_mix_ffn_uses_exact_gelu():
    layer = MixFFN(dim=4, hidden_dim=8)
    x = np.random.default_rng(3).normal(size=(1, 3, 3, 4)).astype("float32")
    layer(x)
    _randomize(layer, 13)
    out = np.asarray(layer(x))
    hidden = _dense(layer.fc1, x.astype(np.float64))
    kernel, bias = (np.asarray(w, np.float64) for w in layer.dwconv.get_weights())
    padded = np.pad(hidden, ((0, 0), (1, 1), (1, 1), (0, 0)))
    conv = np.zeros_like(hidden)
    for i in range(3):
        for j in range(3):
            conv += padded[:, i : i + 3, j : j + 3, :] * kernel[i, j, :, 0]
    expected = _dense(layer.fc2, _gelu(conv + bias))
    np.testing.assert_allclose(out, expected, atol=2e-5)
    tanh_gelu = _dense(
        layer.fc2, np.asarray(keras.activations.gelu(conv + bias, approximate=True))
    )
    assert np.abs(tanh_gelu - expected).max() > 1e-5  # the check can tell the two apart


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


def test_class_block_updates_only_the_class_token():
    block = ClassBlock(dim=8, num_heads=2, mlp_ratio=2)
    x = np.random.default_rng(5).normal(size=(2, 5, 8)).astype("float32")
    out = np.asarray(block(x))
    np.testing.assert_array_equal(out[:, 1:], x[:, 1:])
    assert np.abs(out[:, 0] - x[:, 0]).max() > 1e-3


def test_token_label_head_adds_half_the_max_aux_logit():
    head = TokenLabelHead(num_classes=3, token_label=True)
    x = np.random.default_rng(6).normal(size=(2, 5, 4)).astype("float32")
    head(x)
    _randomize(head, 16)
    out = np.asarray(head(x))
    expected = _dense(head.head, x[:, 0]) + 0.5 * _dense(head.aux_head, x[:, 1:]).max(axis=1)
    np.testing.assert_allclose(out, expected, atol=1e-5)


def test_mean_class_token_is_the_token_mean():
    x = np.random.default_rng(7).normal(size=(2, 3, 2, 4)).astype("float32")
    out = np.asarray(MeanClassToken()(x))
    np.testing.assert_allclose(out[:, 0], x.reshape(2, 6, 4).mean(axis=1), atol=1e-6)
    np.testing.assert_array_equal(out[:, 1:], x.reshape(2, 6, 4))


@pytest.mark.parametrize(
    "build, message",
    [
        (lambda: Attention(dim=10, num_heads=3), "dim must be divisible by num_heads.*dim=10"),
        (lambda: WaveAttention(dim=18, num_heads=2, sr_ratio=2), "divisible by 4.*dim=18"),
        (lambda: WaveAttention(dim=16, num_heads=2, sr_ratio=0), "sr_ratio must be an integer >= 1.*sr_ratio=0"),
        (lambda: Block(8, 2, 2, attention_type="local"), "attention_type.*'local'"),
        (lambda: Block(8, 2, 2, drop_path_rate=1.0), r"drop_path_rate must be in \[0, 1\).*1.0"),
        (lambda: Stem(8, 16, stride=3), "stride must be 2 or 4.*stride=3"),
        (lambda: TokenLabelHead(num_classes=0), "num_classes must be >= 1.*num_classes=0"),
    ],
)
def test_constructor_errors_name_the_argument(build, message):
    with pytest.raises(ValueError, match=message):
        build()


def test_map_layers_reject_wrong_channels():
    with pytest.raises(ValueError, match=r"\(batch, height, width, 16\).*received shape"):
        Attention(dim=16, num_heads=2)(np.zeros((1, 4, 4, 8), "float32"))
    with pytest.raises(ValueError, match="ClassBlock expects tokens"):
        ClassBlock(dim=8, num_heads=2, mlp_ratio=2)(np.zeros((1, 4, 4, 8), "float32"))
