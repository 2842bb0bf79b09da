"""`WaveViTBackbone`: Wave-ViT as a keras-hub `FeaturePyramidBackbone`."""

import math

import keras
from keras_hub.models import FeaturePyramidBackbone

from keras_wavevit.config import WaveViTConfig
from keras_wavevit.model import WaveViT
from keras_wavevit.precision import dtype_policy_scope


def pyramid_level(stride):
    """The keras-hub pyramid key of a map `stride` times smaller than the image.

    Args:
        stride: A power of two.

    Returns:
        `"P{log2(stride)}"`.

    Example:

    >>> [pyramid_level(stride) for stride in (4, 8, 16, 32)]
    ['P2', 'P3', 'P4', 'P5']
    """
    return f"P{int(math.log2(stride))}"


@keras.saving.register_keras_serializable(package="keras_wavevit")
class WaveViTBackbone(FeaturePyramidBackbone):
    """Wave-ViT's four stages as a keras-hub feature-pyramid backbone.

    The graph and layer names are `keras_wavevit.WaveViT(config,
    include_top=False)`'s, so weights saved from one load into the other.
    The output is the normalised stage-4 map; `pyramid_outputs` holds the
    four stage maps (`norm1`..`norm4`) keyed `"P{log2(stride)}"`: `"P2"`..
    `"P5"` for the official stem (stride 4), `"P1"`..`"P4"` for a stem of
    stride 2 (`"tiny"`).

    Args:
        embed_dims, num_heads, mlp_ratios, depths, sr_ratios,
            stem_hidden_dim, stem_stride, stem_first_stride, drop_path_rate,
            input_shape: The
            `keras_wavevit.WaveViTConfig` fields (checked there).
        dtype: The dtype policy of the backbone.
        **kwargs: Standard `keras.Model` arguments (`name`, `trainable`).

    Example:

    >>> backbone = WaveViTBackbone(
    ...     embed_dims=(8, 16, 32, 32), num_heads=(1, 1, 2, 2),
    ...     mlp_ratios=(2, 2, 2, 2), depths=(1, 1, 1, 1),
    ...     sr_ratios=(2, 1, 1, 1), stem_hidden_dim=8,
    ...     input_shape=(64, 64, 3))
    >>> {key: value.shape[1] for key, value in backbone.pyramid_outputs.items()}
    {'P2': 16, 'P3': 8, 'P4': 4, 'P5': 2}

    Reference:
        Yao et al., "Wave-ViT: Unifying Wavelet and Transformers for Visual
        Representation Learning", ECCV 2022.
    """

    def __init__(
        self,
        embed_dims,
        num_heads,
        mlp_ratios,
        depths,
        sr_ratios,
        stem_hidden_dim,
        stem_stride=4,
        stem_first_stride=None,
        drop_path_rate=0.0,
        input_shape=(None, None, 3),
        dtype=None,
        **kwargs,
    ):
        config = WaveViTConfig(
            embed_dims=embed_dims, num_heads=num_heads, mlp_ratios=mlp_ratios,
            depths=depths, sr_ratios=sr_ratios, stem_hidden_dim=stem_hidden_dim,
            stem_stride=stem_stride, stem_first_stride=stem_first_stride,
            drop_path_rate=drop_path_rate, input_shape=input_shape,
        )
        with dtype_policy_scope(dtype):  # every layer of the model under `dtype`
            model = WaveViT(config, include_top=False)
        super().__init__(
            inputs=model.input, outputs=model.output["stage4"], dtype=dtype, **kwargs
        )
        self.pyramid_outputs = {
            pyramid_level(stride): model.output[stage]
            for stage, stride in config.feature_strides().items()
        }
        self.wavevit_config = config

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                key: list(value) if isinstance(value, tuple) else value
                for key, value in self.wavevit_config.to_dict().items()
            }
        )
        return config
