"""The functional Wave-ViT builder and the named models (tiny, small, base, large).

`WaveViT` is a short graph over a `WaveViTConfig`:

    images -> input_check -> patch_embed1 (stem)
           -> stage 1..4: [patch_embed{2..4} (downsampling)] + block{stage}_{i}
              (stages 1-3 end in norm{stage})
           -> head: class_token -> post_network_0 -> norm4 -> head
              (backbone: norm4 on the stage-4 map, or a pooled vector)

Layer names follow the official PyTorch modules, so official weights map
onto them with a readable table (`keras_wavevit.weights`).
"""

import os
import warnings

import keras

from keras_wavevit.config import (
    NUM_STAGES,
    NUM_WAVE_STAGES,
    PRESETS,
    feature_strides,
    resolve_config,
)
from keras_wavevit.layers.blocks import Block, DownSample, Stem
from keras_wavevit.layers.checks import InputCheck, check_choice, check_positive
from keras_wavevit.layers.defaults import LAYER_NORM_EPSILON
from keras_wavevit.layers.head import ClassBlock, ClassTokenPool, MeanClassToken, TokenLabelHead
from keras_wavevit.layers.normalization import LayerNormalization

POOLINGS = (None, "avg", "cls")
# A preset directory (keras_wavevit.presets, keras-hub's layout) keeps the
# weights of the backbone (every layer up to norm4) and of the head (the
# layers below) in two files.
PRESET_BACKBONE_WEIGHTS = "model.weights.h5"
PRESET_HEAD_WEIGHTS = "task.weights.h5"
HEAD_LAYER_NAMES = ("class_token", "post_network_0", "head", "predictions", "cls_pool", "avg_pool")


def _warn_single_token_stages(config):
    """Warns when a stage's map is 1x1: its attention sees one token (wasted compute)."""
    height, width = config.input_shape[:2]
    if height is None or width is None:
        return
    single = [stage for stage, stride in feature_strides(config.stem_stride).items()
              if height // stride == 1 and width // stride == 1]
    if single:
        warnings.warn(
            f"At input {height}x{width} with stem_stride={config.stem_stride}, "
            f"{' and '.join(single)} {'is a 1x1 map' if len(single) == 1 else 'are 1x1 maps'}: "
            "attention over a single token learns nothing spatial. Use "
            + ("stem_stride=2 or " if config.stem_stride > 2 else "")
            + f"an input of at least {2 * 8 * config.stem_stride} pixels a side.",
            stacklevel=3,
        )


def _check_builder_args(include_top, pooling, num_classes, token_label, weights):
    if not isinstance(include_top, bool):
        raise ValueError(
            f"include_top must be True or False; received include_top={include_top!r}."
        )
    check_choice("pooling", pooling, list(POOLINGS))
    if include_top and pooling is not None:
        raise ValueError(
            "pooling is only used with include_top=False (the classifier already "
            f"pools the class token); received include_top=True, pooling={pooling!r}."
        )
    if include_top:
        check_positive(num_classes=num_classes)
    if token_label and not include_top:
        raise ValueError(
            "token_label adds a classifier head and needs include_top=True; "
            "received include_top=False, token_label=True."
        )
    if weights is not None and not (
        isinstance(weights, (str, os.PathLike)) and os.path.exists(weights)
    ):
        raise ValueError(
            "weights must be None, the path of an existing Keras weights file "
            "(.weights.h5) or a preset directory (keras_wavevit.presets.save_preset, "
            f"`keras-wavevit convert --preset`); received weights={weights!r}."
        )
    if weights is not None and os.path.isdir(weights):
        needed = [PRESET_BACKBONE_WEIGHTS]
        if include_top or pooling == "cls":
            needed.append(PRESET_HEAD_WEIGHTS)
        for name in needed:
            if not os.path.isfile(os.path.join(weights, name)):
                raise ValueError(
                    f"weights={os.fspath(weights)!r} is not a Wave-ViT preset directory "
                    f"for this model: {name} is missing."
                )


def _load_weights(model, weights):
    """Loads a weights file, or a preset directory's backbone and head files."""
    if not os.path.isdir(weights):
        model.load_weights(weights)
        return
    head = [layer for layer in model.layers if layer.name in HEAD_LAYER_NAMES]
    body = [layer for layer in model.layers if layer.name not in HEAD_LAYER_NAMES]
    parts = [(PRESET_BACKBONE_WEIGHTS, head)]
    if any(layer.weights for layer in head):
        parts.append((PRESET_HEAD_WEIGHTS, body))
    for name, skipped in parts:
        try:
            keras.saving.load_weights(model, os.path.join(weights, name), objects_to_skip=skipped)
        except ValueError as error:
            raise ValueError(
                f"The preset {os.fspath(weights)} does not fit this model's architecture "
                "(keras_wavevit.presets.load_preset builds the preset's own): "
                f"{name}: {str(error).split(' Target variable:')[0]}"  # not the values
            ) from None


def _model_config(config, architecture, input_shape, drop_path_rate):
    """The config to build: `config` (or the old keyword arguments) with
    `input_shape` and `drop_path_rate` replaced where given."""
    if config is not None and architecture:
        raise ValueError(
            "Pass either config or architecture keyword arguments, not both; "
            f"received config and {sorted(architecture)}."
        )
    changes = {
        key: value
        for key, value in (("input_shape", input_shape), ("drop_path_rate", drop_path_rate))
        if value is not None
    }
    if config is None:
        return resolve_config({**architecture, **changes})
    return resolve_config(config).replace(**changes)


def _stage_norm(stage):
    return LayerNormalization(epsilon=LAYER_NORM_EPSILON, name=f"norm{stage + 1}")


def _stages(x, config):
    """The four stages: returns the normalised maps of stages 1-3 (a dict
    keyed `"stage1"`..`"stage3"`) and the stage-4 map before its norm."""
    rates = iter(config.block_drop_path_rates())
    pyramid = {}
    for stage in range(NUM_STAGES):
        if stage > 0:
            x = DownSample(config.embed_dims[stage], name=f"patch_embed{stage + 1}")(x)
        for index in range(config.depths[stage]):
            x = Block(
                config.embed_dims[stage],
                config.num_heads[stage],
                config.mlp_ratios[stage],
                sr_ratio=config.sr_ratios[stage],
                attention_type="wave" if stage < NUM_WAVE_STAGES else "standard",
                drop_path_rate=next(rates),
                name=f"block{stage + 1}_{index}",
            )(x)
        if stage < NUM_STAGES - 1:
            x = _stage_norm(stage)(x)
            pyramid[f"stage{stage + 1}"] = x
    return pyramid, x


def _class_tokens(stage4_map, config):
    """The class-attention head up to its norm: `(batch, 1 + tokens, dim)`."""
    tokens = MeanClassToken(name="class_token")(stage4_map)
    tokens = ClassBlock(
        config.embed_dims[-1], config.num_heads[-1], config.mlp_ratios[-1],
        name="post_network_0",
    )(tokens)
    return _stage_norm(NUM_STAGES - 1)(tokens)


def _outputs(pyramid, stage4_map, config, head):
    """The model outputs for `head` (the builder's head arguments).

    `norm4` normalises the class-token sequence (classifier, `"cls"`), as
    official, or else the stage-4 map (pyramid, `"avg"`); it has the same
    weights either way, so classifier weights load into any backbone.
    """
    if head["include_top"]:
        tokens = _class_tokens(stage4_map, config)
        logits = TokenLabelHead(
            head["num_classes"], token_label=head["token_label"], name="head"
        )(tokens)
        return keras.layers.Activation(
            head["classifier_activation"], dtype="float32", name="predictions"
        )(logits)
    if head["pooling"] == "cls":
        tokens = _class_tokens(stage4_map, config)
        return ClassTokenPool(name="cls_pool")(tokens)
    pyramid = {**pyramid, f"stage{NUM_STAGES}": _stage_norm(NUM_STAGES - 1)(stage4_map)}
    if head["pooling"] == "avg":
        return keras.layers.GlobalAveragePooling2D(name="avg_pool")(pyramid["stage4"])
    return pyramid


def WaveViT(
    config=None,
    *,
    include_top=True,
    weights=None,
    input_shape=None,
    num_classes=1000,
    classifier_activation=None,
    token_label=False,
    drop_path_rate=None,
    pooling=None,
    name="wave_vit",
    **architecture,
):
    """Builds a functional Wave-ViT model of any configuration.

    The architecture is a `WaveViTConfig`, anything `resolve_config` reads
    (a preset name, JSON, a dict), or the config's fields as keyword
    arguments (`embed_dims=..., num_heads=..., ...`).

    With `include_top=True` the model maps images to class logits. With
    `include_top=False` it is a backbone:

    - `pooling=None`: the multi-scale feature pyramid for FPN-style heads
      (detection, segmentation), a dict of NHWC maps

      | key | stride | channels | layer |
      |---|---|---|---|
      | `"stage1"` | `stem_stride` | `embed_dims[0]` | `norm1` |
      | `"stage2"` | `2 * stem_stride` | `embed_dims[1]` | `norm2` |
      | `"stage3"` | `4 * stem_stride` | `embed_dims[2]` | `norm3` |
      | `"stage4"` | `8 * stem_stride` | `embed_dims[3]` | `norm4` |

      (strides 4, 8, 16, 32 for S/B/L; `config.feature_strides()`).
      Each map is the output of its stage's LayerNorm, exactly the activation
      of the layer of that name in the classifier. An `(H, W)` input gives
      stage `i` maps of size `(H / s_i, W / s_i)`; non-square and unknown
      (`None`) sizes work. `list(model.output.values())` gives the
      fine-to-coarse list most FPN code takes.
    - `pooling="avg"`: a `(batch, embed_dims[3])` vector, the global average
      of the `"stage4"` map.
    - `pooling="cls"`: a `(batch, embed_dims[3])` vector, the class-attention
      head's normalised class token (the classifier's input; the head layers
      `class_token`, `post_network_0`, `norm4` keep their classifier names,
      so a classifier's weights load into this model by name).

    Every argument is checked before any layer is created; invalid ones
    raise a `ValueError` naming the argument and its value. Images with a
    rank, channel count or size other than the model's raise a `ValueError`
    when the model is called.

    Args:
        config: A `WaveViTConfig` or a `resolve_config` spec; `None` to take
            the architecture from `**architecture`.
        include_top: With the classifier, or a backbone (see above).
        weights: `None` (random init), the path of a Keras weights file
            (`.weights.h5`) or a preset directory
            (`keras_wavevit.presets.save_preset`; the model must have the
            preset's architecture, `keras_wavevit.presets.load_preset`
            builds it from the preset). Official PyTorch checkpoints load
            through `keras_wavevit.load_official_weights`.
        input_shape: `(height, width, channels)` replacing the config's;
            `None` for height and width allows any size. Height and width
            must be multiples of `config.input_multiple` (32 for the
            official configs). Channels other than 3 are allowed.
        num_classes: Classes of the classifier (`include_top=True` only).
        classifier_activation: Activation on the output (`None` = logits,
            `"softmax"`); always computed in float32. Ignored without top.
        token_label: Adds the official auxiliary token head: logits are
            `head(cls) + 0.5 * max(aux_head(tokens))`. Needed to reproduce
            the released checkpoints; off for training from scratch. Needs
            `include_top=True`.
        drop_path_rate: Stochastic depth rate replacing the config's, rising
            linearly over blocks from 0 to this value.
        pooling: `None`, `"avg"` or `"cls"`; only with `include_top=False`.
        name: Model name.
        **architecture: `WaveViTConfig` fields (`embed_dims`, `num_heads`,
            `mlp_ratios`, `depths`, `sr_ratios`, `stem_hidden_dim`,
            `stem_stride`, `stem_first_stride`), when `config` is `None`.

    Returns:
        A `keras.Model`.

    Raises:
        ValueError: For any invalid argument or combination of arguments.

    Example:

    >>> model = WaveViT(
    ...     embed_dims=(16, 32, 64, 96), num_heads=(1, 2, 4, 6),
    ...     mlp_ratios=(2, 2, 2, 2), depths=(1, 1, 1, 1),
    ...     sr_ratios=(4, 2, 1, 1), stem_hidden_dim=8,
    ...     input_shape=(64, 64, 3), num_classes=10)
    >>> model.output_shape
    (None, 10)
    >>> from keras_wavevit.config import WaveViTConfig
    >>> config = WaveViTConfig.from_dict(dict(
    ...     embed_dims=(16, 32, 64, 96), num_heads=(1, 2, 4, 6),
    ...     mlp_ratios=(2, 2, 2, 2), depths=(1, 1, 1, 1),
    ...     sr_ratios=(4, 2, 1, 1), stem_hidden_dim=8))
    >>> backbone = WaveViT(config, include_top=False, input_shape=(64, 96, 3))
    >>> for key, feature in backbone.output.items():
    ...     print(key, feature.shape)
    stage1 (None, 16, 24, 16)
    stage2 (None, 8, 12, 32)
    stage3 (None, 4, 6, 64)
    stage4 (None, 2, 3, 96)
    """
    _check_builder_args(include_top, pooling, num_classes, token_label, weights)
    config = _model_config(config, architecture, input_shape, drop_path_rate)
    _warn_single_token_stages(config)
    head = dict(
        include_top=include_top,
        pooling=pooling,
        num_classes=num_classes,
        token_label=token_label,
        classifier_activation=classifier_activation,
    )
    inputs = keras.Input(shape=config.input_shape, name="images")
    x = InputCheck(config.input_multiple, channels=config.input_shape[-1],
                   name="input_check")(inputs)
    x = Stem(config.stem_hidden_dim, config.embed_dims[0], stride=config.stem_stride,
             first_stride=config.stem_first_stride, name="patch_embed1")(x)
    pyramid, stage4_map = _stages(x, config)
    model = keras.Model(inputs, _outputs(pyramid, stage4_map, config, head), name=name)
    if weights is not None:
        _load_weights(model, weights)
    return model


def _preset_model(preset, **arguments):
    # The named builders pass their own arguments on as they are
    # (`locals()`, read before any other local exists).
    return WaveViT(PRESETS[preset], **arguments)


def WaveViTTiny(
    include_top=True,
    weights=None,
    input_shape=None,
    num_classes=1000,
    classifier_activation=None,
    token_label=False,
    drop_path_rate=None,
    pooling=None,
    name="WaveViTTiny",
):
    """Builds Wave-ViT-Tiny, a CIFAR-size model (`PRESETS["tiny"]`).

    The stem downsamples by 2, not 4, so 32x32 images (the default input)
    give stage grids 16, 8, 4, 2 and a backbone's pyramid has strides
    (2, 4, 8, 16). Arguments as `WaveViT`; `input_shape` defaults to
    `(32, 32, 3)` and `drop_path_rate` to 0.1.

    Returns:
        A `keras.Model`.

    Example:

    >>> model = WaveViTTiny(num_classes=10)
    >>> model.output_shape
    (None, 10)
    """
    return _preset_model("tiny", **locals())


def WaveViTSmall(
    include_top=True,
    weights=None,
    input_shape=None,
    num_classes=1000,
    classifier_activation=None,
    token_label=False,
    drop_path_rate=None,
    pooling=None,
    name="WaveViTSmall",
):
    """Builds Wave-ViT-S, the official small model (22.7M, 4.7 GMACs).

    `PRESETS["small"]`; a backbone's pyramid has strides (4, 8, 16, 32).
    Arguments as `WaveViT`; `input_shape` defaults to `(224, 224, 3)` and
    `drop_path_rate` to 0.1. `token_label=True` matches the released
    checkpoints.

    Returns:
        A `keras.Model`.

    Example:

    >>> model = WaveViTSmall(num_classes=10, input_shape=(64, 64, 3))
    >>> model.output_shape
    (None, 10)
    """
    return _preset_model("small", **locals())


def WaveViTBase(
    include_top=True,
    weights=None,
    input_shape=None,
    num_classes=1000,
    classifier_activation=None,
    token_label=False,
    drop_path_rate=None,
    pooling=None,
    name="WaveViTBase",
):
    """Builds Wave-ViT-B, the official base model (33.5M, 7.2 GMACs).

    `PRESETS["base"]`; a backbone's pyramid has strides (4, 8, 16, 32).
    Arguments as `WaveViT`; `input_shape` defaults to `(224, 224, 3)` and
    `drop_path_rate` to 0.1. `token_label=True` matches the released
    checkpoints.

    Returns:
        A `keras.Model`.

    Example:

    >>> model = WaveViTBase(num_classes=10)  # doctest: +SKIP
    >>> model.output_shape  # doctest: +SKIP
    (None, 10)
    """
    return _preset_model("base", **locals())


def WaveViTLarge(
    include_top=True,
    weights=None,
    input_shape=None,
    num_classes=1000,
    classifier_activation=None,
    token_label=False,
    drop_path_rate=None,
    pooling=None,
    name="WaveViTLarge",
):
    """Builds Wave-ViT-L, the official large model (57.5M, 14.8 GMACs).

    `PRESETS["large"]`; a backbone's pyramid has strides (4, 8, 16, 32).
    Arguments as `WaveViT`; `input_shape` defaults to `(224, 224, 3)` and
    `drop_path_rate` to 0.3. `token_label=True` matches the released
    checkpoints.

    Returns:
        A `keras.Model`.

    Example:

    >>> model = WaveViTLarge(num_classes=10)  # doctest: +SKIP
    >>> model.output_shape  # doctest: +SKIP
    (None, 10)
    """
    return _preset_model("large", **locals())
