"""Time-budgeted runs: the plan fills the budget, and a run anneals exactly at its end."""

import csv
import dataclasses
import functools
import json
import os
import time

import keras
import numpy as np
import pytest
import tensorflow as tf

from keras_wavevit import cli
from keras_wavevit.recipes import budget, phases
from keras_wavevit.recipes.network import build_model, compile_network
from keras_wavevit.recipes.train_config import TrainConfig
from tests.configs import MICRO_ARCHITECTURE
from tests.recipes.train_child import MICRO_MODEL, write_image_folder

# A validation pass of 4 s, 1.5 s of it tracing: a traced pass takes 2.5 s.
TIMINGS = budget.Timings(elapsed_seconds=20.0, first_step_seconds=8.0, step_seconds=0.25,
                         validation_seconds=4.0, checkpoint_seconds=0.5,
                         validation_tracing_seconds=1.5)


def seconds_used(plan, timings, export, plots, passes):
    """The run's length under the plan, added up independently of plan_run."""
    reserves = (budget.EXPORT_RESERVE_SECONDS if export else 0.0) + (
        budget.FIGURES_RESERVE_SECONDS if plots else 0.0)
    per_epoch = (timings.validation_seconds + timings.checkpoint_seconds
                 + plan.steps_per_epoch * timings.step_seconds)
    final_save = timings.checkpoint_seconds / 2.0  # final.keras (a checkpoint is two saves)
    # The reloaded best checkpoint's test step and predict step (twice) are
    # traced; its passes, one more for the inference speed, run traced.
    evaluation = 3 * 1.5 + (passes + 1) * 2.5
    return (timings.elapsed_seconds + timings.first_step_seconds + evaluation
            + final_save + reserves + plan.epochs * per_epoch)


@pytest.mark.parametrize("minutes", [3.0, 10.0, 60.0, 600.0])
@pytest.mark.parametrize("export, plots", [(True, True), (False, False)])
@pytest.mark.parametrize("passes", [1, 11])
def test_plan_fills_the_budget_without_overrunning_it(minutes, export, plots, passes):
    full = 351
    plan = budget.plan_run(minutes, TIMINGS, full, export=export, plots=plots,
                           evaluation_passes=passes)
    used = seconds_used(plan, TIMINGS, export, plots, passes)
    assert used <= minutes * 60.0
    assert plan.steps_per_epoch <= full
    # One step more per epoch would overrun, unless the epochs are already full passes.
    longer = budget.BudgetPlan(minutes, plan.epochs, plan.steps_per_epoch + 1, 0.0, {})
    assert plan.steps_per_epoch == full or (
        seconds_used(longer, TIMINGS, export, plots, passes) > minutes * 60)
    # With one epoch fewer, even full passes would leave time for more steps.
    fewer = budget.BudgetPlan(minutes, plan.epochs - 1, full, 0.0, {})
    assert plan.epochs == 1 or (
        seconds_used(fewer, TIMINGS, export, plots, passes) + TIMINGS.step_seconds
        <= minutes * 60.0)
    assert plan.planned_minutes == pytest.approx(used / 60.0, abs=0.01)


def test_a_budget_too_short_for_one_step_is_refused_with_the_smallest_that_fits():
    with pytest.raises(ValueError, match=r"A time budget of 0.5 minutes cannot hold one training "
                                         r"step: 1.5 minutes go to .* Give at least 1.7 minutes."):
        budget.plan_run(0.5, TIMINGS, 100)
    assert budget.plan_run(1.7, TIMINGS, 100).epochs == 1  # the budget it names fits


@pytest.mark.parametrize("flip, translate, passes", [
    (False, 0.0, 1),  # model.evaluate only
    (True, 0.0, 3),  # and the image with its mirror image
    (False, 0.125, 6),  # and the image with its four shifts
    (True, 0.125, 11),  # and 10 views, each scored once for both averages
])
def test_the_plan_counts_each_test_time_view_once(flip, translate, passes):
    config = TrainConfig(flip=flip, translate=translate)
    assert phases._evaluation_passes(config) == passes


def test_budget_and_time_limit_are_exclusive():
    with pytest.raises(ValueError, match="Pass either time_budget_minutes .* not both"):
        TrainConfig(time_budget_minutes=10, time_limit_minutes=5)


def test_measure_times_a_network_on_its_pipelines():
    count = 4 * (budget.PROBE_WARMUP_STEPS + budget.PROBE_STEPS + 2)  # more than it takes
    images = np.random.default_rng(0).uniform(0, 1, (count, 32, 32, 3)).astype("float32")
    labels = np.eye(3, dtype="float32")[np.arange(count) % 3]
    data = tf.data.Dataset.from_tensor_slices((images, labels)).batch(4)
    network = compile_network(build_model(dict(MICRO_ARCHITECTURE), 3, (32, 32)),
                              TrainConfig(epochs=1, warmup_epochs=0.0), 3, 10)
    started = time.time() - 5.0
    timings = budget.measure(network, data, data, validation_batches=20, started=started)
    assert 5.0 <= timings.elapsed_seconds < 5.0 + 600
    assert 0 < timings.step_seconds < timings.first_step_seconds  # the first step traces
    assert timings.validation_seconds > 0 and timings.checkpoint_seconds > 0
    assert 0 < timings.validation_tracing_seconds < timings.validation_seconds
    assert int(network.optimizer.iterations.numpy()) == (
        budget.PROBE_WARMUP_STEPS + budget.PROBE_STEPS)
    short = budget.measure(network, data.take(1), data.take(1), 1, started)  # one batch only
    assert short.step_seconds > 0


# The probe's fixed timings make a plan exact: 1 s steps, full passes of 4 steps
# (18 training images at batch 4), per epoch 1 s of validation (half of it tracing)
# and 0.5 s of checkpoints; the final evaluation is 3 validation passes (the run trains
# with flips, so it also scores the mirror images) and one for the inference speed at
# 0.5 s each, and 3 traces of 0.5 s: 3.5 s, and 0.25 s for final.keras.
ONE_SECOND_TIMINGS = budget.Timings(elapsed_seconds=1.0, first_step_seconds=1.0,
                                    step_seconds=1.0, validation_seconds=1.0,
                                    checkpoint_seconds=0.5, validation_tracing_seconds=0.5)


def run_budgeted(tmp_path, monkeypatch, minutes, epoch_seconds):
    """Trains the micro model with a budget; by the run's clock epochs take `epoch_seconds`.

    `epoch_seconds` is one duration for every epoch, or one per epoch (the
    last repeats). Training starts when the plan expects it (1 s after the
    run started). Returns the run's output directory.
    """
    durations = epoch_seconds if isinstance(epoch_seconds, list) else [epoch_seconds]
    monkeypatch.setattr(budget, "measure", lambda *args, **kwargs: ONE_SECOND_TIMINGS)
    output = str(tmp_path / "run")
    ticks = []

    def clock():
        if ticks:
            ticks.append(ticks[-1] + durations[min(len(ticks) - 1, len(durations) - 1)])
        else:
            with open(os.path.join(output, "phases.json"), encoding="utf-8") as file:
                ticks.append(json.load(file)["phases"]["plan"]["started"] + 1.0)
        return ticks[-1]

    monkeypatch.setattr(budget, "BudgetKeeper", functools.partial(budget.BudgetKeeper,
                                                                  clock=clock))
    folder = write_image_folder(str(tmp_path / "images"))
    assert cli.main(budget_command(folder, output, minutes)) == 0
    return output


def budget_command(folder, output, minutes):
    return ["train", "--data-dir", folder, "--model", MICRO_MODEL, "--batch-size", "4",
            "--validation-fraction", "0.25", "--time-budget-minutes", str(minutes),
            "--warmup-epochs", "0.5", "--no-plots", "--no-export", "--verbose", "0",
            "--output", output, "--seed", "0"]


def read_json(*path):
    with open(os.path.join(*path), encoding="utf-8") as file:
        return json.load(file)


def test_budgeted_run_follows_its_plan_and_anneals_at_the_end(tmp_path, capsys, monkeypatch):
    plan = budget.plan_run(0.3, ONE_SECOND_TIMINGS, 4, export=False, plots=False,
                           evaluation_passes=3)
    as_planned = 1.5 + plan.steps_per_epoch * 1.0
    # The first epoch also pays for its first (tracing) step, as the plan counts.
    output = run_budgeted(tmp_path, monkeypatch, 0.3,
                          epoch_seconds=[as_planned + 1.0, as_planned])
    assert plan.epochs > 1 and plan.steps_per_epoch < 4  # a plan that shortens the epochs
    printed = capsys.readouterr().out
    assert "Time budget 0.3 minutes: 1.000 s per step" in printed
    assert "re-planned" not in printed
    assert f"Time budget: epoch {plan.epochs}/{plan.epochs}," in printed
    summary = read_json(output, "summary.json")
    assert summary["time_budget"]["epochs"] == summary["epochs_completed"] == plan.epochs
    assert "replans" not in summary["time_budget"]
    assert summary["config"]["epochs"] == plan.epochs
    assert summary["config"]["steps_per_epoch"] == plan.steps_per_epoch
    assert summary["wall_clock_minutes"] > 0
    # The schedule was laid over exactly the planned steps: the last step is its end.
    model = keras.saving.load_model(os.path.join(output, "final.keras"))
    assert int(model.optimizer.iterations.numpy()) == plan.epochs * plan.steps_per_epoch
    final_rate = float(model.optimizer.learning_rate.numpy())
    assert final_rate == pytest.approx(TrainConfig().min_learning_rate, rel=0.05)
    # A rerun reads the recorded plan instead of measuring again.
    monkeypatch.setattr(budget, "measure", None)
    command = budget_command(str(tmp_path / "images"), output, 0.3)
    assert cli.main(command) == 2  # finished: refused, never re-planned


REPLAN_TIMINGS = budget.Timings(elapsed_seconds=0.0, first_step_seconds=5.0, step_seconds=1.0,
                                validation_seconds=10.0, checkpoint_seconds=2.0)


def test_replan_keeps_the_plan_while_the_epochs_fit():
    plan = budget.plan_run(10.0, REPLAN_TIMINGS, 60, export=False, plots=False)
    epoch_seconds = plan.steps_per_epoch * 1.0 + 10.0 + 2.0  # as the probe measured
    tail = 2 * 10.0 + 1.0  # final evaluation with the inference speed, and final.keras
    elapsed = 5.0 + 3 * epoch_seconds
    assert plan.epochs * epoch_seconds + 5.0 + tail <= 600.0
    assert budget.replan(plan, elapsed, 3, epoch_seconds, export=False,
                         plots=False) == plan.total_steps == plan.epochs * plan.steps_per_epoch


def test_replan_drops_what_no_longer_fits_cutting_the_last_epoch_short():
    plan = budget.plan_run(10.0, REPLAN_TIMINGS, 60, export=False, plots=False)
    steps = plan.steps_per_epoch
    slow = 1.25 * (steps * 1.0 + 12.0)  # epochs take 25% longer than planned
    step_seconds = (slow - 12.0) / steps  # 12 s of each epoch is validation and checkpoints
    elapsed = 5.0 + 3 * slow
    left = 600.0 - elapsed - 21.0  # after the final evaluation and final.keras
    epochs = int(left // slow)
    last = int((left - epochs * slow - 12.0) // step_seconds)
    assert 0 < last < steps
    expected = (3 + epochs) * steps + last
    assert expected < plan.total_steps
    assert budget.replan(plan, elapsed, 3, slow, export=False, plots=False) == expected
    # The export and figure reserves count too.
    assert budget.replan(plan, elapsed, 3, slow) < expected
    # Faster epochs give the steps back and add more, up to twice the first
    # plan's epochs; a budget already spent stops the run now.
    shrunk = dataclasses.replace(plan, total_steps=expected)
    assert budget.replan(shrunk, 60.0, 1, 1.0, export=False, plots=False) == (
        2 * plan.epochs * steps)
    assert plan.epoch_bound == 2 * plan.epochs
    assert budget.replan(shrunk, 700.0, 5, slow, export=False, plots=False) == 5 * steps


def test_a_plan_cut_short_round_trips_and_older_plans_default_to_whole_epochs():
    plan = budget.BudgetPlan(60.0, 5, 100, 59.0, {}, total_steps=450)
    assert budget.BudgetPlan.from_dict(plan.to_dict()) == plan
    stored = {"budget_minutes": 60.0, "epochs": 5, "steps_per_epoch": 100,
              "planned_minutes": 59.0, "timings": {}}
    assert budget.BudgetPlan.from_dict(stored).total_steps == 500


@pytest.mark.parametrize("epoch_seconds, replans, epochs, last_epoch_steps", [
    # The plan: 5 epochs of 3 steps (15 steps) in 30 s, 4.5 s each. The first
    # epoch is not a measure (it traces, it fills caches). At 6 s an epoch
    # (1.5 s a step), after the second epoch 13.25 s are left before the
    # final evaluation: 2 more epochs, and 1.25 s, too little for an epoch's
    # validation and checkpoints.
    (6.0, [(2, 12)], 4, 3),
    # At 5.5 s (1.33 s a step), 14.25 s: 2 more epochs, and 3.25 s: 1.5 s of
    # validation and checkpoints and one step of a last, cut-short epoch.
    (5.5, [(2, 13)], 5, 1),
    # Slow, then fast: after the third epoch (the last two took 6 s and 3 s,
    # 1 s a step), 10.25 s are left: 2 more epochs, the first plan's 15 steps;
    # after the fourth (3 s and 3 s), 7.25 s: 2 more epochs, 18 steps.
    ([6.0, 6.0, 3.0], [(2, 12), (3, 15), (4, 18)], 6, 3),
    # Faster than the probe (3 s an epoch, 0.5 s a step): after the second
    # epoch 19.25 s are left, 6 more epochs of 3 s and 1.25 s, too little for
    # a last epoch: 24 steps, 8 epochs, beyond the first plan's 5 (the bound is 10).
    (3.0, [(2, 24)], 8, 3),
])
def test_a_run_whose_epochs_change_speed_replans_and_still_anneals_at_its_end(
        tmp_path, capsys, monkeypatch, epoch_seconds, replans, epochs, last_epoch_steps):
    output = run_budgeted(tmp_path, monkeypatch, 0.5, epoch_seconds=epoch_seconds)
    first = budget.plan_run(0.5, ONE_SECOND_TIMINGS, 4, export=False, plots=False,
                            evaluation_passes=3)
    assert first.epochs == 5 and first.steps_per_epoch == 3
    steps = replans[-1][1]
    printed = capsys.readouterr().out
    assert f"re-planned from 15 to {replans[0][1]} steps" in printed
    assert f"anneals at step {steps}." in printed
    cut_short = last_epoch_steps < first.steps_per_epoch
    assert (f"the last one {last_epoch_steps} steps" in printed) == cut_short
    summary = read_json(output, "summary.json")
    assert summary["epochs_completed"] == epochs
    assert summary["time_budget"]["total_steps"] == steps
    assert [(change["after_epoch"], change["total_steps"])
            for change in summary["time_budget"]["replans"]] == replans
    # The run stopped where its moved schedule ends: at the final learning rate.
    model = keras.saving.load_model(os.path.join(output, "final.keras"))
    assert int(model.optimizer.iterations.numpy()) == steps
    final_rate = float(model.optimizer.learning_rate.numpy())
    assert final_rate == pytest.approx(TrainConfig().min_learning_rate, rel=0.05)
    # Every epoch, a cut-short one too, was validated and logged.
    with open(os.path.join(output, "log.csv"), encoding="utf-8") as file:
        rows = list(csv.DictReader(file))
    assert len(rows) == epochs and all(row["val_accuracy"] for row in rows)
    # A resumed run follows the stored plan: the same bound, the re-planned steps.
    stored_plan = read_json(output, "phases.json")["phases"]["plan"]
    assert (stored_plan["epochs"], stored_plan["total_steps"]) == (5, steps)
