"""Distributed training through `tf.distribute`: strategies by name.

Keras 3 on the TensorFlow backend trains under any `tf.distribute` strategy:
build and compile the model inside `strategy.scope()`, then call `fit` with
the *global* batch size (each replica gets `global_batch / replicas`).

- `"default"`: the current (default: single-device) strategy.
- `"mirrored"`: `tf.distribute.MirroredStrategy`, synchronous data
  parallelism on one machine, over all visible GPUs, or, without GPUs, over
  the logical CPU devices made by `configure_logical_cpus` (useful to test
  multi-device code on a laptop).
- `"multiworker"`: `tf.distribute.MultiWorkerMirroredStrategy`, the same over
  several machines, each started with a `TF_CONFIG` environment variable
  describing the cluster and its own task. Create it at program start,
  before any other TensorFlow op runs.

Batch normalisation: by default Wave-ViT's `BatchNormalization` layers (stem
and wavelet attention) normalise with per-replica batch statistics, as the
official model (plain `nn.BatchNorm2d` under PyTorch DDP) does; weights stay
identical on all replicas through the gradient all-reduce, and each
replica's moving statistics follow its own shards. `synchronize_batch_norm`
switches them to statistics over the global batch (all-reduced each step),
which makes N-replica training compute what one device computes on the same
global batch, at the cost of extra all-reduces. See the README section
"Backbone features and distributed training".
"""

import json
import os

import keras
import tensorflow as tf

STRATEGIES = ("default", "mirrored", "multiworker")
_TASK_TYPES = ("chief", "worker", "ps", "evaluator")


def configure_logical_cpus(num_devices):
    """Splits the physical CPU into `num_devices` logical devices.

    Must run before TensorFlow initialises its devices (before the first
    op, model or `list_logical_devices` call of the process). Calling it again
    with the same count afterwards is harmless.

    Args:
        num_devices: Number of logical CPU devices, at least 1.

    Returns:
        The names of the logical CPU devices, e.g.
        `["/device:CPU:0", "/device:CPU:1"]`.

    Raises:
        ValueError: If `num_devices` is not a positive integer.
        RuntimeError: If TensorFlow already initialised its devices with a
            different number of logical CPUs.

    Example:

    >>> configure_logical_cpus(2)  # doctest: +SKIP
    ['/device:CPU:0', '/device:CPU:1']
    """
    if isinstance(num_devices, bool) or not isinstance(num_devices, int) or num_devices < 1:
        raise ValueError(
            f"num_devices must be a positive integer; received num_devices={num_devices!r}."
        )
    cpu = tf.config.list_physical_devices("CPU")[0]
    try:
        tf.config.set_logical_device_configuration(
            cpu, [tf.config.LogicalDeviceConfiguration() for _ in range(num_devices)]
        )
    except RuntimeError as error:
        existing = tf.config.list_logical_devices("CPU")
        if len(existing) != num_devices:
            raise RuntimeError(
                f"Cannot split the CPU into num_devices={num_devices} logical "
                f"devices: TensorFlow already initialised {len(existing)}. Call "
                "configure_logical_cpus before any other TensorFlow work."
            ) from error
    return [device.name for device in tf.config.list_logical_devices("CPU")]


def parse_tf_config(tf_config=None):
    """Reads and checks a `TF_CONFIG` cluster description.

    Args:
        tf_config: The JSON string (or an already parsed dict); `None` reads
            the `TF_CONFIG` environment variable.

    Returns:
        The parsed dict, with `cluster` (task type -> list of `host:port`)
        and `task` (`{"type": ..., "index": ...}`).

    Raises:
        ValueError: If `TF_CONFIG` is missing, not JSON, or inconsistent
            (no cluster, unknown task type, index out of range).

    Example:

    >>> config = parse_tf_config(
    ...     '{"cluster": {"worker": ["127.0.0.1:2222", "127.0.0.1:2223"]},'
    ...     ' "task": {"type": "worker", "index": 1}}')
    >>> config["task"]
    {'type': 'worker', 'index': 1}
    """
    if tf_config is None:
        tf_config = os.environ.get("TF_CONFIG")
        if not tf_config:
            raise ValueError(
                "The multiworker strategy needs the TF_CONFIG environment variable "
                "(JSON with 'cluster' and 'task'); received TF_CONFIG unset or empty."
            )
    if isinstance(tf_config, str):
        try:
            config = json.loads(tf_config)
        except json.JSONDecodeError as error:
            raise ValueError(
                f"TF_CONFIG must be JSON; received TF_CONFIG={tf_config!r} ({error})."
            ) from error
    else:
        config = tf_config
    if not isinstance(config, dict):
        raise ValueError(f"TF_CONFIG must be a JSON object; received TF_CONFIG={config!r}.")
    cluster = config.get("cluster")
    if not isinstance(cluster, dict) or not cluster:
        raise ValueError(
            "TF_CONFIG must have a non-empty 'cluster' mapping task types to "
            f"'host:port' lists; received cluster={cluster!r}."
        )
    for task_type, addresses in cluster.items():
        if task_type not in _TASK_TYPES:
            raise ValueError(
                f"TF_CONFIG cluster has unknown task type {task_type!r}; expected "
                f"one of {list(_TASK_TYPES)}."
            )
        if not isinstance(addresses, list) or not all(
            isinstance(address, str) and ":" in address for address in addresses
        ):
            raise ValueError(
                f"TF_CONFIG cluster[{task_type!r}] must be a list of 'host:port' "
                f"strings; received {addresses!r}."
            )
    task = config.get("task")
    if not isinstance(task, dict) or "type" not in task or "index" not in task:
        raise ValueError(
            "TF_CONFIG must have a 'task' with 'type' and 'index'; "
            f"received task={task!r}."
        )
    if task["type"] not in cluster:
        raise ValueError(
            f"TF_CONFIG task type {task['type']!r} is not in the cluster "
            f"{sorted(cluster)}."
        )
    index = task["index"]
    if not isinstance(index, int) or not 0 <= index < len(cluster[task["type"]]):
        raise ValueError(
            f"TF_CONFIG task index must be in [0, {len(cluster[task['type']])}) for "
            f"task type {task['type']!r}; received index={index!r}."
        )
    return config


def is_chief(tf_config=None):
    """Whether this process is the chief of a multi-worker job.

    The chief is task `chief` 0 if the cluster has one, else `worker` 0. A
    process without `TF_CONFIG` (single machine) is its own chief. Only the
    chief should write checkpoints, exported models and logs.

    Args:
        tf_config: As for `parse_tf_config`; `None` reads the environment.

    Returns:
        A bool.

    Example:

    >>> is_chief('{"cluster": {"worker": ["h:1", "h:2"]},'
    ...          ' "task": {"type": "worker", "index": 1}}')
    False
    """
    if tf_config is None and not os.environ.get("TF_CONFIG"):
        return True
    config = parse_tf_config(tf_config)
    task_type, index = config["task"]["type"], config["task"]["index"]
    if "chief" in config["cluster"]:
        return task_type == "chief" and index == 0
    return task_type == "worker" and index == 0


def get_strategy(name="default", devices=None):
    """Returns a `tf.distribute.Strategy` by name.

    Args:
        name: `"default"`, `"mirrored"` or `"multiworker"`.
        devices: For `"mirrored"` only: explicit device names; `None` uses
            all GPUs, or all logical CPUs when there is no GPU.

    Returns:
        The strategy. Build and compile models inside `strategy.scope()`.

    Raises:
        ValueError: For an unknown `name`, `devices` with a strategy other
            than `"mirrored"`, or a missing/invalid `TF_CONFIG` for
            `"multiworker"`.

    Example:

    >>> strategy = get_strategy("mirrored")  # doctest: +SKIP
    >>> with strategy.scope():  # doctest: +SKIP
    ...     model = keras_wavevit.WaveViTTiny(num_classes=10)
    ...     model.compile(optimizer="adamw", loss="sparse_categorical_crossentropy")
    """
    if name not in STRATEGIES:
        raise ValueError(
            f"Unknown strategy {name!r}; expected one of {list(STRATEGIES)}."
        )
    if devices is not None and name != "mirrored":
        raise ValueError(
            f"devices is only used by the 'mirrored' strategy; received "
            f"name={name!r}, devices={devices!r}."
        )
    if name == "default":
        return tf.distribute.get_strategy()
    if name == "mirrored":
        if devices is None:
            gpus = tf.config.list_logical_devices("GPU")
            chosen = gpus or tf.config.list_logical_devices("CPU")
            devices = [device.name for device in chosen]
        return tf.distribute.MirroredStrategy(devices=list(devices))
    parse_tf_config()
    return _MultiWorkerMirroredStrategy()


def distribute_dataset_options(dataset):
    """Makes a `tf.data.Dataset` shard by element across workers.

    Multi-worker input is sharded by file by default, which fails (with a
    warning and a fallback) for in-memory datasets; sharding by element
    (`AutoShardPolicy.DATA`) works for every dataset.

    Args:
        dataset: A batched `tf.data.Dataset` of the *global* batch size.

    Returns:
        The dataset with data sharding set.

    Example:

    >>> import numpy as np
    >>> ds = tf.data.Dataset.from_tensor_slices(np.zeros((4, 2))).batch(2)
    >>> ds = distribute_dataset_options(ds)
    >>> ds.options().experimental_distribute.auto_shard_policy.name
    'DATA'
    """
    options = tf.data.Options()
    options.experimental_distribute.auto_shard_policy = (
        tf.data.experimental.AutoShardPolicy.DATA
    )
    return dataset.with_options(options)


class _MultiWorkerMirroredStrategy(tf.distribute.MultiWorkerMirroredStrategy):
    """`MultiWorkerMirroredStrategy` with a `reduce` that Keras 3 `fit` can use.

    Keras 3.x `fit` under this strategy calls `strategy.reduce` in two ways the
    strategy rejects (keras-team/keras#20585): on the whole first `(x, y)`
    batch ("Attempt to convert a value (PerReplica...)"), and with `axis=0`
    on scalar per-step losses and metrics ("Invalid reduction dimension 0").
    This subclass reduces each value of a structure on its own and reduces
    scalars across replicas only, which is what `MirroredStrategy` computes
    for the same calls. Everything else is the stock strategy.
    """

    def reduce(self, reduce_op, value, axis):
        reduce_one = super().reduce

        def reduce_item(item):
            local = self.experimental_local_results(item)[0]
            rank = getattr(local, "shape", tf.TensorShape(None)).rank
            return reduce_one(reduce_op, item, None if rank == 0 else axis)

        return tf.nest.map_structure(reduce_item, value)


def synchronize_batch_norm(model, synchronized=True):
    """Makes every `BatchNormalization` in `model` use global batch statistics.

    Under a `tf.distribute` strategy each replica then normalises with the
    mean and variance of the whole global batch (all-reduced), so training
    on N replicas matches training on one device with the same global batch.
    Outside a strategy it changes nothing. Call it before `compile`/`fit`
    (a training function traced earlier keeps the old behaviour). This is a
    training setting, not part of the saved model: apply it again after
    loading.

    Args:
        model: A Keras model or layer.
        synchronized: `True` to synchronise, `False` for per-replica
            statistics (the default of the layers).

    Returns:
        The number of `BatchNormalization` layers changed.

    Raises:
        ValueError: If `synchronized` is not a bool.

    Example:

    >>> import keras_wavevit
    >>> model = keras_wavevit.WaveViT(
    ...     embed_dims=(8, 16, 32, 32), num_heads=(1, 1, 2, 2),
    ...     mlp_ratios=(2, 2, 2, 2), depths=(1, 1, 1, 1),
    ...     sr_ratios=(2, 1, 1, 1), stem_hidden_dim=8, stem_stride=2,
    ...     input_shape=(32, 32, 3), num_classes=3)
    >>> synchronize_batch_norm(model)  # 3 in the stem, 2 per wavelet block
    7
    """
    if not isinstance(synchronized, bool):
        raise ValueError(
            f"synchronized must be True or False; received synchronized={synchronized!r}."
        )
    count = 0
    for layer in model._flatten_layers(include_self=True, recursive=True):
        if isinstance(layer, keras.layers.BatchNormalization):
            layer.synchronized = synchronized
            count += 1
    return count
