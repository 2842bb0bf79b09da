"""`keras-wavevit train`: the options of `TrainConfig`, as command-line flags.

Every `TrainConfig` field is one flag (`--batch-size` for `batch_size`)
with the field's default, help text and group; booleans get a pair
(`--flip` / `--no-flip`). Nothing here has a default of its own: the
dataclass is the one source. `--recipe NAME|FILE` starts from a named
recipe's values instead of the defaults; the flags given replace them.
Only the flags given appear in the parsed arguments.
"""

import argparse
import dataclasses

from keras_wavevit.cli.arguments import finite_float, image_size_argument
from keras_wavevit.recipes.distribute import STRATEGIES
from keras_wavevit.recipes.recipe_files import recipe_names
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
    "ema_momentum": finite_float,
    "time_limit_minutes": finite_float,
    "time_budget_minutes": finite_float,
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
    """Adds `--recipe` and one flag per `TrainConfig` field to `parser`.

    A flag that is not given is absent from the parsed arguments (its
    default, shown in `--help`, comes from `TrainConfig` or the recipe).

    Args:
        parser: An `argparse.ArgumentParser`.

    Example:

    >>> parser = argparse.ArgumentParser()
    >>> configure_parser(parser)
    >>> args = parser.parse_args(["--epochs", "3", "--no-flip", "--image-size", "48"])
    >>> sorted(vars(args).items())
    [('epochs', 3), ('flip', False), ('image_size', (48, 48)), ('recipe', None)]
    """
    parser.add_argument(
        "--recipe", default=None, metavar="NAME|FILE",
        help=f"start from a named recipe ({', '.join(recipe_names())}) or a JSON file of these "
        "options; the options given replace its values",
    )
    groups = {}
    for field in dataclasses.fields(TrainConfig):
        group_name = field.metadata["group"]
        if group_name not in groups:
            groups[group_name] = parser.add_argument_group(group_name)
        groups[group_name].add_argument(
            "--" + field.name.replace("_", "-"), **_flag_options(field)
        )


def _flag_options(field):
    help_text = field.metadata["help"].replace("%", "%%")  # argparse formats help with %
    options = {
        "default": argparse.SUPPRESS,
        "help": f"{help_text} (default: {_show(field.default)})",
    }
    if isinstance(field.default, bool):
        options["action"] = argparse.BooleanOptionalAction
        return options
    options["type"] = _TYPES.get(field.name) or _TYPE_OF_DEFAULT[type(field.default)]
    options["metavar"] = field.name.upper()
    if field.name in _CHOICES:
        options["choices"] = _CHOICES[field.name]
    if field.name == "mixed_precision":
        options["nargs"], options["const"] = "?", "auto"
    return options


def config_from_arguments(args):
    """The `TrainConfig` of parsed arguments: the recipe's values or defaults, then the flags.

    Example:

    >>> parser = argparse.ArgumentParser()
    >>> configure_parser(parser)
    >>> config_from_arguments(parser.parse_args(["--recipe", "cifar10", "--seed", "1"])).seed
    1
    """
    names = {field.name for field in dataclasses.fields(TrainConfig)}
    given = {name: value for name, value in vars(args).items() if name in names}
    if args.recipe is not None:
        return TrainConfig.from_recipe(args.recipe, **given)
    return TrainConfig(**given)


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
    train(config_from_arguments(args))
    return 0
