"""Tests of the shipped ImageNet-1k classes and `decode_predictions`."""

import json
import os

import numpy as np
import pytest

import keras_wavevit
from keras_wavevit.imagenet import IMAGENET_CLASS_NAMES, IMAGENET_WNIDS, decode_predictions

DATA_FILE = os.path.join(os.path.dirname(keras_wavevit.__file__), "data", "imagenet_classes.json")


def test_thousand_classes_in_the_standard_order():
    assert len(IMAGENET_CLASS_NAMES) == len(IMAGENET_WNIDS) == 1000
    assert len(set(IMAGENET_WNIDS)) == 1000
    known = {0: ("n01440764", "tench"), 1: ("n01443537", "goldfish"),
             207: ("n02099601", "golden_retriever"), 281: ("n02123045", "tabby"),
             409: ("n02708093", "analog_clock"), 999: ("n15075141", "toilet_tissue")}
    for index, (wnid, name) in known.items():
        assert (IMAGENET_WNIDS[index], IMAGENET_CLASS_NAMES[index]) == (wnid, name)
    # WordNet ids of ILSVRC 2012 sort in class order.
    assert list(IMAGENET_WNIDS) == sorted(IMAGENET_WNIDS)
    assert json.load(open(DATA_FILE, encoding="utf-8"))["source"].startswith("keras-hub")


def test_decode_predictions_matches_argsort():
    scores = np.random.default_rng(0).normal(size=(3, 1000)).astype("float32")
    decoded = decode_predictions(scores, top=4)
    assert len(decoded) == 3
    for row, result in zip(scores, decoded):
        ids = np.argsort(row)[::-1][:4]
        assert result == [(IMAGENET_WNIDS[i], IMAGENET_CLASS_NAMES[i], float(row[i]))
                          for i in ids]
        assert all(isinstance(score, float) for _, _, score in result)


def test_ties_go_to_the_lower_class_id():
    scores = np.zeros((1, 1000))
    scores[0, [5, 3]] = 1.0
    assert [name for _, name, _ in decode_predictions(scores, top=3)[0]] == [
        IMAGENET_CLASS_NAMES[3], IMAGENET_CLASS_NAMES[5], IMAGENET_CLASS_NAMES[0]]


@pytest.mark.parametrize("scores, top, message", [
    (np.zeros((2, 10)), 5, r"of shape \(batch, 1000\); received shape \(2, 10\)"),
    (np.zeros(1000), 5, r"received shape \(1000,\)"),
    (np.zeros((1, 1000)), 0, "top must be an integer from 1 to 1000; received 0"),
    (np.zeros((1, 1000)), 1001, "top must be an integer from 1 to 1000"),
])
def test_bad_input_raises(scores, top, message):
    with pytest.raises(ValueError, match=message):
        decode_predictions(scores, top=top)
