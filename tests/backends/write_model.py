"""Writes a micro Wave-ViT `.keras` file and its outputs under the current backend.

Run as `KERAS_BACKEND=<name> python -m tests.backends.write_model DIRECTORY`:
writes `DIRECTORY/<backend>.keras` and `DIRECTORY/<backend>.npz` (the images
and the logits the writing backend computed), for the other backends to load.
"""

import pathlib
import sys

import keras
import numpy as np

import keras_wavevit
from keras_wavevit.files import save_model_atomically
from tests.configs import MICRO_CLASSIFIER


def write(directory):
    """Saves the model and its reference outputs; returns the `.keras` path."""
    keras.utils.set_random_seed(0)
    backend = keras.backend.backend()
    model = keras_wavevit.WaveViT(**MICRO_CLASSIFIER, token_label=True)
    images = np.random.default_rng(0).uniform(-1, 1, (2, 32, 32, 3)).astype("float32")
    logits = keras.ops.convert_to_numpy(model(images, training=False))
    path = pathlib.Path(directory) / f"{backend}.keras"
    save_model_atomically(model, path)
    np.savez(path.with_suffix(".npz"), images=images, logits=logits)
    return path


if __name__ == "__main__":
    write(sys.argv[1])
