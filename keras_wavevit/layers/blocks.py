"""Wave-ViT building blocks: stem, downsampling, FFN, blocks and the head.

Feature maps are NHWC; sublayer names mirror the official PyTorch modules
(`patch_embed1.conv.0` -> `Stem.conv0`, `block1.0.mlp.fc1` -> `MixFFN.fc1`,
...), so `convert.py` maps official weights with a readable table.
"""

import numbers

import keras
from keras import ops

from keras_wavevit.layers.attention import (
    BATCH_NORM_EPSILON,
    BATCH_NORM_MOMENTUM,
    TORCH_LAYER_NORM_EPSILON,
    Attention,
    ClassAttention,
    WaveAttention,
    conv_initializer,
    dense_initializer,
    is_positive_int,
)
from keras_wavevit.layers.fusion import LayerNormalization, exact_gelu

# The `norm_layer` of the official model (block norms, stage norms, head).
LAYER_NORM_EPSILON = 1e-6
ATTENTION_TYPES = ("wave", "standard")


def _check_map(input_shape, name, channels=None):
    if len(input_shape) != 4 or (channels is not None and input_shape[-1] != channels):
        expected = "channels" if channels is None else channels
        raise ValueError(
            f"{name} expects a feature map (batch, height, width, {expected}); "
            f"received shape {tuple(input_shape)}."
        )


def check_positive(**values):
    """Raises ValueError unless every keyword value is a positive number.

    Integers are required except for names ending in `_ratio`. The message
    names the argument and the value.

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
            valid = isinstance(value, numbers.Real) and not isinstance(value, bool)
            valid, kind = valid and value > 0, "a positive number"
        else:
            valid, kind = is_positive_int(value), "a positive integer"
        if not valid:
            raise ValueError(f"{name} must be {kind}; received {name}={value!r}.")


def _downsampled(size, stride):
    return None if size is None else size // stride


@keras.saving.register_keras_serializable(package="keras_wavevit")
class Stem(keras.layers.Layer):
    """Convolutional stem: three conv-BN-ReLU layers, then a strided projection.

    With `stride=4` (official) the first 7x7 conv has stride 2 and the
    projection stride 2; `stride=2` keeps the first conv at stride 1, for
    small images such as CIFAR's 32x32.

    Args:
        hidden_dim: Channels of the three stem convolutions.
        dim: Output channels (the first stage's embedding width).
        stride: Total downsampling, 4 or 2.
        **kwargs: Standard `keras.layers.Layer` arguments.

    Example:

    >>> import numpy as np
    >>> stem = Stem(hidden_dim=8, dim=16)
    >>> stem(np.zeros((1, 64, 32, 3), "float32")).shape
    TensorShape([1, 16, 8, 16])
    """

    def __init__(self, hidden_dim, dim, stride=4, **kwargs):
        super().__init__(**kwargs)
        check_positive(hidden_dim=hidden_dim, dim=dim)
        if stride not in (2, 4):
            raise ValueError(f"Stem stride must be 2 or 4; received stride={stride}.")
        self.hidden_dim = hidden_dim
        self.dim = dim
        self.stride = stride
        policy = self.dtype_policy
        conv = dict(dtype=policy, kernel_initializer=conv_initializer())
        batch_norm = dict(
            dtype=policy, epsilon=BATCH_NORM_EPSILON, momentum=BATCH_NORM_MOMENTUM
        )
        self.conv_layers = []
        for index, (kernel, first_stride) in enumerate(((7, stride // 2), (3, 1), (3, 1))):
            self.conv_layers += [
                keras.layers.ZeroPadding2D(kernel // 2, dtype=policy, name=f"pad{index}"),
                keras.layers.Conv2D(
                    hidden_dim,
                    kernel,
                    strides=first_stride,
                    use_bias=False,
                    name=f"conv{index}",
                    **conv,
                ),
                keras.layers.BatchNormalization(name=f"bn{index}", **batch_norm),
                keras.layers.ReLU(dtype=policy, name=f"relu{index}"),
            ]
        self.proj_pad = keras.layers.ZeroPadding2D(1, dtype=policy, name="proj_pad")
        self.proj = keras.layers.Conv2D(dim, 3, strides=2, name="proj", **conv)
        self.norm = LayerNormalization(
            epsilon=TORCH_LAYER_NORM_EPSILON, dtype=policy, name="norm"
        )

    def build(self, input_shape):
        _check_map(input_shape, "Stem")
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
            {"hidden_dim": self.hidden_dim, "dim": self.dim, "stride": self.stride}
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
        _check_map(input_shape, "DownSample")
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
        self.fc1 = keras.layers.Dense(
            hidden_dim, dtype=policy, kernel_initializer=dense_initializer(), name="fc1"
        )
        self.dwconv = keras.layers.DepthwiseConv2D(
            3,
            padding="same",
            dtype=policy,
            depthwise_initializer=conv_initializer(),
            name="dwconv",
        )
        self.fc2 = keras.layers.Dense(
            dim, dtype=policy, kernel_initializer=dense_initializer(), name="fc2"
        )

    def build(self, input_shape):
        _check_map(input_shape, "MixFFN", self.dim)
        hidden_shape = tuple(input_shape[:-1]) + (self.hidden_dim,)
        self.fc1.build(input_shape)
        self.dwconv.build(hidden_shape)
        self.fc2.build(hidden_shape)
        self.built = True

    def call(self, inputs):
        hidden = self.fc1(inputs)
        # `dwconv` without its bias: the bias add is fused into the GELU
        # kernel, saving one pass over the (8x wide) hidden map.
        kernel = ops.cast(self.dwconv.kernel, hidden.dtype)
        hidden = ops.depthwise_conv(hidden, kernel, strides=1, padding="same")
        return self.fc2(exact_gelu(hidden, self.dwconv.bias))

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
        if attention_type not in ATTENTION_TYPES:
            raise ValueError(
                f"attention_type must be one of {ATTENTION_TYPES}; received "
                f"attention_type={attention_type!r}."
            )
        if not 0.0 <= drop_path_rate < 1.0:
            raise ValueError(
                f"drop_path_rate must be in [0, 1); received drop_path_rate={drop_path_rate}."
            )
        check_positive(mlp_ratio=mlp_ratio)
        if not is_positive_int(sr_ratio):
            raise ValueError(
                f"sr_ratio must be an integer >= 1; received sr_ratio={sr_ratio!r}."
            )
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
        _check_map(input_shape, "Block", self.dim)
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


@keras.saving.register_keras_serializable(package="keras_wavevit")
class ClassBlock(keras.layers.Layer):
    """Class-attention block of the head: updates only the class token.

    Input and output are token sequences `(batch, 1 + tokens, dim)` with the
    class token first; the other tokens pass through unchanged. The FFN is a
    plain two-layer MLP with exact GELU.

    Args:
        dim: Channels.
        num_heads: Attention heads.
        mlp_ratio: Hidden width of the MLP as a multiple of `dim`.
        **kwargs: Standard `keras.layers.Layer` arguments.

    Example:

    >>> import numpy as np
    >>> block = ClassBlock(dim=32, num_heads=2, mlp_ratio=4)
    >>> block(np.zeros((2, 17, 32), "float32")).shape
    TensorShape([2, 17, 32])
    """

    def __init__(self, dim, num_heads, mlp_ratio, **kwargs):
        super().__init__(**kwargs)
        check_positive(mlp_ratio=mlp_ratio)
        self.dim = dim
        self.num_heads = num_heads
        self.mlp_ratio = mlp_ratio
        policy = self.dtype_policy
        norm = dict(epsilon=LAYER_NORM_EPSILON, dtype=policy)
        dense = dict(dtype=policy, kernel_initializer=dense_initializer())
        self.norm1 = LayerNormalization(name="norm1", **norm)
        self.attn = ClassAttention(dim, num_heads, dtype=policy, name="attn")
        self.norm2 = LayerNormalization(name="norm2", **norm)
        self.fc1 = keras.layers.Dense(int(dim * mlp_ratio), name="fc1", **dense)
        self.fc2 = keras.layers.Dense(dim, name="fc2", **dense)

    def build(self, input_shape):
        if len(input_shape) != 3 or input_shape[-1] != self.dim:
            raise ValueError(
                f"ClassBlock expects tokens (batch, 1 + tokens, {self.dim}); "
                f"received shape {tuple(input_shape)}."
            )
        for layer in (self.norm1, self.attn, self.norm2, self.fc1):
            layer.build(input_shape)
        self.fc2.build(tuple(input_shape[:-1]) + (int(self.dim * self.mlp_ratio),))
        self.built = True

    def call(self, inputs):
        class_token = inputs[:, :1] + self.attn(self.norm1(inputs))
        class_token = class_token + self.fc2(exact_gelu(self.fc1(self.norm2(class_token))))
        return ops.concatenate([class_token, inputs[:, 1:]], axis=1)

    def compute_output_shape(self, input_shape):
        return tuple(input_shape)

    def get_config(self):
        config = super().get_config()
        config.update(
            {"dim": self.dim, "num_heads": self.num_heads, "mlp_ratio": self.mlp_ratio}
        )
        return config


@keras.saving.register_keras_serializable(package="keras_wavevit")
class MeanClassToken(keras.layers.Layer):
    """Flattens a feature map to tokens and prepends their mean as class token.

    Args:
        **kwargs: Standard `keras.layers.Layer` arguments.

    Example:

    >>> import numpy as np
    >>> layer = MeanClassToken()
    >>> layer(np.ones((2, 3, 4, 8), "float32")).shape
    TensorShape([2, 13, 8])
    """

    def call(self, inputs):
        tokens = ops.reshape(inputs, (ops.shape(inputs)[0], -1, inputs.shape[-1]))
        class_token = ops.mean(tokens, axis=1, keepdims=True)
        return ops.concatenate([class_token, tokens], axis=1)

    def compute_output_shape(self, input_shape):
        batch, height, width, channels = input_shape
        tokens = None if height is None or width is None else height * width + 1
        return (batch, tokens, channels)


@keras.saving.register_keras_serializable(package="keras_wavevit")
class TokenLabelHead(keras.layers.Layer):
    """Classifier on the normalised class token, with optional aux head.

    Without `token_label`: `head(tokens[:, 0])`. With it (the official
    default, how the released checkpoints were trained): adds
    `0.5 * max over tokens of aux_head(tokens[:, 1:])`, the official
    evaluation output.

    Args:
        num_classes: Number of classes.
        token_label: Whether to add the auxiliary token head.
        **kwargs: Standard `keras.layers.Layer` arguments.

    Example:

    >>> import numpy as np
    >>> head = TokenLabelHead(num_classes=10, token_label=True)
    >>> head(np.zeros((2, 17, 32), "float32")).shape
    TensorShape([2, 10])

    Reference:
        Jiang et al., "All Tokens Matter: Token Labeling for Training Better
        Vision Transformers", NeurIPS 2021.
    """

    def __init__(self, num_classes, token_label=False, **kwargs):
        super().__init__(**kwargs)
        if num_classes < 1:
            raise ValueError(f"num_classes must be >= 1; received num_classes={num_classes}.")
        self.num_classes = num_classes
        self.token_label = token_label
        dense = dict(dtype=self.dtype_policy, kernel_initializer=dense_initializer())
        self.head = keras.layers.Dense(num_classes, name="head", **dense)
        self.aux_head = (
            keras.layers.Dense(num_classes, name="aux_head", **dense)
            if token_label
            else None
        )

    def build(self, input_shape):
        self.head.build(input_shape)
        if self.aux_head is not None:
            self.aux_head.build(input_shape)
        self.built = True

    def call(self, inputs):
        logits = self.head(inputs[:, 0])
        if self.aux_head is not None:
            aux_logits = self.aux_head(inputs[:, 1:])
            logits = logits + 0.5 * ops.max(aux_logits, axis=1)
        return logits

    def compute_output_shape(self, input_shape):
        return (input_shape[0], self.num_classes)

    def get_config(self):
        config = super().get_config()
        config.update({"num_classes": self.num_classes, "token_label": self.token_label})
        return config
