"""Checks of the model core that run under whichever Keras backend is active.

Not collected directly (the name does not match `test_*.py`):
`tests/backends/test_backends.py` runs this file in a fresh process per
backend, with `KERAS_BACKEND` set, since Keras fixes the backend per process.
Run it by hand with

    KERAS_BACKEND=jax python -m pytest -q -o python_files=backend_checks.py \
        tests/backends/backend_checks.py

`KERAS_WAVEVIT_MODEL_FILES` names a folder of `<backend>.keras` files (and
their `.npz` outputs) written by `tests.backends.write_model` under other
backends; the files of every other backend found there are loaded here.
"""

import os
import pathlib

import keras
import numpy as np
import pytest
from keras import ops

import keras_wavevit
from keras_wavevit.layers import wavelets
from tests.configs import MICRO_CLASSIFIER
from tests.layers.test_wavelets import pywt_dwt_nhwc
from tests.weights.reference import (
    TINY_CONFIG,
    TOLERANCE,
    load_reference,
    max_error,
    nhwc,
    official_entries,
)

BACKEND = keras.backend.backend()


def to_numpy(x):
    return keras.ops.convert_to_numpy(x)


# --- official fixture parity ---------------------------------------------------------


@pytest.fixture(scope="module")
def reference():
    return load_reference()


@pytest.fixture(scope="module")
def token_model(reference):
    model = keras_wavevit.WaveViT(**TINY_CONFIG, token_label=True)
    keras_wavevit.load_official_weights(model, official_entries(reference))
    return model


# At 64x64 (the 224x224 runs are in tests/weights/test_official.py): JAX
# compiles each new shape, which costs far more time than the arithmetic.
def test_logits_match_official_model(token_model, reference):
    logits = token_model(nhwc(reference["input_64"]), training=False)
    error = max_error(to_numpy(logits), reference["logits_64"])
    assert error <= TOLERANCE, f"{BACKEND}: max abs error {error:.2e}"


def test_class_token_logits_match_without_token_label(reference):
    model = keras_wavevit.WaveViT(**TINY_CONFIG, token_label=False)
    with pytest.warns(UserWarning, match="unexpected"):
        keras_wavevit.load_official_weights(model, official_entries(reference), strict=False)
    logits = model(nhwc(reference["input_64"]), training=False)
    error = max_error(to_numpy(logits), reference["cls_logits_64"])
    assert error <= TOLERANCE, f"{BACKEND}: max abs error {error:.2e}"


def test_every_stage_matches(token_model, reference):
    features = keras.Model(
        token_model.input,
        [token_model.get_layer(f"norm{stage}").output for stage in (1, 2, 3, 4)],
    )
    outputs = features(nhwc(reference["input_64"]), training=False)
    for stage, output in enumerate(outputs, start=1):
        expected = reference[f"stage{stage}_64"]
        error = max_error(to_numpy(output).reshape(expected.shape), expected)
        assert error <= TOLERANCE, f"{BACKEND}: stage {stage}: max abs error {error:.2e}"


# --- wavelets --------------------------------------------------------------------------


def test_dwt_matches_pywt_and_round_trips():
    x = np.random.default_rng(0).normal(size=(2, 8, 6, 3)).astype("float32")
    coefficients = to_numpy(wavelets.DWT2D()(x))
    np.testing.assert_allclose(coefficients, pywt_dwt_nhwc(x), rtol=0, atol=1e-6)
    np.testing.assert_allclose(to_numpy(wavelets.IDWT2D()(coefficients)), x, rtol=0, atol=1e-6)


@pytest.fixture
def float64():
    """float64 arithmetic: JAX needs `jax_enable_x64` (restored afterwards)."""
    if BACKEND != "jax":
        yield "float64"
        return
    import jax

    previous = jax.config.jax_enable_x64
    jax.config.update("jax_enable_x64", True)
    yield "float64"
    jax.config.update("jax_enable_x64", previous)


def _vjp(function, x, upstream):
    """The gradient of `sum(upstream * function(x))` w.r.t. `x`, on this backend."""
    if BACKEND == "tensorflow":
        import tensorflow as tf

        x = tf.constant(x)
        with tf.GradientTape() as tape:
            tape.watch(x)
            y = function(x)
        return tape.gradient(y, x, output_gradients=tf.constant(upstream)).numpy()
    if BACKEND == "jax":
        import jax

        _, pullback = jax.vjp(function, jax.numpy.asarray(x))
        return np.asarray(pullback(jax.numpy.asarray(upstream))[0])
    import torch

    x = torch.tensor(x, requires_grad=True)
    function(x).backward(torch.tensor(upstream))
    return x.grad.numpy()


@pytest.mark.parametrize(
    "custom, plain, in_shape, out_shape",
    [
        (wavelets.haar_dwt2d, wavelets._dwt_forward, (2, 4, 6, 3), (2, 2, 3, 12)),
        (wavelets.haar_idwt2d, wavelets._idwt_forward, (2, 2, 3, 12), (2, 4, 6, 3)),
    ],
)
def test_custom_gradient_equals_autodiff_and_finite_differences(
    float64, custom, plain, in_shape, out_shape
):
    rng = np.random.default_rng(1)
    x, direction = rng.normal(size=(2, *in_shape))
    upstream = rng.normal(size=out_shape)
    gradient = _vjp(custom, x, upstream)
    assert gradient.dtype == np.float64
    np.testing.assert_allclose(gradient, _vjp(plain, x, upstream), rtol=0, atol=1e-12)
    # The transforms are linear: a central difference is exact up to rounding.
    step = 1e-3
    difference = to_numpy(custom(x + step * direction)) - to_numpy(custom(x - step * direction))
    finite = np.sum(upstream * difference) / (2 * step)
    np.testing.assert_allclose(np.sum(gradient * direction), finite, rtol=1e-9)


# --- training ---------------------------------------------------------------------------


def test_fit_lowers_the_loss():
    """On JAX every step is XLA-compiled (`jit_compile=True`)."""
    model = keras_wavevit.WaveViT(**MICRO_CLASSIFIER)
    model.compile(
        optimizer=keras.optimizers.Adam(1e-3),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        jit_compile=True if BACKEND == "jax" else "auto",
    )
    rng = np.random.default_rng(0)
    images = rng.uniform(-1, 1, (16, 32, 32, 3)).astype("float32")
    labels = rng.integers(0, 3, 16)
    history = model.fit(images, labels, batch_size=8, epochs=6, verbose=0)
    losses = history.history["loss"]
    assert losses[-1] < 0.8 * losses[0], f"{BACKEND}: losses {losses}"


# --- files written under other backends ------------------------------------------------


def _other_backend_files():
    folder = os.environ.get("KERAS_WAVEVIT_MODEL_FILES")
    if not folder:
        return []
    return sorted(
        path for path in pathlib.Path(folder).glob("*.keras") if path.stem != BACKEND
    )


@pytest.mark.skipif(
    not _other_backend_files(), reason="KERAS_WAVEVIT_MODEL_FILES holds no other backend's file"
)
@pytest.mark.parametrize("path", _other_backend_files(), ids=lambda path: path.stem)
def test_keras_file_of_another_backend_gives_the_same_outputs(path):
    model = keras_wavevit.weights.load_model_file(path)
    with np.load(path.with_suffix(".npz")) as written:
        logits = to_numpy(model(written["images"], training=False))
        error = max_error(logits, written["logits"])
    assert error <= 1e-5, f"{path.stem} -> {BACKEND}: max abs error {error:.2e}"


# --- the same errors everywhere --------------------------------------------------------


def test_builder_and_input_errors_are_the_same():
    with pytest.raises(ValueError, match=r"embed_dims\[1\]=30 must be divisible by num_heads\[1\]=4"):
        keras_wavevit.WaveViT(**{**MICRO_CLASSIFIER, "embed_dims": (8, 30, 32, 32), "num_heads": (1, 4, 2, 2)})
    any_size = keras_wavevit.WaveViT(**{**MICRO_CLASSIFIER, "input_shape": (None, None, 3)})
    with pytest.raises(ValueError, match=r"Input width must be a multiple of 16 .*\(width 56\)"):
        any_size(np.zeros((1, 32, 56, 3), "float32"))
    with pytest.raises(ValueError, match=r"built for images with 3 channels; received input shape \(1, 32, 32, 1\)"):
        any_size(np.zeros((1, 32, 32, 1), "float32"))


@pytest.mark.skipif(BACKEND == "tensorflow", reason="the SavedModel export runs on TensorFlow")
def test_saved_model_export_names_the_backend(tmp_path):
    model = keras_wavevit.WaveViT(**MICRO_CLASSIFIER)
    message = f"export_saved_model needs the TensorFlow backend; KERAS_BACKEND is '{BACKEND}'"
    with pytest.raises(ValueError, match=message):
        keras_wavevit.export_saved_model(model, tmp_path / "served")


def test_fusion_is_tensorflow_only():
    from keras_wavevit.layers import fusion

    assert fusion.fused_ops_enabled() == (BACKEND == "tensorflow")


@pytest.mark.skipif(BACKEND == "tensorflow", reason="TensorFlow graphs check sizes at run time")
def test_compiled_predict_checks_the_size():
    """JAX traces (and PyTorch runs) with concrete shapes: the check is static."""
    any_size = keras_wavevit.WaveViT(**{**MICRO_CLASSIFIER, "input_shape": (None, None, 3)})
    with pytest.raises(ValueError, match=r"Input height must be a multiple of 16 .*\(height 40\)"):
        any_size.predict(np.zeros((1, 40, 32, 3), "float32"), verbose=0)
