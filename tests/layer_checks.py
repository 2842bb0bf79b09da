"""Shared checks for every layer: config, shapes, save/load, mixed precision,
and argument errors raised before any weight exists."""

import math
import os

import keras
import numpy as np
import pytest


def run_layer_test(layer_class, init_kwargs, input_shape, expected_output_shape, tmp_path):
    """Checks a layer the way every keras_wavevit layer must behave.

    * `get_config` round trip: a layer rebuilt from its config has the same
      config and the same number of weights;
    * eager call and `compute_output_shape` give `expected_output_shape`;
      a symbolic call with unknown spatial dims keeps them unknown;
    * a one-layer model saved as `.keras` and loaded back gives identical
      outputs (custom objects are registered, so no `custom_objects`);
    * under `mixed_bfloat16` the layer runs, computes in bfloat16 and stays
      close to the float32 result.
    """
    rng = np.random.default_rng(0)
    x = rng.normal(size=input_shape).astype("float32")

    layer = layer_class(**init_kwargs)
    output = layer(x)
    assert tuple(output.shape) == tuple(expected_output_shape)
    assert tuple(layer.compute_output_shape(input_shape)) == tuple(expected_output_shape)

    clone = layer_class.from_config(layer.get_config())
    assert clone.get_config() == layer.get_config()
    clone(x)
    assert len(clone.weights) == len(layer.weights)

    spatial_unknown = (None,) * (len(input_shape) - 2) + (input_shape[-1],)
    symbolic_input = keras.Input(shape=spatial_unknown)
    symbolic = layer_class(**init_kwargs)(symbolic_input)
    assert symbolic.shape[0] is None and symbolic.shape[-1] == expected_output_shape[-1]

    inputs = keras.Input(shape=input_shape[1:])
    model = keras.Model(inputs, layer_class(**init_kwargs)(inputs))
    reference = np.asarray(model(x))
    path = os.path.join(tmp_path, f"{layer_class.__name__}.keras")
    model.save(path)
    loaded = keras.saving.load_model(path)
    np.testing.assert_array_equal(np.asarray(loaded(x)), reference)

    mixed = layer_class(**init_kwargs, dtype="mixed_bfloat16")
    mixed(x)
    mixed.set_weights(model.layers[-1].get_weights())
    mixed_output = mixed(x)
    assert mixed_output.dtype == "bfloat16"
    scale = np.abs(reference).max() + 1e-6
    assert np.abs(np.asarray(mixed_output, dtype="float32") - reference).max() / scale < 0.1


@pytest.fixture
def created_weights(monkeypatch):
    """Records every weight created through `Layer.add_weight`."""
    created = []
    original = keras.layers.Layer.add_weight

    def recording_add_weight(self, *args, **kwargs):
        created.append(self.name)
        return original(self, *args, **kwargs)

    monkeypatch.setattr(keras.layers.Layer, "add_weight", recording_add_weight)
    return created


def raises_before_weights(created, message, build):
    """`build()` raises a ValueError matching `message` before any weight exists."""
    with pytest.raises(ValueError, match=message):
        build()
    assert created == [], f"weights were created before the error: {created}"


def layer_contract_test(cases):
    """A test running `run_layer_test` over `(class, kwargs, input_shape,
    output_shape)` cases; assign it to a `test_*` name in a test module."""

    @pytest.mark.parametrize(
        "layer_class, init_kwargs, input_shape, output_shape",
        cases,
        ids=[f"{case[0].__name__}-{index}" for index, case in enumerate(cases)],
    )
    def test_layer_contract(layer_class, init_kwargs, input_shape, output_shape, tmp_path):
        run_layer_test(layer_class, init_kwargs, input_shape, output_shape, tmp_path)

    return test_layer_contract


def gelu_reference(x):
    """Exact GELU in float64 (`math.erf`)."""
    x = np.asarray(x, np.float64)
    return 0.5 * x * (1.0 + np.vectorize(math.erf)(x / math.sqrt(2.0)))


def gelu_derivative_reference(x):
    """The exact GELU's derivative in float64: `cdf(x) + x * pdf(x)`."""
    x = np.asarray(x, np.float64)
    cdf = 0.5 * (1.0 + np.vectorize(math.erf)(x / math.sqrt(2.0)))
    return cdf + x * np.exp(-0.5 * x * x) / math.sqrt(2.0 * math.pi)


def randomize_weights(layer, seed):
    """Replaces the small default init by N(0, 1/fan_in)-like weights so that
    mistakes in scale or head split change the output visibly."""
    rng = np.random.default_rng(seed)
    layer.set_weights(
        [rng.normal(size=w.shape) / math.sqrt(max(w.shape[0], 1)) for w in layer.get_weights()]
    )


def dense_reference(layer, x):
    """A Dense layer's output in float64."""
    kernel, bias = (np.asarray(w, np.float64) for w in layer.get_weights())
    return x @ kernel + bias
