"""Figures of a training run: learning curves, prediction grid, confusion matrix.

All functions draw on `matplotlib.figure.Figure` objects (no `pyplot`, so
the caller's backend and open figures are left alone; no display needed),
write PNG files atomically and return the paths they wrote. matplotlib is
an optional dependency (`pip install keras-wavevit[plots]`).
"""

import os

import numpy as np

from keras_wavevit import files


def new_figure(**options):
    """A `matplotlib.figure.Figure`, outside pyplot's state.

    Args:
        **options: `Figure` arguments (`figsize`, ...).

    Raises:
        ImportError: matplotlib is not installed (says how to install it).

    Example:

    >>> new_figure(figsize=(2, 2)).get_size_inches().tolist()
    [2.0, 2.0]
    """
    try:
        from matplotlib.figure import Figure
    except ImportError as error:
        raise ImportError(
            "Plots need matplotlib: pip install 'keras-wavevit[plots]'."
        ) from error
    return Figure(**options)


def save_figure(figure, path):
    """Writes `figure` as a PNG at `path` atomically; returns `path`.

    Example:

    >>> save_figure(new_figure(figsize=(1, 1)), "/tmp/empty.png")
    '/tmp/empty.png'
    """
    with files.atomic_path(path, suffix=".png") as temporary:
        figure.savefig(temporary, dpi=100, format="png")
    return path


def plot_learning_curves(history, output_dir):
    """Writes `loss.png` and `accuracy.png`: train vs validation per epoch.

    Args:
        history: A dict `metric -> list per epoch` (a `keras.callbacks.History`
            `.history`, or `keras_wavevit.recipes.callbacks.read_csv_log(...)`), with
            `loss`/`val_loss` and `accuracy`/`val_accuracy` entries.
        output_dir: Directory for the two PNG files.

    Returns:
        The list of paths written.

    Raises:
        ValueError: If `history` has no `loss` entries.

    Example:

    >>> paths = plot_learning_curves(
    ...     {"loss": [2.0, 1.5], "val_loss": [1.9, 1.6],
    ...      "accuracy": [0.3, 0.5], "val_accuracy": [0.35, 0.45]}, "/tmp")
    >>> [os.path.basename(p) for p in paths]
    ['loss.png', 'accuracy.png']
    """
    if not history or not history.get("loss"):
        raise ValueError("history has no 'loss' values to plot.")
    from matplotlib.ticker import MaxNLocator

    os.makedirs(output_dir, exist_ok=True)
    epochs = np.asarray(history.get("epoch", range(len(history["loss"])))) + 1
    paths = []
    for metric, label in (("loss", "Cross-entropy loss"), ("accuracy", "Top-1 accuracy")):
        if not history.get(metric):
            continue
        figure = new_figure(figsize=(6, 4))
        axes = figure.subplots()
        axes.plot(epochs, history[metric], "o-", color="tab:red", label="train")
        if history.get(f"val_{metric}"):
            axes.plot(epochs, history[f"val_{metric}"], "o-", color="tab:cyan", label="validation")
        axes.set_xlabel("Epoch")
        axes.xaxis.set_major_locator(MaxNLocator(integer=True))
        axes.set_ylabel(label)
        axes.set_title(f"Learning curve: {metric}")
        axes.grid(alpha=0.3)
        axes.legend()
        figure.tight_layout()
        paths.append(save_figure(figure, os.path.join(output_dir, f"{metric}.png")))
    return paths


def plot_prediction_grid(images, true_labels, predicted_labels, class_names, path, columns=4):
    """Writes a grid of images titled `predicted / true` (green right, red wrong).

    Args:
        images: uint8 (or [0, 255] float) array `(n, height, width, 3)`.
        true_labels: `n` class ids.
        predicted_labels: `n` class ids.
        class_names: Names by class id.
        path: PNG file to write.
        columns: Images per row.

    Returns:
        `path`.

    Raises:
        ValueError: If the lengths of the arguments differ.

    Example:

    >>> images = np.zeros((2, 32, 32, 3), "uint8")
    >>> plot_prediction_grid(images, [0, 1], [0, 0], ["cat", "dog"], "/tmp/grid.png")
    '/tmp/grid.png'
    """
    images = np.asarray(images)
    true_labels = np.asarray(true_labels).astype(int).ravel()
    predicted_labels = np.asarray(predicted_labels).astype(int).ravel()
    if not len(images) == len(true_labels) == len(predicted_labels) or not len(images):
        raise ValueError(
            "images, true_labels and predicted_labels must have the same, non-zero "
            f"length; received {len(images)}, {len(true_labels)}, {len(predicted_labels)}."
        )
    rows = int(np.ceil(len(images) / columns))
    figure = new_figure(figsize=(2.2 * columns, 2.4 * rows))
    axes = figure.subplots(rows, columns, squeeze=False)
    for index, axis in enumerate(axes.ravel()):
        axis.axis("off")
        if index >= len(images):
            continue
        axis.imshow(np.clip(images[index], 0, 255).astype("uint8"), interpolation="nearest")
        right = predicted_labels[index] == true_labels[index]
        axis.set_title(
            f"{class_names[predicted_labels[index]]}\n(true: {class_names[true_labels[index]]})",
            color="tab:green" if right else "tab:red",
            fontsize=9,
        )
    figure.suptitle("Predicted (true) labels")
    figure.tight_layout()
    return save_figure(figure, path)


def confusion_matrix(true_labels, predicted_labels, num_classes):
    """Counts `matrix[true, predicted]`.

    Args:
        true_labels: Class ids.
        predicted_labels: Class ids.
        num_classes: Number of classes.

    Returns:
        int64 array `(num_classes, num_classes)`.

    Example:

    >>> confusion_matrix([0, 1, 1], [0, 0, 1], 2).tolist()
    [[1, 0], [1, 1]]
    """
    import tensorflow as tf

    return tf.math.confusion_matrix(
        np.asarray(true_labels).ravel(), np.asarray(predicted_labels).ravel(), num_classes,
        dtype=tf.int64,
    ).numpy()


def plot_confusion_matrix(matrix, class_names, path, title="Confusion matrix"):
    """Writes a confusion-matrix heat map with counts (rows: true classes).

    Args:
        matrix: `(classes, classes)` counts, `matrix[true, predicted]`.
        class_names: Names by class id.
        path: PNG file to write.
        title: Figure title.

    Returns:
        `path`.

    Example:

    >>> plot_confusion_matrix(np.eye(2, dtype=int), ["cat", "dog"], "/tmp/cm.png")
    '/tmp/cm.png'
    """
    matrix = np.asarray(matrix)
    if matrix.ndim != 2 or matrix.shape[0] != matrix.shape[1] or matrix.shape[0] != len(class_names):
        raise ValueError(
            f"matrix must be square with one row per class ({len(class_names)}); "
            f"received shape {matrix.shape}."
        )
    size = max(4.0, 0.6 * len(class_names) + 2)
    figure = new_figure(figsize=(size, size))
    axes = figure.subplots()
    image = axes.imshow(matrix, cmap="Blues")
    figure.colorbar(image, ax=axes, fraction=0.046)
    ticks = np.arange(len(class_names))
    axes.set_xticks(ticks, class_names, rotation=45, ha="right")
    axes.set_yticks(ticks, class_names)
    axes.set_xlabel("Predicted")
    axes.set_ylabel("True")
    axes.set_title(title)
    if len(class_names) <= 30:
        threshold = matrix.max() / 2 if matrix.size else 0
        for (row, column), count in np.ndenumerate(matrix):
            axes.text(column, row, str(count), ha="center", va="center", fontsize=8,
                      color="white" if count > threshold else "black")
    figure.tight_layout()
    return save_figure(figure, path)
