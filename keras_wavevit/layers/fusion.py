"""Fused elementwise ops: exact GELU, layer norm and a compile-on-TensorFlow decorator.

On the TensorFlow backend, graph execution runs each elementwise op as its
own op: a chain like `0.5 * x * (1 + erf(x / sqrt(2)))` reads and writes
the whole tensor once per op. In Wave-ViT the FFN hidden maps are 8x the
embedding width in stages 1-2, so these passes (not the arithmetic) dominate
the activation's cost. `fused` compiles such a chain with XLA into one loop
over the data, while the surrounding model stays in plain graph execution
(XLA's CPU convolutions, the depthwise one above all, are far slower than
TensorFlow's, so compiling the whole model is slower).

Fusion changes only the speed: the fused ops compute the same formulas. The
switch is scoped: `with fused_ops(False):` traces the plain ops for the code
inside the block (in the current thread or task; it is a `ContextVar`); the
environment variable `KERAS_WAVEVIT_FUSED_KERNELS=0` (read at import) sets
the default. Graphs that must run without XLA, such as a SavedModel for a
TensorFlow Serving binary built without XLA's CPU JIT, should be traced under
`fused_ops(False)`. Other backends run the plain formulas.
"""

import contextlib
import contextvars
import functools
import math
import os

import keras
from keras import ops

_SQRT_HALF = math.sqrt(0.5)
_INV_SQRT_2PI = 1.0 / math.sqrt(2.0 * math.pi)
_ENABLED = contextvars.ContextVar(
    "keras_wavevit_fused_ops",
    default=os.environ.get("KERAS_WAVEVIT_FUSED_KERNELS", "1") != "0",
)


def fused_ops_enabled():
    """Whether `fused` functions are XLA-compiled when traced now.

    Example:

    >>> with fused_ops(False):
    ...     fused_ops_enabled()
    False
    """
    return _ENABLED.get() and keras.backend.backend() == "tensorflow"


@contextlib.contextmanager
def fused_ops(enabled):
    """Context manager that switches op fusion on or off while tracing.

    The setting holds for code run inside the block in the current thread
    (or asyncio task) and is restored when the block exits, even on errors.
    Threads started inside the block (e.g. `MirroredStrategy` replicas)
    start from the default: set `KERAS_WAVEVIT_FUSED_KERNELS=0` before
    import to switch fusion off for a whole process.

    Args:
        enabled: `False` traces the plain (unfused) ops.

    Example:

    >>> import numpy as np
    >>> with fused_ops(False):
    ...     y = exact_gelu(np.zeros((2, 3), "float32"))
    >>> y.shape
    TensorShape([2, 3])
    """
    token = _ENABLED.set(bool(enabled))
    try:
        yield
    finally:
        _ENABLED.reset(token)


def fused(function):
    """Decorator: compiles `function` with XLA on TensorFlow when enabled.

    `function` must take and return tensors only (no Python values that
    vary between calls). Gradients flow through the compiled function.

    Args:
        function: The elementwise computation to fuse.

    Returns:
        A function with the same signature and results.

    Example:

    >>> import numpy as np
    >>> square_plus_one = fused(lambda x: x * x + 1.0)
    >>> np.asarray(square_plus_one(np.float32([2.0]))).tolist()
    [5.0]
    """
    compiled = []

    @functools.wraps(function)
    def wrapper(*args):
        if not fused_ops_enabled():
            return function(*args)
        if not compiled:
            import tensorflow as tf

            compiled.append(
                tf.function(
                    function, jit_compile=True, reduce_retracing=True, autograph=False
                )
            )
        return compiled[0](*args)

    return wrapper


def _exact_gelu(x):
    compute = x if x.dtype == "float64" else ops.cast(x, "float32")
    # Python scalars take the tensor's dtype (`ops.cast(python_float, ...)`
    # would round through float32).
    value = 0.5 * compute * (1.0 + ops.erf(compute * _SQRT_HALF))
    return ops.cast(value, x.dtype)


_fused_exact_gelu = fused(_exact_gelu)


def _bias_exact_gelu(x, bias):
    return _exact_gelu(x + bias)


_fused_bias_exact_gelu = fused(_bias_exact_gelu)


def _bias_exact_gelu_grad(x, bias, upstream):
    """Gradient of `_bias_exact_gelu` w.r.t. x (that of bias is its sum)."""
    z = x + bias
    compute = z if z.dtype == "float64" else ops.cast(z, "float32")
    cdf = 0.5 * (1.0 + ops.erf(compute * _SQRT_HALF))
    pdf = ops.exp(-0.5 * compute * compute) * _INV_SQRT_2PI
    grad = ops.cast(upstream, compute.dtype) * (cdf + compute * pdf)
    return ops.cast(grad, x.dtype)


_fused_bias_exact_gelu_grad = fused(_bias_exact_gelu_grad)


@ops.custom_gradient
def _bias_exact_gelu_with_fused_grad(x, bias):
    # The automatic gradient of the compiled forward is not fused; this one
    # reads x, bias and the upstream gradient once.

    def grad(*args, upstream=None):
        if upstream is None:
            (upstream,) = args
        grad = _fused_bias_exact_gelu_grad(x, bias, upstream)
        # Outside the fused loop: XLA's CPU column reduction is ~8x slower
        # than TensorFlow's here.
        grad_bias = ops.sum(ops.reshape(grad, (-1, ops.shape(grad)[-1])), axis=0)
        return grad, ops.cast(grad_bias, bias.dtype)

    return _fused_bias_exact_gelu(x, bias), grad


def exact_gelu(x, bias=None):
    """GELU in its exact (erf) form, `0.5 * x * (1 + erf(x / sqrt(2)))`.

    The formula of PyTorch's `nn.GELU()` (the official model's activation).
    It is evaluated in float32 for float16/bfloat16 inputs (in float64 for
    float64) and returned in the input dtype, as one fused loop on
    TensorFlow (see `fused`).

    Args:
        x: Tensor.
        bias: Optional tensor broadcast and added to `x` first (fused).

    Returns:
        A tensor of `x`'s shape and dtype.

    Example:

    >>> import numpy as np
    >>> y = exact_gelu(np.float32([-1.0, 0.0, 1.0]))
    >>> [round(float(v), 4) for v in np.asarray(y)]
    [-0.1587, 0.0, 0.8413]
    """
    x = ops.convert_to_tensor(x)
    if not fused_ops_enabled():
        return _exact_gelu(x if bias is None else x + ops.cast(bias, x.dtype))
    if bias is None:
        if x.shape[-1] is None:
            return _fused_exact_gelu(x)
        bias = ops.zeros(x.shape[-1:], x.dtype)
    return _bias_exact_gelu_with_fused_grad(x, ops.cast(bias, x.dtype))


def _layer_norm(x, gamma, beta, epsilon):
    compute = x if x.dtype == "float64" else ops.cast(x, "float32")
    mean = ops.mean(compute, axis=-1, keepdims=True)
    centered = compute - mean
    variance = ops.mean(ops.square(centered), axis=-1, keepdims=True)
    scale = ops.rsqrt(variance + ops.cast(epsilon, compute.dtype)) * ops.cast(
        gamma, compute.dtype
    )
    return ops.cast(centered * scale + ops.cast(beta, compute.dtype), x.dtype)


_fused_layer_norm = fused(_layer_norm)


def layer_norm(x, gamma, beta, epsilon):
    """Layer normalisation over the last axis, `(x - mean) / sqrt(var + eps)`.

    PyTorch's formula (biased variance), evaluated in float32 for
    float16/bfloat16 inputs and returned in the input dtype, as one fused
    loop on TensorFlow (see `fused`).

    Args:
        x: Tensor `(..., channels)`.
        gamma: Scale, shape `(channels,)`.
        beta: Offset, shape `(channels,)`.
        epsilon: Added to the variance.

    Returns:
        A tensor of `x`'s shape and dtype.

    Example:

    >>> import numpy as np
    >>> y = layer_norm(np.float32([[1.0, 3.0]]), np.ones(2, "float32"),
    ...                np.zeros(2, "float32"), 0.0)
    >>> np.asarray(y).tolist()
    [[-1.0, 1.0]]
    """
    x = ops.convert_to_tensor(x)
    dtype = "float64" if x.dtype == "float64" else "float32"
    # `ops.cast` also reads Keras variables into tensors.
    return _fused_layer_norm(
        x,
        ops.cast(gamma, dtype),
        ops.cast(beta, dtype),
        ops.convert_to_tensor(epsilon, dtype=dtype),
    )
