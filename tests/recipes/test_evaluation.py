"""Evaluation (`keras_wavevit.recipes.evaluation`): class checks, numbers, where files go."""

import json
import os

import keras
import numpy as np
import pytest
import tensorflow as tf

from keras_wavevit.export import export_saved_model
from keras_wavevit.preprocessing import normalize_images
from keras_wavevit.recipes import evaluation
from keras_wavevit.recipes.evaluation import evaluate, evaluate_model, match_classes
from keras_wavevit.test_time import view_count
from tests.test_export import keras_probabilities, plain_classifier
from tests.view_reference import reference_views

MODEL_CLASSES = ["fox", "cat", "dog"]  # not alphabetical: folders are read sorted


def write_folder(root, classes, per_class=2, size=(20, 18), seed=0):
    """An image folder root/<class>/<n>.png of random pixels; returns its images."""
    rng = np.random.default_rng(seed)
    images = {}
    for name in classes:
        os.makedirs(os.path.join(root, name))
        images[name] = rng.integers(0, 256, (per_class, *size, 3)).astype("uint8")
        for index, image in enumerate(images[name]):
            keras.utils.save_img(os.path.join(root, name, f"{index}.png"), image)
    return images


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    work = tmp_path_factory.mktemp("evaluation")
    model = plain_classifier()  # 16x16 input, 3 classes
    model_file = str(work / "model.keras")
    model.save(model_file)
    version = export_saved_model(model, work / "serving", class_names=MODEL_CLASSES)
    return {"model": model, "keras": model_file, "saved": version, "work": work}


def test_match_classes_by_name_any_order_and_subset():
    assert match_classes(["cat", "dog", "fox"], MODEL_CLASSES, 3).tolist() == [1, 2, 0]
    assert match_classes(["dog"], MODEL_CLASSES, 3).tolist() == [2]
    assert match_classes(["a", "b"], None, 2).tolist() == [0, 1]


def test_match_classes_names_extra_and_missing_classes():
    with pytest.raises(
        ValueError,
        match=r"\['wolf'\] are not classes of the model; the model's classes absent "
        r"from the data: \['fox'\]",
    ):
        match_classes(["cat", "dog", "wolf"], MODEL_CLASSES, 3)
    with pytest.raises(ValueError, match=r"model has 3 classes but the data has 10 .*carries no"):
        match_classes([str(i) for i in range(10)], None, 3)


def test_evaluate_refuses_scores_of_another_class_count():
    """A 3-class model on 10-class labels used to score top-1 = 0.1."""
    images = np.zeros((10, 4, 4, 3), "uint8")
    data = tf.data.Dataset.from_tensor_slices((images, np.arange(10)))
    three_classes = lambda batch: np.tile([[0.2, 0.3, 0.5]], (len(batch), 1))  # noqa: E731
    with pytest.raises(ValueError, match=r"scores of shape \(10, 3\).*expected \(10, 10\)"):
        evaluate(three_classes, data, 10)
    with pytest.raises(ValueError, match=r"class ids in \[0, 3\); received \[0, 1, .*9\]"):
        evaluate(three_classes, data, 3)


def test_saved_model_matches_classes_by_name(exported, tmp_path):
    folder = str(tmp_path / "data")
    images = write_folder(folder, ["cat", "dog", "fox"])
    output = str(tmp_path / "report")
    result = evaluate_model(exported["saved"], data_dir=folder, output=output)
    # Independent reference: Keras on the same pixels, labels by model class id.
    true, predicted = [], []
    for name, batch in images.items():
        resized = tf.image.resize(batch.astype("float32"), (16, 16)).numpy()
        resized = np.clip(np.round(resized), 0, 255).astype("uint8")
        predicted += keras_probabilities(exported["model"], resized, (16, 16)).argmax(-1).tolist()
        true += [MODEL_CLASSES.index(name)] * len(batch)
    expected = np.zeros((3, 3), int)
    np.add.at(expected, (true, predicted), 1)
    assert result["confusion_matrix"] == expected.tolist()
    assert result["top1"] == pytest.approx(np.trace(expected) / 6)
    assert result["class_names"] == MODEL_CLASSES and result["notes"] == []
    saved = json.load(open(os.path.join(output, "evaluation.json"), encoding="utf-8"))
    assert saved["confusion_matrix"] == expected.tolist()
    assert open(os.path.join(output, "confusion_matrix.png"), "rb").read(4) == b"\x89PNG"
    assert not [name for name in os.listdir(output) if name.startswith(".partial-")]


def test_saved_model_refuses_a_folder_of_other_classes(exported, tmp_path):
    """Used to score a folder called "wolf" as "fox"."""
    folder = str(tmp_path / "wolves")
    write_folder(folder, ["wolf"])
    with pytest.raises(ValueError, match=r"\['wolf'\] are not classes of the model"):
        evaluate_model(exported["saved"], data_dir=folder, output=str(tmp_path / "out"))
    assert not (tmp_path / "out").exists()


def test_keras_file_needs_the_same_class_count(exported, tmp_path):
    ten = str(tmp_path / "ten")
    write_folder(ten, [f"class{i}" for i in range(10)], per_class=1)
    with pytest.raises(ValueError, match="model has 3 classes but the data has 10"):
        evaluate_model(exported["keras"], data_dir=ten, output=str(tmp_path / "out"))
    three = str(tmp_path / "three")
    write_folder(three, ["a", "b", "c"], per_class=1)
    result = evaluate_model(exported["keras"], data_dir=three, output=str(tmp_path / "out"))
    assert result["count"] == 3 and result["class_names"] == ["a", "b", "c"]
    assert result["notes"] == [evaluation.COUNT_MATCH_NOTE.format(count=3)]


def test_saved_model_report_goes_beside_the_served_directory(exported, tmp_path):
    folder = str(tmp_path / "data")
    write_folder(folder, ["dog"])
    before = sorted(os.listdir(exported["saved"]))
    result = evaluate_model(exported["saved"], data_dir=folder)
    assert sorted(os.listdir(exported["saved"])) == before
    beside = str(exported["work"] / "serving-1-evaluation")
    assert result["report"] == os.path.join(beside, "evaluation.json")
    assert sorted(os.listdir(beside)) == ["confusion_matrix.png", "evaluation.json"]
    assert sorted(os.listdir(exported["work"] / "serving")) == ["1"]
    assert result["notes"] == ["The data holds no images of the model's classes ['fox', 'cat']."]


def test_corrupt_keras_file_is_reported_as_such(tmp_path):
    broken = tmp_path / "best.keras"
    broken.write_bytes(b"PK\x03\x04 truncated")
    with pytest.raises(ValueError, match=r"best.keras is not a valid \.keras file"):
        evaluation.load_classifier(str(broken))
    with pytest.raises(FileNotFoundError, match="not found"):
        evaluation.load_classifier(str(tmp_path / "missing.keras"))
    with pytest.raises(FileNotFoundError, match="not found"):
        evaluation.load_classifier(str(tmp_path / "missing"))


def test_saved_model_without_class_names_matches_by_count(exported, tmp_path):
    unnamed = export_saved_model(exported["model"], tmp_path / "unnamed")
    two = str(tmp_path / "two")
    write_folder(two, ["a", "b"], per_class=1)
    with pytest.raises(ValueError, match=r"has 2 \(\['a', 'b'\]\); the model carries no class"):
        evaluate_model(unnamed, data_dir=two)
    three = str(tmp_path / "three")
    write_folder(three, ["a", "b", "c"], per_class=1)
    result = evaluate_model(unnamed, data_dir=three)
    assert result["notes"] == [evaluation.COUNT_MATCH_NOTE.format(count=3)]
    assert result["report"] == str(tmp_path / "unnamed-1-evaluation" / "evaluation.json")


def test_official_preprocessing_of_a_tfds_split(tmp_path):
    tfds = pytest.importorskip("tensorflow_datasets")
    from keras_wavevit.preprocessing import preprocess_official

    keras.utils.set_random_seed(2)
    inputs = keras.Input((None, None, 3))
    features = keras.layers.GlobalAveragePooling2D()(keras.layers.Conv2D(4, 3)(inputs))
    ten_classes = keras.Model(inputs, keras.layers.Dense(10)(features))
    model_file = str(tmp_path / "model.keras")
    ten_classes.save(model_file)
    with tfds.testing.mock_data(num_examples=6):
        result = evaluate_model(model_file, dataset="cifar10", split="test", image_size=12,
                                preprocessing="official", output=str(tmp_path / "out"))
        pairs = list(tfds.load("cifar10", split="test", as_supervised=True))
    predicted = [int(np.argmax(ten_classes(preprocess_official(image, 12)[None])))
                 for image, _ in pairs]
    expected = np.zeros((10, 10), int)
    for (_, label), guess in zip(pairs, predicted):
        expected[int(label), guess] += 1
    assert result["count"] == 6 and result["preprocessing"] == "official"
    assert result["confusion_matrix"] == expected.tolist()
    assert result["image_size"] == [12, 12]


def test_official_preprocessing_reads_the_held_out_images_of_a_folder(exported, tmp_path):
    folder = str(tmp_path / "data")
    write_folder(folder, ["cat", "dog", "fox"], per_class=4, size=(20, 26))
    result = evaluate_model(exported["saved"], data_dir=folder, subset="validation",
                            validation_fraction=0.5, preprocessing="official",
                            output=str(tmp_path / "out"))
    assert result["count"] == 6 and result["preprocessing"] == "official"
    with pytest.raises(ValueError, match=r"preprocessing must be one of \('resize', "
                                         r"'official'\); received 'crop'"):
        evaluate_model(exported["saved"], data_dir=folder, preprocessing="crop")


def linear_model_and_folder(tmp_path):
    """A linear model of the pixels, saved, and a 16x16 folder of 8 images per class.

    Linear in the pixels, the model gives mirror and shifted images other
    scores, and each image its own. Returns `(model, .keras path, folder,
    the folder's images in class order, logits)`, `logits` in float64.
    """
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((16, 16, 3), name="images"), keras.layers.Flatten(),
                              keras.layers.Dense(3)])
    path = str(tmp_path / "linear.keras")
    model.save(path)
    folder = str(tmp_path / "data")
    names = sorted(MODEL_CLASSES)  # the folder's class order
    images = write_folder(folder, names, per_class=8, size=(16, 16))
    batch = np.concatenate([images[name] for name in names])

    def logits(pixels):
        return np.asarray(model(normalize_images(tf.cast(pixels, tf.float32))), "float64")

    return model, path, folder, batch, logits


def test_flip_average_scores_each_image_with_its_mirror_image(tmp_path):
    model, keras_path, folder, batch, logits = linear_model_and_folder(tmp_path)
    paths = {"keras": keras_path,
             "saved": export_saved_model(model, tmp_path / "serving", class_names=MODEL_CLASSES)}
    names = sorted(MODEL_CLASSES)

    def probabilities(pixels):
        return np.exp(logits(pixels)) / np.exp(logits(pixels)).sum(axis=-1, keepdims=True)

    # Scores are averaged as the file gives them: a .keras classifier's logits,
    # a SavedModel's probabilities. A .keras file is matched to the folder by
    # class order, a SavedModel by name.
    for path, scores, class_ids in (
            (paths["keras"], logits, [0, 1, 2]),
            (paths["saved"], probabilities, [MODEL_CLASSES.index(name) for name in names])):
        averaged = (scores(batch) + scores(batch[:, :, ::-1])).argmax(-1)
        assert (averaged != scores(batch).argmax(-1)).any()  # mirror images change answers
        labels = np.repeat(class_ids, 8)
        result = evaluate_model(path, data_dir=folder, output=str(tmp_path / "out"),
                                flip_average=True)
        expected = np.zeros((3, 3), int)
        np.add.at(expected, (labels, averaged), 1)
        assert result["flip_average"] is True
        assert result["confusion_matrix"] == expected.tolist()
        assert result["top1"] == pytest.approx(np.mean(averaged == labels))


@pytest.mark.parametrize("flip, shift, count", [(True, 0, 2), (False, 1, 5), (True, 1, 10),
                                                (True, 2, 10)])
def test_test_time_average_scores_the_shifted_and_mirrored_views(flip, shift, count):
    # Not square, so that a swap of the axes shows; a linear model of the
    # pixels, so that every view gets its own scores.
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (3, 8, 7, 2)).astype("uint8")
    weights = rng.normal(size=(8 * 7 * 2, 4))
    seen = []

    def predict(batch):
        batch = np.asarray(batch)
        seen.append(batch)
        return batch.reshape(len(batch), -1).astype("float64") @ weights

    averaged = evaluation.averaged_over_views(predict, flip=flip, shift=shift)(images)
    expected = reference_views(images, flip, shift)
    assert view_count(flip=flip, shift=shift) == len(expected) == count
    # Exactly the reference's views, each once (in any order) ...
    assert sorted(view.tobytes() for view in seen) == sorted(v.tobytes() for v in expected)
    assert len({view.tobytes() for view in expected}) == count
    # ... and the mean of their scores.
    reference = np.mean([view.reshape(3, -1) @ weights for view in expected], axis=0)
    assert averaged.dtype == np.float32
    np.testing.assert_allclose(averaged, reference, rtol=1e-5)


def test_test_time_shift_is_checked():
    for shift in (-1, 1.5, True, "1"):
        with pytest.raises(ValueError, match=r"shift must be a non-negative integer \(pixels\); "
                                             rf"received {shift!r}"):
            evaluation.averaged_over_views(lambda images: images, shift=shift)
    average = evaluation.averaged_over_views(lambda images: np.zeros((1, 2)), shift=5)
    with pytest.raises(ValueError, match=r"smaller than the image's sides \(6, 5\) .*"
                                         r"received 5"):
        average(np.zeros((1, 6, 5, 3), "uint8"))


def test_shift_average_evaluates_the_views_and_checks_the_shift_first(tmp_path, monkeypatch):
    _, path, folder, batch, logits = linear_model_and_folder(tmp_path)
    labels = np.repeat([0, 1, 2], 8)
    single = logits(batch).argmax(-1)
    averaged = np.mean([logits(view) for view in reference_views(batch, True, 1)], axis=0)
    assert (averaged.argmax(-1) != single).any()  # the views change answers
    result = evaluate_model(path, data_dir=folder, output=str(tmp_path / "out"),
                            flip_average=True, shift_average=1)
    assert result["flip_average"] is True and result["shift_average"] == 1
    expected = np.zeros((3, 3), int)
    np.add.at(expected, (labels, averaged.argmax(-1)), 1)
    assert result["confusion_matrix"] == expected.tolist()
    # A shift the images cannot take is refused before any image is read.
    monkeypatch.setattr(evaluation, "_prepared_data", lambda *args: pytest.fail("read data"))
    with pytest.raises(ValueError, match=r"smaller than the image's sides \(16, 16\)"):
        evaluate_model(path, data_dir=folder, shift_average=16)
    with pytest.raises(ValueError, match=r"received -1"):
        evaluate_model(path, data_dir=folder, shift_average=-1)
    with pytest.raises(ValueError, match=r"flip_average must be True or False; received 'no'"):
        evaluate_model(path, data_dir=folder, flip_average="no")


def test_a_saved_model_exported_with_test_time_averaging_scores_as_evaluate_does(tmp_path):
    """The in-graph average of the export equals `evaluate --flip-average --shift-average`."""
    model, keras_path, folder, batch, logits = linear_model_and_folder(tmp_path)
    saved = export_saved_model(model, tmp_path / "serving", class_names=sorted(MODEL_CLASSES),
                               flip_average=True, shift_average=1)
    averaged = np.mean([logits(view) for view in reference_views(batch, True, 1)], axis=0)
    assert (averaged.argmax(-1) != logits(batch).argmax(-1)).any()  # the views change answers
    by_keras = evaluate_model(keras_path, data_dir=folder, output=str(tmp_path / "keras"),
                              flip_average=True, shift_average=1)
    by_saved_model = evaluate_model(saved, data_dir=folder, output=str(tmp_path / "saved"))
    expected = np.zeros((3, 3), int)
    np.add.at(expected, (np.repeat([0, 1, 2], 8), averaged.argmax(-1)), 1)
    assert by_keras["confusion_matrix"] == by_saved_model["confusion_matrix"] == expected.tolist()
    assert by_saved_model["flip_average"] is False and by_saved_model["shift_average"] == 0
    assert by_saved_model["notes"] == [
        "The model averages its scores over 10 views of each image by itself (exported with "
        "test-time averaging)."
    ]
    assert evaluation.load_classifier(saved).test_time_views == 10
