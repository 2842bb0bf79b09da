"""`keras-wavevit train` on the JAX backend: Keras feeds the tf.data pipeline to
an XLA-compiled JAX model. Runs in a child process (Keras fixes its backend
per process); skipped when `jax` is not installed."""

import importlib.util
import json
import os
import pathlib
import subprocess
import sys

import numpy as np
import pytest

from tests.recipes.train_child import MICRO_MODEL, write_image_folder

ROOT = pathlib.Path(__file__).resolve().parents[2]

CHILD = """
import sys
from keras_wavevit import cli
common = sys.argv[1:]
print("DEFAULTS", cli.main(common))
print("PORTABLE", cli.main(common + ["--no-export", "--no-plots", "--crop-scale", "none"]))
"""


def run_on_jax(code, *arguments, timeout=900):
    """Runs `code` in a child process on the JAX backend; asserts it succeeded.

    Returns:
        The `CompletedProcess` and a report of its output's tails.
    """
    env = {**os.environ, "KERAS_BACKEND": "jax", "TF_CPP_MIN_LOG_LEVEL": "2"}
    result = subprocess.run(
        [sys.executable, "-c", code, *arguments],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout,
    )
    report = f"{result.stdout[-4000:]}\n{result.stderr[-4000:]}"
    assert result.returncode == 0, report
    return result, report


@pytest.mark.skipif(importlib.util.find_spec("jax") is None, reason="jax is not installed")
def test_two_step_run_on_jax_and_a_clear_error_for_tensorflow_only_options(tmp_path):
    images = write_image_folder(str(tmp_path / "images"))
    output = tmp_path / "run"
    arguments = [
        "train", "--data-dir", images, "--model", MICRO_MODEL, "--epochs", "2",
        "--steps-per-epoch", "1", "--batch-size", "4", "--validation-fraction", "0.25",
        "--output", str(output), "--seed", "0", "--verbose", "0",
    ]
    result, report = run_on_jax(CHILD, *arguments)
    assert "DEFAULTS 2" in result.stdout and "PORTABLE 0" in result.stdout, report
    assert (
        "keras-wavevit train: error: These train options need the TensorFlow backend; "
        "KERAS_BACKEND is 'jax': export=True (--export: a SavedModel); plots=True "
        "(--plots: Grad-CAM); crop_scale (--crop-scale: tf.image.crop_and_resize)."
    ) in result.stderr, report
    summary = json.loads((output / "summary.json").read_text())
    assert summary["epochs_completed"] == 2, summary
    assert 0.0 <= summary["val_accuracy"] <= 1.0
    written = set(os.listdir(output))
    assert {"best.keras", "final.keras", "log.csv", "summary.json"} <= written, written
    assert not any(name.endswith(".png") for name in written), written


def test_train_pipeline_accepts_an_augmentation_with_every_transform_off():
    """Layer by layer: an empty `Pipeline` fails when called (Keras 3.15)."""
    from keras_wavevit.recipes import augmentation, data

    splits = data.load_sample()
    nothing = augmentation.build_augmentation(
        (32, 32), crop_scale=None, rotation_degrees=0, color_jitter=0, horizontal_flip=False
    )
    assert nothing.layers == []
    batch = data.train_pipeline(splits.train, 10, 4, augmentation=nothing, mixup_alpha=0.0)
    images, labels = next(iter(batch))
    assert tuple(images.shape) == (4, 32, 32, 3) and tuple(labels.shape) == (4, 10)


REPLAN_CHILD = """
import pathlib, sys
from tests.recipes import test_budget


class SetAttr:  # the one monkeypatch method run_budgeted uses
    def setattr(self, target, name, value):
        setattr(target, name, value)


command = test_budget.budget_command
# crop_scale needs TensorFlow's crop_and_resize; every other option is portable.
test_budget.budget_command = lambda *args: command(*args) + ["--crop-scale", "none"]
print("OUTPUT", test_budget.run_budgeted(pathlib.Path(sys.argv[1]), SetAttr(), 0.5, 6.0))
"""


@pytest.mark.skipif(importlib.util.find_spec("jax") is None, reason="jax is not installed")
def test_a_time_budget_replans_on_jax_and_anneals_at_the_moved_end(tmp_path):
    # JAX compiles the schedule's end into the train step as a value: after a
    # re-plan the step must be rebuilt, or the run would stop with a learning
    # rate still on the first plan's cosine. Slow epochs (as in test_budget):
    # the first plan's 15 steps are re-planned to 12 after epoch 2.
    result, report = run_on_jax(REPLAN_CHILD, str(tmp_path))
    assert "re-planned from 15 to 12 steps" in result.stdout, report
    output = tmp_path / "run"
    summary = json.loads((output / "summary.json").read_text())
    assert summary["epochs_completed"] == 4, summary
    assert [(change["after_epoch"], change["total_steps"])
            for change in summary["time_budget"]["replans"]] == [(2, 12)]
    import keras

    from keras_wavevit.recipes.train_config import TrainConfig

    model = keras.saving.load_model(output / "final.keras")
    assert int(model.optimizer.iterations.numpy()) == 12
    final_rate = float(model.optimizer.learning_rate.numpy())
    assert final_rate == pytest.approx(TrainConfig().min_learning_rate, rel=0.05)


APPLIED_RATES_CHILD = """
import dataclasses
import json
import keras
import numpy as np
from keras_wavevit.recipes import budget
from keras_wavevit.recipes.network import MovableCosineDecay

# loss = -w: every SGD step adds the learning rate it applied to w.
model = keras.Sequential([keras.Input((1,)),
                          keras.layers.Dense(1, use_bias=False, kernel_initializer="zeros")])
model.compile(optimizer=keras.optimizers.SGD(MovableCosineDecay(1.0, decay_steps=10)),
              loss=lambda y_true, y_pred: -keras.ops.mean(y_pred))
budget.replan = lambda *args, **kwargs: 6  # after the second epoch: 10 steps -> 6
ticks = iter(range(100))
timings = budget.Timings(elapsed_seconds=0.0, first_step_seconds=1.0, step_seconds=1.0,
                         validation_seconds=0.0, checkpoint_seconds=0.0)
plan = budget.BudgetPlan(1.0, 5, 2, 1.0, dataclasses.asdict(timings))
keeper = budget.BudgetKeeper(plan, 0.0, export=False,
                             plots=False, clock=lambda: float(next(ticks)))
weights = []
record = keras.callbacks.LambdaCallback(  # JAX syncs the weights at epoch ends
    on_epoch_end=lambda epoch, logs: weights.append(float(model.get_weights()[0][0, 0])))
model.fit(np.ones((2, 1), "float32"), np.zeros((2, 1), "float32"), batch_size=1, epochs=5,
          shuffle=False, verbose=0, callbacks=[keeper, record])
print("APPLIED", json.dumps(np.diff([0.0] + weights).tolist()))
"""


@pytest.mark.skipif(importlib.util.find_spec("jax") is None, reason="jax is not installed")
def test_on_jax_the_steps_after_a_replan_apply_the_moved_schedule(tmp_path):
    result, _ = run_on_jax(APPLIED_RATES_CHILD, timeout=600)
    applied = json.loads(result.stdout.split("APPLIED", 1)[1])
    # The rates applied in each epoch (2 steps) add up. Keras' CosineDecay:
    # 0.5 * (1 + cos(pi * step / decay_steps)), the step counted from 0; 10
    # decay steps for the first two epochs, then 6, and training stops after
    # the third epoch, at step 6.
    rates = [0.5 * (1.0 + np.cos(np.pi * step / (10.0 if step < 4 else 6.0)))
             for step in range(6)]
    expected = [rates[0] + rates[1], rates[2] + rates[3], rates[4] + rates[5]]
    np.testing.assert_allclose(applied, expected, atol=1e-6)
