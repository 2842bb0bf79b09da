"""A moving average of the weights (EMA) in a training run: validated, checkpointed, resumed."""

import csv
import json
import os

import keras
import numpy as np
import pytest

from keras_wavevit import cli
from keras_wavevit.optimizers import AdamW
from keras_wavevit.recipes import callbacks
from tests.recipes.train_child import MICRO_MODEL, write_image_folder


def _trained_dense_model(optimizer, steps=3):
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
    model.compile(optimizer=optimizer, loss="mse")
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(8, 3)), rng.normal(size=(8, 2))
    for _ in range(steps):
        model.train_on_batch(x, y)
    return model


def _values(variables):
    return [keras.ops.convert_to_numpy(variable).copy() for variable in variables]


def test_best_checkpoint_saves_the_averaged_weights_and_leaves_the_model_as_it_was(tmp_path):
    model = _trained_dense_model(AdamW(0.1, weight_decay=0.0, use_ema=True, ema_momentum=0.5))
    raw = _values(model.trainable_variables)
    averages = _values(model.optimizer._model_variables_moving_average)
    assert not np.allclose(raw[0], averages[0])  # the two differ, so the test can tell them apart
    checkpoint = callbacks.BestCheckpoint(str(tmp_path / "best.keras"))
    checkpoint.set_model(model)
    checkpoint.on_epoch_end(0, {"loss": 1.0, "val_accuracy": 0.5})
    saved = keras.saving.load_model(str(tmp_path / "best.keras")).trainable_variables
    for kept, average in zip(_values(saved), averages):
        np.testing.assert_array_equal(kept, average)
    for now, before in zip(_values(model.trainable_variables), raw):
        np.testing.assert_array_equal(now, before)
    for now, before in zip(_values(model.optimizer._model_variables_moving_average), averages):
        np.testing.assert_array_equal(now, before)


def test_averaged_weights_changes_nothing_without_a_moving_average():
    model = _trained_dense_model(AdamW(0.1, weight_decay=0.0))
    raw = _values(model.trainable_variables)
    with callbacks.averaged_weights(model):
        for now, before in zip(_values(model.trainable_variables), raw):
            np.testing.assert_array_equal(now, before)


def test_backup_restores_the_moving_average_with_the_weights(tmp_path):
    folder = str(tmp_path / "backup")
    model = _trained_dense_model(AdamW(0.1, weight_decay=0.0, use_ema=True, ema_momentum=0.5))
    backup = callbacks.ResumableBackup(folder)
    backup.set_model(model)
    backup.on_epoch_end(0, {"loss": 1.0})
    fresh = _trained_dense_model(AdamW(0.1, weight_decay=0.0, use_ema=True, ema_momentum=0.5),
                                 steps=0)
    backup.set_model(fresh)
    backup.on_train_begin()
    for restored, saved in zip(_values(fresh.optimizer._model_variables_moving_average),
                               _values(model.optimizer._model_variables_moving_average)):
        np.testing.assert_array_equal(restored, saved)
    for restored, saved in zip(_values(fresh.trainable_variables),
                               _values(model.trainable_variables)):
        np.testing.assert_array_equal(restored, saved)


@pytest.fixture(scope="module")
def averaged_run(tmp_path_factory):
    images = write_image_folder(str(tmp_path_factory.mktemp("images")))
    output = str(tmp_path_factory.mktemp("run"))
    status = cli.main([
        "train", "--data-dir", images, "--model", MICRO_MODEL, "--epochs", "3",
        "--steps-per-epoch", "2", "--batch-size", "4", "--validation-fraction", "0.25",
        "--warmup-epochs", "0.5", "--learning-rate", "3e-3", "--ema-momentum", "0.6",
        "--mixup", "0", "--output", output, "--seed", "0", "--verbose", "0",
        "--no-plots", "--no-export",
    ])
    assert status == 0
    return output


def test_a_run_validates_and_keeps_the_averaged_weights(averaged_run):
    """The validation loss logged for the best epoch is the best checkpoint's own loss."""
    with open(os.path.join(averaged_run, "log.csv"), newline="", encoding="utf-8") as file:
        rows = list(csv.DictReader(file))
    accuracies = [float(row["val_accuracy"]) for row in rows]
    best = rows[int(np.argmax(accuracies))]  # the first epoch with the best accuracy
    summary = json.load(open(os.path.join(averaged_run, "summary.json"), encoding="utf-8"))
    assert summary["config"]["ema_momentum"] == 0.6
    assert summary["val_loss"] == pytest.approx(float(best["val_loss"]), rel=1e-5)
    # The best checkpoint is not the raw weights at the end of that epoch: its
    # optimizer's average (swapped while saving) holds those.
    model = keras.saving.load_model(os.path.join(averaged_run, "best.keras"))
    averages = model.optimizer._model_variables_moving_average
    assert any(not np.allclose(keras.ops.convert_to_numpy(weight), keras.ops.convert_to_numpy(a))
               for weight, a in zip(model.trainable_variables, averages))
