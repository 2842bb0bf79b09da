"""`keras-wavevit train`: the training recipe, end to end.

Data (`keras_wavevit.recipes.data`) -> Wave-ViT (`keras_wavevit.model`) -> AdamW with
linear warm-up and cosine decay, label smoothing, stochastic depth, MixUp ->
`fit` with best-checkpoint, `BackupAndRestore`, `CSVLogger` and TensorBoard
callbacks -> validation accuracy, training/inference throughput, learning
curves, a prediction grid, a Grad-CAM view -> a SavedModel, answered once
through `tf.saved_model.load`.

Everything a run writes goes under `--output` (default `runs/<model>`):

    best.keras          best validation accuracy so far (ModelCheckpoint)
    final.keras         the model after the last epoch
    backup/             BackupAndRestore state (deleted when a run completes)
    log.csv             one row per epoch (CSVLogger, appended on resume)
    tensorboard/        TensorBoard logs (when the tensorboard package is installed)
    loss.png, accuracy.png   learning curves, train vs validation
    predictions.png     validation images with predicted and true labels
    gradcam.png         Grad-CAM heat maps of validation images
    saved_model/<version>/   the exported SavedModel (TensorFlow Serving layout)
    summary.json        configuration, final metrics and images/s

A run killed at any point (even with SIGKILL) resumes from the last finished
epoch when started again with the same command and `--output`.
"""

import argparse
import importlib.util
import json
import os
import time

import keras
import numpy as np
import tensorflow as tf

from keras_wavevit.recipes import data as data_lib
from keras_wavevit.model import VARIANTS, WaveViT

JIT_COMPILE = {"auto": "auto", "on": True, "off": False}
MIXED_PRECISION_POLICIES = ("auto", "mixed_bfloat16", "mixed_float16", "off")
# Architecture keys a JSON model configuration may set.
_ARCHITECTURE_KEYS = (
    "embed_dims",
    "num_heads",
    "mlp_ratios",
    "depths",
    "sr_ratios",
    "stem_hidden_dim",
    "stem_stride",
)


def parse_model_config(model):
    """Resolves `--model` into WaveViT architecture arguments.

    Args:
        model: A variant name (`"tiny"`, `"small"`, `"base"`, `"large"`), an
            inline JSON object or the path of a JSON file. JSON keys are
            `WaveViT` architecture arguments (`embed_dims`, `num_heads`,
            `mlp_ratios`, `depths`, `sr_ratios`, `stem_hidden_dim`,
            `stem_stride`) plus optional `drop_path_rate` and `input_shape`;
            missing keys come from the tiny variant.

    Returns:
        A dict of architecture arguments plus `drop_path_rate` and
        `input_shape`.

    Raises:
        ValueError: For an unknown variant, unreadable JSON or unknown keys.

    Example:

    >>> parse_model_config("tiny")["stem_stride"]
    2
    >>> parse_model_config('{"depths": [1, 1, 1, 1]}')["depths"]
    [1, 1, 1, 1]
    """
    if model in VARIANTS:
        return dict(VARIANTS[model])
    text = model
    if not model.lstrip().startswith("{"):
        if not model.endswith(".json") or not os.path.isfile(model):
            raise ValueError(
                f"Unknown model {model!r}: expected one of {sorted(VARIANTS)}, "
                "an inline JSON object or a .json file."
            )
        with open(model, encoding="utf-8") as file:
            text = file.read()
    try:
        overrides = json.loads(text)
    except json.JSONDecodeError as error:
        raise ValueError(f"Could not parse the model configuration {model!r}: {error}") from error
    allowed = set(_ARCHITECTURE_KEYS) | {"drop_path_rate", "input_shape"}
    unknown = set(overrides) - allowed
    if unknown:
        raise ValueError(
            f"Unknown model configuration keys {sorted(unknown)}; allowed: {sorted(allowed)}."
        )
    config = dict(VARIANTS["tiny"])
    config.update(overrides)
    return config


def build_model(model, num_classes, image_size, drop_path_rate=None):
    """Builds a Wave-ViT classifier (logits output) for training.

    Args:
        model: See `parse_model_config`.
        num_classes: Number of classes.
        image_size: `(height, width)` of the input.
        drop_path_rate: Stochastic depth rate; `None` = the variant's.

    Returns:
        A `keras.Model` outputting float32 logits.

    Example:

    >>> build_model("tiny", 10, (32, 32)).output_shape
    (None, 10)
    """
    config = parse_model_config(model)
    rate = config["drop_path_rate"] if drop_path_rate is None else drop_path_rate
    name = f"WaveViT{model.capitalize()}" if model in VARIANTS else "wave_vit"
    return WaveViT(
        **{key: config[key] for key in _ARCHITECTURE_KEYS if key in config},
        input_shape=(*image_size, 3),
        num_classes=num_classes,
        classifier_activation=None,
        drop_path_rate=rate,
        name=name,
    )


def make_optimizer(
    learning_rate, weight_decay, total_steps, warmup_steps, min_learning_rate=0.0, clipnorm=None
):
    """AdamW with linear warm-up to `learning_rate`, then cosine decay.

    Weight decay skips biases and normalisation parameters (`bias`, `gamma`,
    `beta`), as usual for transformers.

    Args:
        learning_rate: Peak learning rate, reached after `warmup_steps`.
        weight_decay: Decoupled weight decay.
        total_steps: Optimizer steps of the whole run.
        warmup_steps: Steps of linear warm-up from 0.
        min_learning_rate: Learning rate at the end of the decay.
        clipnorm: Optional global gradient-norm clip.

    Returns:
        A `keras.optimizers.AdamW`.

    Example:

    >>> optimizer = make_optimizer(1e-3, 0.05, total_steps=100, warmup_steps=10)
    >>> round(float(optimizer.learning_rate), 6)  # step 0 of the warm-up
    0.0
    """
    if learning_rate <= 0 or weight_decay < 0:
        raise ValueError(
            "learning_rate must be > 0 and weight_decay >= 0; received "
            f"learning_rate={learning_rate}, weight_decay={weight_decay}."
        )
    if not 0 <= warmup_steps < total_steps:
        raise ValueError(
            f"warmup_steps must be in [0, total_steps); received "
            f"warmup_steps={warmup_steps}, total_steps={total_steps}."
        )
    schedule = keras.optimizers.schedules.CosineDecay(
        initial_learning_rate=0.0 if warmup_steps else learning_rate,
        decay_steps=total_steps - warmup_steps,
        alpha=min_learning_rate / learning_rate,
        warmup_target=learning_rate if warmup_steps else None,
        warmup_steps=warmup_steps,
    )
    optimizer = keras.optimizers.AdamW(
        learning_rate=schedule, weight_decay=weight_decay, global_clipnorm=clipnorm
    )
    optimizer.exclude_from_weight_decay(var_names=["bias", "gamma", "beta"])
    return optimizer


class ThroughputAndClock(keras.callbacks.Callback):
    """Adds `train_images_per_second` and `train_minutes` to each epoch's logs.

    `train_images_per_second` counts the training part of the epoch only
    (not validation); `train_minutes` is the wall-clock time of `fit` so far,
    validation included, continued from `initial_minutes` after a resume.
    Put it before `CSVLogger` so both columns are logged.

    Args:
        images_per_step: Global batch size.
        initial_minutes: Minutes already spent by an earlier, resumed run.

    Example:

    >>> clock = ThroughputAndClock(images_per_step=128)
    """

    def __init__(self, images_per_step, initial_minutes=0.0):
        super().__init__()
        self.images_per_step = images_per_step
        self.initial_minutes = initial_minutes
        self.epoch_rates = []

    def on_train_begin(self, logs=None):
        self._train_start = time.perf_counter()

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch_start = time.perf_counter()
        self._steps = 0
        self._train_seconds = None

    def on_train_batch_end(self, batch, logs=None):
        self._steps += 1

    def on_test_begin(self, logs=None):
        if self._train_seconds is None:
            self._train_seconds = time.perf_counter() - self._epoch_start

    def on_epoch_end(self, epoch, logs=None):
        if self._train_seconds is None:
            self._train_seconds = time.perf_counter() - self._epoch_start
        rate = self._steps * self.images_per_step / max(self._train_seconds, 1e-9)
        self.epoch_rates.append(rate)
        if logs is not None:
            logs["train_images_per_second"] = rate
            logs["train_minutes"] = (
                self.initial_minutes + (time.perf_counter() - self._train_start) / 60.0
            )


class TimeLimit(keras.callbacks.Callback):
    """Stops training at the end of the first epoch past a wall-clock budget.

    Args:
        minutes: The budget, counted by the `train_minutes` log entry that
            `ThroughputAndClock` writes (so resumed runs count earlier time).

    Example:

    >>> limit = TimeLimit(60)
    """

    def __init__(self, minutes):
        super().__init__()
        self.minutes = minutes
        self.stopped_epoch = None

    def on_epoch_end(self, epoch, logs=None):
        if logs and logs.get("train_minutes", 0.0) >= self.minutes:
            self.stopped_epoch = epoch
            self.model.stop_training = True


def read_csv_log(path):
    """Reads a `CSVLogger` file into columns, one value per epoch.

    Rows repeated by a resumed run (an epoch logged, then the process killed
    before its backup was written) keep their last occurrence.

    Args:
        path: The CSV file.

    Returns:
        A dict `column -> list of floats`, ordered by epoch (empty if the
        file is missing or empty).

    Example:

    >>> read_csv_log("/nonexistent/log.csv")
    {}
    """
    import csv

    if not os.path.isfile(path):
        return {}
    with open(path, newline="", encoding="utf-8") as file:
        rows = [row for row in csv.DictReader(file) if row.get("epoch", "").strip()]
    by_epoch = {}
    for row in rows:
        by_epoch[int(row["epoch"])] = row
    columns = {}
    for epoch in sorted(by_epoch):
        for key, value in by_epoch[epoch].items():
            try:
                columns.setdefault(key, []).append(float(value))
            except (TypeError, ValueError):
                columns.setdefault(key, []).append(float("nan"))
    return columns


def _set_precision(policy):
    if policy in (None, "off"):
        keras.mixed_precision.set_global_policy("float32")
        return "float32"
    if policy == "auto":
        policy = "mixed_float16" if tf.config.list_physical_devices("GPU") else "mixed_bfloat16"
    keras.mixed_precision.set_global_policy(policy)
    return policy


def _get_strategy(name):
    from keras_wavevit.recipes.distribute import get_strategy

    return get_strategy(name)


def _inference_throughput(model, dataset, max_batches=20):
    """Images/s of `model.predict` on `dataset` (after one warm-up batch)."""
    batches = list(dataset.take(max_batches + 1))
    images = [batch[0] for batch in batches]
    model.predict_on_batch(images[0])
    count = 0
    start = time.perf_counter()
    for batch in images[1:] or images:
        model.predict_on_batch(batch)
        count += int(batch.shape[0])
    return count / (time.perf_counter() - start)


def answer_from_saved_model(version_dir, images):
    """Classifies uint8 images with an exported SavedModel.

    Args:
        version_dir: `saved_model/<version>` directory from the export.
        images: uint8 array `(batch, height, width, 3)`, any size.

    Returns:
        A dict of numpy arrays from the `serving_default` signature
        (`probabilities`, `classes`, and `labels` when exported with class
        names).

    Example:

    >>> answer = answer_from_saved_model("runs/tiny/saved_model/1", images)  # doctest: +SKIP
    >>> answer["labels"][0]  # doctest: +SKIP
    b'cat'
    """
    serve = tf.saved_model.load(version_dir).signatures["serving_default"]
    outputs = serve(images=tf.constant(images, dtype=tf.uint8))
    return {key: value.numpy() for key, value in outputs.items()}


def train(
    model="tiny",
    dataset=None,
    data_dir=None,
    validation_dir=None,
    tfds_data_dir=None,
    validation_split=None,
    validation_fraction=0.1,
    output=None,
    image_size=None,
    epochs=30,
    batch_size=128,
    steps_per_epoch=None,
    learning_rate=1e-3,
    min_learning_rate=1e-5,
    weight_decay=0.05,
    warmup_epochs=2.0,
    clip_norm=None,
    label_smoothing=0.1,
    drop_path_rate=None,
    mixup=data_lib.DEFAULT_MIXUP_ALPHA,
    cutmix=0.0,
    crop_scale=data_lib.DEFAULT_CROP_SCALE,
    rotation=data_lib.DEFAULT_ROTATION_DEGREES,
    color_jitter=data_lib.DEFAULT_COLOR_JITTER,
    flip=True,
    mixed_precision=None,
    jit_compile="auto",
    strategy="default",
    time_limit_minutes=None,
    export=True,
    plots=True,
    seed=None,
    verbose="auto",
):
    """Trains a Wave-ViT with the recipe and writes everything under `output`.

    Takes the same options as `keras-wavevit train` (see `--help`), as
    keyword arguments. With no data argument it trains on the CIFAR-10
    sample shipped in the package.

    Args:
        model: Variant name or JSON configuration (`parse_model_config`).
        dataset: TFDS name, e.g. `"cifar10"` (must be prepared under
            `tfds_data_dir`).
        data_dir: Image folder `root/<class>/<image>`.
        validation_dir: Separate image folder to validate on.
        tfds_data_dir: TFDS data directory.
        validation_split: TFDS split to validate on (e.g. `"test"`).
        validation_fraction: Share of each class held out for validation.
        output: Output directory (default `runs/<model>`).
        image_size: Input size, int or `(height, width)`; default the
            variant's.
        epochs: Epochs.
        batch_size: Global batch size.
        steps_per_epoch: Limit each epoch to this many steps (smoke tests).
        learning_rate: Peak AdamW learning rate.
        min_learning_rate: Final learning rate of the cosine decay.
        weight_decay: AdamW weight decay.
        warmup_epochs: Epochs of linear warm-up (fractions allowed).
        clip_norm: Optional global gradient-norm clip.
        label_smoothing: Label smoothing of the cross-entropy.
        drop_path_rate: Stochastic depth; default the variant's.
        mixup: MixUp alpha (0 = off).
        cutmix: CutMix alpha (0 = off).
        crop_scale: `(min, max)` area of the random resized crop, or `None`.
        rotation: Largest random rotation in degrees (0 = off).
        color_jitter: Brightness/contrast/saturation jitter (0 = off).
        flip: Random horizontal flips.
        mixed_precision: `None`/`"off"`, `"auto"` (bf16 on CPU, fp16 on
            GPU), `"mixed_bfloat16"` or `"mixed_float16"`.
        jit_compile: `"auto"`, `"on"` or `"off"` (XLA).
        strategy: `"default"`, `"mirrored"` or `"multiworker"`.
        time_limit_minutes: Stop after the first epoch past this budget.
        export: Export a SavedModel and answer one prediction from it.
        plots: Write the PNG figures.
        seed: Random seed.
        verbose: Keras progress-bar mode.

    Returns:
        The summary dict (also written to `output/summary.json`).

    Example:

    >>> summary = train(epochs=1, steps_per_epoch=2, output="/tmp/run")  # doctest: +SKIP
    >>> sorted(summary["files"])[:2]  # doctest: +SKIP
    ['accuracy.png', 'best.keras']
    """
    if jit_compile not in JIT_COMPILE:
        raise ValueError(f"jit_compile must be one of {list(JIT_COMPILE)}; received {jit_compile!r}.")
    if mixed_precision is not None and mixed_precision not in MIXED_PRECISION_POLICIES:
        raise ValueError(
            f"mixed_precision must be one of {list(MIXED_PRECISION_POLICIES)}; "
            f"received {mixed_precision!r}."
        )
    if epochs < 1 or batch_size < 1 or (steps_per_epoch is not None and steps_per_epoch < 1):
        raise ValueError(
            "epochs, batch_size and steps_per_epoch must be >= 1; received "
            f"epochs={epochs}, batch_size={batch_size}, steps_per_epoch={steps_per_epoch}."
        )
    if dataset and data_dir:
        raise ValueError("Pass either dataset (TFDS) or data_dir (image folder), not both.")
    if seed is not None:
        keras.utils.set_random_seed(seed)
    model_config = parse_model_config(model)
    if image_size is None:
        image_size = tuple(model_config["input_shape"][:2])
    elif isinstance(image_size, int):
        image_size = (image_size, image_size)
    image_size = tuple(int(v) for v in image_size)
    output = output or os.path.join("runs", model if model in VARIANTS else "custom")
    os.makedirs(output, exist_ok=True)
    policy = _set_precision(mixed_precision)
    distribution = _get_strategy(strategy)

    if dataset:
        splits = data_lib.load_tfds(
            dataset,
            data_dir=tfds_data_dir,
            image_size=image_size,
            validation_fraction=validation_fraction,
            validation_split=validation_split,
        )
    else:
        splits = data_lib.load_image_folder(
            data_dir or data_lib.sample_data_dir(),
            image_size=image_size,
            validation_fraction=validation_fraction,
            validation_directory=validation_dir,
        )
    if splits.num_validation == 0:
        raise ValueError(
            "The validation split is empty: use a validation_fraction > 0 (with "
            "at least one image per class held out) or a validation directory/split."
        )
    if splits.num_train < batch_size:
        raise ValueError(
            f"batch_size={batch_size} is larger than the training split "
            f"({splits.num_train} images)."
        )
    augmentation = data_lib.build_augmentation(
        image_size,
        crop_scale=crop_scale,
        rotation_degrees=rotation,
        color_jitter=color_jitter,
        horizontal_flip=flip,
        seed=seed,
    )
    train_data = data_lib.train_pipeline(
        splits.train,
        splits.num_classes,
        batch_size,
        augmentation=augmentation,
        mixup_alpha=mixup,
        cutmix_alpha=cutmix,
        shuffle_buffer=splits.num_train,
        seed=seed,
    )
    validation_data = data_lib.eval_pipeline(splits.validation, splits.num_classes, batch_size)
    steps = splits.num_train // batch_size
    if steps_per_epoch is not None:
        steps = min(steps, steps_per_epoch)
        train_data = train_data.take(steps)
    total_steps = steps * epochs
    warmup_steps = min(int(round(warmup_epochs * steps)), total_steps - 1)

    with distribution.scope():
        network = build_model(model, splits.num_classes, image_size, drop_path_rate)
        metrics = [keras.metrics.CategoricalAccuracy(name="accuracy")]
        if splits.num_classes > 5:
            metrics.append(keras.metrics.TopKCategoricalAccuracy(5, name="top5_accuracy"))
        network.compile(
            optimizer=make_optimizer(
                learning_rate,
                weight_decay,
                total_steps,
                warmup_steps,
                min_learning_rate=min(min_learning_rate, learning_rate),
                clipnorm=clip_norm,
            ),
            loss=keras.losses.CategoricalCrossentropy(
                from_logits=True, label_smoothing=label_smoothing
            ),
            metrics=metrics,
            jit_compile=JIT_COMPILE[jit_compile],
        )

    log_path = os.path.join(output, "log.csv")
    previous = read_csv_log(log_path)
    best_so_far = max(previous.get("val_accuracy", []) or [None], key=lambda v: v or -1)
    clock = ThroughputAndClock(
        batch_size, initial_minutes=(previous.get("train_minutes") or [0.0])[-1]
    )
    callbacks = [
        clock,
        keras.callbacks.ModelCheckpoint(
            os.path.join(output, "best.keras"),
            monitor="val_accuracy",
            mode="max",
            save_best_only=True,
            initial_value_threshold=best_so_far,
        ),
        keras.callbacks.CSVLogger(log_path, append=True),
        keras.callbacks.BackupAndRestore(os.path.join(output, "backup"), double_checkpoint=True),
    ]
    if importlib.util.find_spec("tensorboard") is not None:
        callbacks.append(keras.callbacks.TensorBoard(os.path.join(output, "tensorboard")))
    else:
        print("TensorBoard is not installed (pip install tensorboard): no TensorBoard logs.")
    limit = None
    if time_limit_minutes is not None:
        limit = TimeLimit(time_limit_minutes)
        callbacks.insert(1, limit)

    print(
        f"Training {network.name} ({network.count_params():,} parameters, {policy}) on "
        f"{splits.num_train} images, validating on {splits.num_validation}, "
        f"{len(splits.class_names)} classes, {epochs} epochs of {steps} steps, "
        f"batch {batch_size}, image size {image_size}. Output: {output}"
    )
    network.fit(
        train_data,
        validation_data=validation_data,
        epochs=epochs,
        callbacks=callbacks,
        verbose=verbose,
        shuffle=False,  # the tf.data pipeline shuffles every epoch
    )
    network.save(os.path.join(output, "final.keras"))

    log = read_csv_log(log_path)
    best_model = network
    best_path = os.path.join(output, "best.keras")
    if os.path.isfile(best_path):
        best_model = keras.saving.load_model(best_path)
    # Validation accuracy of the best checkpoint, with top-5.
    evaluation = best_model.evaluate(validation_data, verbose=0, return_dict=True)
    inference_rate = _inference_throughput(best_model, validation_data)
    rates = log.get("train_images_per_second", [])
    # The first epoch includes graph tracing; report the later ones when any.
    steady = rates[1:] if len(rates) > 1 else rates
    summary = {
        "model": model,
        "parameters": int(network.count_params()),
        "precision": policy,
        "image_size": list(image_size),
        "batch_size": batch_size,
        "epochs_completed": len(log.get("epoch", [])),
        "num_train": splits.num_train,
        "num_validation": splits.num_validation,
        "class_names": splits.class_names,
        "val_accuracy": float(evaluation["accuracy"]),
        "val_top5_accuracy": float(evaluation.get("top5_accuracy", float("nan"))),
        "val_loss": float(evaluation["loss"]),
        "train_minutes": (log.get("train_minutes") or [0.0])[-1],
        "train_images_per_second": float(np.median(steady)) if steady else None,
        "inference_images_per_second": inference_rate,
        "stopped_by_time_limit": bool(limit and limit.stopped_epoch is not None),
    }
    print(
        f"Validation accuracy (best checkpoint): {summary['val_accuracy']:.4f}, "
        f"top-5 {summary['val_top5_accuracy']:.4f}; training "
        f"{summary['train_images_per_second'] or 0:.1f} images/s, inference "
        f"{inference_rate:.1f} images/s; {summary['train_minutes']:.1f} minutes."
    )

    sample_images, sample_labels = next(
        iter(splits.validation.shuffle(splits.num_validation, seed=0).batch(16))
    )
    sample_images = sample_images.numpy()
    sample_labels = sample_labels.numpy()
    if plots and importlib.util.find_spec("matplotlib") is None:
        print("matplotlib is not installed (pip install 'keras-wavevit[plots]'): no figures.")
        plots = False
    if plots:
        from keras_wavevit.recipes import interpret, plots as plots_lib

        plots_lib.plot_learning_curves(log, output)
        predicted = np.argmax(
            best_model.predict(data_lib.normalize_images(sample_images), verbose=0), axis=-1
        )
        plots_lib.plot_prediction_grid(
            sample_images,
            sample_labels,
            predicted,
            splits.class_names,
            os.path.join(output, "predictions.png"),
        )
        interpret.plot_grad_cam(
            best_model,
            sample_images[:8],
            splits.class_names,
            os.path.join(output, "gradcam.png"),
            true_labels=sample_labels[:8],
        )
    if export:
        from keras_wavevit.export import export_saved_model

        version_dir = export_saved_model(
            best_model,
            os.path.join(output, "saved_model"),
            image_size=image_size,
            class_names=splits.class_names,
            overwrite=True,
        )
        answer = answer_from_saved_model(version_dir, sample_images[:1])
        predicted_class = int(answer["classes"][0])
        label = answer.get("labels", [splits.class_names[predicted_class].encode()])[0]
        label = label.decode() if isinstance(label, bytes) else str(label)
        probability = float(answer["probabilities"][0][predicted_class])
        summary["saved_model"] = version_dir
        summary["saved_model_answer"] = {
            "predicted": label,
            "probability": probability,
            "true": splits.class_names[int(sample_labels[0])],
        }
        print(
            f"SavedModel {version_dir} answers: {label} (p={probability:.3f}); "
            f"true label: {summary['saved_model_answer']['true']}."
        )
    summary["files"] = sorted(os.listdir(output))
    with open(os.path.join(output, "summary.json"), "w", encoding="utf-8") as file:
        json.dump(summary, file, indent=2)
    return summary


def _pair(text):
    if text.lower() == "none":
        return None
    try:
        low, high = (float(v) for v in text.split(","))
    except ValueError as error:
        raise argparse.ArgumentTypeError(
            f"expected 'MIN,MAX' or 'none'; received {text!r}"
        ) from error
    return (low, high)


def _image_size(text):
    try:
        sizes = [int(v) for v in text.lower().replace("x", ",").split(",")]
    except ValueError as error:
        raise argparse.ArgumentTypeError(f"expected N or H,W; received {text!r}") from error
    if len(sizes) == 1:
        sizes *= 2
    if len(sizes) != 2:
        raise argparse.ArgumentTypeError(f"expected N or H,W; received {text!r}")
    return tuple(sizes)


def configure_parser(parser):
    """Adds the `train` arguments to `parser`.

    Args:
        parser: An `argparse.ArgumentParser`.

    Example:

    >>> parser = argparse.ArgumentParser()
    >>> configure_parser(parser)
    >>> parser.parse_args(["--epochs", "3"]).epochs
    3
    """
    parser.formatter_class = argparse.ArgumentDefaultsHelpFormatter
    source = parser.add_argument_group("data (default: the CIFAR-10 sample shipped in the package)")
    source.add_argument("--dataset", help="TFDS dataset name, e.g. cifar10 (must be prepared)")
    source.add_argument("--tfds-data-dir", help="TFDS data directory")
    source.add_argument("--validation-split", help="TFDS split to validate on, e.g. test")
    source.add_argument("--data-dir", help="image folder root/<class>/<image>")
    source.add_argument("--validation-dir", help="separate image folder to validate on")
    source.add_argument(
        "--validation-fraction", type=float, default=0.1,
        help="share of each class held out for validation",
    )
    recipe = parser.add_argument_group("model and recipe")
    recipe.add_argument(
        "--model", default="tiny",
        help=f"one of {sorted(VARIANTS)}, inline JSON or a .json architecture file",
    )
    recipe.add_argument("--image-size", type=_image_size, help="N or H,W (default: the model's)")
    recipe.add_argument("--epochs", type=int, default=30, help="epochs")
    recipe.add_argument("--batch-size", type=int, default=128, help="global batch size")
    recipe.add_argument("--steps-per-epoch", type=int, help="cap the steps of each epoch")
    recipe.add_argument("--learning-rate", type=float, default=1e-3, help="peak AdamW rate")
    recipe.add_argument("--min-learning-rate", type=float, default=1e-5,
                        help="learning rate at the end of the cosine decay")
    recipe.add_argument("--weight-decay", type=float, default=0.05, help="AdamW weight decay")
    recipe.add_argument("--warmup-epochs", type=float, default=2.0,
                        help="linear warm-up, in epochs")
    recipe.add_argument("--clip-norm", type=float, help="global gradient-norm clip")
    recipe.add_argument("--label-smoothing", type=float, default=0.1, help="label smoothing")
    recipe.add_argument("--drop-path-rate", type=float, help="stochastic depth (default: model's)")
    augment = parser.add_argument_group("augmentation (training split only)")
    augment.add_argument("--mixup", type=float, default=data_lib.DEFAULT_MIXUP_ALPHA,
                         help="MixUp alpha, 0 = off")
    augment.add_argument("--cutmix", type=float, default=0.0, help="CutMix alpha, 0 = off")
    augment.add_argument("--crop-scale", type=_pair, default=data_lib.DEFAULT_CROP_SCALE,
                         help="random resized crop area MIN,MAX or none")
    augment.add_argument("--rotation", type=float, default=data_lib.DEFAULT_ROTATION_DEGREES,
                         help="largest rotation in degrees, 0 = off")
    augment.add_argument("--color-jitter", type=float, default=data_lib.DEFAULT_COLOR_JITTER,
                         help="brightness/contrast/saturation jitter, 0 = off")
    augment.add_argument("--no-flip", action="store_true", help="no horizontal flips")
    runtime = parser.add_argument_group("runtime and outputs")
    runtime.add_argument(
        "--mixed-precision", nargs="?", const="auto", default="off",
        choices=MIXED_PRECISION_POLICIES,
        help="mixed precision; bare flag = auto (bfloat16 on CPU, float16 on GPU)",
    )
    runtime.add_argument("--jit-compile", choices=sorted(JIT_COMPILE), default="auto",
                         help="XLA; auto leaves it off on CPU, where it is slower")
    runtime.add_argument("--strategy", choices=("default", "mirrored", "multiworker"),
                         default="default", help="tf.distribute strategy")
    runtime.add_argument("--time-limit-minutes", type=float,
                         help="stop after the first epoch past this wall-clock budget")
    runtime.add_argument("--output", help="output directory (default runs/<model>)")
    runtime.add_argument("--no-export", action="store_true", help="skip the SavedModel")
    runtime.add_argument("--no-plots", action="store_true", help="skip the PNG figures")
    runtime.add_argument("--seed", type=int, help="random seed")
    runtime.add_argument("--verbose", type=int, choices=(0, 1, 2), default=None,
                         help="0 silent, 1 progress bar, 2 one line per epoch")


def run(args):
    """Runs `keras-wavevit train` with parsed arguments.

    Args:
        args: The `argparse.Namespace` from `configure_parser`'s parser.

    Returns:
        0 on success.

    Example:

    >>> from keras_wavevit.cli import main
    >>> main(["train", "--epochs", "1", "--output", "/tmp/run"])  # doctest: +SKIP
    0
    """
    train(
        model=args.model,
        dataset=args.dataset,
        data_dir=args.data_dir,
        validation_dir=args.validation_dir,
        tfds_data_dir=args.tfds_data_dir,
        validation_split=args.validation_split,
        validation_fraction=args.validation_fraction,
        output=args.output,
        image_size=args.image_size,
        epochs=args.epochs,
        batch_size=args.batch_size,
        steps_per_epoch=args.steps_per_epoch,
        learning_rate=args.learning_rate,
        min_learning_rate=args.min_learning_rate,
        weight_decay=args.weight_decay,
        warmup_epochs=args.warmup_epochs,
        clip_norm=args.clip_norm,
        label_smoothing=args.label_smoothing,
        drop_path_rate=args.drop_path_rate,
        mixup=args.mixup,
        cutmix=args.cutmix,
        crop_scale=args.crop_scale,
        rotation=args.rotation,
        color_jitter=args.color_jitter,
        flip=not args.no_flip,
        mixed_precision=args.mixed_precision,
        jit_compile=args.jit_compile,
        strategy=args.strategy,
        time_limit_minutes=args.time_limit_minutes,
        export=not args.no_export,
        plots=not args.no_plots,
        seed=args.seed,
        verbose="auto" if args.verbose is None else args.verbose,
    )
    return 0
