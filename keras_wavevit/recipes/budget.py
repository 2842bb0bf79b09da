"""Sizing a training run to a wall-clock budget (`--time-budget-minutes`).

A fixed number of epochs either stops early or overruns a deadline; a run
stopped at a deadline has not annealed its learning rate. With a budget,
the run measures itself first: a throwaway copy of the network trains a
few steps on the real input pipeline and validates a few batches, and a
checkpoint is saved once. From those timings `plan_run` picks the epochs
and steps per epoch so that training, validation after every epoch, the
checkpoints, the final evaluation, the figures and the export all end
inside the budget, and the warm-up and cosine decay are laid over exactly
those steps: the learning rate reaches its minimum as the budget ends.

The probe is short and a host's speed drifts (on shared machines by 20%
within minutes), so the plan is checked after every epoch against the time
the epochs actually took: when the epochs left no longer fit, the run drops
the steps that do not (cutting its last epoch short if that fits more) and
moves the end of its cosine decay to the new last step, so it still
anneals, and ends, inside the budget. Epochs faster than the probe
measured (a probe on a briefly busy host, or a host that speeds up again)
add steps, up to `GROWTH_LIMIT` times the first plan's epochs. The plan
and each change to it are stored with the run, so a resumed run follows
them.
"""

import dataclasses
import math
import os
import tempfile
import time

import keras

from keras_wavevit.recipes.network import learning_rate_schedule

# Seconds kept for the phases after `fit` that cannot be timed beforehand
# without doing them twice: the SavedModel export with its test answer, and
# the figures (Grad-CAM included). Both measured for the CIFAR-10 recipe's
# network on a 2-core CPU (about 25 s and 10 s) and rounded up.
EXPORT_RESERVE_SECONDS = 40.0
FIGURES_RESERVE_SECONDS = 15.0
# Traces the final evaluation pays, on the reloaded best checkpoint: its test
# step, and its predict step at the validation batch size and again at the
# test-time views' (Keras then relaxes the batch dimension).
EVALUATION_TRACES = 3
# A re-plan may grow a run up to this many times its first plan's epochs
# (the bound `fit` runs with): the probe has been seen 25% pessimistic.
GROWTH_LIMIT = 2
# Steps the throughput probe times after its first (tracing) steps.
PROBE_WARMUP_STEPS = 3
PROBE_STEPS = 12
PROBE_VALIDATION_BATCHES = 4


@dataclasses.dataclass(frozen=True)
class Timings:
    """What a run measured about itself before sizing its schedule.

    Attributes:
        elapsed_seconds: Wall-clock time already spent (data loading, the
            probe itself) when the plan is made.
        first_step_seconds: The first training step, which traces the
            graph (the real run pays it again).
        step_seconds: One training step after warm-up, input pipeline
            included.
        validation_seconds: One full validation pass, its tracing included.
        checkpoint_seconds: The model files written after every epoch
            (best checkpoint and backup).
        validation_tracing_seconds: The part of `validation_seconds` its
            first batch took beyond a traced one (tracing the test step).
    """

    elapsed_seconds: float
    first_step_seconds: float
    step_seconds: float
    validation_seconds: float
    checkpoint_seconds: float
    validation_tracing_seconds: float = 0.0


@dataclasses.dataclass(frozen=True)
class BudgetPlan:
    """The schedule that fills a budget: epochs of `steps_per_epoch` steps.

    Attributes:
        budget_minutes: The wall-clock budget.
        epochs: Epochs of the first plan (a re-plan may train up to
            `epoch_bound`).
        steps_per_epoch: Optimizer steps per epoch (at most a full pass).
        planned_minutes: When the plan expects the run to end.
        timings: The `Timings` it was made from, as a dict.
        total_steps: Optimizer steps the run takes, where the learning rate
            anneals: `epochs * steps_per_epoch` (the default), fewer after a
            re-plan found that they do not fit.
    """

    budget_minutes: float
    epochs: int
    steps_per_epoch: int
    planned_minutes: float
    timings: dict
    total_steps: int = None

    def __post_init__(self):
        if self.total_steps is None:
            object.__setattr__(self, "total_steps", self.epochs * self.steps_per_epoch)

    @property
    def planned_epochs(self):
        """Epochs that `total_steps` spans (the last one possibly cut short).

        Example:

        >>> BudgetPlan(60.0, 5, 100, 59.0, {}, total_steps=450).planned_epochs
        5
        """
        return -(-self.total_steps // self.steps_per_epoch)

    @property
    def epoch_bound(self):
        """The most epochs re-plans may grow the run to: the bound `fit` runs with.

        Example:

        >>> BudgetPlan(60.0, 5, 100, 59.0, {}).epoch_bound
        10
        """
        return GROWTH_LIMIT * self.epochs

    def to_dict(self):
        """The plan as a JSON-ready dict (stored with the run).

        Example:

        >>> plan = BudgetPlan(10.0, 3, 50, 9.8, {"step_seconds": 1.0})
        >>> BudgetPlan.from_dict(plan.to_dict()) == plan
        True
        """
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values):
        """The plan stored by `to_dict`.

        Example:

        >>> BudgetPlan.from_dict({"budget_minutes": 10.0, "epochs": 3,
        ...     "steps_per_epoch": 50, "planned_minutes": 9.8, "timings": {}}).epochs
        3
        """
        return cls(**{field.name: values[field.name] for field in dataclasses.fields(cls)
                      if field.name in values})


def _epoch_overhead_seconds(timings):
    """What an epoch costs besides its steps: validation and the checkpoints."""
    return timings.validation_seconds + timings.checkpoint_seconds


def _step_seconds(epoch_seconds, timings, steps_per_epoch):
    """One step's share of a measured epoch, its overhead taken out."""
    return max(epoch_seconds - _epoch_overhead_seconds(timings), 1e-9) / steps_per_epoch


def _after_training_seconds(timings, export, plots, evaluation_passes):
    """The final evaluation, `final.keras`, and the figure and export reserves.

    The evaluation reloads the best checkpoint and traces its steps again
    (`EVALUATION_TRACES`); its passes run at a traced pass's speed, one
    more pass counted for the inference-speed measurement (at most a pass).
    """
    tracing = timings.validation_tracing_seconds
    evaluation = ((evaluation_passes + 1) * (timings.validation_seconds - tracing)
                  + EVALUATION_TRACES * tracing)
    return (evaluation + timings.checkpoint_seconds / 2.0
            + (EXPORT_RESERVE_SECONDS if export else 0.0)
            + (FIGURES_RESERVE_SECONDS if plots else 0.0))


def plan_run(budget_minutes, timings, full_steps_per_epoch, export=True, plots=True,
             evaluation_passes=1):
    """Chooses epochs and steps per epoch that end the run inside the budget.

    Time left after what is already spent goes to: the real network's
    first (tracing) step, per epoch a validation pass and the checkpoints,
    after training the evaluation (`evaluation_passes` validation passes,
    one for the inference speed, the traces of the reloaded best
    checkpoint) and the reserves for figures and export; the rest is
    training steps, split into
    as few epochs of at most `full_steps_per_epoch` steps as they fill.

    Args:
        budget_minutes: The wall-clock budget of the whole run.
        timings: `Timings` measured by the run.
        full_steps_per_epoch: Steps of one full pass over the training split.
        export: Whether the run exports a SavedModel.
        plots: Whether the run draws its figures.
        evaluation_passes: Passes over the validation data after training
            (3 when the evaluation also averages with mirror images, 11 with
            mirror images and shifts).

    Returns:
        A `BudgetPlan`.

    Raises:
        ValueError: The budget cannot hold one epoch of a single step; the
            message gives the smallest budget that can.

    Example:

    >>> timings = Timings(elapsed_seconds=30.0, first_step_seconds=10.0,
    ...     step_seconds=0.5, validation_seconds=5.0, checkpoint_seconds=1.0)
    >>> plan = plan_run(10.0, timings, full_steps_per_epoch=100, export=False, plots=False)
    >>> plan.epochs, plan.steps_per_epoch
    (10, 97)
    """
    if timings.step_seconds <= 0 or min(dataclasses.asdict(timings).values()) < 0:
        raise ValueError(f"Timings must be positive; received {timings}.")
    fixed = (timings.elapsed_seconds + timings.first_step_seconds
             + _after_training_seconds(timings, export, plots, evaluation_passes))
    per_epoch = _epoch_overhead_seconds(timings)
    available = budget_minutes * 60.0 - fixed
    def steps_for(epochs):
        return int((available - epochs * per_epoch) // timings.step_seconds)

    epochs = 1  # the fewest epochs whose full passes hold the steps left
    while steps_for(epochs) > epochs * full_steps_per_epoch:
        epochs += 1
    steps = steps_for(epochs)
    if steps < epochs:
        smallest = (fixed + per_epoch + timings.step_seconds) / 60.0
        raise ValueError(
            f"A time budget of {budget_minutes:g} minutes cannot hold one training step: "
            f"{fixed / 60.0:.1f} minutes go to loading data, tracing, evaluation and export "
            f"here. Give at least {math.ceil(smallest * 10) / 10:g} minutes."
        )
    steps_per_epoch = steps // epochs
    used = fixed + epochs * (per_epoch + steps_per_epoch * timings.step_seconds)
    return BudgetPlan(
        budget_minutes=float(budget_minutes), epochs=epochs, steps_per_epoch=steps_per_epoch,
        planned_minutes=round(used / 60.0, 2), timings=dataclasses.asdict(timings),
    )


class _StepClock(keras.callbacks.Callback):
    """Records when each training or validation batch ends."""

    def __init__(self):
        super().__init__()
        self.start = None
        self.ends = []

    def on_train_begin(self, logs=None):
        self.start = time.perf_counter()

    on_test_begin = on_train_begin

    def on_train_batch_end(self, batch, logs=None):
        self.ends.append(time.perf_counter())

    on_test_batch_end = on_train_batch_end

    def step_seconds(self, skip):
        """Mean seconds per batch after the first `skip` (fewer on a short pass)."""
        skip = min(skip, len(self.ends) - 1)
        if skip < 1:  # one batch only: its time, tracing included (an overestimate)
            return self.ends[0] - self.start
        timed = self.ends[skip - 1:]
        return (timed[-1] - timed[0]) / (len(timed) - 1)


def measure(probe, train_data, validation_data, validation_batches, started):
    """Times a throwaway compiled network on the run's own pipelines.

    Args:
        probe: A compiled copy of the run's network (it is trained a few
            steps, so never the real one).
        train_data: The run's batched training dataset.
        validation_data: The run's batched validation dataset.
        validation_batches: Batches in one validation pass.
        started: `time.time()` when the run started.

    Returns:
        `Timings`.

    Example:

    >>> timings = measure(probe, data.train, data.validation, 40, started)  # doctest: +SKIP
    """
    train_clock = _StepClock()
    probe.fit(train_data.take(PROBE_WARMUP_STEPS + PROBE_STEPS), epochs=1, verbose=0,
              callbacks=[train_clock], shuffle=False)
    test_clock = _StepClock()
    probe.evaluate(validation_data.take(PROBE_VALIDATION_BATCHES), verbose=0,
                   callbacks=[test_clock])
    first_test = test_clock.ends[0] - test_clock.start
    test_step = test_clock.step_seconds(skip=1)
    with tempfile.TemporaryDirectory() as directory:
        begin = time.perf_counter()
        probe.save(os.path.join(directory, "probe.keras"))
        checkpoint = 2 * (time.perf_counter() - begin)  # best checkpoint + backup
    return Timings(
        elapsed_seconds=time.time() - started,
        first_step_seconds=train_clock.ends[0] - train_clock.start,
        step_seconds=train_clock.step_seconds(skip=PROBE_WARMUP_STEPS),
        validation_seconds=first_test + test_step * max(0, validation_batches - 1),
        checkpoint_seconds=checkpoint,
        validation_tracing_seconds=max(0.0, first_test - test_step),
    )


def replan(plan, elapsed_seconds, epochs_done, epoch_seconds, export=True, plots=True,
           evaluation_passes=1):
    """The optimizer steps a run can still take, after `epochs_done`, inside its budget.

    What is left of the budget, less what follows training (the final
    evaluation, `final.keras`, the figure and export reserves), holds as
    many more epochs as fit at what an epoch now costs (training,
    validation and checkpoints, as measured on the last epochs), then, in
    what remains, a last epoch cut short: as many steps as fit beside its
    validation and checkpoints. Never more than `GROWTH_LIMIT` times the
    first plan's epochs.

    Args:
        plan: The run's current `BudgetPlan`.
        elapsed_seconds: Wall-clock seconds since the run started.
        epochs_done: Full epochs finished.
        epoch_seconds: What one epoch costs now, everything included.
        export: Whether the run exports a SavedModel.
        plots: Whether the run draws its figures.
        evaluation_passes: Passes over the validation data after training.

    Returns:
        The run's total optimizer steps: between the steps done (stop now)
        and `plan.epoch_bound * plan.steps_per_epoch`.

    Example:

    >>> timings = Timings(0.0, 0.0, 1.0, validation_seconds=10.0, checkpoint_seconds=2.0)
    >>> plan = BudgetPlan(10.0, 8, 60, 9.9, dataclasses.asdict(timings))
    >>> # 289 s left (21 s go to the evaluation and final.keras): 3 epochs of 75 s
    >>> # (60 steps of 1.05 s, 12 s of validation and checkpoints), then 64 s: a
    >>> # last epoch of 49 steps.
    >>> replan(plan, elapsed_seconds=290.0, epochs_done=4, epoch_seconds=75.0,
    ...        export=False, plots=False)
    469
    """
    timings = Timings(**plan.timings)
    steps_done = epochs_done * plan.steps_per_epoch
    left = max(0.0, plan.budget_minutes * 60.0 - elapsed_seconds
               - _after_training_seconds(timings, export, plots, evaluation_passes))
    most = plan.epoch_bound * plan.steps_per_epoch
    if epoch_seconds <= 0:
        return most
    epochs = int(left // epoch_seconds)
    step_seconds = _step_seconds(epoch_seconds, timings, plan.steps_per_epoch)
    rest = left - epochs * epoch_seconds - _epoch_overhead_seconds(timings)
    last_steps = min(plan.steps_per_epoch - 1, int(rest // step_seconds)) if rest > 0 else 0
    total = steps_done + epochs * plan.steps_per_epoch + last_steps
    return max(steps_done, min(most, total))


class BudgetKeeper(keras.callbacks.Callback):
    """Keeps a run inside its time budget: re-plans after every epoch.

    After each epoch from the second of a `fit` call on, it measures what
    the last two epochs cost (training, validation, checkpoints; the first
    epoch, which traces the step and fills the decoded-image cache, is not a
    measure) and calls `replan`. When the steps that fit change, the end of
    the learning-rate schedule (a `MovableCosineDecay`) moves to the new
    last step, `on_replan` is called with the new plan (the run stores it,
    so a resumed run follows it), and training stops at that step, in the
    middle of an epoch if the last one is cut short (that epoch is then
    validated and checkpointed as usual). `fit` runs for the plan's
    `epoch_bound`, the most a re-plan allows. It prints the budget used and
    left.
    Put it after the checkpoint callbacks, so their time is counted.

    Args:
        plan: The run's `BudgetPlan`.
        started: `time.time()` when the run started (stored with the plan,
            so a resumed run counts from the first start).
        export: Whether the run exports a SavedModel.
        plots: Whether the run draws its figures.
        evaluation_passes: Passes over the validation data after training.
        on_replan: Called with the new `BudgetPlan` and the epochs done
            when the plan changes.
        clock: Returns the current time in seconds (`time.time`).

    Example:

    >>> keeper = BudgetKeeper(BudgetPlan(60.0, 20, 351, 59.4, {}), time.time())
    """

    def __init__(self, plan, started, export=True, plots=True, evaluation_passes=1,
                 on_replan=None, clock=time.time):
        super().__init__()
        self.plan = plan
        self.started = started
        self.export = export
        self.plots = plots
        self.evaluation_passes = evaluation_passes
        self.on_replan = on_replan
        self.clock = clock

    def on_train_begin(self, logs=None):
        self._epoch_ends = [self.clock()]
        self._step = int(keras.ops.convert_to_numpy(self.model.optimizer.iterations))
        # A resumed run whose plan cut its last epoch short: its network was
        # compiled for whole epochs.
        self._move_schedule_end(self.plan.total_steps)

    def on_train_batch_end(self, batch, logs=None):
        self._step += 1
        if self._step >= self.plan.total_steps:
            self.model.stop_training = True

    def _epoch_seconds(self):
        """The mean of the last two epochs after the first of this `fit` call."""
        durations = [end - start for start, end in zip(self._epoch_ends, self._epoch_ends[1:])]
        recent = durations[1:][-2:]
        return sum(recent) / len(recent)

    def on_epoch_end(self, epoch, logs=None):
        now = self.clock()
        self._epoch_ends.append(now)
        # The first epoch of a fit call pays one-time costs that later ones do
        # not (tracing, filling the decoded-image cache), so it is not a
        # measure of what the epochs left will cost.
        if len(self._epoch_ends) > 2 and self._step < self.plan.total_steps:
            total = replan(self.plan, now - self.started, epoch + 1, self._epoch_seconds(),
                           export=self.export, plots=self.plots,
                           evaluation_passes=self.evaluation_passes)
            if total != self.plan.total_steps:
                self._replan(total, epoch + 1, now)
        used = (now - self.started) / 60.0
        print(
            f"Time budget: epoch {epoch + 1}/{self.plan.planned_epochs}, {used:.1f} of "
            f"{self.plan.budget_minutes:g} minutes used, {self.plan.budget_minutes - used:.1f} "
            f"left (planned end: {self.plan.planned_minutes:.1f}).",
            flush=True,
        )
        if self._step >= self.plan.total_steps:
            self.model.stop_training = True

    def _move_schedule_end(self, total_steps):
        schedule = learning_rate_schedule(self.model.optimizer)
        total_steps = max(total_steps, schedule.warmup_steps + 1)
        if schedule.total_steps != total_steps:
            schedule.move_end(total_steps)
            if keras.backend.backend() == "jax":  # its compiled step holds the end as a value
                self.model.make_train_function(force=True)

    def _replan(self, total_steps, epochs_done, now):
        steps_per_epoch = self.plan.steps_per_epoch
        epochs = -(-total_steps // steps_per_epoch)
        last = total_steps - (epochs - 1) * steps_per_epoch
        timings = Timings(**self.plan.timings)
        step_seconds = _step_seconds(self._epoch_seconds(), timings, steps_per_epoch)
        planned_seconds = (
            now - self.started + (total_steps - epochs_done * steps_per_epoch) * step_seconds
            + (epochs - epochs_done) * _epoch_overhead_seconds(timings)
            + _after_training_seconds(timings, self.export, self.plots, self.evaluation_passes)
        )
        shortened = "" if last == steps_per_epoch else f", the last one {last} steps"
        print(f"Time budget: at the speed of the last epochs, re-planned from "
              f"{self.plan.total_steps} to {total_steps} steps ({epochs} epochs{shortened}); "
              f"the learning rate now anneals at step {total_steps}.", flush=True)
        self.plan = dataclasses.replace(self.plan, total_steps=total_steps,
                                        planned_minutes=round(planned_seconds / 60.0, 2))
        self._move_schedule_end(total_steps)
        if self.on_replan is not None:
            self.on_replan(self.plan, epochs_done)
