"""`keras-wavevit export` (`keras_wavevit.cli.export`): arguments to a SavedModel or another format."""

import argparse
import json
import os

import keras
import numpy as np
import pytest
import tensorflow as tf

from keras_wavevit.cli import export as export_cli
from keras_wavevit.preprocessing import normalize_images
from tests.test_export import plain_classifier


def parse(argv):
    parser = argparse.ArgumentParser()
    export_cli.configure_parser(parser)
    return parser.parse_args(argv)


def test_command_line(tmp_path):
    model = plain_classifier(input_shape=(None, None, 3))
    model_file = str(tmp_path / "model.keras")
    model.save(model_file)
    names_file = tmp_path / "names.txt"
    names_file.write_text("red\ngreen\nblue\n")
    base = str(tmp_path / "models")

    with pytest.raises(ValueError, match="input size is unknown"):
        export_cli.run(parse([model_file, base]))
    args = parse([model_file, base, "--image-size", "16", "--class-names", "a,b,c", "--no-logits",
                  "--top-k", "2"])
    assert export_cli.run(args) == 0
    args = parse([model_file, base, "--version", "2", "--image-size", "32x24",
                  "--class-names-file", str(names_file)])
    assert export_cli.run(args) == 0
    with pytest.raises(FileExistsError):
        export_cli.run(parse([model_file, base, "--version", "2", "--image-size", "8"]))
    assert sorted(os.listdir(base)) == ["1", "2"]

    loaded = tf.saved_model.load(os.path.join(base, "2"))
    spec = loaded.signatures["serving_preprocessed"].structured_input_signature[1]["images"]
    assert spec.shape.as_list() == [None, 32, 24, 3]
    out = loaded.signatures["serving_default"](images=tf.zeros((1, 8, 8, 3), tf.uint8))
    names = ["red", "green", "blue"]
    assert out["classes"].numpy()[0].decode() == names[int(out["class_ids"][0])]
    assert "logits" in out
    assert out["top_k_classes"].shape == (1, 3)  # the default: every class (3 < 5)
    first = tf.saved_model.load(os.path.join(base, "1"))
    spec = first.signatures["serving_preprocessed"].structured_input_signature[1]["images"]
    assert spec.shape.as_list() == [None, 16, 16, 3]
    out = first.signatures["serving_default"](images=tf.zeros((1, 8, 8, 3), tf.uint8))
    assert "logits" not in out
    assert out["top_k_class_ids"].shape == (1, 2)


def test_bad_top_k_is_refused_before_writing(tmp_path):
    model_file = str(tmp_path / "model.keras")
    plain_classifier().save(model_file)
    with pytest.raises(ValueError, match=r"top_k must be .* classes, 3; received 7"):
        export_cli.run(parse([model_file, str(tmp_path / "models"), "--top-k", "7"]))
    assert not (tmp_path / "models").exists()


@pytest.mark.parametrize("size", ["16 16", "0", "any", "16x"])
def test_image_size_follows_the_one_convention(size, capsys):
    with pytest.raises(SystemExit):
        parse(["m.keras", "out", "--image-size", *size.split()])
    assert "--image-size" in capsys.readouterr().err


@pytest.mark.parametrize("content", [b"", b"PK\x03\x04 half a model", b"random bytes"])
def test_corrupt_model_file_is_not_reported_as_missing(tmp_path, content):
    model_file = tmp_path / "best.keras"
    model_file.write_bytes(content)
    with pytest.raises(ValueError, match=r"best.keras is not a valid \.keras file"):
        export_cli.run(parse([str(model_file), str(tmp_path / "models")]))
    assert not (tmp_path / "models").exists()
    with pytest.raises(FileNotFoundError, match="Model file not found"):
        export_cli.run(parse([str(tmp_path / "missing.keras"), str(tmp_path / "models")]))


def test_onnx_format(tmp_path, capsys):
    pytest.importorskip("tf2onnx")
    onnxruntime = pytest.importorskip("onnxruntime")
    model = plain_classifier()
    model_file = str(tmp_path / "model.keras")
    model.save(model_file)
    path = str(tmp_path / "wavevit.onnx")
    assert export_cli.run(parse([model_file, path, "--format", "onnx"])) == 0
    assert capsys.readouterr().out == f"ONNX model written to {path}\n"
    images = np.random.default_rng(0).uniform(0, 255, (2, 16, 16, 3)).astype("float32")
    session = onnxruntime.InferenceSession(path, providers=["CPUExecutionProvider"])
    (probabilities,) = session.run(["probabilities"], {"images": images})
    expected = keras.ops.softmax(model.predict(normalize_images(images), verbose=0))
    np.testing.assert_allclose(probabilities, expected, atol=1e-5)


@pytest.mark.parametrize("flags", [
    ["--version", "2"], ["--class-names", "a,b,c"], ["--no-logits"], ["--top-k", "1"],
    ["--preprocessing", "official"], ["--class-names-file", "names.txt", "--top-k", "0"],
    ["--flip-average"], ["--shift-average", "1"],
])
def test_saved_model_flags_are_refused_for_other_formats(tmp_path, flags):
    given = ", ".join(flag for flag in flags if flag.startswith("--"))
    with pytest.raises(ValueError, match=rf"^{given}: SavedModel options, not for --format "
                                         r"litert \(leave them out, or use --format saved_model\)\.$"):
        export_cli.run(parse(["missing.keras", str(tmp_path / "m.tflite"), "--format", "litert",
                              *flags]))
    assert os.listdir(tmp_path) == []


def test_format_and_preprocessing_choices(capsys):
    for flag in ("--format", "--preprocessing"):
        with pytest.raises(SystemExit):
            parse(["m.keras", "out", flag, "tflite"])
        assert f"argument {flag}: invalid choice: 'tflite'" in capsys.readouterr().err


def test_official_preprocessing_reaches_the_saved_model(tmp_path):
    model_file = str(tmp_path / "model.keras")
    plain_classifier().save(model_file)
    base = tmp_path / "models"
    assert export_cli.run(parse([model_file, str(base), "--preprocessing", "official"])) == 0
    asset = json.loads((base / "1" / "assets" / "preprocessing.json").read_text())
    assert asset["preprocessing"] == "official"


def test_test_time_averaging_flags_reach_the_saved_model(tmp_path):
    model_file = str(tmp_path / "model.keras")
    plain_classifier().save(model_file)
    base = tmp_path / "models"
    with pytest.raises(ValueError, match=r"smaller than the image's sides \(16, 16\)"):
        export_cli.run(parse([model_file, str(base), "--shift-average", "16"]))
    assert not base.exists()  # refused before anything was written
    args = parse([model_file, str(base), "--flip-average", "--shift-average", "2"])
    assert export_cli.run(args) == 0
    asset = json.loads((base / "1" / "assets" / "preprocessing.json").read_text())
    assert asset["test_time_views"] == {"flip": True, "shift": 2, "count": 10}
