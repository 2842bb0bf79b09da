"""The functional Wave-ViT builder and its variants (tiny, small, base, large).

Layer names follow the official PyTorch modules (after `input_check`, which
checks the images' rank, channels and size): `patch_embed1` (stem),
`patch_embed2..4` (downsampling), `block{stage}_{index}`, `norm1..4`,
`post_network_0` (class-attention block) and `head` (classifier with the
optional `aux_head`).
"""

import math
import numbers
import os

import keras

from keras_wavevit.layers.blocks import (
    LAYER_NORM_EPSILON,
    Block,
    ClassBlock,
    DownSample,
    MeanClassToken,
    Stem,
    TokenLabelHead,
)

NUM_STAGES = 4
# Stages 1-2 use WaveAttention, stages 3-4 plain attention (as official).
NUM_WAVE_STAGES = 2
POOLINGS = (None, "avg", "cls")

VARIANTS = {
    # A CIFAR-size model: the stem downsamples by 2, not 4, so a 32x32 image
    # gives stage grids 16, 8, 4, 2 (the official configs would reach 1x1).
    "tiny": dict(
        stem_hidden_dim=32,
        embed_dims=(64, 128, 192, 256),
        num_heads=(2, 4, 6, 8),
        mlp_ratios=(4, 4, 4, 4),
        depths=(2, 2, 2, 2),
        sr_ratios=(2, 1, 1, 1),
        stem_stride=2,
        drop_path_rate=0.1,
        input_shape=(32, 32, 3),
    ),
    "small": dict(
        stem_hidden_dim=32,
        embed_dims=(64, 128, 320, 448),
        num_heads=(2, 4, 10, 14),
        mlp_ratios=(8, 8, 4, 4),
        depths=(3, 4, 6, 3),
        sr_ratios=(4, 2, 1, 1),
        stem_stride=4,
        drop_path_rate=0.1,
        input_shape=(224, 224, 3),
    ),
    "base": dict(
        stem_hidden_dim=64,
        embed_dims=(64, 128, 320, 512),
        num_heads=(2, 4, 10, 16),
        mlp_ratios=(8, 8, 4, 4),
        depths=(3, 4, 12, 3),
        sr_ratios=(4, 2, 1, 1),
        stem_stride=4,
        drop_path_rate=0.1,
        input_shape=(224, 224, 3),
    ),
    "large": dict(
        stem_hidden_dim=64,
        embed_dims=(96, 192, 384, 512),
        num_heads=(3, 6, 12, 16),
        mlp_ratios=(8, 8, 4, 4),
        depths=(3, 6, 18, 3),
        sr_ratios=(4, 2, 1, 1),
        stem_stride=4,
        drop_path_rate=0.3,
        input_shape=(224, 224, 3),
    ),
}


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


@keras.saving.register_keras_serializable(package="keras_wavevit")
class InputCheck(keras.layers.Layer):
    """Passes images through unchanged after checking rank, channels and size.

    Wave-ViT needs NHWC images with the channel count it was built for and
    height and width divisible by `multiple` (see `required_input_multiple`);
    other sizes would give silently wrong stage grids. Everything known when
    the model is called or traced is checked with a `ValueError`; sizes only
    known at run time (`None` in `input_shape`, inside a graph) are checked
    by a TensorFlow assertion that fails the step.

    Args:
        multiple: The number height and width must be multiples of.
        channels: The channel count the model was built for; `None` skips
            the channel check.
        **kwargs: Standard `keras.layers.Layer` arguments.

    Example:

    >>> import numpy as np
    >>> layer = InputCheck(multiple=16, channels=3)
    >>> layer(np.zeros((1, 32, 48, 3), "float32")).shape
    TensorShape([1, 32, 48, 3])
    """

    def __init__(self, multiple, channels=None, **kwargs):
        super().__init__(**kwargs)
        if not _is_int(multiple) or multiple < 1:
            raise ValueError(
                f"multiple must be a positive integer; received multiple={multiple!r}."
            )
        if channels is not None and (not _is_int(channels) or channels < 1):
            raise ValueError(
                f"channels must be None or a positive integer; received channels={channels!r}."
            )
        self.multiple = multiple
        self.channels = channels

    def _check_static(self, shape):
        shape = tuple(shape)
        if len(shape) != 4:
            raise ValueError(
                "Wave-ViT expects images (batch, height, width, channels); "
                f"received input of rank {len(shape)} with shape {shape}."
            )
        if self.channels is not None and shape[-1] not in (None, self.channels):
            raise ValueError(
                f"This Wave-ViT was built for images with {self.channels} channels; "
                f"received input shape {shape} ({shape[-1]} channels)."
            )
        for axis_name, size in zip(("height", "width"), shape[1:3]):
            if size is not None and size % self.multiple:
                raise ValueError(
                    f"Input {axis_name} must be a multiple of {self.multiple} for this "
                    f"Wave-ViT configuration; received input shape {shape} "
                    f"({axis_name} {size})."
                )

    def build(self, input_shape):
        self._check_static(input_shape)
        self.built = True

    def call(self, inputs):
        self._check_static(inputs.shape)
        if None in inputs.shape[1:3] and keras.backend.backend() == "tensorflow":
            import tensorflow as tf

            size = tf.shape(inputs)[1:3]
            tf.debugging.assert_equal(
                size % self.multiple,
                tf.zeros_like(size),
                message=(
                    f"Input height and width must be multiples of {self.multiple} "
                    "for this Wave-ViT configuration"
                ),
            )
        return inputs

    def compute_output_shape(self, input_shape):
        return tuple(input_shape)

    def get_config(self):
        config = super().get_config()
        config.update({"multiple": self.multiple, "channels": self.channels})
        return config


@keras.saving.register_keras_serializable(package="keras_wavevit")
class ClassTokenPool(keras.layers.Layer):
    """Takes the class token (the first) of a token sequence.

    Used by `WaveViT(include_top=False, pooling="cls")`: the class-attention
    head's normalised class token is the image embedding.

    Args:
        **kwargs: Standard `keras.layers.Layer` arguments.

    Example:

    >>> import numpy as np
    >>> layer = ClassTokenPool()
    >>> layer(np.zeros((2, 17, 32), "float32")).shape
    TensorShape([2, 32])
    """

    def build(self, input_shape):
        if len(input_shape) != 3:
            raise ValueError(
                "ClassTokenPool expects tokens (batch, 1 + tokens, channels); "
                f"received shape {tuple(input_shape)}."
            )
        self.built = True

    def call(self, inputs):
        return inputs[:, 0]

    def compute_output_shape(self, input_shape):
        return (input_shape[0], input_shape[-1])


def _is_int(value):
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def _validate_builder_args(
    stem_hidden_dim, stem_stride, include_top, pooling, num_classes, token_label, weights
):
    if not _is_int(stem_hidden_dim) or stem_hidden_dim < 1:
        raise ValueError(
            "stem_hidden_dim must be a positive integer; received "
            f"stem_hidden_dim={stem_hidden_dim!r}."
        )
    if stem_stride not in (2, 4):
        raise ValueError(
            f"stem_stride must be 2 or 4; received stem_stride={stem_stride!r}."
        )
    if not isinstance(include_top, bool):
        raise ValueError(
            f"include_top must be True or False; received include_top={include_top!r}."
        )
    if pooling not in POOLINGS:
        raise ValueError(
            f"pooling must be one of {list(POOLINGS)}; received pooling={pooling!r}."
        )
    if include_top and pooling is not None:
        raise ValueError(
            "pooling is only used with include_top=False (the classifier already "
            f"pools the class token); received include_top=True, pooling={pooling!r}."
        )
    if include_top and (not _is_int(num_classes) or num_classes < 1):
        raise ValueError(
            f"num_classes must be a positive integer; received num_classes={num_classes!r}."
        )
    if token_label and not include_top:
        raise ValueError(
            "token_label adds a classifier head and needs include_top=True; "
            "received include_top=False, token_label=True."
        )
    if weights is not None and not (
        isinstance(weights, (str, os.PathLike)) and os.path.exists(weights)
    ):
        raise ValueError(
            "weights must be None or the path of an existing Keras weights file; "
            f"received weights={weights!r}."
        )


def _validate_config(embed_dims, num_heads, mlp_ratios, depths, sr_ratios):
    lists = dict(
        embed_dims=embed_dims,
        num_heads=num_heads,
        mlp_ratios=mlp_ratios,
        depths=depths,
        sr_ratios=sr_ratios,
    )
    for name, values in lists.items():
        if not isinstance(values, (list, tuple)) or len(values) != NUM_STAGES:
            raise ValueError(
                f"{name} must have one entry per stage ({NUM_STAGES}); "
                f"received {name}={values!r}."
            )
        if name != "mlp_ratios" and not all(_is_int(value) for value in values):
            raise ValueError(f"{name} must hold integers; received {name}={values!r}.")
        if name == "mlp_ratios" and not all(
            isinstance(value, numbers.Real) and not isinstance(value, bool)
            for value in values
        ):
            raise ValueError(f"{name} must hold numbers; received {name}={values!r}.")
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
    for stage, (depth, ratio, mlp) in enumerate(zip(depths, sr_ratios, mlp_ratios)):
        if depth < 1:
            raise ValueError(f"depths[{stage}] must be >= 1; received {depth}.")
        if ratio < 1:
            raise ValueError(f"sr_ratios[{stage}] must be >= 1; received {ratio}.")
        if mlp <= 0:
            raise ValueError(f"mlp_ratios[{stage}] must be > 0; received {mlp}.")


def _validate_input_shape(input_shape, multiple):
    if not isinstance(input_shape, (list, tuple)) or len(input_shape) != 3:
        raise ValueError(
            "input_shape must be (height, width, channels), without the batch "
            f"axis; received input_shape={input_shape!r}."
        )
    if not _is_int(input_shape[-1]) or input_shape[-1] < 1:
        raise ValueError(
            "input_shape must have a known, positive channel count; received "
            f"input_shape={tuple(input_shape)}."
        )
    for axis_name, size in zip(("height", "width"), input_shape[:2]):
        if size is not None and (not _is_int(size) or size < 1):
            raise ValueError(
                f"input_shape {axis_name} must be a positive integer or None; "
                f"received input_shape={tuple(input_shape)}."
            )
        if size is not None and size % multiple:
            raise ValueError(
                f"Input {axis_name} must be a multiple of {multiple} for this "
                f"Wave-ViT configuration; received input_shape="
                f"{tuple(input_shape)} ({axis_name} {size})."
            )


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


def WaveViT(
    embed_dims,
    num_heads,
    mlp_ratios,
    depths,
    sr_ratios,
    stem_hidden_dim,
    stem_stride=4,
    include_top=True,
    weights=None,
    input_shape=None,
    num_classes=1000,
    classifier_activation=None,
    token_label=False,
    drop_path_rate=0.0,
    pooling=None,
    name="wave_vit",
):
    """Builds a functional Wave-ViT model of any configuration.

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

      (strides 4, 8, 16, 32 for S/B/L; `feature_strides(stem_stride)`).
      Each map is the output of its stage's LayerNorm, exactly the activation
      of the layer of that name in the classifier. An `(H, W)` input gives
      stage `i` maps of size `(H / s_i, W / s_i)`; non-square and unknown
      (`None`) sizes work. `list(model.output.values())` or
      `[outputs[k] for k in ("stage1", ..., "stage4")]` gives the
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
        embed_dims: Channels of the four stages; stages 1-2 (wavelet
            attention) need multiples of 4.
        num_heads: Attention heads of the four stages; each must divide its
            stage's `embed_dims`.
        mlp_ratios: FFN hidden width of each stage, as a multiple.
        depths: Number of blocks in each stage.
        sr_ratios: Key/value embedding strides of the wavelet stages (1-2),
            each >= 1; stages 3-4 use standard attention, their values must
            be 1.
        stem_hidden_dim: Channels of the stem convolutions.
        stem_stride: 4 (official) or 2 (small images).
        include_top: With the classifier, or a backbone (see above).
        weights: `None` (random init) or the path of a Keras weights file
            (`.weights.h5`). Official PyTorch checkpoints load through
            `keras_wavevit.load_official_weights`.
        input_shape: `(height, width, channels)`; `None` for height and width
            allows any size. Defaults to `(224, 224, 3)`. Height and width
            must be multiples of `required_input_multiple(stem_stride,
            sr_ratios)` (32 for the official configs). Channels other than 3
            are allowed for custom models.
        num_classes: Classes of the classifier (`include_top=True` only).
        classifier_activation: Activation on the output (`None` = logits,
            `"softmax"`); always computed in float32. Ignored without top.
        token_label: Adds the official auxiliary token head: logits are
            `head(cls) + 0.5 * max(aux_head(tokens))`. Needed to reproduce
            the released checkpoints; off for training from scratch. Needs
            `include_top=True`.
        drop_path_rate: Stochastic depth rate, rising linearly over blocks
            from 0 to this value.
        pooling: `None`, `"avg"` or `"cls"`; only with `include_top=False`.
        name: Model name.

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
    >>> backbone = WaveViT(
    ...     embed_dims=(16, 32, 64, 96), num_heads=(1, 2, 4, 6),
    ...     mlp_ratios=(2, 2, 2, 2), depths=(1, 1, 1, 1),
    ...     sr_ratios=(4, 2, 1, 1), stem_hidden_dim=8, include_top=False,
    ...     input_shape=(64, 96, 3))
    >>> for key, feature in backbone.output.items():
    ...     print(key, feature.shape)
    stage1 (None, 16, 24, 16)
    stage2 (None, 8, 12, 32)
    stage3 (None, 4, 6, 64)
    stage4 (None, 2, 3, 96)
    """
    _validate_builder_args(
        stem_hidden_dim,
        stem_stride,
        include_top,
        pooling,
        num_classes,
        token_label,
        weights,
    )
    _validate_config(embed_dims, num_heads, mlp_ratios, depths, sr_ratios)
    if any(ratio != 1 for ratio in sr_ratios[NUM_WAVE_STAGES:]):
        raise ValueError(
            "sr_ratios of stages 3-4 (standard attention) must be 1; "
            f"received sr_ratios={list(sr_ratios)}."
        )
    if not isinstance(drop_path_rate, numbers.Real) or not 0.0 <= drop_path_rate < 1.0:
        raise ValueError(
            f"drop_path_rate must be in [0, 1); received drop_path_rate={drop_path_rate!r}."
        )
    input_shape = (224, 224, 3) if input_shape is None else input_shape
    multiple = required_input_multiple(stem_stride, sr_ratios)
    _validate_input_shape(input_shape, multiple)
    input_shape = tuple(input_shape)

    inputs = keras.Input(shape=input_shape, name="images")
    total_blocks = sum(depths)
    block_rates = [
        drop_path_rate * index / max(total_blocks - 1, 1) for index in range(total_blocks)
    ]
    features = {}
    x = InputCheck(multiple, channels=input_shape[-1], name="input_check")(inputs)
    x = Stem(stem_hidden_dim, embed_dims[0], stride=stem_stride, name="patch_embed1")(x)
    block_index = 0
    for stage in range(NUM_STAGES):
        if stage > 0:
            x = DownSample(embed_dims[stage], name=f"patch_embed{stage + 1}")(x)
        for index in range(depths[stage]):
            x = Block(
                embed_dims[stage],
                num_heads[stage],
                mlp_ratios[stage],
                sr_ratio=sr_ratios[stage],
                attention_type="wave" if stage < NUM_WAVE_STAGES else "standard",
                drop_path_rate=block_rates[block_index],
                name=f"block{stage + 1}_{index}",
            )(x)
            block_index += 1
        if stage < NUM_STAGES - 1:
            x = keras.layers.LayerNormalization(
                epsilon=LAYER_NORM_EPSILON, name=f"norm{stage + 1}"
            )(x)
        features[f"stage{stage + 1}"] = x

    final_norm = keras.layers.LayerNormalization(
        epsilon=LAYER_NORM_EPSILON, name=f"norm{NUM_STAGES}"
    )
    if include_top or pooling == "cls":
        tokens = MeanClassToken(name="class_token")(x)
        tokens = ClassBlock(
            embed_dims[-1], num_heads[-1], mlp_ratios[-1], name="post_network_0"
        )(tokens)
        tokens = final_norm(tokens)
    if include_top:
        logits = TokenLabelHead(num_classes, token_label=token_label, name="head")(tokens)
        outputs = keras.layers.Activation(
            classifier_activation, dtype="float32", name="predictions"
        )(logits)
    elif pooling == "cls":
        outputs = ClassTokenPool(name="cls_pool")(tokens)
    else:
        features[f"stage{NUM_STAGES}"] = final_norm(x)
        if pooling == "avg":
            outputs = keras.layers.GlobalAveragePooling2D(name="avg_pool")(
                features[f"stage{NUM_STAGES}"]
            )
        else:
            outputs = features
    model = keras.Model(inputs, outputs, name=name)
    if weights is not None:
        model.load_weights(weights)
    return model


def _variant_builder(variant, default_name):
    config = VARIANTS[variant]

    def build(
        include_top=True,
        weights=None,
        input_shape=None,
        num_classes=1000,
        classifier_activation=None,
        token_label=False,
        drop_path_rate=config["drop_path_rate"],
        pooling=None,
        name=default_name,
    ):
        architecture = {
            key: value
            for key, value in config.items()
            if key not in ("drop_path_rate", "input_shape")
        }
        return WaveViT(
            **architecture,
            include_top=include_top,
            weights=weights,
            input_shape=config["input_shape"] if input_shape is None else input_shape,
            num_classes=num_classes,
            classifier_activation=classifier_activation,
            token_label=token_label,
            drop_path_rate=drop_path_rate,
            pooling=pooling,
            name=name,
        )

    build.__name__ = default_name
    return build


_VARIANT_DOC = """Builds Wave-ViT-{label}: {summary}.

    Args:
        include_top: With the classifier; without it a backbone: the
            feature pyramid dict `{{"stage1": ..., "stage4": ...}}` of NHWC
            maps at strides `{strides}` (see `WaveViT`), or a vector with
            `pooling`.
        weights: `None` or the path of a Keras `.weights.h5` file.
        input_shape: `(height, width, 3)`, `None` entries for any size;
            defaults to `{default_size}`.
        num_classes: Classes of the classifier.
        classifier_activation: `None` (logits) or e.g. `"softmax"`.
        token_label: Adds the official auxiliary token head (needed for the
            released checkpoints).
        drop_path_rate: Stochastic depth rate (default {drop_path_rate}).
        pooling: `None` (pyramid), `"avg"` (mean of the stage-4 map) or
            `"cls"` (normalised class token); only with `include_top=False`.
        name: Model name.

    Returns:
        A `keras.Model`.

    Example:

    >>> import keras_wavevit
    >>> model = keras_wavevit.{function}(num_classes=10{example_args})
    >>> model.output_shape
    (None, 10)
    """


def _make_variant(variant, label, summary, example_args=""):
    function = f"WaveViT{variant.capitalize()}"
    build = _variant_builder(variant, function)
    build.__doc__ = _VARIANT_DOC.format(
        label=label,
        summary=summary,
        default_size=VARIANTS[variant]["input_shape"],
        drop_path_rate=VARIANTS[variant]["drop_path_rate"],
        function=function,
        example_args=example_args,
        strides=tuple(feature_strides(VARIANTS[variant]["stem_stride"]).values()),
    )
    return build


WaveViTTiny = _make_variant(
    "tiny",
    "Tiny",
    "a CIFAR-size model (stem stride 2, so 32x32 images give stage grids 16, 8, 4, 2)",
)
WaveViTSmall = _make_variant("small", "S", "the official small model (22.7M, 4.7 GMACs)")
WaveViTBase = _make_variant("base", "B", "the official base model (33.5M, 7.2 GMACs)")
WaveViTLarge = _make_variant("large", "L", "the official large model (57.5M, 14.8 GMACs)")


def build_variant(variant, **kwargs):
    """Builds a named variant (`"tiny"`, `"small"`, `"base"`, `"large"`).

    Args:
        variant: One of `VARIANTS`.
        **kwargs: Arguments of the variant builders (`num_classes`, ...).

    Returns:
        A `keras.Model`.

    Example:

    >>> model = build_variant("tiny", input_shape=(32, 32, 3), num_classes=10)
    >>> model.name
    'WaveViTTiny'
    """
    builders = {
        "tiny": WaveViTTiny,
        "small": WaveViTSmall,
        "base": WaveViTBase,
        "large": WaveViTLarge,
    }
    if variant not in builders:
        raise ValueError(
            f"Unknown Wave-ViT variant {variant!r}; expected one of {sorted(builders)}."
        )
    return builders[variant](**kwargs)
