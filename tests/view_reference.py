"""The test-time views in NumPy, the tests' independent reference for `keras_wavevit.test_time`."""

import numpy as np

# (down, right) in the order the views come: content moved down-right,
# down-left, up-right, up-left.
DIRECTIONS = ((1, 1), (1, -1), (-1, 1), (-1, -1))


def reference_views(images, flip, shift):
    """The image batch, its diagonal shifts of reflected edges, then mirror images.

    A view shifted by `(down, right)` holds at row `i`, column `j` the pixel
    of row `i - down * shift`, column `j - right * shift` of the image
    extended by reflection (NumPy's `"reflect"`: the edge pixel not repeated).
    """
    height, width = images.shape[1:3]
    padded = np.pad(images, ((0, 0), (shift, shift), (shift, shift), (0, 0)), mode="reflect")
    rows, columns = np.arange(height), np.arange(width)
    views = [images]
    if shift:
        for down, right in DIRECTIONS:
            source_rows = rows - down * shift + shift  # row in `padded`
            source_columns = columns - right * shift + shift
            views.append(padded[:, source_rows][:, :, source_columns])
    if flip:
        views += [view[:, :, ::-1] for view in views]
    return views
