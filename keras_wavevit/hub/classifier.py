"""`WaveViTImageClassifier`: Wave-ViT's classifier as a keras-hub `ImageClassifier`."""

import keras
from keras_hub.models import ImageClassifier, Task

from keras_wavevit.hub.backbone import WaveViTBackbone
from keras_wavevit.hub.preprocessor import WaveViTImageClassifierPreprocessor
from keras_wavevit.layers.head import ClassBlock, MeanClassToken, TokenLabelHead


@keras.saving.register_keras_serializable(package="keras_wavevit")
class WaveViTImageClassifier(ImageClassifier):
    """A `WaveViTBackbone` with the official class-attention head.

    The head is `keras_wavevit.WaveViT`'s (`class_token`, `post_network_0`,
    the backbone's `norm4` on the class-token sequence, `head`,
    `predictions`) on the backbone's stage-4 map before `norm4`, in one flat
    graph: the classifier computes exactly what `WaveViT(include_top=True)`
    computes, and its weights (`save_task_weights` + the backbone's) load
    into it and back (a preset directory holds both).

    Args:
        backbone: A `WaveViTBackbone`.
        num_classes: Number of classes.
        preprocessor: `None` or a `WaveViTImageClassifierPreprocessor`.
        token_label: Adds the official auxiliary token head (the released
            checkpoints have it).
        activation: Activation of the output (`None` = logits, `"softmax"`),
            computed in float32.
        **kwargs: Standard `keras.Model` arguments (`name`), and keras-hub's
            `compile`.

    Example:

    >>> import numpy as np
    >>> backbone = WaveViTBackbone(
    ...     embed_dims=(8, 16, 32, 32), num_heads=(1, 1, 2, 2),
    ...     mlp_ratios=(2, 2, 2, 2), depths=(1, 1, 1, 1),
    ...     sr_ratios=(2, 1, 1, 1), stem_hidden_dim=8, stem_stride=2,
    ...     input_shape=(32, 32, 3))
    >>> classifier = WaveViTImageClassifier(backbone, num_classes=3)
    >>> classifier.predict(np.zeros((1, 32, 32, 3)), verbose=0).shape
    (1, 3)
    """

    backbone_cls = WaveViTBackbone
    preprocessor_cls = WaveViTImageClassifierPreprocessor

    def __init__(
        self,
        backbone,
        num_classes,
        preprocessor=None,
        token_label=False,
        activation=None,
        **kwargs,
    ):
        self.backbone = backbone
        self.preprocessor = preprocessor
        config = backbone.wavevit_config
        norm4 = backbone.get_layer("norm4")
        tokens = MeanClassToken(name="class_token")(norm4.input)
        tokens = ClassBlock(
            config.embed_dims[-1], config.num_heads[-1], config.mlp_ratios[-1],
            name="post_network_0",
        )(tokens)
        logits = TokenLabelHead(num_classes, token_label=token_label, name="head")(
            norm4(tokens)
        )
        outputs = keras.layers.Activation(activation, dtype="float32", name="predictions")(
            logits
        )
        # Task's constructor, not ImageClassifier's (which adds its pooling head).
        Task.__init__(self, inputs=backbone.input, outputs=outputs, **kwargs)
        self.num_classes = num_classes
        self.token_label = token_label
        self.activation = activation

    def get_config(self):
        config = Task.get_config(self)
        config.update(
            {
                "num_classes": self.num_classes,
                "token_label": self.token_label,
                "activation": keras.activations.serialize(self.activation)
                if callable(self.activation)
                else self.activation,
            }
        )
        return config
