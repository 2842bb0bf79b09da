"""`keras-wavevit export` (`keras_wavevit.cli.export`): arguments to a SavedModel."""

import argparse
import os

import pytest
import tensorflow as tf

from keras_wavevit.cli import export as export_cli
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
    args = parse([model_file, base, "--image-size", "16", "--class-names", "a,b,c", "--no-logits"])
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
    assert out["labels"].numpy()[0].decode() in ("red", "green", "blue")
    assert "logits" in out
    first = tf.saved_model.load(os.path.join(base, "1"))
    spec = first.signatures["serving_preprocessed"].structured_input_signature[1]["images"]
    assert spec.shape.as_list() == [None, 16, 16, 3]
    assert "logits" not in first.signatures["serving_default"](images=tf.zeros((1, 8, 8, 3), tf.uint8))


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
