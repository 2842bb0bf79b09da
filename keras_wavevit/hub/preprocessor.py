"""The keras-hub preprocessing of Wave-ViT: `WaveViTImageConverter` and
`WaveViTImageClassifierPreprocessor`."""

import keras
from keras import ops
from keras_hub.layers import ImageConverter
from keras_hub.models import ImageClassifierPreprocessor

from keras_wavevit.hub.backbone import WaveViTBackbone
from keras_wavevit.preprocessing import IMAGENET_MEAN, IMAGENET_STD, official_resize_size


@keras.saving.register_keras_serializable(package="keras_wavevit")
class WaveViTImageConverter(ImageConverter):
    """Resizes images and normalises them with a mean and standard deviation.

    keras-hub's `ImageConverter` (resize to `image_size`, then `(pixels /
    255 - mean) / std`), described by `mean`/`std` instead of
    `scale`/`offset`. Without `crop_pct` the resize does not keep the aspect
    ratio (as the training recipe and the export's `"resize"`); with
    `crop_pct`, images are resized to `floor(image_size / crop_pct)`
    (cropped to the aspect ratio first, so the short side gets that size)
    and centre-cropped to `image_size`: the official evaluation transform
    with `crop_pct=0.96`, bicubic, up to resampling details (the crop is
    taken before the resize, and the resize is not PIL's); the exact
    transform is `keras_wavevit.preprocessing.preprocess_official`.

    Args:
        image_size: `(height, width)` of the output.
        mean: Per-channel mean of pixel values in [0, 1].
        std: Per-channel standard deviation of pixel values in [0, 1].
        crop_pct: `None` (resize only) or the centre-crop fraction in (0, 1]
            (`keras_wavevit.preprocessing.official_resize_size`).
        interpolation: Resize interpolation (`"bilinear"`, `"bicubic"`, ...).
        crop_to_aspect_ratio: Crop to `image_size`'s aspect ratio before the
            resize (keras-hub's default; here off).
        **kwargs: Other `keras_hub.layers.ImageConverter` arguments.

    Example:

    >>> import numpy as np
    >>> converter = WaveViTImageConverter(image_size=(4, 4), crop_pct=0.96,
    ...                                   interpolation="bicubic")
    >>> tuple(converter(np.full((1, 8, 8, 3), 255.0)).shape)
    (1, 4, 4, 3)
    """

    backbone_cls = WaveViTBackbone

    def __init__(
        self,
        image_size=None,
        mean=IMAGENET_MEAN,
        std=IMAGENET_STD,
        crop_pct=None,
        interpolation="bilinear",
        crop_to_aspect_ratio=False,
        **kwargs,
    ):
        if crop_pct is not None and image_size is not None:
            official_resize_size(tuple(image_size), crop_pct)  # checks both
        kwargs.pop("scale", None)
        kwargs.pop("offset", None)
        super().__init__(
            image_size=image_size,
            scale=[1.0 / (255.0 * value) for value in std],
            offset=[-m / s for m, s in zip(mean, std)],
            interpolation=interpolation,
            crop_to_aspect_ratio=crop_to_aspect_ratio,
            **kwargs,
        )
        self.mean = list(mean)
        self.std = list(std)
        self.crop_pct = crop_pct

    def call(self, inputs):
        if self.crop_pct is not None and self.image_size is not None:
            inputs = self._resize_and_crop(inputs)
        return super().call(inputs)

    def _resize_and_crop(self, images):
        height, width = self.image_size
        larger = official_resize_size((height, width), self.crop_pct)
        images = ops.image.resize(
            ops.cast(images, self.compute_dtype), larger, interpolation=self.interpolation,
            antialias=self.antialias, crop_to_aspect_ratio=True,
        )
        top, left = (larger[0] - height) // 2, (larger[1] - width) // 2
        return images[..., top : top + height, left : left + width, :]

    def get_config(self):
        config = super().get_config()
        del config["scale"], config["offset"]
        config.update({"mean": self.mean, "std": self.std, "crop_pct": self.crop_pct})
        return config


@keras.saving.register_keras_serializable(package="keras_wavevit")
class WaveViTImageClassifierPreprocessor(ImageClassifierPreprocessor):
    """keras-hub's image-classifier preprocessor with a `WaveViTImageConverter`.

    Example:

    >>> preprocessor = WaveViTImageClassifierPreprocessor(
    ...     WaveViTImageConverter(image_size=(32, 32)))
    >>> preprocessor.image_converter.crop_pct is None
    True
    """

    backbone_cls = WaveViTBackbone
    image_converter_cls = WaveViTImageConverter
