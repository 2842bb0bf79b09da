"""Grad-CAM: explains the predicted (or a given) class at image resolution."""

import os

import keras
import matplotlib
import numpy as np
import pytest

from keras_wavevit.preprocessing import normalize_images
from keras_wavevit.recipes import interpret
from keras_wavevit.recipes.network import build_model
from tests.recipes.train_child import MICRO_MODEL


def test_grad_cam_explains_the_predicted_class_at_image_resolution():
    model = build_model(MICRO_MODEL, 4, (32, 32))
    assert interpret.default_cam_layer(model) == "block3_0"
    images = np.random.default_rng(0).integers(0, 255, (3, 32, 32, 3)).astype("uint8")
    maps, classes = interpret.grad_cam(model, images)
    predicted = np.argmax(model.predict(normalize_images(images), verbose=0), -1)
    np.testing.assert_array_equal(classes, predicted)
    assert maps.shape == (3, 32, 32) and maps.min() >= 0.0 and maps.max() <= 1.0 + 1e-6
    _, explained = interpret.grad_cam(model, images, class_ids=[1, 2, 3])
    np.testing.assert_array_equal(explained, [1, 2, 3])
    with pytest.raises(ValueError, match="stage 4|block4"):
        interpret.default_cam_layer(keras.Sequential([keras.layers.Dense(1)]), stage=4)
    with pytest.raises(ValueError, match="images"):
        interpret.grad_cam(model, images[0])


def test_plot_grad_cam_writes_a_png_without_touching_the_backend(tmp_path):
    model = build_model(MICRO_MODEL, 2, (32, 32))
    previous = matplotlib.get_backend()
    matplotlib.use("svg")
    try:
        path = interpret.plot_grad_cam(
            model, np.zeros((2, 32, 32, 3), "uint8"), ["a", "b"], str(tmp_path / "cam.png")
        )
        assert matplotlib.get_backend() == "svg"
    finally:
        matplotlib.use(previous)
    assert open(path, "rb").read(8) == b"\x89PNG\r\n\x1a\n"
    assert os.listdir(tmp_path) == ["cam.png"]
