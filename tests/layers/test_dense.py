"""The token projection: Keras Dense's weights and config, one 2-D matmul."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from keras_wavevit.layers import dense
from keras_wavevit.layers.dense import Dense


@pytest.mark.parametrize("shape", [(2, 5, 7, 12), (3, 9, 12), (4, 12)], ids=["map", "tokens", "flat"])
def test_dense_matches_float64_reference_and_keras(shape):
    rng = np.random.default_rng(4)
    x = rng.normal(size=shape).astype(np.float32)
    kernel, bias = rng.normal(size=(12, 6)), rng.normal(size=6)
    ours, stock = Dense(6, activation="relu"), keras.layers.Dense(6, activation="relu")
    for layer in (ours, stock):
        layer.build(x.shape)
        layer.set_weights([kernel, bias])
    expected = np.maximum(x.astype(np.float64) @ kernel + bias, 0.0)
    out = np.asarray(tf.function(ours)(x))
    assert out.shape == shape[:-1] + (6,)
    np.testing.assert_allclose(out, expected, atol=1e-5)
    np.testing.assert_allclose(out, np.asarray(stock(x)), atol=1e-5)


def test_dense_with_unknown_leading_axes_and_no_bias():
    layer = Dense(3, use_bias=False)
    layer.build((None, 4))
    kernel = np.arange(12, dtype=np.float32).reshape(4, 3)
    layer.set_weights([kernel])
    function = tf.function(layer, input_signature=[tf.TensorSpec((None, None, 4), tf.float32)])
    x = np.ones((2, 5, 4), np.float32)
    np.testing.assert_allclose(function(x).numpy(), x @ kernel)


def test_dense_traces_a_single_2d_matmul_followed_by_the_bias():
    layer = Dense(8)
    graph = tf.function(layer).get_concrete_function(
        tf.TensorSpec((2, 7, 5, 16), tf.float32)
    ).graph
    types = [op.type for op in graph.get_operations()]
    assert "MatMul" in types and "Tensordot" not in " ".join(op.name for op in graph.get_operations())
    matmul = next(op for op in graph.get_operations() if op.type == "MatMul")
    assert matmul.inputs[0].shape.rank == 2
    consumers = {consumer.type for consumer in matmul.outputs[0].consumers()}
    assert consumers & {"BiasAdd", "AddV2", "Add"}


def test_is_keras_dense_with_the_same_config_and_serializes():
    layer = Dense(5, name="fc1")
    assert isinstance(layer, keras.layers.Dense)
    assert layer.get_config() == keras.layers.Dense(5, name="fc1").get_config()
    assert keras.saving.get_registered_name(Dense) == "keras_wavevit>Dense"
    restored = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(layer))
    assert type(restored) is Dense and restored.units == 5


def test_lora_falls_back_to_keras():
    rng = np.random.default_rng(6)
    layer = Dense(4)
    layer.build((None, 6))
    layer.enable_lora(2)
    x = rng.normal(size=(2, 3, 6)).astype(np.float32)
    kernel = layer.kernel.numpy()  # the effective kernel, LoRA included
    np.testing.assert_allclose(np.asarray(layer(x)), x @ kernel + layer.bias.numpy(), atol=1e-5)


@pytest.mark.parametrize("amx", [False, True], ids=["fused-bias", "bias-after-reshape"])
def test_bfloat16_dense_adds_the_bias_after_the_reshape_on_amx(monkeypatch, amx):
    """On an AMX CPU the bias add is kept apart from the bfloat16 matmul; same numbers."""
    monkeypatch.setattr(dense, "has_amx_bfloat16", lambda: amx)
    rng = np.random.default_rng(7)
    x = rng.normal(size=(2, 5, 7, 12)).astype(np.float32)
    kernel, bias = rng.normal(size=(12, 6)), rng.normal(size=6)
    layer = Dense(6, dtype="mixed_bfloat16")
    layer.build(x.shape)
    layer.set_weights([kernel, bias])
    function = tf.function(layer)
    out = function(x)
    assert out.dtype == tf.bfloat16 and out.shape == (2, 5, 7, 6)
    expected = x.astype(np.float64) @ kernel + bias
    np.testing.assert_allclose(tf.cast(out, tf.float32).numpy(), expected, rtol=3e-2, atol=6e-2)
    graph = function.get_concrete_function(tf.TensorSpec(x.shape, tf.float32)).graph
    matmul = next(op for op in graph.get_operations() if op.type == "MatMul")
    consumers = {consumer.type for consumer in matmul.outputs[0].consumers()}
    if amx:
        assert consumers == {"Reshape"}
    else:
        assert len(consumers) == 1 and consumers <= {"BiasAdd", "AddV2"}
    assert dense.bias_after_reshape("bfloat16") is amx
    assert dense.bias_after_reshape("float32") is False
