"""tf.distribute helpers: strategy names, TF_CONFIG parsing, chief, synchronised BN."""

import json
import re

import keras
import pytest

from keras_wavevit.model import WaveViT
from keras_wavevit.recipes import distribute
from tests.configs import MICRO_CLASSIFIER as MICRO


@pytest.fixture(scope="module")
def fixed_model():
    return WaveViT(**MICRO)


@pytest.mark.parametrize(
    "call, message",
    [
        (lambda: distribute.get_strategy("tpu"), r"Unknown strategy 'tpu'; expected one of \['default', 'mirrored', 'multiworker'\]"),
        (lambda: distribute.get_strategy("default", devices=["/cpu:0"]), r"devices is only used by the 'mirrored' strategy; received name='default'"),
        (lambda: distribute.configure_logical_cpus(0), r"num_devices must be a positive integer; received num_devices=0"),
        (lambda: distribute.parse_tf_config("{not json"), r"TF_CONFIG must be JSON; received TF_CONFIG='\{not json'"),
        (lambda: distribute.parse_tf_config("[1, 2]"), r"TF_CONFIG must be a JSON object; received TF_CONFIG=\[1, 2\]"),
        (lambda: distribute.parse_tf_config({"task": {"type": "worker", "index": 0}}), r"non-empty 'cluster'.*received cluster=None"),
        (lambda: distribute.parse_tf_config({"cluster": {"boss": ["h:1"]}, "task": {"type": "boss", "index": 0}}), r"unknown task type 'boss'"),
        (lambda: distribute.parse_tf_config({"cluster": {"worker": ["no-port"]}, "task": {"type": "worker", "index": 0}}), r"cluster\['worker'\] must be a list of 'host:port' strings; received \['no-port'\]"),
        (lambda: distribute.parse_tf_config({"cluster": {"worker": ["h:1"]}}), r"must have a 'task' with 'type' and 'index'; received task=None"),
        (lambda: distribute.parse_tf_config({"cluster": {"worker": ["h:1"]}, "task": {"type": "chief", "index": 0}}), r"task type 'chief' is not in the cluster \['worker'\]"),
        (lambda: distribute.parse_tf_config({"cluster": {"worker": ["h:1", "h:2"]}, "task": {"type": "worker", "index": 2}}), r"task index must be in \[0, 2\) for task type 'worker'; received index=2"),
    ],
)
def test_distribute_rejects(call, message):
    with pytest.raises(ValueError, match=message):
        call()


def test_multiworker_needs_tf_config(monkeypatch):
    monkeypatch.delenv("TF_CONFIG", raising=False)
    with pytest.raises(ValueError, match=r"needs the TF_CONFIG environment variable .*unset or empty"):
        distribute.get_strategy("multiworker")
    monkeypatch.setenv("TF_CONFIG", json.dumps({"cluster": {"worker": ["h:1"]}}))
    with pytest.raises(ValueError, match=re.escape("received task=None")):
        distribute.get_strategy("multiworker")


def test_chief_and_tf_config_parsing(monkeypatch):
    cluster = {"chief": ["h:0"], "worker": ["h:1", "h:2"]}
    assert distribute.is_chief({"cluster": cluster, "task": {"type": "chief", "index": 0}})
    assert not distribute.is_chief({"cluster": cluster, "task": {"type": "worker", "index": 0}})
    workers = {"worker": ["h:1", "h:2"]}
    assert distribute.is_chief({"cluster": workers, "task": {"type": "worker", "index": 0}})
    monkeypatch.delenv("TF_CONFIG", raising=False)
    assert distribute.is_chief()


def test_synchronize_batch_norm_flag(fixed_model):
    with pytest.raises(ValueError, match=r"synchronized must be True or False; received synchronized='yes'"):
        distribute.synchronize_batch_norm(fixed_model, "yes")
    batch_norms = [
        layer for layer in fixed_model._flatten_layers(recursive=True)
        if isinstance(layer, keras.layers.BatchNormalization)
    ]
    assert distribute.synchronize_batch_norm(fixed_model) == len(batch_norms) == 7
    assert all(layer.synchronized for layer in batch_norms)
    assert distribute.synchronize_batch_norm(fixed_model, False) == 7
    assert not any(layer.synchronized for layer in batch_norms)
