"""`keras-wavevit train` on the JAX backend: Keras feeds the tf.data pipeline to
an XLA-compiled JAX model. Runs in a child process (Keras fixes its backend
per process); skipped when `jax` is not installed."""

import importlib.util
import json
import os
import pathlib
import subprocess
import sys

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


@pytest.mark.skipif(importlib.util.find_spec("jax") is None, reason="jax is not installed")
def test_two_step_run_on_jax_and_a_clear_error_for_tensorflow_only_options(tmp_path):
    images = write_image_folder(str(tmp_path / "images"))
    output = tmp_path / "run"
    arguments = [
        "train", "--data-dir", images, "--model", MICRO_MODEL, "--epochs", "2",
        "--steps-per-epoch", "1", "--batch-size", "4", "--validation-fraction", "0.25",
        "--output", str(output), "--seed", "0", "--verbose", "0",
    ]
    env = {**os.environ, "KERAS_BACKEND": "jax", "TF_CPP_MIN_LOG_LEVEL": "2"}
    result = subprocess.run(
        [sys.executable, "-c", CHILD, *arguments],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=900,
    )
    report = f"{result.stdout[-4000:]}\n{result.stderr[-4000:]}"
    assert result.returncode == 0, report
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
