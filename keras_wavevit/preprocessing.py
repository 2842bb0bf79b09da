"""Pixel normalisation shared by training, evaluation and the exported model.

Models take images normalised with the ImageNet mean and standard deviation
(as the official Wave-ViT and its checkpoints do); `normalize_images` maps
pixel values in [0, 255] to that range. The input pipelines and the serving
signature both call it, so training and serving can never disagree.
"""

import keras
from keras import ops

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def normalize_images(images):
    """Maps RGB pixel values in [0, 255] to ImageNet-normalised floats.

    Args:
        images: `(..., 3)` tensor of pixel values in [0, 255], any real or
            integer dtype.

    Returns:
        float32 tensor `(images / 255 - mean) / std`. A TensorFlow tensor
        (e.g. inside a `tf.data` pipeline) gives a TensorFlow tensor on every
        Keras backend.

    Example:

    >>> import numpy as np
    >>> out = normalize_images(np.full((1, 1, 1, 3), 255, "uint8"))
    >>> [round(float(v), 3) for v in np.asarray(out).ravel()]
    [2.249, 2.429, 2.64]
    """
    if keras.backend.backend() != "tensorflow" and _is_tensorflow_tensor(images):
        import tensorflow as tf

        images = tf.cast(images, tf.float32) / 255.0
        return (images - IMAGENET_MEAN) / IMAGENET_STD
    images = ops.cast(images, "float32") / 255.0
    mean = ops.convert_to_tensor(IMAGENET_MEAN, dtype="float32")
    std = ops.convert_to_tensor(IMAGENET_STD, dtype="float32")
    return (images - mean) / std


def _is_tensorflow_tensor(value):
    # Checked by type name: importing TensorFlow here would defeat its
    # absence from `import keras_wavevit` on other backends.
    return type(value).__module__.startswith("tensorflow")
