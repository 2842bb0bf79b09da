"""The training recipe end to end: CLI run outputs, evaluation, resuming after SIGKILL."""

import csv
import json
import os

import keras
import numpy as np
import pytest
import tensorflow as tf

from keras_wavevit import cli
from keras_wavevit.layers.blocks import Block
from keras_wavevit.recipes import callbacks, network
from tests.recipes.train_child import CLASSES, MICRO_MODEL, write_image_folder


@pytest.fixture(scope="module")
def image_folder(tmp_path_factory):
    """3 classes x 8 JPEG images of 32x32, each class with its own colour."""
    return write_image_folder(str(tmp_path_factory.mktemp("images")))


def read_rows(path):
    with open(path, newline="", encoding="utf-8") as file:
        return list(csv.DictReader(file))


def test_optimizer_warms_up_then_decays():
    optimizer = network.make_optimizer(
        1e-3, 0.05, total_steps=100, warmup_steps=10, min_learning_rate=1e-5
    )
    schedule = optimizer._learning_rate
    assert float(schedule(0)) == pytest.approx(0.0)
    assert float(schedule(5)) == pytest.approx(5e-4, rel=1e-4)
    assert float(schedule(10)) == pytest.approx(1e-3, rel=1e-4)
    assert float(schedule(55)) < 1e-3
    assert float(schedule(100)) == pytest.approx(1e-5, rel=1e-3)
    with pytest.raises(ValueError, match="warmup_steps"):
        network.make_optimizer(1e-3, 0.05, total_steps=10, warmup_steps=10)
    with pytest.raises(ValueError, match="learning_rate"):
        network.make_optimizer(0.0, 0.05, total_steps=10, warmup_steps=1)


def test_movable_cosine_decay_is_keras_cosine_decay_until_its_end_moves(tmp_path):
    arguments = dict(initial_learning_rate=0.0, decay_steps=90, alpha=0.01, warmup_target=1e-3,
                     warmup_steps=10)
    schedule = network.MovableCosineDecay(**arguments)
    reference = keras.optimizers.schedules.CosineDecay(**arguments)
    for step in (0, 5, 10, 40, 99, 100, 150):
        assert float(schedule(step)) == pytest.approx(float(reference(step)), rel=1e-6, abs=1e-12)
    assert schedule.total_steps == 100
    schedule.move_end(total_steps=60)
    moved = keras.optimizers.schedules.CosineDecay(**{**arguments, "decay_steps": 50})
    for step in (5, 30, 59, 60, 80):
        assert float(schedule(step)) == pytest.approx(float(moved(step)), rel=1e-6, abs=1e-12)
    # A compiled function reading it sees the move without tracing again.
    read = tf.function(lambda step: schedule(step))
    assert float(read(60)) == pytest.approx(1e-5, rel=1e-5)
    schedule.move_end(total_steps=100)
    assert float(read(60)) == pytest.approx(float(reference(60)), rel=1e-6)
    # A saved optimizer keeps the moved end.
    schedule.move_end(total_steps=60)
    restored = keras.optimizers.schedules.deserialize(
        keras.optimizers.schedules.serialize(schedule))
    assert isinstance(restored, network.MovableCosineDecay) and restored.total_steps == 60
    with pytest.raises(ValueError, match="must exceed the 10 warm-up steps; received 10"):
        schedule.move_end(total_steps=10)


def test_read_csv_log_keeps_the_last_row_of_a_repeated_epoch(tmp_path):
    path = tmp_path / "log.csv"
    path.write_text("epoch,loss\n0,2.0\n1,1.5\n1,1.4\n2,1.0\n")
    assert callbacks.read_csv_log(str(path)) == {"epoch": [0.0, 1.0, 2.0], "loss": [2.0, 1.4, 1.0]}
    assert callbacks.read_csv_log(str(tmp_path / "missing.csv")) == {}


@pytest.fixture(scope="module")
def trained_run(image_folder, tmp_path_factory):
    output = str(tmp_path_factory.mktemp("run"))
    status = cli.main(
        [
            "train", "--data-dir", image_folder, "--model", MICRO_MODEL,
            "--epochs", "2", "--steps-per-epoch", "1", "--batch-size", "4",
            "--validation-fraction", "0.25", "--warmup-epochs", "0.5",
            "--erasing", "0.5", "--regularize-from-epochs", "3",
            "--output", output, "--seed", "0", "--verbose", "0",
        ]
    )
    assert status == 0
    return output


def test_two_step_cli_run_writes_checkpoint_log_figures_and_saved_model(trained_run):
    files = set(os.listdir(trained_run))
    expected = {
        "best.keras", "final.keras", "log.csv", "loss.png", "accuracy.png",
        "predictions.png", "gradcam.png", "saved_model", "summary.json", "phases.json",
    }
    assert expected <= files
    assert "backup" not in files  # BackupAndRestore cleans up after a finished run
    rows = read_rows(os.path.join(trained_run, "log.csv"))
    assert [row["epoch"] for row in rows] == ["0", "1"]
    assert {"loss", "val_loss", "accuracy", "val_accuracy", "train_minutes"} <= set(rows[0])
    for name in ("loss.png", "accuracy.png", "predictions.png", "gradcam.png"):
        with open(os.path.join(trained_run, name), "rb") as file:
            assert file.read(8) == b"\x89PNG\r\n\x1a\n"
    summary = json.load(open(os.path.join(trained_run, "summary.json"), encoding="utf-8"))
    assert summary["epochs_completed"] == 2
    assert summary["num_train"] == 18 and summary["num_validation"] == 6
    assert summary["class_names"] == list(CLASSES)
    assert summary["train_images_per_second"] > 0
    assert summary["inference_images_per_second"] > 0
    assert 0.0 <= summary["val_accuracy"] <= 1.0
    assert summary["saved_model_answer"]["predicted"] in CLASSES

    # 2 epochs, fewer than --regularize-from-epochs 3: trained without erasing
    # and without the micro model's stochastic depth (0.1 at its last block).
    assert summary["config"]["erasing"] == 0.0 and summary["config"]["drop_path_rate"] == 0.0
    model = keras.saving.load_model(os.path.join(trained_run, "best.keras"))
    assert model.output_shape == (None, 3)
    blocks = [layer for layer in model.layers if isinstance(layer, Block)]
    assert len(blocks) == 4 and {block.drop_path_rate for block in blocks} == {0.0}
    serve = tf.saved_model.load(summary["saved_model"]).signatures["serving_default"]
    answer = serve(images=tf.zeros((2, 45, 37, 3), tf.uint8))
    assert answer["probabilities"].shape == (2, 3)
    np.testing.assert_allclose(answer["probabilities"].numpy().sum(axis=1), 1.0, rtol=1e-5)


def test_evaluate_cli_prints_top1_top5_and_writes_confusion_matrix(
    trained_run, image_folder, tmp_path, capsys
):
    output = str(tmp_path / "eval")
    model_path = os.path.join(trained_run, "best.keras")
    assert cli.main(["evaluate", model_path, "--data-dir", image_folder, "--output", output]) == 0
    printed = capsys.readouterr().out
    assert "Top-1 accuracy:" in printed and "Top-5 accuracy: 1.0000" in printed
    result = json.load(open(os.path.join(output, "evaluation.json"), encoding="utf-8"))
    assert result["count"] == 24
    matrix = np.array(result["confusion_matrix"])
    assert matrix.shape == (3, 3) and matrix.sum() == 24
    assert matrix.sum(axis=1).tolist() == [8, 8, 8]
    assert result["top1"] == pytest.approx(np.trace(matrix) / 24)
    assert os.path.getsize(os.path.join(output, "confusion_matrix.png")) > 0
    # The exported SavedModel evaluates to the same top-1 on the held-out split.
    summary = json.load(open(os.path.join(trained_run, "summary.json"), encoding="utf-8"))
    saved_output = str(tmp_path / "eval_saved")
    assert cli.main(
        ["evaluate", summary["saved_model"], "--data-dir", image_folder, "--subset",
         "validation", "--validation-fraction", "0.25", "--image-size", "32",
         "--output", saved_output]
    ) == 0
    saved = json.load(open(os.path.join(saved_output, "evaluation.json"), encoding="utf-8"))
    assert saved["count"] == 6
    assert saved["top1"] == pytest.approx(summary["val_accuracy"], abs=1e-6)
    # The run trained with flips, so its summary also has the flip-averaged accuracy.
    flipped_output = str(tmp_path / "eval_flipped")
    capsys.readouterr()
    assert cli.main(
        ["evaluate", model_path, "--data-dir", image_folder, "--subset", "validation",
         "--validation-fraction", "0.25", "--flip-average", "--output", flipped_output]
    ) == 0
    assert "scores averaged with the mirror images" in capsys.readouterr().out
    flipped = json.load(open(os.path.join(flipped_output, "evaluation.json"), encoding="utf-8"))
    assert flipped["flip_average"] is True and flipped["count"] == 6
    assert flipped["top1"] == pytest.approx(summary["val_accuracy_flip_averaged"], abs=1e-6)
    assert "val_accuracy_shift_averaged" not in summary  # it trained without translations


def test_rerun_on_a_finished_run_refuses_and_overwrite_reproduces_it(
    trained_run, image_folder, capsys
):
    """Rerun contract: a finished or different run is refused; --overwrite starts afresh."""
    command = [
        "train", "--data-dir", image_folder, "--model", MICRO_MODEL,
        "--epochs", "2", "--steps-per-epoch", "1", "--batch-size", "4",
        "--validation-fraction", "0.25", "--warmup-epochs", "0.5",
        "--erasing", "0.5", "--regularize-from-epochs", "3",
        "--output", trained_run, "--seed", "0", "--verbose", "0",
    ]
    first = read_rows(os.path.join(trained_run, "log.csv"))
    capsys.readouterr()
    assert cli.main(command) == 2
    assert "holds a finished run of this configuration. Pass --overwrite" in capsys.readouterr().err
    assert cli.main([*command[:-4], "--epochs", "3", *command[-4:]]) == 2
    assert "holds a run of another configuration (differs in: epochs)" in capsys.readouterr().err
    assert read_rows(os.path.join(trained_run, "log.csv")) == first

    assert cli.main([*command, "--overwrite"]) == 0
    second = read_rows(os.path.join(trained_run, "log.csv"))
    assert [row["epoch"] for row in second] == ["0", "1"]  # a new log, not appended
    # --seed makes the CPU run repeatable: the same losses, step for step.
    for before, after in zip(first, second):
        assert float(after["loss"]) == pytest.approx(float(before["loss"]), rel=1e-6)
        assert float(after["val_loss"]) == pytest.approx(float(before["val_loss"]), rel=1e-6)
    summary = json.load(open(os.path.join(trained_run, "summary.json"), encoding="utf-8"))
    model = keras.saving.load_model(os.path.join(trained_run, "best.keras"))
    assert summary["parameters"] == model.count_params()


def test_mixed_bfloat16_run_with_every_augmentation_trains_and_exports(
        image_folder, tmp_path, capsys):
    # Every augmentation layer and both mixers on, under mixed bfloat16: the
    # augmentation used to follow the policy and the crop failed on bfloat16.
    output = str(tmp_path / "run")
    status = cli.main(
        [
            "train", "--data-dir", image_folder, "--model", MICRO_MODEL,
            "--epochs", "1", "--steps-per-epoch", "2", "--batch-size", "4",
            "--validation-fraction", "0.25", "--warmup-epochs", "0.5",
            "--mixed-precision", "mixed_bfloat16", "--crop-scale", "0.5,1", "--rotation", "10",
            "--color-jitter", "0.2", "--translate", "0.1", "--erasing", "0.5",
            "--mixup", "0.2", "--cutmix", "1", "--no-plots",
            "--output", output, "--seed", "0", "--verbose", "0",
        ]
    )
    assert status == 0
    summary = json.load(open(os.path.join(output, "summary.json"), encoding="utf-8"))
    assert summary["precision"] == "mixed_bfloat16"
    assert np.isfinite(summary["val_loss"])
    # Trained with flips and translations: the summary's test-time average
    # over mirror images and 1-pixel shifts is what `evaluate` gives.
    evaluated = str(tmp_path / "evaluated")
    capsys.readouterr()
    assert cli.main(
        ["evaluate", os.path.join(output, "best.keras"), "--data-dir", image_folder,
         "--subset", "validation", "--validation-fraction", "0.25", "--flip-average",
         "--shift-average", "1", "--output", evaluated]
    ) == 0
    assert ("scores averaged with the mirror images, and the images shifted by 1 pixel "
            "diagonally") in capsys.readouterr().out
    result = json.load(open(os.path.join(evaluated, "evaluation.json"), encoding="utf-8"))
    assert result["shift_average"] == 1 and result["count"] == 6
    assert result["top1"] == pytest.approx(summary["val_accuracy_shift_averaged"], abs=1e-6)
    # Its flip average comes from the same scored views: the image and its mirror image.
    flipped = str(tmp_path / "flipped")
    assert cli.main(
        ["evaluate", os.path.join(output, "best.keras"), "--data-dir", image_folder,
         "--subset", "validation", "--validation-fraction", "0.25", "--flip-average",
         "--output", flipped]
    ) == 0
    result = json.load(open(os.path.join(flipped, "evaluation.json"), encoding="utf-8"))
    assert result["top1"] == pytest.approx(summary["val_accuracy_flip_averaged"], abs=1e-6)
    serve = tf.saved_model.load(summary["saved_model"]).signatures["serving_default"]
    probabilities = serve(images=tf.zeros((2, 32, 32, 3), tf.uint8))["probabilities"]
    assert probabilities.dtype == tf.float32
    np.testing.assert_allclose(probabilities.numpy().sum(axis=1), 1.0, rtol=1e-3)
