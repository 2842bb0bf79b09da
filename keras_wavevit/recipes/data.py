"""Input pipelines: TFDS datasets by name, image folders, the shipped sample.

Every loader returns an `ImageSplits`: unbatched `tf.data` datasets of
`(uint8 image (H, W, 3), int32 label)` for a training and a validation split,
with the class names. `train_pipeline` and `eval_pipeline` turn those into
batches the model trains on: ImageNet-normalised float32 images
(`keras_wavevit.preprocessing.normalize_images`) and one-hot float32 labels
(so MixUp/CutMix can blend them and `CategoricalCrossentropy(label_smoothing=)`
can smooth them). The augmentation itself lives in
`keras_wavevit.recipes.augmentation`.

An image folder is checked when it is read, before any model is built: its
layout (one folder per class, no empty class, no extra directory level, at
least two classes, the same classes in a separate validation folder) and
every image file (not empty, a JPEG/PNG/GIF/BMP header, not cut short).
Problems raise a `ValueError` naming the folders or files; bad image files
can be skipped instead (`skip_bad_images=True`).

The shipped sample (`sample_data_dir()`) holds 100 CIFAR-10 training images
per class (the first 100 of each class folder), so training runs offline.
"""

import dataclasses
import os
import warnings

import tensorflow as tf

from keras_wavevit.preprocessing import normalize_images
from keras_wavevit.recipes.augmentation import DEFAULT_MIXUP_ALPHA, build_batch_mixing

AUTOTUNE = tf.data.AUTOTUNE
SAMPLE_DATA_DIR = os.path.join(
    os.path.dirname(os.path.dirname(__file__)), "sample_data", "cifar10"
)
# The files an image folder is read from (Keras' image_dataset_from_directory
# list); other files are ignored.
IMAGE_EXTENSIONS = (".bmp", ".gif", ".jpeg", ".jpg", ".png")
# How many bad files or folders an error message lists by name.
MAX_LISTED = 10
# Bytes read from the end of a file to find its format's end marker.
_TAIL_BYTES = 1024
# The batch pipelines run without tf.data's autotuning model: releasing an
# iterator waits for the model's thread, which sleeps up to its optimisation
# period (up to 60 s, growing while the iterator lives) instead of being woken.
# Keras starts a new iterator every epoch, so one epoch in three of an hour's
# run waited 15-55 s with the CPU idle (see BENCHMARKS.md). Without the model,
# `AUTOTUNE` maps run on all cores and `AUTOTUNE` prefetch buffers still grow.
_PIPELINE_OPTIONS = tf.data.Options()
_PIPELINE_OPTIONS.autotune.enabled = False


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

    Example:

    >>> splits = load_sample()
    >>> splits.num_classes, splits.image_size
    (10, (32, 32))
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


def _listing(names):
    """`a, b, c` for up to MAX_LISTED names, then how many more."""
    names = list(names)
    shown = ", ".join(names[:MAX_LISTED])
    more = len(names) - MAX_LISTED
    return f"{shown} and {more} more" if more > 0 else shown


def _is_image_name(name):
    return name.lower().endswith(IMAGE_EXTENSIONS)


def _subfolders(folder):
    """The non-hidden sub-folders of `folder`, sorted (Keras' class order)."""
    return sorted(
        name for name in os.listdir(folder)
        if not name.startswith(".") and os.path.isdir(os.path.join(folder, name))
    )


def _image_files(folder):
    """Image files under `folder` and its sub-folders, in Keras' order."""
    found = []
    for root, _, files in sorted(os.walk(folder), key=lambda entry: entry[0]):
        found.extend(os.path.join(root, name) for name in sorted(files) if _is_image_name(name))
    return found


def _image_subfolders(folder, paths):
    """First-level sub-folders of `folder` holding `paths` (`None`: the folder itself)."""
    parts = (os.path.relpath(path, folder).split(os.sep) for path in paths)
    return {part[0] if len(part) > 1 else None for part in parts}


def _check_layout(directory, files):
    """Refuses a folder without classes or with one directory level too many."""
    classes = list(files)
    if not classes:
        if any(_is_image_name(name) for name in os.listdir(directory)):
            raise ValueError(
                f"Image folder {directory!r} holds images but no class folders: put each "
                f"class's images in its own sub-folder, {directory}/<class>/<image>."
            )
        raise ValueError(f"No images found under directory={directory!r}.")
    holders = [_image_subfolders(os.path.join(directory, name), files[name]) for name in classes]
    nested = sorted(holders[0] - {None})
    if len(classes) == 1 and None not in holders[0] and len(nested) > 1:
        raise ValueError(
            f"Image folder {directory!r} has one directory level too many: its only "
            f"sub-folder {classes[0]!r} holds the class folders ({_listing(nested)}). "
            f"Pass {os.path.join(directory, classes[0])!r} instead."
        )
    same = all(held == holders[0] for held in holders)
    if len(classes) > 1 and None not in holders[0] and len(nested) > 1 and same:
        warnings.warn(
            f"Every class folder of {directory!r} ({_listing(classes)}) holds its images in "
            f"the same sub-folders ({_listing(nested)}): if those are the classes, pass one "
            f"of these folders, e.g. {os.path.join(directory, classes[0])!r}, instead.",
            stacklevel=4,
        )
    loose = [name for name in os.listdir(directory) if _is_image_name(name)]
    if loose:
        warnings.warn(
            f"{len(loose)} image(s) directly under {directory!r} are ignored (not in a "
            f"class folder): {_listing(sorted(loose))}.",
            stacklevel=4,
        )


def _check_classes(directory, files, min_classes):
    """Refuses class folders without images and too few classes."""
    classes = list(files)
    if not any(files.values()):
        raise ValueError(f"No images found under directory={directory!r}.")
    empty = [name for name in classes if not files[name]]
    if empty:
        raise ValueError(
            f"Class folders with no images ({'/'.join(IMAGE_EXTENSIONS)}) under "
            f"{directory!r}: {_listing(empty)}. Add images or remove the folders."
        )
    if len(classes) < min_classes:
        raise ValueError(
            f"Image folder {directory!r} has {len(classes)} class folder(s) "
            f"({_listing(classes)}); a classifier needs at least {min_classes}. Pass the "
            "folder that holds one sub-folder per class."
        )


def image_file_problem(path):
    """What is wrong with an image file, found cheaply (size, header, end).

    Reads the first and last bytes only: an empty file, a file that is not
    JPEG, PNG, GIF or BMP whatever its name says, a JPEG without its
    end-of-image marker, a PNG without its `IEND` chunk, or a BMP shorter
    than its header says are problems. A file that passes can still fail
    to decode (damage inside the data); these are the common cases: cut
    short by an interrupted copy or download, empty, or not an image.

    Args:
        path: The file.

    Returns:
        A short description of the problem, or `None` if the file looks
        like a whole image.

    Example:

    >>> path = os.path.join(sample_data_dir(), "cat", "0000.jpg")
    >>> image_file_problem(path) is None
    True
    """
    try:
        size = os.path.getsize(path)
        with open(path, "rb") as file:
            head = file.read(16)
            file.seek(max(0, size - _TAIL_BYTES))
            tail = file.read()
    except OSError as error:
        return f"cannot be read ({error.strerror})"
    if size == 0:
        return "empty file (0 bytes)"
    if head.startswith(b"\xff\xd8\xff"):
        return None if b"\xff\xd9" in tail else "truncated JPEG (no end-of-image marker)"
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return None if b"IEND" in tail else "truncated PNG (no IEND chunk)"
    if head.startswith((b"GIF87a", b"GIF89a")):
        return None
    if head.startswith(b"BM") and len(head) >= 6:
        declared = int.from_bytes(head[2:6], "little")
        return None if declared <= size else f"truncated BMP ({size} of {declared} bytes)"
    return f"not a JPEG/PNG/GIF/BMP image (starts with {head[:8]!r})"


def _drop_bad_images(directory, files, skip_bad_images):
    """`files` without its bad images: refused, or skipped with a warning."""
    bad = {}
    for paths in files.values():
        for path in paths:
            problem = image_file_problem(path)
            if problem:
                bad[path] = problem
    if not bad:
        return files
    listed = "; ".join(f"{path}: {bad[path]}" for path in list(bad)[:MAX_LISTED])
    more = f" and {len(bad) - MAX_LISTED} more" if len(bad) > MAX_LISTED else ""
    if not skip_bad_images:
        raise ValueError(
            f"{len(bad)} bad image file(s) under {directory!r}: {listed}{more}. Fix or "
            "remove them, or skip them with skip_bad_images=True (keras-wavevit train "
            "--skip-bad-images)."
        )
    warnings.warn(f"Skipping {len(bad)} bad image file(s): {listed}{more}.", stacklevel=4)
    return {name: [p for p in paths if p not in bad] for name, paths in files.items()}


def _index_folder(directory, min_classes=2, skip_bad_images=False):
    """Checked `{class name: [image paths]}` of a `root/<class>/<image>` folder."""
    if not os.path.isdir(directory):
        raise ValueError(f"Image folder not found: directory={directory!r}.")
    files = {name: _image_files(os.path.join(directory, name)) for name in _subfolders(directory)}
    _check_layout(directory, files)
    files = _drop_bad_images(directory, files, skip_bad_images)
    _check_classes(directory, files, min_classes)
    return files


def _match_validation_classes(directory, validation_directory, files, validation_files):
    """Refuses validation classes training lacks; warns about the reverse."""
    unknown = [name for name in validation_files if name not in files]
    if unknown:
        raise ValueError(
            f"Validation folder {validation_directory!r} has classes the training folder "
            f"{directory!r} lacks: {_listing(unknown)}. Their images cannot be scored; "
            "use the same class folders in both."
        )
    missing = [name for name in files if name not in validation_files]
    if missing:
        warnings.warn(
            f"Validation folder {validation_directory!r} has no images of the training "
            f"classes {_listing(missing)}: validation does not measure them.",
            stacklevel=3,
        )


def _read_images(paths, labels, image_size):
    """Unbatched `(uint8 image, int32 label)` decoded as Keras' folder reader does."""

    def read(path, label):
        image = tf.io.decode_image(tf.io.read_file(path), channels=3, expand_animations=False)
        image = tf.image.resize(image, image_size, method="bilinear")
        image = tf.ensure_shape(image, (*image_size, 3))
        return tf.cast(tf.clip_by_value(tf.round(image), 0, 255), tf.uint8), label

    dataset = tf.data.Dataset.from_tensor_slices(
        (tf.constant(paths, tf.string), tf.constant(labels, tf.int32))
    )
    return dataset.map(read, num_parallel_calls=AUTOTUNE)


def _hold_out(files, class_names, validation_fraction):
    """`(kept, held out)` lists of `(path, label)`: held out = the last files of each class."""
    train, validation = [], []
    for label, name in enumerate(class_names):
        paths = files.get(name, [])
        count = int(round(len(paths) * validation_fraction))
        held_out = set(sorted(paths)[len(paths) - count:]) if count else set()
        train += [(path, label) for path in paths if path not in held_out]
        validation += [(path, label) for path in paths if path in held_out]
    return train, validation


def load_image_folder(
    directory,
    image_size=(32, 32),
    validation_fraction=0.1,
    validation_directory=None,
    cache=True,
    skip_bad_images=False,
    min_classes=2,
):
    """Reads a `root/<class>/<image>` folder into training/validation splits.

    Images (JPEG, PNG, BMP, GIF; sub-folders of a class folder included) are
    decoded as `keras.utils.image_dataset_from_directory` does, resized to
    `image_size` and kept as uint8. Labels are the class folders in
    alphabetical order. The validation split holds, for each class, the last
    `validation_fraction` of its files in name order (for the CIFAR-10 image
    folder with 0.1: the last 500 per class), so the split is stratified and
    the same on every run.

    The folders are checked before any image is decoded (see
    `image_file_problem` for the file checks). Refused with a `ValueError`
    naming the folder: no class folders, one class folder whose sub-folders
    hold the classes (one directory level too many), a class folder without
    images, fewer than `min_classes` classes, validation classes the
    training folder lacks. Warned about: images directly under `directory`
    (ignored), training classes missing from the validation folder.

    Args:
        directory: Root folder with one sub-folder per class.
        image_size: `(height, width)` (or an int) to resize to.
        validation_fraction: Share of each class held out, in [0, 1).
            Ignored when `validation_directory` is given.
        validation_directory: A separate folder (same classes) to validate
            on, e.g. a test split.
        cache: Keep the decoded images in memory after the first pass.
        skip_bad_images: Skip empty, truncated and non-image files with a
            warning naming them, instead of raising a `ValueError`.
        min_classes: Fewest class folders accepted (2 to train a
            classifier; 1 to evaluate on one class).

    Returns:
        An `ImageSplits`.

    Raises:
        ValueError: If the folder is missing or its layout is refused, a
            file is not a whole image (unless `skip_bad_images`), or an
            argument is out of range.

    Example:

    >>> splits = load_image_folder(sample_data_dir(), validation_fraction=0.1)
    >>> splits.num_train, splits.num_validation, splits.class_names[0]
    (900, 100, 'airplane')
    """
    image_size = _check_image_size(image_size)
    if image_size is None:
        raise ValueError("image_size is required to read an image folder; received None.")
    _check_fraction(validation_fraction)
    files = _index_folder(directory, min_classes, skip_bad_images)
    class_names = list(files)
    if validation_directory is None:
        train, validation = _hold_out(files, class_names, validation_fraction)
    else:
        validation_files = _index_folder(validation_directory, 1, skip_bad_images)
        _match_validation_classes(directory, validation_directory, files, validation_files)
        train, _ = _hold_out(files, class_names, 0.0)
        validation, _ = _hold_out(validation_files, class_names, 0.0)
    splits = []
    for pairs in (train, validation):
        paths, labels = [path for path, _ in pairs], [label for _, label in pairs]
        dataset = _read_images(paths, labels, image_size)
        splits.append(dataset.cache() if cache else dataset)
    return ImageSplits(
        train=splits[0],
        validation=splits[1],
        class_names=class_names,
        num_train=len(train),
        num_validation=len(validation),
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


def _tfds_read(name, data_dir, splits, download):
    """The TFDS builder of `name` and its `splits` as `(image, label)` datasets."""
    import tensorflow_datasets as tfds

    try:
        builder = tfds.builder(name, data_dir=data_dir)
    except Exception as error:  # tfds raises its own DatasetNotFoundError.
        raise ValueError(f"Unknown TFDS dataset {name!r}: {error}") from error
    if download:
        builder.download_and_prepare()
    try:
        return builder, builder.as_dataset(split=splits, as_supervised=True)
    except Exception as error:
        raise ValueError(
            f"Could not read TFDS dataset {name!r} (splits {splits}) from "
            f"data_dir={data_dir!r}; is it prepared there (download=False)? {error}"
        ) from error


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
    image_size = _check_image_size(image_size)
    _check_fraction(validation_fraction)
    if validation_split is None:
        percent = int(round(100 * (1 - validation_fraction)))
        splits = [f"{train_split}[:{percent}%]", f"{train_split}[{percent}%:]"]
    else:
        splits = [train_split, validation_split]
    builder, (train, validation) = _tfds_read(name, data_dir, splits, download)
    class_names = list(builder.info.features["label"].names)
    if image_size is None:
        image_shape = builder.info.features["image"].shape
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
    `augmentation` (e.g. `augmentation.build_augmentation(...)`) to the
    uint8 pixels, then MixUp and/or CutMix on the batch
    (`augmentation.build_batch_mixing`: when both are on, each batch gets
    one of them at random), then `normalize_images`.

    With a `seed` (and an `augmentation` seeded too), every run gives the
    same batches: the augmentation then runs one batch at a time, because
    Keras' random layers keep their random state in variables that batches
    augmented in parallel would draw from in a varying order. Without a
    seed, batches are augmented in parallel.

    Args:
        dataset: Unbatched `(uint8 image, int label)` dataset.
        num_classes: Number of classes (for the one-hot labels).
        batch_size: Batch size.
        augmentation: A layer/pipeline called with `training=True`, or `None`.
        mixup_alpha: MixUp's Beta parameter; 0 turns MixUp off.
        cutmix_alpha: CutMix's Beta parameter, in [0, 1]; 0 turns CutMix off.
        shuffle_buffer: Examples in the shuffle buffer; `None` = the whole
            dataset (the loaders keep classes in order, so a small buffer
            would give batches of one class).
        seed: Seed of the shuffle and of the batch mixing.

    Returns:
        A `tf.data.Dataset` of `(float32 (B, H, W, 3), float32 (B, classes))`.

    Example:

    >>> splits = load_sample()
    >>> images, labels = next(iter(train_pipeline(splits.train, 10, 8)))
    >>> images.shape, labels.shape
    (TensorShape([8, 32, 32, 3]), TensorShape([8, 10]))
    """
    _batch_size_check(batch_size)
    mix = build_batch_mixing(mixup_alpha, cutmix_alpha, seed=seed)

    def augment(images, labels):
        images = tf.cast(images, tf.float32)
        if augmentation is not None:
            # Layer by layer, not through `Pipeline.__call__`: Keras's
            # preprocessing layers switch to TensorFlow ops inside `tf.data`
            # on every backend, a `Pipeline` (a plain layer) does not.
            for layer in augmentation.layers:
                images = layer(images, training=True)
        labels = tf.one_hot(labels, num_classes, dtype=tf.float32)
        if mix is not None:
            images, labels = mix(images, labels)
        return normalize_images(images), labels

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
        .map(augment, num_parallel_calls=AUTOTUNE if seed is None else None)
        .prefetch(AUTOTUNE)
        .with_options(_PIPELINE_OPTIONS)
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

    return (
        dataset.batch(batch_size)
        .map(prepare, num_parallel_calls=AUTOTUNE)
        .prefetch(AUTOTUNE)
        .with_options(_PIPELINE_OPTIONS)
    )
