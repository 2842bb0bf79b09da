"""Training under faults: kill -9 at chosen moments, damaged backups, divergence, globals.

Kill tests run `keras-wavevit train` in a child process (tests/recipes/train_child.py)
that SIGKILLs itself at the named moment, then rerun the same command.
"""

import csv
import json
import os
import signal
import subprocess

import keras
import numpy as np
import pytest

from keras_wavevit import cli
from keras_wavevit.recipes import callbacks
from keras_wavevit.recipes.train_config import TrainConfig
from keras_wavevit.recipes.training import train
from tests.recipes.train_child import MICRO_MODEL, micro_command, write_image_folder

CHILD_TIMEOUT_S = 600
REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


@pytest.fixture(scope="module")
def image_folder(tmp_path_factory):
    return write_image_folder(str(tmp_path_factory.mktemp("images")))


def run_child(command):
    result = subprocess.run(command, capture_output=True, text=True, timeout=CHILD_TIMEOUT_S,
                            cwd=REPO)
    return result.returncode, result.stdout + result.stderr


def epochs_logged(output):
    with open(os.path.join(output, "log.csv"), newline="", encoding="utf-8") as file:
        return [int(row["epoch"]) for row in csv.DictReader(file)]


def test_kill_while_writing_a_backup_resumes_from_the_previous_one(image_folder, tmp_path):
    output = str(tmp_path / "run")
    command = micro_command(image_folder, output, "--no-export", kill="backup-write:2")
    command[command.index("--epochs") + 1] = "3"
    code, text = run_child(command)
    assert code == -signal.SIGKILL, text[-3000:]
    staged = [name for name in os.listdir(os.path.join(output, "backup")) if name != "epoch-00001"]
    assert len(staged) == 1 and staged[0].startswith(".partial-"), staged

    command[3] = "none"
    code, text = run_child(command)
    assert code == 0, text[-3000:]
    assert "Removed an unfinished backup write (.partial-" in text
    assert "Resuming from the backup of epoch 1" in text
    assert "Epoch 2/3" in text and "Epoch 1/3" not in text
    assert epochs_logged(output) == [0, 1, 2]
    assert not os.path.exists(os.path.join(output, "backup"))


def _backed_up_model(folder, epochs):
    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    model.compile(optimizer="sgd", loss="mse")
    backup = callbacks.ResumableBackup(folder)
    backup.set_model(model)
    for epoch in range(epochs):
        model.layers[0].kernel.assign(np.full((2, 1), epoch + 1.0, "float32"))
        backup.on_epoch_end(epoch, {"loss": 1.0})
    return model


def test_damaged_backup_falls_back_to_the_previous_one(tmp_path, capsys):
    folder = str(tmp_path / "backup")
    _backed_up_model(folder, epochs=3)
    assert sorted(os.listdir(folder)) == ["epoch-00002", "epoch-00003"]  # one previous kept
    with open(os.path.join(folder, "epoch-00003", callbacks.BACKUP_WEIGHTS), "r+b") as file:
        file.truncate(96)
    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    model.compile(optimizer="sgd", loss="mse")
    backup = callbacks.ResumableBackup(folder)
    backup.set_model(model)
    backup.on_train_begin()
    printed = capsys.readouterr().out
    assert "epoch-00003 is damaged" in printed and "trying the previous one" in printed
    assert model._initial_epoch == 2
    np.testing.assert_array_equal(model.layers[0].kernel.numpy(), np.full((2, 1), 2.0))
    # With no usable backup at all, the run starts over (and says so).
    with open(os.path.join(folder, "epoch-00002", callbacks.BACKUP_METADATA), "w") as file:
        file.write("{")
    fresh = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    fresh.compile(optimizer="sgd", loss="mse")
    initial = fresh.get_weights()
    backup.set_model(fresh)
    backup.on_train_begin()
    assert "training starts again from the first epoch" in capsys.readouterr().out
    for before, after in zip(initial, fresh.get_weights()):
        np.testing.assert_array_equal(before, after)


def test_kill_after_fit_resumes_with_the_unfinished_phase(image_folder, tmp_path):
    output = str(tmp_path / "run")
    code, text = run_child(micro_command(image_folder, output, kill="evaluate"))
    assert code == -signal.SIGKILL, text[-3000:]
    assert not os.path.exists(os.path.join(output, "backup"))  # fit had finished
    phases = json.load(open(os.path.join(output, "phases.json"), encoding="utf-8"))["phases"]
    assert list(phases) == ["fit"]

    code, text = run_child(micro_command(image_folder, output, kill="export"))
    assert code == -signal.SIGKILL, text[-3000:]
    assert "Epoch 1/" not in text  # no retraining
    assert [n for n in os.listdir(os.path.join(output, "saved_model")) if n.startswith(".partial")]

    code, text = run_child(micro_command(image_folder, output))
    assert code == 0, text[-3000:]
    assert "Epoch" not in text and "Removed an unfinished write" in text
    assert epochs_logged(output) == [0, 1]
    assert os.listdir(os.path.join(output, "saved_model")) == ["1"]
    phases = json.load(open(os.path.join(output, "phases.json"), encoding="utf-8"))["phases"]
    assert list(phases) == ["fit", "evaluate", "figures", "export", "summary"]
    summary = json.load(open(os.path.join(output, "summary.json"), encoding="utf-8"))
    assert summary["epochs_completed"] == 2 and summary["saved_model"].endswith("1")


def test_diverged_run_stops_with_advice_and_saves_nothing_non_finite(
    image_folder, tmp_path, capsys
):
    output = str(tmp_path / "run")
    status = cli.main([
        "train", "--data-dir", image_folder, "--model", MICRO_MODEL, "--epochs", "4",
        "--steps-per-epoch", "2", "--batch-size", "4", "--validation-fraction", "0.25",
        "--learning-rate", "1e30", "--warmup-epochs", "0", "--output", output,
        "--verbose", "0", "--no-plots", "--mixup", "0",
    ])
    error = capsys.readouterr().err
    assert status == 2, error
    assert "Training diverged" in error and "--learning-rate" in error and "--clip-norm" in error
    for name in ("final.keras", "saved_model", "summary.json"):
        assert not os.path.exists(os.path.join(output, name))
    if os.path.exists(os.path.join(output, "best.keras")):
        model = keras.saving.load_model(os.path.join(output, "best.keras"))
        assert callbacks.weights_are_finite(model)
    for folder in callbacks.list_backups(os.path.join(output, "backup")):
        assert all(np.isfinite(value).all() for value in _float_arrays(folder)), folder


def _float_arrays(folder):
    import h5py

    arrays = []
    with h5py.File(os.path.join(folder, callbacks.BACKUP_WEIGHTS), "r") as file:
        file.visititems(lambda name, item: arrays.append(item[()])
                        if isinstance(item, h5py.Dataset) and item.dtype.kind == "f" else None)
    return arrays


@pytest.mark.parametrize("bad", ["nan", "inf", "-inf"])
def test_non_finite_hyper_parameters_are_refused_before_work(bad):
    for name in ("learning_rate", "weight_decay", "warmup_epochs", "mixup", "label_smoothing"):
        with pytest.raises(ValueError, match=f"{name} must be a finite number"):
            TrainConfig(**{name: float(bad)})


def test_train_restores_the_dtype_policy_and_determinism_even_when_it_raises(tmp_path):
    from tensorflow.python.framework import config as tf_framework_config

    keras.config.set_dtype_policy("float32")
    with pytest.raises(ValueError, match="missing"):
        train(data_dir=str(tmp_path / "missing"), mixed_precision="mixed_bfloat16", seed=1,
              output=str(tmp_path / "run"))
    assert keras.config.dtype_policy().name == "float32"
    assert not tf_framework_config.is_op_determinism_enabled()


def _dense_model():
    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    model.compile(optimizer="sgd", loss="mse")
    return model


def test_best_checkpoint_is_replaced_whole_and_never_with_non_finite_weights(tmp_path):
    path = str(tmp_path / "best.keras")
    model = _dense_model()
    checkpoint = callbacks.BestCheckpoint(path)
    checkpoint.set_model(model)
    checkpoint.on_epoch_end(0, {"loss": 1.0, "val_accuracy": 0.5})
    saved = keras.saving.load_model(path).get_weights()

    def save_then_crash(target, *args, **kwargs):
        with open(target, "wb") as file:
            file.write(b"not a zip" * 2000)
        raise KeyboardInterrupt  # the writer dies half-way

    model.save = save_then_crash
    model.layers[0].kernel.assign(np.ones((2, 1), "float32"))
    with pytest.raises(KeyboardInterrupt):
        checkpoint.on_epoch_end(1, {"loss": 0.5, "val_accuracy": 0.75})
    assert os.listdir(tmp_path) == ["best.keras"]
    for before, after in zip(saved, keras.saving.load_model(path).get_weights()):
        np.testing.assert_array_equal(before, after)
    del model.save
    model.layers[0].kernel.assign(np.full((2, 1), np.nan, "float32"))
    checkpoint.on_epoch_end(2, {"loss": 0.4, "val_accuracy": 0.9})
    assert checkpoint.best == 0.5
    assert callbacks.weights_are_finite(keras.saving.load_model(path))


def test_epoch_log_holds_each_epoch_once_after_a_resume(tmp_path):
    path = str(tmp_path / "log.csv")
    logger = callbacks.EpochLog(path)
    for epoch, loss in enumerate((3.0, 2.0, 1.0)):
        logger.on_epoch_end(epoch, {"loss": loss})
    logger.on_epoch_end(1, {"loss": 1.5, "val_loss": 1.6})  # a resumed run repeats epoch 1
    log = callbacks.read_csv_log(path)
    assert log["epoch"] == [0.0, 1.0] and log["loss"] == [3.0, 1.5]
    assert np.isnan(log["val_loss"][0]) and log["val_loss"][1] == 1.6
    assert os.listdir(tmp_path) == ["log.csv"]
