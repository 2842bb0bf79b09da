"""Layer normalisation computed as one fused op (see `fusion.layer_norm`).

Every LayerNorm of Wave-ViT (block, stem, downsampling, key/value, stage and
head norms) is this layer: a `keras.layers.LayerNormalization` with the same
arguments, weights (`gamma`, `beta`) and config, whose last-axis case runs as
one fused loop. `.keras` files that hold Keras' own layer (the stage norms
of files saved by version 0.1.0) load unchanged, with the same weights.
"""

import keras
from keras import ops

from keras_wavevit.layers.fusion import layer_norm


@keras.saving.register_keras_serializable(package="keras_wavevit")
class LayerNormalization(keras.layers.LayerNormalization):
    """`keras.layers.LayerNormalization` computed by the fused `layer_norm`.

    Same arguments, weights (`gamma`, `beta`) and config as the Keras layer;
    normalising over the last axis (the only case Wave-ViT uses) runs as one
    fused loop; any other configuration falls back to the Keras layer.

    Example:

    >>> import numpy as np
    >>> norm = LayerNormalization(epsilon=1e-6)
    >>> norm(np.float32([[1.0, 3.0]])).shape
    TensorShape([1, 2])
    """

    def call(self, inputs):
        last_axis = self.axis in (-1, [-1], len(inputs.shape) - 1, [len(inputs.shape) - 1])
        if (
            not last_axis
            or getattr(self, "rms_scaling", False)
            or not (self.center and self.scale)
        ):
            return super().call(inputs)
        return ops.cast(
            layer_norm(inputs, self.gamma, self.beta, self.epsilon), self.compute_dtype
        )
