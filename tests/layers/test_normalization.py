"""The fused LayerNormalization and BatchNormalization: reference numerics, Keras config."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from keras_wavevit.layers import BatchNormalization, LayerNormalization
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


def _batch_norm_reference(x, gamma, beta, epsilon, upstream):
    """Training-mode batch norm in float64: output, gradients, batch statistics."""
    axes = (0, 1, 2)
    count = x.size // x.shape[-1]
    mean, variance = x.mean(axes), x.var(axes)
    inv_std = 1.0 / np.sqrt(variance + epsilon)
    normalized = (x - mean) * inv_std
    grad_gamma = (upstream * normalized).sum(axes)
    grad_beta = upstream.sum(axes)
    grad_x = gamma * inv_std / count * (count * upstream - grad_beta - normalized * grad_gamma)
    return normalized * gamma + beta, grad_x, grad_gamma, grad_beta, mean, variance


def test_batch_norm_training_step_matches_float64_reference_and_keras():
    rng = np.random.default_rng(4)
    x = (2.0 * rng.normal(size=(6, 5, 7, 12)) + 0.5).astype(np.float32)
    upstream = rng.normal(size=x.shape).astype(np.float32)
    gamma, beta = rng.normal(size=12), rng.normal(size=12)
    moving_mean, moving_variance = rng.normal(size=12), rng.uniform(0.5, 2.0, size=12)
    ours = BatchNormalization(momentum=0.9, epsilon=1e-5)
    stock = keras.layers.BatchNormalization(momentum=0.9, epsilon=1e-5)
    results = {}
    for layer in (ours, stock):
        layer.build(x.shape)
        layer.set_weights([gamma, beta, moving_mean, moving_variance])
        inputs = tf.constant(x)

        @tf.function
        def step(layer=layer, inputs=inputs):
            with tf.GradientTape() as tape:
                tape.watch(inputs)
                outputs = layer(inputs, training=True)
            return outputs, tape.gradient(
                outputs, [inputs, layer.gamma, layer.beta], output_gradients=upstream
            )

        outputs, gradients = step()
        results[layer] = [np.asarray(t) for t in (outputs, *gradients)] + [
            np.asarray(layer.moving_mean), np.asarray(layer.moving_variance)
        ]
    output, grad_x, grad_gamma, grad_beta, mean, variance = _batch_norm_reference(
        x.astype(np.float64), gamma, beta, 1e-5, upstream.astype(np.float64)
    )
    expected = [
        output, grad_x, grad_gamma, grad_beta,
        0.9 * moving_mean + 0.1 * mean,
        0.9 * moving_variance + 0.1 * variance,  # biased, as Keras' layer
    ]
    for got, want, stock_value in zip(results[ours], expected, results[stock]):
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4)
        np.testing.assert_allclose(got, stock_value, rtol=1e-4, atol=1e-4)


def test_batch_norm_training_and_inference_run_the_fused_kernel():
    layer = BatchNormalization()
    x = tf.constant(np.random.default_rng(6).normal(size=(2, 3, 3, 4)), tf.float32)
    layer.build(x.shape)
    for training in (True, False):
        graph = tf.function(lambda t: layer(t, training=training)).get_concrete_function(x).graph
        assert "FusedBatchNormV3" in {op.type for op in graph.get_operations()}, training


@pytest.mark.parametrize(
    # bfloat16 outputs: within one bfloat16 step (2**-7 relative) of the
    # reference and of each other.
    "dtype, rtol, atol", [("float32", 0, 1e-5), ("mixed_bfloat16", 2**-7, 1e-2)]
)
def test_batch_norm_inference_matches_float64_reference_and_keras(dtype, rtol, atol):
    rng = np.random.default_rng(3)
    x = (3.0 * rng.normal(size=(2, 5, 4, 6)) + 1.0).astype(np.float32)
    weights = [rng.normal(size=6), rng.normal(size=6), rng.normal(size=6),
               rng.uniform(0.5, 2.0, size=6)]
    ours = BatchNormalization(epsilon=1e-5, dtype=dtype)
    stock = keras.layers.BatchNormalization(epsilon=1e-5, dtype=dtype)
    outputs = []
    for layer in (ours, stock):
        layer.build(x.shape)
        layer.set_weights(weights)
        outputs.append(tf.cast(tf.function(lambda t, layer=layer: layer(t, training=False))(x),
                               tf.float64).numpy())
    assert outputs[0].dtype == outputs[1].dtype
    gamma, beta, mean, variance = weights
    # bfloat16 maps arrive rounded, as in Keras' layer.
    x64 = tf.cast(tf.cast(x, ours.compute_dtype), tf.float64).numpy()
    expected = (x64 - mean) / np.sqrt(variance + 1e-5) * gamma + beta
    np.testing.assert_allclose(outputs[0], expected, rtol=rtol, atol=atol)
    np.testing.assert_allclose(outputs[0], outputs[1], rtol=rtol, atol=atol)


def test_batch_norm_frozen_in_training_uses_the_moving_statistics():
    layer = BatchNormalization(epsilon=1e-5)
    x = tf.constant(np.random.default_rng(2).normal(size=(2, 3, 3, 4)), tf.float32)
    layer.build(x.shape)
    layer.set_weights([np.ones(4), np.zeros(4), np.full(4, 0.5), np.full(4, 4.0)])
    layer.trainable = False
    out = layer(x, training=True)
    np.testing.assert_allclose(out.numpy(), (x.numpy() - 0.5) / np.sqrt(4.0 + 1e-5), atol=1e-6)
    np.testing.assert_allclose(layer.moving_mean.numpy(), 0.5)


@pytest.mark.parametrize(
    "kwargs, shape",
    [(dict(axis=1), (2, 4, 3, 3)), (dict(renorm=True), (2, 3, 3, 4)), ({}, (2, 4))],
    ids=["channels-first", "renorm", "2-d"],
)
def test_batch_norm_other_cases_run_the_keras_layer(kwargs, shape):
    x = np.random.default_rng(7).normal(size=shape).astype("float32")
    ours, stock = BatchNormalization(**kwargs), keras.layers.BatchNormalization(**kwargs)
    graph_ops = {op.type for op in tf.function(
        lambda t: ours(t, training=True)).get_concrete_function(tf.constant(x)).graph.get_operations()}
    assert "FusedBatchNormV3" not in graph_ops
    np.testing.assert_allclose(
        np.asarray(ours(x, training=True)), np.asarray(stock(x, training=True)), atol=1e-5
    )


def test_batch_norm_mixed_bfloat16_statistics_in_float32():
    layer = BatchNormalization(dtype="mixed_bfloat16")
    x = tf.constant(np.random.default_rng(8).normal(size=(4, 3, 3, 5)) * 3 + 100, tf.float32)
    out = layer(x, training=True)
    assert out.dtype == tf.bfloat16
    # As in Keras' layer, the inputs arrive rounded to bfloat16; statistics
    # and normalisation then run in float32.
    x64 = tf.cast(tf.cast(x, tf.bfloat16), tf.float64).numpy()
    expected = (x64 - x64.mean((0, 1, 2))) / np.sqrt(x64.var((0, 1, 2)) + layer.epsilon)
    np.testing.assert_allclose(tf.cast(out, tf.float64).numpy(), expected, atol=2e-2)
    np.testing.assert_allclose(
        np.asarray(layer.moving_mean), 0.01 * x64.mean((0, 1, 2)), rtol=1e-5
    )


def test_batch_norm_is_keras_batch_normalization_with_the_same_config():
    layer = BatchNormalization(momentum=0.9, epsilon=1e-5, name="bn0")
    stock = keras.layers.BatchNormalization(momentum=0.9, epsilon=1e-5, name="bn0")
    assert isinstance(layer, keras.layers.BatchNormalization)
    assert layer.get_config() == stock.get_config()
    assert keras.saving.get_registered_name(BatchNormalization) == "keras_wavevit>BatchNormalization"
