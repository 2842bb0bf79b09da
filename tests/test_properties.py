"""Property-based tests: Haar transforms over random shapes and dtypes, and
the builder over random small configurations."""

import json

import keras
import numpy as np
import pytest
import tensorflow as tf
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from keras_wavevit.config import feature_strides, required_input_multiple
from keras_wavevit.layers import DWT2D, IDWT2D, haar_dwt2d, haar_idwt2d
from keras_wavevit.model import WaveViT

# Tiny grids give single-token attention, about which Keras warns.
pytestmark = pytest.mark.filterwarnings("ignore:You are using a softmax over axis -1")

PROPERTY_SETTINGS = settings(
    max_examples=20,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow],
)
# Building a model takes seconds: few examples, and no shrinking (a failure
# is reported as generated).
BUILDER_SETTINGS = settings(
    max_examples=5,
    deadline=None,
    derandomize=True,
    database=None,
    phases=(Phase.explicit, Phase.generate),
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
# Round trip tolerance per dtype (values are N(0, 1); the transform is
# orthonormal, so errors are a few units in the last place).
TOLERANCE = {"float64": 1e-12, "float32": 1e-5, "float16": 5e-3, "bfloat16": 5e-2}


@st.composite
def nhwc_arrays(draw, even=True):
    batch = draw(st.integers(1, 3))
    height = draw(st.integers(1, 8)) * (2 if even else 1)
    width = draw(st.integers(1, 8)) * (2 if even else 1)
    channels = draw(st.integers(1, 5))
    seed = draw(st.integers(0, 2**31 - 1))
    return np.random.default_rng(seed).normal(size=(batch, height, width, channels))


def _to_numpy(tensor):
    return np.asarray(keras.ops.convert_to_numpy(keras.ops.cast(tensor, "float64")))


@PROPERTY_SETTINGS
@given(x=nhwc_arrays(), dtype=st.sampled_from(sorted(TOLERANCE)))
def test_idwt_inverts_dwt_for_every_shape_and_dtype(x, dtype):
    tensor = keras.ops.cast(x, dtype)
    subbands = DWT2D(dtype=dtype)(tensor)
    batch, height, width, channels = x.shape
    assert tuple(subbands.shape) == (batch, height // 2, width // 2, 4 * channels)
    assert keras.backend.standardize_dtype(subbands.dtype) == dtype
    restored = IDWT2D(dtype=dtype)(subbands)
    assert keras.backend.standardize_dtype(restored.dtype) == dtype
    exact = _to_numpy(tensor)  # the input as the dtype represents it
    np.testing.assert_allclose(_to_numpy(restored), exact, atol=TOLERANCE[dtype] * 8)
    # The other way round: DWT(IDWT(y)) == y.
    np.testing.assert_allclose(
        _to_numpy(haar_dwt2d(haar_idwt2d(subbands))),
        _to_numpy(subbands),
        atol=TOLERANCE[dtype] * 8,
    )


@PROPERTY_SETTINGS
@given(x=nhwc_arrays())
def test_dwt_is_orthonormal(x):
    subbands = _to_numpy(haar_dwt2d(keras.ops.convert_to_tensor(x)))
    np.testing.assert_allclose(np.sum(subbands**2), np.sum(x**2), rtol=1e-12)
    # LL of a constant image is twice the constant; the details vanish.
    constant = np.full_like(x, 3.0)
    bands = np.split(_to_numpy(haar_dwt2d(keras.ops.convert_to_tensor(constant))), 4, axis=-1)
    np.testing.assert_allclose(bands[0], 6.0)
    for detail in bands[1:]:
        np.testing.assert_allclose(detail, 0.0, atol=1e-12)


@settings(PROPERTY_SETTINGS, max_examples=12)
@given(x=nhwc_arrays(), seed=st.integers(0, 2**31 - 1))
def test_gradients_are_the_transposed_transform(x, seed):
    """<DWT x, y> == <x, IDWT y>, and each transform's gradient is the other."""
    batch, height, width, channels = x.shape
    y = np.random.default_rng(seed).normal(size=(batch, height // 2, width // 2, 4 * channels))
    x_t, y_t = tf.constant(x), tf.constant(y)
    np.testing.assert_allclose(
        np.sum(_to_numpy(haar_dwt2d(x_t)) * y),
        np.sum(x * _to_numpy(haar_idwt2d(y_t))),
        rtol=1e-10,
        atol=1e-10,
    )
    dwt, idwt = DWT2D(dtype="float64"), IDWT2D(dtype="float64")
    with tf.GradientTape(persistent=True) as tape:
        tape.watch([x_t, y_t])
        forward = tf.reduce_sum(dwt(x_t) * y_t)
        inverse = tf.reduce_sum(idwt(y_t) * x_t)
    np.testing.assert_allclose(_to_numpy(tape.gradient(forward, x_t)), _to_numpy(haar_idwt2d(y_t)), atol=1e-12)
    np.testing.assert_allclose(_to_numpy(tape.gradient(inverse, y_t)), _to_numpy(haar_dwt2d(x_t)), atol=1e-12)


@PROPERTY_SETTINGS
@given(x=nhwc_arrays(even=False))
def test_odd_sizes_are_rejected_and_even_accepted(x):
    _, height, width, _ = x.shape
    if height % 2 or width % 2:
        with pytest.raises(ValueError, match=r"DWT2D needs an even (height|width)"):
            DWT2D()(x.astype("float32"))
    else:
        assert DWT2D()(x.astype("float32")).shape[1:3] == (height // 2, width // 2)


@st.composite
def small_configs(draw):
    heads = [draw(st.sampled_from((1, 2))) for _ in range(4)]
    embed_dims = tuple(head * 4 * draw(st.sampled_from((1, 2))) for head in heads)
    depths = [1, 1, 1, 1]
    depths[draw(st.integers(0, 3))] = draw(st.sampled_from((1, 2)))
    config = dict(
        embed_dims=embed_dims,
        num_heads=tuple(heads),
        mlp_ratios=tuple(draw(st.sampled_from((1, 1.5, 2))) for _ in range(4)),
        depths=tuple(depths),
        sr_ratios=(draw(st.sampled_from((1, 2))), draw(st.sampled_from((1, 2))), 1, 1),
        stem_hidden_dim=draw(st.sampled_from((4, 8))),
        stem_stride=draw(st.sampled_from((2, 4))),
    )
    include_top, pooling = draw(
        st.sampled_from(((True, None), (False, None), (False, "avg"), (False, "cls")))
    )
    config.update(include_top=include_top, pooling=pooling)
    if include_top:
        config.update(
            num_classes=draw(st.integers(1, 5)), token_label=draw(st.booleans())
        )
    multiple = required_input_multiple(config["stem_stride"], config["sr_ratios"])
    size = (multiple * draw(st.integers(1, 2)), multiple * draw(st.integers(1, 2)))
    dynamic = draw(st.booleans())
    config["input_shape"] = (None, None, 3) if dynamic else (*size, 3)
    return config, size


@BUILDER_SETTINGS
@given(spec=small_configs(), seed=st.integers(0, 1000))
def test_random_small_configs_build_run_and_serialise(spec, seed):
    config, (height, width) = spec
    keras.utils.set_random_seed(seed)
    model = WaveViT(**config)
    images = np.random.default_rng(seed).normal(size=(2, height, width, 3)).astype("float32")
    outputs = model(images)
    if config["include_top"]:
        assert tuple(outputs.shape) == (2, config["num_classes"])
    elif config["pooling"]:
        assert tuple(outputs.shape) == (2, config["embed_dims"][-1])
    else:
        strides = feature_strides(config["stem_stride"])
        assert {key: tuple(value.shape) for key, value in outputs.items()} == {
            key: (2, height // strides[key], width // strides[key], dim)
            for key, dim in zip(strides, config["embed_dims"])
        }
    for value in keras.tree.flatten(outputs):
        assert np.all(np.isfinite(np.asarray(value)))

    # Serialisable to JSON and rebuilt identical from it.
    serialized = json.dumps(keras.saving.serialize_keras_object(model))
    rebuilt = keras.saving.deserialize_keras_object(json.loads(serialized))
    as_json = lambda config: json.loads(json.dumps(config))  # noqa: E731  (tuples -> lists)
    assert as_json(rebuilt.get_config()) == as_json(model.get_config())
    assert len(rebuilt.weights) == len(model.weights)
    rebuilt.set_weights(model.get_weights())
    for restored, original in zip(keras.tree.flatten(rebuilt(images)), keras.tree.flatten(outputs)):
        np.testing.assert_allclose(np.asarray(restored), np.asarray(original), rtol=1e-6, atol=1e-6)
