"""Tests of the official evaluation transform (`keras_wavevit.preprocessing`)."""

import math

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from keras_wavevit.preprocessing import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    OFFICIAL_CROP_PCT,
    official_resize_size,
    preprocess_official,
)

GREY_LEVEL = 1 / 255 / min(IMAGENET_STD)  # one 8-bit step, normalised


def official_reference(image, image_size=224, crop_pct=0.96):
    """timm's eval transform as the official pipeline runs it: PIL bicubic
    `Resize`, torchvision `CenterCrop` offsets, float64 normalisation."""
    height, width = image.shape[:2]
    if isinstance(image_size, int):
        short = math.floor(image_size / crop_pct)
        if width <= height:
            size = (short, int(short * height / width))
        else:
            size = (int(short * width / height), short)
        crop = (image_size, image_size)
    else:
        size = tuple(math.floor(side / crop_pct) for side in image_size[::-1])
        crop = image_size
    resized = np.asarray(Image.fromarray(image).resize(size, Image.BICUBIC))
    top = int(round((resized.shape[0] - crop[0]) / 2.0))
    left = int(round((resized.shape[1] - crop[1]) / 2.0))
    cropped = resized[top:top + crop[0], left:left + crop[1]].astype("float64") / 255
    return (cropped - IMAGENET_MEAN) / IMAGENET_STD


def textured(shape, seed=0):
    """A photo-like test image: smooth gradients, stripes and mid-range noise."""
    y, x = np.mgrid[0:shape[0], 0:shape[1]].astype("float64")
    noise = np.random.default_rng(seed).integers(-40, 40, shape)
    channels = [127 + 100 * np.sin(x / 7) * np.cos(y / 11), 255 * x / shape[1],
                128 + 80 * np.sin((x + y) / 3) + noise]
    return np.clip(np.stack(channels, -1).round(), 0, 255).astype("uint8")


@pytest.mark.parametrize("shape", [(300, 400), (500, 375), (150, 120), (224, 224)])
def test_matches_pil_bicubic_and_torchvision_centre_crop(shape):
    image = textured(shape)
    out = np.asarray(preprocess_official(image))
    levels = np.abs(out - official_reference(image)) / GREY_LEVEL
    # PIL's fixed-point weights vs TensorFlow's float32: a rare value near a
    # rounding tie lands one (seldom two) 8-bit steps away.
    assert out.shape == (224, 224, 3) and out.dtype == np.float32
    assert levels.max() <= 2.01
    assert np.mean(levels > 0.5) < 0.01


def test_non_square_size_resizes_both_sides_as_timm():
    image = textured((260, 350), seed=1)
    out = np.asarray(preprocess_official(image, image_size=(96, 128)))
    levels = np.abs(out - official_reference(image, image_size=(96, 128))) / GREY_LEVEL
    assert out.shape == (96, 128, 3)
    assert levels.max() <= 2.01 and np.mean(levels > 0.5) < 0.01


@pytest.mark.parametrize("shape, top, left", [((233, 300), 4, 38), ((300, 233), 38, 4)])
def test_crop_offsets_round_half_to_even(shape, top, left):
    # The short side is already 233: the resize keeps every pixel, and
    # (233 - 224) / 2 = 4.5 rounds to 4 as torchvision's CenterCrop does.
    image = np.random.default_rng(2).integers(0, 256, (*shape, 3)).astype("uint8")
    expected = (image[top:top + 224, left:left + 224] / 255 - IMAGENET_MEAN) / IMAGENET_STD
    np.testing.assert_allclose(np.asarray(preprocess_official(image)), expected, atol=1e-5)


def test_batch_float_and_graph_inputs_agree_with_single_uint8_images():
    images = np.stack([textured((240, 320), seed=s) for s in range(2)])
    singles = np.stack([np.asarray(preprocess_official(image)) for image in images])
    np.testing.assert_allclose(np.asarray(preprocess_official(images)), singles, atol=1e-6)
    floats = preprocess_official(images.astype("float32"))
    np.testing.assert_allclose(np.asarray(floats), singles, atol=1e-6)
    graph = tf.function(preprocess_official,
                        input_signature=[tf.TensorSpec((None, None, None, 3), tf.uint8)])
    np.testing.assert_allclose(graph(images).numpy(), singles, atol=1e-6)


def test_resize_size_is_timm_floor():
    assert OFFICIAL_CROP_PCT == 0.96
    assert official_resize_size() == (233, 233)
    assert official_resize_size(384) == (400, 400)
    assert official_resize_size((224, 320), crop_pct=0.875) == (256, 365)
    assert official_resize_size(32, crop_pct=1) == (32, 32)


@pytest.mark.parametrize("kwargs, message", [
    ({"images": np.zeros((8, 8), "uint8")}, r"one image \(height, width, 3\) or a batch"),
    ({"images": np.zeros((1, 1, 8, 8, 3), "uint8")}, "received shape"),
    ({"images": np.zeros((8, 8, 4), "uint8")}, "3 \\(RGB\\) channels last"),
    ({"images": np.array([[["a"] * 3]])}, "integer or real pixel values"),
    ({"crop_pct": 0}, r"crop_pct must be a number in \(0, 1\]"),
    ({"crop_pct": 1.5}, r"crop_pct must be a number in \(0, 1\]"),
    ({"crop_pct": True}, r"crop_pct must be a number in \(0, 1\]"),
    ({"image_size": 0}, "image_size must be a positive integer or"),
    ({"image_size": (224, 224, 3)}, "image_size must be a positive integer or"),
])
def test_bad_arguments_raise(kwargs, message):
    arguments = {"images": np.zeros((8, 8, 3), "uint8"), **kwargs}
    with pytest.raises(ValueError, match=message):
        preprocess_official(**arguments)
