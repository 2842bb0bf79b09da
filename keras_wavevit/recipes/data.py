"""Input pipelines: TFDS datasets by name, image folders, the shipped sample.

Every loader returns an `ImageSplits`: unbatched `tf.data` datasets of
`(uint8 image (H, W, 3), int32 label)` for a training and a validation split,
with the class names. `train_pipeline` and `eval_pipeline` turn those into
batches the model trains on: ImageNet-normalised float32 images
(`keras_wavevit.preprocessing.normalize_images`) and one-hot float32 labels
(so MixUp/CutMix can blend them and `CategoricalCrossentropy(label_smoothing=)`
can smooth them).

Augmentation (training split only) is built from Keras' own preprocessing
layers, run inside `tf.data`: `RandomFlip`, `RandomRotation`,
`RandomColorJitter`, `MixUp`, `CutMix`. Keras has no random *resized* crop,
so `RandomResizedCrop` here samples crop boxes and resizes them with
`tf.image.crop_and_resize`.

The shipped sample (`sample_data_dir()`) holds 100 CIFAR-10 training images
per class (the first 100 of each class folder), so training runs offline.
"""

import dataclasses
import math
import os

import keras
import tensorflow as tf

from keras_wavevit.preprocessing import normalize_images

AUTOTUNE = tf.data.AUTOTUNE
SAMPLE_DATA_DIR = os.path.join(
    os.path.dirname(os.path.dirname(__file__)), "sample_data", "cifar10"
)
# The seed recipe's crop scale and rotation (RandomResizedCrop(scale=(0.6, 1)),
# RandomRotation(20)), colour jitter 0.2 and MixUp.
DEFAULT_CROP_SCALE = (0.6, 1.0)
DEFAULT_ROTATION_DEGREES = 20.0
DEFAULT_COLOR_JITTER = 0.2
DEFAULT_MIXUP_ALPHA = 0.2


@dataclasses.dataclass
class ImageSplits:
    """A training and a validation split with their class names.

    Attributes:
        train: Unbatched `tf.data.Dataset` of `(uint8 (H, W, 3), int32)`.
        validation: The same for the validation split.
        class_names: Names of the classes, index = label.
        num_train: Number of training examples.
        num_validation: Number of validation examples.
        image_size: `(height, width)` of every image.
    """

    train: tf.data.Dataset
    validation: tf.data.Dataset
    class_names: list
    num_train: int
    num_validation: int
    image_size: tuple

    @property
    def num_classes(self):
        """Number of classes."""
        return len(self.class_names)


def sample_data_dir():
    """Path of the CIFAR-10 sample shipped inside the package.

    100 JPEG images (32x32) per class in `<class>/<nnnn>.jpg` folders, the
    first 100 of each class of the CIFAR-10 training set.

    Returns:
        The directory, readable by `load_image_folder`.

    Example:

    >>> sorted(os.listdir(sample_data_dir()))[:3]
    ['airplane', 'automobile', 'bird']
    """
    return SAMPLE_DATA_DIR


def _check_image_size(image_size):
    if image_size is None:
        return None
    if isinstance(image_size, int):
        image_size = (image_size, image_size)
    image_size = tuple(int(v) for v in image_size)
    if len(image_size) != 2 or min(image_size) < 1:
        raise ValueError(
            "image_size must be a positive int or (height, width); "
            f"received image_size={image_size}."
        )
    return image_size


def _count(dataset):
    """Number of examples of a dataset (iterates once if the size is unknown)."""
    size = int(dataset.cardinality())
    if size >= 0:
        return size
    return int(dataset.reduce(0, lambda count, _: count + 1))


def _check_fraction(validation_fraction):
    if not 0.0 <= validation_fraction < 1.0:
        raise ValueError(
            "validation_fraction must be in [0, 1); received "
            f"validation_fraction={validation_fraction}."
        )


def load_image_folder(
    directory,
    image_size=(32, 32),
    validation_fraction=0.1,
    validation_directory=None,
    cache=True,
):
    """Reads a `root/<class>/<image>` folder into training/validation splits.

    Images are read with `keras.utils.image_dataset_from_directory` (JPEG,
    PNG, BMP, GIF), resized to `image_size` and kept as uint8. Labels are the
    class folders in alphabetical order. The validation split holds, for
    each class, the last `validation_fraction` of its files in name order
    (for the CIFAR-10 image folder with 0.1: the last 500 per class), so
    the split is stratified and the same on every run.

    Args:
        directory: Root folder with one sub-folder per class.
        image_size: `(height, width)` (or an int) to resize to.
        validation_fraction: Share of each class held out, in [0, 1).
            Ignored when `validation_directory` is given.
        validation_directory: A separate folder (same classes) to validate
            on, e.g. a test split.
        cache: Keep the decoded images in memory after the first pass.

    Returns:
        An `ImageSplits`.

    Raises:
        ValueError: If the folder is missing, holds no images, or an
            argument is out of range.

    Example:

    >>> splits = load_image_folder(sample_data_dir(), validation_fraction=0.1)
    >>> splits.num_train, splits.num_validation, splits.class_names[0]
    (900, 100, 'airplane')
    """
    image_size = _check_image_size(image_size)
    _check_fraction(validation_fraction)
    if not os.path.isdir(directory):
        raise ValueError(f"Image folder not found: directory={directory!r}.")

    def read(folder, class_names=None):
        dataset = keras.utils.image_dataset_from_directory(
            folder,
            labels="inferred",
            label_mode="int",
            class_names=class_names,
            image_size=image_size,
            batch_size=None,
            shuffle=False,
            verbose=False,
        )
        if not dataset.file_paths:
            raise ValueError(f"No images found under directory={folder!r}.")
        return dataset

    dataset = read(directory)
    class_names = list(dataset.class_names)
    paths = list(dataset.file_paths)
    as_uint8 = lambda image, label: (  # noqa: E731
        tf.cast(tf.clip_by_value(tf.round(image), 0, 255), tf.uint8),
        tf.cast(label, tf.int32),
    )

    if validation_directory is not None:
        train = dataset.map(as_uint8, num_parallel_calls=AUTOTUNE)
        validation_dataset = read(validation_directory, class_names)
        validation = validation_dataset.map(as_uint8, num_parallel_calls=AUTOTUNE)
        num_train, num_validation = len(paths), len(validation_dataset.file_paths)
    else:
        by_class = {}
        for path in paths:
            by_class.setdefault(os.path.dirname(path), []).append(path)
        held_out = set()
        for class_paths in by_class.values():
            count = int(round(len(class_paths) * validation_fraction))
            if count:
                held_out.update(sorted(class_paths)[-count:])
        is_validation = tf.constant([path in held_out for path in paths])
        flagged = tf.data.Dataset.zip(
            dataset, tf.data.Dataset.from_tensor_slices(is_validation)
        )
        drop_flag = lambda example, flag: as_uint8(*example)  # noqa: E731
        train = flagged.filter(lambda example, flag: ~flag).map(drop_flag)
        validation = flagged.filter(lambda example, flag: flag).map(drop_flag)
        num_validation = len(held_out)
        num_train = len(paths) - num_validation
        train = train.apply(tf.data.experimental.assert_cardinality(num_train))
        validation = validation.apply(
            tf.data.experimental.assert_cardinality(num_validation)
        )
    if cache:
        train, validation = train.cache(), validation.cache()
    return ImageSplits(
        train=train,
        validation=validation,
        class_names=class_names,
        num_train=num_train,
        num_validation=num_validation,
        image_size=image_size,
    )


def load_sample(image_size=(32, 32), validation_fraction=0.1):
    """The shipped CIFAR-10 sample (1,000 images) as training/validation splits.

    Args:
        image_size: `(height, width)` to resize to (the images are 32x32).
        validation_fraction: Share of each class held out.

    Returns:
        An `ImageSplits` (900 + 100 images with the default fraction).

    Example:

    >>> load_sample().num_classes
    10
    """
    return load_image_folder(
        sample_data_dir(), image_size=image_size, validation_fraction=validation_fraction
    )


def load_tfds(
    name,
    data_dir=None,
    image_size=None,
    validation_fraction=0.1,
    train_split="train",
    validation_split=None,
    download=False,
    cache=True,
):
    """Loads a TFDS image-classification dataset by name (e.g. `"cifar10"`).

    The dataset must be prepared under `data_dir` (the TFDS default
    `~/tensorflow_datasets` if `None`) unless `download=True`. The validation
    split is `validation_split` when given (e.g. `"test"`), otherwise the last
    `validation_fraction` of `train_split`.

    Args:
        name: TFDS name with `image` and `label` features.
        data_dir: TFDS data directory.
        image_size: `(height, width)` to resize to; `None` keeps the stored
            size (which must then be the same for all images).
        validation_fraction: Share of `train_split` held out, in [0, 1).
        train_split: The split to train on.
        validation_split: A separate split to validate on.
        download: Let TFDS download and prepare the dataset.
        cache: Keep the decoded images in memory after the first pass.

    Returns:
        An `ImageSplits`.

    Raises:
        ValueError: If the dataset is not prepared and `download=False`, or
            an argument is out of range.

    Example:

    >>> splits = load_tfds("cifar10", data_dir="~/tensorflow_datasets")  # doctest: +SKIP
    >>> splits.class_names[:2]  # doctest: +SKIP
    ['airplane', 'automobile']
    """
    import tensorflow_datasets as tfds

    image_size = _check_image_size(image_size)
    _check_fraction(validation_fraction)
    if validation_split is None:
        percent = int(round(100 * (1 - validation_fraction)))
        splits = [f"{train_split}[:{percent}%]", f"{train_split}[{percent}%:]"]
    else:
        splits = [train_split, validation_split]
    try:
        builder = tfds.builder(name, data_dir=data_dir)
    except Exception as error:  # tfds raises its own DatasetNotFoundError.
        raise ValueError(f"Unknown TFDS dataset {name!r}: {error}") from error
    if download:
        builder.download_and_prepare()
    try:
        train, validation = builder.as_dataset(split=splits, as_supervised=True)
    except Exception as error:
        raise ValueError(
            f"Could not read TFDS dataset {name!r} (splits {splits}) from "
            f"data_dir={data_dir!r}; is it prepared there (download=False)? {error}"
        ) from error
    label_feature = builder.info.features["label"]
    class_names = list(label_feature.names)
    image_shape = builder.info.features["image"].shape
    if image_size is None:
        if image_shape[0] is None or image_shape[1] is None:
            raise ValueError(
                f"TFDS dataset {name!r} has images of varying size; pass image_size."
            )
        image_size = (image_shape[0], image_shape[1])

    def prepare(image, label):
        if image.shape[-1] == 1:
            image = tf.image.grayscale_to_rgb(image)
        if tuple(image.shape[:2]) != tuple(image_size):
            image = tf.image.resize(image, image_size)
            image = tf.cast(tf.clip_by_value(tf.round(image), 0, 255), tf.uint8)
        return tf.cast(image, tf.uint8), tf.cast(label, tf.int32)

    train = train.map(prepare, num_parallel_calls=AUTOTUNE)
    validation = validation.map(prepare, num_parallel_calls=AUTOTUNE)
    if cache:
        train, validation = train.cache(), validation.cache()
    return ImageSplits(
        train=train,
        validation=validation,
        class_names=class_names,
        num_train=_count(train),
        num_validation=_count(validation),
        image_size=image_size,
    )


@keras.saving.register_keras_serializable(package="keras_wavevit")
class RandomResizedCrop(keras.layers.Layer):
    """Crops a random area and aspect ratio of each image, resized back.

    The torchvision/Paddle `RandomResizedCrop` the seed recipe uses: a box of
    `scale` times the image area and aspect ratio in `ratio` (log-uniform),
    at a random position, bilinearly resized to `(height, width)`. Keras 3
    ships no such layer; this one uses `tf.image.crop_and_resize`, so it
    runs inside `tf.data` (TensorFlow only). Identity when `training=False`.

    Args:
        height: Output height.
        width: Output width.
        scale: `(min, max)` share of the image area to crop.
        ratio: `(min, max)` aspect ratio (width / height) of the crop.
        seed: Optional seed.
        **kwargs: Base layer arguments.

    Example:

    >>> crop = RandomResizedCrop(32, 32, scale=(0.6, 1.0))
    >>> crop(tf.zeros((2, 40, 40, 3)), training=True).shape
    TensorShape([2, 32, 32, 3])
    """

    def __init__(self, height, width, scale=(0.6, 1.0), ratio=(3 / 4, 4 / 3), seed=None, **kwargs):
        super().__init__(**kwargs)
        if not 0 < scale[0] <= scale[1] <= 1:
            raise ValueError(f"scale must satisfy 0 < min <= max <= 1; received scale={scale}.")
        if not 0 < ratio[0] <= ratio[1]:
            raise ValueError(f"ratio must satisfy 0 < min <= max; received ratio={ratio}.")
        self.height = height
        self.width = width
        self.scale = tuple(scale)
        self.ratio = tuple(ratio)
        self.seed = seed

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
            area = tf.random.uniform([batch], *self.scale, seed=self.seed)
            log_ratio = tf.random.uniform(
                [batch], math.log(self.ratio[0]), math.log(self.ratio[1]), seed=self.seed
            )
            aspect = tf.exp(log_ratio)
            # Box sides as fractions of the image sides, clipped to fit.
            box_h = tf.minimum(tf.sqrt(area / aspect), 1.0)
            box_w = tf.minimum(tf.sqrt(area * aspect), 1.0)
            top = tf.random.uniform([batch], seed=self.seed) * (1.0 - box_h)
            left = tf.random.uniform([batch], seed=self.seed) * (1.0 - box_w)
            boxes = tf.stack([top, left, top + box_h, left + box_w], axis=1)
            outputs = tf.image.crop_and_resize(
                images, boxes, tf.range(batch), (self.height, self.width)
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
    seed=None,
):
    """The per-image augmentation of the training split, as a Keras pipeline.

    In the seed recipe's order: random resized crop, colour jitter
    (brightness, contrast, saturation), horizontal flip, rotation. Works on
    batches of pixel values in [0, 255]; any step can be turned off
    (`crop_scale=None`, `rotation_degrees=0`, `color_jitter=0`,
    `horizontal_flip=False`).

    Args:
        image_size: `(height, width)` of the output.
        crop_scale: `(min, max)` area share of the random resized crop, or
            `None` for no crop.
        rotation_degrees: Largest rotation either way, in degrees.
        color_jitter: Strength of the brightness/contrast/saturation jitter.
        horizontal_flip: Random left-right flips.
        seed: Optional seed.

    Returns:
        A `keras.layers.Pipeline` (identity at `training=False`).

    Example:

    >>> augment = build_augmentation((32, 32))
    >>> augment(tf.zeros((4, 32, 32, 3)), training=True).shape
    TensorShape([4, 32, 32, 3])
    """
    height, width = _check_image_size(image_size)
    if rotation_degrees < 0 or color_jitter < 0:
        raise ValueError(
            "rotation_degrees and color_jitter must be >= 0; received "
            f"rotation_degrees={rotation_degrees}, color_jitter={color_jitter}."
        )
    layers = []
    if crop_scale is not None:
        layers.append(RandomResizedCrop(height, width, scale=crop_scale, seed=seed))
    if color_jitter:
        layers.append(
            keras.layers.RandomColorJitter(
                value_range=(0, 255),
                brightness_factor=color_jitter,
                contrast_factor=color_jitter,
                saturation_factor=(max(0.0, 0.5 - color_jitter / 2), min(1.0, 0.5 + color_jitter / 2)),
                seed=seed,
            )
        )
    if horizontal_flip:
        layers.append(keras.layers.RandomFlip("horizontal", seed=seed))
    if rotation_degrees:
        layers.append(
            keras.layers.RandomRotation(rotation_degrees / 360.0, fill_mode="reflect", seed=seed)
        )
    return keras.layers.Pipeline(layers, name="augmentation")


def _batch_size_check(batch_size):
    if not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive int; received batch_size={batch_size!r}.")


def train_pipeline(
    dataset,
    num_classes,
    batch_size,
    augmentation=None,
    mixup_alpha=DEFAULT_MIXUP_ALPHA,
    cutmix_alpha=0.0,
    shuffle_buffer=None,
    seed=None,
):
    """Batches of augmented training data: `(normalised images, one-hot labels)`.

    Shuffles every epoch, drops the last partial batch, applies
    `augmentation` (e.g. `build_augmentation(...)`) to the uint8 pixels,
    then MixUp and/or CutMix on the batch (when both are on, each batch gets
    one of them at random), then `normalize_images`.

    Args:
        dataset: Unbatched `(uint8 image, int label)` dataset.
        num_classes: Number of classes (for the one-hot labels).
        batch_size: Batch size.
        augmentation: A layer/pipeline called with `training=True`, or `None`.
        mixup_alpha: MixUp's Beta parameter; 0 turns MixUp off.
        cutmix_alpha: CutMix's Beta parameter; 0 turns CutMix off.
        shuffle_buffer: Examples in the shuffle buffer; `None` = the whole
            dataset (the loaders keep classes in order, so a small buffer
            would give batches of one class).
        seed: Shuffle seed.

    Returns:
        A `tf.data.Dataset` of `(float32 (B, H, W, 3), float32 (B, classes))`.

    Example:

    >>> splits = load_sample()
    >>> images, labels = next(iter(train_pipeline(splits.train, 10, 8)))
    >>> images.shape, labels.shape
    (TensorShape([8, 32, 32, 3]), TensorShape([8, 10]))
    """
    _batch_size_check(batch_size)
    if mixup_alpha < 0 or cutmix_alpha < 0:
        raise ValueError(
            f"mixup_alpha and cutmix_alpha must be >= 0; received "
            f"mixup_alpha={mixup_alpha}, cutmix_alpha={cutmix_alpha}."
        )
    mixup = keras.layers.MixUp(alpha=mixup_alpha, seed=seed) if mixup_alpha else None
    cutmix = keras.layers.CutMix(factor=cutmix_alpha, seed=seed) if cutmix_alpha else None

    def augment(images, labels):
        images = tf.cast(images, tf.float32)
        if augmentation is not None:
            images = augmentation(images, training=True)
        labels = tf.one_hot(labels, num_classes, dtype=tf.float32)
        mixers = [layer for layer in (mixup, cutmix) if layer is not None]
        if len(mixers) == 1:
            mixed = mixers[0]({"images": images, "labels": labels}, training=True)
            images, labels = mixed["images"], mixed["labels"]
        elif len(mixers) == 2:
            data = {"images": images, "labels": labels}
            mixed = tf.cond(
                tf.random.uniform([], seed=seed) < 0.5,
                lambda: mixup(data, training=True),
                lambda: cutmix(data, training=True),
            )
            images, labels = mixed["images"], mixed["labels"]
        return normalize_images(images), tf.cast(labels, tf.float32)

    if shuffle_buffer is None:
        shuffle_buffer = int(dataset.cardinality())
        if shuffle_buffer < 1:
            raise ValueError(
                "The dataset's size is unknown; pass shuffle_buffer (ideally "
                "the number of examples)."
            )
    return (
        dataset.shuffle(shuffle_buffer, seed=seed, reshuffle_each_iteration=True)
        .batch(batch_size, drop_remainder=True)
        .map(augment, num_parallel_calls=AUTOTUNE)
        .prefetch(AUTOTUNE)
    )


def eval_pipeline(dataset, num_classes, batch_size, one_hot=True):
    """Batches of evaluation data: no augmentation, order kept, last batch kept.

    Args:
        dataset: Unbatched `(uint8 image, int label)` dataset.
        num_classes: Number of classes.
        batch_size: Batch size.
        one_hot: One-hot float32 labels (as `train_pipeline`) or int32.

    Returns:
        A `tf.data.Dataset` of `(normalised float32 images, labels)`.

    Example:

    >>> splits = load_sample()
    >>> images, labels = next(iter(eval_pipeline(splits.validation, 10, 4, one_hot=False)))
    >>> labels.dtype
    tf.int32
    """
    _batch_size_check(batch_size)

    def prepare(images, labels):
        labels = tf.cast(labels, tf.int32)
        if one_hot:
            labels = tf.one_hot(labels, num_classes, dtype=tf.float32)
        return normalize_images(images), labels

    return dataset.batch(batch_size).map(prepare, num_parallel_calls=AUTOTUNE).prefetch(AUTOTUNE)
