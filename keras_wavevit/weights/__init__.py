"""Reading checkpoints and mapping the official Wave-ViT weights.

- `checkpoint`: generic checkpoint reading (`.pth`/`.pth.tar` via torch,
  `.npz`, `.safetensors`, training-checkpoint wrappers, name prefixes).
- `official`: the Wave-ViT name table, the conversion plan and its report,
  `load_official_weights`.
- `converter`: one checkpoint file -> one Keras file (`keras-wavevit convert`).
- `model_file`: loading a saved `.keras` model with a clear error when the
  file is damaged.
"""

from keras_wavevit.weights.checkpoint import read_checkpoint
from keras_wavevit.weights.converter import convert_checkpoint
from keras_wavevit.weights.model_file import load_model_file
from keras_wavevit.weights.official import (
    CheckpointMismatchError,
    describe_plan,
    load_official_weights,
)

__all__ = [
    "CheckpointMismatchError",
    "convert_checkpoint",
    "describe_plan",
    "load_model_file",
    "load_official_weights",
    "read_checkpoint",
]
