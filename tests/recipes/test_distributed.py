"""Multi-device and multi-worker training through `tf.distribute`.

Logical CPU devices must be configured before TensorFlow initialises, and a
multi-worker job needs one process per worker, so each scenario runs this
file as a script in fresh processes (`python test_distributed.py MODE ...`).

The mirrored comparison trains with `run_eagerly=True`: the strategy's
replicas, gradient all-reduce, synchronised batch norm and dataset
distribution are the same as in a compiled step (the compiled step gives the
same loss to 7 digits), but tracing a graph with two replicas costs over a
minute on a small CPU. The multi-worker job runs compiled steps, the only
mode Keras supports under `MultiWorkerMirroredStrategy`.
"""

import json
import os
import socket
import subprocess
import sys

import numpy as np
import pytest
from tests.configs import MICRO_CLASSIFIER as MICRO

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
GLOBAL_BATCH = 8
STEPS = 2
# A hang guard: generous, as the other test worker (pytest-xdist) shares the CPUs.
PROCESS_TIMEOUT_S = 480


def _toy_data():
    rng = np.random.default_rng(0)
    images = rng.normal(size=(GLOBAL_BATCH * STEPS, 32, 32, 3)).astype("float32")
    labels = rng.integers(0, 3, size=(GLOBAL_BATCH * STEPS,)).astype("int32")
    return images, labels


def _build_and_compile(initial_weights=None, run_eagerly=True):
    import keras

    import keras_wavevit
    from keras_wavevit.recipes.distribute import synchronize_batch_norm

    keras.utils.set_random_seed(0)
    model = keras_wavevit.WaveViT(**MICRO)
    if initial_weights is not None:
        model.set_weights(initial_weights)
    synchronize_batch_norm(model)
    model.compile(
        optimizer=keras.optimizers.SGD(learning_rate=0.1),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        jit_compile=False,
        run_eagerly=run_eagerly,
    )
    return model


def _dataset():
    import tensorflow as tf

    from keras_wavevit.recipes.distribute import distribute_dataset_options

    dataset = tf.data.Dataset.from_tensor_slices(_toy_data()).batch(GLOBAL_BATCH)
    return distribute_dataset_options(dataset)


def _run_mirrored(output_path):
    """Trains the same model on 1 device and on 2 mirrored logical CPUs."""
    from keras_wavevit.recipes.distribute import configure_logical_cpus, get_strategy

    devices = configure_logical_cpus(2)
    import tensorflow as tf

    single = _build_and_compile()
    initial = single.get_weights()
    single_history = single.fit(_dataset(), epochs=1, verbose=0, shuffle=False)
    strategy = get_strategy("mirrored")
    with strategy.scope():
        mirrored = _build_and_compile(initial)
    mirrored_history = mirrored.fit(_dataset(), epochs=1, verbose=0, shuffle=False)
    replicas = strategy.num_replicas_in_sync
    np.savez(
        output_path,
        replicas=replicas,
        devices=len(devices),
        is_mirrored=isinstance(strategy, tf.distribute.MirroredStrategy),
        single_loss=single_history.history["loss"][-1],
        mirrored_loss=mirrored_history.history["loss"][-1],
        moved=max(
            float(np.max(np.abs(after - before)))
            for after, before in zip(single.get_weights(), initial)
        ),
        **{f"single_w{i}": w for i, w in enumerate(single.get_weights())},
        **{f"mirrored_w{i}": w for i, w in enumerate(mirrored.get_weights())},
    )


def _run_worker(output_dir):
    """One worker of a multi-worker job (cluster and task from TF_CONFIG)."""
    from keras_wavevit.recipes.distribute import get_strategy, is_chief

    strategy = get_strategy("multiworker")
    with strategy.scope():
        model = _build_and_compile(run_eagerly=False)
    history = model.fit(_dataset(), epochs=1, verbose=0, shuffle=False)
    task_index = json.loads(os.environ["TF_CONFIG"])["task"]["index"]
    np.savez(
        os.path.join(output_dir, f"worker{task_index}.npz"),
        replicas=strategy.num_replicas_in_sync,
        loss=history.history["loss"][-1],
        **{f"w{i}": w for i, w in enumerate(model.get_weights())},
    )
    if is_chief():
        model.save(os.path.join(output_dir, "model.keras"))
    # Barrier: no worker leaves (and stops its heartbeats) while the chief saves.
    import tensorflow as tf

    strategy.reduce("SUM", strategy.run(lambda: tf.constant(1.0)), axis=None)


def _env(**extra):
    env = dict(os.environ)
    env["TF_CPP_MIN_LOG_LEVEL"] = "2"
    env["PYTHONPATH"] = REPO + os.pathsep + env.get("PYTHONPATH", "")
    env.pop("TF_CONFIG", None)
    env.update(extra)
    return env


def _free_ports(count):
    sockets = []
    try:
        for _ in range(count):
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind(("127.0.0.1", 0))
            sockets.append(sock)
        return [sock.getsockname()[1] for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


def _loopback_refused():
    """Why local TCP sockets cannot be used, or None if they can."""
    try:
        server = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        server.bind(("127.0.0.1", 0))
        server.listen(1)
        client = socket.create_connection(server.getsockname(), timeout=5)
        client.close()
        server.close()
    except OSError as error:
        return f"the platform refuses TCP sockets on 127.0.0.1 ({error})"
    return None


def _log_summary(path):
    """The error lines and the end of a worker's log."""
    with open(path) as log:
        lines = log.read().splitlines()
    errors = [line for line in lines if "Error" in line or "error" in line][-5:]
    return "\n".join(errors + lines[-5:])[-2000:]


def test_mirrored_two_cpus_matches_one_device(tmp_path):
    output = os.path.join(tmp_path, "mirrored.npz")
    result = subprocess.run(
        [sys.executable, __file__, "mirrored", output],
        # Eager steps would XLA-compile every fused kernel for each new shape
        # (per-replica and global batches); the plain kernels compute the same
        # and the multi-worker test below runs the fused ones under a strategy.
        env=_env(KERAS_WAVEVIT_FUSED_KERNELS="0"),
        capture_output=True,
        text=True,
        timeout=PROCESS_TIMEOUT_S,
    )
    assert result.returncode == 0, result.stderr[-4000:]
    data = np.load(output)
    assert int(data["devices"]) == 2
    assert bool(data["is_mirrored"]) and int(data["replicas"]) == 2
    # Training really changed the weights, so equal weights mean equal steps.
    assert float(data["moved"]) > 1e-3
    np.testing.assert_allclose(data["mirrored_loss"], data["single_loss"], rtol=1e-4)
    count = len([key for key in data.files if key.startswith("single_w")])
    assert count > 0
    assert count == len([key for key in data.files if key.startswith("mirrored_w")])
    for index in range(count):
        np.testing.assert_allclose(
            data[f"mirrored_w{index}"], data[f"single_w{index}"], rtol=1e-3, atol=1e-4
        )


def test_multiworker_two_processes_on_loopback(tmp_path):
    reason = _loopback_refused()
    if reason:
        pytest.skip(reason)
    command = [sys.executable, __file__, "worker", str(tmp_path)]
    codes = _wait(_start_workers([command, command], tmp_path), PROCESS_TIMEOUT_S)
    logs = [_log_summary(os.path.join(tmp_path, f"worker{index}.log")) for index in range(2)]
    if any(
        marker in text
        for text in logs
        for marker in ("Permission denied", "Operation not permitted")
    ):
        pytest.skip(f"the platform refuses the workers' sockets: {logs}")
    assert codes == [0, 0], f"worker exit codes {codes} (timeout {PROCESS_TIMEOUT_S} s): {logs}"

    results = [np.load(os.path.join(tmp_path, f"worker{index}.npz")) for index in range(2)]
    assert [int(result["replicas"]) for result in results] == [2, 2]
    # Synchronous data parallelism: both workers end with the same weights.
    weight_keys = [key for key in results[0].files if key.startswith("w")]
    for key in weight_keys:
        np.testing.assert_allclose(results[0][key], results[1][key], rtol=1e-5, atol=1e-6)

    import keras

    import keras_wavevit  # noqa: F401  (registers the layers)

    model_path = os.path.join(tmp_path, "model.keras")
    assert os.path.exists(model_path), "the chief did not save the model"
    loaded = keras.saving.load_model(model_path)
    for index, weight in enumerate(loaded.get_weights()):
        np.testing.assert_allclose(weight, results[0][f"w{index}"], rtol=1e-6, atol=1e-7)
    images, _ = _toy_data()
    assert tuple(loaded(images[:2]).shape) == (2, 3)


def _start_workers(commands, tmp_path):
    ports = _free_ports(len(commands))
    cluster = {"worker": [f"127.0.0.1:{port}" for port in ports]}
    workers = []
    for index, command in enumerate(commands):
        tf_config = json.dumps({"cluster": cluster, "task": {"type": "worker", "index": index}})
        log = open(os.path.join(tmp_path, f"worker{index}.log"), "w")
        process = subprocess.Popen(command, env=_env(TF_CONFIG=tf_config), cwd=REPO,
                                   stdout=log, stderr=subprocess.STDOUT)
        workers.append((process, log))
    return workers


def _wait(workers, timeout):
    codes = []
    try:
        for process, _ in workers:
            codes.append(process.wait(timeout=timeout))
    except subprocess.TimeoutExpired:
        pass
    finally:
        for process, log in workers:
            if process.poll() is None:
                process.kill()
                process.wait()
            log.close()
    return codes


def test_multiworker_train_cli_writes_only_from_the_chief(tmp_path):
    """`keras-wavevit train --strategy multiworker`: worker 1 writes to a private folder."""
    reason = _loopback_refused()
    if reason:
        pytest.skip(reason)
    from tests.recipes.train_child import micro_command, write_image_folder

    images = write_image_folder(str(tmp_path / "images"))
    output = str(tmp_path / "run")
    command = micro_command(images, output, "--strategy", "multiworker", "--no-export")
    codes = _wait(_start_workers([command, command], tmp_path), PROCESS_TIMEOUT_S)
    logs = [open(os.path.join(tmp_path, f"worker{i}.log")).read() for i in range(2)]
    assert codes == [0, 0], f"worker exit codes {codes}: {[log[-2000:] for log in logs]}"
    assert f"Output: {output}" in logs[0]
    private = logs[1].split("Output: ")[1].split()[0]
    assert private != output and "keras-wavevit-worker-" in private
    assert not os.path.exists(private)  # removed when the worker finished
    assert "Validation accuracy" not in logs[1]  # only the chief evaluates and reports
    assert set(os.listdir(output)) - {"tensorboard"} == {
        "best.keras", "final.keras", "log.csv", "phases.json", "summary.json",
    }
    with open(os.path.join(output, "log.csv")) as log:
        assert [line.split(",")[0] for line in log.read().split()[1:]] == ["0", "1"]


if __name__ == "__main__":
    sys.path.insert(0, REPO)
    mode, target = sys.argv[1], sys.argv[2]
    {"mirrored": _run_mirrored, "worker": _run_worker}[mode](target)
