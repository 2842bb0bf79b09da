"""Runs `keras-wavevit train` in a child process that can SIGKILL itself at a chosen moment.

    python -m tests.recipes.train_child KILL_POINT [train arguments...]

KILL_POINT is `none`, `backup-write:N` (during the N-th backup write, after a
truncated 96-byte weights file was written), `evaluate` (when the evaluate
phase starts, after `fit` finished) or `export` (after the SavedModel was
written into its staging folder, before it is renamed into place). The
package has no test hooks: the patches live here.

Also the shared pieces of the training tests: the micro model and a small
image folder.
"""

import json
import os
import signal
import sys

import numpy as np

from tests.configs import MICRO_ARCHITECTURE

# The micro Wave-ViT as a `--model` JSON object (trains in seconds); from the
# tiny preset it keeps the 32x32 input and drop-path rate 0.1.
MICRO_MODEL = json.dumps({"preset": "tiny", **MICRO_ARCHITECTURE})
CLASSES = ("ant", "bee", "cow")


def write_image_folder(root, per_class=8):
    """3 classes x `per_class` JPEG images of 32x32, each class with its own colour."""
    import tensorflow as tf

    rng = np.random.default_rng(0)
    for class_index, name in enumerate(CLASSES):
        os.makedirs(os.path.join(root, name), exist_ok=True)
        for index in range(per_class):
            image = rng.integers(0, 60, (32, 32, 3)).astype("uint8")
            image[..., class_index] += 180
            tf.io.write_file(os.path.join(root, name, f"{index}.jpg"), tf.io.encode_jpeg(image))
    return root


def micro_command(data_dir, output, *extra, kill="none"):
    """The child command: a 2-epoch micro run, plain batches, no figures."""
    return [
        sys.executable, "-m", "tests.recipes.train_child", kill,
        "--data-dir", data_dir, "--model", MICRO_MODEL, "--epochs", "2",
        "--steps-per-epoch", "1", "--batch-size", "4", "--validation-fraction", "0.25",
        "--output", output, "--seed", "0", "--verbose", "2", "--no-plots",
        "--mixup", "0", "--rotation", "0", "--color-jitter", "0", "--crop-scale", "none",
        *extra,
    ]


def _die():
    sys.stdout.flush()
    os.kill(os.getpid(), signal.SIGKILL)


def _kill_during_backup_write(count):
    import keras

    original = keras.Model.save_weights
    writes = []

    def save_weights(self, filepath, *args, **kwargs):
        if os.sep + "backup" + os.sep in os.path.abspath(filepath):
            writes.append(filepath)
            if len(writes) == count:
                with open(filepath, "wb") as file:
                    file.write(b"\x89HDF\r\n\x1a\n" + bytes(88))  # 96 bytes, truncated
                _die()
        return original(self, filepath, *args, **kwargs)

    keras.Model.save_weights = save_weights


def _kill_at_evaluate():
    from keras_wavevit.recipes import phases

    phases.evaluate = lambda *args, **kwargs: _die()


def _kill_during_export():
    from keras_wavevit import export

    build_archive = export._build_archive

    def build_then_arm(*args, **kwargs):
        archive = build_archive(*args, **kwargs)
        write_out = archive.write_out

        def write_out_then_die(*args, **kwargs):
            write_out(*args, **kwargs)
            _die()

        archive.write_out = write_out_then_die
        return archive

    export._build_archive = build_then_arm


def main(argv):
    kill, arguments = argv[0], argv[1:]
    if kill.startswith("backup-write:"):
        _kill_during_backup_write(int(kill.split(":")[1]))
    elif kill == "evaluate":
        _kill_at_evaluate()
    elif kill == "export":
        _kill_during_export()
    from keras_wavevit import cli

    return cli.main(["train", *arguments])


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
