"""keras-hub classes for Wave-ViT (the optional `hub` extra: `pip install "keras-wavevit[hub]"`).

Importing this package imports keras-hub and registers the classes, so
keras-hub's `from_preset` reads a Wave-ViT preset directory
(`keras_wavevit.presets.save_preset`, `keras-wavevit convert --preset`):

- `WaveViTBackbone`: a `keras_hub.models.FeaturePyramidBackbone`; its
  output is the stage-4 map and `pyramid_outputs` the four stage maps keyed
  by stride (`"P2"`..`"P5"` for the official stem).
- `WaveViTImageClassifier`: a `keras_hub.models.ImageClassifier` with the
  official class-attention head.
- `WaveViTImageClassifierPreprocessor`, `WaveViTImageConverter`: resize (or
  the official `crop_pct` centre crop) and ImageNet normalisation.

`import keras_wavevit` never imports this package (nor keras-hub).

Example:

>>> import keras_hub, keras_wavevit.hub  # doctest: +SKIP
>>> classifier = keras_hub.models.ImageClassifier.from_preset(
...     "wavevit_s_preset")  # doctest: +SKIP
"""

try:
    import keras_hub  # noqa: F401
except ImportError as error:
    raise ImportError(
        'keras_wavevit.hub needs keras-hub: pip install "keras-wavevit[hub]".'
    ) from error

from keras_wavevit.hub.backbone import WaveViTBackbone  # noqa: E402
from keras_wavevit.hub.classifier import WaveViTImageClassifier  # noqa: E402
from keras_wavevit.hub.preprocessor import (  # noqa: E402
    WaveViTImageClassifierPreprocessor,
    WaveViTImageConverter,
)

__all__ = [
    "WaveViTBackbone",
    "WaveViTImageClassifier",
    "WaveViTImageClassifierPreprocessor",
    "WaveViTImageConverter",
]
