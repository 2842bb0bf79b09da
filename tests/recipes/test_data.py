"""Input pipelines: image folders (and their checks), TFDS by name, the shipped sample."""

import os

import numpy as np
import pytest
import tensorflow as tf

from keras_wavevit.recipes import augmentation, data
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
    splits = data.load_image_folder(
        image_folder, image_size=(SIZE, SIZE), validation_fraction=1 / 3
    )
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
    augment = augmentation.build_augmentation((SIZE, SIZE), seed=3)
    pipeline = data.train_pipeline(
        splits.train, 3, batch_size=6, augmentation=augment, mixup_alpha=0.4,
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


def test_seeded_train_pipeline_repeats_its_batches(image_folder):
    splits = data.load_image_folder(image_folder, image_size=SIZE, validation_fraction=0.0)

    def batches(seed):
        pipeline = data.train_pipeline(
            splits.train, 3, batch_size=3,
            augmentation=augmentation.build_augmentation((SIZE, SIZE), seed=seed),
            mixup_alpha=0.4, cutmix_alpha=1.0, seed=seed,
        )
        return [(images.numpy(), labels.numpy()) for images, labels in pipeline]

    first, again, other = batches(1), batches(1), batches(2)
    assert len(first) == 6
    for (images, labels), (images_again, labels_again) in zip(first, again):
        np.testing.assert_array_equal(images, images_again)
        np.testing.assert_array_equal(labels, labels_again)
    assert not all(np.array_equal(a[0], b[0]) for a, b in zip(first, other))


def test_batch_pipelines_run_without_the_autotuning_model(image_folder):
    # Releasing an iterator of an autotuned pipeline waits for the tuning
    # thread's sleep (up to 60 s, measured 37 s with the CPU idle), and Keras
    # releases one every epoch: the run's pipelines turn the model off, also
    # as `fit` sees them (taken to the planned steps per epoch).
    splits = data.load_image_folder(image_folder, image_size=SIZE, validation_fraction=1 / 3)
    augment = augmentation.build_augmentation((SIZE, SIZE), seed=3)
    pipelines = {
        "seeded training": data.train_pipeline(splits.train, 3, 4, augmentation=augment, seed=3),
        "unseeded training": data.train_pipeline(splits.train, 3, 4, augmentation=augment),
        "evaluation": data.eval_pipeline(splits.validation, 3, 4),
    }
    for name, pipeline in pipelines.items():
        for dataset in (pipeline, pipeline.take(2)):
            assert dataset.options().autotune.enabled is False, name
    assert tf.data.Dataset.range(2).options().autotune.enabled is not False  # TF's default
    images, _ = next(iter(pipelines["unseeded training"]))
    assert images.shape == (4, SIZE, SIZE, 3)  # AUTOTUNE maps still run without the model


def test_eval_pipeline_checks_batch_size():
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


# Folders that cannot be what the user meant -----------------------------------------------


def write_images(folder, count, start=0):
    os.makedirs(folder, exist_ok=True)
    for index in range(start, start + count):
        encoded = tf.io.encode_png(class_pixels(0, index))
        tf.io.write_file(os.path.join(folder, f"{index:02d}.png"), encoded)


def test_one_class_folder_is_refused_unless_one_class_is_allowed(tmp_path):
    write_images(tmp_path / "cat", 3)
    expected = r"has 1 class folder\(s\) \(cat\); a classifier needs at least 2"
    with pytest.raises(ValueError, match=expected):
        data.load_image_folder(str(tmp_path), image_size=SIZE)
    splits = data.load_image_folder(
        str(tmp_path), image_size=SIZE, validation_fraction=0.0, min_classes=1
    )
    assert splits.class_names == ["cat"] and splits.num_train == 3


def test_one_directory_level_too_many_is_refused_naming_the_inner_folder(tmp_path):
    for name in CLASSES:  # root/train/<class>/<image>: three classes would merge into one
        write_images(tmp_path / "train" / name, 2)
    inner = os.path.join(str(tmp_path), "train")
    expected = (
        r"one directory level too many: its only sub-folder 'train' holds the class "
        rf"folders \(cat, dog, frog\)\. Pass '{inner}'"
    )
    with pytest.raises(ValueError, match=expected):
        data.load_image_folder(str(tmp_path), image_size=SIZE)
    with pytest.raises(ValueError, match="one directory level too many"):  # also when evaluating
        data.load_image_folder(str(tmp_path), image_size=SIZE, min_classes=1)
    assert data.load_image_folder(inner, image_size=SIZE).class_names == list(CLASSES)


def test_split_folders_holding_the_same_classes_get_a_warning(tmp_path):
    for split in ("test", "train"):  # root/<split>/<class>/<image>: would train "test vs train"
        for name in CLASSES:
            write_images(tmp_path / split / name, 1)
    expected = (
        r"Every class folder of .* \(test, train\) holds its images in the same sub-folders "
        r"\(cat, dog, frog\): if those are the classes, pass one of these folders"
    )
    with pytest.warns(UserWarning, match=expected):
        data.load_image_folder(str(tmp_path), image_size=SIZE, validation_fraction=0.0)


def test_empty_class_folder_is_refused_naming_it(tmp_path):
    write_images(tmp_path / "cat", 2)
    write_images(tmp_path / "dog", 2)
    os.makedirs(tmp_path / "empty")
    (tmp_path / "fox").mkdir()
    (tmp_path / "fox" / "notes.txt").write_text("not an image")
    expected = r"Class folders with no images .* under '.*': empty, fox\. Add images"
    with pytest.raises(ValueError, match=expected):
        data.load_image_folder(str(tmp_path), image_size=SIZE)


def test_images_outside_class_folders(tmp_path):
    write_images(tmp_path, 2)
    with pytest.raises(ValueError, match="holds images but no class folders"):
        data.load_image_folder(str(tmp_path), image_size=SIZE)
    write_images(tmp_path / "cat", 2)
    write_images(tmp_path / "dog", 2)
    expected = r"2 image\(s\) directly under .* are ignored .*: 00.png, 01.png"
    with pytest.warns(UserWarning, match=expected):
        splits = data.load_image_folder(str(tmp_path), image_size=SIZE, validation_fraction=0.0)
    assert splits.num_train == 4


def test_validation_classes_missing_from_training_are_refused_by_name(image_folder, tmp_path):
    for name in (*CLASSES, "wolf", "yak"):
        write_images(tmp_path / name, 1)
    expected = r"has classes the training folder .* lacks: wolf, yak\. Their images cannot be"
    with pytest.raises(ValueError, match=expected):
        data.load_image_folder(image_folder, image_size=SIZE, validation_directory=str(tmp_path))


def test_training_classes_missing_from_validation_are_named_in_a_warning(image_folder, tmp_path):
    write_images(tmp_path / "cat", 2)
    write_images(tmp_path / "frog", 1)
    expected = r"no images of the training classes dog: validation does not measure them"
    with pytest.warns(UserWarning, match=expected):
        splits = data.load_image_folder(
            image_folder, image_size=SIZE, validation_directory=str(tmp_path)
        )
    # Labels follow the training classes (cat=0, dog=1, frog=2), not the validation folders.
    assert collect(splits.validation)[1].tolist() == [0, 0, 2]
    assert splits.num_validation == 3 and splits.class_names == list(CLASSES)


# Bad image files ------------------------------------------------------------------------


def jpeg_bytes(index=0):
    return tf.io.encode_jpeg(class_pixels(1, index)).numpy()


def png_bytes(index=0):
    return tf.io.encode_png(class_pixels(1, index)).numpy()


BAD_FILES = {
    "empty.jpg": (b"", "empty file (0 bytes)"),
    "cut.jpg": (jpeg_bytes()[:-40], "truncated JPEG (no end-of-image marker)"),
    "text.jpg": (b"<html>not found</html>", "not a JPEG/PNG/GIF/BMP image"),
    "cut.png": (png_bytes()[:-20], "truncated PNG (no IEND chunk)"),
    "cut.bmp": (
        b"BM" + (5000).to_bytes(4, "little") + b"\0" * 60, "truncated BMP (66 of 5000 bytes)"
    ),
}


@pytest.mark.parametrize("name", sorted(BAD_FILES))
def test_image_file_problem_finds_each_kind_of_bad_file(tmp_path, name):
    content, problem = BAD_FILES[name]
    path = tmp_path / name
    path.write_bytes(content)
    assert data.image_file_problem(str(path)).startswith(problem)
    with pytest.raises(tf.errors.InvalidArgumentError):  # the check matches what TF refuses
        tf.io.decode_image(content, channels=3, expand_animations=False)


def test_image_file_problem_names_unreadable_files(tmp_path):
    link = tmp_path / "gone.jpg"
    link.symlink_to(tmp_path / "missing.jpg")
    assert data.image_file_problem(str(link)) == "cannot be read (No such file or directory)"


def test_image_file_problem_accepts_whole_images_whatever_their_name(tmp_path):
    whole = {
        "real.jpg": jpeg_bytes(),
        "png_named.jpg": png_bytes(),
        "trailing.jpg": jpeg_bytes() + b"\0" * 100,  # bytes after the end marker decode fine
        "tiny.gif": b"GIF89a" + b"\0" * 10,
    }
    for name, content in whole.items():
        (tmp_path / name).write_bytes(content)
        assert data.image_file_problem(str(tmp_path / name)) is None, name
    assert tf.io.decode_image(whole["trailing.jpg"], channels=3).shape == (SIZE, SIZE, 3)


@pytest.fixture()
def folder_with_bad_images(tmp_path):
    for name in CLASSES:
        write_images(tmp_path / name, 3)
    for name, (content, _) in BAD_FILES.items():
        (tmp_path / "dog" / name).write_bytes(content)
    return tmp_path


def test_bad_images_are_all_named_before_any_decoding(folder_with_bad_images):
    with pytest.raises(ValueError) as error:
        data.load_image_folder(str(folder_with_bad_images), image_size=SIZE)
    message = str(error.value)
    assert message.startswith(f"5 bad image file(s) under '{folder_with_bad_images}': ")
    for name, (_, problem) in BAD_FILES.items():
        assert f"{folder_with_bad_images / 'dog' / name}: {problem}" in message
    hint = "or skip them with skip_bad_images=True (keras-wavevit train --skip-bad-images)."
    assert message.endswith(hint)


def test_many_bad_images_list_the_first_ones_and_count_the_rest(tmp_path):
    for name in CLASSES:
        write_images(tmp_path / name, 1)
    for index in range(data.MAX_LISTED + 3):
        (tmp_path / "cat" / f"bad{index:02d}.jpg").write_bytes(b"")
    expected = r"^13 bad image file\(s\) .*bad09\.jpg: empty file \(0 bytes\) and 3 more\. Fix"
    with pytest.raises(ValueError, match=expected) as error:
        data.load_image_folder(str(tmp_path), image_size=SIZE)
    assert "bad10.jpg" not in str(error.value)


def test_skip_bad_images_skips_them_with_a_warning_naming_them(folder_with_bad_images):
    expected = r"Skipping 5 bad image file\(s\): .*cut\.bmp: truncated BMP"
    with pytest.warns(UserWarning, match=expected) as warned:
        splits = data.load_image_folder(
            str(folder_with_bad_images), image_size=SIZE, validation_fraction=1 / 3,
            skip_bad_images=True,
        )
    assert warned[0].filename == __file__  # points at the caller's line
    assert (splits.num_train, splits.num_validation) == (6, 3)
    images, labels = collect(splits.train)  # decodes every kept file without an error
    assert images.shape == (6, SIZE, SIZE, 3) and np.bincount(labels).tolist() == [2, 2, 2]


def test_a_class_left_without_images_after_skipping_is_refused(tmp_path):
    write_images(tmp_path / "cat", 2)
    (tmp_path / "dog").mkdir()
    (tmp_path / "dog" / "0.jpg").write_bytes(b"")
    with pytest.warns(UserWarning, match="Skipping 1 bad"):
        with pytest.raises(ValueError, match=r"Class folders with no images .*: dog\."):
            data.load_image_folder(str(tmp_path), image_size=SIZE, skip_bad_images=True)


def test_bad_images_in_the_validation_folder_are_named_too(image_folder, tmp_path):
    for name in CLASSES:
        write_images(tmp_path / name, 1)
    (tmp_path / "frog" / "x.png").write_bytes(b"")
    expected = rf"1 bad image file\(s\) under '{tmp_path}': .*x\.png: empty file"
    with pytest.raises(ValueError, match=expected):
        data.load_image_folder(image_folder, image_size=SIZE, validation_directory=str(tmp_path))
