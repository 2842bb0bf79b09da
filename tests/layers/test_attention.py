"""Attention, WaveAttention, ClassAttention: contract, numerics vs float64
references, the shared core, argument checks."""

import math

import keras
import numpy as np
import pytest

from keras_wavevit.layers import Attention, ClassAttention, WaveAttention
from keras_wavevit.layers.attention import multi_head_attention, scaled_dot_product_attention
from tests.layer_checks import (  # noqa: F401 (fixture)
    created_weights,
    dense_reference,
    layer_contract_test,
    raises_before_weights,
    randomize_weights,
)

LAYER_CASES = [
    (Attention, dict(dim=16, num_heads=2), (2, 4, 6, 16), (2, 4, 6, 16)),
    (WaveAttention, dict(dim=16, num_heads=2, sr_ratio=2), (2, 8, 12, 16), (2, 8, 12, 16)),
    (WaveAttention, dict(dim=16, num_heads=4, sr_ratio=1), (2, 4, 4, 16), (2, 4, 4, 16)),
    (ClassAttention, dict(dim=16, num_heads=2), (2, 9, 16), (2, 1, 16)),
]


test_layer_contract = layer_contract_test(LAYER_CASES)


def _softmax(x):
    e = np.exp(x - x.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


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
    randomize_weights(layer, 11)
    out = np.asarray(layer(x))
    tokens = x.reshape(2, 12, 12).astype(np.float64)
    key_value = dense_reference(layer.kv, tokens)
    expected = dense_reference(
        layer.proj, _attention(dense_reference(layer.q, tokens), key_value[..., :12], key_value[..., 12:], 3)
    )
    np.testing.assert_allclose(out.reshape(2, 12, 12), expected, atol=2e-5)


def test_class_attention_matches_float64_reference():
    layer = ClassAttention(dim=8, num_heads=2)
    x = np.random.default_rng(2).normal(size=(2, 5, 8)).astype("float32")
    layer(x)
    randomize_weights(layer, 12)
    out = np.asarray(layer(x))
    tokens = x.astype(np.float64)
    key_value = dense_reference(layer.kv, tokens)
    query = dense_reference(layer.q, tokens[:, :1])
    expected = dense_reference(layer.proj, _attention(query, key_value[..., :8], key_value[..., 8:], 2))
    np.testing.assert_allclose(out, expected, atol=2e-5)


def test_wave_attention_matches_its_parts_in_float64():
    layer = WaveAttention(dim=8, num_heads=2, sr_ratio=2)
    x = np.random.default_rng(8).normal(size=(2, 8, 4, 8)).astype("float32")
    layer(x)
    randomize_weights(layer, 18)
    out = np.asarray(layer(x), np.float64)
    subbands, reconstructed = (np.asarray(t, np.float64) for t in layer._wavelet_branch(x))
    key_value = np.asarray(layer.kv_norm(layer.kv_embed(subbands)), np.float64).reshape(2, -1, 8)
    key_value = dense_reference(layer.kv, key_value)
    tokens = x.reshape(2, 32, 8).astype(np.float64)
    attended = _attention(dense_reference(layer.q, tokens), key_value[..., :8], key_value[..., 8:], 2)
    expected = dense_reference(layer.proj, np.concatenate([attended.reshape(2, 8, 4, 8), reconstructed], -1))
    np.testing.assert_allclose(out, expected, atol=5e-5)


def test_the_three_layers_share_one_core(monkeypatch):
    from keras_wavevit.layers import attention

    calls = []
    original = attention.multi_head_attention

    def counting(*args):
        calls.append(args[2])
        return original(*args)

    monkeypatch.setattr(attention, "multi_head_attention", counting)
    Attention(dim=8, num_heads=2)(np.zeros((1, 2, 2, 8), "float32"))
    WaveAttention(dim=8, num_heads=4, sr_ratio=1)(np.zeros((1, 4, 4, 8), "float32"))
    ClassAttention(dim=8, num_heads=1)(np.zeros((1, 3, 8), "float32"))
    assert calls == [2, 4, 1]


def test_multi_head_attention_splits_keys_then_values():
    rng = np.random.default_rng(9)
    query, key, value = (rng.normal(size=(2, 3, 4)) for _ in range(3))
    out = np.asarray(multi_head_attention(query, np.concatenate([key, value], -1), 2))
    np.testing.assert_allclose(out, _attention(query, key, value, 2), atol=1e-6)


def test_softmax_runs_in_float32_under_bfloat16():
    rng = np.random.default_rng(0)
    # Large score differences: a bfloat16 softmax would round the weights.
    query, key, value = (rng.normal(size=(1, 1, 5, 4)).astype("float32") for _ in range(3))
    exact = np.asarray(scaled_dot_product_attention(query, key, value))
    bf16 = scaled_dot_product_attention(
        *(keras.ops.cast(t, "bfloat16") for t in (query, key, value))
    )
    assert bf16.dtype == "bfloat16"
    np.testing.assert_allclose(np.asarray(keras.ops.cast(bf16, "float32")), exact, atol=0.05)


CONSTRUCTOR_CASES = [
    (lambda: WaveAttention(dim=30, num_heads=2, sr_ratio=1), r"dim must be divisible by 4 for the wavelet branch \(dim // 4 channels\); received dim=30"),
    (lambda: WaveAttention(dim=32, num_heads=3, sr_ratio=1), r"dim must be divisible by num_heads; received dim=32, num_heads=3"),
    (lambda: WaveAttention(dim=32, num_heads=2, sr_ratio=0), r"sr_ratio must be an integer >= 1; received sr_ratio=0"),
    (lambda: WaveAttention(dim=32, num_heads=2, sr_ratio=1.5), r"sr_ratio must be an integer >= 1; received sr_ratio=1.5"),
    (lambda: WaveAttention(dim=0, num_heads=1, sr_ratio=1), r"dim must be a positive integer; received dim=0"),
    (lambda: Attention(dim=16, num_heads=0), r"num_heads must be >= 1; received num_heads=0"),
    (lambda: Attention(dim=16, num_heads=5), r"dim must be divisible by num_heads; received dim=16, num_heads=5"),
    (lambda: Attention(dim="16", num_heads=1), r"dim must be a positive integer; received dim='16'"),
    (lambda: ClassAttention(dim=-4, num_heads=1), r"dim must be a positive integer; received dim=-4"),
    (lambda: ClassAttention(dim=16, num_heads=6), r"received dim=16, num_heads=6"),
]


@pytest.mark.parametrize("build, message", CONSTRUCTOR_CASES)
def test_constructors_reject_before_creating_weights(created_weights, build, message):  # noqa: F811
    raises_before_weights(created_weights, message, build)


@pytest.mark.parametrize(
    "layer, shape, message",
    [
        (lambda: WaveAttention(dim=16, num_heads=2, sr_ratio=1), (1, 64, 16), r"WaveAttention expects a feature map \(batch, height, width, 16\); received shape \(1, 64, 16\)"),
        (lambda: Attention(dim=16, num_heads=2), (1, 4, 4, 32), r"Attention expects a feature map \(batch, height, width, 16\); received shape \(1, 4, 4, 32\)"),
        (lambda: ClassAttention(dim=16, num_heads=2), (1, 4, 4, 16), r"ClassAttention expects tokens \(batch, 1 \+ tokens, 16\); received shape \(1, 4, 4, 16\)"),
    ],
)
def test_layers_reject_wrong_inputs_at_build(layer, shape, message):
    with pytest.raises(ValueError, match=message):
        layer()(np.zeros(shape, "float32"))
