"""`TrainConfig`: every option of a training run, its default and its check, once.

`train()` takes a `TrainConfig`; `keras-wavevit train` builds its argparse
options from the same fields (flag `--name-with-dashes`, default, help text
and group from each field's metadata), so no default is written twice.
Every field is checked when the config is created, before any work:
non-finite numbers (`nan`, `inf`) are refused like any other bad value.
"""

import dataclasses
import math
import numbers
import os

from keras_wavevit.recipes import augmentation
from keras_wavevit.recipes.recipe_files import load_recipe
from keras_wavevit.recipes.distribute import STRATEGIES
from keras_wavevit.config import WaveViTConfig, resolve_config
from keras_wavevit.recipes.network import JIT_COMPILE, is_variant

MIXED_PRECISION_POLICIES = ("off", "auto", "mixed_bfloat16", "mixed_float16")
VERBOSITY = ("auto", 0, 1, 2)
# Fields that change how a run is shown or where it goes, not what it computes:
# a rerun may change them and still resume the same run.
RUNTIME_FIELDS = ("output", "overwrite", "verbose")

DATA = "data (default: the CIFAR-10 sample shipped in the package)"
RECIPE = "model and recipe"
AUGMENT = "augmentation (training split only)"
RUNTIME = "runtime and outputs"


def _option(default, help, group, check):
    return dataclasses.field(
        default=default, metadata={"help": help, "group": group, "check": check}
    )


def _fail(name, value, expected):
    raise ValueError(f"{name} must be {expected}; received {name}={value!r}.")


def _integer(minimum, optional=False):
    def check(name, value):
        if value is None and optional:
            return None
        if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < minimum:
            _fail(name, value, f"an integer >= {minimum}" + (" or None" if optional else ""))
        return int(value)

    return check


def _number(low, high=math.inf, open_low=False, open_high=True, optional=False):
    def check(name, value):
        if value is None and optional:
            return None
        valid = isinstance(value, numbers.Real) and not isinstance(value, bool)
        value_ok = valid and math.isfinite(value)
        if value_ok:
            value_ok = (low < value if open_low else low <= value) and (
                value < high if open_high else value <= high
            )
        if not value_ok:
            bounds = f"{'(' if open_low else '['}{low}, {high}{')' if open_high else ']'}"
            _fail(name, value, f"a finite number in {bounds}" + (" or None" if optional else ""))
        return float(value)

    return check


def _choice(options):
    def check(name, value):
        if isinstance(value, bool) or value not in options:
            _fail(name, value, f"one of {list(options)}")
        return value

    return check


def _boolean(name, value):
    if not isinstance(value, bool):
        _fail(name, value, "True or False")
    return value


def _path(name, value):
    if value is None:
        return None
    if not isinstance(value, (str, os.PathLike)) or not os.fspath(value):
        _fail(name, value, "a non-empty path or None")
    return os.fspath(value)


def _text(name, value):
    if value is not None and (not isinstance(value, str) or not value):
        _fail(name, value, "a non-empty string or None")
    return value


def _model(name, value):
    if isinstance(value, (dict, WaveViTConfig)):
        return resolve_config(value).to_json()  # one JSON text, stored with the run
    if not isinstance(value, str) or not value.strip():
        _fail(name, value, "a preset name, inline JSON, a .json file, a dict or a WaveViTConfig")
    resolve_config(value)
    return value


def _image_size(name, value):
    if value is None:
        return None
    sizes = (value, value) if isinstance(value, numbers.Integral) else value
    if isinstance(value, bool) or not isinstance(sizes, (tuple, list)) or len(sizes) != 2:
        _fail(name, value, "None, an integer or (height, width)")
    if any(isinstance(v, bool) or not isinstance(v, numbers.Integral) or v < 1 for v in sizes):
        _fail(name, value, "positive integers")
    return tuple(int(v) for v in sizes)


def _crop_scale(name, value):
    if value is None:
        return None
    if not isinstance(value, (tuple, list)) or len(value) != 2:
        _fail(name, value, "None or (min, max) areas with 0 < min <= max <= 1")
    low, high = (_number(0.0, 1.0, open_low=True, open_high=False)(name, v) for v in value)
    if low > high:
        _fail(name, value, "(min, max) with min <= max")
    return (low, high)


def _precision(name, value):
    return _choice(MIXED_PRECISION_POLICIES)(name, "off" if value is None else value)


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    """The options of one training run (`train()` and `keras-wavevit train`).

    Every field is checked on creation (`ValueError` naming the field and
    the value); sizes become tuples. See `keras-wavevit train --help` for
    the meaning of each field, or `TrainConfig.help(name)`.

    Example:

    >>> config = TrainConfig(epochs=3, image_size=48)
    >>> config.image_size, config.mixed_precision
    ((48, 48), 'off')
    >>> config.replace(epochs=4).epochs
    4
    >>> TrainConfig(learning_rate=float("nan"))
    Traceback (most recent call last):
    ...
    ValueError: learning_rate must be a finite number in (0.0, inf); received learning_rate=nan.
    """

    dataset: str = _option(None, "TFDS dataset name, e.g. cifar10 (must be prepared)", DATA, _text)
    tfds_data_dir: str = _option(None, "TFDS data directory", DATA, _path)
    validation_split: str = _option(None, "TFDS split to validate on, e.g. test", DATA, _text)
    data_dir: str = _option(None, "image folder root/<class>/<image>", DATA, _path)
    validation_dir: str = _option(None, "separate image folder to validate on", DATA, _path)
    validation_fraction: float = _option(
        0.1, "share of each class held out for validation", DATA, _number(0.0, 1.0)
    )
    skip_bad_images: bool = _option(
        False, "leave out unreadable image files (named) instead of stopping", DATA, _boolean
    )
    model: str = _option(
        "tiny", "tiny, small, base, large, inline JSON or a .json architecture file "
        '(keys: WaveViTConfig fields, optionally {"preset": "tiny", ...})',
        RECIPE, _model,
    )
    image_size: tuple = _option(None, "N, HxW or H,W (default: the model's)", RECIPE, _image_size)
    epochs: int = _option(30, "epochs", RECIPE, _integer(1))
    batch_size: int = _option(128, "global batch size", RECIPE, _integer(1))
    steps_per_epoch: int = _option(
        None, "cap the steps of each epoch", RECIPE, _integer(1, optional=True)
    )
    learning_rate: float = _option(1e-3, "peak AdamW rate", RECIPE, _number(0.0, open_low=True))
    min_learning_rate: float = _option(
        1e-5, "learning rate at the end of the cosine decay", RECIPE, _number(0.0)
    )
    weight_decay: float = _option(0.05, "AdamW weight decay", RECIPE, _number(0.0))
    warmup_epochs: float = _option(2.0, "linear warm-up, in epochs", RECIPE, _number(0.0))
    clip_norm: float = _option(
        None, "global gradient-norm clip", RECIPE, _number(0.0, open_low=True, optional=True)
    )
    label_smoothing: float = _option(0.1, "label smoothing", RECIPE, _number(0.0, 1.0))
    drop_path_rate: float = _option(
        None, "stochastic depth (default: the model's)", RECIPE, _number(0.0, 1.0, optional=True)
    )
    regularize_from_epochs: int = _option(
        0, "train with random erasing and stochastic depth only when the run has at least "
        "this many epochs (with a time budget: its plan's); a shorter run turns both off "
        "and says so (0 = always keep them)", RECIPE, _integer(0),
    )
    ema_momentum: float = _option(
        None, "keep a moving average of the weights (EMA) with this momentum, e.g. 0.999; "
        "validation, the best checkpoint and the export use the averaged weights "
        "(default: off)", RECIPE, _number(0.0, 1.0, open_low=True, optional=True),
    )
    mixup: float = _option(augmentation.DEFAULT_MIXUP_ALPHA, "MixUp alpha, 0 = off", AUGMENT,
                           _number(0.0))
    cutmix: float = _option(0.0, "CutMix alpha, 0 = off", AUGMENT, _number(0.0))
    crop_scale: tuple = _option(
        augmentation.DEFAULT_CROP_SCALE, "random resized crop area MIN,MAX or none", AUGMENT,
        _crop_scale,
    )
    translate: float = _option(
        0.0, "largest random shift in whole pixels, as a share of each side (0.125 = 4 of 32 "
        "pixels), 0 = off", AUGMENT, _number(0.0, 1.0),
    )
    rotation: float = _option(
        augmentation.DEFAULT_ROTATION_DEGREES, "largest rotation in degrees, 0 = off", AUGMENT,
        _number(0.0, 180.0, open_high=False),
    )
    color_jitter: float = _option(
        augmentation.DEFAULT_COLOR_JITTER, "brightness/contrast/saturation jitter, 0 = off",
        AUGMENT, _number(0.0),
    )
    flip: bool = _option(True, "random horizontal flips", AUGMENT, _boolean)
    erasing: float = _option(
        0.0, "probability of erasing a random box (2-33% of the area) of each image, 0 = off",
        AUGMENT, _number(0.0, 1.0, open_high=False),
    )
    mixed_precision: str = _option(
        "off",
        "mixed precision; auto = float16 on GPU, bfloat16 on CPUs with AVX512_BF16 or AMX, "
        "else off",
        RUNTIME,
        _precision,
    )
    jit_compile: str = _option(
        "auto", "XLA; auto leaves it off on CPU, where it is slower", RUNTIME,
        _choice(tuple(JIT_COMPILE)),
    )
    strategy: str = _option("default", "tf.distribute strategy", RUNTIME, _choice(STRATEGIES))
    time_limit_minutes: float = _option(
        None, "stop after the first epoch past this wall-clock budget", RUNTIME,
        _number(0.0, open_low=True, optional=True),
    )
    time_budget_minutes: float = _option(
        None, "size the run to end in this many minutes, evaluation and export included: "
        "epochs and the learning-rate schedule come from the throughput measured on the first "
        "steps (replaces epochs and steps_per_epoch)", RECIPE,
        _number(0.0, open_low=True, optional=True),
    )
    output: str = _option(None, "output directory (default runs/<model>)", RUNTIME, _path)
    overwrite: bool = _option(
        False, "start afresh: delete an earlier run's files in --output first", RUNTIME,
        _boolean,
    )
    export: bool = _option(True, "export a SavedModel and answer from it", RUNTIME, _boolean)
    plots: bool = _option(True, "write the PNG figures", RUNTIME, _boolean)
    seed: int = _option(
        None, "random seed: makes CPU runs repeatable (deterministic ops)", RUNTIME,
        _integer(0, optional=True),
    )
    verbose: str = _option(
        "auto", "auto, 0 silent, 1 progress bar, 2 one line per epoch", RUNTIME,
        _choice(VERBOSITY),
    )

    def __post_init__(self):
        for field in dataclasses.fields(self):
            checked = field.metadata["check"](field.name, getattr(self, field.name))
            object.__setattr__(self, field.name, checked)
        if self.dataset and self.data_dir:
            raise ValueError(
                "Pass either dataset (TFDS) or data_dir (image folder), not both; received "
                f"dataset={self.dataset!r}, data_dir={self.data_dir!r}."
            )
        if self.time_budget_minutes is not None and self.time_limit_minutes is not None:
            raise ValueError(
                "Pass either time_budget_minutes (a schedule sized to the budget) or "
                "time_limit_minutes (stop a fixed schedule early), not both; received "
                f"time_budget_minutes={self.time_budget_minutes}, "
                f"time_limit_minutes={self.time_limit_minutes}."
            )

    @classmethod
    def from_recipe(cls, recipe, **overrides):
        """The config of a named recipe (or recipe file), with `overrides` applied.

        Args:
            recipe: A shipped recipe name (`keras_wavevit.recipes.recipe_files.
                recipe_names()`) or the path of a JSON file of fields.
            **overrides: Fields that replace the recipe's values.

        Raises:
            ValueError: An unknown recipe, a bad file, or a bad value.

        Example:

        >>> config = TrainConfig.from_recipe("cifar10", data_dir="/data/cifar10")
        >>> config.time_budget_minutes, config.data_dir
        (60.0, '/data/cifar10')
        """
        names = [field.name for field in dataclasses.fields(cls)]
        values = load_recipe(os.fspath(recipe), names)
        values.update(overrides)
        return cls(**values)

    @classmethod
    def help(cls, name):
        """The help text of field `name` (also the CLI's).

        Example:

        >>> TrainConfig.help("epochs")
        'epochs'
        """
        return {field.name: field for field in dataclasses.fields(cls)}[name].metadata["help"]

    def replace(self, **changes):
        """A copy with `changes` applied (and checked).

        Raises:
            ValueError: For a name that is not a field.

        Example:

        >>> TrainConfig().replace(batch_size=32).batch_size
        32
        """
        unknown = sorted(set(changes) - {field.name for field in dataclasses.fields(self)})
        if unknown:
            raise ValueError(f"Unknown training options {unknown}.")
        return dataclasses.replace(self, **changes)

    def to_dict(self):
        """The fields as a JSON-ready dict (tuples become lists).

        Example:

        >>> TrainConfig().to_dict()["crop_scale"]
        [0.6, 1.0]
        """
        return {
            key: list(value) if isinstance(value, tuple) else value
            for key, value in dataclasses.asdict(self).items()
        }

    def identity(self):
        """The fields that decide what a run computes (all but `RUNTIME_FIELDS`).

        Two configs with the same identity are the same run: a rerun with
        it resumes; one with another identity is a different run.

        Example:

        >>> TrainConfig(verbose=0).identity() == TrainConfig(verbose=2).identity()
        True
        """
        return {k: v for k, v in self.to_dict().items() if k not in RUNTIME_FIELDS}

    def output_directory(self):
        """`output`, or `runs/<model>` (`runs/custom` for a JSON model).

        Example:

        >>> TrainConfig(model="small").output_directory()
        'runs/small'
        """
        if self.output:
            return self.output
        return os.path.join("runs", self.model if is_variant(self.model) else "custom")
