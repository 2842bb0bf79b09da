"""Attention layers of Wave-ViT: wavelet, standard and class attention.

All three share one core: queries from `q`, keys and values from `kv`,
split into heads, scaled dot-product attention (softmax in float32), heads
merged, then `proj`. They differ only in where queries and keys/values come
from. Tokens enter and leave `WaveAttention` and `Attention` as NHWC feature
maps `(batch, height, width, channels)`; they are reshaped to sequences only
inside, so every size (square or not, known or not at build time) works.
Sublayer names mirror the official PyTorch module names.
"""

import keras
from keras import ops

from keras_wavevit.layers.checks import (
    check_feature_map,
    check_heads,
    check_sr_ratio,
    check_tokens,
)
from keras_wavevit.layers.defaults import (
    BATCH_NORM_EPSILON,
    BATCH_NORM_MOMENTUM,
    TORCH_LAYER_NORM_EPSILON,
    conv_initializer,
    dense_initializer,
)
from keras_wavevit.layers.dense import Dense
from keras_wavevit.layers.normalization import BatchNormalization, LayerNormalization
from keras_wavevit.layers.wavelets import DWT2D, IDWT2D


def _split_heads(x, num_heads):
    """(batch, tokens, channels) -> (batch, heads, tokens, head_dim)."""
    batch = ops.shape(x)[0]
    x = ops.reshape(x, (batch, -1, num_heads, x.shape[-1] // num_heads))
    return ops.transpose(x, (0, 2, 1, 3))


def _merge_heads(x):
    """(batch, heads, tokens, head_dim) -> (batch, tokens, channels)."""
    batch = ops.shape(x)[0]
    x = ops.transpose(x, (0, 2, 1, 3))
    return ops.reshape(x, (batch, -1, x.shape[2] * x.shape[3]))


def scaled_dot_product_attention(query, key, value):
    """Softmax attention over `(batch, heads, tokens, head_dim)` tensors.

    The scores are scaled by `head_dim ** -0.5` and the softmax runs in
    float32 whatever the compute dtype, as the official model does under
    mixed precision. The scale multiplies the queries rather than the
    scores (the same product; one pass over `(queries, head_dim)` instead of
    `(queries, tokens)`).

    Args:
        query: `(batch, heads, queries, head_dim)`.
        key: `(batch, heads, tokens, head_dim)`.
        value: `(batch, heads, tokens, head_dim)`.

    Returns:
        `(batch, heads, queries, head_dim)` in `value`'s dtype.

    Example:

    >>> import numpy as np
    >>> ones = np.ones((1, 1, 3, 2), "float32")
    >>> np.asarray(scaled_dot_product_attention(ones, ones, ones)).tolist()
    [[[[1.0, 1.0], [1.0, 1.0], [1.0, 1.0]]]]
    """
    scale = ops.cast(query.shape[-1] ** -0.5, query.dtype)
    scores = ops.matmul(query * scale, ops.transpose(key, (0, 1, 3, 2)))
    weights = ops.softmax(ops.cast(scores, "float32"), axis=-1)
    return ops.matmul(ops.cast(weights, value.dtype), value)


def multi_head_attention(query, key_value, num_heads):
    """Multi-head attention of projected tokens: split, attend, merge.

    Args:
        query: `(batch, queries, channels)`, the `q` projection.
        key_value: `(batch, tokens, 2 * channels)`, the `kv` projection
            (keys first, then values, as the official `kv` Linear).
        num_heads: Number of heads; must divide `channels`.

    Returns:
        `(batch, queries, channels)`.

    Example:

    >>> import numpy as np
    >>> query = np.zeros((2, 1, 8), "float32")
    >>> key_value = np.zeros((2, 5, 16), "float32")
    >>> multi_head_attention(query, key_value, num_heads=2).shape
    TensorShape([2, 1, 8])
    """
    key, value = ops.split(key_value, 2, axis=-1)
    heads = [_split_heads(tensor, num_heads) for tensor in (query, key, value)]
    return _merge_heads(scaled_dot_product_attention(*heads))


def _flatten_map(x):
    return ops.reshape(x, (ops.shape(x)[0], -1, x.shape[-1]))


class _QueryKeyValueAttention(keras.layers.Layer):
    """The `q`, `kv` and `proj` projections, the core call and the config."""

    def __init__(self, dim, num_heads, **kwargs):
        super().__init__(**kwargs)
        check_heads(dim, num_heads)
        self.dim = dim
        self.num_heads = num_heads
        dense = dict(dtype=self.dtype_policy, kernel_initializer=dense_initializer())
        self.q = Dense(dim, name="q", **dense)
        self.kv = Dense(2 * dim, name="kv", **dense)
        self.proj = Dense(dim, name="proj", **dense)

    def _build_projections(self, input_shape, proj_channels):
        self.q.build(input_shape)
        self.kv.build(input_shape)
        self.proj.build(tuple(input_shape[:-1]) + (proj_channels,))

    def _attend(self, query_tokens, key_value_tokens):
        return multi_head_attention(
            self.q(query_tokens), self.kv(key_value_tokens), self.num_heads
        )

    def get_config(self):
        config = super().get_config()
        config.update({"dim": self.dim, "num_heads": self.num_heads})
        return config


@keras.saving.register_keras_serializable(package="keras_wavevit")
class Attention(_QueryKeyValueAttention):
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

    def build(self, input_shape):
        check_feature_map(input_shape, self.__class__.__name__, self.dim)
        self._build_projections(input_shape, self.dim)
        self.built = True

    def call(self, inputs):
        tokens = _flatten_map(inputs)
        output = self.proj(self._attend(tokens, tokens))
        return ops.reshape(output, ops.shape(inputs))

    def compute_output_shape(self, input_shape):
        return tuple(input_shape)


@keras.saving.register_keras_serializable(package="keras_wavevit")
class WaveAttention(_QueryKeyValueAttention):
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
        # The projections hold no weights until built: checking after the
        # shared constructor still fails before any weight exists.
        super().__init__(dim, num_heads, **kwargs)
        if dim % 4:
            raise ValueError(
                f"dim must be divisible by 4 for the wavelet branch "
                f"(dim // 4 channels); received dim={dim}."
            )
        check_sr_ratio(sr_ratio)
        self.sr_ratio = sr_ratio
        policy = self.dtype_policy
        conv = dict(dtype=policy, kernel_initializer=conv_initializer())
        batch_norm = dict(
            dtype=policy, epsilon=BATCH_NORM_EPSILON, momentum=BATCH_NORM_MOMENTUM
        )
        self.reduce_conv = keras.layers.Conv2D(dim // 4, 1, name="reduce_conv", **conv)
        self.reduce_bn = BatchNormalization(name="reduce_bn", **batch_norm)
        self.dwt = DWT2D(dtype=policy, name="dwt")
        self.filter_pad = keras.layers.ZeroPadding2D(1, dtype=policy, name="filter_pad")
        self.filter_conv = keras.layers.Conv2D(dim, 3, name="filter_conv", **conv)
        self.filter_bn = BatchNormalization(name="filter_bn", **batch_norm)
        self.idwt = IDWT2D(dtype=policy, name="idwt")
        self.kv_embed = (
            keras.layers.Conv2D(dim, sr_ratio, strides=sr_ratio, name="kv_embed", **conv)
            if sr_ratio > 1
            else None
        )
        self.kv_norm = LayerNormalization(
            epsilon=TORCH_LAYER_NORM_EPSILON, dtype=policy, name="kv_norm"
        )

    def build(self, input_shape):
        check_feature_map(input_shape, self.__class__.__name__, self.dim)
        batch, height, width, dim = input_shape
        reduced_shape = (batch, height, width, dim // 4)
        subband_shape = self.dwt.compute_output_shape(reduced_shape)
        self.reduce_conv.build(input_shape)
        self.reduce_bn.build(reduced_shape)
        self.dwt.build(reduced_shape)
        self.filter_conv.build(self.filter_pad.compute_output_shape(subband_shape))
        self.filter_bn.build(subband_shape)
        self.idwt.build(subband_shape)
        if self.kv_embed is not None:
            self.kv_embed.build(subband_shape)
        self.kv_norm.build(subband_shape)
        self._build_projections(input_shape, dim + dim // 4)
        self.built = True

    def _wavelet_branch(self, inputs):
        """Returns the filtered sub-bands and their inverse transform."""
        reduced = ops.relu(self.reduce_bn(self.reduce_conv(inputs)))
        subbands = self.filter_conv(self.filter_pad(self.dwt(reduced)))
        subbands = ops.relu(self.filter_bn(subbands))
        return subbands, self.idwt(subbands)

    def call(self, inputs):
        subbands, reconstructed = self._wavelet_branch(inputs)
        key_value_map = subbands if self.kv_embed is None else self.kv_embed(subbands)
        key_value_tokens = self.kv_norm(_flatten_map(key_value_map))
        attended = self._attend(_flatten_map(inputs), key_value_tokens)
        attended = ops.reshape(attended, ops.shape(inputs))
        return self.proj(ops.concatenate([attended, reconstructed], axis=-1))

    def compute_output_shape(self, input_shape):
        return tuple(input_shape)

    def get_config(self):
        config = super().get_config()
        config["sr_ratio"] = self.sr_ratio
        return config


@keras.saving.register_keras_serializable(package="keras_wavevit")
class ClassAttention(_QueryKeyValueAttention):
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

    def build(self, input_shape):
        check_tokens(input_shape, self.__class__.__name__, self.dim)
        self._build_projections(input_shape, self.dim)
        self.built = True

    def call(self, inputs):
        return self.proj(self._attend(inputs[:, :1], inputs))

    def compute_output_shape(self, input_shape):
        return (input_shape[0], 1, self.dim)
