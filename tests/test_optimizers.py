"""The fused AdamW: Keras AdamW's update, its variables and config, TensorFlow's Adam kernel."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from keras_wavevit.layers.fusion import fused_ops
from keras_wavevit.optimizers import AdamW


def train(optimizer, steps=5, seed=3):
    keras.utils.set_random_seed(seed)
    model = keras.Sequential([
        keras.Input((6,)),
        keras.layers.Dense(8, activation="gelu", name="hidden"),
        keras.layers.LayerNormalization(name="norm"),
        keras.layers.Dense(3, name="out"),
    ])
    model.compile(optimizer=optimizer, loss="mse")
    rng = np.random.default_rng(seed)
    x, y = rng.normal(size=(16, 6)).astype("float32"), rng.normal(size=(16, 3)).astype("float32")
    for _ in range(steps):
        model.train_on_batch(x, y)
    return model


def applies_adam_kernels(optimizer, variables):
    """Whether a traced `optimizer.apply` (per replica, under a strategy) runs TF's Adam kernel."""

    def apply():
        optimizer.apply([tf.zeros_like(v) for v in variables], variables)

    strategy = tf.distribute.get_strategy()
    graph = tf.function(lambda: strategy.run(apply)).get_concrete_function().graph
    return "ResourceApplyAdam" in {op.type for op in graph.get_operations()}


def reference_adamw(steps=5, seed=3, **kwargs):
    """Keras' own AdamW, the reference."""
    return train(keras.optimizers.AdamW(**kwargs), steps, seed)


SETTINGS = dict(
    learning_rate=keras.optimizers.schedules.CosineDecay(0.01, 10, warmup_target=0.02,
                                                         warmup_steps=2),
    weight_decay=0.1,
    beta_1=0.8,
    beta_2=0.95,
    epsilon=1e-6,
)


@pytest.mark.parametrize("enabled", [True, False], ids=["fused", "keras-path"])
def test_matches_keras_adamw_with_schedule_decay_and_exclusions(enabled):
    with fused_ops(enabled):
        ours = AdamW(**SETTINGS)
        ours.exclude_from_weight_decay(var_names=["norm", "bias"])
        model = train(ours)
    reference_optimizer = keras.optimizers.AdamW(**SETTINGS)
    reference_optimizer.exclude_from_weight_decay(var_names=["norm", "bias"])
    reference = train(reference_optimizer)
    for mine, theirs in zip(model.weights, reference.weights):
        np.testing.assert_allclose(mine.numpy(), theirs.numpy(), rtol=1e-5, atol=1e-6,
                                   err_msg=mine.path)
    for mine, theirs in zip(ours.variables, reference_optimizer.variables):
        np.testing.assert_allclose(np.asarray(mine), np.asarray(theirs), rtol=1e-5,
                                   atol=1e-7, err_msg=mine.path)
    assert int(ours.iterations) == 5
    with fused_ops(enabled):
        assert applies_adam_kernels(ours, model.trainable_variables) == enabled


def test_decay_really_applies_and_exclusions_hold():
    """Without gradients' help: a zero loss leaves only the decay to move weights."""
    layer = keras.layers.Dense(2, bias_initializer="ones")
    layer.build((None, 2))
    optimizer = AdamW(learning_rate=0.5, weight_decay=0.2)
    optimizer.exclude_from_weight_decay(var_names=["bias"])
    kernel = layer.kernel.numpy()
    optimizer.apply([tf.zeros_like(layer.kernel), tf.zeros_like(layer.bias)],
                    [layer.kernel, layer.bias])
    np.testing.assert_allclose(layer.kernel.numpy(), kernel * (1 - 0.5 * 0.2), rtol=1e-6)
    np.testing.assert_array_equal(layer.bias.numpy(), np.ones(2, "float32"))


def test_is_keras_adamw_with_the_same_config_and_serializes():
    optimizer = AdamW(learning_rate=3e-4, weight_decay=0.05, beta_2=0.98, name="opt")
    assert isinstance(optimizer, keras.optimizers.AdamW)
    assert optimizer.get_config() == keras.optimizers.AdamW(
        learning_rate=3e-4, weight_decay=0.05, beta_2=0.98, name="opt").get_config()
    restored = keras.optimizers.deserialize(keras.optimizers.serialize(optimizer))
    assert type(restored) is AdamW and restored.beta_2 == 0.98


def test_amsgrad_takes_the_keras_path():
    model = train(AdamW(learning_rate=0.01, amsgrad=True))
    reference = reference_adamw(learning_rate=0.01, amsgrad=True)
    for mine, theirs in zip(model.weights, reference.weights):
        np.testing.assert_allclose(mine.numpy(), theirs.numpy(), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("enabled", [True, False], ids=["fused", "keras-path"])
def test_moving_average_matches_keras_ema(enabled):
    settings = dict(SETTINGS, use_ema=True, ema_momentum=0.7)
    with fused_ops(enabled):
        ours = AdamW(**settings)
        model = train(ours, steps=4)
    reference_optimizer = keras.optimizers.AdamW(**settings)
    reference = train(reference_optimizer, steps=4)
    averages = ours._model_variables_moving_average
    assert len(averages) == len(model.trainable_variables)
    for mine, theirs in zip(averages, reference_optimizer._model_variables_moving_average):
        np.testing.assert_allclose(mine.numpy(), theirs.numpy(), rtol=1e-5, atol=1e-7,
                                   err_msg=mine.path)
    # The average differs from the weights (so the comparison above is not trivial).
    assert not np.allclose(averages[0].numpy(), model.trainable_variables[0].numpy())


def test_moving_average_against_numpy_and_finalized_into_the_model():
    """Four updates of one weight: the average copies step 0, then keeps 0.5 of itself."""
    variable = keras.Variable(np.zeros(3, "float32"))
    optimizer = AdamW(learning_rate=0.1, weight_decay=0.0, use_ema=True, ema_momentum=0.5)
    values, expected = [], None
    for step in range(4):
        optimizer.apply([tf.constant([1.0, -2.0, 0.5])], [variable])
        value = variable.numpy().astype("float64")
        expected = value if expected is None else 0.5 * expected + 0.5 * value
        values.append(value)
    np.testing.assert_allclose(optimizer._model_variables_moving_average[0].numpy(), expected,
                               rtol=1e-6)
    assert not np.allclose(expected, values[-1])
    optimizer.finalize_variable_values([variable])
    np.testing.assert_allclose(variable.numpy(), expected, rtol=1e-6)


def _train_mirrored_and_report():
    """Run as a script: trains with both optimizers on two logical CPUs, prints JSON."""
    import json

    from keras_wavevit.recipes.distribute import configure_logical_cpus

    devices = configure_logical_cpus(2)
    strategy = tf.distribute.MirroredStrategy(devices)
    results = {}
    for name, make in (("fused", lambda: AdamW(**SETTINGS)),
                       ("keras", lambda: keras.optimizers.AdamW(**SETTINGS))):
        with strategy.scope():
            optimizer = make()
            optimizer.exclude_from_weight_decay(var_names=["norm", "bias"])
            model = train(optimizer, steps=3)
            fused = applies_adam_kernels(optimizer, model.trainable_variables)
        results[name] = {
            "weights": [weight.numpy().tolist() for weight in model.weights],
            "replica_weights": [
                [value.numpy().tolist() for value in strategy.experimental_local_results(
                    weight.value)] for weight in model.weights
            ],
            "fused": fused,
            "iterations": int(optimizer.iterations.numpy()),
        }
    print(json.dumps(results))


def test_mirrored_strategy_on_two_cpus_matches_keras_adamw():
    """The fused update under MirroredStrategy: all-reduced, applied on every replica."""
    import json
    import os
    import subprocess
    import sys

    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    completed = subprocess.run(
        [sys.executable, "-m", "tests.test_optimizers"], cwd=root, capture_output=True,
        text=True, timeout=300, check=False,
    )
    assert completed.returncode == 0, completed.stderr[-3000:]
    results = json.loads(completed.stdout.strip().splitlines()[-1])
    assert results["fused"]["fused"] and not results["keras"]["fused"]
    assert results["fused"]["iterations"] == results["keras"]["iterations"] == 3
    for mine, theirs, replicas in zip(results["fused"]["weights"], results["keras"]["weights"],
                                      results["fused"]["replica_weights"]):
        np.testing.assert_allclose(mine, theirs, rtol=1e-5, atol=1e-6)
        assert len(replicas) == 2
        np.testing.assert_array_equal(replicas[0], replicas[1])
    # The weights moved (so the comparison is not trivial).
    assert not np.allclose(results["fused"]["weights"][0],
                           reference_adamw(steps=0).weights[0].numpy())


if __name__ == "__main__":
    _train_mirrored_and_report()
