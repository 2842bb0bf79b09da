"""Wave-ViT for Keras 3: the model family, its config, weights and export.

The public API: the builders (`WaveViT`, `WaveViTTiny/Small/Base/Large`),
the architecture description (`WaveViTConfig`, `PRESETS`,
`resolve_config`), official-weight loading (`load_official_weights`,
`CheckpointMismatchError`), export as a SavedModel (`export_saved_model`) or
as ONNX, OpenVINO or LiteRT (`export_model`), both loaded on first use
(they need TensorFlow), the shared pixel normalisation, the official
evaluation transform (`preprocess_official`), the ImageNet-1k class names
with `decode_predictions`, local presets (`save_preset`, `load_preset`,
`read_preset`), and the fusion switch (`fused_ops`). Layers live
in `keras_wavevit.layers`, the one-loop `AdamW` in `keras_wavevit.optimizers`
(registered here, so files saved with it load); the training recipes in
`keras_wavevit.recipes` (not imported here). Imported before TensorFlow,
the package turns TensorFlow's oneDNN CPU kernels on (see below).

Example:

>>> import keras_wavevit
>>> keras_wavevit.WaveViT("tiny", num_classes=10).output_shape
(None, 10)
>>> keras_wavevit.PRESETS["small"].embed_dims
(64, 128, 320, 448)
"""

import os
import sys

if "tensorflow" not in sys.modules:
    # TensorFlow turns on its oneDNN CPU kernels by itself only on CPUs with
    # AVX-512 VNNI/BF16 or AMX; on AVX2 CPUs they run Wave-ViT 1.4-1.6x
    # faster (BENCHMARKS.md, "Speed against the official code"). An explicit
    # TF_ENABLE_ONEDNN_OPTS, or TensorFlow imported before this package, wins.
    os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "1")

from keras_wavevit.config import PRESETS, WaveViTConfig, resolve_config
from keras_wavevit.layers.fusion import fused_ops
from keras_wavevit.model import (
    WaveViT,
    WaveViTBase,
    WaveViTLarge,
    WaveViTSmall,
    WaveViTTiny,
)
from keras_wavevit import optimizers  # noqa: F401  (registers AdamW for loading files)
from keras_wavevit.imagenet import IMAGENET_CLASS_NAMES, decode_predictions
from keras_wavevit.preprocessing import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    OFFICIAL_CROP_PCT,
    normalize_images,
    preprocess_official,
)
from keras_wavevit.presets import load_preset, read_preset, save_preset
from keras_wavevit.weights import CheckpointMismatchError, load_official_weights

__version__ = "0.1.0"

__all__ = [
    "CheckpointMismatchError",
    "IMAGENET_CLASS_NAMES",
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "OFFICIAL_CROP_PCT",
    "PRESETS",
    "WaveViT",
    "WaveViTBase",
    "WaveViTConfig",
    "WaveViTLarge",
    "WaveViTSmall",
    "WaveViTTiny",
    "__version__",
    "decode_predictions",
    "export_model",
    "export_saved_model",
    "fused_ops",
    "load_official_weights",
    "load_preset",
    "normalize_images",
    "preprocess_official",
    "read_preset",
    "resolve_config",
    "save_preset",
]


def __getattr__(name):
    # The exporters import TensorFlow: load them on first use only.
    if name == "export_saved_model":
        from keras_wavevit.export import export_saved_model

        return export_saved_model
    if name == "export_model":
        from keras_wavevit.export_formats import export_model

        return export_model
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
