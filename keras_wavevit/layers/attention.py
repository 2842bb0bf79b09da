"""Attention layers of Wave-ViT: wavelet, standard and class attention.

Tokens enter and leave `WaveAttention` and `Attention` as NHWC feature maps
`(batch, height, width, channels)`; they are reshaped to sequences only
inside, so every size (square or not, known or not at build time) works.
Sublayer names mirror the official PyTorch module names.
"""

import numbers

import keras
from keras import ops

from keras_wavevit.layers.fusion import LayerNormalization
from keras_wavevit.layers.wavelets import DWT2D, IDWT2D

# Epsilons of the official model (PyTorch defaults unless the model sets them).
TORCH_LAYER_NORM_EPSILON = 1e-5
BATCH_NORM_EPSILON = 1e-5
# PyTorch BatchNorm momentum 0.1 is Keras momentum 0.9.
BATCH_NORM_MOMENTUM = 0.9


def dense_initializer():
    """Linear init of the official model: N(0, 0.02)."""
    return keras.initializers.RandomNormal(stddev=0.02)


def conv_initializer():
    """Conv init of the official model: N(0, sqrt(2 / fan_out))."""
    return keras.initializers.VarianceScaling(
        2.0, mode="fan_out", distribution="untruncated_normal"
    )


def is_positive_int(value):
    """Whether `value` is an integer >= 1 (Python or NumPy; not a bool).

    Args:
        value: Anything.

    Returns:
        A bool.

    Example:

    >>> is_positive_int(3), is_positive_int(0), is_positive_int(2.0), is_positive_int(True)
    (True, False, False, False)
    """
    integer = isinstance(value, numbers.Integral) and not isinstance(value, bool)
    return integer and value >= 1


def validate_heads(dim, num_heads):
    """Raises ValueError unless `dim` splits evenly into `num_heads` heads."""
    if not is_positive_int(dim):
        raise ValueError(f"dim must be a positive integer; received dim={dim!r}.")
    if not is_positive_int(num_heads):
        raise ValueError(f"num_heads must be >= 1; received num_heads={num_heads}.")
    if dim % num_heads:
        raise ValueError(
            f"dim must be divisible by num_heads; received dim={dim}, "
            f"num_heads={num_heads}."
        )


def split_heads(x, num_heads):
    """(batch, tokens, channels) -> (batch, heads, tokens, head_dim)."""
    batch = ops.shape(x)[0]
    x = ops.reshape(x, (batch, -1, num_heads, x.shape[-1] // num_heads))
    return ops.transpose(x, (0, 2, 1, 3))


def merge_heads(x):
    """(batch, heads, tokens, head_dim) -> (batch, tokens, channels)."""
    batch = ops.shape(x)[0]
    x = ops.transpose(x, (0, 2, 1, 3))
    return ops.reshape(x, (batch, -1, x.shape[2] * x.shape[3]))


def scaled_dot_product_attention(query, key, value):
    """Softmax attention over `(batch, heads, tokens, head_dim)` tensors.

    The scores are scaled by `head_dim ** -0.5` and the softmax runs in
    float32 whatever the compute dtype, as the official model does under
    mixed precision.
    """
    scale = ops.cast(query.shape[-1] ** -0.5, query.dtype)
    scores = ops.matmul(query, ops.transpose(key, (0, 1, 3, 2))) * scale
    weights = ops.softmax(ops.cast(scores, "float32"), axis=-1)
    return ops.matmul(ops.cast(weights, value.dtype), value)


def _flatten_map(x):
    """(batch, height, width, channels) -> (batch, height * width, channels)."""
    return ops.reshape(x, (ops.shape(x)[0], -1, x.shape[-1]))


def _check_map_input(input_shape, dim, name):
    if len(input_shape) != 4 or input_shape[-1] != dim:
        raise ValueError(
            f"{name} expects a feature map (batch, height, width, {dim}); "
            f"received shape {tuple(input_shape)}."
        )


class _KeyValueAttentionBase(keras.layers.Layer):
    """Shared constructor arguments and config of the attention layers."""

    def __init__(self, dim, num_heads, **kwargs):
        super().__init__(**kwargs)
        validate_heads(dim, num_heads)
        self.dim = dim
        self.num_heads = num_heads

    def get_config(self):
        config = super().get_config()
        config.update({"dim": self.dim, "num_heads": self.num_heads})
        return config


@keras.saving.register_keras_serializable(package="keras_wavevit")
class Attention(_KeyValueAttentionBase):
    """Multi-head self-attention over a feature map (stages 3 and 4).

    Args:
        dim: Channels of the input and output.
        num_heads: Number of heads; must divide `dim`.
        **kwargs: Standard `keras.layers.Layer` arguments.

    Example:

    >>> import numpy as np
    >>> layer = Attention(dim=64, num_heads=4)
    >>> layer(np.zeros((2, 7, 5, 64), "float32")).shape
    TensorShape([2, 7, 5, 64])

    Reference:
        Yao et al., "Wave-ViT: Unifying Wavelet and Transformers for Visual
        Representation Learning", ECCV 2022.
    """

    def __init__(self, dim, num_heads, **kwargs):
        super().__init__(dim, num_heads, **kwargs)
        dense = dict(dtype=self.dtype_policy, kernel_initializer=dense_initializer())
        self.q = keras.layers.Dense(dim, name="q", **dense)
        self.kv = keras.layers.Dense(2 * dim, name="kv", **dense)
        self.proj = keras.layers.Dense(dim, name="proj", **dense)

    def build(self, input_shape):
        _check_map_input(input_shape, self.dim, self.__class__.__name__)
        self.q.build(input_shape)
        self.kv.build(input_shape)
        self.proj.build(input_shape)
        self.built = True

    def call(self, inputs):
        tokens = _flatten_map(inputs)
        query = split_heads(self.q(tokens), self.num_heads)
        key, value = ops.split(self.kv(tokens), 2, axis=-1)
        attended = scaled_dot_product_attention(
            query,
            split_heads(key, self.num_heads),
            split_heads(value, self.num_heads),
        )
        output = self.proj(merge_heads(attended))
        return ops.reshape(output, ops.shape(inputs))

    def compute_output_shape(self, input_shape):
        return tuple(input_shape)


@keras.saving.register_keras_serializable(package="keras_wavevit")
class WaveAttention(_KeyValueAttentionBase):
    """Wavelet self-attention: keys/values downsampled losslessly by a DWT.

    Following the official code: the input map is reduced to `dim // 4`
    channels (1x1 conv, BatchNorm, ReLU), transformed by `DWT2D` (back to
    `dim` channels at half resolution), filtered (3x3 conv, BatchNorm, ReLU),
    then (a) embedded by a `sr_ratio` x `sr_ratio` strided conv, normalised
    and projected to keys and values, and (b) reconstructed by `IDWT2D` to a
    full-resolution `dim // 4` map that is concatenated with the attention
    output before the output projection.

    Args:
        dim: Channels of the input and output; must be divisible by 4 and by
            `num_heads`.
        num_heads: Number of heads.
        sr_ratio: Kernel size and stride of the key/value embedding conv
            after the DWT (`1` = no further downsampling).
        **kwargs: Standard `keras.layers.Layer` arguments.

    Example:

    >>> import numpy as np
    >>> layer = WaveAttention(dim=32, num_heads=2, sr_ratio=2)
    >>> layer(np.zeros((2, 8, 12, 32), "float32")).shape
    TensorShape([2, 8, 12, 32])

    Reference:
        Yao et al., "Wave-ViT: Unifying Wavelet and Transformers for Visual
        Representation Learning", ECCV 2022.
    """

    def __init__(self, dim, num_heads, sr_ratio, **kwargs):
        super().__init__(dim, num_heads, **kwargs)
        if dim % 4:
            raise ValueError(
                f"dim must be divisible by 4 for the wavelet branch "
                f"(dim // 4 channels); received dim={dim}."
            )
        if not is_positive_int(sr_ratio):
            raise ValueError(
                f"sr_ratio must be an integer >= 1; received sr_ratio={sr_ratio!r}."
            )
        self.sr_ratio = sr_ratio
        policy = self.dtype_policy
        dense = dict(dtype=policy, kernel_initializer=dense_initializer())
        conv = dict(dtype=policy, kernel_initializer=conv_initializer())
        batch_norm = dict(
            dtype=policy, epsilon=BATCH_NORM_EPSILON, momentum=BATCH_NORM_MOMENTUM
        )
        self.q = keras.layers.Dense(dim, name="q", **dense)
        self.reduce_conv = keras.layers.Conv2D(dim // 4, 1, name="reduce_conv", **conv)
        self.reduce_bn = keras.layers.BatchNormalization(name="reduce_bn", **batch_norm)
        self.dwt = DWT2D(dtype=policy, name="dwt")
        self.filter_pad = keras.layers.ZeroPadding2D(1, dtype=policy, name="filter_pad")
        self.filter_conv = keras.layers.Conv2D(dim, 3, name="filter_conv", **conv)
        self.filter_bn = keras.layers.BatchNormalization(name="filter_bn", **batch_norm)
        self.idwt = IDWT2D(dtype=policy, name="idwt")
        self.kv_embed = (
            keras.layers.Conv2D(
                dim, sr_ratio, strides=sr_ratio, name="kv_embed", **conv
            )
            if sr_ratio > 1
            else None
        )
        self.kv_norm = LayerNormalization(
            epsilon=TORCH_LAYER_NORM_EPSILON, dtype=policy, name="kv_norm"
        )
        self.kv = keras.layers.Dense(2 * dim, name="kv", **dense)
        self.proj = keras.layers.Dense(dim, name="proj", **dense)

    def build(self, input_shape):
        _check_map_input(input_shape, self.dim, self.__class__.__name__)
        batch, height, width, dim = input_shape
        half = lambda size: None if size is None else size // 2  # noqa: E731
        reduced_shape = (batch, height, width, dim // 4)
        subband_shape = (batch, half(height), half(width), dim)
        self.q.build(input_shape)
        self.reduce_conv.build(input_shape)
        self.reduce_bn.build(reduced_shape)
        self.dwt.build(reduced_shape)
        self.filter_conv.build(self.filter_pad.compute_output_shape(subband_shape))
        self.filter_bn.build(subband_shape)
        self.idwt.build(subband_shape)
        if self.kv_embed is not None:
            self.kv_embed.build(subband_shape)
        self.kv_norm.build(subband_shape)
        self.kv.build(subband_shape)
        self.proj.build((batch, height, width, dim + dim // 4))
        self.built = True

    def call(self, inputs):
        query = split_heads(self.q(_flatten_map(inputs)), self.num_heads)

        reduced = ops.relu(self.reduce_bn(self.reduce_conv(inputs)))
        subbands = self.dwt(reduced)
        subbands = self.filter_conv(self.filter_pad(subbands))
        subbands = ops.relu(self.filter_bn(subbands))
        reconstructed = self.idwt(subbands)

        key_value_map = subbands if self.kv_embed is None else self.kv_embed(subbands)
        key_value = self.kv(self.kv_norm(_flatten_map(key_value_map)))
        key, value = ops.split(key_value, 2, axis=-1)
        attended = scaled_dot_product_attention(
            query,
            split_heads(key, self.num_heads),
            split_heads(value, self.num_heads),
        )
        attended = ops.reshape(merge_heads(attended), ops.shape(inputs))
        return self.proj(ops.concatenate([attended, reconstructed], axis=-1))

    def compute_output_shape(self, input_shape):
        return tuple(input_shape)

    def get_config(self):
        config = super().get_config()
        config["sr_ratio"] = self.sr_ratio
        return config


@keras.saving.register_keras_serializable(package="keras_wavevit")
class ClassAttention(_KeyValueAttentionBase):
    """Class attention: the class token (first) attends to all tokens.

    Args:
        dim: Channels of the tokens.
        num_heads: Number of heads; must divide `dim`.
        **kwargs: Standard `keras.layers.Layer` arguments.

    Returns (when called):
        The updated class embedding, shape `(batch, 1, dim)`.

    Example:

    >>> import numpy as np
    >>> layer = ClassAttention(dim=64, num_heads=4)
    >>> layer(np.zeros((2, 10, 64), "float32")).shape
    TensorShape([2, 1, 64])

    Reference:
        Touvron et al., "Going deeper with Image Transformers" (CaiT), ICCV
        2021; used as the Wave-ViT head.
    """

    def __init__(self, dim, num_heads, **kwargs):
        super().__init__(dim, num_heads, **kwargs)
        dense = dict(dtype=self.dtype_policy, kernel_initializer=dense_initializer())
        self.kv = keras.layers.Dense(2 * dim, name="kv", **dense)
        self.q = keras.layers.Dense(dim, name="q", **dense)
        self.proj = keras.layers.Dense(dim, name="proj", **dense)

    def build(self, input_shape):
        if len(input_shape) != 3 or input_shape[-1] != self.dim:
            raise ValueError(
                f"ClassAttention expects tokens (batch, 1 + tokens, {self.dim}) "
                f"with the class token first; received shape {tuple(input_shape)}."
            )
        self.kv.build(input_shape)
        self.q.build(input_shape)
        self.proj.build(input_shape)
        self.built = True

    def call(self, inputs):
        key, value = ops.split(self.kv(inputs), 2, axis=-1)
        query = split_heads(self.q(inputs[:, :1]), self.num_heads)
        attended = scaled_dot_product_attention(
            query,
            split_heads(key, self.num_heads),
            split_heads(value, self.num_heads),
        )
        return self.proj(merge_heads(attended))

    def compute_output_shape(self, input_shape):
        return (input_shape[0], 1, self.dim)
