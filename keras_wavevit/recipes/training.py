"""`train()`: the training recipe, end to end, as a sequence of phases.

Data (`recipes.data`, `recipes.augmentation`) -> Wave-ViT (`recipes.network`)
-> AdamW with linear warm-up and cosine decay, label smoothing, stochastic
depth, MixUp -> `fit` (`recipes.callbacks`) -> validation accuracy and
images/s -> learning curves, a prediction grid, a Grad-CAM view -> a
SavedModel, answered once through `recipes.serving` -> `summary.json`.

Everything a run writes goes under its output directory (default
`runs/<model>`), each file written aside and renamed into place:

    phases.json         the configuration and the finished phases (resuming)
    best.keras          best validation accuracy so far
    final.keras         the model after the last epoch
    backup/             the last two epochs' state (deleted when fit ends)
    log.csv             one row per epoch
    tensorboard/        TensorBoard logs (when the tensorboard package is installed)
    loss.png, accuracy.png   learning curves, train vs validation
    predictions.png     validation images with predicted and true labels
    gradcam.png         Grad-CAM heat maps of validation images
    saved_model/<version>/   the exported SavedModel (TensorFlow Serving layout)
    summary.json        configuration, final metrics and images/s

A run killed at any point (even with SIGKILL) continues when started again
with the same configuration: inside `fit` from the last finished epoch,
after it from the first unfinished phase. See `recipes.run_state` for what
a rerun on a directory holding another or a finished run does.
"""

import contextlib
import time

import keras
import tensorflow as tf

# The public API can turn op determinism on but neither read nor undo it.
from tensorflow.python.framework import config as tf_framework_config

from keras_wavevit.recipes import phases
from keras_wavevit.recipes.distribute import get_strategy, is_chief
from keras_wavevit.config import resolve_config
from keras_wavevit.hardware import has_native_bfloat16
from keras_wavevit.precision import dtype_policy_scope
from keras_wavevit.recipes.phases import TrainingDiverged
from keras_wavevit.recipes.run_state import RunState
from keras_wavevit.recipes.train_config import TrainConfig

__all__ = ["TrainConfig", "TrainingDiverged", "train"]


def train(config=None, **overrides):
    """Trains a Wave-ViT with the recipe and writes everything under the output.

    With no data option it trains on the CIFAR-10 sample shipped in the
    package. The global dtype policy and TensorFlow's op-determinism switch
    are restored when it returns or raises.

    Args:
        config: A `TrainConfig` (default: all defaults).
        **overrides: `TrainConfig` fields to change, e.g. `epochs=1`.

    Returns:
        The summary dict (also written to `summary.json`); `None` on a
        multi-worker job's non-chief workers.

    Raises:
        ValueError: A bad option (before any work), an output directory
            holding another run (without `overwrite`), or bad data.
        TrainingDiverged: The loss became non-finite.

    Example:

    >>> summary = train(epochs=1, steps_per_epoch=2, output="/tmp/run")  # doctest: +SKIP
    >>> sorted(summary["files"])[:2]  # doctest: +SKIP
    ['accuracy.png', 'best.keras']
    """
    if config is not None and not isinstance(config, TrainConfig):
        raise ValueError(f"config must be a TrainConfig; received {type(config).__name__}.")
    started = time.time()
    config = (config or TrainConfig()).replace(**overrides)
    _check_backend(config)
    with global_settings(config):
        distribution = get_strategy(config.strategy)
        state = RunState.open(config, chief=is_chief())
        try:
            return _run_phases(config, state, distribution, started)
        finally:
            state.close()


def _check_backend(config):
    """Refuses, naming the backend, the options built on TensorFlow itself."""
    backend = keras.backend.backend()
    if backend == "tensorflow":
        return
    needs_tensorflow = {
        "export=True (--export: a SavedModel)": config.export,
        "plots=True (--plots: Grad-CAM)": config.plots,
        "crop_scale (--crop-scale: tf.image.crop_and_resize)": config.crop_scale is not None,
        f"strategy={config.strategy!r} (tf.distribute)": config.strategy != "default",
    }
    chosen = [option for option, used in needs_tensorflow.items() if used]
    if chosen:
        raise ValueError(
            f"These train options need the TensorFlow backend; KERAS_BACKEND is "
            f"{backend!r}: {'; '.join(chosen)}. Pass --no-export --no-plots "
            "--crop-scale none (and the default strategy), or set KERAS_BACKEND=tensorflow."
        )


def _run_phases(config, state, distribution, started):
    image_size = config.image_size or tuple(resolve_config(config.model).input_shape[:2])
    data = phases.load_data(config, image_size)
    config, data = phases.plan_time_budget(config, state, data, distribution, started)
    config, data = phases.match_regularization_to_epochs(config, data)
    if not state.done("fit"):
        phases.fit(config, state, data, phases.build_network(config, data, distribution))
    if not state.chief:
        _wait_for_all_workers(distribution)
        return None
    model = phases.trained_model(state)
    steps = {
        "evaluate": lambda: phases.evaluate(data, model, flip_average=config.flip,
                                            shift_average=phases.evaluation_shift(config)),
        "figures": lambda: phases.figures(state, data, model) if config.plots else {},
        "export": lambda: phases.export(state, data, model) if config.export else {},
    }
    for name, step in steps.items():
        if not state.done(name):
            state.finish(name, step())
    summary = phases.write_summary(config, state, data)
    state.finish("summary", {})
    if config.strategy == "multiworker":
        _wait_for_all_workers(distribution)
    return summary


def _wait_for_all_workers(distribution):
    # No worker may exit (and stop its heartbeats) while the chief still works.
    distribution.reduce("SUM", distribution.run(lambda: tf.constant(1.0)), axis=None)


def dtype_policy_name(mixed_precision):
    """The Keras dtype policy that a `mixed_precision` option stands for.

    `"off"` is float32. `"auto"` is mixed float16 on a GPU, mixed bfloat16
    on a CPU that computes bfloat16 natively (AVX512_BF16 or AMX-BF16:
    training steps 1.26x faster on an AVX512_BF16 CPU, BENCHMARKS.md), and
    float32 on other CPUs, where TensorFlow emulates bfloat16 and it would
    be slower. Policy names pass through.

    Args:
        mixed_precision: `"off"`, `"auto"`, `"mixed_bfloat16"` or
            `"mixed_float16"`.

    Returns:
        A Keras dtype policy name.

    Example:

    >>> dtype_policy_name("off"), dtype_policy_name("mixed_bfloat16")
    ('float32', 'mixed_bfloat16')
    >>> dtype_policy_name("auto") in ("float32", "mixed_bfloat16", "mixed_float16")
    True
    """
    if mixed_precision == "off":
        return "float32"
    if mixed_precision != "auto":
        return mixed_precision
    if tf.config.list_physical_devices("GPU"):
        return "mixed_float16"
    return "mixed_bfloat16" if has_native_bfloat16() else "float32"


@contextlib.contextmanager
def global_settings(config):
    """Sets the run's dtype policy (and seeds, determinism); restores them after.

    `--seed` seeds Python, NumPy and TensorFlow (`keras.utils.set_random_seed`)
    and turns on TensorFlow's op determinism, so two CPU runs with the same
    seed and configuration compute the same losses. The seeds themselves
    stay set afterwards (they cannot be read back); the dtype policy and
    the determinism switch are restored.

    Args:
        config: The `TrainConfig`.

    Yields:
        The dtype policy name in force.

    Example:

    >>> before = keras.config.dtype_policy().name
    >>> with global_settings(TrainConfig(mixed_precision="mixed_bfloat16")) as policy:
    ...     keras.config.dtype_policy().name
    'mixed_bfloat16'
    >>> keras.config.dtype_policy().name == before
    True
    """
    policy = dtype_policy_name(config.mixed_precision)
    was_deterministic = tf_framework_config.is_op_determinism_enabled()
    with dtype_policy_scope(policy):
        try:
            if config.seed is not None:
                keras.utils.set_random_seed(config.seed)
                tf.config.experimental.enable_op_determinism()
            yield policy
        finally:
            if not was_deterministic:
                tf_framework_config.disable_op_determinism()
