"""Tests of `convert_checkpoint` (file in, file out) and `load_model_file`."""

import json
import os
import re

import keras
import numpy as np
import pytest

import keras_wavevit
from keras_wavevit.weights import convert_checkpoint, load_model_file
from tests.weights.reference import (
    NUM_TINY_ENTRIES,
    TINY_CONFIG,
    load_reference,
    official_entries,
    weights_of,
)

ARCHITECTURE = {key: value for key, value in TINY_CONFIG.items() if key != "num_classes"}


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    """The official fixture as an .npz checkpoint."""
    path = tmp_path_factory.mktemp("checkpoint") / "wavevit_tiny.npz"
    np.savez(path, **official_entries(load_reference()))
    return path


def convert(checkpoint, output, **kwargs):
    return convert_checkpoint(checkpoint, output, ARCHITECTURE, num_classes=10, **kwargs)


# --- atomic output ------------------------------------------------------------------


def test_writes_a_loadable_file_with_umask_mode(checkpoint, tmp_path):
    path = tmp_path / "tiny.weights.h5"
    report = convert(checkpoint, path)
    assert report.splitlines()[0].startswith(f"mapped {NUM_TINY_ENTRIES} checkpoint entries")
    assert report.splitlines()[-1].startswith(f"wrote {path} (wave_vit, ")
    assert os.listdir(tmp_path) == ["tiny.weights.h5"]
    umask = os.umask(0)
    os.umask(umask)
    assert path.stat().st_mode & 0o777 == 0o666 & ~umask
    model = keras_wavevit.WaveViT(**TINY_CONFIG, token_label=True)
    model.load_weights(path)
    state_dict = official_entries(load_reference())
    np.testing.assert_array_equal(
        model.get_layer("head").head.kernel.numpy(), state_dict["head.weight"].T
    )


def interrupted_save(error):
    def save(self, path, *args, **kwargs):
        with open(path, "wb") as file:
            file.write(b"half a file")
        raise error

    return save


def test_interrupted_write_keeps_the_previous_file(checkpoint, tmp_path, monkeypatch):
    path = tmp_path / "model.weights.h5"
    path.write_bytes(b"previous conversion")
    monkeypatch.setattr(keras.Model, "save_weights", interrupted_save(KeyboardInterrupt()))
    with pytest.raises(KeyboardInterrupt):
        convert(checkpoint, path)
    assert path.read_bytes() == b"previous conversion"
    assert os.listdir(tmp_path) == ["model.weights.h5"]


def test_failed_write_leaves_nothing(checkpoint, tmp_path, monkeypatch):
    monkeypatch.setattr(keras.Model, "save", interrupted_save(OSError("disk full")))
    with pytest.raises(OSError, match="disk full"):
        convert(checkpoint, tmp_path / "out" / "model.keras")
    assert os.listdir(tmp_path / "out") == []


def test_output_ending_is_checked_before_any_work(tmp_path):
    with pytest.raises(
        ValueError, match=r"The output must end in .weights.h5 or .keras; received .*model\.h5'"
    ):
        convert(tmp_path / "absent.npz", tmp_path / "model.h5")
    assert os.listdir(tmp_path) == []


# --- nothing written when the checkpoint is refused ---------------------------------


def test_non_strict_conversion_of_an_unrelated_checkpoint_writes_nothing(tmp_path):
    """--non-strict used to write a model of random weights after mapping 0 entries."""
    unrelated = tmp_path / "resnet.npz"
    np.savez(unrelated, **{"fc.weight": np.zeros((10, 96), "float32")})
    output = tmp_path / "tiny.keras"
    with pytest.raises(ValueError, match="^None of the 1 checkpoint entries matches"):
        convert(unrelated, output, strict=False)
    assert not output.exists()


def test_nan_entries_are_refused_strictly_and_left_out_otherwise(tmp_path):
    state_dict = official_entries(load_reference())
    state_dict["norm1.weight"] = np.full_like(state_dict["norm1.weight"], np.nan)
    poisoned = tmp_path / "poisoned.npz"
    np.savez(poisoned, **state_dict)
    output = tmp_path / "tiny.weights.h5"
    with pytest.raises(ValueError, match=r"(?s)non-finite \(1\).*  norm1.weight \(16 of 16"):
        convert(poisoned, output)
    assert not output.exists()
    report = convert(poisoned, output, strict=False)
    assert "non-finite (1): checkpoint entries holding NaN or infinity:" in report
    model = keras_wavevit.WaveViT(**TINY_CONFIG, token_label=True)
    model.load_weights(output)
    assert all(np.isfinite(weight).all() for weight in weights_of(model))


# --- the architecture -----------------------------------------------------------------


def test_inline_json_architecture_and_its_image_size_replaced(checkpoint, tmp_path):
    output = tmp_path / "tiny.keras"
    inline = json.dumps({**ARCHITECTURE, "input_shape": [224, 224, 3]})
    convert_checkpoint(checkpoint, output, inline, num_classes=10, input_shape=(64, 96, 3))
    assert keras.saving.load_model(output).input_shape == (None, 64, 96, 3)


def test_image_size_is_checked_before_the_checkpoint_is_read(tmp_path):
    with pytest.raises(ValueError, match="multiple of 32"):
        convert(tmp_path / "absent.npz", tmp_path / "tiny.keras", input_shape=(100, 100, 3))


@pytest.mark.parametrize(
    "content, problem",
    [
        (b"", "Could not parse .* as JSON: Expecting value: line 1 column 1"),
        (b'{"embed_dims": [16, 32,', "Could not parse .* as JSON"),
        (b"[1, 2]", "must be a JSON object"),
        (b"\xff\xfe\x00binary", "codec can't decode"),
        (b'{"preset": "tiny", "depths": [1, 1]}', "depths"),
        (
            b'{"preset": "tiny", "num_classes": 10}',
            r"Unknown model configuration keys \['num_classes'\]",
        ),
    ],
    ids=["empty", "truncated", "array", "binary", "invalid_value", "unknown_key"],
)
def test_bad_config_files_are_named_before_the_checkpoint_is_read(tmp_path, content, problem):
    path = tmp_path / "model.json"
    path.write_bytes(content)
    with pytest.raises(ValueError) as info:
        convert_checkpoint(tmp_path / "absent.npz", tmp_path / "tiny.keras", path)
    message = str(info.value)
    assert str(path) in message, message
    assert len(message.splitlines()) == 1
    assert re.search(problem, message), message


# --- .keras files given where a model is expected -------------------------------------


@pytest.fixture(scope="module")
def keras_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("model") / "small.keras"
    keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)]).save(path)
    return path


def test_load_model_file_loads_a_good_file(keras_file):
    assert load_model_file(keras_file, compile=False).count_params() == 3


@pytest.mark.parametrize(
    "damage, problem",
    [
        (lambda data: b"", "not a zip archive"),
        (lambda data: data[: len(data) // 2], "not a zip archive"),
        (lambda data: b"random bytes" * 100, "not a zip archive"),
    ],
    ids=["empty", "truncated", "random"],
)
def test_damaged_keras_file_is_not_reported_as_missing(keras_file, tmp_path, damage, problem):
    """Keras says "File not found" for all of these."""
    path = tmp_path / "best.keras"
    path.write_bytes(damage(keras_file.read_bytes()))
    with pytest.raises(ValueError, match=f"{path} is not a valid .keras file: {problem}"):
        load_model_file(path)


def test_zip_that_is_not_a_keras_model(tmp_path, checkpoint):
    path = tmp_path / "weights.keras"
    path.write_bytes(checkpoint.read_bytes())  # an .npz is a zip archive too
    with pytest.raises(ValueError, match=f"{path} is not a valid .keras file: a zip archive "
                       "without config.json"):
        load_model_file(path)


def test_missing_keras_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="Model file not found: .*absent.keras"):
        load_model_file(tmp_path / "absent.keras")
