"""Training augmentation: random resized crop, the per-image pipeline, MixUp/CutMix, seeds."""

import numpy as np
import pytest
import tensorflow as tf

from keras_wavevit.precision import dtype_policy_scope
from keras_wavevit.recipes import augmentation


def test_random_resized_crop():
    images = tf.random.uniform((3, 20, 24, 3), 0, 255)
    crop = augmentation.RandomResizedCrop(16, 16, scale=(0.3, 0.5), seed=0)
    out = crop(images, training=True)
    assert out.shape == (3, 16, 16, 3)
    assert crop(images[0], training=True).shape == (16, 16, 3)
    # Full-area crops with aspect ratio 1 of a square image are a plain resize.
    square = tf.random.uniform((2, 16, 16, 3), 0, 255)
    full = augmentation.RandomResizedCrop(16, 16, scale=(1.0, 1.0), ratio=(1.0, 1.0))
    np.testing.assert_allclose(full(square, training=True), square, atol=1e-3)
    np.testing.assert_allclose(full(square, training=False), square, atol=1e-3)
    rebuilt = augmentation.RandomResizedCrop.from_config(crop.get_config())
    assert rebuilt.scale == (0.3, 0.5) and rebuilt.height == 16 and rebuilt.seed == 0
    with pytest.raises(ValueError, match="scale"):
        augmentation.RandomResizedCrop(8, 8, scale=(0.5, 0.2))
    with pytest.raises(ValueError, match="height and width must be positive ints"):
        augmentation.RandomResizedCrop(0, 8)


def crop_boxes(crop, count, side=65):
    """The boxes a crop layer drew, read back from an image of pixel coordinates.

    Channel 0 holds the row and channel 1 the column, so the corners of each
    (bilinear, hence exact on a ramp) crop are its box in pixels. The crop
    runs inside `tf.data`, as in training (graph mode, where ops given the
    same seed draw the same numbers).
    """
    rows, cols = np.meshgrid(np.arange(side), np.arange(side), indexing="ij")
    image = np.stack([rows, cols, np.zeros_like(rows)], -1).astype("float32")
    batch = tf.data.Dataset.from_tensors(np.repeat(image[None], count, 0))
    out = next(iter(batch.map(lambda images: crop(images, training=True)))).numpy()
    top, left = out[:, 0, 0, 0] / (side - 1), out[:, 0, 0, 1] / (side - 1)
    bottom, right = out[:, -1, -1, 0] / (side - 1), out[:, -1, -1, 1] / (side - 1)
    return top, left, bottom - top, right - left


def test_random_resized_crop_draws_size_shape_and_position_independently():
    scale, ratio = (0.2, 0.5), (3 / 4, 4 / 3)
    crop = augmentation.RandomResizedCrop(9, 9, scale=scale, ratio=ratio, seed=0)
    top, left, height, width = crop_boxes(crop, 2000)
    area = height * width
    assert area.min() >= scale[0] - 1e-4 and area.max() <= scale[1] + 1e-4
    # The four uniform draws behind each box, recovered from it.
    draws = {
        "area": (area - scale[0]) / (scale[1] - scale[0]),
        "log_ratio": np.log(width / height / ratio[0]) / np.log(ratio[1] / ratio[0]),
        "top": top / (1 - height),
        "left": left / (1 - width),
    }
    for name, values in draws.items():
        assert 0.45 < values.mean() < 0.55, name  # each one uniform on [0, 1]
    names = list(draws)
    for i, first in enumerate(names):
        for second in names[i + 1:]:
            correlation = np.corrcoef(draws[first], draws[second])[0, 1]
            assert abs(correlation) < 0.1, (first, second, correlation)


def test_random_resized_crop_seed_repeats_its_crops():
    first = crop_boxes(augmentation.RandomResizedCrop(9, 9, seed=5), 8)
    again = crop_boxes(augmentation.RandomResizedCrop(9, 9, seed=5), 8)
    other = crop_boxes(augmentation.RandomResizedCrop(9, 9, seed=6), 8)
    np.testing.assert_array_equal(first, again)
    assert not np.allclose(first, other)


def test_layer_seed_is_stable_and_different_per_layer():
    seeds = [augmentation.layer_seed(0, name) for name in ("flip", "rotation", "mixup", "cutmix")]
    assert len(set(seeds)) == 4 and all(0 <= seed < 2**31 for seed in seeds)
    assert augmentation.layer_seed(0, "flip") == seeds[0]
    assert augmentation.layer_seed(1, "flip") != seeds[0]
    assert augmentation.layer_seed(None, "flip") is None


def test_each_augmentation_layer_draws_independently_of_the_others():
    every = augmentation.build_augmentation((16, 16), translate=0.1, erasing=0.5, seed=0)
    seeds = [layer.seed for layer in every.layers]
    assert len(seeds) == 6 and len(set(seeds)) == 6
    pipeline = augmentation.build_augmentation((16, 16), seed=0)
    flip, rotation = pipeline.layers[2:]
    images = tf.zeros((1000, 16, 16, 3))
    flips = np.asarray(flip.get_random_transformation(images, training=True)["flips"]).reshape(-1)
    angles = np.asarray(rotation.get_random_transformation(images, training=True)["angle"])
    # With one shared seed a flip happened exactly when the angle was negative.
    assert 0.44 < np.mean(flips == (angles < 0)) < 0.56


def test_augmentation_is_identity_at_inference_and_checks_arguments():
    images = tf.random.uniform((2, 16, 16, 3), 0, 255)
    pipeline = augmentation.build_augmentation((16, 16), crop_scale=None)
    np.testing.assert_allclose(pipeline(images, training=False), images, atol=1e-4)
    with pytest.raises(ValueError, match="rotation_degrees"):
        augmentation.build_augmentation((16, 16), rotation_degrees=-1)


def augment_in_tf_data(pipeline, images):
    """One training-mode pass of `pipeline` over `images`, inside `tf.data`."""
    dataset = tf.data.Dataset.from_tensors(images).map(lambda x: pipeline(x, training=True))
    return next(iter(dataset)).numpy()


def test_translation_shifts_whole_pixels_with_reflected_edges():
    rows, cols = np.meshgrid(np.arange(32), np.arange(32), indexing="ij")
    # Coordinates + 1: a zero from a constant fill would show as a value < 1.
    image = np.stack([rows, cols, np.zeros_like(rows)], -1).astype("float32") + 1
    pipeline = augmentation.build_augmentation(
        (32, 32), crop_scale=None, translate=0.125, rotation_degrees=0, color_jitter=0,
        horizontal_flip=False, seed=0,
    )
    out = augment_in_tf_data(pipeline, np.repeat(image[None], 1000, 0))
    shifts = out[:, 16, 16, :2] - image[16, 16, :2]  # (row, column) shift of each image
    assert np.array_equal(shifts, np.round(shifts))
    assert shifts.min() == -4 and shifts.max() == 4  # 0.125 of 32 pixels, either way
    assert len(np.unique(shifts[:, 0])) == 9 and abs(np.corrcoef(shifts.T)[0, 1]) < 0.1
    # Rigid: the whole interior moves by the same whole shift.
    interior = out[:, 4:28, 4:28, :2] - image[None, 4:28, 4:28, :2]
    np.testing.assert_array_equal(interior, np.broadcast_to(shifts[:, None, None], interior.shape))
    # Edges come from the image itself, reflected: no filled pixels.
    assert out[..., :2].min() >= 1 and out[..., :2].max() <= 32


def test_erasing_greys_out_one_box_of_the_asked_share_of_images():
    images = np.random.default_rng(0).uniform(0, 255, (2000, 32, 32, 3)).astype("float32")
    pipeline = augmentation.build_augmentation(
        (32, 32), crop_scale=None, rotation_degrees=0, color_jitter=0, horizontal_flip=False,
        erasing=0.25, seed=0,
    )
    out = augment_in_tf_data(pipeline, images)
    erased = (out != images).any(-1)  # (batch, height, width)
    hit = erased.any((1, 2))
    assert 0.22 < hit.mean() < 0.28
    np.testing.assert_array_equal(out[erased], augmentation.ERASING_FILL)
    for mask in erased[hit][:200]:
        box_rows, box_cols = np.flatnonzero(mask.any(1)), np.flatnonzero(mask.any(0))
        # One solid rectangle, of 2-33% of the area (give or take a pixel per side).
        assert mask.sum() == box_rows.size * box_cols.size
        assert 0.01 < mask.mean() < 0.36
    np.testing.assert_array_equal(pipeline(images[:4], training=False), images[:4])


def test_translation_and_erasing_are_checked():
    with pytest.raises(ValueError, match=r"translate must be in \[0, 1\) .* translate=1.5"):
        augmentation.build_augmentation((16, 16), translate=1.5)
    with pytest.raises(ValueError, match="erasing=-0.1"):
        augmentation.build_augmentation((16, 16), erasing=-0.1)


def mixing_weights(mix, batches=30, batch=64):
    """The share of its own label each example keeps after mixing."""
    weights = []
    for _ in range(batches):
        _, labels = mix(tf.zeros((batch, 8, 8, 3)), tf.eye(batch))
        own = np.diag(labels.numpy())
        weights.append(own[own < 1 - 1e-6])  # drop the examples mixed with themselves
    return np.concatenate(weights)


def test_cutmix_alpha_is_the_beta_parameter_of_the_mixing_weight():
    # alpha = 1: lam ~ Beta(1, 1), uniform on [0, 1], variance 1/12. Passing
    # alpha as Keras' `factor` range (0, alpha) drew Beta(a, a) with a uniform
    # in (0, 1): variance ln(3)/8 = 0.137.
    weights = mixing_weights(augmentation.build_batch_mixing(0.0, 1.0, seed=0))
    assert weights.size > 1500
    assert 0.47 < weights.mean() < 0.53
    assert 1 / 12 - 0.008 < weights.var() < 1 / 12 + 0.008
    # alpha = 0.5: Beta(0.5, 0.5), variance 1/8.
    weights = mixing_weights(augmentation.build_batch_mixing(0.0, 0.5, seed=0))
    assert 1 / 8 - 0.01 < weights.var() < 1 / 8 + 0.01


def test_mixup_alpha_is_the_beta_parameter_and_both_mixers_share_the_batches():
    # MixUp alpha 0.4: Beta(0.4, 0.4) has variance 1 / (4 * 1.8) = 0.139.
    weights = mixing_weights(augmentation.build_batch_mixing(0.4, 0.0, seed=0))
    assert 0.139 - 0.01 < weights.var() < 0.139 + 0.01
    mix = augmentation.build_batch_mixing(0.4, 1.0, seed=0)
    images = tf.reshape(tf.range(64, dtype=tf.float32), (64, 1, 1, 1)) * tf.ones((64, 8, 8, 3))
    kinds = []
    for _ in range(40):
        mixed, _ = mix(images, tf.eye(64))
        # CutMix copies whole pixels (every pixel is one of the inputs); MixUp blends them.
        kinds.append(bool(np.all(np.isin(mixed.numpy(), np.arange(64)))))
    assert 10 < sum(kinds) < 30


def test_batch_mixing_checks_its_alphas():
    assert augmentation.build_batch_mixing(0.0, 0.0) is None
    expected = r"cutmix_alpha in \[0, 1\] .* received mixup_alpha=0.2, cutmix_alpha=2"
    with pytest.raises(ValueError, match=expected):
        augmentation.build_batch_mixing(0.2, 2)
    with pytest.raises(ValueError, match="mixup_alpha must be >= 0"):
        augmentation.build_batch_mixing(-1.0, 0.0)


@pytest.mark.parametrize("policy", ["mixed_bfloat16", "mixed_float16"])
def test_augmentation_ignores_the_mixed_precision_policy(policy):
    # Under mixed precision the augmentation layers used to compute in the
    # policy's dtype: the crop failed (crop_and_resize takes no bfloat16), and
    # RandomColorJitter's sub-layers, which take no dtype, jittered in it.
    images = tf.random.uniform((6, 20, 20, 3), 0, 255, seed=1)
    labels = tf.one_hot(tf.range(6) % 3, 3)

    def augment():
        pipeline = augmentation.build_augmentation((16, 16), seed=0)
        mix = augmentation.build_batch_mixing(0.4, 1.0, seed=0)
        dataset = tf.data.Dataset.from_tensors((images, labels)).map(
            lambda x, y: mix(pipeline(x, training=True), y))
        return [tensor.numpy() for tensor in next(iter(dataset))]

    with dtype_policy_scope("float32"):
        expected = augment()
    with dtype_policy_scope(policy):
        mixed = augment()
    assert mixed[0].dtype == np.float32 and mixed[0].shape == (6, 16, 16, 3)
    for got, want in zip(mixed, expected):
        np.testing.assert_array_equal(got, want)
