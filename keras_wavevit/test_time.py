"""Test-time averaging: a model's scores averaged over several views of each image.

The views of an image batch are the images themselves; with a shift of `s`
pixels, the images moved by `s` pixels along both axes in each of the four
diagonal directions (`SHIFT_DIRECTIONS`), their edges reflected (as
`--translate` fills them in training); with a flip, the mirror image (left
to right) of each of these. That is 2 views with the flip alone, 5 with the
shift alone, 10 with both (`view_count`).

`keras-wavevit evaluate --flip-average --shift-average S`
(`keras_wavevit.recipes.evaluation.averaged_over_views`) scores a model's
views one after another; a SavedModel exported with `flip_average` /
`shift_average` (`keras_wavevit.export.export_saved_model`) averages them
inside its graph with `mean_over_views`, so that a client sends each image
once.
"""

import numpy as np
import tensorflow as tf

# (down, right): the direction the image content moves in each shifted view.
SHIFT_DIRECTIONS = ((1, 1), (1, -1), (-1, 1), (-1, -1))


def check_flip(flip):
    """Checks a test-time flip switch: `True` or `False`.

    Args:
        flip: Whether the mirror images are averaged too.

    Returns:
        `flip`.

    Raises:
        ValueError: `flip` is not a bool (a string such as `"false"` would
            otherwise count as true).

    Example:

    >>> check_flip(True)
    True
    """
    if not isinstance(flip, (bool, np.bool_)):
        raise ValueError(f"flip_average must be True or False; received {flip!r}.")
    return bool(flip)


def check_shift(shift, image_size=None):
    """Checks a test-time shift: pixels, a non-negative integer below the image's sides.

    Args:
        shift: The shift in pixels (0: none).
        image_size: `(height, width)` of the images, if known.

    Returns:
        `shift`, as an int.

    Raises:
        ValueError: `shift` is not a non-negative integer, or not smaller
            than both sides of `image_size` (its edges are reflected).

    Example:

    >>> check_shift(1, (32, 32))
    1
    >>> check_shift(32, (32, 32))
    Traceback (most recent call last):
    ...
    ValueError: The test-time shift must be smaller than the image's sides (32, 32) (its edges are reflected); received 32.
    """
    if isinstance(shift, bool) or not isinstance(shift, (int, np.integer)) or shift < 0:
        raise ValueError(
            f"The test-time shift must be a non-negative integer (pixels); received {shift!r}."
        )
    if shift and image_size is not None and shift >= min(image_size):
        raise ValueError(
            f"The test-time shift must be smaller than the image's sides {tuple(image_size)} "
            f"(its edges are reflected); received {shift}."
        )
    return int(shift)


def view_count(flip=False, shift=0):
    """How many views of each image `views` gives.

    Args:
        flip: Whether the mirror images are views too.
        shift: The shift in pixels (0: no shifted views).

    Returns:
        The number of views: 1, 2 (flip), 5 (shift) or 10 (both).

    Example:

    >>> view_count(flip=True), view_count(shift=1), view_count(flip=True, shift=1)
    (2, 5, 10)
    """
    return (2 if flip else 1) * (1 + len(SHIFT_DIRECTIONS) if shift else 1)


def views(images, flip=False, shift=0):
    """The views of an image batch: itself, its diagonal shifts, their mirror images.

    Args:
        images: A batch `(batch, height, width, channels)` of a known height
            and width when `shift` is used.
        flip: Add the mirror image (left to right) of every view.
        shift: Add the batch moved by `shift` pixels in each of the four
            `SHIFT_DIRECTIONS`, edges reflected; 0: none.

    Returns:
        A list of `view_count(flip, shift)` tensors shaped like `images`:
        the images, the four shifts in `SHIFT_DIRECTIONS` order, then the
        mirror image of each of those in the same order.

    Raises:
        ValueError: `shift` is negative or not smaller than the images'
            sides, or the images' height or width is unknown.

    Example:

    >>> row = np.array([[[[1], [2], [3]]]])  # one image, 1x3 pixels
    >>> [view[0, 0, :, 0].numpy().tolist() for view in views(row, flip=True)]
    [[1, 2, 3], [3, 2, 1]]
    """
    images = tf.convert_to_tensor(images)
    result = [images]
    if shift:
        height, width = images.shape[1], images.shape[2]
        if height is None or width is None:
            raise ValueError(
                "Test-time shifts need images of a known height and width; received "
                f"images of shape {images.shape}."
            )
        check_shift(shift, (height, width))
        padded = tf.pad(images, [[0, 0], [shift, shift], [shift, shift], [0, 0]],
                        mode="REFLECT")
        for down, right in SHIFT_DIRECTIONS:
            # The content moves down by `shift` when the window starts `shift`
            # rows above the original image's first row.
            top, left = shift - down * shift, shift - right * shift
            result.append(padded[:, top:top + height, left:left + width])
    if flip:
        result += [tf.reverse(view, axis=[2]) for view in result]
    return result


def mean_over_views(score, images, flip=False, shift=0):
    """The mean of `score` over the views of each image, in one call of `score`.

    The views are stacked along the batch axis, scored together, and
    averaged per image, in float32 (inside a `tf.function` too, which is how
    an exported SavedModel averages).

    Args:
        score: Maps an image batch to scores `(batch, ...)`.
        images: The image batch `(batch, height, width, channels)`.
        flip: Average over the mirror images too.
        shift: Average over the diagonal shifts by this many pixels too.

    Returns:
        float32 scores `(batch, ...)`: per image, the mean over its
        `view_count(flip, shift)` views.

    Raises:
        ValueError: As `views`.

    Example:

    >>> first_pixel = lambda images: tf.cast(images[:, 0, 0, :], tf.float32)
    >>> mean_over_views(first_pixel, np.array([[[[1.0], [3.0]]]]), flip=True).numpy()
    array([[2.]], dtype=float32)
    """
    images = tf.convert_to_tensor(images)
    all_views = views(images, flip, shift)
    if len(all_views) == 1:
        return tf.cast(score(images), tf.float32)
    scores = tf.cast(score(tf.concat(all_views, axis=0)), tf.float32)
    batch = tf.shape(images)[0]
    per_view = tf.reshape(scores, tf.concat([[len(all_views), batch], tf.shape(scores)[1:]], 0))
    return tf.reduce_mean(per_view, axis=0)
