"""The fused ops: exact GELU against a float64 `math.erf` reference, fused
and unfused paths agree, gradients and dtypes; the scoped fusion switch."""

import numpy as np
import pytest
import tensorflow as tf

from keras_wavevit.layers.fusion import exact_gelu, fused, fused_ops, fused_ops_enabled
from keras_wavevit.layers.wavelets import haar_dwt2d, haar_idwt2d
from tests.layer_checks import gelu_derivative_reference, gelu_reference


# Dense near 0 (where GELU bends), then the tails up to where float32's
# GELU is exactly 0 or x.
X = np.concatenate(
    [np.linspace(-6.0, 6.0, 24001), np.linspace(-20.0, 20.0, 4001)]
).astype(np.float32)


@pytest.mark.parametrize("enabled", [True, False], ids=["fused", "unfused"])
def test_exact_gelu_matches_float64_erf_to_float32_rounding(enabled):
    with fused_ops(enabled):
        out = np.asarray(tf.function(exact_gelu)(tf.constant(X)))
    error = np.abs(out.astype(np.float64) - gelu_reference(X))
    # A few float32 ulps of max(1, |x|): the rounding of x * cdf(x), with
    # cdf's error scaled by |x|. The tanh approximation is off by up to 5e-4.
    ulps = error / np.spacing(np.maximum(1.0, np.abs(X)).astype(np.float32))
    assert ulps.max() <= 4.0, (ulps.max(), X[ulps.argmax()])


def test_exact_gelu_bias_is_added_first():
    x = np.random.default_rng(0).normal(size=(2, 3, 5)).astype(np.float32)
    bias = np.linspace(-1, 1, 5).astype(np.float32)
    out = np.asarray(exact_gelu(x, bias))
    np.testing.assert_allclose(out, gelu_reference(x + bias), rtol=0, atol=2e-6)


@pytest.mark.parametrize(
    "dtype, atol",
    [("float64", 1e-12), ("float32", 2e-6), ("bfloat16", 3e-2), ("float16", 4e-3)],
)
def test_exact_gelu_keeps_dtype_and_computes_in_float32(dtype, atol):
    x = tf.cast(tf.constant(np.linspace(-5, 5, 101), tf.float64), dtype)
    out = exact_gelu(x)
    assert out.dtype == dtype
    expected = gelu_reference(tf.cast(x, tf.float64).numpy())
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

    with fused_ops(enabled):
        out = gradient(x).numpy()
    np.testing.assert_allclose(out, gelu_derivative_reference(x.numpy()), atol=2e-6)


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
        with fused_ops(enabled):
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
    with fused_ops(False):
        with fused_ops(True):
            pass
        assert not fused_ops_enabled()


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

    with fused_ops(enabled):
        grad_x, grad_bias = gradients(x, bias)
    expected = upstream.numpy() * gelu_derivative_reference(x.numpy() + bias.numpy())
    np.testing.assert_allclose(grad_x.numpy(), expected, atol=1e-5)
    np.testing.assert_allclose(grad_bias.numpy(), expected.sum(axis=(0, 1, 2)), atol=1e-4)


def test_fusion_switch_is_scoped_to_the_context():
    import contextvars
    import threading

    assert fused_ops_enabled()
    seen = {}
    with fused_ops(False):
        assert not fused_ops_enabled()
        # Another thread starts from the default, not from this block.
        thread = threading.Thread(target=lambda: seen.update(thread=fused_ops_enabled()))
        thread.start()
        thread.join()
        # A copied context keeps the setting of the code that copied it.
        seen["copied"] = contextvars.copy_context().run(fused_ops_enabled)
    assert seen == {"thread": True, "copied": False}
    assert fused_ops_enabled()
    with pytest.raises(RuntimeError):
        with fused_ops(False):
            raise RuntimeError("restored even on errors")
    assert fused_ops_enabled()


def test_fusion_switch_is_public_and_the_environment_variable_sets_the_default():
    import subprocess
    import sys

    import keras_wavevit

    assert keras_wavevit.fused_ops is fused_ops
    code = (
        "import keras_wavevit; from keras_wavevit.layers.fusion import fused_ops_enabled; "
        "print(fused_ops_enabled())"
    )
    env = {**__import__("os").environ, "KERAS_WAVEVIT_FUSED_KERNELS": "0"}
    result = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                            text=True, timeout=240, check=True)
    assert result.stdout.strip().splitlines()[-1] == "False"


def test_traced_graph_has_no_xla_function_under_the_switch():
    def compiled_functions(enabled):
        with fused_ops(enabled):
            graph = tf.function(exact_gelu).get_concrete_function(
                tf.TensorSpec((2, 3), tf.float32)).graph
        return [f for f in graph.as_graph_def().library.function
                if f.attr.get("_XlaMustCompile") and f.attr["_XlaMustCompile"].b]

    assert compiled_functions(True)
    assert not compiled_functions(False)
