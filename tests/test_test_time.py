"""Test-time views (`keras_wavevit.test_time`) against a NumPy reference."""

import numpy as np
import pytest
import tensorflow as tf

from keras_wavevit import test_time
from tests.view_reference import reference_views


@pytest.mark.parametrize("flip, shift, count", [(False, 0, 1), (True, 0, 2), (False, 1, 5),
                                                (True, 1, 10), (True, 2, 10)])
def test_views_are_the_reference_views_in_order(flip, shift, count):
    # Not square, so that a swap of the axes shows.
    images = np.random.default_rng(0).integers(0, 256, (2, 8, 7, 3)).astype("uint8")
    views = test_time.views(images, flip=flip, shift=shift)
    expected = reference_views(images, flip, shift)
    assert test_time.view_count(flip=flip, shift=shift) == len(views) == len(expected) == count
    for view, reference in zip(views, expected):
        assert view.dtype == tf.uint8
        np.testing.assert_array_equal(view.numpy(), reference)
    assert len({view.numpy().tobytes() for view in views}) == count  # all different


def test_shifted_views_move_the_content_diagonally():
    images = np.arange(2 * 6 * 5, dtype="float32").reshape(1, 6, 5, 2)
    shift = 2
    moved = test_time.views(images, shift=shift)[1:]
    for view, (down, right) in zip(moved, test_time.SHIFT_DIRECTIONS):
        view = view.numpy()
        rows = slice(shift, None) if down > 0 else slice(None, -shift)
        source_rows = slice(None, -shift) if down > 0 else slice(shift, None)
        columns = slice(shift, None) if right > 0 else slice(None, -shift)
        source_columns = slice(None, -shift) if right > 0 else slice(shift, None)
        np.testing.assert_array_equal(view[:, rows, columns],
                                      images[:, source_rows, source_columns])


@pytest.mark.parametrize("flip, shift", [(True, 0), (False, 2), (True, 1)])
def test_mean_over_views_is_the_mean_of_the_scores_of_each_view(flip, shift):
    rng = np.random.default_rng(1)
    images = rng.normal(size=(3, 6, 5, 2)).astype("float32")
    weights = rng.normal(size=(6 * 5 * 2, 4))
    calls = []

    def score(batch):
        calls.append(batch.shape[0])
        flat = tf.reshape(tf.cast(batch, tf.float64), (tf.shape(batch)[0], -1))
        return tf.cast(flat @ weights, tf.bfloat16)

    averaged = test_time.mean_over_views(score, images, flip=flip, shift=shift)
    reference = np.mean([view.reshape(3, -1).astype("float64") @ weights
                         for view in reference_views(images, flip, shift)], axis=0)
    assert averaged.dtype == tf.float32 and averaged.shape == (3, 4)
    assert calls == [3 * test_time.view_count(flip, shift)]  # one call, views stacked
    np.testing.assert_allclose(averaged.numpy(), reference, rtol=0.02, atol=0.05)


def test_mean_over_views_traces_with_an_unknown_batch_size():
    images = np.random.default_rng(2).normal(size=(5, 4, 4, 1)).astype("float32")

    @tf.function(input_signature=[tf.TensorSpec((None, 4, 4, 1), tf.float32)])
    def averaged(batch):
        return test_time.mean_over_views(lambda x: x[:, :, 0, 0], batch, flip=True, shift=1)

    reference = np.mean([view[:, :, 0, 0] for view in reference_views(images, True, 1)], axis=0)
    np.testing.assert_allclose(averaged(images).numpy(), reference, rtol=1e-6)
    np.testing.assert_allclose(averaged(images[:2]).numpy(), reference[:2], rtol=1e-6)


def test_bad_flips_and_shifts_are_refused_with_their_value():
    for flip in ("false", 0, None):
        with pytest.raises(ValueError, match=rf"flip_average must be True or False; "
                                             rf"received {flip!r}"):
            test_time.check_flip(flip)
    for shift in (-1, 1.5, True, "1"):
        with pytest.raises(ValueError, match=r"shift must be a non-negative integer \(pixels\); "
                                             rf"received {shift!r}"):
            test_time.check_shift(shift)
    with pytest.raises(ValueError, match=r"smaller than the image's sides \(6, 5\) .*received 5"):
        test_time.views(np.zeros((1, 6, 5, 3)), shift=5)
    assert test_time.check_shift(4, (6, 5)) == 4


def test_shifts_need_a_known_image_size():
    @tf.function(input_signature=[tf.TensorSpec((None, None, None, 3), tf.float32)])
    def any_size(images):
        return test_time.views(images, shift=1)[1]

    with pytest.raises(ValueError, match=r"need images of a known height and width; received "
                                         r"images of shape \(None, None, None, 3\)"):
        any_size(tf.zeros((1, 4, 4, 3)))
