"""Local presets: a directory holding a model's architecture, weights, class names
and preprocessing, readable by `load_preset`, the builders and keras-hub.

The layout is keras-hub's preset format, so `keras_hub.models.ImageClassifier.
from_preset(directory)` (after `import keras_wavevit.hub`) reads it too:

| file | holds |
|---|---|
| `config.json` | the backbone: `WaveViTBackbone` and its `WaveViTConfig` fields |
| `model.weights.h5` | the backbone's weights (every layer up to `norm4`) |
| `task.json` | the classifier: `WaveViTImageClassifier` (`num_classes`, `token_label`, `activation`) |
| `task.weights.h5` | the head's weights (`post_network_0`, `head`) |
| `preprocessor.json`, `image_converter.json` | the preprocessing (image size, mean/std, `crop_pct`, interpolation) |
| `class_names.json` | the class names (a JSON list), when known |
| `metadata.json` | Keras version, parameter count, date |

A backbone's preset (`include_top=False`) has no `task.*` files. Writing
is atomic (`keras_wavevit.files.atomic_directory`): an interrupted save
leaves no directory under the name.
"""

import datetime
import json
import os

import keras

from keras_wavevit.config import WaveViTConfig
from keras_wavevit.files import atomic_directory
from keras_wavevit.model import (
    HEAD_LAYER_NAMES,
    PRESET_BACKBONE_WEIGHTS,
    PRESET_HEAD_WEIGHTS,
    WaveViT,
)
from keras_wavevit.preprocessing import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    OFFICIAL_CROP_PCT,
    check_preprocessing,
)

CONFIG_FILE = "config.json"
TASK_FILE = "task.json"
PREPROCESSOR_FILE = "preprocessor.json"
IMAGE_CONVERTER_FILE = "image_converter.json"
CLASS_NAMES_FILE = "class_names.json"
METADATA_FILE = "metadata.json"
_PREPROCESSING_KEYS = ("image_size", "mean", "std", "crop_pct", "interpolation")


def _registered(module, class_name, config):
    """A Keras-serialised object of a `keras_wavevit.hub` class."""
    return {
        "module": f"keras_wavevit.hub.{module}",
        "class_name": class_name,
        "config": config,
        "registered_name": f"keras_wavevit>{class_name}",
    }


def architecture_of(model):
    """Reads a Wave-ViT model's architecture and head back from its layers.

    Args:
        model: A model built by `keras_wavevit` (`WaveViT`, `WaveViTSmall`,
            ...): a classifier or a pyramid backbone (`include_top=False`,
            `pooling=None`).

    Returns:
        `(config, head)`: the `WaveViTConfig` (its `drop_path_rate` is the
        last block's rate) and a dict `include_top`, `num_classes`,
        `token_label`, `classifier_activation`.

    Raises:
        ValueError: The model is not a Wave-ViT classifier or pyramid
            backbone.

    Example:

    >>> import keras_wavevit
    >>> config, head = architecture_of(keras_wavevit.WaveViTTiny(num_classes=10))
    >>> config == keras_wavevit.PRESETS["tiny"], head["num_classes"]
    (True, 10)
    """
    names = {layer.name for layer in model.layers}
    if "patch_embed1" not in names or names & {"cls_pool", "avg_pool"}:
        raise ValueError(
            f"{model.name!r} is not a Wave-ViT classifier or pyramid backbone (a preset "
            "holds WaveViT(...) with include_top=True, or include_top=False and "
            "pooling=None)."
        )
    stem = model.get_layer("patch_embed1")
    stages = [
        [layer for layer in model.layers if layer.name.startswith(f"block{stage}_")]
        for stage in range(1, 5)
    ]
    firsts = [blocks[0] for blocks in stages]
    config = WaveViTConfig(
        embed_dims=[block.dim for block in firsts],
        num_heads=[block.num_heads for block in firsts],
        mlp_ratios=[block.mlp_ratio for block in firsts],
        depths=[len(blocks) for blocks in stages],
        sr_ratios=[block.sr_ratio for block in firsts],
        stem_hidden_dim=stem.hidden_dim,
        stem_stride=stem.stride,
        stem_first_stride=stem.first_stride,
        drop_path_rate=stages[-1][-1].drop_path_rate,
        input_shape=tuple(model.input_shape[1:]),
    )
    head = dict(include_top="head" in names, num_classes=None, token_label=False,
                classifier_activation=None)
    if head["include_top"]:
        head.update(
            num_classes=model.get_layer("head").num_classes,
            token_label=model.get_layer("head").token_label,
            classifier_activation=model.get_layer("predictions").get_config()["activation"],
        )
    return config, head


def describe_preprocessing(preprocessing, input_shape):
    """The preprocessing description a preset stores.

    Args:
        preprocessing: `"resize"` (bilinear resize to the model's size, the
            aspect ratio not kept, as the training recipe and the export's
            `"resize"`),
            `"official"` (the official evaluation: bicubic resize of the
            short side to `size / 0.96`, centre crop; for converted
            checkpoints) or a dict of the fields below replacing those of
            `"resize"`.
        input_shape: The model's `(height, width, channels)`.

    Returns:
        A dict `image_size` (`[height, width]`), `mean`, `std` (of pixel
        values in [0, 1]), `crop_pct` (`None`: no crop) and `interpolation`.

    Raises:
        ValueError: An unknown name (`keras_wavevit.preprocessing.
            check_preprocessing`) or key, or no image size for a model of
            any input size.

    Example:

    >>> describe_preprocessing("official", (224, 224, 3))["crop_pct"]
    0.96
    """
    if isinstance(preprocessing, dict):
        unknown = sorted(set(preprocessing) - set(_PREPROCESSING_KEYS))
        if unknown:
            raise ValueError(
                f"Unknown preprocessing keys {unknown}; allowed: {list(_PREPROCESSING_KEYS)}."
            )
        changes = preprocessing
    elif check_preprocessing(preprocessing) == "official":
        changes = dict(crop_pct=OFFICIAL_CROP_PCT, interpolation="bicubic")
    else:
        changes = {}
    description = dict(image_size=list(input_shape[:2]), mean=list(IMAGENET_MEAN),
                       std=list(IMAGENET_STD), crop_pct=None, interpolation="bilinear")
    description.update(changes)
    if None in description["image_size"]:
        raise ValueError(
            "The model takes any input size: give the preset's image size, e.g. "
            'preprocessing={"image_size": [224, 224]}.'
        )
    description["image_size"] = [int(size) for size in description["image_size"]]
    return description


def _preset_files(model, config, head, class_names, preprocessing):
    """The JSON files of a preset: `{file name: object}`."""
    backbone = _registered("backbone", "WaveViTBackbone", {
        "name": "wave_vit_backbone", "trainable": True,
        "dtype": keras.dtype_policies.serialize(model.dtype_policy),
        **{key: list(value) if isinstance(value, tuple) else value
           for key, value in config.to_dict().items()},
    })
    converter = _registered("preprocessor", "WaveViTImageConverter", {
        "name": "wave_vit_image_converter", **preprocessing})
    preprocessor = _registered("preprocessor", "WaveViTImageClassifierPreprocessor", {
        "name": "wave_vit_image_classifier_preprocessor", "image_converter": converter,
        "config_file": PREPROCESSOR_FILE})
    files = {
        CONFIG_FILE: backbone,
        IMAGE_CONVERTER_FILE: converter,
        METADATA_FILE: {
            "keras_version": keras.__version__,
            "parameter_count": model.count_params(),
            "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d@%H:%M:%S"),
        },
    }
    if head["include_top"]:
        files[PREPROCESSOR_FILE] = preprocessor
        files[TASK_FILE] = _registered("classifier", "WaveViTImageClassifier", {
            "name": model.name, "backbone": backbone, "preprocessor": preprocessor,
            "num_classes": head["num_classes"], "token_label": head["token_label"],
            "activation": head["classifier_activation"]})
    if class_names is not None:
        files[CLASS_NAMES_FILE] = [str(name) for name in class_names]
    return files


def save_preset(model, directory, class_names=None, preprocessing="resize", overwrite=False):
    """Writes a model as a preset directory (see the module docstring).

    Args:
        model: A `keras_wavevit` classifier or pyramid backbone.
        directory: The preset directory to write (atomically).
        class_names: `None` or one name per class (classifiers only).
        preprocessing: `"resize"`, `"official"` (converted official
            checkpoints: `crop_pct` 0.96, bicubic) or a dict; see
            `describe_preprocessing`.
        overwrite: Whether an existing `directory` may be replaced.

    Raises:
        ValueError: The model is not a Wave-ViT classifier or pyramid
            backbone, `class_names` does not have one name per class, or
            the preprocessing is invalid (all checked before writing).
        FileExistsError: `directory` exists and `overwrite` is false.

    Example:

    >>> import os, tempfile, keras_wavevit
    >>> model = keras_wavevit.WaveViTTiny(num_classes=2)
    >>> directory = os.path.join(tempfile.mkdtemp(), "tiny_cats")
    >>> save_preset(model, directory, class_names=["cat", "dog"])
    >>> sorted(os.listdir(directory))[:3]
    ['class_names.json', 'config.json', 'image_converter.json']
    >>> load_preset(directory).output_shape
    (None, 2)
    """
    config, head = architecture_of(model)
    if class_names is not None and len(class_names) != head["num_classes"]:
        raise ValueError(
            f"class_names must hold one name per class of a classifier "
            f"(num_classes={head['num_classes']}); received {len(class_names)} names."
        )
    description = describe_preprocessing(preprocessing, model.input_shape[1:])
    files = _preset_files(model, config, head, class_names, description)
    head_layers = [layer for layer in model.layers if layer.name in HEAD_LAYER_NAMES]
    body_layers = [layer for layer in model.layers if layer.name not in HEAD_LAYER_NAMES]
    with atomic_directory(directory, replace=overwrite) as staging:
        for name, content in files.items():
            with open(os.path.join(staging, name), "w", encoding="utf-8") as handle:
                json.dump(content, handle, indent=2)
        keras.saving.save_weights(model, os.path.join(staging, PRESET_BACKBONE_WEIGHTS),
                                  objects_to_skip=head_layers)
        if head["include_top"]:
            keras.saving.save_weights(model, os.path.join(staging, PRESET_HEAD_WEIGHTS),
                                      objects_to_skip=body_layers)


def _read_json(directory, name, required=True):
    path = os.path.join(directory, name)
    if not os.path.isfile(path):
        if required:
            raise ValueError(f"{os.fspath(directory)} is not a Wave-ViT preset: {name} is missing.")
        return None
    try:
        with open(path, encoding="utf-8") as handle:
            return json.load(handle)
    except json.JSONDecodeError as error:
        raise ValueError(f"{path} is not valid JSON: {error}.") from None


def read_preset(directory):
    """Reads a preset directory's description (no weights, no model).

    Args:
        directory: A directory written by `save_preset`, `keras-wavevit
            convert --preset` or keras-hub's `save_to_preset` of the
            `keras_wavevit.hub` classes.

    Returns:
        A dict: `config` (`WaveViTConfig`), `head` (`include_top`,
        `num_classes`, `token_label`, `classifier_activation`),
        `class_names` (a list or `None`) and `preprocessing` (see
        `describe_preprocessing`; `None` when the preset has none).

    Raises:
        ValueError: `directory` is not a directory, or a file is missing
            (named) or invalid.

    Example:

    >>> read_preset("no/such/preset")
    Traceback (most recent call last):
    ...
    ValueError: Preset directory not found: no/such/preset
    """
    if not os.path.isdir(directory):
        raise ValueError(f"Preset directory not found: {os.fspath(directory)}")
    backbone = _read_json(directory, CONFIG_FILE)["config"]
    fields = {key: backbone[key] for key in backbone
              if key not in ("name", "trainable", "dtype")}
    config = WaveViTConfig.from_dict(fields)
    task = _read_json(directory, TASK_FILE, required=False)
    head = dict(include_top=task is not None, num_classes=None, token_label=False,
                classifier_activation=None)
    if task is not None:
        head.update(num_classes=task["config"]["num_classes"],
                    token_label=task["config"].get("token_label", False),
                    classifier_activation=task["config"].get("activation"))
    converter = _read_json(directory, IMAGE_CONVERTER_FILE, required=False)
    preprocessing = None if converter is None else {
        key: converter["config"].get(key) for key in _PREPROCESSING_KEYS}
    return dict(config=config, head=head,
                class_names=_read_json(directory, CLASS_NAMES_FILE, required=False),
                preprocessing=preprocessing)


def load_preset(directory, name="wave_vit"):
    """Rebuilds the model a preset directory holds, with its weights.

    Args:
        directory: A preset directory (see `read_preset`).
        name: The model's name.

    Returns:
        A `keras.Model`: the classifier, or the pyramid backbone of a
        backbone preset. Class names and preprocessing: `read_preset`.

    Raises:
        ValueError: `directory` is not a preset (the missing file is named)
            or its weights do not fit its architecture.

    Example:

    >>> load_preset("no/such/preset")
    Traceback (most recent call last):
    ...
    ValueError: Preset directory not found: no/such/preset
    """
    preset = read_preset(directory)
    return WaveViT(preset["config"], weights=directory, name=name, **preset["head"])
