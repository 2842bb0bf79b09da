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


def test_flags_not_given_take_the_dataclass_defaults():
    parsed = parse()
    assert vars(parsed) == {"recipe": None}  # nothing given, nothing set
    assert train_cli.config_from_arguments(parsed) == TrainConfig()


def test_help_shows_each_default_once_from_the_dataclass(capsys):
    with pytest.raises(SystemExit):
        parse("--help")
    text = " ".join(capsys.readouterr().out.split())
    assert "(default: 128)" in text and "(default: 0.6,1.0)" in text
    assert "(2-33% of the area)" in text  # a literal % in a help string
    assert "cifar10" in text  # the shipped recipes are listed


def test_recipe_values_apply_and_the_flags_given_replace_them():
    recipe = TrainConfig.from_recipe("cifar10")
    assert train_cli.config_from_arguments(parse("--recipe", "cifar10")) == recipe
    changed = train_cli.config_from_arguments(
        parse("--recipe", "cifar10", "--batch-size", "128", "--no-flip", "--mixup", "0.8")
    )
    # 128 equals the dataclass default, yet it was given, so it is kept.
    assert (changed.batch_size, changed.flip, changed.mixup) == (128, False, 0.8)
    assert changed.model == recipe.model and changed.time_budget_minutes == 60.0


def test_recipe_file_and_bad_recipes(tmp_path):
    path = tmp_path / "mine.json"
    path.write_text('{"epochs": 7, "flip": false}')
    config = train_cli.config_from_arguments(parse("--recipe", str(path)))
    assert (config.epochs, config.flip) == (7, False)
    path.write_text('{"epochs": 7, "learning_rat": 0.1}')
    with pytest.raises(ValueError, match=r"sets unknown training options \['learning_rat'\]"):
        train_cli.config_from_arguments(parse("--recipe", str(path)))
    with pytest.raises(ValueError, match=r"Unknown recipe 'imagenet': expected one of \['cifar10'"):
        train_cli.config_from_arguments(parse("--recipe", "imagenet"))


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
    config = train_cli.config_from_arguments(parsed)
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
