"""Wave-ViT building blocks: stem, downsampling, FFN and transformer block.

Feature maps are NHWC; sublayer names mirror the official PyTorch modules
(`patch_embed1.conv.0` -> `Stem.conv0`, `block1.0.mlp.fc1` -> `MixFFN.fc1`,
...), so the official-weight converter maps them with a readable table.
"""

import keras
from keras import ops

from keras_wavevit.layers.attention import Attention, WaveAttention
from keras_wavevit.layers.checks import (
    check_choice,
    check_feature_map,
    check_positive,
    check_rate,
    check_sr_ratio,
)
from keras_wavevit.layers.defaults import (
    BATCH_NORM_EPSILON,
    BATCH_NORM_MOMENTUM,
    LAYER_NORM_EPSILON,
    TORCH_LAYER_NORM_EPSILON,
    conv_initializer,
    dense_initializer,
)
from keras_wavevit.layers.dense import Dense
from keras_wavevit.layers.fusion import exact_gelu
from keras_wavevit.layers.normalization import BatchNormalization, LayerNormalization

STEM_STRIDES = (2, 4)
ATTENTION_TYPES = ("wave", "standard")


def check_stem_strides(stride, first_stride, prefix=""):
    """Raises ValueError unless the stem's total and first-conv strides fit.

    Args:
        stride: Total downsampling of the stem, one of `STEM_STRIDES`.
        first_stride: Stride of the stem's first conv: `None` (official,
            `stride // 2`) or a value leaving the projection a stride of 1
            or 2 (1 or 2 with `stride=2`, 2 with `stride=4`).
        prefix: Prepended to the argument names in the message
            (`"stem_"` for a `WaveViTConfig`).

    Example:

    >>> check_stem_strides(4, 1)
    Traceback (most recent call last):
    ...
    ValueError: first_stride must be None or one of (2,) with stride=4; received first_stride=1.
    """
    check_choice(f"{prefix}stride", stride, STEM_STRIDES)
    if first_stride is None:
        return
    allowed = tuple(value for value in (1, 2) if stride // value in (1, 2))
    if isinstance(first_stride, (bool, float)) or first_stride not in allowed:
        raise ValueError(
            f"{prefix}first_stride must be None or one of {allowed} with "
            f"{prefix}stride={stride}; received {prefix}first_stride={first_stride!r}."
        )


def _downsampled(size, stride):
    return None if size is None else size // stride


@keras.saving.register_keras_serializable(package="keras_wavevit")
class Stem(keras.layers.Layer):
    """Convolutional stem: three conv-BN-ReLU layers, then a strided projection.

    With `stride=4` (official) the first 7x7 conv has stride 2 and the
    projection stride 2; `stride=2` keeps the first conv at stride 1, for
    small images such as CIFAR's 32x32. `first_stride=2` with `stride=2`
    moves the downsampling from the projection to the first conv, so the
    two 3x3 convs run on the half-size map: the same weights, a quarter of
    their work (at 32x32 the training step is about 1.3x faster).

    Args:
        hidden_dim: Channels of the three stem convolutions.
        dim: Output channels (the first stage's embedding width).
        stride: Total downsampling, 4 or 2.
        first_stride: Stride of the first (7x7) conv, 1 or 2; the projection
            takes the rest of `stride`. `None` = official: `stride // 2`.
        **kwargs: Standard `keras.layers.Layer` arguments.

    Example:

    >>> import numpy as np
    >>> stem = Stem(hidden_dim=8, dim=16)
    >>> stem(np.zeros((1, 64, 32, 3), "float32")).shape
    TensorShape([1, 16, 8, 16])
    >>> Stem(hidden_dim=8, dim=16, stride=2, first_stride=2)(
    ...     np.zeros((1, 32, 32, 3), "float32")).shape
    TensorShape([1, 16, 16, 16])
    """

    def __init__(self, hidden_dim, dim, stride=4, first_stride=None, **kwargs):
        super().__init__(**kwargs)
        check_positive(hidden_dim=hidden_dim, dim=dim)
        check_stem_strides(stride, first_stride)
        self.hidden_dim = hidden_dim
        self.dim = dim
        self.stride = stride
        self.first_stride = first_stride
        first_stride = stride // 2 if first_stride is None else first_stride
        policy = self.dtype_policy
        conv = dict(dtype=policy, kernel_initializer=conv_initializer())
        batch_norm = dict(
            dtype=policy, epsilon=BATCH_NORM_EPSILON, momentum=BATCH_NORM_MOMENTUM
        )
        self.conv_layers = []
        for index, (kernel, conv_stride) in enumerate(((7, first_stride), (3, 1), (3, 1))):
            self.conv_layers += [
                keras.layers.ZeroPadding2D(kernel // 2, dtype=policy, name=f"pad{index}"),
                keras.layers.Conv2D(
                    hidden_dim,
                    kernel,
                    strides=conv_stride,
                    use_bias=False,
                    name=f"conv{index}",
                    **conv,
                ),
                BatchNormalization(name=f"bn{index}", **batch_norm),
                keras.layers.ReLU(dtype=policy, name=f"relu{index}"),
            ]
        self.proj_pad = keras.layers.ZeroPadding2D(1, dtype=policy, name="proj_pad")
        self.proj = keras.layers.Conv2D(
            dim, 3, strides=stride // first_stride, name="proj", **conv
        )
        self.norm = LayerNormalization(
            epsilon=TORCH_LAYER_NORM_EPSILON, dtype=policy, name="norm"
        )

    def build(self, input_shape):
        check_feature_map(input_shape, "Stem")
        shape = tuple(input_shape)
        for layer in self.conv_layers:
            layer.build(shape)
            shape = layer.compute_output_shape(shape)
        self.proj.build(self.proj_pad.compute_output_shape(shape))
        self.norm.build(self.compute_output_shape(input_shape))
        self.built = True

    def call(self, inputs):
        x = inputs
        for layer in self.conv_layers:
            x = layer(x)
        return self.norm(self.proj(self.proj_pad(x)))

    def compute_output_shape(self, input_shape):
        batch, height, width, _ = input_shape
        return (
            batch,
            _downsampled(height, self.stride),
            _downsampled(width, self.stride),
            self.dim,
        )

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "hidden_dim": self.hidden_dim,
                "dim": self.dim,
                "stride": self.stride,
                "first_stride": self.first_stride,
            }
        )
        return config


@keras.saving.register_keras_serializable(package="keras_wavevit")
class DownSample(keras.layers.Layer):
    """Stage transition: 3x3 stride-2 conv (symmetric padding 1), LayerNorm.

    Args:
        dim: Output channels.
        **kwargs: Standard `keras.layers.Layer` arguments.

    Example:

    >>> import numpy as np
    >>> layer = DownSample(dim=32)
    >>> layer(np.zeros((1, 8, 6, 16), "float32")).shape
    TensorShape([1, 4, 3, 32])
    """

    def __init__(self, dim, **kwargs):
        super().__init__(**kwargs)
        check_positive(dim=dim)
        self.dim = dim
        policy = self.dtype_policy
        self.pad = keras.layers.ZeroPadding2D(1, dtype=policy, name="pad")
        self.proj = keras.layers.Conv2D(
            dim, 3, strides=2, dtype=policy, kernel_initializer=conv_initializer(),
            name="proj",
        )
        self.norm = LayerNormalization(
            epsilon=TORCH_LAYER_NORM_EPSILON, dtype=policy, name="norm"
        )

    def build(self, input_shape):
        check_feature_map(input_shape, "DownSample")
        self.proj.build(self.pad.compute_output_shape(input_shape))
        self.norm.build(self.compute_output_shape(input_shape))
        self.built = True

    def call(self, inputs):
        return self.norm(self.proj(self.pad(inputs)))

    def compute_output_shape(self, input_shape):
        batch, height, width, _ = input_shape
        return (batch, _downsampled(height, 2), _downsampled(width, 2), self.dim)

    def get_config(self):
        config = super().get_config()
        config["dim"] = self.dim
        return config


@keras.saving.register_keras_serializable(package="keras_wavevit")
class DepthwiseConvGELU(keras.layers.DepthwiseConv2D):
    """`keras.layers.DepthwiseConv2D` followed by exact GELU, bias fused in.

    The same arguments, weights (`kernel`, `bias`) and config as the Keras
    layer, whose `activation` must stay `None`: the layer's activation is
    always the exact GELU, and the bias add runs inside the fused GELU (one
    pass less over the FFN's wide hidden map).

    Example:

    >>> import numpy as np
    >>> layer = DepthwiseConvGELU(3, padding="same")
    >>> layer(np.zeros((1, 4, 4, 8), "float32")).shape
    TensorShape([1, 4, 4, 8])
    """

    def __init__(self, kernel_size, **kwargs):
        super().__init__(kernel_size, **kwargs)
        if self.activation is not keras.activations.linear:
            raise ValueError(
                "DepthwiseConvGELU always applies the exact GELU; received "
                f"activation={kwargs.get('activation')!r} (leave it None)."
            )

    def call(self, inputs):
        kernel = ops.cast(self.kernel, inputs.dtype)
        padding = self.padding
        if self._pads_explicitly(inputs.shape):
            inputs = ops.pad(inputs, self._same_padding())
            padding = "valid"
        outputs = ops.depthwise_conv(
            inputs,
            kernel,
            strides=self.strides,
            padding=padding,
            data_format=self.data_format,
            dilation_rate=self.dilation_rate,
        )
        return exact_gelu(outputs, self.bias if self.use_bias else None)

    def _pads_explicitly(self, input_shape):
        """Whether to zero-pad first and run a "valid" conv (same result).

        TensorFlow's CPU depthwise kernels are 4-15x slower for a "same"
        conv on a map with a side shorter than the kernel (stage 4 of a
        32x32 model: 2x2 or 1x1) than for the padded map with "valid"
        padding; on larger maps "same" is faster. Only stride-1, undilated,
        channels-last "same" convs with static spatial sizes qualify.
        """
        if (
            self.padding != "same"
            or self.data_format != "channels_last"
            or tuple(self.strides) != (1, 1)
            or tuple(self.dilation_rate) != (1, 1)
        ):
            return False
        sides = tuple(input_shape[1:3])
        return None not in sides and any(
            side < kernel for side, kernel in zip(sides, self.kernel_size)
        )

    def _same_padding(self):
        return [[0, 0]] + [
            [(kernel - 1) // 2, kernel // 2] for kernel in self.kernel_size
        ] + [[0, 0]]


@keras.saving.register_keras_serializable(package="keras_wavevit")
class MixFFN(keras.layers.Layer):
    """PVT-v2 feed-forward: Dense, 3x3 depthwise conv, exact GELU, Dense.

    Args:
        dim: Input and output channels.
        hidden_dim: Channels of the hidden layer.
        **kwargs: Standard `keras.layers.Layer` arguments.

    Example:

    >>> import numpy as np
    >>> ffn = MixFFN(dim=16, hidden_dim=64)
    >>> ffn(np.zeros((2, 8, 4, 16), "float32")).shape
    TensorShape([2, 8, 4, 16])

    Reference:
        Wang et al., "PVT v2: Improved Baselines with Pyramid Vision
        Transformer", CVMJ 2022.
    """

    def __init__(self, dim, hidden_dim, **kwargs):
        super().__init__(**kwargs)
        check_positive(dim=dim, hidden_dim=hidden_dim)
        self.dim = dim
        self.hidden_dim = hidden_dim
        policy = self.dtype_policy
        self.fc1 = Dense(
            hidden_dim, dtype=policy, kernel_initializer=dense_initializer(), name="fc1"
        )
        self.dwconv = DepthwiseConvGELU(
            3,
            padding="same",
            dtype=policy,
            depthwise_initializer=conv_initializer(),
            name="dwconv",
        )
        self.fc2 = Dense(
            dim, dtype=policy, kernel_initializer=dense_initializer(), name="fc2"
        )

    def build(self, input_shape):
        check_feature_map(input_shape, "MixFFN", self.dim)
        hidden_shape = tuple(input_shape[:-1]) + (self.hidden_dim,)
        self.fc1.build(input_shape)
        self.dwconv.build(hidden_shape)
        self.fc2.build(hidden_shape)
        self.built = True

    def call(self, inputs):
        return self.fc2(self.dwconv(self.fc1(inputs)))

    def compute_output_shape(self, input_shape):
        return tuple(input_shape)

    def get_config(self):
        config = super().get_config()
        config.update({"dim": self.dim, "hidden_dim": self.hidden_dim})
        return config


@keras.saving.register_keras_serializable(package="keras_wavevit")
class Block(keras.layers.Layer):
    """Pre-norm transformer block: attention then `MixFFN`, both residual.

    Stochastic depth is Keras' `Dropout` with noise shape `(batch, 1, 1, 1)`:
    it drops a sample's whole residual branch and rescales the kept ones by
    `1 / (1 - drop_path_rate)`, exactly timm's `DropPath`.

    Args:
        dim: Channels.
        num_heads: Attention heads.
        mlp_ratio: Hidden width of the FFN as a multiple of `dim`.
        sr_ratio: Key/value embedding stride of `WaveAttention`.
        attention_type: `"wave"` (`WaveAttention`) or `"standard"`
            (`Attention`).
        drop_path_rate: Probability of dropping each residual branch.
        **kwargs: Standard `keras.layers.Layer` arguments.

    Example:

    >>> import numpy as np
    >>> block = Block(dim=32, num_heads=2, mlp_ratio=4, sr_ratio=2)
    >>> block(np.zeros((2, 8, 8, 32), "float32")).shape
    TensorShape([2, 8, 8, 32])
    """

    def __init__(
        self,
        dim,
        num_heads,
        mlp_ratio,
        sr_ratio=1,
        attention_type="wave",
        drop_path_rate=0.0,
        **kwargs,
    ):
        super().__init__(**kwargs)
        check_choice("attention_type", attention_type, ATTENTION_TYPES)
        check_rate("drop_path_rate", drop_path_rate)
        check_positive(mlp_ratio=mlp_ratio)
        check_sr_ratio(sr_ratio)
        self.dim = dim
        self.num_heads = num_heads
        self.mlp_ratio = mlp_ratio
        self.sr_ratio = sr_ratio
        self.attention_type = attention_type
        self.drop_path_rate = drop_path_rate
        policy = self.dtype_policy
        norm = dict(epsilon=LAYER_NORM_EPSILON, dtype=policy)
        self.norm1 = LayerNormalization(name="norm1", **norm)
        if attention_type == "wave":
            self.attn = WaveAttention(dim, num_heads, sr_ratio, dtype=policy, name="attn")
        else:
            self.attn = Attention(dim, num_heads, dtype=policy, name="attn")
        self.norm2 = LayerNormalization(name="norm2", **norm)
        self.mlp = MixFFN(dim, int(dim * mlp_ratio), dtype=policy, name="mlp")
        self.drop_path = keras.layers.Dropout(
            drop_path_rate, noise_shape=(None, 1, 1, 1), dtype=policy, name="drop_path"
        )

    def build(self, input_shape):
        check_feature_map(input_shape, "Block", self.dim)
        for layer in (self.norm1, self.attn, self.norm2, self.mlp):
            layer.build(input_shape)
        self.built = True

    def call(self, inputs):
        x = inputs + self.drop_path(self.attn(self.norm1(inputs)))
        return x + self.drop_path(self.mlp(self.norm2(x)))

    def compute_output_shape(self, input_shape):
        return tuple(input_shape)

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "dim": self.dim,
                "num_heads": self.num_heads,
                "mlp_ratio": self.mlp_ratio,
                "sr_ratio": self.sr_ratio,
                "attention_type": self.attention_type,
                "drop_path_rate": self.drop_path_rate,
            }
        )
        return config
