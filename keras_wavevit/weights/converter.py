"""One official checkpoint file -> one Keras file (what `keras-wavevit convert` does).

Reads the checkpoint first (a bad file is refused before any model is
built), builds the model, loads the weights with `load_official_weights`
and writes `.weights.h5` or `.keras` atomically (`keras_wavevit.files`): an
interrupted or failed run never leaves a partial file under the output name
and never replaces a previous output.

Example:

>>> from keras_wavevit.weights import convert_checkpoint
>>> print(convert_checkpoint(
...     "wavevit_s.pth.tar", "wavevit_s.keras", "small"))  # doctest: +SKIP
mapped 425 checkpoint entries (22,692,128 values) onto Keras weights
...
wrote wavevit_s.keras (WaveViTSmall, 22,692,128 values)
"""

import os
import warnings

from keras_wavevit.config import PRESETS, resolve_config
from keras_wavevit.files import save_model_atomically
from keras_wavevit.imagenet import IMAGENET_CLASS_NAMES
from keras_wavevit.model import WaveViT
from keras_wavevit.presets import save_preset
from keras_wavevit.preprocessing import OFFICIAL_CROP_PCT, OFFICIAL_IMAGE_SIZE
from keras_wavevit.weights.checkpoint import read_checkpoint
from keras_wavevit.weights.official import describe_plan, load_official_weights

OUTPUT_ENDINGS = (".weights.h5", ".keras")


def _resolve_architecture(architecture, input_shape):
    """The checked `WaveViTConfig` and the model name (`WaveViTSmall` for a preset)."""
    try:
        config = resolve_config(architecture)
        if input_shape is not None:
            config = config.replace(input_shape=tuple(input_shape))
    except ValueError as error:  # also UnicodeDecodeError: a binary file
        is_file = isinstance(architecture, (str, os.PathLike)) and os.path.isfile(architecture)
        if is_file and os.fspath(architecture) not in str(error):
            raise ValueError(f"{os.fspath(architecture)}: {error}") from None
        raise
    is_preset = isinstance(architecture, str) and architecture in PRESETS
    return config, f"WaveViT{architecture.capitalize()}" if is_preset else "wave_vit"


def _official_preprocessing(config):
    """The preset preprocessing of a converted checkpoint: the official
    evaluation transform at the model's size (224 for a model of any size)."""
    size = config.input_shape[:2]
    image_size = [OFFICIAL_IMAGE_SIZE] * 2 if None in size else list(size)
    return dict(image_size=image_size, crop_pct=OFFICIAL_CROP_PCT, interpolation="bicubic")


def _check_outputs(output, preset, class_names, num_classes):
    if output is None and preset is None:
        raise ValueError("Give an output file, a preset directory, or both.")
    if output is not None and not os.fspath(output).endswith(OUTPUT_ENDINGS):
        raise ValueError(f"The output must end in .weights.h5 or .keras; received {output!r}.")
    if preset is not None and os.path.exists(preset):
        raise ValueError(f"The preset directory {os.fspath(preset)} already exists.")
    if class_names is not None and len(class_names) != num_classes:
        raise ValueError(
            f"class_names holds {len(class_names)} names for num_classes={num_classes}."
        )


def _write(model, config, output, preset, class_names):
    """Writes the converted model: the file and/or the preset directory."""
    lines = []
    if output is not None:
        save_model_atomically(model, output)
        lines.append(f"wrote {output} ({model.name}, {model.count_params():,} values)")
    if preset is not None:
        if class_names is None and model.output_shape[-1] == len(IMAGENET_CLASS_NAMES):
            class_names = IMAGENET_CLASS_NAMES
        save_preset(model, preset, class_names=class_names,
                    preprocessing=_official_preprocessing(config))
        lines.append(f"wrote the preset {os.fspath(preset)} ({model.name}, "
                     f"{model.count_params():,} values)")
    return lines


def convert_checkpoint(
    checkpoint,
    output,
    architecture,
    *,
    num_classes=1000,
    token_label=True,
    input_shape=None,
    strict=True,
    skip_head=False,
    preset=None,
    class_names=None,
):
    """Converts an official checkpoint file into a Keras file.

    Args:
        checkpoint: The official checkpoint (`.pth`, `.pth.tar`, `.npz`,
            `.safetensors`; see `read_checkpoint`).
        output: Where to write: `*.weights.h5` (weights only) or `*.keras`
            (the whole model), or `None` with `preset`. Written atomically.
        architecture: What to build: anything
            `keras_wavevit.config.resolve_config` reads (a preset name such
            as `"small"`, the path of a JSON file or inline JSON text of
            `WaveViTConfig` fields, optionally `{"preset": "small",
            ...changes}`, a dict or a `WaveViTConfig`).
        num_classes: Classes of the classifier.
        token_label: Build the auxiliary token-label head; without it the
            checkpoint's `aux_head.*` entries are dropped (and reported).
        input_shape: Input shape of the saved model: `(height, width, 3)`,
            `(None, None, 3)` for any size, or `None` for the
            architecture's.
        strict: Refuse any mismatch (default) or load what matches; see
            `load_official_weights`.
        skip_head: Leave the classifier out (fine-tuning to another
            `num_classes`).
        preset: `None`, or a new directory to write as a preset
            (`keras_wavevit.presets.save_preset`) with the official
            evaluation preprocessing (`crop_pct` 0.96, bicubic, at the
            model's size; 224 for a model of any size).
        class_names: The preset's class names; `None` gives the ImageNet-1k
            names to a 1000-class model and none to others.

    Returns:
        The report: what was dropped, mapped and skipped, any problem, and
        the file written.

    Raises:
        ValueError: `output` has another ending, neither `output` nor
            `preset` is given, `preset` exists, `class_names` does not fit
            `num_classes`, or the architecture is not valid (all checked
            before the checkpoint is read; a bad JSON
            file is named), the checkpoint cannot be read, or it does not
            match the model (`CheckpointMismatchError`); nothing is written
            then.
        FileNotFoundError: The checkpoint does not exist.

    Example:

    >>> convert_checkpoint("w.npz", "w.h5", "small")
    Traceback (most recent call last):
    ...
    ValueError: The output must end in .weights.h5 or .keras; received 'w.h5'.
    """
    _check_outputs(output, preset, class_names, num_classes)
    config, name = _resolve_architecture(architecture, input_shape)
    state_dict = read_checkpoint(checkpoint)
    model = WaveViT(config, num_classes=num_classes, token_label=token_label, name=name)
    lines = []
    if not token_label:
        dropped = sorted(entry for entry in state_dict if entry.startswith("aux_head."))
        for entry in dropped:
            del state_dict[entry]
        if dropped:
            lines.append(f"dropped {', '.join(dropped)} (no token-label head)")
    with warnings.catch_warnings():
        # With strict=False the problems are in the report, not warned.
        warnings.filterwarnings("ignore", message="Loaded ", category=UserWarning)
        plan = load_official_weights(model, state_dict, strict=strict, skip_head=skip_head)
    lines.append(describe_plan(plan))
    lines += _write(model, config, output, preset, class_names)
    return "\n".join(lines)
