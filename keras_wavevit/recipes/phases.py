"""The phases of a training run, each a function `train()` calls in turn.

load data -> build the network -> fit -> evaluate -> figures -> export ->
summary. Each phase after loading the data records its result in the
run's `RunState` when it finishes (`fit` does so before its backup is
deleted), and is skipped when an earlier attempt already finished it, so a
killed run never repeats finished work. Every file goes through
`keras_wavevit.files` (written aside, then renamed).
"""

import dataclasses
import importlib.util
import json
import os
import time

import keras
import numpy as np
import tensorflow as tf

from keras_wavevit import files, test_time
from keras_wavevit.config import resolve_config
from keras_wavevit.recipes import augmentation as augmentation_lib
from keras_wavevit.recipes import budget as budget_lib
from keras_wavevit.recipes import callbacks as callbacks_lib
from keras_wavevit.recipes import data as data_lib
from keras_wavevit.recipes.distribute import distribute_dataset_options
from keras_wavevit.recipes.network import build_model, compile_network

# Pixels of the diagonal test-time shifts scored after runs trained with
# translations. On the cifar10 recipe's hour (shifts of up to 4 pixels), flips
# with 1-pixel shifts scored 86.4% against 86.0% with flips alone (2-pixel
# shifts along the axes: 86.4%).
TEST_TIME_SHIFT = 1
# Images per batch of the test-time views (each view one `predict_on_batch`).
TEST_TIME_BATCH_SIZE = 256


class TrainingDiverged(ValueError):
    """Training produced a non-finite loss or weights (nothing was saved from it)."""


@dataclasses.dataclass
class RunData:
    """The data of a run: splits, batched pipelines and a fixed validation sample.

    Attributes:
        splits: The `ImageSplits`.
        train: Batched, augmented training `tf.data.Dataset` (one epoch).
        validation: Batched validation `tf.data.Dataset`.
        steps_per_epoch: Training steps per epoch.
        image_size: `(height, width)`.
        sample_images: 16 (or fewer) uint8 validation images, always the same.
        sample_labels: Their class ids.
    """

    splits: object
    train: object
    validation: object
    steps_per_epoch: int
    image_size: tuple
    sample_images: np.ndarray
    sample_labels: np.ndarray


def load_data(config, image_size):
    """Reads the run's data and builds its pipelines.

    Args:
        config: The `TrainConfig`.
        image_size: `(height, width)` of the model input.

    Returns:
        A `RunData`.

    Raises:
        ValueError: An empty validation split, or a batch larger than the
            training split.

    Example:

    >>> from keras_wavevit.recipes.train_config import TrainConfig
    >>> load_data(TrainConfig(batch_size=64), (32, 32)).steps_per_epoch  # doctest: +SKIP
    14
    """
    splits = _read_splits(config, image_size)
    if splits.num_validation == 0:
        raise ValueError(
            "The validation split is empty: use a validation_fraction > 0 (with "
            "at least one image per class held out) or a validation directory/split."
        )
    if splits.num_train < config.batch_size:
        raise ValueError(
            f"batch_size={config.batch_size} is larger than the training split "
            f"({splits.num_train} images)."
        )
    steps = splits.num_train // config.batch_size
    if config.steps_per_epoch is not None:
        steps = min(steps, config.steps_per_epoch)
    validation = data_lib.eval_pipeline(splits.validation, splits.num_classes, config.batch_size)
    if config.strategy == "multiworker":
        validation = distribute_dataset_options(validation)
    images, labels = next(iter(splits.validation.shuffle(splits.num_validation, seed=0).batch(16)))
    return RunData(splits, _train_pipeline(config, splits, image_size).take(steps), validation,
                   steps, image_size, images.numpy(), labels.numpy())


def _train_pipeline(config, splits, image_size):
    """The augmented training batches of one epoch, as `config` asks."""
    augmentation = augmentation_lib.build_augmentation(
        image_size, crop_scale=config.crop_scale, rotation_degrees=config.rotation,
        color_jitter=config.color_jitter, horizontal_flip=config.flip,
        translate=config.translate, erasing=config.erasing, seed=config.seed,
    )
    train_data = data_lib.train_pipeline(
        splits.train, splits.num_classes, config.batch_size, augmentation=augmentation,
        mixup_alpha=config.mixup, cutmix_alpha=config.cutmix,
        shuffle_buffer=splits.num_train, seed=config.seed,
    )
    if config.strategy == "multiworker":
        return distribute_dataset_options(train_data)
    return train_data


def _read_splits(config, image_size):
    if config.dataset:
        return data_lib.load_tfds(
            config.dataset, data_dir=config.tfds_data_dir, image_size=image_size,
            validation_fraction=config.validation_fraction,
            validation_split=config.validation_split,
        )
    return data_lib.load_image_folder(
        config.data_dir or data_lib.sample_data_dir(), image_size=image_size,
        validation_fraction=config.validation_fraction,
        validation_directory=config.validation_dir, skip_bad_images=config.skip_bad_images,
    )


def build_network(config, data, distribution):
    """Builds and compiles the classifier inside `distribution`'s scope.

    Example:

    >>> network = build_network(config, data, tf.distribute.get_strategy())  # doctest: +SKIP
    """
    with distribution.scope():
        network = build_model(config.model, data.splits.num_classes, data.image_size,
                              config.drop_path_rate)
        return compile_network(network, config, data.splits.num_classes, data.steps_per_epoch)


def plan_time_budget(config, state, data, distribution, started):
    """Sizes the run to `config.time_budget_minutes`; records the `plan` phase.

    Without a budget, returns `config` and `data` unchanged. Otherwise a
    throwaway copy of the network is timed on the run's pipelines
    (`recipes.budget`), and the plan's epochs and steps per epoch replace
    the config's; a resumed run reads the plan it recorded (with the
    changes `fit` made to it: `budget.BudgetKeeper`).

    Args:
        config: The `TrainConfig`.
        state: The `RunState`.
        data: The `RunData`.
        distribution: The `tf.distribute` strategy.
        started: `time.time()` when the run started.

    Returns:
        `(config, data)` following the plan.

    Example:

    >>> config, data = plan_time_budget(config, state, data, strategy, time.time())  # doctest: +SKIP
    """
    if config.time_budget_minutes is None:
        return config, data
    if not state.done("plan"):
        probe = build_network(config.replace(epochs=1, warmup_epochs=0.0), data, distribution)
        validation_batches = -(-data.splits.num_validation // config.batch_size)
        timings = budget_lib.measure(probe, data.train, data.validation, validation_batches,
                                     started)
        plan = budget_lib.plan_run(config.time_budget_minutes, timings, data.steps_per_epoch,
                                   export=config.export, plots=config.plots,
                                   evaluation_passes=_evaluation_passes(config))
        state.finish("plan", {**plan.to_dict(), "started": started})
        print(
            f"Time budget {plan.budget_minutes:g} minutes: {timings.step_seconds:.3f} s per "
            f"step ({config.batch_size / timings.step_seconds:.0f} images/s), validation "
            f"{timings.validation_seconds:.1f} s; training {plan.epochs} epochs of "
            f"{plan.steps_per_epoch} steps, planned to end at {plan.planned_minutes:.1f} minutes."
        )
    plan = budget_lib.BudgetPlan.from_dict(state.result("plan"))
    steps = min(plan.steps_per_epoch, data.steps_per_epoch)
    config = config.replace(epochs=plan.epochs, steps_per_epoch=steps)
    return config, dataclasses.replace(data, train=data.train.take(steps), steps_per_epoch=steps)


def match_regularization_to_epochs(config, data):
    """Turns random erasing and stochastic depth off for a run too short for them.

    A run of fewer than `config.regularize_from_epochs` epochs (after
    `plan_time_budget`, its plan's) underfits: on the `cifar10` recipe's
    30-minute budget (9 epochs) on an AVX2 CPU, training without both
    reached 77.7% against 74.5% with them (BENCHMARKS.md). Such a run
    trains without them, and says so; a longer one keeps them.

    Args:
        config: The `TrainConfig`, its `epochs` those the run trains.
        data: The `RunData`.

    Returns:
        `(config, data)`: unchanged, or with `erasing` and `drop_path_rate`
        set to 0 and the training pipeline rebuilt without erasing.

    Example:

    >>> config, data = match_regularization_to_epochs(config, data)  # doctest: +SKIP
    16 epochs, fewer than regularize_from_epochs=30: training without random erasing (was 0.25) and stochastic depth (was 0.1).
    """
    drop_path_rate = config.drop_path_rate
    if drop_path_rate is None:
        drop_path_rate = resolve_config(config.model).drop_path_rate
    if config.epochs >= config.regularize_from_epochs or not (config.erasing or drop_path_rate):
        return config, data
    print(
        f"{config.epochs} epochs, fewer than regularize_from_epochs="
        f"{config.regularize_from_epochs}: training without random erasing (was "
        f"{config.erasing:g}) and stochastic depth (was {drop_path_rate:g})."
    )
    config = config.replace(erasing=0.0, drop_path_rate=0.0)
    train = _train_pipeline(config, data.splits, data.image_size).take(data.steps_per_epoch)
    return config, dataclasses.replace(data, train=train)


def fit(config, state, data, network):
    """Trains `network`, resuming from the run's backup; records the `fit` phase.

    When `fit` ends, its loss and weights are checked (finite), then
    `final.keras` is saved and the phase recorded, and only then is the
    backup deleted, so a kill at any moment resumes without retraining.

    Raises:
        TrainingDiverged: The loss or the weights became non-finite; the
            last finite state stays in the backup and `best.keras`.

    Example:

    >>> fit(config, state, data, network)  # doctest: +SKIP
    """
    limit = callbacks_lib.TimeLimit(config.time_limit_minutes or float("inf"))
    log_path = state.path("log.csv")
    earlier = callbacks_lib.read_csv_log(log_path).get("val_accuracy", [])
    has_best = os.path.isfile(state.path("best.keras")) and earlier
    callbacks = [
        callbacks_lib.ThroughputAndClock(config.batch_size, log_path=log_path),
        keras.callbacks.TerminateOnNaN(),
        limit,
        callbacks_lib.BestCheckpoint(state.path("best.keras"),
                                     initial_best=np.nanmax(earlier) if has_best else None),
        callbacks_lib.EpochLog(log_path),
        *([keras.callbacks.SwapEMAWeights()] if config.ema_momentum else []),
        *_tensorboard(state),
        keras.callbacks.LambdaCallback(
            on_train_end=lambda logs: _finish_fit(state, network, logs, limit)
        ),
        callbacks_lib.ResumableBackup(
            os.path.join(state.shared_output, "backup"), write_dir=state.path("backup")
        ),
    ]
    epochs = config.epochs
    if state.done("plan"):
        stored = state.result("plan")
        plan = budget_lib.BudgetPlan.from_dict(stored)
        callbacks.append(budget_lib.BudgetKeeper(
            plan, stored["started"], export=config.export,
            plots=config.plots, evaluation_passes=_evaluation_passes(config),
            on_replan=lambda new_plan, done: _store_replan(state, new_plan, done),
        ))
        epochs = plan.epoch_bound  # the keeper stops the run at its planned step
    print(
        f"Training {network.name} ({network.count_params():,} parameters, "
        f"{keras.config.dtype_policy().name}) on {data.splits.num_train} images, validating on "
        f"{data.splits.num_validation}, {data.splits.num_classes} classes, {config.epochs} "
        f"epochs of {data.steps_per_epoch} steps, batch {config.batch_size}, image size "
        f"{data.image_size}. Output: {state.output}"
    )
    network.fit(
        data.train, validation_data=data.validation, epochs=epochs, callbacks=callbacks,
        verbose=config.verbose, shuffle=False,  # the tf.data pipeline shuffles every epoch
    )


def evaluation_shift(config):
    """The test-time shift of the final evaluation in pixels: `TEST_TIME_SHIFT`
    for runs trained with translations, else 0.

    Example:

    >>> from keras_wavevit.recipes.train_config import TrainConfig
    >>> evaluation_shift(TrainConfig(translate=0.125)), evaluation_shift(TrainConfig())
    (1, 0)
    """
    return TEST_TIME_SHIFT if config.translate else 0


def _evaluation_passes(config):
    """Passes over the validation data after training: `model.evaluate`'s,
    then one per test-time view (`evaluate` scores each view once for all
    its averages)."""
    flip, shift = bool(config.flip), evaluation_shift(config)
    return 1 + (test_time.view_count(flip=flip, shift=shift) if flip or shift else 0)


def _store_replan(state, plan, epochs_done):
    """Records a changed plan (a resumed run builds its schedule from it)."""
    stored = state.result("plan")
    replans = [*stored.get("replans", []), {
        "after_epoch": epochs_done, "total_steps": plan.total_steps,
        "planned_minutes": plan.planned_minutes}]
    state.finish("plan", {**stored, **plan.to_dict(), "replans": replans})


def _tensorboard(state):
    if importlib.util.find_spec("tensorboard") is None:
        print("TensorBoard is not installed (pip install tensorboard): no TensorBoard logs.")
        return []
    return [keras.callbacks.TensorBoard(state.path("tensorboard"))]


def _finish_fit(state, network, logs, limit):
    loss = (logs or {}).get("loss", 0.0)
    if not np.isfinite(loss) or not callbacks_lib.weights_are_finite(network):
        raise TrainingDiverged(
            f"Training diverged (loss {loss}): nothing was saved from the diverged steps. "
            "Try a lower --learning-rate or a gradient clip (--clip-norm 1.0), then rerun "
            "with --overwrite."
        )
    files.save_model_atomically(network, state.path("final.keras"))
    log = callbacks_lib.read_csv_log(state.path("log.csv"))
    rates = log.get("train_images_per_second", [])
    steady = rates[1:] if len(rates) > 1 else rates  # the first epoch includes tracing
    state.finish("fit", {
        "parameters": int(network.count_params()),
        "epochs_completed": len(log.get("epoch", [])),
        "train_minutes": (log.get("train_minutes") or [0.0])[-1],
        "train_images_per_second": float(np.median(steady)) if steady else None,
        "stopped_by_time_limit": limit.stopped_epoch is not None,
    })


def trained_model(state):
    """The run's best checkpoint (`best.keras`), else its `final.keras`.

    Example:

    >>> model = trained_model(state)  # doctest: +SKIP
    """
    best = state.path("best.keras")
    return keras.saving.load_model(best if os.path.isfile(best) else state.path("final.keras"))


def evaluate(data, model, flip_average=False, shift_average=0):
    """Validation loss, top-1 and top-5 accuracy, and inference images/s.

    With `flip_average` (runs trained with random flips), also the top-1
    accuracy of the scores averaged over each image and its mirror image
    (`val_accuracy_flip_averaged`). With `shift_average` pixels (runs
    trained with translations), also the top-1 accuracy of the scores
    averaged over the image, its four diagonal shifts and, with
    `flip_average`, their mirror images
    (`val_accuracy_shift_averaged`; `evaluation.averaged_over_views`).

    Example:

    >>> evaluate(data, trained_model(state))["val_accuracy"]  # doctest: +SKIP
    0.41
    """
    evaluation = model.evaluate(data.validation, verbose=0, return_dict=True)
    # Backend tensors (not tf.data's), converted before the clock starts.
    images = [keras.ops.convert_to_tensor(batch[0].numpy()) for batch in data.validation.take(21)]
    model.predict_on_batch(images[0])  # warm-up
    start = time.perf_counter()
    count = sum(int(model.predict_on_batch(batch).shape[0]) for batch in images[1:] or images)
    result = {
        "val_accuracy": float(evaluation["accuracy"]),
        "val_top5_accuracy": float(evaluation.get("top5_accuracy", float("nan"))),
        "val_loss": float(evaluation["loss"]),
        "inference_images_per_second": count / (time.perf_counter() - start),
    }
    print(
        f"Validation accuracy (best checkpoint): {result['val_accuracy']:.4f}, top-5 "
        f"{result['val_top5_accuracy']:.4f}; inference "
        f"{result['inference_images_per_second']:.1f} images/s."
    )
    averages = []  # (summary key, what is averaged)
    if flip_average:
        averages.append(("flip", "mirror images"))
    if shift_average:
        mirrors = "mirror images and " if flip_average else ""
        averages.append(("shift", f"{mirrors}{shift_average}-pixel shifts"))
    if averages:
        accuracies = _test_time_accuracies(data, model, flip_average, shift_average)
        for name, views in averages:
            result[f"val_accuracy_{name}_averaged"] = accuracies[name]
            print(f"Validation accuracy averaged with {views}: {accuracies[name]:.4f}.")
    return result


def _test_time_accuracies(data, model, flip, shift):
    """Top-1 validation accuracies of test-time averages, each view scored once.

    The views are `test_time.views(images, flip, shift)`: the image, its
    shifts, then the mirror image of each. `flip` averages the image and
    its mirror image, `shift` all the views (the scores `evaluate` and
    `evaluation.averaged_over_views` give).

    Returns:
        A dict: the accuracy of the `flip` average (with `flip`) and of the
        `shift` average (with `shift`).
    """
    count = test_time.view_count(flip, shift)
    subsets = {}
    if flip:
        subsets["flip"] = [0, count // 2]  # the image and its mirror image
    if shift:
        subsets["shift"] = list(range(count))
    correct, total = dict.fromkeys(subsets, 0), 0
    for images, labels in data.splits.validation.map(_normalized).batch(TEST_TIME_BATCH_SIZE):
        # NumPy batches: other backends' models take no TensorFlow tensors.
        scores = np.stack([np.asarray(model.predict_on_batch(np.asarray(view)), "float32")
                           for view in test_time.views(images, flip, shift)])
        labels = labels.numpy()
        for name, subset in subsets.items():
            predicted = np.argmax(np.mean(scores[subset], axis=0), axis=-1)
            correct[name] += int(np.sum(predicted == labels))
        total += len(labels)
    return {name: correct[name] / total for name in subsets}


def _normalized(image, label):
    return data_lib.normalize_images(image), label


def figures(state, data, model):
    """Learning curves, a prediction grid and a Grad-CAM view (PNG files).

    Example:

    >>> figures(state, data, trained_model(state))["figures"]  # doctest: +SKIP
    ['loss.png', 'accuracy.png', 'predictions.png', 'gradcam.png']
    """
    if importlib.util.find_spec("matplotlib") is None:
        print("matplotlib is not installed (pip install 'keras-wavevit[plots]'): no figures.")
        return {"figures": []}
    from keras_wavevit.recipes import interpret, plots

    class_names = data.splits.class_names
    written = plots.plot_learning_curves(callbacks_lib.read_csv_log(state.path("log.csv")),
                                         state.output)
    predicted = np.argmax(
        model.predict(data_lib.normalize_images(data.sample_images), verbose=0), axis=-1
    )
    written.append(plots.plot_prediction_grid(
        data.sample_images, data.sample_labels, predicted, class_names,
        state.path("predictions.png"),
    ))
    written.append(interpret.plot_grad_cam(
        model, data.sample_images[:8], class_names, state.path("gradcam.png"),
        true_labels=data.sample_labels[:8],
    ))
    return {"figures": [os.path.basename(path) for path in written]}


def export(state, data, model):
    """Exports `model` as a SavedModel and answers one prediction from it.

    Example:

    >>> export(state, data, trained_model(state))["saved_model"]  # doctest: +SKIP
    'runs/tiny/saved_model/1'
    """
    from keras_wavevit.export import export_saved_model
    from keras_wavevit.recipes.serving import SavedModelClassifier

    class_names = data.splits.class_names
    version_dir = export_saved_model(
        model, state.path("saved_model"), image_size=data.image_size,
        class_names=class_names, overwrite=True,
    )
    probabilities = SavedModelClassifier(version_dir).predict(data.sample_images[:1])[
        "probabilities"][0]
    predicted = int(np.argmax(probabilities))
    label = class_names[predicted]
    probability = float(probabilities[predicted])
    true = class_names[int(data.sample_labels[0])]
    print(f"SavedModel {version_dir} answers: {label} (p={probability:.3f}); true label: {true}.")
    return {
        "saved_model": version_dir,
        "saved_model_answer": {"predicted": label, "probability": probability, "true": true},
    }


def write_summary(config, state, data):
    """Writes `summary.json`: configuration, data, and every phase's results.

    Returns:
        The summary dict.

    Example:

    >>> write_summary(config, state, data)["epochs_completed"]  # doctest: +SKIP
    30
    """
    summary = {
        "model": config.model,
        "precision": keras.config.dtype_policy().name,
        "image_size": list(data.image_size),
        "batch_size": config.batch_size,
        "num_train": data.splits.num_train,
        "num_validation": data.splits.num_validation,
        "class_names": list(data.splits.class_names),
        "config": config.to_dict(),
    }
    for phase in ("fit", "evaluate", "export"):
        summary.update(state.phases.get(phase, {}))
    if state.done("plan"):
        plan = state.result("plan")
        summary["time_budget"] = {key: value for key, value in plan.items() if key != "started"}
        summary["wall_clock_minutes"] = round((time.time() - plan["started"]) / 60.0, 2)
    summary["files"] = sorted(
        name for name in set(os.listdir(state.output)) | {"summary.json"}
        if not name.startswith(files.PARTIAL_PREFIX)
    )
    files.atomic_write_text(state.path("summary.json"), json.dumps(summary, indent=2))
    return summary
