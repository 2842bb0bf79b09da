"""DWT2D / IDWT2D against pywt, round trips, custom gradients, dtypes, checks.

PyWavelets is the independent oracle here: the package computes Haar with
its own butterfly and does not need pywt at run time.
"""

import numpy as np
import pytest
import pywt
import tensorflow as tf

from keras_wavevit.layers import DWT2D, IDWT2D, haar_dwt2d, haar_idwt2d
from keras_wavevit.layers.wavelets import _dwt_forward, _idwt_forward
from tests.layer_checks import layer_contract_test

RNG = np.random.default_rng(0)


def pywt_dwt_nhwc(x):
    """Reference: pywt.dwt2 per image and channel, in our channel layout."""
    batch, height, width, channels = x.shape
    out = np.zeros((batch, height // 2, width // 2, 4 * channels), np.float64)
    for b in range(batch):
        for c in range(channels):
            ca, (ch, cv, cd) = pywt.dwt2(x[b, :, :, c].astype(np.float64), "haar")
            for band, coefficients in enumerate((ca, ch, cv, cd)):
                out[b, :, :, band * channels + c] = coefficients
    return out


@pytest.mark.parametrize("shape", [(2, 8, 6, 3), (1, 16, 16, 1), (3, 4, 10, 5)])
def test_dwt_matches_pywt_in_float32(shape):
    x = RNG.normal(size=shape).astype(np.float32)
    out = np.asarray(DWT2D()(x))
    assert out.shape == (shape[0], shape[1] // 2, shape[2] // 2, 4 * shape[3])
    np.testing.assert_allclose(out, pywt_dwt_nhwc(x), rtol=0, atol=1e-6)


def test_subband_layout_is_ll_lh_hl_hh_of_official_filters():
    # The official DWT_2D filters (pywt dec_lo / dec_hi reversed) applied to
    # one 2x2 block [[a, b], [c, d]], as cross-correlation with stride 2.
    wavelet = pywt.Wavelet("haar")
    dec_lo = np.array(wavelet.dec_lo[::-1])
    dec_hi = np.array(wavelet.dec_hi[::-1])
    filters = {
        "ll": dec_lo[None, :] * dec_lo[:, None],
        "lh": dec_lo[None, :] * dec_hi[:, None],
        "hl": dec_hi[None, :] * dec_lo[:, None],
        "hh": dec_hi[None, :] * dec_hi[:, None],
    }
    block = np.array([[1.0, 2.0], [3.0, 5.0]])
    expected = [float(np.sum(filters[band] * block)) for band in ("ll", "lh", "hl", "hh")]
    out = np.asarray(haar_dwt2d(block.reshape(1, 2, 2, 1).astype(np.float32))).ravel()
    np.testing.assert_allclose(out, expected, atol=1e-6)


def test_idwt_matches_pywt_and_round_trips():
    x = RNG.normal(size=(2, 12, 8, 4)).astype(np.float32)
    coefficients = np.asarray(DWT2D()(x))
    reconstructed = np.asarray(IDWT2D()(coefficients))
    np.testing.assert_allclose(reconstructed, x, rtol=0, atol=1e-6)
    channels = x.shape[-1]
    bands = [coefficients[0, :, :, k * channels] for k in range(4)]
    reference = pywt.idwt2((bands[0], tuple(bands[1:])), "haar")
    np.testing.assert_allclose(reconstructed[0, :, :, 0], reference, atol=1e-6)


def test_dwt_of_idwt_is_identity_too():
    coefficients = RNG.normal(size=(2, 3, 5, 8)).astype(np.float32)
    np.testing.assert_allclose(
        np.asarray(haar_dwt2d(haar_idwt2d(coefficients))), coefficients, atol=1e-6
    )


@pytest.mark.parametrize(
    "transform, plain, shape",
    [(haar_dwt2d, _dwt_forward, (2, 6, 4, 3)), (haar_idwt2d, _idwt_forward, (2, 3, 2, 8))],
)
def test_custom_gradient_equals_autodiff_and_finite_differences(transform, plain, shape):
    x = tf.constant(RNG.normal(size=shape), tf.float64)
    weights = tf.constant(RNG.normal(size=plain(x).shape), tf.float64)
    with tf.GradientTape(persistent=True) as tape:
        tape.watch(x)
        custom = tf.reduce_sum(transform(x) * weights)
        autodiff = tf.reduce_sum(plain(x) * weights)
    custom_grad = tape.gradient(custom, x).numpy()
    np.testing.assert_allclose(custom_grad, tape.gradient(autodiff, x).numpy(), atol=1e-12)

    epsilon = 1e-6
    flat = x.numpy().ravel()
    numeric = np.zeros_like(flat)
    for index in range(flat.size):
        shifted = flat.copy()
        shifted[index] += epsilon
        plus = np.sum(np.asarray(transform(shifted.reshape(shape))) * weights.numpy())
        shifted[index] -= 2 * epsilon
        minus = np.sum(np.asarray(transform(shifted.reshape(shape))) * weights.numpy())
        numeric[index] = (plus - minus) / (2 * epsilon)
    np.testing.assert_allclose(custom_grad.ravel(), numeric, atol=1e-7)


def test_gradient_of_each_transform_is_the_other():
    x = tf.constant(RNG.normal(size=(1, 4, 4, 2)), tf.float32)
    upstream = tf.constant(RNG.normal(size=(1, 2, 2, 8)), tf.float32)
    with tf.GradientTape() as tape:
        tape.watch(x)
        y = haar_dwt2d(x)
    gradient = tape.gradient(y, x, output_gradients=upstream)
    np.testing.assert_allclose(gradient.numpy(), np.asarray(haar_idwt2d(upstream)), atol=1e-6)


@pytest.mark.parametrize(
    "dtype, tolerance",
    [("float64", 1e-12), ("float32", 1e-6), ("bfloat16", 3e-2), ("float16", 2e-3)],
)
def test_dtypes_are_preserved_and_accurate(dtype, tolerance):
    x = RNG.uniform(-1, 1, size=(2, 8, 8, 3))
    cast = tf.cast(tf.constant(x), dtype)
    out = DWT2D(dtype=dtype)(cast)
    assert out.dtype == tf.as_dtype(dtype)
    reference = pywt_dwt_nhwc(tf.cast(cast, tf.float64).numpy())
    np.testing.assert_allclose(tf.cast(out, tf.float64).numpy(), reference, atol=tolerance)
    back = IDWT2D(dtype=dtype)(out)
    assert back.dtype == tf.as_dtype(dtype)
    np.testing.assert_allclose(tf.cast(back, tf.float64).numpy(), x, atol=4 * tolerance)


@pytest.mark.parametrize("shape, axis", [((1, 7, 8, 3), "height"), ((1, 8, 5, 3), "width")])
def test_odd_sizes_are_rejected(shape, axis):
    with pytest.raises(ValueError, match=f"even {axis}.*{axis} {shape[1 if axis == 'height' else 2]} is odd"):
        DWT2D()(np.zeros(shape, np.float32))


def test_wrong_rank_and_channels_are_rejected():
    with pytest.raises(ValueError, match=r"DWT2D expects a feature map \(batch, height, width, channels\); received shape \(8, 8, 3\)"):
        DWT2D()(np.zeros((8, 8, 3), np.float32))
    with pytest.raises(ValueError, match=r"IDWT2D needs a known channel count; received shape \(None, 4, 4, None\)"):
        IDWT2D().build((None, 4, 4, None))
    with pytest.raises(ValueError, match="channels divisible by 4.*received 6"):
        IDWT2D()(np.zeros((1, 4, 4, 6), np.float32))


def test_unknown_spatial_sizes_in_a_graph():
    layer, inverse = DWT2D(), IDWT2D()

    @tf.function(input_signature=[tf.TensorSpec((None, None, None, 3), tf.float32)])
    def round_trip(x):
        return inverse(layer(x))

    for shape in [(1, 4, 6, 3), (2, 10, 2, 3)]:
        x = RNG.normal(size=shape).astype(np.float32)
        np.testing.assert_allclose(round_trip(x).numpy(), x, atol=1e-6)


def test_compute_output_shape_with_unknown_dims():
    assert DWT2D().compute_output_shape((None, None, 8, 3)) == (None, None, 4, 12)
    assert IDWT2D().compute_output_shape((None, 4, None, 12)) == (None, 8, None, 3)


@pytest.mark.parametrize("layer_class", [DWT2D, IDWT2D])
def test_layers_have_no_weights_and_round_trip_their_config(layer_class):
    layer = layer_class(name="wavelet", dtype="float64")
    clone = layer_class.from_config(layer.get_config())
    assert clone.get_config() == layer.get_config()
    layer.build((1, 4, 4, 8))
    assert layer.weights == []


test_layer_contract = layer_contract_test(
    [(DWT2D, {}, (2, 8, 6, 4), (2, 4, 3, 16)), (IDWT2D, {}, (2, 4, 3, 16), (2, 8, 6, 4))]
)


@pytest.mark.parametrize(
    "layer, shape, message",
    [
        (DWT2D, (1, 7, 8, 3), r"DWT2D needs an even height; received shape \(1, 7, 8, 3\)"),
        (IDWT2D, (1, 4, 4, 6), r"IDWT2D needs channels divisible by 4 .*received 6 channels"),
    ],
)
def test_layers_reject_wrong_inputs_at_build(layer, shape, message):
    with pytest.raises(ValueError, match=message):
        layer().build(shape)
