"""The model core on every installed Keras backend: TensorFlow, JAX and PyTorch.

Keras fixes its backend once per process, so each backend runs in its own
process with `KERAS_BACKEND` set: `backend_checks.py` (official-fixture
parity, wavelets and their gradients, `fit`, builder errors) under pytest,
`.keras` files written by `write_model.py` under each backend and loaded
under every other one, and a bare `import keras_wavevit` (recorded by the
same `write_model.py` process). A backend whose
package (`jax`, `torch`) is not installed is skipped, saying so.
"""

import importlib.util
import json
import os
import pathlib
import subprocess
import sys

import pytest

BACKENDS = ("tensorflow", "jax", "torch")
ROOT = pathlib.Path(__file__).resolve().parents[2]
CHECKS = pathlib.Path(__file__).with_name("backend_checks.py")
TIMEOUT = 900


def _installed(backend):
    return importlib.util.find_spec(backend) is not None


def _skip_unless_installed(backend):
    if not _installed(backend):
        pytest.skip(f"the {backend} backend needs the {backend!r} package, which is not installed")


def _run(backend, arguments, **environment):
    env = {**os.environ, "KERAS_BACKEND": backend, "TF_CPP_MIN_LOG_LEVEL": "2", **environment}
    return subprocess.run(
        [sys.executable, *arguments],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=TIMEOUT,
    )


def _output(result):
    return f"exit status {result.returncode}\n{result.stdout[-6000:]}\n{result.stderr[-6000:]}"


@pytest.fixture(scope="module")
def model_files(tmp_path_factory):
    """A folder with `<backend>.keras` (and outputs) from every installed backend."""
    folder = tmp_path_factory.mktemp("backend_models")
    for backend in filter(_installed, BACKENDS):
        result = _run(backend, ["-m", "tests.backends.write_model", str(folder)])
        assert result.returncode == 0, _output(result)
    return folder


@pytest.mark.parametrize("backend", BACKENDS)
def test_core_checks_pass_on_backend(backend, model_files):
    _skip_unless_installed(backend)
    result = _run(
        backend,
        ["-m", "pytest", "-v", "-p", "no:cacheprovider", "-o", "addopts=",
         "-o", "python_files=backend_checks.py", str(CHECKS)],
        KERAS_WAVEVIT_MODEL_FILES=str(model_files),
    )
    assert result.returncode == 0, _output(result)
    # The file of every other installed backend was loaded.
    for other in filter(_installed, BACKENDS):
        if other != backend:
            test = f"test_keras_file_of_another_backend_gives_the_same_outputs[{other}] PASSED"
            assert test in result.stdout, _output(result)


@pytest.mark.parametrize("backend", ["jax", "torch"])
def test_import_leaves_tensorflow_out(backend, model_files):
    _skip_unless_installed(backend)
    assert json.loads((model_files / f"{backend}.imports.json").read_text()) == []
