"""Wave-ViT for Keras 3: wavelet layers, the model family and tools."""

from keras_wavevit.layers.attention import Attention, ClassAttention, WaveAttention
from keras_wavevit.layers.blocks import (
    Block,
    ClassBlock,
    DownSample,
    MeanClassToken,
    MixFFN,
    Stem,
    TokenLabelHead,
)
from keras_wavevit.weights.official import load_official_weights
from keras_wavevit.model import (
    VARIANTS,
    WaveViT,
    WaveViTBase,
    WaveViTLarge,
    WaveViTSmall,
    WaveViTTiny,
    build_variant,
    required_input_multiple,
)
from keras_wavevit.layers.wavelets import DWT2D, IDWT2D, haar_dwt2d, haar_idwt2d
from keras_wavevit.export import export_saved_model

__version__ = "0.1.0"
