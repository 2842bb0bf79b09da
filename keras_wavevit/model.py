"""The functional Wave-ViT builder and its variants (tiny, small, base, large).

Layer names follow the official PyTorch modules: `patch_embed1` (stem),
`patch_embed2..4` (downsampling), `block{stage}_{index}`, `norm1..4`,
`post_network_0` (class-attention block) and `head` (classifier with the
optional `aux_head`).
"""

import math

import keras

from keras_wavevit.blocks import (
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


def _validate_config(embed_dims, num_heads, mlp_ratios, depths, sr_ratios):
    lists = dict(
        embed_dims=embed_dims,
        num_heads=num_heads,
        mlp_ratios=mlp_ratios,
        depths=depths,
        sr_ratios=sr_ratios,
    )
    for name, values in lists.items():
        if len(values) != NUM_STAGES:
            raise ValueError(
                f"{name} must have one entry per stage ({NUM_STAGES}); "
                f"received {name}={list(values)}."
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
    if len(input_shape) != 3 or input_shape[-1] is None:
        raise ValueError(
            "input_shape must be (height, width, channels) with known "
            f"channels; received input_shape={tuple(input_shape)}."
        )
    for axis_name, size in zip(("height", "width"), input_shape[:2]):
        if size is not None and size % multiple:
            raise ValueError(
                f"Input {axis_name} must be a multiple of {multiple} for this "
                f"Wave-ViT configuration; received input_shape="
                f"{tuple(input_shape)} ({axis_name} {size})."
            )


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
    name="wave_vit",
):
    """Builds a functional Wave-ViT model of any configuration.

    Args:
        embed_dims: Channels of the four stages.
        num_heads: Attention heads of the four stages.
        mlp_ratios: FFN hidden width of each stage, as a multiple.
        depths: Number of blocks in each stage.
        sr_ratios: Key/value embedding strides of the wavelet stages (1-2);
            stages 3-4 use standard attention, their values must be 1.
        stem_hidden_dim: Channels of the stem convolutions.
        stem_stride: 4 (official) or 2 (small images).
        include_top: With the classifier; without it the model returns the
            feature pyramid `{"stage1": ..., "stage4": ...}` (NHWC maps at
            strides `stem_stride * (1, 2, 4, 8)`).
        weights: `None` (random init) or the path of a Keras weights file
            (`.weights.h5`). Official PyTorch checkpoints load through
            `keras_wavevit.load_official_weights`.
        input_shape: `(height, width, 3)`; `None` entries allow any size.
            Defaults to `(224, 224, 3)`. Height and width must be multiples
            of `required_input_multiple(stem_stride, sr_ratios)` (32 for the
            official configs).
        num_classes: Classes of the classifier.
        classifier_activation: Activation on the output (`None` = logits,
            `"softmax"`); always computed in float32.
        token_label: Adds the official auxiliary token head: logits are
            `head(cls) + 0.5 * max(aux_head(tokens))`. Needed to reproduce
            the released checkpoints; off for training from scratch.
        drop_path_rate: Stochastic depth rate, rising linearly over blocks
            from 0 to this value.
        name: Model name.

    Returns:
        A `keras.Model`.

    Example:

    >>> model = WaveViT(
    ...     embed_dims=(16, 32, 64, 96), num_heads=(1, 2, 4, 6),
    ...     mlp_ratios=(2, 2, 2, 2), depths=(1, 1, 1, 1),
    ...     sr_ratios=(4, 2, 1, 1), stem_hidden_dim=8,
    ...     input_shape=(64, 64, 3), num_classes=10)
    >>> model.output_shape
    (None, 10)
    """
    _validate_config(embed_dims, num_heads, mlp_ratios, depths, sr_ratios)
    if any(ratio != 1 for ratio in sr_ratios[NUM_WAVE_STAGES:]):
        raise ValueError(
            "sr_ratios of stages 3-4 (standard attention) must be 1; "
            f"received sr_ratios={list(sr_ratios)}."
        )
    if not 0.0 <= drop_path_rate < 1.0:
        raise ValueError(
            f"drop_path_rate must be in [0, 1); received drop_path_rate={drop_path_rate}."
        )
    input_shape = (224, 224, 3) if input_shape is None else tuple(input_shape)
    _validate_input_shape(input_shape, required_input_multiple(stem_stride, sr_ratios))

    inputs = keras.Input(shape=input_shape, name="images")
    total_blocks = sum(depths)
    block_rates = [
        drop_path_rate * index / max(total_blocks - 1, 1) for index in range(total_blocks)
    ]
    features = {}
    x = Stem(stem_hidden_dim, embed_dims[0], stride=stem_stride, name="patch_embed1")(
        inputs
    )
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
    if not include_top:
        features[f"stage{NUM_STAGES}"] = final_norm(x)
        model = keras.Model(inputs, features, name=name)
    else:
        tokens = MeanClassToken(name="class_token")(x)
        tokens = ClassBlock(
            embed_dims[-1], num_heads[-1], mlp_ratios[-1], name="post_network_0"
        )(tokens)
        tokens = final_norm(tokens)
        logits = TokenLabelHead(num_classes, token_label=token_label, name="head")(tokens)
        outputs = keras.layers.Activation(
            classifier_activation, dtype="float32", name="predictions"
        )(logits)
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
            name=name,
        )

    build.__name__ = default_name
    return build


_VARIANT_DOC = """Builds Wave-ViT-{label}: {summary}.

    Args:
        include_top: With the classifier, or the feature pyramid dict.
        weights: `None` or the path of a Keras `.weights.h5` file.
        input_shape: `(height, width, 3)`, `None` entries for any size;
            defaults to `{default_size}`.
        num_classes: Classes of the classifier.
        classifier_activation: `None` (logits) or e.g. `"softmax"`.
        token_label: Adds the official auxiliary token head (needed for the
            released checkpoints).
        drop_path_rate: Stochastic depth rate (default {drop_path_rate}).
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
