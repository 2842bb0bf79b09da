"""Pixel preprocessing shared by training, evaluation and the exported model.

Models take images normalised with the ImageNet mean and standard deviation
(as the official Wave-ViT and its checkpoints do); `normalize_images` maps
pixel values in [0, 255] to that range. The input pipelines and the serving
signature both call it, so training and serving can never disagree.

`preprocess_official` is the official evaluation transform of the PyTorch
release (bicubic resize of the short side to `floor(224 / 0.96)` = 233, a
224 centre crop, then `normalize_images`): what converted checkpoints are
evaluated with, and what `export_saved_model(..., preprocessing="official")`
runs in the served graph. It uses TensorFlow ops, imported on first call.
"""

import math

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


OFFICIAL_CROP_PCT = 0.96
OFFICIAL_IMAGE_SIZE = 224
# The preprocessing choices of the export and of evaluation: "resize" (the
# training recipe's bilinear resize) or "official" (`preprocess_official`).
PREPROCESSINGS = ("resize", "official")


def check_preprocessing(preprocessing):
    """Returns `preprocessing` if it names one of `PREPROCESSINGS`.

    Args:
        preprocessing: `"resize"` or `"official"`.

    Returns:
        `preprocessing`.

    Raises:
        ValueError: Any other value, naming the choices.

    Example:

    >>> check_preprocessing("official")
    'official'
    >>> check_preprocessing("crop")
    Traceback (most recent call last):
    ...
    ValueError: preprocessing must be one of ('resize', 'official'); received 'crop'.
    """
    if preprocessing not in PREPROCESSINGS:
        raise ValueError(
            f"preprocessing must be one of {PREPROCESSINGS}; received {preprocessing!r}."
        )
    return preprocessing


def _check_crop_pct(crop_pct):
    if (
        isinstance(crop_pct, bool)
        or not isinstance(crop_pct, (int, float))
        or not 0 < crop_pct <= 1
    ):
        raise ValueError(
            f"crop_pct must be a number in (0, 1] (the share of the resized "
            f"image the centre crop keeps); received {crop_pct!r}."
        )
    return float(crop_pct)


def _check_crop_size(image_size):
    if isinstance(image_size, int) and not isinstance(image_size, bool):
        image_size = (image_size, image_size)
    try:
        image_size = tuple(image_size)
    except TypeError:
        image_size = (image_size,)
    if len(image_size) != 2 or not all(
        isinstance(size, int) and not isinstance(size, bool) and size > 0
        for size in image_size
    ):
        raise ValueError(
            "image_size must be a positive integer or (height, width); "
            f"received {image_size!r}."
        )
    return image_size


def official_resize_size(image_size=OFFICIAL_IMAGE_SIZE, crop_pct=OFFICIAL_CROP_PCT):
    """The size the official evaluation resizes to before its centre crop.

    `math.floor(size / crop_pct)` per side, as timm's
    `transforms_imagenet_eval` computes it.

    Args:
        image_size: The crop size, an int or `(height, width)`.
        crop_pct: The share of the resized image the crop keeps, in (0, 1].

    Returns:
        `(height, width)` of the resize (for a square crop: the short side
        of the resized image, on both entries).

    Raises:
        ValueError: `image_size` is not positive integers or `crop_pct` is
            not in (0, 1].

    Example:

    >>> official_resize_size(224), official_resize_size(384)
    ((233, 233), (400, 400))
    """
    image_size = _check_crop_size(image_size)
    crop_pct = _check_crop_pct(crop_pct)
    return tuple(math.floor(size / crop_pct) for size in image_size)


def _check_images(images):
    """`(float32 batch, was single)`; refuses bad ranks and channels."""
    import tensorflow as tf

    images = tf.convert_to_tensor(images)
    if not (images.dtype.is_integer or images.dtype.is_floating):
        raise ValueError(
            f"images must hold integer or real pixel values; received {images.dtype.name}."
        )
    rank = images.shape.rank
    if rank not in (3, 4):
        raise ValueError(
            "images must be one image (height, width, 3) or a batch (batch, "
            f"height, width, 3); received shape {images.shape}."
        )
    if images.shape[-1] != 3:
        raise ValueError(
            f"images must have 3 (RGB) channels last; received shape {images.shape}."
        )
    images = tf.cast(images, tf.float32)
    return (images[tf.newaxis] if rank == 3 else images), rank == 3


def _resized_shape(height, width, resize_size):
    """torchvision's `Resize(int)` sizes: short side to the size, long side truncated."""
    import tensorflow as tf

    if resize_size[0] != resize_size[1]:
        return tf.constant(resize_size, tf.int32)
    size = tf.constant(resize_size[0], tf.int64)
    height, width = tf.cast(height, tf.int64), tf.cast(width, tf.int64)
    tall = width <= height
    new_height = tf.where(tall, size * height // width, size)
    new_width = tf.where(tall, size, size * width // height)
    return tf.cast(tf.stack([new_height, new_width]), tf.int32)


def _resize_like_pil(images, shape):
    """PIL's bicubic resize: width pass, 8-bit rounding, height pass, 8-bit rounding."""
    import tensorflow as tf

    def resize(images, size):
        resized = tf.image.resize(images, size, method="bicubic", antialias=True)
        return tf.clip_by_value(tf.round(resized), 0.0, 255.0)

    wide = resize(images, tf.stack([tf.shape(images)[1], shape[1]]))
    return resize(wide, shape)


def _centre_crop(images, shape, image_size):
    """torchvision's `CenterCrop`: offsets `round((size - crop) / 2)`, half to even."""
    import tensorflow as tf

    offsets = tf.cast(
        tf.round(tf.cast(shape - tf.constant(image_size), tf.float64) / 2.0), tf.int32
    )
    cropped = images[
        :,
        offsets[0]:offsets[0] + image_size[0],
        offsets[1]:offsets[1] + image_size[1],
        :,
    ]
    return tf.ensure_shape(cropped, (None, *image_size, 3))


def preprocess_official(images, image_size=OFFICIAL_IMAGE_SIZE, crop_pct=OFFICIAL_CROP_PCT):
    """The official Wave-ViT evaluation transform (timm's, `crop_pct=0.96`).

    What the PyTorch release evaluates its checkpoints with (timm's
    `transforms_imagenet_eval`, bicubic): resize so the short side is
    `official_resize_size(image_size, crop_pct)` (233 for 224; the long side
    `int(233 * long / short)`, as torchvision's `Resize(int)`), centre-crop
    `image_size` (offsets rounded half to even, as torchvision's
    `CenterCrop`), then `normalize_images`. For a non-square `image_size`
    both sides are resized to `floor(side / crop_pct)`, as timm does.

    The resize follows PIL's bicubic filter, which the official pipeline
    uses: a width pass, then a height pass, each
    `tf.image.resize(..., method="bicubic", antialias=True)` (Keys' cubic
    kernel with a = -0.5, widened when shrinking, as PIL's) rounded and
    clipped to 8-bit values as PIL stores them between and after its
    passes. It agrees with PIL's output to within two grey levels on rare
    pixels (PIL's weights are fixed-point, TensorFlow's float32, so a value
    near a rounding tie can go either way). It runs with TensorFlow ops
    (TensorFlow must be installed, whatever the Keras backend), so it works
    inside `tf.data` pipelines and exported graphs.

    Args:
        images: One image `(height, width, 3)` or a batch
            `(batch, height, width, 3)` of RGB pixel values in [0, 255]
            (uint8, or any integer or float dtype), any size.
        image_size: The crop size: an int or `(height, width)`.
        crop_pct: The share of the resized image the crop keeps, in (0, 1].

    Returns:
        A float32 TensorFlow tensor `(image_size..., 3)`, or
        `(batch, image_size..., 3)` for a batch, normalised with the
        ImageNet mean and standard deviation.

    Raises:
        ValueError: `images` is not rank 3 or 4 with 3 channels last, or
            `image_size` / `crop_pct` is out of range (checked before any
            work).

    Example:

    >>> import numpy as np
    >>> image = np.full((300, 400, 3), 255, "uint8")
    >>> out = preprocess_official(image)
    >>> tuple(out.shape), round(float(out[0, 0, 0]), 3)
    ((224, 224, 3), 2.249)
    """
    import tensorflow as tf

    resize_size = official_resize_size(image_size, crop_pct)
    image_size = _check_crop_size(image_size)
    batch, single = _check_images(images)
    shape = _resized_shape(tf.shape(batch)[1], tf.shape(batch)[2], resize_size)
    resized = _resize_like_pil(batch, shape)
    normalized = normalize_images(_centre_crop(resized, shape, image_size))
    return normalized[0] if single else normalized
