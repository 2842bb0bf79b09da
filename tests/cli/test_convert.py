"""Tests of `keras-wavevit convert` (`keras_wavevit.cli.convert`)."""

import json
import os

import keras
import numpy as np
import pytest

import keras_wavevit
from keras_wavevit import presets
from keras_wavevit.cli import main
from tests.weights.reference import (
    NUM_TINY_ENTRIES,
    TINY_CONFIG,
    TOLERANCE,
    broken,
    load_reference,
    max_error,
    nhwc,
    official_entries,
    read_key_list,
)


@pytest.fixture(scope="module")
def reference():
    return load_reference()


@pytest.fixture(scope="module")
def state_dict(reference):
    return official_entries(reference)


@pytest.fixture
def tiny_files(state_dict, tmp_path):
    """The fixture as an .npz checkpoint and its architecture as JSON."""
    checkpoint = tmp_path / "wavevit_tiny.npz"
    np.savez(checkpoint, **state_dict)
    config = tmp_path / "tiny.json"
    architecture = {key: value for key, value in TINY_CONFIG.items() if key != "num_classes"}
    config.write_text(json.dumps(architecture))
    return str(checkpoint), str(config)


def convert(*args):
    return main(["convert", *map(str, args)])


def test_converts_to_weights_with_parity(tiny_files, reference, tmp_path, capsys):
    checkpoint, config = tiny_files
    output = tmp_path / "tiny.weights.h5"
    assert convert(checkpoint, output, "--config", config, "--num-classes", 10) == 0
    printed = capsys.readouterr().out
    # 303,488 parameters (the fixture's n_params) + 168 BatchNorm statistics
    assert f"mapped {NUM_TINY_ENTRIES} checkpoint entries (303,656 values)" in printed
    assert "fixed Haar filters (DWT2D/IDWT2D compute them, no weights) (10): " in printed
    assert "BatchNorm step counters (not used at inference) (7): " in printed
    assert f"wrote {output}" in printed
    model = keras_wavevit.WaveViT(**TINY_CONFIG, token_label=True)
    model.load_weights(output)
    logits = model(nhwc(reference["input_64"]), training=False)
    assert max_error(logits, reference["logits_64"]) <= TOLERANCE


def test_converts_to_a_keras_model(tiny_files, reference, tmp_path):
    checkpoint, config = tiny_files
    output = tmp_path / "tiny.keras"
    assert convert(checkpoint, output, "--config", config, "--num-classes", 10,
                   "--image-size", "64") == 0
    model = keras.saving.load_model(output)
    assert model.input_shape == (None, 64, 64, 3)
    logits = model(nhwc(reference["input_64"]), training=False)
    assert max_error(logits, reference["logits_64"]) <= TOLERANCE


@pytest.mark.parametrize(
    "size, shape", [("64x96", (None, 64, 96, 3)), ("any", (None, None, None, 3))]
)
def test_image_size_convention(tiny_files, tmp_path, size, shape):
    checkpoint, config = tiny_files
    output = tmp_path / "tiny.keras"
    assert convert(checkpoint, output, "--config", config, "--num-classes", 10,
                   "--image-size", size) == 0
    assert keras.saving.load_model(output).input_shape == shape


def test_fine_tuning_and_no_token_label(tiny_files, tmp_path, capsys):
    checkpoint, config = tiny_files
    output = tmp_path / "tiny3.weights.h5"
    assert convert(checkpoint, output, "--config", config, "--num-classes", 3,
                   "--skip-head", "--no-token-label") == 0
    printed = capsys.readouterr().out
    assert "dropped aux_head.bias, aux_head.weight (no token-label head)" in printed
    assert "classifier (skip_head) (2): head.weight, head.bias" in printed
    assert "unexpected" not in printed and "missing" not in printed
    assert output.exists()


def error_line(capsys):
    """The one line `keras-wavevit` prints for an error (no traceback)."""
    captured = capsys.readouterr()
    assert "Traceback" not in captured.err
    return captured.err


def test_mismatch_fails_and_writes_nothing(state_dict, tiny_files, tmp_path, capsys):
    _, config = tiny_files
    checkpoint = tmp_path / "broken.npz"
    np.savez(checkpoint, **broken(state_dict, "missing"))
    output = tmp_path / "broken.weights.h5"
    assert convert(checkpoint, output, "--config", config, "--num-classes", 10) == 2
    error = error_line(capsys)
    assert error.startswith("keras-wavevit convert: error: The checkpoint does not match")
    assert "  block1_0/mlp/fc1/kernel (16, 32)" in error
    assert not output.exists()
    # --non-strict converts what matches and prints the problem
    assert convert(checkpoint, output, "--config", config, "--num-classes", 10,
                   "--non-strict") == 0
    printed = capsys.readouterr().out
    assert "missing (1): Keras weights with no checkpoint entry:" in printed
    assert output.exists()


def test_non_strict_with_nothing_mapped_refuses(tiny_files, tmp_path, capsys):
    _, config = tiny_files
    checkpoint = tmp_path / "resnet.npz"
    np.savez(checkpoint, **{"conv1.weight": np.zeros((64, 3, 7, 7), "float32")})
    output = tmp_path / "tiny.weights.h5"
    assert convert(checkpoint, output, "--config", config, "--non-strict") == 2
    assert error_line(capsys).startswith(
        "keras-wavevit convert: error: None of the 1 checkpoint entries matches"
    )
    assert not output.exists()


def test_unreadable_inputs_end_as_one_line(tiny_files, tmp_path, capsys):
    checkpoint, config = tiny_files
    output = tmp_path / "out.weights.h5"
    truncated = tmp_path / "truncated.npz"
    truncated.write_bytes(open(checkpoint, "rb").read()[:1000])
    bad_json = tmp_path / "bad.json"
    bad_json.write_text('{"preset": "tiny",')
    cases = [
        ((tmp_path / "absent.npz", output, "--variant", "small"), "Checkpoint not found"),
        ((tmp_path / "absent.npz", tmp_path / "out.h5", "--variant", "small"),
         "The output must end in .weights.h5 or .keras"),
        ((truncated, output, "--variant", "tiny"), f"{truncated} is not a valid .npz file"),
        ((checkpoint, output, "--config", bad_json),
         f"Could not parse the model configuration file '{bad_json}' as JSON"),
    ]
    for args, message in cases:
        assert convert(*args) == 2
        error = error_line(capsys)
        assert error.startswith(f"keras-wavevit convert: error: {message}"), error
        assert len(error.strip().splitlines()) == 1, error
    assert sorted(os.listdir(tmp_path)) == ["bad.json", "tiny.json", "truncated.npz",
                                            "wavevit_tiny.npz"]


def test_converts_the_small_key_list(tmp_path, capsys):
    """The released Wave-ViT-S entries map exactly onto `--variant small`."""
    official, num_parameters = read_key_list("s")
    checkpoint = tmp_path / "wavevit_s.npz"
    np.savez(checkpoint, **official)
    output = tmp_path / "wavevit_s.weights.h5"
    assert convert(checkpoint, output, "--variant", "small") == 0
    printed = capsys.readouterr().out
    num_buffers = sum(a.size for n, a in official.items() if "running_" in n)
    assert f"mapped 425 checkpoint entries ({num_parameters + num_buffers:,} values)" in printed
    assert "skipped 52 entries without a Keras counterpart:" in printed
    assert "missing" not in printed and "unexpected" not in printed
    assert f"wrote {output} (WaveViTSmall, " in printed
    assert sorted(os.listdir(tmp_path)) == ["wavevit_s.npz", "wavevit_s.weights.h5"]
    keras.backend.clear_session()


def test_converts_to_a_preset_with_parity(tiny_files, reference, tmp_path, capsys):
    """Official fixture -> --preset -> load_preset: the official logits."""
    checkpoint, config = tiny_files
    names = tmp_path / "names.txt"
    names.write_text("".join(f"class {index}\n" for index in range(10)))
    preset = tmp_path / "tiny_preset"
    assert convert(checkpoint, "--preset", preset, "--config", config, "--num-classes", 10,
                   "--class-names", names) == 0
    assert f"wrote the preset {preset} (wave_vit, " in capsys.readouterr().out
    model = presets.load_preset(preset)
    logits = model(nhwc(reference["input_64"]), training=False)
    assert max_error(logits, reference["logits_64"]) <= TOLERANCE
    info = presets.read_preset(preset)
    assert info["class_names"] == [f"class {index}" for index in range(10)]
    # The architecture takes any size: the official evaluation at 224.
    assert info["preprocessing"]["image_size"] == [224, 224]
    assert info["preprocessing"]["crop_pct"] == keras_wavevit.OFFICIAL_CROP_PCT
    assert info["preprocessing"]["interpolation"] == "bicubic"


def test_preset_errors_before_reading_the_checkpoint(tiny_files, tmp_path, capsys):
    checkpoint, config = tiny_files
    (tmp_path / "taken").mkdir()
    names = tmp_path / "names.txt"
    names.write_text("cat\ndog\n")
    cases = [
        ((tmp_path / "absent.npz", "--variant", "tiny"),
         "Give an output file, a preset directory, or both."),
        ((tmp_path / "absent.npz", "--preset", tmp_path / "taken", "--variant", "tiny"),
         f"The preset directory {tmp_path / 'taken'} already exists."),
        ((tmp_path / "absent.npz", "--preset", tmp_path / "p", "--variant", "tiny",
          "--class-names", names), "class_names holds 2 names for num_classes=1000."),
    ]
    for args, message in cases:
        assert convert(*args) == 2
        assert error_line(capsys).startswith(f"keras-wavevit convert: error: {message}")
    assert not (tmp_path / "p").exists()


def test_a_1000_class_preset_gets_the_imagenet_names(tiny_files, tmp_path):
    checkpoint, config = tiny_files
    preset = tmp_path / "imagenet_head"
    # --skip-head: the fixture's 10-class head stays out of a 1000-class model.
    assert convert(checkpoint, "--preset", preset, "--config", config, "--skip-head") == 0
    info = presets.read_preset(preset)
    assert info["head"]["num_classes"] == 1000
    assert info["class_names"] == list(keras_wavevit.IMAGENET_CLASS_NAMES)
