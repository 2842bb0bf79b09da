"""Every argument check: a ValueError naming the argument and the value.

Constructor checks must fire before any weight exists; the tests count the
weights created while the constructor runs.
"""

import json
import re

import keras
import numpy as np
import pytest
import tensorflow as tf

import keras_wavevit
from keras_wavevit.layers.attention import Attention, ClassAttention, WaveAttention
from keras_wavevit.layers.blocks import (
    Block,
    ClassBlock,
    DownSample,
    MixFFN,
    Stem,
    TokenLabelHead,
)
from keras_wavevit.model import InputCheck, WaveViT, build_variant
from keras_wavevit.layers.wavelets import DWT2D, IDWT2D
from tests.configs import MICRO_CLASSIFIER as MICRO



@pytest.fixture
def created_weights(monkeypatch):
    """Records every weight created through `Layer.add_weight`."""
    created = []
    original = keras.layers.Layer.add_weight

    def recording_add_weight(self, *args, **kwargs):
        created.append(self.name)
        return original(self, *args, **kwargs)

    monkeypatch.setattr(keras.layers.Layer, "add_weight", recording_add_weight)
    return created


def _raises_before_weights(created, message, build):
    with pytest.raises(ValueError, match=message):
        build()
    assert created == [], f"weights were created before the error: {created}"


BUILDER_CASES = [
    (dict(embed_dims=(8, 16, 32)), r"embed_dims must have one entry per stage \(4\); received embed_dims=\(8, 16, 32\)"),
    (dict(embed_dims=8), r"embed_dims must have one entry per stage \(4\); received embed_dims=8"),
    (dict(num_heads=(1, 1, 2)), r"num_heads must have one entry per stage \(4\); received num_heads=\(1, 1, 2\)"),
    (dict(mlp_ratios=(2, 2, 2, 2, 2)), r"mlp_ratios must have one entry per stage \(4\); received mlp_ratios=\(2, 2, 2, 2, 2\)"),
    (dict(depths=[1, 1]), r"depths must have one entry per stage \(4\); received depths=\[1, 1\]"),
    (dict(sr_ratios=(2, 1, 1)), r"sr_ratios must have one entry per stage \(4\); received sr_ratios=\(2, 1, 1\)"),
    (dict(embed_dims=(8.0, 16, 32, 32)), r"embed_dims must hold integers; received embed_dims=\(8.0, 16, 32, 32\)"),
    (dict(depths=(1, True, 1, 1)), r"depths must hold integers; received depths=\(1, True, 1, 1\)"),
    (dict(mlp_ratios=(2, "4", 2, 2)), r"mlp_ratios must hold numbers; received mlp_ratios=\(2, '4', 2, 2\)"),
    (dict(embed_dims=(8, 16, 0, 32)), r"embed_dims\[2\] must be >= 1; received embed_dims=\[8, 16, 0, 32\]"),
    (dict(num_heads=(3, 1, 2, 2)), r"embed_dims\[0\]=8 must be divisible by num_heads\[0\]=3"),
    (dict(num_heads=(1, 0, 2, 2)), r"embed_dims\[1\]=16 must be divisible by num_heads\[1\]=0"),
    (dict(embed_dims=(6, 16, 32, 32)), r"embed_dims\[0\]=6 must be divisible by 4 \(the wavelet branch uses embed_dims // 4"),
    (dict(embed_dims=(8, 18, 32, 32)), r"embed_dims\[1\]=18 must be divisible by 4"),
    (dict(sr_ratios=(0, 1, 1, 1)), r"sr_ratios\[0\] must be >= 1; received 0"),
    (dict(sr_ratios=(2, 1, 2, 1)), r"sr_ratios of stages 3-4 \(standard attention\) must be 1; received sr_ratios=\[2, 1, 2, 1\]"),
    (dict(depths=(1, 0, 1, 1)), r"depths\[1\] must be >= 1; received 0"),
    (dict(mlp_ratios=(2, 2, 0, 2)), r"mlp_ratios\[2\] must be > 0; received 0"),
    (dict(stem_hidden_dim=0), r"stem_hidden_dim must be a positive integer; received stem_hidden_dim=0"),
    (dict(stem_stride=3), r"stem_stride must be 2 or 4; received stem_stride=3"),
    (dict(include_top="no"), r"include_top must be True or False; received include_top='no'"),
    (dict(include_top=False, pooling="max"), r"pooling must be one of \[None, 'avg', 'cls'\]; received pooling='max'"),
    (dict(pooling="avg"), r"pooling is only used with include_top=False .*received include_top=True, pooling='avg'"),
    (dict(num_classes=0), r"num_classes must be a positive integer; received num_classes=0"),
    (dict(include_top=False, token_label=True), r"token_label adds a classifier head and needs include_top=True; received include_top=False, token_label=True"),
    (dict(weights="missing.weights.h5"), r"weights must be None or the path of an existing Keras weights file; received weights='missing.weights.h5'"),
    (dict(drop_path_rate=1.0), r"drop_path_rate must be in \[0, 1\); received drop_path_rate=1.0"),
    (dict(drop_path_rate=-0.1), r"drop_path_rate must be in \[0, 1\); received drop_path_rate=-0.1"),
    (dict(input_shape=(32, 32)), r"input_shape must be \(height, width, channels\), without the batch axis; received input_shape=\(32, 32\)"),
    (dict(input_shape=(1, 32, 32, 3)), r"without the batch axis; received input_shape=\(1, 32, 32, 3\)"),
    (dict(input_shape=(32, 32, None)), r"input_shape must have a known, positive channel count; received input_shape=\(32, 32, None\)"),
    (dict(input_shape=(-16, 32, 3)), r"input_shape height must be a positive integer or None; received input_shape=\(-16, 32, 3\)"),
    (dict(input_shape=(40, 32, 3)), r"Input height must be a multiple of 16 .*received input_shape=\(40, 32, 3\) \(height 40\)"),
    (dict(input_shape=(None, 24, 3)), r"Input width must be a multiple of 16 .*\(width 24\)"),
]


@pytest.mark.parametrize("overrides, message", BUILDER_CASES)
def test_builder_rejects(created_weights, overrides, message):
    _raises_before_weights(created_weights, message, lambda: WaveViT(**{**MICRO, **overrides}))


@pytest.mark.parametrize(
    "build, message",
    [
        (lambda: keras_wavevit.WaveViTTiny(include_top=False, pooling="gem"), r"received pooling='gem'"),
        (lambda: keras_wavevit.WaveViTSmall(pooling="cls"), r"received include_top=True, pooling='cls'"),
        (lambda: keras_wavevit.WaveViTBase(input_shape=(200, 224, 3)), r"Input height must be a multiple of 32 .*\(height 200\)"),
        (lambda: keras_wavevit.WaveViTLarge(num_classes=-1), r"received num_classes=-1"),
        (lambda: build_variant("huge"), r"Unknown Wave-ViT variant 'huge'; expected one of \['base', 'large', 'small', 'tiny'\]"),
        (lambda: build_variant("tiny", include_top=False, token_label=True), r"received include_top=False, token_label=True"),
    ],
)
def test_variant_builders_reject(created_weights, build, message):
    _raises_before_weights(created_weights, message, build)


LAYER_CASES = [
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
    (lambda: Stem(hidden_dim=0, dim=16), r"hidden_dim must be a positive integer; received hidden_dim=0"),
    (lambda: Stem(hidden_dim=8, dim=0), r"dim must be a positive integer; received dim=0"),
    (lambda: Stem(hidden_dim=8, dim=16, stride=8), r"Stem stride must be 2 or 4; received stride=8"),
    (lambda: DownSample(dim=0), r"dim must be a positive integer; received dim=0"),
    (lambda: MixFFN(dim=16, hidden_dim=0), r"hidden_dim must be a positive integer; received hidden_dim=0"),
    (lambda: MixFFN(dim=2.5, hidden_dim=8), r"dim must be a positive integer; received dim=2.5"),
    (lambda: Block(dim=16, num_heads=2, mlp_ratio=0), r"mlp_ratio must be a positive number; received mlp_ratio=0"),
    (lambda: Block(dim=16, num_heads=2, mlp_ratio=4, sr_ratio=0), r"sr_ratio must be an integer >= 1; received sr_ratio=0"),
    (lambda: Block(dim=16, num_heads=2, mlp_ratio=4, attention_type="window"), r"attention_type must be one of \('wave', 'standard'\); received attention_type='window'"),
    (lambda: Block(dim=16, num_heads=2, mlp_ratio=4, drop_path_rate=1.5), r"drop_path_rate must be in \[0, 1\); received drop_path_rate=1.5"),
    (lambda: Block(dim=16, num_heads=3, mlp_ratio=4, attention_type="standard"), r"received dim=16, num_heads=3"),
    (lambda: Block(dim=18, num_heads=2, mlp_ratio=4), r"dim must be divisible by 4 .*received dim=18"),
    (lambda: ClassBlock(dim=16, num_heads=3, mlp_ratio=4), r"received dim=16, num_heads=3"),
    (lambda: ClassBlock(dim=16, num_heads=2, mlp_ratio=-1), r"mlp_ratio must be a positive number; received mlp_ratio=-1"),
    (lambda: TokenLabelHead(num_classes=0), r"num_classes must be >= 1; received num_classes=0"),
    (lambda: InputCheck(multiple=0), r"multiple must be a positive integer; received multiple=0"),
]


@pytest.mark.parametrize("build, message", LAYER_CASES)
def test_layer_constructors_reject(created_weights, build, message):
    _raises_before_weights(created_weights, message, build)


@pytest.mark.parametrize(
    "layer, shape, message",
    [
        (lambda: Block(dim=16, num_heads=2, mlp_ratio=2), (1, 8, 8, 8), r"Block expects a feature map \(batch, height, width, 16\); received shape \(1, 8, 8, 8\)"),
        (lambda: WaveAttention(dim=16, num_heads=2, sr_ratio=1), (1, 64, 16), r"WaveAttention expects a feature map \(batch, height, width, 16\); received shape \(1, 64, 16\)"),
        (lambda: Attention(dim=16, num_heads=2), (1, 4, 4, 32), r"Attention expects a feature map \(batch, height, width, 16\); received shape \(1, 4, 4, 32\)"),
        (lambda: Stem(hidden_dim=8, dim=16), (1, 32, 3), r"Stem expects a feature map \(batch, height, width, channels\); received shape \(1, 32, 3\)"),
        (lambda: MixFFN(dim=16, hidden_dim=32), (1, 4, 4, 8), r"MixFFN expects a feature map \(batch, height, width, 16\)"),
        (lambda: ClassBlock(dim=16, num_heads=2, mlp_ratio=2), (1, 4, 4, 16), r"ClassBlock expects tokens \(batch, 1 \+ tokens, 16\); received shape \(1, 4, 4, 16\)"),
        (lambda: DWT2D(), (1, 7, 8, 3), r"DWT2D needs an even height; received shape \(1, 7, 8, 3\)"),
        (lambda: IDWT2D(), (1, 4, 4, 6), r"IDWT2D needs channels divisible by 4 .*received 6 channels"),
    ],
)
def test_layers_reject_wrong_inputs_at_build(layer, shape, message):
    with pytest.raises(ValueError, match=message):
        layer()(np.zeros(shape, "float32"))


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


def test_input_check_rejects_wrong_rank_and_channels():
    check = InputCheck(multiple=16, channels=3)
    with pytest.raises(ValueError, match=r"expects images \(batch, height, width, channels\); received input of rank 3 with shape \(32, 32, 3\)"):
        check(np.zeros((32, 32, 3), "float32"))
    with pytest.raises(ValueError, match=r"built for images with 3 channels; received input shape \(1, 16, 16, 4\) \(4 channels\)"):
        InputCheck(multiple=16, channels=3)(np.zeros((1, 16, 16, 4), "float32"))
    with pytest.raises(ValueError, match=r"channels must be None or a positive integer; received channels=0"):
        InputCheck(multiple=16, channels=0)


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
