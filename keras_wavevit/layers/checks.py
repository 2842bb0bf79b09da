"""Argument and shape checks shared by the layers, the config and the builder.

Each check raises a `ValueError` that names the argument (or layer) and the
value received, before any weight is created. `InputCheck` applies the image checks inside
a model, when it is called.
"""

import numbers

import keras


def is_int(value):
    """Whether `value` is an integer (Python or NumPy), not a bool.

    Args:
        value: Anything.

    Returns:
        A bool.

    Example:

    >>> is_int(3), is_int(2.0), is_int(True)
    (True, False, False)
    """
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def is_real(value):
    """Whether `value` is a real number (Python or NumPy), not a bool.

    Args:
        value: Anything.

    Returns:
        A bool.

    Example:

    >>> is_real(0.5), is_real("1"), is_real(False)
    (True, False, False)
    """
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def is_positive_int(value):
    """Whether `value` is an integer >= 1 (Python or NumPy; not a bool).

    Args:
        value: Anything.

    Returns:
        A bool.

    Example:

    >>> is_positive_int(3), is_positive_int(0), is_positive_int(2.0)
    (True, False, False)
    """
    return is_int(value) and value >= 1


def check_positive(**values):
    """Raises ValueError unless every keyword value is positive.

    Integers are required except for names ending in `_ratio`, which may be
    any positive number. The message names the argument and the value.

    Args:
        **values: Argument names and their values.

    Raises:
        ValueError: For the first value that is not positive.

    Example:

    >>> check_positive(dim=16, mlp_ratio=1.5)
    >>> check_positive(hidden_dim=0)
    Traceback (most recent call last):
    ...
    ValueError: hidden_dim must be a positive integer; received hidden_dim=0.
    """
    for name, value in values.items():
        if name.endswith("_ratio"):
            valid, kind = is_real(value) and value > 0, "a positive number"
        else:
            valid, kind = is_positive_int(value), "a positive integer"
        if not valid:
            raise ValueError(f"{name} must be {kind}; received {name}={value!r}.")


def check_choice(name, value, choices):
    """Raises ValueError unless `value` is one of `choices` (floats never are).

    Args:
        name: The argument's name, for the message.
        value: The value received.
        choices: The allowed values (their repr is shown).

    Example:

    >>> check_choice("stride", 3, (2, 4))
    Traceback (most recent call last):
    ...
    ValueError: stride must be one of (2, 4); received stride=3.
    """
    if isinstance(value, (bool, float)) or value not in choices:
        raise ValueError(f"{name} must be one of {choices}; received {name}={value!r}.")


def check_rate(name, value):
    """Raises ValueError unless `value` is a number in [0, 1).

    Example:

    >>> check_rate("drop_path_rate", 1.0)
    Traceback (most recent call last):
    ...
    ValueError: drop_path_rate must be in [0, 1); received drop_path_rate=1.0.
    """
    if not is_real(value) or not 0.0 <= value < 1.0:
        raise ValueError(f"{name} must be in [0, 1); received {name}={value!r}.")


def check_tensorflow_backend(feature):
    """Raises ValueError unless Keras runs on the TensorFlow backend.

    For the parts built on TensorFlow itself (SavedModel export, `tf.data`
    pipelines, `tf.distribute`), called before any work.

    Args:
        feature: What needs TensorFlow, named in the message.

    Example:

    >>> check_tensorflow_backend("export_saved_model")  # on TensorFlow: passes
    """
    backend = keras.backend.backend()
    if backend != "tensorflow":
        raise ValueError(
            f"{feature} needs the TensorFlow backend; KERAS_BACKEND is {backend!r} "
            "(set KERAS_BACKEND=tensorflow before importing Keras)."
        )


def check_sr_ratio(sr_ratio):
    """Raises ValueError unless the key/value stride `sr_ratio` is an int >= 1.

    Example:

    >>> check_sr_ratio(1.5)
    Traceback (most recent call last):
    ...
    ValueError: sr_ratio must be an integer >= 1; received sr_ratio=1.5.
    """
    if not is_positive_int(sr_ratio):
        raise ValueError(f"sr_ratio must be an integer >= 1; received sr_ratio={sr_ratio!r}.")


def check_heads(dim, num_heads):
    """Raises ValueError unless `dim` splits evenly into `num_heads` heads.

    Example:

    >>> check_heads(16, 5)
    Traceback (most recent call last):
    ...
    ValueError: dim must be divisible by num_heads; received dim=16, num_heads=5.
    """
    check_positive(dim=dim)
    if not is_positive_int(num_heads):
        raise ValueError(f"num_heads must be >= 1; received num_heads={num_heads!r}.")
    if dim % num_heads:
        raise ValueError(
            f"dim must be divisible by num_heads; received dim={dim}, num_heads={num_heads}."
        )


def check_feature_map(shape, layer_name, channels=None):
    """Raises ValueError unless `shape` is NHWC (with `channels` if given).

    Args:
        shape: The input shape.
        layer_name: The checking layer's name, for the message.
        channels: The required channel count; `None` accepts any.

    Example:

    >>> check_feature_map((1, 64, 16), "Block", 16)
    Traceback (most recent call last):
    ...
    ValueError: Block expects a feature map (batch, height, width, 16); received shape (1, 64, 16).
    """
    if len(shape) != 4 or (channels is not None and shape[-1] != channels):
        expected = "channels" if channels is None else channels
        raise ValueError(
            f"{layer_name} expects a feature map (batch, height, width, {expected}); "
            f"received shape {tuple(shape)}."
        )


def check_tokens(shape, layer_name, channels=None):
    """Raises ValueError unless `shape` is a token sequence, class token first.

    Args:
        shape: The input shape, `(batch, 1 + tokens, channels)`.
        layer_name: The checking layer's name, for the message.
        channels: The required channel count; `None` accepts any.

    Example:

    >>> check_tokens((2, 4, 4, 16), "ClassBlock", 16)
    Traceback (most recent call last):
    ...
    ValueError: ClassBlock expects tokens (batch, 1 + tokens, 16); received shape (2, 4, 4, 16).
    """
    if len(shape) != 3 or (channels is not None and shape[-1] != channels):
        expected = "channels" if channels is None else channels
        raise ValueError(
            f"{layer_name} expects tokens (batch, 1 + tokens, {expected}); "
            f"received shape {tuple(shape)}."
        )


def check_size_multiple(sizes, multiple, received):
    """Raises ValueError unless known image sizes are multiples of `multiple`.

    Args:
        sizes: `(height, width)`; `None` entries (any size) pass.
        multiple: What they must be multiples of.
        received: What to show as received, e.g. `"input_shape=(40, 32, 3)"`.

    Example:

    >>> check_size_multiple((40, None), 16, "input_shape=(40, None, 3)")
    Traceback (most recent call last):
    ...
    ValueError: Input height must be a multiple of 16 for this Wave-ViT configuration; received input_shape=(40, None, 3) (height 40).
    """
    for axis_name, size in zip(("height", "width"), sizes):
        if size is not None and size % multiple:
            raise ValueError(
                f"Input {axis_name} must be a multiple of {multiple} for this "
                f"Wave-ViT configuration; received {received} ({axis_name} {size})."
            )


@keras.saving.register_keras_serializable(package="keras_wavevit")
class InputCheck(keras.layers.Layer):
    """Passes images through unchanged after checking rank, channels and size.

    Wave-ViT needs NHWC images with the channel count it was built for and
    height and width divisible by `multiple` (`WaveViTConfig.input_multiple`);
    other sizes would give silently wrong stage grids. Everything known when
    the model is called or traced is checked with a `ValueError`. On JAX
    and PyTorch the sizes are always known when the layer runs (JAX traces
    with concrete shapes; PyTorch runs eagerly), so that check covers every
    call. On TensorFlow, sizes only known at run time (`None` in
    `input_shape`, inside a graph) are checked by a TensorFlow assertion
    that fails the step.

    Args:
        multiple: The number height and width must be multiples of.
        channels: The channel count the model was built for; `None` skips
            the channel check.
        **kwargs: Standard `keras.layers.Layer` arguments.

    Example:

    >>> import numpy as np
    >>> layer = InputCheck(multiple=16, channels=3)
    >>> layer(np.zeros((1, 32, 48, 3), "float32")).shape
    TensorShape([1, 32, 48, 3])
    """

    def __init__(self, multiple, channels=None, **kwargs):
        super().__init__(**kwargs)
        check_positive(multiple=multiple)
        if channels is not None and not is_positive_int(channels):
            raise ValueError(
                f"channels must be None or a positive integer; received channels={channels!r}."
            )
        self.multiple = multiple
        self.channels = channels

    def _check_static(self, shape):
        shape = tuple(shape)
        if len(shape) != 4:
            raise ValueError(
                "Wave-ViT expects images (batch, height, width, channels); "
                f"received input of rank {len(shape)} with shape {shape}."
            )
        if self.channels is not None and shape[-1] not in (None, self.channels):
            raise ValueError(
                f"This Wave-ViT was built for images with {self.channels} channels; "
                f"received input shape {shape} ({shape[-1]} channels)."
            )
        check_size_multiple(shape[1:3], self.multiple, f"input shape {shape}")

    def build(self, input_shape):
        self._check_static(input_shape)
        self.built = True

    def call(self, inputs):
        self._check_static(inputs.shape)
        if None in inputs.shape[1:3] and keras.backend.backend() == "tensorflow":
            import tensorflow as tf

            size = tf.shape(inputs)[1:3]
            tf.debugging.assert_equal(
                size % self.multiple,
                tf.zeros_like(size),
                message=(
                    f"Input height and width must be multiples of {self.multiple} "
                    "for this Wave-ViT configuration"
                ),
            )
        return inputs

    def compute_output_shape(self, input_shape):
        return tuple(input_shape)

    def get_config(self):
        config = super().get_config()
        config.update({"multiple": self.multiple, "channels": self.channels})
        return config
