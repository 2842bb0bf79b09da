"""The fused LayerNormalization: PyTorch's formula, Keras' weights and config."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from keras_wavevit.layers import LayerNormalization
from keras_wavevit.layers.fusion import fused_ops


@pytest.mark.parametrize("enabled", [True, False], ids=["fused", "unfused"])
def test_layer_norm_matches_float64_reference_and_keras(enabled):
    rng = np.random.default_rng(2)
    x = (3.0 * rng.normal(size=(2, 5, 7, 24)) + 1.0).astype(np.float32)
    gamma, beta = rng.normal(size=24), rng.normal(size=24)
    ours, stock = LayerNormalization(epsilon=1e-6), keras.layers.LayerNormalization(epsilon=1e-6)
    for layer in (ours, stock):
        layer.build(x.shape)
        layer.set_weights([gamma, beta])
    x64 = x.astype(np.float64)
    expected = (x64 - x64.mean(-1, keepdims=True)) / np.sqrt(
        x64.var(-1, keepdims=True) + 1e-6
    ) * gamma + beta
    with fused_ops(enabled):
        out = np.asarray(tf.function(ours)(x))
    np.testing.assert_allclose(out, expected, atol=2e-6)
    np.testing.assert_allclose(out, np.asarray(stock(x)), atol=2e-6)
    assert [w.path for w in ours.weights] == [w.path.replace(stock.name, ours.name)
                                              for w in stock.weights]


def test_layer_norm_low_precision_computes_in_float32():
    layer = LayerNormalization(epsilon=1e-5, dtype="mixed_bfloat16")
    x = tf.constant(np.random.default_rng(3).normal(size=(4, 16)) * 100 + 1000, tf.float32)
    out = layer(x)
    assert out.dtype == tf.bfloat16
    # Normalisation layers take float32 inputs as they are (no bfloat16
    # rounding of x ~ 1000); only the output is rounded to bfloat16.
    x64 = x.numpy().astype(np.float64)
    expected = (x64 - x64.mean(-1, keepdims=True)) / np.sqrt(x64.var(-1, keepdims=True) + 1e-5)
    np.testing.assert_allclose(tf.cast(out, tf.float64).numpy(), expected, atol=1e-2)


def test_is_keras_layer_normalization_with_the_same_config():
    layer = LayerNormalization(epsilon=1e-6, name="norm4")
    assert isinstance(layer, keras.layers.LayerNormalization)
    stock = keras.layers.LayerNormalization(epsilon=1e-6, name="norm4")
    assert layer.get_config() == stock.get_config()
    assert keras.saving.get_registered_name(LayerNormalization) == "keras_wavevit>LayerNormalization"


def test_other_axes_fall_back_to_keras():
    x = np.random.default_rng(5).normal(size=(2, 3, 4)).astype("float32")
    ours = LayerNormalization(axis=1, epsilon=1e-3)
    stock = keras.layers.LayerNormalization(axis=1, epsilon=1e-3)
    np.testing.assert_allclose(np.asarray(ours(x)), np.asarray(stock(x)), atol=1e-6)
