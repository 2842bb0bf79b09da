"""One frozen description of a Wave-ViT architecture, its JSON form and presets.

`WaveViTConfig` holds every architecture rule once (stage list lengths,
divisibility, key/value strides, stem stride, drop-path range, input size);
the builder, the training recipe (`train --model`) and the converter
(`convert --config`) all read architectures through it. Its JSON form is an
object whose keys are the config's fields, optionally starting from a preset:
`{"preset": "tiny", "depths": [1, 1, 1, 1]}`.
"""

import dataclasses
import json
import math
import os
import types

from keras_wavevit.layers.blocks import check_stem_strides
from keras_wavevit.layers.checks import (
    check_positive,
    check_rate,
    check_size_multiple,
    is_int,
    is_positive_int,
    is_real,
)

NUM_STAGES = 4
# Stages 1-2 use WaveAttention, stages 3-4 plain attention (as official).
NUM_WAVE_STAGES = 2
_STAGE_LISTS = ("embed_dims", "num_heads", "mlp_ratios", "depths", "sr_ratios")


def required_input_multiple(stem_stride, sr_ratios):
    """The number that input height and width must be multiples of.

    Each stage halves the map after the stem, and each wavelet stage needs
    its map divisible by `2 * sr_ratio` (DWT, then the key/value conv).

    Args:
        stem_stride: Downsampling of the stem (4 official, 2 tiny).
        sr_ratios: Per-stage key/value strides.

    Returns:
        The least common multiple of all those constraints, in pixels.

    Example:

    >>> required_input_multiple(4, (4, 2, 1, 1))
    32
    """
    multiple = stem_stride * 2 ** (NUM_STAGES - 1)
    for stage in range(NUM_WAVE_STAGES):
        stage_stride = stem_stride * 2**stage
        multiple = math.lcm(multiple, stage_stride * 2 * sr_ratios[stage])
    return multiple


def feature_strides(stem_stride=4):
    """The strides of the four pyramid maps relative to the input image.

    Args:
        stem_stride: Downsampling of the stem (4 official, 2 tiny).

    Returns:
        A dict `{"stage1": stem_stride, ..., "stage4": 8 * stem_stride}`.

    Example:

    >>> feature_strides(4)
    {'stage1': 4, 'stage2': 8, 'stage3': 16, 'stage4': 32}
    """
    return {f"stage{stage + 1}": stem_stride * 2**stage for stage in range(NUM_STAGES)}


def _check_stage_lists(config):
    for name in _STAGE_LISTS:
        values = getattr(config, name)
        if not isinstance(values, (list, tuple)) or len(values) != NUM_STAGES:
            raise ValueError(
                f"{name} must have one entry per stage ({NUM_STAGES}); "
                f"received {name}={values!r}."
            )
        if name == "mlp_ratios":
            if not all(is_real(value) for value in values):
                raise ValueError(f"{name} must hold numbers; received {name}={values!r}.")
        elif not all(is_int(value) for value in values):
            raise ValueError(f"{name} must hold integers; received {name}={values!r}.")


def _check_stage_values(config):
    embed_dims, num_heads = config.embed_dims, config.num_heads
    for stage, dim in enumerate(embed_dims):
        if dim < 1:
            raise ValueError(
                f"embed_dims[{stage}] must be >= 1; received embed_dims={list(embed_dims)}."
            )
    for stage, (dim, heads) in enumerate(zip(embed_dims, num_heads)):
        if heads < 1 or dim % heads:
            raise ValueError(
                f"embed_dims[{stage}]={dim} must be divisible by "
                f"num_heads[{stage}]={heads}."
            )
        if stage < NUM_WAVE_STAGES and dim % 4:
            raise ValueError(
                f"embed_dims[{stage}]={dim} must be divisible by 4 (the "
                f"wavelet branch uses embed_dims // 4 channels)."
            )
    stages = zip(config.depths, config.sr_ratios, config.mlp_ratios)
    for stage, (depth, ratio, mlp) in enumerate(stages):
        if depth < 1:
            raise ValueError(f"depths[{stage}] must be >= 1; received {depth}.")
        if ratio < 1:
            raise ValueError(f"sr_ratios[{stage}] must be >= 1; received {ratio}.")
        if mlp <= 0:
            raise ValueError(f"mlp_ratios[{stage}] must be > 0; received {mlp}.")
    if any(ratio != 1 for ratio in config.sr_ratios[NUM_WAVE_STAGES:]):
        raise ValueError(
            "sr_ratios of stages 3-4 (standard attention) must be 1; "
            f"received sr_ratios={list(config.sr_ratios)}."
        )


def _check_scalars(config):
    check_positive(stem_hidden_dim=config.stem_hidden_dim)
    check_stem_strides(config.stem_stride, config.stem_first_stride, prefix="stem_")
    check_rate("drop_path_rate", config.drop_path_rate)


def _check_input_shape(input_shape, multiple):
    if not isinstance(input_shape, (list, tuple)) or len(input_shape) != 3:
        raise ValueError(
            "input_shape must be (height, width, channels), without the batch "
            f"axis; received input_shape={input_shape!r}."
        )
    shape = tuple(input_shape)
    if not is_positive_int(shape[-1]):
        raise ValueError(
            "input_shape must have a known, positive channel count; received "
            f"input_shape={shape}."
        )
    for axis_name, size in zip(("height", "width"), shape[:2]):
        if size is not None and not is_positive_int(size):
            raise ValueError(
                f"input_shape {axis_name} must be a positive integer or None; "
                f"received input_shape={shape}."
            )
    check_size_multiple(shape[:2], multiple, f"input_shape={shape}")


@dataclasses.dataclass(frozen=True)
class WaveViTConfig:
    """A Wave-ViT architecture: four stages, a stem and the input size.

    Every rule is checked when the config is created; an invalid field
    raises a `ValueError` naming the field and its value. Sequences are
    stored as tuples, so a config is immutable and hashable.

    Args:
        embed_dims: Channels of the four stages; stages 1-2 (wavelet
            attention) need multiples of 4.
        num_heads: Attention heads of the four stages; each must divide its
            stage's `embed_dims`.
        mlp_ratios: FFN hidden width of each stage, as a multiple (> 0).
        depths: Number of blocks in each stage (>= 1).
        sr_ratios: Key/value embedding strides of the wavelet stages (1-2),
            each >= 1; stages 3-4 use standard attention and need 1.
        stem_hidden_dim: Channels of the stem convolutions.
        stem_stride: 4 (official) or 2 (small images such as CIFAR's).
        stem_first_stride: Stride of the stem's first conv; `None` =
            official (`stem_stride // 2`). With `stem_stride=2`, 2 runs the
            stem's 3x3 convs on the half-size map (see `Stem`).
        drop_path_rate: Stochastic depth rate in [0, 1), rising linearly
            over the blocks from 0 to this value.
        input_shape: `(height, width, channels)`; `None` height or width
            allows any size. Known sizes must be multiples of
            `input_multiple`.

    Example:

    >>> config = WaveViTConfig(
    ...     embed_dims=(16, 32, 64, 96), num_heads=(1, 2, 4, 6),
    ...     mlp_ratios=(2, 2, 2, 2), depths=(1, 1, 1, 1),
    ...     sr_ratios=(4, 2, 1, 1), stem_hidden_dim=8)
    >>> config.input_multiple
    32
    >>> WaveViTConfig.from_json(config.to_json()) == config
    True
    """

    embed_dims: tuple
    num_heads: tuple
    mlp_ratios: tuple
    depths: tuple
    sr_ratios: tuple
    stem_hidden_dim: int
    stem_stride: int = 4
    stem_first_stride: int = None
    drop_path_rate: float = 0.0
    input_shape: tuple = (224, 224, 3)

    def __post_init__(self):
        _check_stage_lists(self)
        _check_scalars(self)
        _check_stage_values(self)
        _check_input_shape(self.input_shape, self.input_multiple)
        for name in (*_STAGE_LISTS, "input_shape"):
            object.__setattr__(self, name, tuple(getattr(self, name)))

    @property
    def input_multiple(self):
        """The number input height and width must be multiples of.

        See `required_input_multiple` (32 for the official configs).

        Example:

        >>> PRESETS["tiny"].input_multiple
        16
        """
        return required_input_multiple(self.stem_stride, self.sr_ratios)

    def block_drop_path_rates(self):
        """Drop-path rate of every block, rising linearly from 0 to the rate.

        Returns:
            A list with one float per block, in stage order.

        Example:

        >>> rates = PRESETS["tiny"].replace(drop_path_rate=0.7).block_drop_path_rates()
        >>> [round(rate, 2) for rate in rates]
        [0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7]
        """
        total = sum(self.depths)
        return [self.drop_path_rate * index / max(total - 1, 1) for index in range(total)]

    def feature_strides(self):
        """The strides of the four pyramid maps (see `feature_strides`).

        Example:

        >>> PRESETS["tiny"].feature_strides()
        {'stage1': 2, 'stage2': 4, 'stage3': 8, 'stage4': 16}
        """
        return feature_strides(self.stem_stride)

    def to_dict(self):
        """The fields as a dict (sequences as tuples).

        Example:

        >>> PRESETS["small"].to_dict()["depths"]
        (3, 4, 6, 3)
        """
        return dataclasses.asdict(self)

    def to_json(self, indent=None):
        """The config as a JSON object (the format `resolve_config` reads).

        Args:
            indent: Passed to `json.dumps`.

        Example:

        >>> '"stem_stride": 2' in PRESETS["tiny"].to_json()
        True
        """
        return json.dumps(self.to_dict(), indent=indent)

    def replace(self, **changes):
        """A copy with some fields changed, checked like a new config.

        Args:
            **changes: Field names and their new values.

        Raises:
            ValueError: For unknown field names or invalid values.

        Example:

        >>> PRESETS["small"].replace(input_shape=(None, None, 3)).input_shape
        (None, None, 3)
        """
        _check_keys(changes)
        return dataclasses.replace(self, **changes)

    @classmethod
    def from_dict(cls, mapping):
        """Creates a config from a dict of its fields.

        Args:
            mapping: Field names and values (JSON lists are fine).

        Raises:
            ValueError: For unknown or missing keys, or invalid values.

        Example:

        >>> WaveViTConfig.from_dict(PRESETS["tiny"].to_dict()) == PRESETS["tiny"]
        True
        """
        _check_keys(mapping)
        required = [field.name for field in dataclasses.fields(cls)
                    if field.default is dataclasses.MISSING]
        missing = [name for name in required if name not in mapping]
        if missing:
            raise ValueError(f"Model configuration is missing the keys {missing}.")
        return cls(**mapping)

    @classmethod
    def from_json(cls, text):
        """Creates a config from JSON object text (see `from_dict`).

        Raises:
            ValueError: For invalid JSON, a JSON value that is not an object,
                or invalid fields.

        Example:

        >>> WaveViTConfig.from_json(PRESETS["base"].to_json()) == PRESETS["base"]
        True
        """
        return cls.from_dict(_parse_json_object(text, "model configuration"))


_FIELD_NAMES = tuple(field.name for field in dataclasses.fields(WaveViTConfig))


def _check_keys(mapping):
    unknown = sorted(set(mapping) - set(_FIELD_NAMES))
    if unknown:
        raise ValueError(
            f"Unknown model configuration keys {unknown}; allowed: {sorted(_FIELD_NAMES)}."
        )


def _parse_json_object(text, source):
    try:
        value = json.loads(text)
    except json.JSONDecodeError as error:
        raise ValueError(f"Could not parse the {source} as JSON: {error}.") from error
    if not isinstance(value, dict):
        raise ValueError(
            f"The {source} must be a JSON object of WaveViTConfig fields; "
            f"received {type(value).__name__} {value!r}."
        )
    return value


# The named architectures, read-only: `PRESETS["small"]` is a frozen config
# and the table itself rejects assignment.
PRESETS = types.MappingProxyType(
    {
        # A CIFAR-size model: the stem downsamples by 2, not 4, so a 32x32
        # image gives stage grids 16, 8, 4, 2 (the official configs would
        # reach 1x1).
        "tiny": WaveViTConfig(
            embed_dims=(64, 128, 192, 256),
            num_heads=(2, 4, 6, 8),
            mlp_ratios=(4, 4, 4, 4),
            depths=(2, 2, 2, 2),
            sr_ratios=(2, 1, 1, 1),
            stem_hidden_dim=32,
            stem_stride=2,
            drop_path_rate=0.1,
            input_shape=(32, 32, 3),
        ),
        "small": WaveViTConfig(
            embed_dims=(64, 128, 320, 448),
            num_heads=(2, 4, 10, 14),
            mlp_ratios=(8, 8, 4, 4),
            depths=(3, 4, 6, 3),
            sr_ratios=(4, 2, 1, 1),
            stem_hidden_dim=32,
            drop_path_rate=0.1,
        ),
        "base": WaveViTConfig(
            embed_dims=(64, 128, 320, 512),
            num_heads=(2, 4, 10, 16),
            mlp_ratios=(8, 8, 4, 4),
            depths=(3, 4, 12, 3),
            sr_ratios=(4, 2, 1, 1),
            stem_hidden_dim=64,
            drop_path_rate=0.1,
        ),
        "large": WaveViTConfig(
            embed_dims=(96, 192, 384, 512),
            num_heads=(3, 6, 12, 16),
            mlp_ratios=(8, 8, 4, 4),
            depths=(3, 6, 18, 3),
            sr_ratios=(4, 2, 1, 1),
            stem_hidden_dim=64,
            drop_path_rate=0.3,
        ),
    }
)


def _from_mapping(mapping):
    mapping = dict(mapping)
    if "preset" not in mapping:
        return WaveViTConfig.from_dict(mapping)
    preset = mapping.pop("preset")
    if preset not in PRESETS:
        raise ValueError(
            f"Unknown preset {preset!r}; expected one of {sorted(PRESETS)}."
        )
    return PRESETS[preset].replace(**mapping)


def resolve_config(spec):
    """Turns any architecture description into a `WaveViTConfig`.

    Args:
        spec: A `WaveViTConfig`; a preset name (`"tiny"`, `"small"`,
            `"base"`, `"large"`); a dict or inline JSON object text of
            `WaveViTConfig` fields; or the path of a JSON file holding such
            an object. A JSON object or dict may start from a preset:
            `{"preset": "tiny", "drop_path_rate": 0.2}` changes only the
            given fields.

    Returns:
        A `WaveViTConfig`.

    Raises:
        ValueError: For an unknown preset, unreadable or invalid JSON,
            unknown or missing keys, or invalid values.

    Example:

    >>> resolve_config("small").depths
    (3, 4, 6, 3)
    >>> resolve_config('{"preset": "tiny", "depths": [1, 1, 1, 1]}').depths
    (1, 1, 1, 1)
    """
    if isinstance(spec, WaveViTConfig):
        return spec
    if isinstance(spec, dict):
        return _from_mapping(spec)
    if not isinstance(spec, (str, os.PathLike)):
        raise ValueError(
            "A model configuration must be a preset name, JSON text, a JSON file, "
            f"a dict or a WaveViTConfig; received {type(spec).__name__} {spec!r}."
        )
    if isinstance(spec, str) and spec in PRESETS:
        return PRESETS[spec]
    if isinstance(spec, str) and spec.lstrip().startswith("{"):
        return _from_mapping(_parse_json_object(spec, "model configuration"))
    if not os.path.isfile(spec):
        raise ValueError(
            f"Unknown model {spec!r}: expected one of {sorted(PRESETS)}, "
            "an inline JSON object or the path of a JSON file."
        )
    with open(spec, encoding="utf-8") as file:
        text = file.read()
    return _from_mapping(_parse_json_object(text, f"model configuration file {os.fspath(spec)!r}"))
