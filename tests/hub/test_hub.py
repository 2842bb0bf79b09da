"""Tests of the keras-hub classes (`keras_wavevit.hub`, the optional `hub` extra)."""

import importlib
import os
import subprocess
import sys

import keras
import numpy as np
import pytest

keras_hub = pytest.importorskip("keras_hub")

import keras_wavevit  # noqa: E402
from keras_wavevit import presets  # noqa: E402
from keras_wavevit.hub import (  # noqa: E402
    WaveViTBackbone,
    WaveViTImageClassifier,
    WaveViTImageClassifierPreprocessor,
    WaveViTImageConverter,
)
from keras_wavevit.weights import convert_checkpoint  # noqa: E402
from tests.configs import MICRO_ARCHITECTURE  # noqa: E402
from tests.weights.reference import (  # noqa: E402
    TINY_CONFIG,
    TOLERANCE,
    load_reference,
    max_error,
    nhwc,
    official_entries,
)

# The micro architecture with the official stem (stride 4): pyramid P2..P5.
MICRO_OFFICIAL_STEM = dict(MICRO_ARCHITECTURE, stem_stride=4, sr_ratios=(4, 2, 1, 1))
TINY_ARCHITECTURE = {key: value for key, value in TINY_CONFIG.items() if key != "num_classes"}


def micro_classifier(input_shape=(64, 64, 3), **kwargs):
    backbone = WaveViTBackbone(**MICRO_OFFICIAL_STEM, input_shape=input_shape)
    converter = WaveViTImageConverter(image_size=input_shape[:2])
    return WaveViTImageClassifier(
        backbone, num_classes=3, preprocessor=WaveViTImageClassifierPreprocessor(converter),
        **kwargs)


def test_backbone_pyramid_shapes_and_strides():
    backbone = WaveViTBackbone(**MICRO_OFFICIAL_STEM, input_shape=(64, 96, 3))
    shapes = {key: tuple(value.shape) for key, value in backbone.pyramid_outputs.items()}
    assert shapes == {"P2": (None, 16, 24, 8), "P3": (None, 8, 12, 16),
                      "P4": (None, 4, 6, 32), "P5": (None, 2, 3, 32)}
    assert isinstance(backbone, keras_hub.models.FeaturePyramidBackbone)
    # The maps are WaveViT(include_top=False)'s: the same layers and weights.
    reference = keras_wavevit.WaveViT(**MICRO_OFFICIAL_STEM, input_shape=(64, 96, 3),
                                      include_top=False)
    reference.set_weights(backbone.get_weights())
    images = np.random.default_rng(0).normal(size=(1, 64, 96, 3)).astype("float32")
    pyramid = keras.Model(backbone.input, backbone.pyramid_outputs)(images)
    expected = reference(images)
    for level, stage in zip(("P2", "P3", "P4", "P5"), ("stage1", "stage2", "stage3", "stage4")):
        np.testing.assert_array_equal(np.asarray(pyramid[level]), np.asarray(expected[stage]))
    np.testing.assert_array_equal(np.asarray(backbone(images)), np.asarray(expected["stage4"]))
    # A stem of stride 2 names the levels by their strides: P1..P4.
    tiny_stem = WaveViTBackbone(**MICRO_ARCHITECTURE, input_shape=(32, 32, 3))
    assert list(tiny_stem.pyramid_outputs) == ["P1", "P2", "P3", "P4"]
    restored = WaveViTBackbone.from_config(backbone.get_config())
    assert restored.wavevit_config == backbone.wavevit_config


def test_classifier_predicts_from_any_size_uint8_images():
    classifier = micro_classifier(activation="softmax")
    images = np.random.default_rng(1).integers(0, 256, (2, 80, 100, 3)).astype("uint8")
    probabilities = classifier.predict(images, verbose=0)
    assert probabilities.shape == (2, 3)
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, atol=1e-5)
    # The preprocessor normalises with ImageNet's mean and std after the resize.
    converter = classifier.preprocessor.image_converter
    white = np.asarray(converter(np.full((1, 8, 8, 3), 255.0, "float32")))
    np.testing.assert_allclose(
        white[0, 0, 0],
        (1 - np.array(keras_wavevit.IMAGENET_MEAN)) / keras_wavevit.IMAGENET_STD, rtol=1e-5)
    restored = WaveViTImageClassifier.from_config(classifier.get_config())
    assert (restored.num_classes, restored.token_label, restored.activation) == (
        3, False, "softmax")


def test_converter_resizes_like_the_export_and_crops_like_official():
    import tensorflow as tf

    # Without crop_pct: the export's "resize" (bilinear, aspect ratio not kept).
    images = np.random.default_rng(4).uniform(0, 255, (1, 8, 16, 3)).astype("float32")
    resized = WaveViTImageConverter(image_size=(4, 4), mean=(0, 0, 0), std=(1, 1, 1))(images)
    expected = tf.image.resize(images, (4, 4), method="bilinear").numpy() / 255.0
    np.testing.assert_allclose(np.asarray(resized), expected, rtol=1e-5, atol=1e-6)

    converter = WaveViTImageConverter(image_size=(24, 24), crop_pct=0.75,
                                      interpolation="nearest", mean=(0, 0, 0), std=(1, 1, 1))
    # 32 -> 24 / 0.75 = 32 (no resize), then the centre 24x24: rows 4..27.
    images = np.arange(32 * 32 * 3, dtype="float32").reshape(1, 32, 32, 3)
    cropped = np.asarray(converter(images)) * 255.0
    np.testing.assert_allclose(cropped, images[:, 4:28, 4:28], rtol=1e-6)
    with pytest.raises(ValueError, match="crop_pct"):
        WaveViTImageConverter(image_size=(24, 24), crop_pct=1.5)


@pytest.fixture(scope="module")
def reference():
    return load_reference()


def test_official_fixture_weights_give_the_official_logits(reference, tmp_path):
    backbone = WaveViTBackbone(**TINY_ARCHITECTURE)
    classifier = WaveViTImageClassifier(backbone, num_classes=10, token_label=True)
    plan = keras_wavevit.load_official_weights(classifier, official_entries(reference))
    assert plan["missing"] == [] and plan["unexpected"] == []
    images = nhwc(reference["input_64"])
    assert max_error(classifier(images), reference["logits_64"]) <= TOLERANCE
    # The converter's preset loads through keras-hub's own from_preset.
    checkpoint = tmp_path / "tiny.npz"
    np.savez(checkpoint, **official_entries(reference))
    convert_checkpoint(checkpoint, None, TINY_ARCHITECTURE, num_classes=10,
                       preset=tmp_path / "preset")
    loaded = keras_hub.models.ImageClassifier.from_preset(str(tmp_path / "preset"))
    assert isinstance(loaded, WaveViTImageClassifier)
    assert max_error(loaded(images), reference["logits_64"]) <= TOLERANCE
    assert loaded.preprocessor.image_converter.crop_pct == keras_wavevit.OFFICIAL_CROP_PCT


def test_save_to_preset_round_trips_with_load_preset(tmp_path):
    classifier = micro_classifier(token_label=True)
    images = np.random.default_rng(2).normal(size=(2, 64, 64, 3)).astype("float32")
    expected = np.asarray(classifier(images))
    classifier.save_to_preset(str(tmp_path / "hub"))
    loaded = keras_hub.models.ImageClassifier.from_preset(str(tmp_path / "hub"))
    np.testing.assert_array_equal(np.asarray(loaded(images)), expected)
    # keras-hub's directory is a keras_wavevit preset, and back.
    model = presets.load_preset(tmp_path / "hub")
    np.testing.assert_array_equal(np.asarray(model(images)), expected)
    presets.save_preset(model, tmp_path / "ours")
    again = keras_hub.models.ImageClassifier.from_preset(str(tmp_path / "ours"))
    np.testing.assert_array_equal(np.asarray(again(images)), expected)
    assert presets.read_preset(tmp_path / "hub")["head"]["token_label"] is True


def test_a_keras_hub_segmenter_takes_the_pyramid():
    backbone = WaveViTBackbone(**MICRO_OFFICIAL_STEM, input_shape=(64, 64, 3))
    deeplab = keras_hub.models.DeepLabV3Backbone(
        image_encoder=backbone, low_level_feature_key="P2",
        spatial_pyramid_pooling_key="P5", upsampling_size=8, dilation_rates=[1, 2])
    segmenter = keras_hub.models.DeepLabV3ImageSegmenter(backbone=deeplab, num_classes=2)
    masks = segmenter(np.zeros((1, 64, 64, 3), "float32"))
    assert tuple(masks.shape) == (1, 64, 64, 2)


def test_import_keras_wavevit_does_not_import_keras_hub():
    code = ("import sys, keras_wavevit, keras_wavevit.presets; "
            "assert 'keras_hub' not in sys.modules, 'keras_hub imported'")
    root = os.path.dirname(os.path.dirname(os.path.dirname(__file__)))
    subprocess.run([sys.executable, "-c", code], check=True, cwd=root, timeout=300)


def test_without_keras_hub_the_import_error_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "keras_hub", None)  # as if not installed
    for name in [name for name in sys.modules if name.startswith("keras_wavevit.hub")]:
        monkeypatch.delitem(sys.modules, name)
    with pytest.raises(ImportError, match=r'keras_wavevit.hub needs keras-hub: pip install '
                       r'"keras-wavevit\[hub\]"'):
        importlib.import_module("keras_wavevit.hub")


def test_a_backbone_preset_starts_a_new_classifier(tmp_path):
    backbone = keras_wavevit.WaveViT(**MICRO_ARCHITECTURE, input_shape=(32, 32, 3),
                                     include_top=False)
    presets.save_preset(backbone, tmp_path / "backbone")
    classifier = keras_hub.models.ImageClassifier.from_preset(
        str(tmp_path / "backbone"), num_classes=5)
    assert isinstance(classifier.preprocessor, WaveViTImageClassifierPreprocessor)
    images = np.random.default_rng(3).normal(size=(1, 32, 32, 3)).astype("float32")
    np.testing.assert_array_equal(np.asarray(classifier.backbone(images)),
                                  np.asarray(backbone(images)["stage4"]))
    assert tuple(classifier(images).shape) == (1, 5)
