"""Input pipelines: image folders, TFDS by name, the shipped sample, augmentation."""

import os

import numpy as np
import pytest
import tensorflow as tf

from keras_wavevit.recipes import data
from keras_wavevit.preprocessing import normalize_images

CLASSES = ("cat", "dog", "frog")
PER_CLASS = 6
SIZE = 16


def class_pixels(class_index, image_index):
    """A deterministic image: a per-class colour plus an image-dependent ramp."""
    image = np.zeros((SIZE, SIZE, 3), "uint8")
    image[..., class_index] = 200
    image[..., (class_index + 1) % 3] = 10 * image_index
    image[: SIZE // 2, :, 2] = 40 + image_index  # top/bottom asymmetry
    image[:, : SIZE // 4, 1] = 90  # left/right asymmetry (flips change it)
    return image


@pytest.fixture(scope="module")
def image_folder(tmp_path_factory):
    """root/<class>/<nn>.png, lossless, so decoded pixels are exact."""
    root = tmp_path_factory.mktemp("folder")
    for class_index, name in enumerate(CLASSES):
        os.makedirs(root / name)
        for image_index in range(PER_CLASS):
            encoded = tf.io.encode_png(class_pixels(class_index, image_index))
            tf.io.write_file(str(root / name / f"{image_index:02d}.png"), encoded)
    return str(root)


def collect(dataset):
    images, labels = zip(*[(x.numpy(), y.numpy()) for x, y in dataset])
    return np.stack(images), np.array(labels)


def test_image_folder_shapes_dtypes_labels_and_split(image_folder):
    splits = data.load_image_folder(image_folder, image_size=(SIZE, SIZE), validation_fraction=1 / 3)
    assert splits.class_names == list(CLASSES)
    assert (splits.num_train, splits.num_validation) == (12, 6)
    train_images, train_labels = collect(splits.train)
    val_images, val_labels = collect(splits.validation)
    assert train_images.shape == (12, SIZE, SIZE, 3) and train_images.dtype == np.uint8
    assert train_labels.dtype == np.int32 and val_images.shape == (6, SIZE, SIZE, 3)
    # Stratified: 4 train + 2 validation images per class.
    assert np.bincount(train_labels).tolist() == [4, 4, 4]
    assert np.bincount(val_labels).tolist() == [2, 2, 2]
    # Each image carries its class colour, and the validation images are the
    # last files (04, 05) of each class.
    for image, label in zip(val_images, val_labels):
        candidates = [class_pixels(label, index) for index in (4, 5)]
        assert any(np.array_equal(image, c) for c in candidates)
    for image, label in zip(train_images, train_labels):
        assert any(np.array_equal(image, class_pixels(label, i)) for i in range(4))


def test_image_folder_resizes_and_rejects_bad_arguments(image_folder, tmp_path):
    splits = data.load_image_folder(image_folder, image_size=8, validation_fraction=0.0)
    assert splits.num_validation == 0 and splits.num_train == 18
    assert next(iter(splits.train))[0].shape == (8, 8, 3)
    with pytest.raises(ValueError, match="not found"):
        data.load_image_folder(str(tmp_path / "missing"))
    with pytest.raises(ValueError, match="validation_fraction"):
        data.load_image_folder(image_folder, validation_fraction=1.0)
    with pytest.raises(ValueError, match="image_size"):
        data.load_image_folder(image_folder, image_size=(0, 4))


def test_separate_validation_folder(image_folder):
    splits = data.load_image_folder(
        image_folder, image_size=SIZE, validation_directory=image_folder
    )
    assert (splits.num_train, splits.num_validation) == (18, 18)


def test_eval_pipeline_is_unaugmented_ordered_and_deterministic(image_folder):
    splits = data.load_image_folder(image_folder, image_size=SIZE, validation_fraction=1 / 3)
    raw_images, raw_labels = collect(splits.validation)
    pipeline = data.eval_pipeline(splits.validation, 3, batch_size=4)
    first = [(x.numpy(), y.numpy()) for x, y in pipeline]
    second = [(x.numpy(), y.numpy()) for x, y in pipeline]
    assert [x.shape[0] for x, _ in first] == [4, 2]  # the last partial batch is kept
    images = np.concatenate([x for x, _ in first])
    labels = np.concatenate([y for _, y in first])
    assert images.dtype == np.float32 and labels.dtype == np.float32
    np.testing.assert_allclose(images, np.asarray(normalize_images(raw_images)), atol=1e-6)
    np.testing.assert_array_equal(labels, np.eye(3, dtype="float32")[raw_labels])
    for (x1, y1), (x2, y2) in zip(first, second):
        np.testing.assert_array_equal(x1, x2)
        np.testing.assert_array_equal(y1, y2)
    sparse = next(iter(data.eval_pipeline(splits.validation, 3, 4, one_hot=False)))[1]
    assert sparse.dtype == tf.int32


def test_train_pipeline_without_augmentation_keeps_images_and_one_hot_labels(image_folder):
    splits = data.load_image_folder(image_folder, image_size=SIZE, validation_fraction=1 / 3)
    pipeline = data.train_pipeline(splits.train, 3, batch_size=5, mixup_alpha=0.0, seed=1)
    batches = list(pipeline)
    assert len(batches) == 2  # 12 images, drop_remainder
    originals = np.asarray(normalize_images(collect(splits.train)[0]))
    for images, labels in batches:
        assert images.shape == (5, SIZE, SIZE, 3) and images.dtype == tf.float32
        assert labels.shape == (5, 3) and labels.dtype == tf.float32
        np.testing.assert_array_equal(labels.numpy().sum(axis=1), np.ones(5))
        for image, label in zip(images.numpy(), labels.numpy()):
            matches = [i for i, o in enumerate(originals) if np.allclose(image, o, atol=1e-6)]
            assert matches, "an unaugmented training image must equal a normalised original"


def test_train_pipeline_augments_and_mixes(image_folder):
    splits = data.load_image_folder(image_folder, image_size=SIZE, validation_fraction=1 / 3)
    augmentation = data.build_augmentation((SIZE, SIZE), seed=3)
    pipeline = data.train_pipeline(
        splits.train, 3, batch_size=6, augmentation=augmentation, mixup_alpha=0.4,
        cutmix_alpha=1.0, seed=3,
    )
    originals = np.asarray(normalize_images(collect(splits.train)[0]))
    images, labels = next(iter(pipeline))
    assert images.shape == (6, SIZE, SIZE, 3)
    np.testing.assert_allclose(labels.numpy().sum(axis=1), np.ones(6), atol=1e-5)
    unchanged = sum(
        any(np.allclose(image, o, atol=1e-4) for o in originals) for image in images.numpy()
    )
    assert unchanged < 6, "augmentation must change training images"


def test_random_resized_crop():
    images = tf.random.uniform((3, 20, 24, 3), 0, 255)
    crop = data.RandomResizedCrop(16, 16, scale=(0.3, 0.5), seed=0)
    out = crop(images, training=True)
    assert out.shape == (3, 16, 16, 3)
    assert crop(images[0], training=True).shape == (16, 16, 3)
    # Full-area crops with aspect ratio 1 of a square image are a plain resize.
    square = tf.random.uniform((2, 16, 16, 3), 0, 255)
    full = data.RandomResizedCrop(16, 16, scale=(1.0, 1.0), ratio=(1.0, 1.0))
    np.testing.assert_allclose(full(square, training=True), square, atol=1e-3)
    np.testing.assert_allclose(full(square, training=False), square, atol=1e-3)
    rebuilt = data.RandomResizedCrop.from_config(crop.get_config())
    assert rebuilt.scale == (0.3, 0.5) and rebuilt.height == 16
    with pytest.raises(ValueError, match="scale"):
        data.RandomResizedCrop(8, 8, scale=(0.5, 0.2))


def test_augmentation_is_identity_at_inference_and_checks_arguments():
    images = tf.random.uniform((2, 16, 16, 3), 0, 255)
    augmentation = data.build_augmentation((16, 16), crop_scale=None)
    np.testing.assert_allclose(augmentation(images, training=False), images, atol=1e-4)
    with pytest.raises(ValueError, match="rotation_degrees"):
        data.build_augmentation((16, 16), rotation_degrees=-1)
    with pytest.raises(ValueError, match="batch_size"):
        data.eval_pipeline(tf.data.Dataset.range(2), 2, batch_size=0)


def test_shipped_sample():
    splits = data.load_sample()
    assert splits.class_names[:3] == ["airplane", "automobile", "bird"]
    assert (splits.num_train, splits.num_validation, splits.num_classes) == (900, 100, 10)
    image, label = next(iter(splits.validation))
    assert image.shape == (32, 32, 3) and image.dtype == tf.uint8 and int(label) == 0


def test_tfds_by_name_with_mock_data():
    tfds = pytest.importorskip("tensorflow_datasets")
    with tfds.testing.mock_data(num_examples=8):
        splits = data.load_tfds("cifar10", image_size=16, validation_split="test")
        image, label = next(iter(splits.train))
    assert splits.image_size == (16, 16) and splits.num_classes == 10
    assert image.shape == (16, 16, 3) and image.dtype == tf.uint8 and label.dtype == tf.int32
    assert splits.num_train == 8


def test_tfds_not_prepared_gives_clear_error(tmp_path):
    with pytest.raises(ValueError, match="prepared"):
        data.load_tfds("cifar10", data_dir=str(tmp_path))
