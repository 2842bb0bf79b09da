"""The fused kernels: exact GELU against a float64 `math.erf` reference,
fused and unfused paths agree, gradients and dtypes."""

import math

import numpy as np
import pytest
import tensorflow as tf

from keras_wavevit.layers.fusion import exact_gelu, fused, fused_kernels
from keras_wavevit.layers.wavelets import haar_dwt2d, haar_idwt2d


def reference_gelu(x):
    x = np.asarray(x, np.float64)
    return 0.5 * x * (1.0 + np.vectorize(math.erf)(x / math.sqrt(2.0)))


def reference_gelu_derivative(x):
    x = np.asarray(x, np.float64)
    cdf = 0.5 * (1.0 + np.vectorize(math.erf)(x / math.sqrt(2.0)))
    return cdf + x * np.exp(-0.5 * x * x) / math.sqrt(2.0 * math.pi)


# Dense near 0 (where GELU bends), then the tails up to where float32's
# GELU is exactly 0 or x.
X = np.concatenate(
    [np.linspace(-6.0, 6.0, 24001), np.linspace(-20.0, 20.0, 4001)]
).astype(np.float32)


@pytest.mark.parametrize("enabled", [True, False], ids=["fused", "unfused"])
def test_exact_gelu_matches_float64_erf_to_float32_rounding(enabled):
    with fused_kernels(enabled):
        out = np.asarray(tf.function(exact_gelu)(tf.constant(X)))
    error = np.abs(out.astype(np.float64) - reference_gelu(X))
    # A few float32 ulps of max(1, |x|): the rounding of x * cdf(x), with
    # cdf's error scaled by |x|. The tanh approximation is off by up to 5e-4.
    ulps = error / np.spacing(np.maximum(1.0, np.abs(X)).astype(np.float32))
    assert ulps.max() <= 4.0, (ulps.max(), X[ulps.argmax()])


def test_exact_gelu_bias_is_added_first():
    x = np.random.default_rng(0).normal(size=(2, 3, 5)).astype(np.float32)
    bias = np.linspace(-1, 1, 5).astype(np.float32)
    out = np.asarray(exact_gelu(x, bias))
    np.testing.assert_allclose(out, reference_gelu(x + bias), rtol=0, atol=2e-6)


@pytest.mark.parametrize(
    "dtype, atol",
    [("float64", 1e-12), ("float32", 2e-6), ("bfloat16", 3e-2), ("float16", 4e-3)],
)
def test_exact_gelu_keeps_dtype_and_computes_in_float32(dtype, atol):
    x = tf.cast(tf.constant(np.linspace(-5, 5, 101), tf.float64), dtype)
    out = exact_gelu(x)
    assert out.dtype == dtype
    expected = reference_gelu(tf.cast(x, tf.float64).numpy())
    np.testing.assert_allclose(tf.cast(out, tf.float64).numpy(), expected, atol=atol)


@pytest.mark.parametrize("enabled", [True, False], ids=["fused", "unfused"])
def test_exact_gelu_gradient(enabled):
    x = tf.constant(np.linspace(-6, 6, 1001), tf.float32)

    @tf.function
    def gradient(x):
        with tf.GradientTape() as tape:
            tape.watch(x)
            y = exact_gelu(x)
        return tape.gradient(y, x)

    with fused_kernels(enabled):
        out = gradient(x).numpy()
    np.testing.assert_allclose(out, reference_gelu_derivative(x.numpy()), atol=2e-6)


def test_fused_and_unfused_wavelets_agree_with_gradients():
    rng = np.random.default_rng(1)
    x = tf.constant(rng.normal(size=(2, 8, 6, 5)), tf.float32)
    upstream = tf.constant(rng.normal(size=(2, 4, 3, 20)), tf.float32)

    def run(x):
        with tf.GradientTape() as tape:
            tape.watch(x)
            y = haar_dwt2d(x)
            z = haar_idwt2d(y)
        return y, z, tape.gradient(y, x, output_gradients=upstream)

    outputs = {}
    for enabled in (True, False):
        with fused_kernels(enabled):
            outputs[enabled] = [t.numpy() for t in tf.function(run)(x)]
    for fused_out, plain_out in zip(outputs[True], outputs[False]):
        np.testing.assert_allclose(fused_out, plain_out, rtol=0, atol=1e-6)
    np.testing.assert_allclose(outputs[True][1], x.numpy(), atol=1e-6)


def test_fused_accepts_unknown_shapes_and_switch_restores():
    double = fused(lambda x: 2.0 * x)
    spec = tf.TensorSpec((None, None), tf.float32)
    traced = tf.function(double, input_signature=[spec])
    assert traced(tf.ones((2, 3))).shape == (2, 3)
    assert traced(tf.ones((4, 1))).numpy().tolist() == [[2.0]] * 4
    with fused_kernels(False):
        with fused_kernels(True):
            pass
        from keras_wavevit.layers.fusion import fused_kernels_enabled

        assert not fused_kernels_enabled()


@pytest.mark.parametrize("enabled", [True, False], ids=["fused", "unfused"])
def test_layer_norm_matches_float64_reference_and_keras(enabled):
    import keras

    from keras_wavevit.layers.fusion import LayerNormalization

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
    with fused_kernels(enabled):
        out = np.asarray(tf.function(ours)(x))
    np.testing.assert_allclose(out, expected, atol=2e-6)
    np.testing.assert_allclose(out, np.asarray(stock(x)), atol=2e-6)
    assert [w.path for w in ours.weights] == [w.path.replace(stock.name, ours.name)
                                              for w in stock.weights]


def test_layer_norm_low_precision_computes_in_float32():
    from keras_wavevit.layers.fusion import LayerNormalization

    layer = LayerNormalization(epsilon=1e-5, dtype="mixed_bfloat16")
    x = tf.constant(np.random.default_rng(3).normal(size=(4, 16)) * 100 + 1000, tf.float32)
    out = layer(x)
    assert out.dtype == tf.bfloat16
    # Normalisation layers take float32 inputs as they are (no bfloat16
    # rounding of x ~ 1000); only the output is rounded to bfloat16.
    x64 = x.numpy().astype(np.float64)
    expected = (x64 - x64.mean(-1, keepdims=True)) / np.sqrt(x64.var(-1, keepdims=True) + 1e-5)
    np.testing.assert_allclose(tf.cast(out, tf.float64).numpy(), expected, atol=1e-2)


@pytest.mark.parametrize("enabled", [True, False], ids=["fused", "unfused"])
def test_exact_gelu_gradients_with_bias(enabled):
    rng = np.random.default_rng(4)
    x = tf.constant(rng.normal(size=(3, 4, 5, 6)) * 2, tf.float32)
    bias = tf.constant(rng.normal(size=(6,)), tf.float32)
    upstream = tf.constant(rng.normal(size=(3, 4, 5, 6)), tf.float32)

    @tf.function
    def gradients(x, bias):
        with tf.GradientTape() as tape:
            tape.watch([x, bias])
            y = exact_gelu(x, bias)
        return tape.gradient(y, [x, bias], output_gradients=upstream)

    with fused_kernels(enabled):
        grad_x, grad_bias = gradients(x, bias)
    expected = upstream.numpy() * reference_gelu_derivative(x.numpy() + bias.numpy())
    np.testing.assert_allclose(grad_x.numpy(), expected, atol=1e-5)
    np.testing.assert_allclose(grad_bias.numpy(), expected.sum(axis=(0, 1, 2)), atol=1e-4)
