"""`keras-wavevit train`: the options of `TrainConfig`, as command-line flags.

Every `TrainConfig` field is one flag (`--batch-size` for `batch_size`)
with the field's default, help text and group; booleans get a pair
(`--flip` / `--no-flip`). Nothing here has a default of its own: the
dataclass is the one source.
"""

import argparse
import dataclasses

from keras_wavevit.cli.arguments import finite_float, image_size_argument
from keras_wavevit.recipes.distribute import STRATEGIES
from keras_wavevit.recipes.train_config import (
    JIT_COMPILE,
    MIXED_PRECISION_POLICIES,
    VERBOSITY,
    TrainConfig,
)
from keras_wavevit.recipes.training import train


def _range(text):
    if text.strip().lower() == "none":
        return None
    try:
        low, high = (finite_float(value) for value in text.split(","))
    except (ValueError, argparse.ArgumentTypeError):
        raise argparse.ArgumentTypeError(f"expected 'MIN,MAX' or 'none'; received {text!r}") from None
    return (low, high)


def _verbosity(text):
    return text if text == "auto" else int(text)


# Argument types by field name; other fields take the type of their default.
_TYPES = {
    "image_size": image_size_argument(),
    "crop_scale": _range,
    "verbose": _verbosity,
    "steps_per_epoch": int,
    "seed": int,
    "clip_norm": finite_float,
    "drop_path_rate": finite_float,
    "time_limit_minutes": finite_float,
}
_TYPE_OF_DEFAULT = {int: int, float: finite_float, str: str, type(None): str}
_CHOICES = {
    "verbose": VERBOSITY,
    "mixed_precision": MIXED_PRECISION_POLICIES,
    "jit_compile": tuple(JIT_COMPILE),
    "strategy": STRATEGIES,
}


def _show(value):
    if isinstance(value, tuple):
        return ",".join(str(v) for v in value)
    return value


def configure_parser(parser):
    """Adds one flag per `TrainConfig` field to `parser`.

    Args:
        parser: An `argparse.ArgumentParser`.

    Example:

    >>> parser = argparse.ArgumentParser()
    >>> configure_parser(parser)
    >>> args = parser.parse_args(["--epochs", "3", "--no-flip", "--image-size", "48"])
    >>> args.epochs, args.flip, args.image_size, args.mixed_precision
    (3, False, (48, 48), 'off')
    """
    parser.formatter_class = argparse.ArgumentDefaultsHelpFormatter
    groups = {}
    for field in dataclasses.fields(TrainConfig):
        group_name = field.metadata["group"]
        if group_name not in groups:
            groups[group_name] = parser.add_argument_group(group_name)
        flag = "--" + field.name.replace("_", "-")
        options = {"default": field.default, "help": field.metadata["help"]}
        if isinstance(field.default, bool):
            options["action"] = argparse.BooleanOptionalAction
        else:
            options["type"] = _TYPES.get(field.name) or _TYPE_OF_DEFAULT[type(field.default)]
            options["metavar"] = field.name.upper()
            if field.name in _CHOICES:
                options["choices"] = _CHOICES[field.name]
            if isinstance(field.default, tuple):
                options["default"] = _show(field.default)
        if field.name == "mixed_precision":
            options["nargs"], options["const"] = "?", "auto"
        groups[group_name].add_argument(flag, **options)


def run(args):
    """Runs `keras-wavevit train` with parsed arguments.

    Args:
        args: The `argparse.Namespace` from `configure_parser`'s parser.

    Returns:
        0 on success.

    Example:

    >>> from keras_wavevit.cli import main
    >>> main(["train", "--epochs", "1", "--output", "/tmp/run"])  # doctest: +SKIP
    0
    """
    names = [field.name for field in dataclasses.fields(TrainConfig)]
    train(TrainConfig(**{name: getattr(args, name) for name in names}))
    return 0
