"""The class-attention head: class token, class block, classifier, pooling.

The official head turns the stage-4 map into tokens with their mean as a
class token (`MeanClassToken`), updates that token with one class-attention
block (`ClassBlock`, official `post_network.0`), and classifies the
normalised class token (`TokenLabelHead`, with the optional token-labelling
`aux_head`). `ClassTokenPool` takes the class token as an image embedding
for backbones (`pooling="cls"`).
"""

import keras
from keras import ops

from keras_wavevit.layers.attention import ClassAttention
from keras_wavevit.layers.checks import check_feature_map, check_positive, check_tokens
from keras_wavevit.layers.defaults import LAYER_NORM_EPSILON, dense_initializer
from keras_wavevit.layers.dense import Dense
from keras_wavevit.layers.fusion import exact_gelu
from keras_wavevit.layers.normalization import LayerNormalization


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

    def build(self, input_shape):
        check_feature_map(input_shape, "MeanClassToken")
        self.built = True

    def call(self, inputs):
        tokens = ops.reshape(inputs, (ops.shape(inputs)[0], -1, inputs.shape[-1]))
        class_token = ops.mean(tokens, axis=1, keepdims=True)
        return ops.concatenate([class_token, tokens], axis=1)

    def compute_output_shape(self, input_shape):
        batch, height, width, channels = input_shape
        tokens = None if height is None or width is None else height * width + 1
        return (batch, tokens, channels)


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
        self.fc1 = Dense(int(dim * mlp_ratio), name="fc1", **dense)
        self.fc2 = Dense(dim, name="fc2", **dense)

    def build(self, input_shape):
        check_tokens(input_shape, "ClassBlock", self.dim)
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
        check_positive(num_classes=num_classes)
        self.num_classes = num_classes
        self.token_label = token_label
        dense = dict(dtype=self.dtype_policy, kernel_initializer=dense_initializer())
        self.head = Dense(num_classes, name="head", **dense)
        self.aux_head = (
            Dense(num_classes, name="aux_head", **dense)
            if token_label
            else None
        )

    def build(self, input_shape):
        check_tokens(input_shape, "TokenLabelHead")
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


@keras.saving.register_keras_serializable(package="keras_wavevit")
class ClassTokenPool(keras.layers.Layer):
    """Takes the class token (the first) of a token sequence.

    Used by `WaveViT(include_top=False, pooling="cls")`: the class-attention
    head's normalised class token is the image embedding.

    Args:
        **kwargs: Standard `keras.layers.Layer` arguments.

    Example:

    >>> import numpy as np
    >>> layer = ClassTokenPool()
    >>> layer(np.zeros((2, 17, 32), "float32")).shape
    TensorShape([2, 32])
    """

    def build(self, input_shape):
        check_tokens(input_shape, "ClassTokenPool")
        self.built = True

    def call(self, inputs):
        return inputs[:, 0]

    def compute_output_shape(self, input_shape):
        return (input_shape[0], input_shape[-1])
