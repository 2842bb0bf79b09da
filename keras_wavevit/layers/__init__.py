"""Wave-ViT Keras layers: wavelets, attention, blocks, head, normalisation.

Modules, lowest first: `checks` (argument and input checks), `defaults`
(official numerics), `fusion` (fused elementwise ops and their switch),
`normalization`, `dense` (projections as one 2-D matmul), `wavelets`,
`attention`, `blocks`, `head`.

Example:

>>> import numpy as np
>>> from keras_wavevit import layers
>>> layers.DWT2D()(np.zeros((1, 4, 4, 2), "float32")).shape
TensorShape([1, 2, 2, 8])
"""

from keras_wavevit.layers.attention import Attention, ClassAttention, WaveAttention
from keras_wavevit.layers.blocks import Block, DepthwiseConvGELU, DownSample, MixFFN, Stem
from keras_wavevit.layers.checks import InputCheck
from keras_wavevit.layers.dense import Dense
from keras_wavevit.layers.head import ClassBlock, ClassTokenPool, MeanClassToken, TokenLabelHead
from keras_wavevit.layers.normalization import BatchNormalization, LayerNormalization
from keras_wavevit.layers.wavelets import DWT2D, IDWT2D, haar_dwt2d, haar_idwt2d

__all__ = [
    "Attention",
    "BatchNormalization",
    "Block",
    "ClassAttention",
    "ClassBlock",
    "ClassTokenPool",
    "DWT2D",
    "Dense",
    "DepthwiseConvGELU",
    "DownSample",
    "IDWT2D",
    "InputCheck",
    "LayerNormalization",
    "MeanClassToken",
    "MixFFN",
    "Stem",
    "TokenLabelHead",
    "WaveAttention",
    "haar_dwt2d",
    "haar_idwt2d",
]
