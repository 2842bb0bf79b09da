"""The dtype-policy scope: set inside the block, restored after, reaching sub-layers."""

import keras
import pytest

from keras_wavevit.precision import dtype_policy_scope


def test_scope_sets_the_policy_and_restores_it_after_an_error():
    keras.config.set_dtype_policy("float32")
    with pytest.raises(RuntimeError, match="inside"):
        with dtype_policy_scope("mixed_bfloat16") as policy:
            assert policy.name == keras.config.dtype_policy().name == "mixed_bfloat16"
            raise RuntimeError("inside")
    assert keras.config.dtype_policy().name == "float32"


def test_scope_of_none_keeps_the_policy_in_force():
    keras.config.set_dtype_policy("mixed_float16")
    try:
        with dtype_policy_scope(None) as policy:
            assert policy.name == "mixed_float16"
        assert keras.config.dtype_policy().name == "mixed_float16"
    finally:
        keras.config.set_dtype_policy("float32")


def test_sub_layers_created_inside_get_the_policy():
    keras.config.set_dtype_policy("mixed_bfloat16")
    try:
        with dtype_policy_scope("float32"):
            jitter = keras.layers.RandomColorJitter(brightness_factor=0.2)
    finally:
        keras.config.set_dtype_policy("float32")
    # RandomColorJitter passes no dtype to its sub-layers.
    assert jitter.random_brightness.compute_dtype == "float32"
