"""Tests of local presets (`keras_wavevit.presets`) and the builders' `weights=<preset dir>`."""

import json
import os

import keras
import numpy as np
import pytest

import keras_wavevit
from keras_wavevit import presets
from tests.configs import MICRO_ARCHITECTURE, MICRO_CLASSIFIER

IMAGES = np.random.default_rng(0).uniform(-1, 1, (2, 32, 32, 3)).astype("float32")


def run(model):
    """The model's outputs on IMAGES as NumPy (an eager call: quicker than predict)."""
    return keras.tree.map_structure(np.asarray, model(IMAGES))


@pytest.fixture(scope="module")
def classifier():
    return keras_wavevit.WaveViT(**MICRO_CLASSIFIER, token_label=True,
                                 classifier_activation="softmax")


@pytest.fixture(scope="module")
def preset_dir(classifier, tmp_path_factory):
    directory = tmp_path_factory.mktemp("presets") / "micro"
    presets.save_preset(classifier, directory, class_names=["cat", "dog", "fox"],
                        preprocessing="official")
    return directory


def test_round_trip_gives_the_same_model(classifier, preset_dir):
    loaded = presets.load_preset(preset_dir)
    np.testing.assert_array_equal(run(loaded),
                                  run(classifier))
    assert [weight.path for weight in loaded.weights] == [
        weight.path for weight in classifier.weights]
    info = presets.read_preset(preset_dir)
    assert info["class_names"] == ["cat", "dog", "fox"]
    assert info["head"] == dict(include_top=True, num_classes=3, token_label=True,
                                classifier_activation="softmax")
    assert info["config"] == presets.architecture_of(classifier)[0]
    assert info["preprocessing"] == dict(
        image_size=[32, 32], mean=list(keras_wavevit.IMAGENET_MEAN),
        std=list(keras_wavevit.IMAGENET_STD), crop_pct=0.96, interpolation="bicubic")


def test_architecture_keeps_where_the_stem_downsamples():
    model = keras_wavevit.WaveViT(**{**MICRO_CLASSIFIER, "stem_first_stride": 2})
    stem = model.get_layer("patch_embed1")
    assert (stem.conv_layers[1].strides, stem.proj.strides) == ((2, 2), (1, 1))
    config = presets.architecture_of(model)[0]
    assert config.stem_first_stride == 2
    assert presets.architecture_of(keras_wavevit.WaveViT(**MICRO_CLASSIFIER))[0].stem_first_stride is None
    assert keras_wavevit.WaveViT(config, num_classes=3).count_params() == model.count_params()


def test_directory_has_the_keras_hub_layout(preset_dir):
    assert sorted(os.listdir(preset_dir)) == [
        "class_names.json", "config.json", "image_converter.json", "metadata.json",
        "model.weights.h5", "preprocessor.json", "task.json", "task.weights.h5"]
    config = json.loads((preset_dir / "config.json").read_text())
    assert config["registered_name"] == "keras_wavevit>WaveViTBackbone"
    assert config["config"]["embed_dims"] == list(MICRO_ARCHITECTURE["embed_dims"])
    task = json.loads((preset_dir / "task.json").read_text())
    assert task["config"]["backbone"] == config


def test_builder_loads_a_preset_directory(classifier, preset_dir):
    model = keras_wavevit.WaveViT(**MICRO_CLASSIFIER, token_label=True,
                                  classifier_activation="softmax", weights=preset_dir)
    np.testing.assert_array_equal(run(model),
                                  run(classifier))
    # The backbone part of a classifier's preset loads into a pyramid model
    # (the same maps as the classifier's norm1..norm3) and a "cls" pooling.
    backbone = keras_wavevit.WaveViT(**MICRO_ARCHITECTURE, input_shape=(32, 32, 3),
                                     include_top=False, weights=preset_dir)
    norm3 = keras.Model(classifier.input, classifier.get_layer("norm3").output)
    np.testing.assert_array_equal(run(backbone)["stage3"],
                                  run(norm3))
    pooled = keras_wavevit.WaveViT(**MICRO_ARCHITECTURE, input_shape=(32, 32, 3),
                                   include_top=False, pooling="cls", weights=preset_dir)
    tokens = keras.Model(classifier.input, classifier.get_layer("norm4").output)
    np.testing.assert_allclose(run(pooled),
                               run(tokens)[:, 0], atol=1e-6)


def test_builder_refuses_a_preset_of_another_architecture(preset_dir):
    with pytest.raises(ValueError, match=r"(?s)does not fit this model's architecture .*"
                       r"task.weights.h5: .*variable.shape=\(32, 4\), Received: value.shape=\(32, 3\)"):
        keras_wavevit.WaveViT(**MICRO_CLASSIFIER | {"num_classes": 4}, token_label=True,
                              weights=preset_dir)
    with pytest.raises(ValueError, match=r"(?s)does not fit .*model.weights.h5: "):
        keras_wavevit.WaveViT(**MICRO_CLASSIFIER | {"stem_hidden_dim": 4}, weights=preset_dir)


def test_backbone_preset_round_trip(tmp_path):
    backbone = keras_wavevit.WaveViT(**MICRO_ARCHITECTURE, input_shape=(32, 32, 3),
                                     include_top=False)
    presets.save_preset(backbone, tmp_path / "backbone")
    assert not (tmp_path / "backbone" / "task.json").exists()
    loaded = presets.load_preset(tmp_path / "backbone")
    expected = run(backbone)
    for key, value in run(loaded).items():
        np.testing.assert_array_equal(value, expected[key])
    with pytest.raises(ValueError, match="for this model: task.weights.h5 is missing"):
        keras_wavevit.WaveViT(**MICRO_CLASSIFIER, weights=tmp_path / "backbone")


def test_missing_files_are_named(preset_dir, tmp_path):
    with pytest.raises(ValueError, match="Preset directory not found: "):
        presets.load_preset(tmp_path / "nothing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="is not a Wave-ViT preset: config.json is missing"):
        presets.load_preset(tmp_path / "empty")
    with pytest.raises(ValueError, match="for this model: model.weights.h5 is missing"):
        keras_wavevit.WaveViT(**MICRO_CLASSIFIER, weights=tmp_path / "empty")
    with pytest.raises(ValueError, match=r"weights must be None, the path of an existing "
                       r"Keras weights file \(.weights.h5\) or a preset directory"):
        keras_wavevit.WaveViT(**MICRO_CLASSIFIER, weights=tmp_path / "missing")
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "config.json").write_text("{not json")
    with pytest.raises(ValueError, match="config.json is not valid JSON"):
        presets.load_preset(broken)


def test_save_refuses_bad_arguments_before_writing(classifier, preset_dir, tmp_path):
    with pytest.raises(ValueError, match="one name per class .*num_classes=3.*received 2"):
        presets.save_preset(classifier, tmp_path / "p", class_names=["a", "b"])
    with pytest.raises(ValueError, match="preprocessing must be one of"):
        presets.save_preset(classifier, tmp_path / "p", preprocessing="crop")
    with pytest.raises(ValueError, match=r"Unknown preprocessing keys \['size'\]"):
        presets.save_preset(classifier, tmp_path / "p", preprocessing={"size": 3})
    pooled = keras_wavevit.WaveViT(**MICRO_ARCHITECTURE, include_top=False, pooling="avg")
    with pytest.raises(ValueError, match="is not a Wave-ViT classifier or pyramid backbone"):
        presets.save_preset(pooled, tmp_path / "p")
    any_size = keras_wavevit.WaveViT(**MICRO_CLASSIFIER | {"input_shape": (None, None, 3)})
    with pytest.raises(ValueError, match="takes any input size: give the preset's image size"):
        presets.save_preset(any_size, tmp_path / "p")
    with pytest.raises(FileExistsError, match="already exists"):
        presets.save_preset(classifier, preset_dir)
    assert not (tmp_path / "p").exists()


def test_an_interrupted_save_leaves_no_directory(classifier, tmp_path, monkeypatch):
    def fail(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(keras.saving, "save_weights", fail)
    with pytest.raises(OSError, match="disk full"):
        presets.save_preset(classifier, tmp_path / "p")
    assert os.listdir(tmp_path) == []
