"""Training-time augmentation: per-image transforms and batch mixing.

Built from Keras' own preprocessing layers, which run inside `tf.data`:
`RandomTranslation`, `RandomColorJitter`, `RandomFlip`, `RandomRotation`,
`RandomErasing`, `MixUp`, `CutMix`.
Keras has no random *resized* crop, so `RandomResizedCrop` here samples crop
boxes and resizes them with `tf.image.crop_and_resize`.

Seeds: one `seed` makes the whole augmentation repeatable, and each random
layer gets its own seed derived from it (`layer_seed(seed, name)`), so no two
layers draw the same random numbers (a flip never follows the sign of a
rotation, a crop's size never decides its position).
"""

import math
import zlib

import keras
import numpy as np
import tensorflow as tf

from keras_wavevit.precision import dtype_policy_scope

# The seed recipe's crop scale and rotation (RandomResizedCrop(scale=(0.6, 1)),
# RandomRotation(20)), colour jitter 0.2 and MixUp.
DEFAULT_CROP_SCALE = (0.6, 1.0)
DEFAULT_ROTATION_DEGREES = 20.0
DEFAULT_COLOR_JITTER = 0.2
DEFAULT_MIXUP_ALPHA = 0.2
# Random erasing's box: 2-33% of the image area (the Random Erasing paper's
# range), filled with mid-grey (Cutout): close to the ImageNet mean the
# pipeline normalises with, so 0.07-0.42 after normalisation, not exactly 0.
ERASING_AREA = (0.02, 0.33)
ERASING_FILL = 127.5


# Augmentation runs in the input pipeline on float32 pixels whatever the
# global policy: under mixed precision the model casts its own inputs,
# TensorFlow's image ops (`crop_and_resize`) take no bfloat16, and
# `RandomColorJitter` passes no dtype to its sub-layers, so its layers are
# created under a float32 global policy.
PIXEL_POLICY = "float32"


def layer_seed(seed, name):
    """The seed of one random layer, derived from the run's seed and a name.

    Different names give unrelated seeds (NumPy's `SeedSequence` of the seed
    and a checksum of the name), so layers seeded from the same run seed
    draw independent random numbers; the same seed and name always give the
    same result.

    Args:
        seed: The run's seed (int), or `None`.
        name: What the seed is for, e.g. `"flip"`.

    Returns:
        An int in `[0, 2**31)`, or `None` when `seed` is `None` (the layer
        then picks its own seed).

    Example:

    >>> layer_seed(0, "flip") == layer_seed(0, "flip") != layer_seed(0, "rotation")
    True
    >>> layer_seed(None, "flip") is None
    True
    """
    if seed is None:
        return None
    entropy = [int(seed) % 2**32, zlib.crc32(name.encode("utf-8"))]
    return int(np.random.SeedSequence(entropy).generate_state(1)[0] % 2**31)


@keras.saving.register_keras_serializable(package="keras_wavevit")
class RandomResizedCrop(keras.layers.Layer):
    """Crops a random area and aspect ratio of each image, resized back.

    The torchvision/Paddle `RandomResizedCrop` the seed recipe uses: a box of
    `scale` times the image area and aspect ratio in `ratio` (log-uniform),
    at a random position, bilinearly resized to `(height, width)`. Keras 3
    ships no such layer; this one uses `tf.image.crop_and_resize`, so it
    runs inside `tf.data` (TensorFlow only). Area, aspect ratio, top and
    left are four independent draws from a `keras.random.SeedGenerator`.
    At `training=False` the whole image is resized.

    Args:
        height: Output height.
        width: Output width.
        scale: `(min, max)` share of the image area to crop.
        ratio: `(min, max)` aspect ratio (width / height) of the crop.
        seed: Optional seed (the same seed gives the same crops).
        **kwargs: Base layer arguments.

    Example:

    >>> crop = RandomResizedCrop(32, 32, scale=(0.6, 1.0), seed=0)
    >>> crop(tf.zeros((2, 40, 40, 3)), training=True).shape
    TensorShape([2, 32, 32, 3])
    """

    def __init__(self, height, width, scale=(0.6, 1.0), ratio=(3 / 4, 4 / 3), seed=None, **kwargs):
        super().__init__(**kwargs)
        if min(height, width) < 1 or int(height) != height or int(width) != width:
            raise ValueError(
                "height and width must be positive ints; received "
                f"height={height!r}, width={width!r}."
            )
        if not 0 < scale[0] <= scale[1] <= 1:
            raise ValueError(f"scale must satisfy 0 < min <= max <= 1; received scale={scale}.")
        if not 0 < ratio[0] <= ratio[1]:
            raise ValueError(f"ratio must satisfy 0 < min <= max; received ratio={ratio}.")
        self.height = int(height)
        self.width = int(width)
        self.scale = tuple(scale)
        self.ratio = tuple(ratio)
        self.seed = seed
        self.seed_generator = keras.random.SeedGenerator(seed, name="seed_generator")

    def _boxes(self, batch):
        """Random `[top, left, bottom, right]` boxes, as fractions of the sides."""
        area, log_ratio, top, left = tf.unstack(
            keras.random.uniform((4, batch), seed=self.seed_generator)
        )
        area = self.scale[0] + area * (self.scale[1] - self.scale[0])
        low, high = math.log(self.ratio[0]), math.log(self.ratio[1])
        aspect = tf.exp(low + log_ratio * (high - low))
        # Box sides as fractions of the image sides, clipped to fit.
        box_h = tf.minimum(tf.sqrt(area / aspect), 1.0)
        box_w = tf.minimum(tf.sqrt(area * aspect), 1.0)
        top = top * (1.0 - box_h)
        left = left * (1.0 - box_w)
        return tf.stack([top, left, top + box_h, left + box_w], axis=1)

    def call(self, images, training=True):
        images = tf.convert_to_tensor(images)
        unbatched = images.shape.rank == 3
        if unbatched:
            images = images[tf.newaxis]
        images = tf.cast(images, self.compute_dtype)
        if not training:
            outputs = tf.image.resize(images, (self.height, self.width))
        else:
            batch = tf.shape(images)[0]
            outputs = tf.image.crop_and_resize(
                images, self._boxes(batch), tf.range(batch), (self.height, self.width)
            )
        outputs = tf.cast(outputs, self.compute_dtype)
        return outputs[0] if unbatched else outputs

    def compute_output_shape(self, input_shape):
        return (*input_shape[:-3], self.height, self.width, input_shape[-1])

    def get_config(self):
        config = super().get_config()
        config.update(
            height=self.height,
            width=self.width,
            scale=self.scale,
            ratio=self.ratio,
            seed=self.seed,
        )
        return config


def build_augmentation(
    image_size,
    crop_scale=DEFAULT_CROP_SCALE,
    rotation_degrees=DEFAULT_ROTATION_DEGREES,
    color_jitter=DEFAULT_COLOR_JITTER,
    horizontal_flip=True,
    translate=0.0,
    erasing=0.0,
    seed=None,
):
    """The per-image augmentation of the training split, as a Keras pipeline.

    In the seed recipe's order: random resized crop, colour jitter
    (brightness, contrast, saturation), horizontal flip, rotation; with a
    random translation after the crop (the pad-and-crop of CIFAR recipes:
    integer shifts, reflected edges) and random erasing last (a box of 2-33%
    of the area set to mid-grey), when asked for. Works on batches of pixel
    values in [0, 255]; any step can be turned off (`crop_scale=None`,
    `translate=0`, `rotation_degrees=0`, `color_jitter=0`,
    `horizontal_flip=False`, `erasing=0`). Each layer is seeded with
    `layer_seed(seed, <its name>)`, so the layers draw independently.

    Args:
        image_size: `(height, width)` of the output.
        crop_scale: `(min, max)` area share of the random resized crop, or
            `None` for no crop.
        rotation_degrees: Largest rotation either way, in degrees.
        color_jitter: Strength of the brightness/contrast/saturation jitter.
        horizontal_flip: Random left-right flips.
        translate: Largest shift either way, as a share of each side (0.125
            on 32x32 images: up to 4 pixels); 0 = off.
        erasing: Probability of erasing a random box of each image; 0 = off.
        seed: Optional seed of the whole pipeline.

    Returns:
        A `keras.layers.Pipeline` (identity at `training=False`) that
        computes in float32 whatever the global dtype policy.

    Example:

    >>> augment = build_augmentation((32, 32), seed=0)
    >>> augment(tf.zeros((4, 32, 32, 3)), training=True).shape
    TensorShape([4, 32, 32, 3])
    >>> [layer.name for layer in augment.layers]
    ['random_resized_crop', 'color_jitter', 'flip', 'rotation']
    >>> cifar = build_augmentation((32, 32), crop_scale=None, translate=0.125, rotation_degrees=0,
    ...                            color_jitter=0, erasing=0.25, seed=0)
    >>> [layer.name for layer in cifar.layers]
    ['translate', 'flip', 'erasing']
    """
    height, width = (image_size, image_size) if isinstance(image_size, int) else image_size
    if rotation_degrees < 0 or color_jitter < 0:
        raise ValueError(
            "rotation_degrees and color_jitter must be >= 0; received "
            f"rotation_degrees={rotation_degrees}, color_jitter={color_jitter}."
        )
    if not 0 <= translate < 1 or not 0 <= erasing <= 1:
        raise ValueError(
            "translate must be in [0, 1) and erasing in [0, 1]; received "
            f"translate={translate}, erasing={erasing}."
        )
    with dtype_policy_scope(PIXEL_POLICY):
        return keras.layers.Pipeline(
            _augmentation_layers(
                height, width, crop_scale, translate, rotation_degrees, color_jitter,
                horizontal_flip, erasing, seed,
            ),
            name="augmentation",
        )


def _augmentation_layers(
    height, width, crop_scale, translate, rotation_degrees, color_jitter, horizontal_flip,
    erasing, seed,
):
    layers = []
    if crop_scale is not None:
        layers.append(RandomResizedCrop(
            height, width, scale=crop_scale, seed=layer_seed(seed, "random_resized_crop"),
            name="random_resized_crop",
        ))
    if translate:
        layers.append(keras.layers.RandomTranslation(
            translate, translate, fill_mode="reflect", interpolation="nearest",
            seed=layer_seed(seed, "translate"), name="translate",
        ))
    if color_jitter:
        layers.append(keras.layers.RandomColorJitter(
            value_range=(0, 255),
            brightness_factor=color_jitter,
            contrast_factor=color_jitter,
            saturation_factor=(max(0.0, 0.5 - color_jitter / 2), min(1.0, 0.5 + color_jitter / 2)),
            seed=layer_seed(seed, "color_jitter"),
            name="color_jitter",
        ))
    if horizontal_flip:
        layers.append(
            keras.layers.RandomFlip("horizontal", seed=layer_seed(seed, "flip"), name="flip")
        )
    if rotation_degrees:
        layers.append(keras.layers.RandomRotation(
            rotation_degrees / 360.0, fill_mode="reflect", seed=layer_seed(seed, "rotation"),
            name="rotation",
        ))
    if erasing:
        layers.append(keras.layers.RandomErasing(
            factor=(erasing, erasing), scale=ERASING_AREA, fill_value=ERASING_FILL,
            value_range=(0, 255), seed=layer_seed(seed, "erasing"), name="erasing",
        ))
    return layers


def build_batch_mixing(mixup_alpha=DEFAULT_MIXUP_ALPHA, cutmix_alpha=0.0, seed=None):
    """MixUp and/or CutMix of a batch and its one-hot labels.

    Both blend each image with another one of the batch and the labels in
    the same proportion `lam ~ Beta(alpha, alpha)`: MixUp blends the pixels
    (Keras `MixUp(alpha=mixup_alpha)`), CutMix pastes a box of `1 - lam` of
    the area (Keras `CutMix(factor=(cutmix_alpha, cutmix_alpha))`: Keras
    draws the Beta parameter from the `factor` range, so a range of one
    value is exactly `alpha`; Keras caps it at 1, as the CutMix paper's
    `alpha = 1`, a uniform `lam`). When both are on, each batch gets one of
    them, chosen at random. Each of the three random parts has its own seed
    derived from `seed`.

    Args:
        mixup_alpha: MixUp's Beta parameter, >= 0; 0 turns MixUp off.
        cutmix_alpha: CutMix's Beta parameter, in [0, 1]; 0 turns it off.
        seed: Optional seed.

    Returns:
        A function `(float images (B, H, W, C), one-hot labels (B, K)) ->
        (images, labels)` for use inside `tf.data`, or `None` when both
        are off.

    Raises:
        ValueError: If an alpha is out of range.

    Example:

    >>> mix = build_batch_mixing(mixup_alpha=0.2, seed=0)
    >>> images, labels = mix(tf.zeros((4, 8, 8, 3)), tf.one_hot([0, 1, 2, 3], 4))
    >>> labels.shape
    TensorShape([4, 4])
    >>> build_batch_mixing(0.0, 0.0) is None
    True
    """
    if not mixup_alpha >= 0 or not 0 <= cutmix_alpha <= 1:
        raise ValueError(
            "mixup_alpha must be >= 0 and cutmix_alpha in [0, 1] (Keras' CutMix "
            f"takes Beta alphas up to 1); received mixup_alpha={mixup_alpha}, "
            f"cutmix_alpha={cutmix_alpha}."
        )
    mixers = []
    with dtype_policy_scope(PIXEL_POLICY):
        if mixup_alpha:
            mixers.append(keras.layers.MixUp(alpha=mixup_alpha, seed=layer_seed(seed, "mixup")))
        if cutmix_alpha:
            mixers.append(keras.layers.CutMix(
                factor=(cutmix_alpha, cutmix_alpha), seed=layer_seed(seed, "cutmix")
            ))
    if not mixers:
        return None
    chooser = keras.random.SeedGenerator(layer_seed(seed, "mixing_choice"))

    def mix(images, labels):
        data = {"images": images, "labels": labels}
        if len(mixers) == 1:
            mixed = mixers[0](data, training=True)
        else:
            mixed = tf.cond(
                keras.random.uniform((), seed=chooser) < 0.5,
                lambda: mixers[0](data, training=True),
                lambda: mixers[1](data, training=True),
            )
        return mixed["images"], tf.cast(mixed["labels"], tf.float32)

    return mix
