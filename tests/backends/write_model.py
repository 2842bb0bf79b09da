"""Writes a micro Wave-ViT `.keras` file and its outputs under the current backend.

Run as `KERAS_BACKEND=<name> python -m tests.backends.write_model DIRECTORY`:
writes `DIRECTORY/<backend>.keras` and `DIRECTORY/<backend>.npz` (the images
and the logits the writing backend computed), for the other backends to load,
and `DIRECTORY/<backend>.imports.json`: the TensorFlow, TensorFlow Datasets
and `keras_wavevit.recipes` modules a bare `import keras_wavevit` loaded (the
first import of the package in this process; it runs before anything else
here).
"""

import json
import pathlib
import sys

import keras_wavevit

IMPORTED_BY_PACKAGE = sorted(
    name for name in sys.modules
    if name.split(".")[0] in ("tensorflow", "tensorflow_datasets")
    or name.startswith("keras_wavevit.recipes")
)

import keras  # noqa: E402
import numpy as np  # noqa: E402

from keras_wavevit.files import save_model_atomically  # noqa: E402
from tests.configs import MICRO_CLASSIFIER  # noqa: E402


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
    path.with_suffix(".imports.json").write_text(json.dumps(IMPORTED_BY_PACKAGE))
    return path


if __name__ == "__main__":
    write(sys.argv[1])
