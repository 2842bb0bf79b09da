"""Phases of a training run: the regularization a run's length calls for."""

import os

import numpy as np
import pytest
import tensorflow as tf

from keras_wavevit.recipes import phases
from keras_wavevit.recipes.train_config import TrainConfig
from tests.recipes.train_child import CLASSES, MICRO_MODEL


@pytest.fixture(scope="module")
def plain_colour_folder(tmp_path_factory):
    """3 classes x 4 PNG images of 32x32, each image one plain colour."""
    root = tmp_path_factory.mktemp("plain")
    for class_index, name in enumerate(CLASSES):
        os.makedirs(root / name)
        for index in range(4):
            image = np.full((32, 32, 3), 20 + 10 * index, np.uint8)
            image[..., class_index] = 230
            tf.io.write_file(str(root / name / f"{index}.png"), tf.io.encode_png(image))
    return str(root)


def short_run(data_dir, **changes):
    """A 2-epoch run whose only augmentation is erasing every image."""
    values = dict(
        data_dir=data_dir, model=MICRO_MODEL, epochs=2, batch_size=4,
        validation_fraction=0.25, mixup=0.0, crop_scale=None, rotation=0.0,
        color_jitter=0.0, flip=False, erasing=1.0, seed=0,
    )
    return TrainConfig(**{**values, **changes})


def pixel_ranges(data):
    """Per image of the first training batch: largest minus smallest value, per channel."""
    images, _ = next(iter(data.train))
    return np.ptp(images.numpy(), axis=(1, 2)).max(axis=-1)


def test_a_run_shorter_than_regularize_from_epochs_trains_without_erasing_and_drop_path(
        plain_colour_folder, capsys):
    config = short_run(plain_colour_folder, regularize_from_epochs=3)
    data = phases.load_data(config, (32, 32))
    assert np.all(pixel_ranges(data) > 1.0)  # every image has an erased box

    light, light_data = phases.match_regularization_to_epochs(config, data)

    assert light.erasing == 0.0 and light.drop_path_rate == 0.0
    assert light.replace(erasing=1.0, drop_path_rate=None) == config  # nothing else changed
    np.testing.assert_allclose(pixel_ranges(light_data), 0.0, atol=1e-6)  # plain images again
    assert light_data.steps_per_epoch == data.steps_per_epoch
    assert len(list(light_data.train)) == data.steps_per_epoch
    # The micro model's own stochastic depth (0.1) is the one named as turned off.
    assert ("2 epochs, fewer than regularize_from_epochs=3: training without random erasing "
            "(was 1) and stochastic depth (was 0.1).") in capsys.readouterr().out


@pytest.mark.parametrize("changes", [
    dict(regularize_from_epochs=2),  # as many epochs as asked: kept
    dict(regularize_from_epochs=0),  # the default: always kept
    dict(regularize_from_epochs=3, erasing=0.0, drop_path_rate=0.0),  # nothing to turn off
])
def test_a_run_long_enough_or_without_regularization_is_unchanged(
        plain_colour_folder, capsys, changes):
    config = short_run(plain_colour_folder, **changes)
    data = phases.load_data(config, (32, 32))
    assert phases.match_regularization_to_epochs(config, data) == (config, data)
    assert "fewer than regularize_from_epochs" not in capsys.readouterr().out
