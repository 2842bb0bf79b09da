"""The network of a training run: architecture from `--model`, optimizer, compile.

`--model` is anything `keras_wavevit.config.resolve_config` reads (a preset
name, inline JSON, a `.json` file); `build_model` turns it into a logits
classifier and
`compile_network` gives it the recipe's AdamW schedule, loss and metrics.
The schedule is a `MovableCosineDecay`, whose end a time-budgeted run moves
as its host's speed changes (`recipes.budget`).
"""

import keras

from keras_wavevit.config import PRESETS, resolve_config
from keras_wavevit.model import WaveViT
from keras_wavevit.optimizers import AdamW

JIT_COMPILE = {"auto": "auto", "on": True, "off": False}


def is_variant(model):
    """Whether `model` names a built-in preset (`tiny`, `small`, `base`, `large`).

    Example:

    >>> is_variant("tiny"), is_variant('{"preset": "tiny", "depths": [1, 1, 1, 1]}')
    (True, False)
    """
    return isinstance(model, str) and model in PRESETS


def build_model(model, num_classes, image_size=None, drop_path_rate=None):
    """Builds a Wave-ViT classifier (logits output) for training.

    Args:
        model: Anything `keras_wavevit.config.resolve_config` reads: a preset
            name, inline JSON, a `.json` file, a dict or a `WaveViTConfig`.
        num_classes: Number of classes.
        image_size: `(height, width)` of the input; default the config's.
        drop_path_rate: Stochastic depth rate; `None` = the config's.

    Returns:
        A `keras.Model` outputting float32 logits.

    Example:

    >>> build_model("tiny", 10, (32, 32)).output_shape
    (None, 10)
    """
    config = resolve_config(model)
    image_size = tuple(image_size or config.input_shape[:2])
    return WaveViT(
        config,
        input_shape=(*image_size, 3),
        num_classes=num_classes,
        classifier_activation=None,
        drop_path_rate=config.drop_path_rate if drop_path_rate is None else drop_path_rate,
        name=f"WaveViT{model.capitalize()}" if is_variant(model) else "wave_vit",
    )


@keras.saving.register_keras_serializable(package="keras_wavevit")
class MovableCosineDecay(keras.optimizers.schedules.CosineDecay):
    """Keras' `CosineDecay` (with warm-up) whose end can be moved while training.

    The number of decay steps lives in a non-trainable variable that the
    compiled training step reads, so `move_end` takes effect from the next
    step without tracing again (on JAX, whose compiled step holds values
    rather than variables, rebuild the train function after moving it).
    A time-budgeted run uses it to finish the cosine exactly at its
    re-planned last step. Saved models keep the moved end.

    Args:
        initial_learning_rate: Learning rate at step 0.
        decay_steps: Steps of the cosine decay (after the warm-up).
        alpha: Final learning rate as a fraction of the decayed-from rate.
        name: Name of the schedule's ops.
        warmup_target: Learning rate reached after the warm-up (`None`: no
            warm-up).
        warmup_steps: Steps of linear warm-up.

    Example:

    >>> schedule = MovableCosineDecay(0.0, decay_steps=90, warmup_target=1e-3,
    ...     warmup_steps=10, alpha=0.01)
    >>> schedule.move_end(total_steps=50)
    >>> round(float(schedule(50)), 8)  # the end: alpha times the peak
    1e-05
    """

    def __init__(self, initial_learning_rate, decay_steps, alpha=0.0, name="CosineDecay",
                 warmup_target=None, warmup_steps=0):
        super().__init__(initial_learning_rate, decay_steps, alpha=alpha, name=name,
                         warmup_target=warmup_target, warmup_steps=warmup_steps)
        self.decay_steps = keras.Variable(float(decay_steps), dtype="float32",
                                          trainable=False, name="decay_steps")

    @property
    def total_steps(self):
        """Warm-up plus decay steps: the step at which the schedule ends."""
        return self.warmup_steps + int(round(float(keras.ops.convert_to_numpy(self.decay_steps))))

    def move_end(self, total_steps):
        """Makes the schedule end (reach its final rate) at `total_steps`.

        Args:
            total_steps: The new last step, warm-up included; more than the
                warm-up.

        Raises:
            ValueError: `total_steps` leaves no decay step after the warm-up.
        """
        if total_steps <= self.warmup_steps:
            raise ValueError(
                f"total_steps must exceed the {self.warmup_steps} warm-up steps; "
                f"received {total_steps}."
            )
        self.decay_steps.assign(float(total_steps - self.warmup_steps))

    def get_config(self):
        decay_steps = float(keras.ops.convert_to_numpy(self.decay_steps))
        return {**super().get_config(), "decay_steps": decay_steps}


def learning_rate_schedule(optimizer):
    """The learning-rate schedule `optimizer` was built with (Keras keeps it private).

    Example:

    >>> learning_rate_schedule(make_optimizer(1e-3, 0.05, 100, 10)).total_steps
    100
    """
    return optimizer._learning_rate


def make_optimizer(
    learning_rate, weight_decay, total_steps, warmup_steps, min_learning_rate=0.0, clipnorm=None,
    ema_momentum=None,
):
    """AdamW with linear warm-up to `learning_rate`, then cosine decay.

    The schedule is a `MovableCosineDecay` (its end can be moved while
    training).

    Weight decay skips biases and normalisation parameters (`bias`, `gamma`,
    `beta`), as usual for transformers.

    Args:
        learning_rate: Peak learning rate, reached after `warmup_steps`.
        weight_decay: Decoupled weight decay.
        total_steps: Optimizer steps of the whole run.
        warmup_steps: Steps of linear warm-up from 0.
        min_learning_rate: Learning rate at the end of the decay.
        clipnorm: Optional global gradient-norm clip.
        ema_momentum: Keep a moving average of the weights with this
            momentum (Keras' `use_ema`); `None`: none.

    Returns:
        A `keras_wavevit.optimizers.AdamW` (Keras' AdamW, updated in one
        fused loop on TensorFlow).

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
    schedule = MovableCosineDecay(
        initial_learning_rate=0.0 if warmup_steps else learning_rate,
        decay_steps=total_steps - warmup_steps,
        alpha=min_learning_rate / learning_rate,
        warmup_target=learning_rate if warmup_steps else None,
        warmup_steps=warmup_steps,
    )
    optimizer = AdamW(
        learning_rate=schedule, weight_decay=weight_decay, global_clipnorm=clipnorm,
        use_ema=ema_momentum is not None,
        ema_momentum=0.99 if ema_momentum is None else ema_momentum,
    )
    optimizer.exclude_from_weight_decay(var_names=["bias", "gamma", "beta"])
    return optimizer


def compile_network(network, config, num_classes, steps_per_epoch):
    """Compiles `network` with the recipe: AdamW schedule, smoothed loss, accuracy.

    Call it inside the distribution strategy's scope. The optimizer's
    variables are created here, eagerly: Keras would otherwise create them
    while tracing the first training step, where each costs about twenty
    times as much (some 10 seconds for a few hundred variables on a small CPU).

    Args:
        network: The model from `build_model`.
        config: The run's `TrainConfig` (learning rates, weight decay,
            warm-up, clipping, weight averaging, label smoothing, epochs, XLA).
        num_classes: Number of classes (top-5 accuracy is added above 5).
        steps_per_epoch: Optimizer steps per epoch.

    Returns:
        `network`, compiled.

    Example:

    >>> from keras_wavevit.recipes.train_config import TrainConfig
    >>> network = compile_network(build_model("tiny", 10, (32, 32)), TrainConfig(), 10, 8)
    >>> [metric.name for metric in network.metrics][-1]
    'compile_metrics'
    >>> network.optimizer.built
    True
    """
    total_steps = steps_per_epoch * config.epochs
    warmup_steps = min(int(round(config.warmup_epochs * steps_per_epoch)), total_steps - 1)
    metrics = [keras.metrics.CategoricalAccuracy(name="accuracy")]
    if num_classes > 5:
        metrics.append(keras.metrics.TopKCategoricalAccuracy(5, name="top5_accuracy"))
    network.compile(
        optimizer=make_optimizer(
            config.learning_rate,
            config.weight_decay,
            total_steps,
            warmup_steps,
            min_learning_rate=min(config.min_learning_rate, config.learning_rate),
            clipnorm=config.clip_norm,
            ema_momentum=config.ema_momentum,
        ),
        loss=keras.losses.CategoricalCrossentropy(
            from_logits=True, label_smoothing=config.label_smoothing
        ),
        metrics=metrics,
        jit_compile=JIT_COMPILE[config.jit_compile],
    )
    network.optimizer.build(network.trainable_variables)
    return network
