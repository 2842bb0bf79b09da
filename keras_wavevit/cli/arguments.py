"""Argument types shared by every subcommand (one convention for each kind).

Image sizes are written the same way everywhere: `N` (a square `N x N`),
`HxW` or `H,W`; where a size may be left open (an export that accepts any
size), the word `any`.
"""

import argparse
import math


def parse_image_size(text, allow_any=False):
    """Parses an image size written `N`, `HxW` or `H,W` (or `any`).

    Args:
        text: The argument as typed.
        allow_any: Whether `any` (size left open) is accepted.

    Returns:
        `(height, width)` as positive integers, or `None` for `any`.

    Raises:
        ValueError: The text is not a size of that form, or a side is not a
            positive integer.

    Example:

    >>> parse_image_size("32"), parse_image_size("224x160"), parse_image_size("64,96")
    ((32, 32), (224, 160), (64, 96))
    >>> parse_image_size("any", allow_any=True) is None
    True
    """
    cleaned = text.strip().lower()
    if allow_any and cleaned == "any":
        return None
    parts = cleaned.replace("x", ",").split(",")
    if len(parts) == 1:
        parts = parts * 2
    if len(parts) != 2 or not all(part.strip().isdigit() for part in parts):
        expected = "N, HxW or H,W" + (" or 'any'" if allow_any else "")
        raise ValueError(f"image size must be {expected}; received {text!r}.")
    height, width = (int(part) for part in parts)
    if height < 1 or width < 1:
        raise ValueError(f"image size must be positive; received {text!r}.")
    return height, width


def image_size_argument(allow_any=False):
    """An argparse `type=` for image sizes (see `parse_image_size`).

    Args:
        allow_any: Whether `any` is accepted (the value is then `None`).

    Returns:
        A callable for `parser.add_argument(..., type=...)` that turns bad
        text into an argparse error naming the convention.

    Example:

    >>> parser = argparse.ArgumentParser()
    >>> _ = parser.add_argument("--image-size", type=image_size_argument())
    >>> parser.parse_args(["--image-size", "64x48"]).image_size
    (64, 48)
    """

    def image_size(text):
        try:
            return parse_image_size(text, allow_any=allow_any)
        except ValueError as error:
            raise argparse.ArgumentTypeError(str(error)) from None

    image_size.__name__ = "image size"
    return image_size


def finite_float(text):
    """An argparse `type=` for a finite number (`nan` and `inf` refused).

    Args:
        text: The argument as typed.

    Returns:
        The float.

    Raises:
        argparse.ArgumentTypeError: Not a number, or not finite.

    Example:

    >>> finite_float("3e-4")
    0.0003
    """
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number; received {text!r}.") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"expected a finite number; received {text!r}.")
    return value


def add_test_time_arguments(parser, prefix=""):
    """Adds `--flip-average` and `--shift-average PIXELS` (test-time averaging).

    Both `keras-wavevit evaluate` (scores averaged while evaluating) and
    `keras-wavevit export` (averaged inside the SavedModel) take them; see
    `keras_wavevit.test_time`.

    Args:
        parser: An `argparse.ArgumentParser`.
        prefix: Text put before each help line (e.g. `"saved_model: "`).

    Example:

    >>> parser = argparse.ArgumentParser()
    >>> add_test_time_arguments(parser)
    >>> args = parser.parse_args(["--flip-average", "--shift-average", "1"])
    >>> args.flip_average, args.shift_average
    (True, 1)
    """
    parser.add_argument(
        "--flip-average", action="store_true",
        help=f"{prefix}score each image as the mean of the scores of it and its mirror "
        "image (for models trained with random flips)",
    )
    parser.add_argument(
        "--shift-average", type=int, default=0, metavar="PIXELS",
        help=f"{prefix}also average over each image shifted by PIXELS in the four "
        "diagonal directions, edges reflected, and with --flip-average their mirror "
        "images (for models trained with --translate; 1 with flips is 10 passes). "
        "Default 0: no shifts",
    )
