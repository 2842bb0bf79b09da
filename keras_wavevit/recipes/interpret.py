"""Grad-CAM for Wave-ViT classifiers: where in the image a prediction comes from.

Grad-CAM (Selvaraju et al., 2017) weights each channel of a feature map by
the spatial mean of the gradient of the class logit with respect to it, sums
the channels and keeps the positive part. Wave-ViT's blocks keep tokens as
`(batch, H, W, C)` maps, so any block output is such a map; by default the
last block of stage 3 is used (stage 4 of the CIFAR-size tiny model is only
2x2).
"""

import re

import keras
import numpy as np
import tensorflow as tf

from keras_wavevit.preprocessing import normalize_images


def default_cam_layer(model, stage=3):
    """Name of the last block of `stage` (e.g. `"block3_1"`).

    Args:
        model: A Wave-ViT classifier built by `keras_wavevit.WaveViT`.
        stage: Stage 1-4.

    Returns:
        The layer name.

    Raises:
        ValueError: If the model has no block in that stage.

    Example:

    >>> import keras_wavevit
    >>> default_cam_layer(keras_wavevit.WaveViTTiny(num_classes=10))
    'block3_1'
    """
    pattern = re.compile(rf"^block{stage}_(\d+)$")
    indices = [int(m.group(1)) for m in (pattern.match(layer.name) for layer in model.layers) if m]
    if not indices:
        raise ValueError(f"Model {model.name!r} has no block of stage {stage} (block{stage}_N).")
    return f"block{stage}_{max(indices)}"


def grad_cam(model, images, class_ids=None, layer_name=None):
    """Grad-CAM heat maps of a Wave-ViT classifier, at image resolution.

    Args:
        model: Classifier taking normalised images, outputting logits or
            probabilities.
        images: uint8 / [0, 255] float array `(batch, height, width, 3)`
            (normalised inside with `normalize_images`).
        class_ids: Class to explain per image; default the predicted one.
        layer_name: Layer whose `(batch, h, w, c)` output is explained;
            default `default_cam_layer(model)`.

    Returns:
        `(heat_maps, class_ids)`: float32 `(batch, height, width)` maps in
        [0, 1] and the explained class ids.

    Example:

    >>> import keras_wavevit
    >>> model = keras_wavevit.WaveViTTiny(num_classes=10)
    >>> maps, ids = grad_cam(model, np.zeros((2, 32, 32, 3), "uint8"))
    >>> maps.shape
    (2, 32, 32)
    """
    images = np.asarray(images)
    if images.ndim != 4 or images.shape[-1] != 3:
        raise ValueError(f"images must be (batch, height, width, 3); received shape {images.shape}.")
    layer_name = layer_name or default_cam_layer(model)
    feature_model = keras.Model(model.inputs, [model.get_layer(layer_name).output, model.output])
    inputs = normalize_images(images)
    with tf.GradientTape() as tape:
        features, outputs = feature_model(inputs, training=False)
        if len(features.shape) != 4:
            raise ValueError(
                f"Layer {layer_name!r} outputs shape {features.shape}; Grad-CAM needs a "
                "(batch, height, width, channels) map."
            )
        outputs = tf.cast(outputs, tf.float32)
        if class_ids is None:
            class_ids = tf.argmax(outputs, axis=-1, output_type=tf.int32)
        class_ids = tf.convert_to_tensor(np.asarray(class_ids).ravel(), tf.int32)
        scores = tf.gather(outputs, class_ids, axis=1, batch_dims=1)
    gradients = tf.cast(tape.gradient(scores, features), tf.float32)
    features = tf.cast(features, tf.float32)
    weights = tf.reduce_mean(gradients, axis=(1, 2), keepdims=True)
    cams = tf.nn.relu(tf.reduce_sum(weights * features, axis=-1))[..., tf.newaxis]
    cams = tf.image.resize(cams, images.shape[1:3], method="bilinear")[..., 0]
    peak = tf.reduce_max(cams, axis=(1, 2), keepdims=True)
    cams = tf.math.divide_no_nan(cams, peak)
    return cams.numpy(), class_ids.numpy()


def plot_grad_cam(model, images, class_names, path, true_labels=None, layer_name=None):
    """Writes a figure: each image above its Grad-CAM overlay.

    Args:
        model: The classifier.
        images: uint8 array `(n, height, width, 3)`.
        class_names: Names by class id.
        path: PNG file to write.
        true_labels: Optional true class ids, shown in the titles.
        layer_name: See `grad_cam`.

    Returns:
        `path`.

    Example:

    >>> import keras_wavevit
    >>> model = keras_wavevit.WaveViTTiny(num_classes=2)
    >>> plot_grad_cam(model, np.zeros((2, 32, 32, 3), "uint8"), ["a", "b"], "/tmp/cam.png")
    '/tmp/cam.png'
    """
    from keras_wavevit.recipes.plots import new_figure, save_figure

    cams, predicted = grad_cam(model, images, layer_name=layer_name)
    count = len(images)
    figure = new_figure(figsize=(1.9 * count, 4.2))
    axes = figure.subplots(2, count, squeeze=False)
    for index in range(count):
        image = np.clip(np.asarray(images[index]), 0, 255).astype("uint8")
        axes[0, index].imshow(image, interpolation="nearest")
        title = class_names[predicted[index]]
        if true_labels is not None:
            title += f"\n(true: {class_names[int(true_labels[index])]})"
        axes[0, index].set_title(title, fontsize=8)
        axes[1, index].imshow(image, interpolation="nearest")
        axes[1, index].imshow(cams[index], cmap="jet", alpha=0.5, vmin=0, vmax=1)
        for row in range(2):
            axes[row, index].axis("off")
    figure.suptitle(f"Grad-CAM ({layer_name or default_cam_layer(model)}) of the predicted class")
    figure.tight_layout()
    return save_figure(figure, path)
