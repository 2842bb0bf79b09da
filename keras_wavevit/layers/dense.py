"""The token projection: `keras.layers.Dense` run as one 2-D matrix product.

Wave-ViT's projections (attention `q`, `kv`, `proj`; the FFN's `fc1`, `fc2`)
act on `(batch, height, width, channels)` maps and `(batch, tokens,
channels)` sequences. `keras.layers.Dense` multiplies such inputs with a
tensor contraction, which TensorFlow lowers to reshape, matmul, reshape, then
adds the bias as a separate pass over the output. Flattening the leading
axes first puts the bias add right after a 2-D matmul, the pattern that
TensorFlow's graph optimiser fuses into one kernel (matmul with bias) when
oneDNN is on. The arithmetic is the same; only the number of passes changes.

One exception: bfloat16 on a CPU with AMX. There TensorFlow's fused bfloat16
matmul with bias runs oneDNN's inner product (`x64:gemm:jit`, no AMX), while
a plain bfloat16 matmul runs oneDNN's AMX matmul (`brg_matmul`), which with
the bias added as a separate pass is about twice as fast (BENCHMARKS.md). So
with a bfloat16 compute dtype on such a CPU the output is reshaped before
the bias is added, which keeps the graph optimiser from fusing the two.
"""

import keras
from keras import ops

from keras_wavevit.hardware import has_amx_bfloat16


def bias_after_reshape(compute_dtype):
    """Whether `Dense` adds its bias after reshaping, unfused with the matmul.

    Args:
        compute_dtype: The layer's compute dtype.

    Returns:
        True for bfloat16 on a CPU with AMX-BF16 (see the module docstring).

    Example:

    >>> bias_after_reshape("float32")
    False
    """
    return compute_dtype == "bfloat16" and has_amx_bfloat16()


@keras.saving.register_keras_serializable(package="keras_wavevit")
class Dense(keras.layers.Dense):
    """`keras.layers.Dense` that flattens inputs of rank > 2 to one matmul.

    Same arguments, weights (`kernel`, `bias`) and config as the Keras layer;
    LoRA and quantized layers fall back to the Keras implementation.

    Example:

    >>> import numpy as np
    >>> layer = Dense(4)
    >>> layer(np.ones((2, 3, 5, 8), "float32")).shape
    TensorShape([2, 3, 5, 4])
    """

    def call(self, inputs, training=None):
        if (
            len(inputs.shape) <= 2
            or self.lora_enabled
            or self.quantization_mode is not None
        ):
            return super().call(inputs, training=training)
        shape = tuple(ops.shape(inputs)[:-1]) + (self.units,)
        outputs = ops.matmul(ops.reshape(inputs, (-1, inputs.shape[-1])), self.kernel)
        if self.bias is not None and bias_after_reshape(self.compute_dtype):
            outputs = ops.reshape(outputs, shape)
        if self.bias is not None:
            outputs = ops.add(outputs, self.bias)
        if self.activation is not None:
            outputs = self.activation(outputs)
        return ops.reshape(outputs, shape)
