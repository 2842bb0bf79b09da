"""The global Keras dtype policy, set for a block of code and restored after.

Keras layers take the global policy in force when they are created; layers
built of sub-layers often pass no `dtype` on, so setting the global policy
around their creation is the one way to reach every sub-layer.

Example:

>>> import keras
>>> with dtype_policy_scope("mixed_bfloat16"):
...     keras.layers.Dense(2).compute_dtype
'bfloat16'
"""

import contextlib

import keras


@contextlib.contextmanager
def dtype_policy_scope(policy):
    """Sets the global dtype policy inside the block; restores it after, even on errors.

    Args:
        policy: A policy name (`"float32"`, `"mixed_bfloat16"`, ...), a
            `keras.DTypePolicy` or its config; `None` leaves the policy as
            it is.

    Yields:
        The policy in force inside the block.

    Example:

    >>> before = keras.config.dtype_policy().name
    >>> with dtype_policy_scope("mixed_float16") as policy:
    ...     policy.name
    'mixed_float16'
    >>> keras.config.dtype_policy().name == before
    True
    """
    previous = keras.config.dtype_policy()
    if policy is not None:
        keras.config.set_dtype_policy(keras.dtype_policies.get(policy))
    try:
        yield keras.config.dtype_policy()
    finally:
        keras.config.set_dtype_policy(previous)
