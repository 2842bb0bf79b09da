"""Evaluation: top-1/top-5 accuracy and a confusion matrix of a trained model.

Evaluates a trained model (a `.keras` file, or an exported SavedModel
version directory) on an image folder, the held-out split of one, or a TFDS
split, and writes a confusion-matrix PNG and a JSON file of the numbers.
`keras-wavevit evaluate` (`keras_wavevit.cli.evaluate`) is its command line.

The data's classes are checked against the model's before any image is
scored. A SavedModel carries its class names (the `class_names.txt` asset),
so classes are matched by name: every class of the data must be a class of
the model (in any order; the model may know more classes than the data
holds). A `.keras` file (or a SavedModel exported without class names)
carries no class names, so the data must then have exactly as many classes
as the model, taken in the data's (alphabetical) order; the result says so
in its `notes`.

Preprocessing (`preprocessing=`): `"resize"` reads every image at the
model's size with a bilinear resize (the training recipe's pipeline) and
feeds uint8 pixels to the model (a SavedModel then applies its own in-graph
preprocessing); `"official"` reads every image at its own size and applies
the official evaluation transform
(`keras_wavevit.preprocessing.preprocess_official`: bicubic resize of the
short side to `floor(size / 0.96)`, centre crop) before the model (a
SavedModel's `serving_preprocessed`), what converted official checkpoints
are evaluated with. The default is `"resize"` for a `.keras` file and, for
a SavedModel, the preprocessing its export records.
"""

import dataclasses
import json
import os

import numpy as np
import tensorflow as tf

from keras_wavevit.files import atomic_path, atomic_write_text
from keras_wavevit.preprocessing import (
    check_preprocessing,
    normalize_images,
    preprocess_official,
)
from keras_wavevit.recipes import data as data_lib
from keras_wavevit.recipes.serving import SavedModelClassifier
from keras_wavevit.test_time import check_flip, check_shift, views
from keras_wavevit.weights.model_file import load_model_file

SUBSETS = ("all", "validation", "train")
COUNT_MATCH_NOTE = (
    "The model carries no class names: its {count} classes were matched "
    "to the data's by count and order."
)


@dataclasses.dataclass(frozen=True)
class Classifier:
    """A model ready to evaluate, whatever file it came from.

    Attributes:
        predict: Maps a uint8 image batch `(batch, height, width, 3)` to
            scores `(batch, num_classes)` (higher is more likely).
        num_classes: Number of classes the model scores.
        class_names: The model's class names by class id, or `None` when the
            file does not carry them (a `.keras` file).
        image_size: `(height, width)` the model reads, or `None` if unknown.
        predict_preprocessed: Maps a batch already preprocessed (normalised
            float32 at `image_size`) to scores, or `None`.
        preprocessing: The preprocessing the model file calls for:
            `"resize"`, or `"official"` for a SavedModel exported with the
            official transform.
        test_time_views: How many views of each image the model averages
            its scores over by itself (a SavedModel exported with
            test-time averaging); 1 otherwise.

    Example:

    >>> model = Classifier(lambda images: np.zeros((len(images), 2)), 2, None, (8, 8))
    >>> model.num_classes
    2
    """

    predict: object
    num_classes: int
    class_names: list
    image_size: tuple
    predict_preprocessed: object = None
    preprocessing: str = "resize"
    test_time_views: int = 1


def _keras_classifier(path):
    model = load_model_file(path, compile=False)
    size = tuple(model.input_shape[1:3])

    def predict_preprocessed(images):
        return np.asarray(model.predict_on_batch(images), dtype="float32")

    def predict(images):
        return predict_preprocessed(normalize_images(tf.cast(images, tf.float32)))

    return Classifier(predict, model.output_shape[-1], None, None if None in size else size,
                      predict_preprocessed)


def _saved_model_classifier(path):
    client = SavedModelClassifier(path)
    num_classes = client.num_classes
    if num_classes is None and client.class_names is not None:
        num_classes = len(client.class_names)
    if num_classes is None:
        raise ValueError(
            f"The SavedModel at {path!r} has neither a fixed number of classes "
            "nor class names; it cannot be evaluated."
        )

    def predict(images):
        return client.predict(np.asarray(images))["probabilities"]

    def predict_preprocessed(images):
        return client.predict_preprocessed(images)["probabilities"]

    return Classifier(predict, num_classes, client.class_names, client.image_size,
                      predict_preprocessed, client.preprocessing or "resize",
                      client.test_time_views)


def load_classifier(path):
    """Loads a `.keras` model or a SavedModel version directory to evaluate.

    Args:
        path: A `.keras` file or a SavedModel version directory
            (`saved_model/<version>`, holding `saved_model.pb`).

    Returns:
        A `Classifier`.

    Raises:
        FileNotFoundError: Nothing at `path`.
        ValueError: `path` is neither, or a `.keras` file is not a valid
            Keras file.

    Example:

    >>> model = load_classifier("runs/tiny/best.keras")  # doctest: +SKIP
    >>> model.image_size, model.class_names  # doctest: +SKIP
    ((32, 32), None)
    """
    path = os.fspath(path)
    if os.path.isdir(path):
        return _saved_model_classifier(path)
    if path.endswith(".keras"):
        return _keras_classifier(path)
    if not os.path.exists(path):
        raise FileNotFoundError(f"Model not found: {path!r}.")
    raise ValueError(
        f"Cannot load a model from {path!r}: expected a .keras file or a SavedModel "
        "version directory containing saved_model.pb."
    )


def match_classes(data_class_names, model_class_names, num_classes):
    """Maps the data's class ids to the model's, checking the classes agree.

    With the model's class names, classes are matched by name: every class
    of the data must be one of the model's (the model may have more).
    Without them (a `.keras` file), the counts must be equal and class `i`
    of the data is class `i` of the model.

    Args:
        data_class_names: The data's class names, by the data's label.
        model_class_names: The model's class names by class id, or `None`.
        num_classes: The number of classes the model scores.

    Returns:
        int32 array: entry `i` is the model's class id of the data's class `i`.

    Raises:
        ValueError: A class of the data is not one of the model's (naming
            the classes that are not, and those of the model the data lacks),
            or, without names, the class counts differ.

    Example:

    >>> match_classes(["cat", "fox"], ["fox", "dog", "cat"], 3).tolist()
    [2, 0]
    >>> match_classes(["wolf"], ["cat", "dog", "fox"], 3)
    Traceback (most recent call last):
    ...
    ValueError: The data's classes do not match the model's: ['wolf'] are not classes of the model; the model's classes absent from the data: ['cat', 'dog', 'fox'].
    """
    data_class_names = list(data_class_names)
    if model_class_names is None:
        if len(data_class_names) != num_classes:
            raise ValueError(
                f"The model has {num_classes} classes but the data has "
                f"{len(data_class_names)} ({data_class_names}); the model carries no "
                "class names (a .keras file, or a SavedModel exported without them), "
                "so the data must have exactly the model's classes."
            )
        return np.arange(num_classes, dtype="int32")
    model_class_names = list(model_class_names)
    extra = [name for name in data_class_names if name not in model_class_names]
    if extra:
        missing = [name for name in model_class_names if name not in data_class_names]
        raise ValueError(
            f"The data's classes do not match the model's: {extra} are not classes "
            f"of the model; the model's classes absent from the data: {missing}."
        )
    return np.array([model_class_names.index(name) for name in data_class_names], "int32")


def _check_batch_size(batch_size):
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive integer; received {batch_size!r}.")


def averaged_over_views(predict, flip=False, shift=0):
    """Test-time augmentation: each image scored as the mean over several views of it.

    The views are those of `keras_wavevit.test_time.views`: the image
    itself; with `shift`, the image moved by `shift` pixels along both axes
    in each of the four diagonal directions, its edges reflected (as
    `--translate` fills them in training); with `flip`, the mirror image of
    each of these (left to right). That is 2 views with `flip` alone, 5
    with `shift` alone, 10 with both (`test_time.view_count`). Each view is
    one call of `predict`, so a batch never grows.

    Args:
        predict: Maps an image batch `(batch, height, width, channels)` to
            scores `(batch, num_classes)`.
        flip: Also score the mirror images (models trained with flips).
        shift: Also score the images shifted by this many pixels (models
            trained with translations); 0: no shifts.

    Returns:
        A function of the same kind whose scores are the mean of `predict`'s
        scores over the views (of the scores as `predict` gives them: logits
        for a model without a softmax, probabilities for a SavedModel).

    Raises:
        ValueError: `flip` is not a bool or `shift` not a non-negative
            integer (here), or `shift` is not smaller than the images' sides
            (when called).

    Example:

    >>> left_column = lambda images: np.asarray(images)[:, 0, 0, :]
    >>> averaged_over_views(left_column, flip=True)(np.array([[[[1.0], [3.0]]]]))
    array([[2.]], dtype=float32)
    """
    check_flip(flip)
    check_shift(shift)

    def predict_views(images):
        scores = [np.asarray(predict(view), dtype="float32")
                  for view in views(images, flip, shift)]
        return np.mean(scores, axis=0, dtype="float32")

    return predict_views


def evaluate(predict, dataset, num_classes, batch_size=256):
    """Top-1/top-5 accuracy and the confusion matrix of `predict` on `dataset`.

    Args:
        predict: Maps image batches (as `dataset` yields them, batched) to
            scores `(batch, num_classes)`.
        dataset: Unbatched `(image, int label)` dataset (uint8 images, or
            preprocessed ones for `Classifier.predict_preprocessed`); labels
            are the model's class ids.
        num_classes: Number of classes of the model.
        batch_size: Evaluation batch size.

    Returns:
        A dict with `top1`, `top5`, `count` and `confusion_matrix`
        (a nested list, `[true][predicted]`).

    Raises:
        ValueError: `batch_size` is not positive, the dataset is empty,
            `predict` does not give `num_classes` scores per image, or a
            label is not a class id.

    Example:

    >>> images = np.zeros((4, 8, 8, 3), "uint8")
    >>> data = tf.data.Dataset.from_tensor_slices((images, [0, 1, 1, 1]))
    >>> result = evaluate(lambda x: np.tile([[0.1, 0.9]], (len(x), 1)), data, 2)
    >>> result["top1"], result["confusion_matrix"]
    (0.75, [[0, 1], [0, 3]])
    """
    from keras_wavevit.recipes.plots import confusion_matrix

    _check_batch_size(batch_size)
    top1 = top5 = count = 0
    true_all, predicted_all = [], []
    k = min(5, num_classes)
    for images, labels in dataset.batch(batch_size):
        scores = np.asarray(predict(images))
        labels = labels.numpy().astype(int)
        if scores.shape != (len(labels), num_classes):
            raise ValueError(
                f"The model gave scores of shape {scores.shape} for {len(labels)} "
                f"images; expected ({len(labels)}, {num_classes}), one per class."
            )
        if labels.min() < 0 or labels.max() >= num_classes:
            raise ValueError(
                f"Labels must be class ids in [0, {num_classes}); received "
                f"{sorted(set(labels.tolist()))}."
            )
        ranked = np.argsort(-scores, axis=-1)
        top1 += int(np.sum(ranked[:, 0] == labels))
        top5 += int(np.sum(np.any(ranked[:, :k] == labels[:, None], axis=-1)))
        count += len(labels)
        true_all.append(labels)
        predicted_all.append(ranked[:, 0])
    if not count:
        raise ValueError("The evaluation dataset is empty.")
    matrix = confusion_matrix(np.concatenate(true_all), np.concatenate(predicted_all), num_classes)
    return {
        "top1": top1 / count,
        "top5": top5 / count,
        "count": count,
        "confusion_matrix": matrix.tolist(),
    }


def default_output(model_path):
    """Where `evaluate_model` writes its files when no output is given.

    A `.keras` file: its directory. A SavedModel version directory
    `<base>/<version>`: `<base>-<version>-evaluation` beside the model base
    path, never inside it (the base path is what TensorFlow Serving reads).

    Args:
        model_path: The evaluated model.

    Returns:
        The directory, as an absolute path.

    Example:

    >>> default_output("/srv/models/wavevit/3")
    '/srv/models/wavevit-3-evaluation'
    >>> default_output("/runs/tiny/best.keras")
    '/runs/tiny'
    """
    model_path = os.path.abspath(os.fspath(model_path))
    if model_path.endswith(".keras"):
        return os.path.dirname(model_path)
    base, version = os.path.split(model_path.rstrip(os.sep))
    return f"{base}-{version}-evaluation"


def _check_data_arguments(data_dir, dataset, subset, image_size, preprocessing):
    if bool(data_dir) == bool(dataset):
        raise ValueError("Pass exactly one of data_dir (image folder) or dataset (TFDS).")
    if subset not in SUBSETS:
        raise ValueError(f"subset must be one of {SUBSETS}; received {subset!r}.")
    if image_size is None and (data_dir or preprocessing == "official"):
        raise ValueError(
            "The model's input size is unknown; pass image_size (--image-size), "
            "the size to read the images at (with the official preprocessing: "
            "its crop size)."
        )


def _read_own_size(data_dir, dataset, tfds_data_dir, split, subset, validation_fraction,
                   skip_bad_images):
    """`(unbatched dataset of uint8 images at their own size, class names)`.

    The official transform needs each image as stored; `recipes.data` reads
    images resized to one size, so its folder index and TFDS reader are used
    directly.
    """
    if dataset:
        builder, (images,) = data_lib._tfds_read(dataset, tfds_data_dir, [split], False)

        def rgb(image, label):
            if image.shape[-1] == 1:
                image = tf.image.grayscale_to_rgb(image)
            return image, tf.cast(label, tf.int32)

        return images.map(rgb), list(builder.info.features["label"].names)
    files = data_lib._index_folder(data_dir, 1, skip_bad_images)
    fraction = 0.0 if subset == "all" else validation_fraction
    kept, held_out = data_lib._hold_out(files, list(files), fraction)
    pairs = held_out if subset == "validation" else kept

    def read(path, label):
        data = tf.io.read_file(path)
        return tf.io.decode_image(data, channels=3, expand_animations=False), label

    paths = tf.constant([path for path, _ in pairs], tf.string)
    labels = tf.constant([label for _, label in pairs], tf.int32)
    dataset = tf.data.Dataset.from_tensor_slices((paths, labels))
    return dataset.map(read, num_parallel_calls=tf.data.AUTOTUNE), list(files)


def _read_data(data_dir, dataset, tfds_data_dir, split, subset, validation_fraction, image_size,
               skip_bad_images):
    """`(unbatched dataset, class names)` of the data to evaluate on."""
    if dataset:
        splits = data_lib.load_tfds(
            dataset, data_dir=tfds_data_dir, image_size=image_size,
            train_split=split, validation_split=split, cache=False,
        )
        return splits.train, splits.class_names
    fraction = 0.0 if subset == "all" else validation_fraction
    # One class is enough: the classes are matched against the model's.
    splits = data_lib.load_image_folder(
        data_dir, image_size=image_size, validation_fraction=fraction, cache=False,
        skip_bad_images=skip_bad_images, min_classes=1,
    )
    chosen = splits.validation if subset == "validation" else splits.train
    return chosen, splits.class_names


def _prepared_data(classifier, data_arguments, image_size, preprocessing, skip_bad_images):
    """`(unbatched dataset, class names, predict)` for the chosen preprocessing."""
    if preprocessing == "official":
        images, class_names = _read_own_size(*data_arguments, skip_bad_images)
        images = images.map(
            lambda image, label: (preprocess_official(image, image_size), label),
            num_parallel_calls=tf.data.AUTOTUNE,
        )
        return images, class_names, classifier.predict_preprocessed
    images, class_names = _read_data(*data_arguments, image_size, skip_bad_images)
    return images, class_names, classifier.predict


def _class_notes(data_class_names, classifier):
    """What the class check assumed, for the user to read."""
    if classifier.class_names is None:
        return [COUNT_MATCH_NOTE.format(count=classifier.num_classes)]
    absent = [name for name in classifier.class_names if name not in data_class_names]
    if absent:
        return [f"The data holds no images of the model's classes {absent}."]
    return []


def _view_notes(classifier):
    """A note when the model averages over views by itself."""
    if classifier.test_time_views > 1:
        return [
            f"The model averages its scores over {classifier.test_time_views} views of "
            "each image by itself (exported with test-time averaging)."
        ]
    return []


def _write_report(result, output):
    """Writes `confusion_matrix.png` and `evaluation.json` atomically."""
    from keras_wavevit.recipes.plots import plot_confusion_matrix

    os.makedirs(output, exist_ok=True)
    figure = os.path.join(output, "confusion_matrix.png")
    with atomic_path(figure) as temporary:
        plot_confusion_matrix(
            result["confusion_matrix"], result["class_names"], temporary,
            title=f"Confusion matrix (top-1 {result['top1']:.2%}, n={result['count']})",
        )
    report = os.path.join(output, "evaluation.json")
    atomic_write_text(report, json.dumps(result, indent=2) + "\n")
    return figure, report


def evaluate_model(
    model,
    data_dir=None,
    dataset=None,
    tfds_data_dir=None,
    split="test",
    subset="all",
    validation_fraction=0.1,
    image_size=None,
    batch_size=256,
    output=None,
    skip_bad_images=False,
    preprocessing=None,
    flip_average=False,
    shift_average=0,
):
    """Evaluates a model file on data and writes the confusion matrix and numbers.

    The data's classes are checked against the model's first (see
    `match_classes`): a mismatch raises before any image is scored.

    Args:
        model: A `.keras` file or a SavedModel version directory.
        data_dir: An image folder `root/<class>/<image>` (or `dataset`).
        dataset: A prepared TFDS dataset name (or `data_dir`).
        tfds_data_dir: The TFDS data directory.
        split: The TFDS split to evaluate.
        subset: For an image folder: `"all"` images, or the training
            recipe's `"validation"` or `"train"` split of it.
        validation_fraction: The share held out by that split.
        image_size: `(height, width)` (or an int) to read images at, the
            crop size with the official preprocessing (default: the model's
            input size, or the size a SavedModel resizes to).
        batch_size: Evaluation batch size.
        output: Directory for `confusion_matrix.png` and `evaluation.json`
            (default: `default_output(model)`, never inside a SavedModel).
        skip_bad_images: Skip (with a warning naming them) image-folder
            files that are not whole images, instead of refusing the folder.
        preprocessing: `"resize"` or `"official"` (see the module
            docstring); `None` (the default): `"resize"` for a `.keras`
            file, the recorded preprocessing for a SavedModel.
        flip_average: Score each image as the mean of the model's scores
            for it and for its mirror image (`averaged_over_views`), for
            models trained with random flips; it costs a second pass.
        shift_average: Also average over the image shifted by this many
            pixels in the four diagonal directions, edges reflected (and
            their mirror images with `flip_average`), for models trained
            with translations; 0 (the default): no shifts. With one pixel
            and flips, 10 passes.

    Returns:
        The `evaluate` dict plus `class_names` (the rows of the matrix),
        `notes` (what the class check assumed, and whether the model
        averages over views by itself), `flip_average`,
        `shift_average`,
        `preprocessing` and `image_size` (what the images went through),
        and `figure` / `report`, the files written.

    Raises:
        ValueError: Bad arguments, an unreadable model, or data whose
            classes do not match the model's.

    Example:

    >>> result = evaluate_model("runs/tiny/saved_model/1", data_dir="test")  # doctest: +SKIP
    >>> result["top1"], result["report"]  # doctest: +SKIP
    (0.71, '/work/runs/tiny/saved_model-1-evaluation/evaluation.json')
    """
    _check_batch_size(batch_size)
    check_flip(flip_average)
    check_shift(shift_average)
    if preprocessing is not None:
        check_preprocessing(preprocessing)
    classifier = load_classifier(model)
    preprocessing = preprocessing or check_preprocessing(classifier.preprocessing)
    image_size = image_size or classifier.image_size
    if isinstance(image_size, int):
        image_size = (image_size, image_size)
    _check_data_arguments(data_dir, dataset, subset, image_size, preprocessing)
    check_shift(shift_average, image_size)
    images, data_class_names, predict = _prepared_data(
        classifier, (data_dir, dataset, tfds_data_dir, split, subset, validation_fraction),
        image_size, preprocessing, skip_bad_images,
    )
    label_map = tf.constant(
        match_classes(data_class_names, classifier.class_names, classifier.num_classes)
    )
    images = images.map(lambda image, label: (image, tf.gather(label_map, label)))
    if flip_average or shift_average:
        predict = averaged_over_views(predict, flip=flip_average, shift=shift_average)
    result = evaluate(predict, images, classifier.num_classes, batch_size)
    result["flip_average"] = bool(flip_average)
    result["shift_average"] = int(shift_average)
    result["preprocessing"] = preprocessing
    result["image_size"] = None if image_size is None else list(image_size)
    result["class_names"] = classifier.class_names or list(data_class_names)
    result["notes"] = _class_notes(data_class_names, classifier) + _view_notes(classifier)
    result["figure"], result["report"] = _write_report(result, output or default_output(model))
    return result
