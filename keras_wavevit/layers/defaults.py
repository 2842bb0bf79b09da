"""Numerics and initialisers of the official Wave-ViT model.

Everything that must match the official PyTorch model to reproduce its
results lives here: the normalisation epsilons, the BatchNorm momentum and
the weight initialisers.
"""

import keras

# The `norm_layer` of the official model (block norms, stage norms, head).
LAYER_NORM_EPSILON = 1e-6
# PyTorch's default, used by the stem, downsampling and key/value norms.
TORCH_LAYER_NORM_EPSILON = 1e-5
BATCH_NORM_EPSILON = 1e-5
# PyTorch BatchNorm momentum 0.1 is Keras momentum 0.9.
BATCH_NORM_MOMENTUM = 0.9


def dense_initializer():
    """Linear init of the official model: N(0, 0.02).

    Example:

    >>> dense_initializer().stddev
    0.02
    """
    return keras.initializers.RandomNormal(stddev=0.02)


def conv_initializer():
    """Conv init of the official model: N(0, sqrt(2 / fan_out)).

    Example:

    >>> conv_initializer().mode
    'fan_out'
    """
    return keras.initializers.VarianceScaling(
        2.0, mode="fan_out", distribution="untruncated_normal"
    )
