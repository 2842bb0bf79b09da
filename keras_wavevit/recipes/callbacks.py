"""Callbacks of a training run: clock, time limit, log, best checkpoint, backup.

With a moving average of the weights (`use_ema` on the optimizer), Keras'
`SwapEMAWeights` validates the averaged weights and `BestCheckpoint` saves
them (`averaged_weights`), so a checkpoint holds the weights its score was
measured on; the backup keeps both, unswapped.

Every file they write goes through `keras_wavevit.files` (written aside and
renamed), so a run killed at any moment leaves each file either as it was
or complete, never half-written. None of them saves non-finite weights: a
diverged epoch is logged but neither checkpointed nor backed up.
"""

import contextlib
import csv
import io
import json
import math
import os
import re
import shutil
import time

import keras
import numpy as np

from keras_wavevit import files

BACKUP_WEIGHTS = "model.weights.h5"
BACKUP_METADATA = "training_metadata.json"
_BACKUP_NAME = re.compile(r"^epoch-(\d+)$")


def weights_are_finite(model):
    """Whether every weight of `model` is finite (no NaN, no infinity).

    Example:

    >>> model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    >>> weights_are_finite(model)
    True
    """
    return all(np.isfinite(weight).all() for weight in model.get_weights())


@contextlib.contextmanager
def averaged_weights(model):
    """Puts the optimizer's moving average of the weights into `model` for a while.

    Inside the block `model`'s trainable weights hold the average (EMA) that
    its optimizer keeps with `use_ema=True`; on leaving they are swapped
    back. Without a moving average, nothing changes.

    Args:
        model: A compiled `keras.Model`.

    Example:

    >>> model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    >>> model.compile(optimizer=keras.optimizers.SGD(use_ema=True), loss="mse")
    >>> _ = model.train_on_batch(np.ones((2, 2)), np.zeros((2, 1)))
    >>> with averaged_weights(model):
    ...     pass  # evaluate or save the averaged weights here
    """
    optimizer = getattr(model, "optimizer", None)
    optimizer = getattr(optimizer, "inner_optimizer", optimizer)  # a LossScaleOptimizer's
    averages = getattr(optimizer, "_model_variables_moving_average", None)
    if not getattr(optimizer, "use_ema", False) or not averages:
        yield
        return
    pairs = [(variable, average) for variable, average
             in zip(optimizer._trainable_variables, averages) if average is not None]

    def swap():
        for variable, average in pairs:
            value = keras.ops.convert_to_numpy(variable)
            variable.assign(average)
            average.assign(value)

    swap()
    try:
        yield
    finally:
        swap()


def _finite_logs(logs):
    return all(math.isfinite(float(v)) for k, v in (logs or {}).items() if k.endswith("loss"))


class ThroughputAndClock(keras.callbacks.Callback):
    """Adds `train_images_per_second` and `train_minutes` to each epoch's logs.

    `train_images_per_second` counts the training part of the epoch only
    (not validation); `train_minutes` is the wall-clock time of `fit` so far,
    validation included, continued from the log of an earlier, resumed run.
    Put it before the logging callbacks so both columns are logged.

    Args:
        images_per_step: Global batch size.
        log_path: The run's `log.csv`: a resumed run starting at epoch `k`
            continues from the `train_minutes` logged for epoch `k - 1`.

    Example:

    >>> clock = ThroughputAndClock(images_per_step=128)
    """

    def __init__(self, images_per_step, log_path=None):
        super().__init__()
        self.images_per_step = images_per_step
        self.log_path = log_path
        self.initial_minutes = None

    def on_train_begin(self, logs=None):
        self._train_start = time.perf_counter()
        self.initial_minutes = None

    def on_epoch_begin(self, epoch, logs=None):
        if self.initial_minutes is None:
            earlier = read_csv_log(self.log_path) if self.log_path else {}
            minutes = [m for e, m in zip(earlier.get("epoch", []), earlier.get(
                "train_minutes", [])) if e < epoch]
            self.initial_minutes = minutes[-1] if minutes else 0.0
        self._epoch_start = time.perf_counter()
        self._steps = 0
        self._train_seconds = None

    def on_train_batch_end(self, batch, logs=None):
        self._steps += 1

    def on_test_begin(self, logs=None):
        if self._train_seconds is None:
            self._train_seconds = time.perf_counter() - self._epoch_start

    def on_epoch_end(self, epoch, logs=None):
        if self._train_seconds is None:
            self._train_seconds = time.perf_counter() - self._epoch_start
        rate = self._steps * self.images_per_step / max(self._train_seconds, 1e-9)
        if logs is not None:
            logs["train_images_per_second"] = rate
            logs["train_minutes"] = (
                self.initial_minutes + (time.perf_counter() - self._train_start) / 60.0
            )


class TimeLimit(keras.callbacks.Callback):
    """Stops training at the end of the first epoch past a wall-clock budget.

    Args:
        minutes: The budget, counted by the `train_minutes` log entry that
            `ThroughputAndClock` writes (so resumed runs count earlier time).

    Example:

    >>> limit = TimeLimit(60)
    """

    def __init__(self, minutes):
        super().__init__()
        self.minutes = minutes
        self.stopped_epoch = None

    def on_epoch_end(self, epoch, logs=None):
        if logs and logs.get("train_minutes", 0.0) >= self.minutes:
            self.stopped_epoch = epoch
            self.model.stop_training = True


def read_csv_log(path):
    """Reads an epoch log (`EpochLog` or `CSVLogger`) into columns.

    Rows repeated by a resumed run keep their last occurrence.

    Args:
        path: The CSV file.

    Returns:
        A dict `column -> list of floats`, ordered by epoch (empty if the
        file is missing or empty).

    Example:

    >>> read_csv_log("/nonexistent/log.csv")
    {}
    """
    by_epoch = {int(row["epoch"]): row for row in _read_rows(path)}
    columns = {}
    for epoch in sorted(by_epoch):
        for key, value in by_epoch[epoch].items():
            try:
                columns.setdefault(key, []).append(float(value))
            except (TypeError, ValueError):
                columns.setdefault(key, []).append(float("nan"))
    return columns


def _read_rows(path):
    if not os.path.isfile(path):
        return []
    with open(path, newline="", encoding="utf-8") as file:
        return [row for row in csv.DictReader(file) if (row.get("epoch") or "").strip()]


class EpochLog(keras.callbacks.Callback):
    """`CSVLogger` that rewrites the whole log atomically after each epoch.

    Rows of epochs at or after the one just finished (left by a killed
    attempt that a resumed run repeats) are replaced, so the log holds each
    epoch once and is never a partial line.

    Args:
        path: The CSV file (`epoch` first, then the log keys in order).

    Example:

    >>> logger = EpochLog("/tmp/run/log.csv")
    """

    def __init__(self, path):
        super().__init__()
        self.path = path

    def on_epoch_end(self, epoch, logs=None):
        rows = [row for row in _read_rows(self.path) if int(row["epoch"]) < epoch]
        rows.append({"epoch": epoch, **{key: float(value) for key, value in (logs or {}).items()}})
        fields = ["epoch"] + sorted({key for row in rows for key in row} - {"epoch"})
        text = io.StringIO()
        writer = csv.DictWriter(text, fieldnames=fields, restval="", lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
        files.atomic_write_text(self.path, text.getvalue())


class BestCheckpoint(keras.callbacks.Callback):
    """Saves the model whenever `monitor` improves, atomically, finite weights only.

    Keras' `ModelCheckpoint` writes the `.keras` file in place (a kill leaves
    a broken zip) and saves diverged weights; this one writes aside and
    renames (`files.save_model_atomically`) and skips epochs whose loss or
    weights are not finite. With a moving average of the weights it saves
    the averaged weights (those that `SwapEMAWeights` validates).

    Args:
        path: The `.keras` file.
        monitor: A log key that is better when larger.
        initial_best: The best value of an earlier, resumed run.

    Example:

    >>> checkpoint = BestCheckpoint("/tmp/run/best.keras", initial_best=0.5)
    """

    def __init__(self, path, monitor="val_accuracy", initial_best=None):
        super().__init__()
        self.path = path
        self.monitor = monitor
        self.best = initial_best

    def on_epoch_end(self, epoch, logs=None):
        value = (logs or {}).get(self.monitor)
        if value is None or not math.isfinite(value) or not _finite_logs(logs):
            return
        if self.best is not None and value <= self.best:
            return
        with averaged_weights(self.model):
            if not weights_are_finite(self.model):
                return
            files.save_model_atomically(self.model, self.path)
        self.best = float(value)


def list_backups(directory):
    """The `epoch-<N>` backup folders in `directory`, newest first.

    Example:

    >>> list_backups("/nonexistent/backup")
    []
    """
    if not os.path.isdir(directory):
        return []
    found = [(int(m.group(1)), m.group(0)) for m in map(_BACKUP_NAME.match, os.listdir(directory))
             if m]
    return [os.path.join(directory, name) for _, name in sorted(found, reverse=True)]


class ResumableBackup(keras.callbacks.BackupAndRestore):
    """`BackupAndRestore` that survives a kill at any moment and damaged files.

    Each epoch's state (weights with the optimizer, and the next epoch) is
    one folder `epoch-<N>/`, written aside and renamed into place; the
    previous one is kept. On start, stale partial writes are removed and the
    newest backup that loads is restored: a damaged one (a truncated file,
    bad JSON) is reported and the previous one used; with none usable the
    run starts from the first epoch, saying so. Epochs with a non-finite
    loss or weights are not backed up. The folder is deleted when `fit`
    ends normally (put callbacks that must run first before this one).

    Args:
        backup_dir: The folder to restore from (and to write to).
        write_dir: Where to write backups instead (a multi-worker job's
            non-chief workers restore from the chief's folder but write to
            a private one).

    Example:

    >>> backup = ResumableBackup("/tmp/run/backup")
    """

    def __init__(self, backup_dir, write_dir=None):
        super().__init__(backup_dir, save_freq="epoch", delete_checkpoint=True)
        self.write_dir = write_dir or backup_dir

    def on_epoch_end(self, epoch, logs=None):
        self._epoch_logs = logs
        super().on_epoch_end(epoch, logs)

    def on_train_begin(self, logs=None):
        # Only the writer of a folder cleans it (a worker reading the chief's does not).
        for name in files.remove_partial_writes(self.write_dir):
            print(f"Removed an unfinished backup write ({name}).")
        candidates = list_backups(self.backup_dir)
        if not candidates:
            return
        if self.model.optimizer is not None and not self.model.optimizer.built:
            self.model.optimizer.build(self.model.trainable_variables)
        state = [variable.numpy() for variable in self._variables()]
        for folder in candidates:
            try:
                self._restore(folder)
                return
            except (OSError, ValueError, KeyError) as error:
                print(f"The backup {folder} is damaged ({error}); trying the previous one.")
                for variable, value in zip(self._variables(), state):
                    variable.assign(value)
        print("No usable backup: training starts again from the first epoch.")

    def on_train_end(self, logs=None):
        if os.path.isdir(self.write_dir):
            shutil.rmtree(self.write_dir)

    def _variables(self):
        optimizer = self.model.optimizer
        return list(self.model.weights) + (list(optimizer.variables) if optimizer else [])

    def _restore(self, folder):
        with open(os.path.join(folder, BACKUP_METADATA), encoding="utf-8") as file:
            epoch = int(json.load(file)["epoch"])
        self.model.load_weights(os.path.join(folder, BACKUP_WEIGHTS))
        self.model._initial_epoch = epoch
        print(f"Resuming from the backup of epoch {epoch} ({folder}).")

    def _save_model(self):
        if not _finite_logs(getattr(self, "_epoch_logs", None)) or not (
            weights_are_finite(self.model)
        ):
            print(f"Epoch {self._current_epoch} has non-finite values: not backed up.")
            return
        folder = os.path.join(self.write_dir, f"epoch-{self._current_epoch:05d}")
        with files.atomic_directory(folder, replace=True) as staging:
            self.model.save_weights(os.path.join(staging, BACKUP_WEIGHTS))
            files.atomic_write_text(
                os.path.join(staging, BACKUP_METADATA),
                json.dumps({"epoch": self._current_epoch, "batch": 0}),
            )
        for older in list_backups(self.write_dir)[2:]:
            shutil.rmtree(older)
