"""Argument and shape checks shared by the layers, the config and the builder.

Each check raises a `ValueError` that names the argument (or layer) and the
value received, before any weight is created.
"""

import numbers


def is_int(value):
    """Whether `value` is an integer (Python or NumPy), not a bool.

    Args:
        value: Anything.

    Returns:
        A bool.

    Example:

    >>> is_int(3), is_int(2.0), is_int(True)
    (True, False, False)
    """
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def is_real(value):
    """Whether `value` is a real number (Python or NumPy), not a bool.

    Args:
        value: Anything.

    Returns:
        A bool.

    Example:

    >>> is_real(0.5), is_real("1"), is_real(False)
    (True, False, False)
    """
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def is_positive_int(value):
    """Whether `value` is an integer >= 1 (Python or NumPy; not a bool).

    Args:
        value: Anything.

    Returns:
        A bool.

    Example:

    >>> is_positive_int(3), is_positive_int(0), is_positive_int(2.0)
    (True, False, False)
    """
    return is_int(value) and value >= 1
