"""The SavedModel client (`keras_wavevit.recipes.serving.SavedModelClassifier`)."""

import os

import numpy as np
import pytest
import tensorflow as tf

from keras_wavevit.export import export_saved_model
from keras_wavevit.recipes.serving import SavedModelClassifier
from tests.test_export import keras_probabilities, plain_classifier


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """A 3-class 16x16 classifier exported with and without class names."""
    base = tmp_path_factory.mktemp("serving")
    model = plain_classifier()
    named = export_saved_model(model, base / "named", class_names=["fox", "cat", "dog"])
    unnamed = export_saved_model(
        plain_classifier(input_shape=(None, None, 3)), base / "unnamed",
        image_size=(24, 20), include_logits=False,
    )
    return {"model": model, "named": named, "unnamed": unnamed}


def test_reads_class_names_image_size_and_class_count(exported):
    client = SavedModelClassifier(exported["named"])
    assert client.class_names == ["fox", "cat", "dog"]
    assert client.image_size == (16, 16)
    assert client.num_classes == 3
    other = SavedModelClassifier(exported["unnamed"])
    assert other.class_names is None
    assert other.image_size == (24, 20)


def test_predict_returns_every_output_as_numpy(exported):
    images = np.random.default_rng(0).integers(0, 256, (3, 30, 22, 3)).astype("uint8")
    answer = SavedModelClassifier(exported["named"]).predict(images)
    assert sorted(answer) == [
        "class_ids", "classes", "logits", "probabilities",
        "top_k_class_ids", "top_k_classes", "top_k_probabilities",
    ]
    assert all(isinstance(value, np.ndarray) for value in answer.values())
    expected = keras_probabilities(exported["model"], images, image_size=(16, 16))
    np.testing.assert_allclose(answer["probabilities"], expected, atol=1e-5)
    np.testing.assert_array_equal(answer["class_ids"], expected.argmax(-1))
    names = np.array(["fox", "cat", "dog"])[expected.argmax(-1)]
    assert [label.decode() for label in answer["classes"]] == names.tolist()
    unnamed = SavedModelClassifier(exported["unnamed"]).predict(images)
    assert sorted(unnamed) == [
        "class_ids", "classes", "probabilities",
        "top_k_class_ids", "top_k_classes", "top_k_probabilities",
    ]
    assert [label.decode() for label in unnamed["classes"]] == [
        str(i) for i in unnamed["class_ids"]
    ]


@pytest.mark.parametrize(
    "images, message",
    [
        (np.zeros((2, 8, 8, 3), "float32"), "uint8 array"),
        (np.zeros((8, 8, 3), "uint8"), r"shape \(8, 8, 3\)"),
        (np.zeros((1, 8, 8, 4), "uint8"), r"shape \(1, 8, 8, 4\)"),
    ],
)
def test_bad_images_are_refused_before_the_graph(exported, images, message):
    with pytest.raises(ValueError, match=message):
        SavedModelClassifier(exported["named"]).predict(images)


def test_paths_that_are_not_a_version_directory(exported, tmp_path):
    with pytest.raises(FileNotFoundError, match="SavedModel directory not found"):
        SavedModelClassifier(str(tmp_path / "missing"))
    base = os.path.dirname(exported["named"])
    with pytest.raises(ValueError, match=r"holds no saved_model.pb\); pass the numbered"):
        SavedModelClassifier(base)


def test_signature_without_uint8_images_is_refused(tmp_path):
    module = tf.Module()
    module.serve = tf.function(
        lambda pixels: {"probabilities": tf.nn.softmax(pixels)},
        input_signature=[tf.TensorSpec((None, 3), tf.float32)],
    )
    path = str(tmp_path / "other" / "1")
    tf.saved_model.save(module, path, signatures={"serving_default": module.serve})
    with pytest.raises(ValueError, match=r"must take one input `images`; it takes \['pixels'\]"):
        SavedModelClassifier(path)


def test_reads_the_recorded_preprocessing_and_takes_preprocessed_images(exported, tmp_path):
    from keras_wavevit.preprocessing import preprocess_official

    model = exported["model"]
    official = SavedModelClassifier(export_saved_model(model, tmp_path / "official",
                                                       preprocessing="official"))
    assert (official.preprocessing, official.image_size) == ("official", (16, 16))
    assert SavedModelClassifier(exported["named"]).preprocessing == "resize"
    images = np.random.default_rng(5).integers(0, 256, (2, 30, 22, 3)).astype("uint8")
    batch = preprocess_official(images, official.image_size)
    expected = tf.nn.softmax(model(batch)).numpy()
    np.testing.assert_allclose(official.predict_preprocessed(batch)["probabilities"],
                               expected, atol=1e-6)
    np.testing.assert_allclose(official.predict(images)["probabilities"], expected, atol=1e-5)


def test_image_size_falls_back_to_the_export_record(tmp_path):
    # A SavedModel with only an any-size uint8 signature and the record.
    module = tf.Module()
    module.serve = tf.function(
        lambda images: {"probabilities": tf.ones((tf.shape(images)[0], 2))},
        input_signature=[tf.TensorSpec((None, None, None, 3), tf.uint8, name="images")],
    )
    path = str(tmp_path / "1")
    tf.saved_model.save(module, path, signatures={"serving_default": module.serve})
    os.makedirs(os.path.join(path, "assets"), exist_ok=True)
    with open(os.path.join(path, "assets", "preprocessing.json"), "w") as handle:
        handle.write('{"preprocessing": "resize", "image_size": [24, 20]}')
    client = SavedModelClassifier(path)
    assert client.image_size == (24, 20) and client.preprocessing == "resize"
    with pytest.raises(ValueError, match="has no serving_preprocessed signature"):
        client.predict_preprocessed(np.zeros((1, 24, 20, 3), "float32"))
