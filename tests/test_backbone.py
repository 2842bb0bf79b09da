"""Wave-ViT as a backbone: the feature pyramid and pooled embeddings."""

import os

import keras
import numpy as np
import pytest

import keras_wavevit
from keras_wavevit.config import PRESETS, feature_strides
from keras_wavevit.model import WaveViT
from tests.configs import MICRO_ARCHITECTURE as MICRO

KEYS = ("stage1", "stage2", "stage3", "stage4")


def _expected_shapes(batch, height, width, embed_dims, stem_stride):
    strides = feature_strides(stem_stride)
    return {
        key: (batch, height // strides[key], width // strides[key], dim)
        for key, dim in zip(KEYS, embed_dims)
    }


def _images(batch, height, width, seed=0):
    return np.random.default_rng(seed).normal(size=(batch, height, width, 3)).astype("float32")


@pytest.fixture(scope="module")
def any_size_backbone():
    keras.utils.set_random_seed(0)
    return WaveViT(**MICRO, include_top=False, input_shape=(None, None, 3))


def test_feature_strides():
    assert feature_strides(4) == {"stage1": 4, "stage2": 8, "stage3": 16, "stage4": 32}
    assert feature_strides(2) == {"stage1": 2, "stage2": 4, "stage3": 8, "stage4": 16}


@pytest.mark.parametrize("input_shape", [(32, 32, 3), (64, 96, 3), (96, 32, 3)])
def test_pyramid_shapes_static_sizes(input_shape):
    model = WaveViT(**MICRO, include_top=False, input_shape=input_shape)
    assert isinstance(model.output, dict) and tuple(model.output) == KEYS
    height, width, _ = input_shape
    expected = _expected_shapes(None, height, width, MICRO["embed_dims"], 2)
    assert {key: tuple(model.output[key].shape) for key in KEYS} == expected
    outputs = model(_images(2, height, width))
    expected = _expected_shapes(2, height, width, MICRO["embed_dims"], 2)
    assert {key: tuple(outputs[key].shape) for key in KEYS} == expected


def test_pyramid_shapes_unknown_sizes(any_size_backbone):
    symbolic = {key: tuple(any_size_backbone.output[key].shape) for key in KEYS}
    assert symbolic == {
        key: (None, None, None, dim) for key, dim in zip(KEYS, MICRO["embed_dims"])
    }
    for height, width in [(32, 32), (48, 80), (16, 64)]:
        outputs = any_size_backbone(_images(1, height, width))
        expected = _expected_shapes(1, height, width, MICRO["embed_dims"], 2)
        assert {key: tuple(outputs[key].shape) for key in KEYS} == expected
        for key in KEYS:
            assert np.all(np.isfinite(np.asarray(outputs[key])))


def test_pyramid_of_named_variants():
    tiny = keras_wavevit.WaveViTTiny(include_top=False)
    size = PRESETS["tiny"].input_shape[:2]
    outputs = tiny(_images(1, *size))
    expected = _expected_shapes(
        1, *size, PRESETS["tiny"].embed_dims, PRESETS["tiny"].stem_stride
    )
    assert {key: tuple(outputs[key].shape) for key in KEYS} == expected

    small = keras_wavevit.WaveViTSmall(include_top=False, input_shape=(64, 96, 3))
    expected = _expected_shapes(None, 64, 96, PRESETS["small"].embed_dims, 4)
    assert {key: tuple(small.output[key].shape) for key in KEYS} == expected
    assert expected["stage1"][1:3] == (16, 24) and expected["stage4"][1:3] == (2, 3)
    # A backbone has no classifier weights.
    assert not any(weight.path.startswith("head/") for weight in small.weights)
    assert {layer.name for layer in small.layers}.isdisjoint({"head", "post_network_0"})


@pytest.fixture(scope="module")
def classifier_and_backbones():
    """A classifier and backbones holding the same weights (copied by name)."""
    keras.utils.set_random_seed(1)
    classifier = WaveViT(**MICRO, input_shape=(32, 48, 3), num_classes=5)
    backbones = {}
    for pooling in (None, "avg", "cls"):
        keras.utils.set_random_seed(2)  # different init, then overwritten
        backbone = WaveViT(**MICRO, include_top=False, pooling=pooling, input_shape=(32, 48, 3))
        copied = 0
        for layer in backbone.layers:
            if layer.weights:
                layer.set_weights(classifier.get_layer(layer.name).get_weights())
                copied += 1
        assert copied > 0
        backbones[pooling] = backbone
    return classifier, backbones


def _classifier_activations(classifier, images):
    names = ["norm1", "norm2", "norm3", "block4_0", "norm4", "predictions"]
    probe = keras.Model(classifier.input, [classifier.get_layer(n).output for n in names])
    return dict(zip(names, (np.asarray(t) for t in probe(images))))


def test_pyramid_equals_classifier_intermediates(classifier_and_backbones):
    classifier, backbones = classifier_and_backbones
    images = _images(3, 32, 48, seed=3)
    reference = _classifier_activations(classifier, images)
    pyramid = {key: np.asarray(value) for key, value in backbones[None](images).items()}
    for stage in (1, 2, 3):
        np.testing.assert_allclose(
            pyramid[f"stage{stage}"], reference[f"norm{stage}"], rtol=1e-5, atol=1e-5
        )
    # In the classifier norm4 normalises [class token, map tokens...]; the
    # class block leaves the map tokens unchanged, so they are stage 4.
    stage4 = pyramid["stage4"]
    map_tokens = reference["norm4"][:, 1:].reshape(stage4.shape)
    np.testing.assert_allclose(stage4, map_tokens, rtol=1e-5, atol=1e-5)
    # Stage 4 is really normalised (not the raw block output).
    assert not np.allclose(stage4, reference["block4_0"], atol=1e-3)
    np.testing.assert_allclose(stage4.mean(axis=-1), 0.0, atol=1e-4)


def test_pooling_avg_and_cls_values(classifier_and_backbones):
    classifier, backbones = classifier_and_backbones
    images = _images(3, 32, 48, seed=4)
    reference = _classifier_activations(classifier, images)
    stage4 = np.asarray(backbones[None](images)["stage4"])

    avg = np.asarray(backbones["avg"](images))
    assert avg.shape == (3, MICRO["embed_dims"][-1])
    np.testing.assert_allclose(avg, stage4.mean(axis=(1, 2)), rtol=1e-5, atol=1e-5)

    cls = np.asarray(backbones["cls"](images))
    assert cls.shape == (3, MICRO["embed_dims"][-1])
    np.testing.assert_allclose(cls, reference["norm4"][:, 0], rtol=1e-5, atol=1e-5)
    # The classifier's logits are its head applied to exactly this vector.
    kernel, bias = classifier.get_layer("head").get_weights()
    np.testing.assert_allclose(cls @ kernel + bias, reference["predictions"], atol=1e-4)
    assert not np.allclose(cls, avg, atol=1e-3)


def test_pooled_builders_output_vectors():
    for pooling in ("avg", "cls"):
        model = keras_wavevit.WaveViTTiny(include_top=False, pooling=pooling)
        assert model.output_shape == (None, PRESETS["tiny"].embed_dims[-1])
    model = WaveViT(**MICRO, include_top=False, pooling="cls", input_shape=(None, None, 3))
    assert tuple(model(_images(2, 32, 64)).shape) == (2, MICRO["embed_dims"][-1])


def test_backbone_round_trip_and_gradients(tmp_path, any_size_backbone):
    images = _images(2, 32, 48, seed=5)
    path = os.path.join(tmp_path, "backbone.keras")
    any_size_backbone.save(path)
    loaded = keras.saving.load_model(path)
    original = any_size_backbone(images)
    restored = loaded(images)
    assert tuple(restored) == KEYS
    for key in KEYS:
        np.testing.assert_array_equal(np.asarray(restored[key]), np.asarray(original[key]))

    import tensorflow as tf

    with tf.GradientTape() as tape:
        outputs = any_size_backbone(images, training=True)
        loss = sum(tf.reduce_mean(tf.square(outputs[key])) for key in KEYS)
    grads = tape.gradient(loss, any_size_backbone.trainable_weights)
    stem_grads = [
        g for g, w in zip(grads, any_size_backbone.trainable_weights)
        if w.path.startswith("patch_embed1/")
    ]
    assert stem_grads and all(g is not None for g in stem_grads)
    assert any(float(tf.reduce_max(tf.abs(g))) > 0 for g in stem_grads)


def _load_example(name):
    import importlib.util

    path = os.path.join(os.path.dirname(os.path.dirname(__file__)), "examples", f"{name}.py")
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_segmentation_example_trains_an_fpn_head():
    example = _load_example("segmentation_head")
    images, masks = example.toy_segmentation_data(4, 32)
    assert set(np.unique(masks)) == {0, 1, 2}
    backbone = WaveViT(**MICRO, include_top=False, input_shape=(None, None, 3))
    model = example.fpn_segmentation_model(backbone, num_classes=3)
    assert tuple(model(_images(1, 32, 48)).shape) == (1, 32, 48, 3)
    before, after = example.main(["--steps", "6", "--batch-size", "8", "--run-eagerly"])
    assert np.isfinite(before) and after < before
