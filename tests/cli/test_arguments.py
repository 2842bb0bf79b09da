"""The one image-size convention and finite numbers on the command line."""

import argparse
import re

import pytest

from keras_wavevit.cli.arguments import finite_float, image_size_argument, parse_image_size


@pytest.mark.parametrize(
    "text, expected",
    [("32", (32, 32)), ("224x160", (224, 160)), ("224X160", (224, 160)),
     ("64,96", (64, 96)), (" 48 ", (48, 48))],
)
def test_sizes_parse(text, expected):
    assert parse_image_size(text) == expected


@pytest.mark.parametrize("text", ["big", "32x", "1x2x3", "-32", "3.5", "", "any"])
def test_bad_sizes_name_the_convention(text):
    with pytest.raises(ValueError, match=re.escape(f"image size must be N, HxW or H,W; received {text!r}.")):
        parse_image_size(text)


def test_zero_is_refused_and_any_only_where_allowed():
    with pytest.raises(ValueError, match=re.escape("image size must be positive; received '0x32'.")):
        parse_image_size("0x32")
    assert parse_image_size("ANY", allow_any=True) is None
    with pytest.raises(ValueError, match=re.escape("or 'any'; received 'huge'")):
        parse_image_size("huge", allow_any=True)


def test_argparse_types_report_errors_through_argparse(capsys):
    parser = argparse.ArgumentParser(prog="p")
    parser.add_argument("--image-size", type=image_size_argument())
    parser.add_argument("--learning-rate", type=finite_float)
    args = parser.parse_args(["--image-size", "16x8", "--learning-rate", "1e-3"])
    assert args.image_size == (16, 8) and args.learning_rate == 1e-3
    for argv, message in [
        (["--image-size", "wide"], "argument --image-size: image size must be N, HxW or H,W"),
        (["--learning-rate", "nan"], "argument --learning-rate: expected a finite number; received 'nan'."),
        (["--learning-rate", "inf"], "expected a finite number; received 'inf'."),
        (["--learning-rate", "fast"], "expected a number; received 'fast'."),
    ]:
        with pytest.raises(SystemExit):
            parser.parse_args(argv)
        assert message in capsys.readouterr().err
