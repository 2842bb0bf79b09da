"""Haar discrete wavelet transform and its inverse, as functions and layers.

The single-level 2-D Haar transform maps each non-overlapping 2x2 block

    [[a, b],
     [c, d]]

of every channel to four coefficients

    LL = (a + b + c + d) / 2      LH = (a + b - c - d) / 2
    HL = (a - b + c - d) / 2      HH = (a - b - c + d) / 2

This 4x4 matrix is orthonormal and symmetric, so it is its own inverse and
its own transpose: the inverse transform uses the same formulas, and the
gradient of each transform is the other transform applied to the upstream
gradient. Both are written with reshapes and add/subtract (no convolutions)
and carry that gradient as a custom gradient.

Channel layout is sub-band major, `[LL (C), LH (C), HL (C), HH (C)]`, exactly
as the official Wave-ViT `DWT_2D` concatenates its outputs, so official
convolution weights that consume the sub-bands apply unchanged. In pywt terms
(`pywt.dwt2(x, "haar")` on one channel): LL = cA, LH = cH, HL = cV, HH = cD.

Wave-ViT uses the Haar wavelet only, and these closed formulas are exact for
it, so PyWavelets is not needed at run time: it is the tests' independent
reference (as in pytorch_wavelets), not a dependency of the layers.
"""

import keras
from keras import ops

from keras_wavevit.layers.checks import check_feature_map
from keras_wavevit.layers.fusion import fused


def _check_wavelet_input(shape, name, inverse):
    """Raises ValueError unless `shape` is NHWC with known channels, and even
    sizes (forward) or channels divisible by 4 (`inverse`)."""
    check_feature_map(shape, name)
    shape = tuple(shape)
    if shape[-1] is None:
        raise ValueError(f"{name} needs a known channel count; received shape {shape}.")
    if inverse and shape[-1] % 4:
        raise ValueError(
            f"{name} needs channels divisible by 4 (the sub-bands "
            f"[LL, LH, HL, HH]); received {shape[-1]} channels."
        )
    if not inverse:
        for axis_name, size in (("height", shape[1]), ("width", shape[2])):
            if size is not None and size % 2:
                raise ValueError(
                    f"{name} needs an even {axis_name}; received shape {shape} "
                    f"({axis_name} {size} is odd)."
                )


def _scaled(size, factor):
    return None if size is None else int(size * factor)


def _butterfly(top_left, top_right, bottom_left, bottom_right):
    """The Haar 2x2 butterfly: returns (LL, LH, HL, HH) of four inputs."""
    top_sum = top_left + top_right
    top_diff = top_left - top_right
    bottom_sum = bottom_left + bottom_right
    bottom_diff = bottom_left - bottom_right
    half = ops.cast(0.5, top_left.dtype)
    return (
        (top_sum + bottom_sum) * half,
        (top_sum - bottom_sum) * half,
        (top_diff + bottom_diff) * half,
        (top_diff - bottom_diff) * half,
    )


def _dwt_forward(x):
    batch, height, width, channels = ops.shape(x)
    blocks = ops.reshape(
        x, (batch, height // 2, 2, width // 2, 2, channels)
    )
    top, bottom = blocks[:, :, 0], blocks[:, :, 1]
    subbands = _butterfly(
        top[:, :, :, 0], top[:, :, :, 1], bottom[:, :, :, 0], bottom[:, :, :, 1]
    )
    return ops.concatenate(subbands, axis=-1)


def _idwt_forward(x):
    batch, height, width, channels4 = ops.shape(x)
    channels = channels4 // 4
    ll, lh, hl, hh = ops.split(x, 4, axis=-1)
    # The transform is its own inverse: the same butterfly yields the pixels
    # (top-left, top-right, bottom-left, bottom-right) of each 2x2 block.
    top_left, top_right, bottom_left, bottom_right = _butterfly(ll, lh, hl, hh)
    top = ops.stack([top_left, top_right], axis=3)
    bottom = ops.stack([bottom_left, bottom_right], axis=3)
    blocks = ops.stack([top, bottom], axis=2)
    return ops.reshape(blocks, (batch, height * 2, width * 2, channels))


# One XLA loop each on TensorFlow (see `fusion.fused`): the plain graph runs
# the slices, butterfly and concatenation as separate passes over memory.
_fused_dwt_forward = fused(_dwt_forward)
_fused_idwt_forward = fused(_idwt_forward)


@ops.custom_gradient
def haar_dwt2d(x):
    """Single-level 2-D Haar DWT of an NHWC tensor.

    Args:
        x: Tensor of shape `(batch, height, width, channels)` with even height
            and width.

    Returns:
        Tensor of shape `(batch, height / 2, width / 2, 4 * channels)` with
        the sub-bands `[LL, LH, HL, HH]` concatenated on the channel axis.

    Example:

    >>> import numpy as np
    >>> x = np.arange(4.0, dtype="float32").reshape(1, 2, 2, 1)
    >>> np.asarray(haar_dwt2d(x)).ravel().tolist()
    [3.0, -2.0, -1.0, 0.0]
    """

    def grad(*args, upstream=None):
        if upstream is None:
            (upstream,) = args
        return haar_idwt2d(upstream)

    return _fused_dwt_forward(x), grad


@ops.custom_gradient
def haar_idwt2d(x):
    """Single-level 2-D inverse Haar DWT of an NHWC tensor.

    Args:
        x: Tensor of shape `(batch, height, width, 4 * channels)` holding the
            sub-bands `[LL, LH, HL, HH]` on the channel axis.

    Returns:
        Tensor of shape `(batch, 2 * height, 2 * width, channels)`.

    Example:

    >>> import numpy as np
    >>> x = np.arange(4.0, dtype="float32").reshape(1, 2, 2, 1)
    >>> y = haar_idwt2d(haar_dwt2d(x))
    >>> bool(np.allclose(np.asarray(y), x))
    True
    """

    def grad(*args, upstream=None):
        if upstream is None:
            (upstream,) = args
        return haar_dwt2d(upstream)

    return _fused_idwt_forward(x), grad


@keras.saving.register_keras_serializable(package="keras_wavevit")
class DWT2D(keras.layers.Layer):
    """Haar discrete wavelet transform layer (NHWC, no weights).

    Halves height and width and quadruples the channels: the output holds
    `[LL, LH, HL, HH]`, each with the input's channel count, in the layout of
    the official Wave-ViT `DWT_2D`. The gradient is the inverse transform.

    Args:
        **kwargs: Standard `keras.layers.Layer` arguments (`name`, `dtype`).

    Example:

    >>> import numpy as np
    >>> layer = DWT2D()
    >>> layer(np.zeros((2, 8, 6, 3), "float32")).shape
    TensorShape([2, 4, 3, 12])

    Reference:
        Yao et al., "Wave-ViT: Unifying Wavelet and Transformers for Visual
        Representation Learning", ECCV 2022.
    """

    def build(self, input_shape):
        _check_wavelet_input(input_shape, self.__class__.__name__, inverse=False)
        super().build(input_shape)

    def call(self, inputs):
        _check_wavelet_input(inputs.shape, self.__class__.__name__, inverse=False)
        return haar_dwt2d(inputs)

    def compute_output_shape(self, input_shape):
        batch, height, width, channels = input_shape
        return (batch, _scaled(height, 0.5), _scaled(width, 0.5), 4 * channels)


@keras.saving.register_keras_serializable(package="keras_wavevit")
class IDWT2D(keras.layers.Layer):
    """Inverse Haar discrete wavelet transform layer (NHWC, no weights).

    Takes `[LL, LH, HL, HH]` concatenated on channels (as produced by
    `DWT2D`), doubles height and width and divides the channels by four.
    `IDWT2D()(DWT2D()(x))` reproduces `x`. The gradient is the forward DWT.

    Args:
        **kwargs: Standard `keras.layers.Layer` arguments (`name`, `dtype`).

    Example:

    >>> import numpy as np
    >>> x = np.random.rand(2, 8, 6, 3).astype("float32")
    >>> y = IDWT2D()(DWT2D()(x))
    >>> bool(np.allclose(np.asarray(y), x, atol=1e-6))
    True

    Reference:
        Yao et al., "Wave-ViT: Unifying Wavelet and Transformers for Visual
        Representation Learning", ECCV 2022.
    """

    def build(self, input_shape):
        _check_wavelet_input(input_shape, self.__class__.__name__, inverse=True)
        super().build(input_shape)

    def call(self, inputs):
        return haar_idwt2d(inputs)

    def compute_output_shape(self, input_shape):
        batch, height, width, channels = input_shape
        return (batch, _scaled(height, 2), _scaled(width, 2), channels // 4)
