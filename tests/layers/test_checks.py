"""The shared argument checks and the InputCheck layer."""

import numpy as np
import pytest

from keras_wavevit.layers import InputCheck
from keras_wavevit.layers.checks import (
    check_choice,
    check_feature_map,
    check_heads,
    check_positive,
    check_rate,
    check_tokens,
    is_positive_int,
)
from tests.layer_checks import run_layer_test


def test_integer_checks_accept_numpy_and_refuse_bools_and_floats():
    assert is_positive_int(np.int64(3)) and not is_positive_int(True)
    assert not is_positive_int(2.0) and not is_positive_int(0)
    check_positive(dim=np.int32(4), mlp_ratio=np.float32(0.5))
    with pytest.raises(ValueError, match=r"dim must be a positive integer; received dim=True"):
        check_positive(dim=True)
    with pytest.raises(ValueError, match=r"mlp_ratio must be a positive number; received mlp_ratio='2'"):
        check_positive(mlp_ratio="2")


@pytest.mark.parametrize(
    "check, message",
    [
        (lambda: check_choice("pooling", "max", [None, "avg"]), r"pooling must be one of \[None, 'avg'\]; received pooling='max'"),
        (lambda: check_choice("stride", True, (1, 2)), r"stride must be one of \(1, 2\); received stride=True"),
        (lambda: check_rate("rate", float("nan")), r"rate must be in \[0, 1\); received rate=nan"),
        (lambda: check_heads(12, 0), r"num_heads must be >= 1; received num_heads=0"),
        (lambda: check_feature_map((1, 4, 4), "Layer"), r"Layer expects a feature map \(batch, height, width, channels\); received shape \(1, 4, 4\)"),
        (lambda: check_tokens((1, 4, 8), "Layer", 16), r"Layer expects tokens \(batch, 1 \+ tokens, 16\); received shape \(1, 4, 8\)"),
    ],
)
def test_checks_name_the_argument_and_value(check, message):
    with pytest.raises(ValueError, match=message):
        check()


def test_input_check_contract(tmp_path):
    run_layer_test(InputCheck, dict(multiple=2, channels=3), (2, 4, 6, 3), (2, 4, 6, 3), tmp_path)


def test_input_check_rejects_wrong_rank_channels_and_sizes():
    check = InputCheck(multiple=16, channels=3)
    with pytest.raises(ValueError, match=r"expects images \(batch, height, width, channels\); received input of rank 3 with shape \(32, 32, 3\)"):
        check(np.zeros((32, 32, 3), "float32"))
    with pytest.raises(ValueError, match=r"built for images with 3 channels; received input shape \(1, 16, 16, 4\) \(4 channels\)"):
        InputCheck(multiple=16, channels=3)(np.zeros((1, 16, 16, 4), "float32"))
    with pytest.raises(ValueError, match=r"Input width must be a multiple of 16 .*\(width 24\)"):
        InputCheck(multiple=16)(np.zeros((1, 16, 24, 4), "float32"))


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(multiple=0), r"multiple must be a positive integer; received multiple=0"),
        (dict(multiple=16, channels=0), r"channels must be None or a positive integer; received channels=0"),
    ],
)
def test_input_check_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        InputCheck(**kwargs)
