"""`keras-wavevit train`: flags generated from TrainConfig, one line per bad value."""

import argparse
import dataclasses

import pytest

from keras_wavevit import cli
from keras_wavevit.cli import train as train_cli
from keras_wavevit.recipes.train_config import TrainConfig


def parse(*arguments):
    parser = argparse.ArgumentParser()
    train_cli.configure_parser(parser)
    return parser.parse_args(list(arguments))


def test_every_field_is_a_flag_with_the_dataclass_default():
    parsed = parse()
    for field in dataclasses.fields(TrainConfig):
        assert getattr(parsed, field.name) == field.default, field.name
    assert TrainConfig(**vars(parsed)) == TrainConfig()


def test_help_lists_each_flag_with_the_fields_help(capsys):
    with pytest.raises(SystemExit):
        parse("--help")
    text = " ".join(capsys.readouterr().out.split())
    for field in dataclasses.fields(TrainConfig):
        assert "--" + field.name.replace("_", "-") in text
        assert " ".join(field.metadata["help"].split()) in text


def test_flags_parse_to_config_values():
    parsed = parse(
        "--no-flip", "--no-export", "--no-plots", "--skip-bad-images", "--overwrite",
        "--image-size", "48x64", "--crop-scale", "none", "--mixed-precision",
        "--verbose", "2", "--seed", "3", "--clip-norm", "1.5",
    )
    config = TrainConfig(**vars(parsed))
    assert (config.flip, config.export, config.plots) == (False, False, False)
    assert config.skip_bad_images and config.overwrite
    assert config.image_size == (48, 64) and config.crop_scale is None
    assert config.mixed_precision == "auto"  # the bare flag
    assert (config.verbose, config.seed, config.clip_norm) == (2, 3, 1.5)
    assert parse("--crop-scale", "0.3,0.9").crop_scale == (0.3, 0.9)


@pytest.mark.parametrize(
    "arguments, message",
    [
        (["--learning-rate", "nan"], "expected a finite number; received 'nan'"),
        (["--weight-decay", "inf"], "expected a finite number; received 'inf'"),
        (["--crop-scale", "0.5"], "expected 'MIN,MAX' or 'none'; received '0.5'"),
        (["--image-size", "0"], "image size must be positive"),
        (["--strategy", "tpu"], "invalid choice: 'tpu'"),
    ],
)
def test_bad_text_is_an_argparse_error(arguments, message, capsys):
    with pytest.raises(SystemExit) as exit_info:
        parse(*arguments)
    assert exit_info.value.code == 2
    assert message in capsys.readouterr().err


@pytest.mark.parametrize(
    "arguments, message",
    [
        (["--epochs", "0"], "epochs must be an integer >= 1; received epochs=0."),
        (["--crop-scale", "0.9,0.3"], "crop_scale must be (min, max) with min <= max"),
        (["--label-smoothing", "1"], "label_smoothing must be a finite number in [0.0, 1.0)"),
        (["--dataset", "cifar10", "--data-dir", "x"], "Pass either dataset (TFDS) or data_dir"),
        (["--model", "huge"], "Unknown model 'huge'"),
    ],
)
def test_bad_values_end_as_one_line_before_any_work(arguments, message, capsys, tmp_path):
    output = tmp_path / "never"
    assert cli.main(["train", *arguments, "--output", str(output)]) == 2
    error = capsys.readouterr().err
    assert error.startswith("keras-wavevit train: error: ") and message in error
    assert len(error.strip().splitlines()) == 1
    assert not output.exists()
