"""ImageNet-1k class names and `decode_predictions`, as in keras.applications.

The 1000 classes of ImageNet-1k (ILSVRC 2012) in the standard index order
(the order of the official Wave-ViT checkpoints' heads, and of
keras.applications and timm), shipped with the package as
`keras_wavevit/data/imagenet_classes.json` (from keras-hub, Apache-2.0):
`IMAGENET_WNIDS[i]` is the WordNet id of class `i` (`"n01440764"`) and
`IMAGENET_CLASS_NAMES[i]` its name (`"tench"`; words joined by `_`, as
keras.applications writes them).
"""

import json
from importlib import resources

import keras
import numpy as np

NUM_IMAGENET_CLASSES = 1000


def _read_classes():
    text = resources.files("keras_wavevit").joinpath("data", "imagenet_classes.json")
    classes = json.loads(text.read_text(encoding="utf-8"))["classes"]
    return tuple(wnid for wnid, _ in classes), tuple(name for _, name in classes)


IMAGENET_WNIDS, IMAGENET_CLASS_NAMES = _read_classes()


def decode_predictions(predictions, top=5):
    """The `top` most likely ImageNet classes of each image, most likely first.

    Like `keras.applications.imagenet_utils.decode_predictions`: works on
    logits or probabilities (whatever the model outputs; the scores are
    returned as given). Ties go to the lower class id.

    Args:
        predictions: `(batch, 1000)` scores (a NumPy array or any Keras
            backend tensor), e.g. `model.predict(images)` of a model with
            the ImageNet head.
        top: How many classes to return per image, from 1 to 1000.

    Returns:
        A list with one list per image of `(wnid, class_name, score)`
        tuples, `score` a Python float.

    Raises:
        ValueError: `predictions` is not `(batch, 1000)`, or `top` is out of
            range.

    Example:

    >>> import numpy as np
    >>> scores = np.zeros((1, 1000), "float32")
    >>> scores[0, [1, 207]] = 0.3, 0.7
    >>> [(wnid, name, round(score, 2)) for wnid, name, score in
    ...  decode_predictions(scores, top=2)[0]]
    [('n02099601', 'golden_retriever', 0.7), ('n01443537', 'goldfish', 0.3)]
    """
    scores = np.asarray(keras.ops.convert_to_numpy(predictions))
    if scores.ndim != 2 or scores.shape[1] != NUM_IMAGENET_CLASSES:
        raise ValueError(
            "decode_predictions expects a batch of ImageNet scores of shape "
            f"(batch, {NUM_IMAGENET_CLASSES}); received shape {scores.shape}."
        )
    if isinstance(top, bool) or not isinstance(top, int) or not 1 <= top <= NUM_IMAGENET_CLASSES:
        raise ValueError(
            f"top must be an integer from 1 to {NUM_IMAGENET_CLASSES}; received {top!r}."
        )
    ranked = np.argsort(-scores, axis=-1, kind="stable")[:, :top]
    return [
        [(IMAGENET_WNIDS[i], IMAGENET_CLASS_NAMES[i], float(row[i])) for i in ids]
        for row, ids in zip(scores, ranked)
    ]
