"""The SavedModel client: answers from an exported version directory.

`SavedModelClassifier` is the one place the package calls an exported
SavedModel (`keras_wavevit.export.export_saved_model`): the training
recipe's "answer a prediction from the SavedModel" step and `evaluate` on a
SavedModel both go through it. It needs TensorFlow only, as a production
client would: the Keras model is not rebuilt.
"""

import json
import os

import numpy as np
import tensorflow as tf

from keras_wavevit.export import CLASS_NAMES_ASSET, PREPROCESSING_ASSET


def _check_version_directory(path):
    if not os.path.exists(path):
        raise FileNotFoundError(f"SavedModel directory not found: {path!r}.")
    if not os.path.isfile(os.path.join(path, "saved_model.pb")):
        raise ValueError(
            f"{path!r} is not a SavedModel version directory (it holds no "
            "saved_model.pb); pass the numbered directory, e.g. saved_model/1."
        )


def _read_class_names(path):
    asset = os.path.join(path, "assets", CLASS_NAMES_ASSET)
    if not os.path.isfile(asset):
        return None
    with open(asset, encoding="utf-8") as handle:
        return [line.rstrip("\r\n") for line in handle if line.strip()]


def _read_preprocessing(path):
    """The export's `preprocessing.json` record, or `None` (an older export)."""
    asset = os.path.join(path, "assets", PREPROCESSING_ASSET)
    if not os.path.isfile(asset):
        return None
    with open(asset, encoding="utf-8") as handle:
        return json.load(handle)


def _input_spec(signature):
    specs = signature.structured_input_signature[1]
    if list(specs) != ["images"]:
        raise ValueError(
            "The SavedModel's serving_default must take one input `images`; "
            f"it takes {sorted(specs)}."
        )
    return specs["images"]


class SavedModelClassifier:
    """Classifies uint8 images with an exported SavedModel version directory.

    Loads `path` with `tf.saved_model.load` and calls its `serving_default`
    signature (uint8 images of any size; the graph preprocesses them as the
    export recorded), or `serving_preprocessed` for images preprocessed
    outside the graph (`predict_preprocessed`).

    Attributes:
        path: The version directory.
        class_names: Class names from the export's `class_names.txt` asset
            (line `i` is class `i`), or `None` when exported without them.
        image_size: `(height, width)` the graph resizes images to (the input
            of `serving_preprocessed`, else the export's record), or `None`
            if the SavedModel does not say.
        preprocessing: The in-graph preprocessing the export records in
            `assets/preprocessing.json`: `"resize"` (bilinear) or
            `"official"` (the official evaluation transform), or `None` for
            a SavedModel without that record.
        num_classes: Length of the `probabilities` output, or `None` if the
            signature leaves it open.
        test_time_views: How many views of each image the SavedModel
            averages its scores over (exported with `flip_average` or
            `shift_average`, see `keras_wavevit.test_time`); 1 for a
            single-view export or one without that record.

    Args:
        path: A SavedModel version directory (`<base>/<version>`, holding
            `saved_model.pb`).

    Raises:
        FileNotFoundError: `path` does not exist.
        ValueError: `path` is not a SavedModel version directory, or its
            `serving_default` does not take uint8 `images`.

    Example:

    >>> client = SavedModelClassifier("runs/tiny/saved_model/1")  # doctest: +SKIP
    >>> client.class_names[:2], client.image_size  # doctest: +SKIP
    (['airplane', 'automobile'], (32, 32))
    >>> client.predict(images)["classes"][0]  # doctest: +SKIP
    b'cat'
    """

    def __init__(self, path):
        self.path = os.fspath(path)
        _check_version_directory(self.path)
        self._loaded = tf.saved_model.load(self.path)
        signatures = self._loaded.signatures
        if "serving_default" not in signatures:
            raise ValueError(
                f"The SavedModel at {self.path!r} has no serving_default signature "
                f"(it has {sorted(signatures)})."
            )
        self._serve = signatures["serving_default"]
        spec = _input_spec(self._serve)
        if spec.dtype != tf.uint8:
            raise ValueError(
                f"The SavedModel's serving_default takes {spec.dtype.name} images; "
                "SavedModelClassifier sends uint8 pixels."
            )
        self.class_names = _read_class_names(self.path)
        record = _read_preprocessing(self.path) or {}
        self.preprocessing = record.get("preprocessing")
        self.test_time_views = int((record.get("test_time_views") or {}).get("count", 1))
        self._preprocessed = signatures.get("serving_preprocessed")
        self.image_size = tuple(record["image_size"]) if record.get("image_size") else None
        if self._preprocessed is not None:
            size = tuple(_input_spec(self._preprocessed).shape[1:3])
            self.image_size = self.image_size if None in size else size
        probabilities = self._serve.structured_outputs.get("probabilities")
        self.num_classes = None if probabilities is None else probabilities.shape[-1]

    def predict(self, images):
        """Every output of `serving_default` for a batch of images.

        Args:
            images: uint8 array `(batch, height, width, 3)`, any size.

        Returns:
            A dict of numpy arrays, every output of the signature:
            `classes` (bytes: the class names, or the class ids written as
            strings for an export without class names), `class_ids`
            (int64), `probabilities`, and `top_k_classes`,
            `top_k_class_ids`, `top_k_probabilities` and `logits` when the
            export has them (see `keras_wavevit.export`).

        Raises:
            ValueError: `images` is not a uint8 `(batch, height, width, 3)`
                array.

        Example:

        >>> client.predict(np.zeros((2, 40, 40, 3), "uint8"))["class_ids"]  # doctest: +SKIP
        array([3, 3])
        """
        images = np.asarray(images)
        if images.dtype != np.uint8 or images.ndim != 4 or images.shape[-1] != 3:
            raise ValueError(
                "images must be a uint8 array (batch, height, width, 3); received "
                f"{images.dtype} with shape {images.shape}."
            )
        outputs = self._serve(images=tf.constant(images))
        return {name: value.numpy() for name, value in outputs.items()}

    def predict_preprocessed(self, images):
        """Every output of `serving_preprocessed` for preprocessed images.

        For images preprocessed outside the graph (e.g. by
        `keras_wavevit.preprocessing.preprocess_official` in a `tf.data`
        pipeline): the signature applies no preprocessing.

        Args:
            images: float32 `(batch, height, width, 3)` at `image_size`,
                normalised.

        Returns:
            A dict of numpy arrays, as `predict`.

        Raises:
            ValueError: The SavedModel has no `serving_preprocessed`
                signature.

        Example:

        >>> from keras_wavevit.preprocessing import preprocess_official  # doctest: +SKIP
        >>> batch = preprocess_official(images, client.image_size)  # doctest: +SKIP
        >>> client.predict_preprocessed(batch)["class_ids"]  # doctest: +SKIP
        array([3, 3])
        """
        if self._preprocessed is None:
            raise ValueError(
                f"The SavedModel at {self.path!r} has no serving_preprocessed "
                "signature to take preprocessed images."
            )
        outputs = self._preprocessed(images=tf.cast(images, tf.float32))
        return {name: value.numpy() for name, value in outputs.items()}
