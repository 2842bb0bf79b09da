"""`keras-wavevit evaluate`: top-1/top-5 accuracy and a confusion matrix.

Evaluates a trained model (a `.keras` file, or an exported SavedModel
version directory) on an image folder, the held-out split of one, or a TFDS
split, prints top-1/top-5 accuracy and writes a confusion-matrix PNG and a
JSON file of the numbers.

Example:

    keras-wavevit evaluate runs/tiny/best.keras --data-dir cifar10/test
    keras-wavevit evaluate runs/tiny/saved_model/1 --data-dir train --subset validation
"""

import argparse
import json
import os

import keras
import numpy as np
import tensorflow as tf

from keras_wavevit.recipes import data as data_lib

SUBSETS = ("all", "validation", "train")


class _SavedModelClassifier:
    """Calls a SavedModel's `serving_default` on uint8 batches -> probabilities."""

    def __init__(self, path):
        self.serve = tf.saved_model.load(path).signatures["serving_default"]

    def __call__(self, images):
        return self.serve(images=tf.cast(images, tf.uint8))["probabilities"].numpy()


def load_classifier(path):
    """Loads a `.keras` model or a SavedModel directory for evaluation.

    Args:
        path: A `.keras` file or a SavedModel directory
            (`saved_model/<version>`).

    Returns:
        `(predict, image_size)`: `predict` maps uint8 image batches to
        scores `(batch, classes)`; `image_size` is the model's `(height,
        width)` or `None` for a SavedModel (which resizes any size itself).

    Raises:
        ValueError: If `path` is neither.

    Example:

    >>> predict, size = load_classifier("runs/tiny/best.keras")  # doctest: +SKIP
    >>> size  # doctest: +SKIP
    (32, 32)
    """
    if os.path.isdir(path) and os.path.isfile(os.path.join(path, "saved_model.pb")):
        return _SavedModelClassifier(path), None
    if os.path.isfile(path) and path.endswith(".keras"):
        model = keras.saving.load_model(path)
        size = tuple(model.input_shape[1:3])

        def predict(images):
            inputs = data_lib.normalize_images(tf.cast(images, tf.float32))
            return np.asarray(model.predict_on_batch(inputs), dtype="float32")

        return predict, (size if None not in size else None)
    raise ValueError(
        f"Cannot load a model from {path!r}: expected a .keras file or a SavedModel "
        "directory containing saved_model.pb."
    )


def evaluate(predict, dataset, num_classes, batch_size=256):
    """Top-1/top-5 accuracy and the confusion matrix of `predict` on `dataset`.

    Args:
        predict: Maps uint8 image batches to scores `(batch, classes)`.
        dataset: Unbatched `(uint8 image, int label)` dataset.
        num_classes: Number of classes.
        batch_size: Evaluation batch size.

    Returns:
        A dict with `top1`, `top5`, `count` and `confusion_matrix`
        (a nested list, `[true][predicted]`).

    Example:

    >>> images = np.zeros((4, 8, 8, 3), "uint8")
    >>> data = tf.data.Dataset.from_tensor_slices((images, [0, 1, 1, 1]))
    >>> result = evaluate(lambda x: np.tile([[0.1, 0.9]], (len(x), 1)), data, 2)
    >>> result["top1"], result["confusion_matrix"]
    (0.75, [[0, 1], [0, 3]])
    """
    from keras_wavevit.recipes.plots import confusion_matrix

    top1 = top5 = count = 0
    true_all, predicted_all = [], []
    k = min(5, num_classes)
    for images, labels in dataset.batch(batch_size):
        scores = np.asarray(predict(images))
        labels = labels.numpy().astype(int)
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


def configure_parser(parser):
    """Adds the `evaluate` arguments to `parser`.

    Args:
        parser: An `argparse.ArgumentParser`.

    Example:

    >>> parser = argparse.ArgumentParser()
    >>> configure_parser(parser)
    >>> parser.parse_args(["m.keras", "--data-dir", "d"]).subset
    'all'
    """
    parser.formatter_class = argparse.ArgumentDefaultsHelpFormatter
    parser.add_argument("model", help="a .keras file or a SavedModel version directory")
    parser.add_argument("--data-dir", help="image folder root/<class>/<image>")
    parser.add_argument("--dataset", help="TFDS dataset name (must be prepared)")
    parser.add_argument("--tfds-data-dir", help="TFDS data directory")
    parser.add_argument("--split", default="test", help="TFDS split to evaluate")
    parser.add_argument("--subset", choices=SUBSETS, default="all",
                        help="image folder: every image, or the training recipe's "
                        "validation/train split (see --validation-fraction)")
    parser.add_argument("--validation-fraction", type=float, default=0.1)
    parser.add_argument("--image-size", type=int, nargs=2, metavar=("H", "W"),
                        help="size to read images at (default: the model's)")
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--output", help="directory for confusion_matrix.png and "
                        "evaluation.json (default: next to the model)")


def run(args):
    """Runs `keras-wavevit evaluate` with parsed arguments.

    Args:
        args: The `argparse.Namespace` from `configure_parser`'s parser.

    Returns:
        0 on success.

    Example:

    >>> from keras_wavevit.cli import main
    >>> main(["evaluate", "runs/tiny/best.keras", "--data-dir", "test"])  # doctest: +SKIP
    0
    """
    from keras_wavevit.recipes.plots import plot_confusion_matrix

    if bool(args.data_dir) == bool(args.dataset):
        raise ValueError("Pass exactly one of --data-dir (image folder) or --dataset (TFDS).")
    predict, model_size = load_classifier(args.model)
    image_size = tuple(args.image_size) if args.image_size else model_size
    if args.dataset:
        splits = data_lib.load_tfds(
            args.dataset, data_dir=args.tfds_data_dir, image_size=image_size,
            train_split=args.split, validation_split=args.split, cache=False,
        )
        dataset = splits.train
    else:
        if image_size is None:
            raise ValueError("A SavedModel accepts any size; pass --image-size H W to read images.")
        fraction = 0.0 if args.subset == "all" else args.validation_fraction
        splits = data_lib.load_image_folder(
            args.data_dir, image_size=image_size, validation_fraction=fraction, cache=False
        )
        dataset = splits.validation if args.subset == "validation" else splits.train
    result = evaluate(predict, dataset, splits.num_classes, args.batch_size)
    result["class_names"] = splits.class_names
    output = args.output or (
        args.model if os.path.isdir(args.model) else os.path.dirname(os.path.abspath(args.model))
    )
    os.makedirs(output, exist_ok=True)
    figure = plot_confusion_matrix(
        result["confusion_matrix"], splits.class_names,
        os.path.join(output, "confusion_matrix.png"),
        title=f"Confusion matrix (top-1 {result['top1']:.2%}, n={result['count']})",
    )
    with open(os.path.join(output, "evaluation.json"), "w", encoding="utf-8") as file:
        json.dump(result, file, indent=2)
    print(f"Images: {result['count']}")
    print(f"Top-1 accuracy: {result['top1']:.4f}")
    print(f"Top-5 accuracy: {result['top5']:.4f}")
    print(f"Confusion matrix: {figure}")
    return 0
