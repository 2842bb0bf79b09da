"""Layer and batch normalisation, each computed as one fused op where possible.

Every LayerNorm of Wave-ViT (block, stem, downsampling, key/value, stage and
head norms) is `LayerNormalization`: a `keras.layers.LayerNormalization` with
the same arguments, weights (`gamma`, `beta`) and config, whose last-axis
case runs as one fused loop (see `fusion.layer_norm`). `.keras` files that
hold Keras' own layer (the stage norms of files saved by version 0.1.0) load
unchanged, with the same weights.

Every BatchNorm (stem, wavelet reduce and filter convs) is
`BatchNormalization`: Keras' layer, whose training step and inference run
as TensorFlow's fused batch-norm kernel on the TensorFlow backend.
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


@keras.saving.register_keras_serializable(package="keras_wavevit")
class BatchNormalization(keras.layers.BatchNormalization):
    """`keras.layers.BatchNormalization` run as one fused kernel on TensorFlow.

    Same arguments, weights (`gamma`, `beta`, `moving_mean`,
    `moving_variance`) and config as the Keras layer. In training on the
    TensorFlow backend, for channels-last 4-D inputs, the batch statistics,
    the normalisation and its gradient are TensorFlow's `FusedBatchNormV3`
    kernel and its gradient instead of Keras' separate moments, arithmetic
    and their gradients (a fifth of the ops, ~2x faster on the stem's maps).
    The results are Keras': the output is normalised with the biased batch
    variance, and the moving variance follows the biased variance too (the
    kernel's Bessel-corrected one is scaled back). Inference runs the same
    kernel with the moving statistics: it reads float16/bfloat16 maps
    directly and normalises in float32 (Keras' layer casts the map to
    float32 and back, two more passes), and TensorFlow's graph optimiser can
    fuse it with a following ReLU. Other backends, masks, renormalisation
    and synchronised statistics run the Keras layer.

    Example:

    >>> import numpy as np
    >>> norm = BatchNormalization(momentum=0.9, epsilon=1e-5)
    >>> x = np.float32([[[[1.0], [3.0]]]])  # (1, 1, 2, 1)
    >>> np.asarray(norm(x, training=True)).round(3).ravel().tolist()
    [-1.0, 1.0]
    >>> float(np.asarray(norm.moving_variance)[0])  # 0.9 * 1 + 0.1 * 1
    1.0
    """

    def call(self, inputs, training=None, mask=None):
        if mask is not None or not self._fuses(inputs):
            return super().call(inputs, training=training, mask=mask)
        if training and self.trainable:
            return self._fused_training_step(inputs)
        return self._fused_inference(inputs)

    def _scale_and_offset(self, channels):
        gamma = ops.cast(self.gamma, "float32") if self.scale else ops.ones((channels,))
        beta = ops.cast(self.beta, "float32") if self.center else ops.zeros((channels,))
        return gamma, beta

    def _fused_inference(self, inputs):
        import tensorflow as tf

        # The kernel reads float16/bfloat16 maps directly and normalises in
        # float32 with the float32 statistics, as Keras' layer does after
        # its upcast, without the two casts.
        gamma, beta = self._scale_and_offset(inputs.shape[-1])
        outputs, *_ = tf.raw_ops.FusedBatchNormV3(
            x=inputs,
            scale=gamma,
            offset=beta,
            mean=ops.cast(self.moving_mean, "float32"),
            variance=ops.cast(self.moving_variance, "float32"),
            epsilon=self.epsilon,
            data_format="NHWC",
            is_training=False,
        )
        return ops.cast(outputs, self.compute_dtype)

    def _fused_training_step(self, inputs):
        import tensorflow as tf

        # Like Keras' layer: statistics in float32 (or float64 inputs fall
        # back above; the fused kernel has no float64 version).
        x = ops.cast(inputs, "float32")
        channels = x.shape[-1]
        gamma, beta = self._scale_and_offset(channels)
        empty = ops.zeros((0,), "float32")
        outputs, mean, corrected_variance, *_ = tf.raw_ops.FusedBatchNormV3(
            x=x,
            scale=gamma,
            offset=beta,
            mean=empty,
            variance=empty,
            epsilon=self.epsilon,
            exponential_avg_factor=1.0,
            data_format="NHWC",
            is_training=True,
        )
        count = ops.cast(ops.size(x) // channels, "float32")
        variance = corrected_variance * (count - 1.0) / ops.maximum(count, 1.0)
        momentum = self.momentum
        self.moving_mean.assign(self.moving_mean * momentum + mean * (1.0 - momentum))
        self.moving_variance.assign(
            self.moving_variance * momentum + variance * (1.0 - momentum)
        )
        return ops.cast(outputs, self.compute_dtype)

    def _fuses(self, inputs):
        return (
            keras.backend.backend() == "tensorflow"
            and len(inputs.shape) == 4
            and self.axis in (-1, 3)
            and inputs.shape[-1] is not None
            and keras.backend.standardize_dtype(inputs.dtype) in ("float32", "float16", "bfloat16")
            and not self.renorm
            and not self.synchronized
        )
