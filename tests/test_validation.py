"""The builders' argument checks and the built models' input checks.

Every builder argument is checked before any weight exists; the tests count
the weights created while the builder runs. (Each layer's own checks are
tested beside the layer, in tests/layers/; the architecture rules in
tests/test_config.py.)
"""

import numpy as np
import pytest
import tensorflow as tf

import keras_wavevit
from keras_wavevit.model import WaveViT
from tests.configs import MICRO_CLASSIFIER as MICRO
from tests.layer_checks import created_weights, raises_before_weights  # noqa: F401

# Builder arguments, and a few architecture rules to show they fail before
# any weight too (every rule is tested in tests/test_config.py).
BUILDER_CASES = [
    (dict(embed_dims=(8, 16, 32)), r"embed_dims must have one entry per stage \(4\); received embed_dims=\(8, 16, 32\)"),
    (dict(num_heads=(3, 1, 2, 2)), r"embed_dims\[0\]=8 must be divisible by num_heads\[0\]=3"),
    (dict(sr_ratios=(2, 1, 2, 1)), r"sr_ratios of stages 3-4 \(standard attention\) must be 1; received sr_ratios=\[2, 1, 2, 1\]"),
    (dict(stem_stride=3), r"stem_stride must be one of \(2, 4\); received stem_stride=3"),
    (dict(include_top="no"), r"include_top must be True or False; received include_top='no'"),
    (dict(include_top=False, pooling="max"), r"pooling must be one of \[None, 'avg', 'cls'\]; received pooling='max'"),
    (dict(pooling="avg"), r"pooling is only used with include_top=False .*received include_top=True, pooling='avg'"),
    (dict(num_classes=0), r"num_classes must be a positive integer; received num_classes=0"),
    (dict(include_top=False, token_label=True), r"token_label adds a classifier head and needs include_top=True; received include_top=False, token_label=True"),
    (dict(weights="missing.weights.h5"), r"weights must be None, the path of an existing Keras weights file \(.weights.h5\) or a preset directory .*received weights='missing.weights.h5'"),
    (dict(drop_path_rate=1.0), r"drop_path_rate must be in \[0, 1\); received drop_path_rate=1.0"),
    (dict(input_shape=(40, 32, 3)), r"Input height must be a multiple of 16 .*received input_shape=\(40, 32, 3\) \(height 40\)"),
    (dict(colour="red"), r"Unknown model configuration keys \['colour'\]"),
    (dict(config="tiny"), r"Pass either config or architecture keyword arguments, not both; received config and \['depths', 'embed_dims'"),
]


@pytest.mark.parametrize("overrides, message", BUILDER_CASES)
def test_builder_rejects(created_weights, overrides, message):  # noqa: F811
    raises_before_weights(created_weights, message, lambda: WaveViT(**{**MICRO, **overrides}))


@pytest.mark.parametrize(
    "build, message",
    [
        (lambda: keras_wavevit.WaveViTTiny(include_top=False, pooling="gem"), r"received pooling='gem'"),
        (lambda: keras_wavevit.WaveViTSmall(pooling="cls"), r"received include_top=True, pooling='cls'"),
        (lambda: keras_wavevit.WaveViTBase(input_shape=(200, 224, 3)), r"Input height must be a multiple of 32 .*\(height 200\)"),
        (lambda: keras_wavevit.WaveViTLarge(num_classes=-1), r"received num_classes=-1"),
        (lambda: WaveViT("huge"), r"Unknown model 'huge': expected one of \['base', 'large', 'small', 'tiny'\]"),
        (lambda: keras_wavevit.WaveViTTiny(include_top=False, token_label=True), r"received include_top=False, token_label=True"),
    ],
)
def test_variant_builders_reject(created_weights, build, message):  # noqa: F811
    raises_before_weights(created_weights, message, build)


@pytest.fixture(scope="module")
def fixed_model():
    return WaveViT(**MICRO)


@pytest.fixture(scope="module")
def any_size_model():
    return WaveViT(**{**MICRO, "input_shape": (None, None, 3)})


KERAS_FIXED = r"'images'.*expected shape=\(None, 32, 32, 3\), found shape="
KERAS_ANY = r"'images'.*expected shape=\(None, None, None, 3\), found shape="
OUR_CHANNELS = r"This Wave-ViT was built for images with 3 channels; received input shape "


@pytest.mark.parametrize(
    "model_name, shape, message",
    [
        ("fixed_model", (1, 32, 32, 4), KERAS_FIXED + r"\(1, 32, 32, 4\)"),
        ("fixed_model", (1, 32, 32, 1), OUR_CHANNELS + r"\(1, 32, 32, 1\) \(1 channels\)"),
        ("fixed_model", (32, 32, 3), KERAS_FIXED + r"\(32, 32, 3\)"),
        ("fixed_model", (1, 1, 32, 32, 3), KERAS_FIXED + r"\(1, 1, 32, 32, 3\)"),
        ("any_size_model", (1, 32, 32, 4), KERAS_ANY + r"\(1, 32, 32, 4\)"),
        ("any_size_model", (1, 32, 32, 1), OUR_CHANNELS + r"\(1, 32, 32, 1\) \(1 channels\)"),
        ("any_size_model", (32, 32, 3), r"Expected shape \(None, None, None, 3\), but input has incompatible shape \(32, 32, 3\)"),
        ("any_size_model", (1, 1, 32, 32, 3), KERAS_ANY + r"\(1, 1, 32, 32, 3\)"),
    ],
)
def test_wrong_channels_or_rank_fail_with_the_shapes(request, model_name, shape, message):
    model = request.getfixturevalue(model_name)
    with pytest.raises(ValueError, match=message):
        model(np.zeros(shape, "float32"))


def test_custom_channel_count_is_allowed_and_enforced():
    model = WaveViT(**{**MICRO, "input_shape": (32, 32, 1)})
    assert tuple(model(np.zeros((2, 32, 32, 1), "float32")).shape) == (2, 3)
    with pytest.raises(ValueError, match=r"built for images with 1 channels; received input shape \(2, 32, 32, 3\)"):
        model(np.zeros((2, 32, 32, 3), "float32"))


def test_wrong_size_fails_for_unknown_size_models(any_size_model):
    with pytest.raises(ValueError, match=r"Input height must be a multiple of 16 .*\(height 40\)"):
        any_size_model(np.zeros((1, 40, 32, 3), "float32"))
    with pytest.raises(ValueError, match=r"Input width must be a multiple of 16 .*\(width 56\)"):
        any_size_model(np.zeros((1, 32, 56, 3), "float32"))
    # Inside a graph the size is only known at run time: the step fails.
    forward = tf.function(
        any_size_model, input_signature=[tf.TensorSpec((None, None, None, 3), tf.float32)]
    )
    assert tuple(forward(tf.zeros((1, 48, 32, 3))).shape) == (1, 3)
    with pytest.raises(tf.errors.InvalidArgumentError, match="multiples of 16"):
        forward(tf.zeros((1, 48, 40, 3)))
