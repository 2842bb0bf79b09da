"""Importing the package turns TensorFlow's oneDNN CPU kernels on, unless told otherwise."""

import os
import subprocess
import sys

import pytest

PROBE = (
    "import os, sys\n"
    "{first}\n"
    "import keras_wavevit\n"
    "from tensorflow.python.util import _pywrap_util_port\n"
    "print(os.environ.get('TF_ENABLE_ONEDNN_OPTS'), _pywrap_util_port.IsMklEnabled())\n"
)


def run_probe(first="", **environment):
    env = {key: value for key, value in os.environ.items() if key != "TF_ENABLE_ONEDNN_OPTS"}
    env.update(environment, TF_CPP_MIN_LOG_LEVEL="3")
    completed = subprocess.run([sys.executable, "-c", PROBE.format(first=first)],
                               capture_output=True, text=True, env=env, check=True)
    return completed.stdout.split()[-2:]


@pytest.mark.parametrize(
    "first, environment, expected",
    [
        ("", {}, ["1", "True"]),
        ("", {"TF_ENABLE_ONEDNN_OPTS": "0"}, ["0", "False"]),
    ],
    ids=["default-on", "explicit-off-wins"],
)
def test_onednn_default(first, environment, expected):
    assert run_probe(first, **environment) == expected


def test_tensorflow_imported_first_is_left_alone():
    value, _ = run_probe("import tensorflow")
    assert value == "None"
