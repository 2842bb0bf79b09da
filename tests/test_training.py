"""The training recipe: CLI run outputs, evaluation, resuming after SIGKILL."""

import csv
import json
import os
import signal
import subprocess
import sys
import time

import keras
import numpy as np
import pytest
import tensorflow as tf

from keras_wavevit import cli
from keras_wavevit.recipes import training

# A very small Wave-ViT so each step takes milliseconds.
MICRO_MODEL = json.dumps(
    {
        "embed_dims": [8, 16, 16, 16],
        "num_heads": [1, 1, 1, 1],
        "mlp_ratios": [1, 1, 1, 1],
        "depths": [1, 1, 1, 1],
        "stem_hidden_dim": 8,
        "drop_path_rate": 0.1,
    }
)
CLASSES = ("ant", "bee", "cow")


@pytest.fixture(scope="module")
def image_folder(tmp_path_factory):
    """3 classes x 8 JPEG images of 32x32, each class with its own colour."""
    root = tmp_path_factory.mktemp("images")
    rng = np.random.default_rng(0)
    for class_index, name in enumerate(CLASSES):
        os.makedirs(root / name)
        for index in range(8):
            image = rng.integers(0, 60, (32, 32, 3)).astype("uint8")
            image[..., class_index] += 180
            tf.io.write_file(str(root / name / f"{index}.jpg"), tf.io.encode_jpeg(image))
    return str(root)


def read_rows(path):
    with open(path, newline="", encoding="utf-8") as file:
        return list(csv.DictReader(file))


def test_parse_model_config():
    assert training.parse_model_config("tiny")["stem_stride"] == 2
    config = training.parse_model_config(MICRO_MODEL)
    assert config["embed_dims"] == [8, 16, 16, 16]
    assert config["sr_ratios"] == keras_wavevit_tiny_sr_ratios()
    with pytest.raises(ValueError, match="Unknown model"):
        training.parse_model_config("huge")
    with pytest.raises(ValueError, match="Unknown model configuration keys"):
        training.parse_model_config('{"depth": [1, 1, 1, 1]}')
    with pytest.raises(ValueError, match="Could not parse"):
        training.parse_model_config("{not json")


def keras_wavevit_tiny_sr_ratios():
    from keras_wavevit.model import VARIANTS

    return VARIANTS["tiny"]["sr_ratios"]


def test_optimizer_warms_up_then_decays():
    optimizer = training.make_optimizer(
        1e-3, 0.05, total_steps=100, warmup_steps=10, min_learning_rate=1e-5
    )
    schedule = optimizer._learning_rate
    assert float(schedule(0)) == pytest.approx(0.0)
    assert float(schedule(5)) == pytest.approx(5e-4, rel=1e-4)
    assert float(schedule(10)) == pytest.approx(1e-3, rel=1e-4)
    assert float(schedule(55)) < 1e-3
    assert float(schedule(100)) == pytest.approx(1e-5, rel=1e-3)
    with pytest.raises(ValueError, match="warmup_steps"):
        training.make_optimizer(1e-3, 0.05, total_steps=10, warmup_steps=10)
    with pytest.raises(ValueError, match="learning_rate"):
        training.make_optimizer(0.0, 0.05, total_steps=10, warmup_steps=1)


def test_read_csv_log_keeps_the_last_row_of_a_repeated_epoch(tmp_path):
    path = tmp_path / "log.csv"
    path.write_text("epoch,loss\n0,2.0\n1,1.5\n1,1.4\n2,1.0\n")
    assert training.read_csv_log(str(path)) == {"epoch": [0.0, 1.0, 2.0], "loss": [2.0, 1.4, 1.0]}
    assert training.read_csv_log(str(tmp_path / "missing.csv")) == {}


def test_train_rejects_bad_arguments():
    with pytest.raises(ValueError, match="jit_compile"):
        training.train(jit_compile="sometimes")
    with pytest.raises(ValueError, match="epochs"):
        training.train(epochs=0)
    with pytest.raises(ValueError, match="not both"):
        training.train(dataset="cifar10", data_dir="somewhere")


@pytest.fixture(scope="module")
def trained_run(image_folder, tmp_path_factory):
    output = str(tmp_path_factory.mktemp("run"))
    status = cli.main(
        [
            "train", "--data-dir", image_folder, "--model", MICRO_MODEL,
            "--epochs", "2", "--steps-per-epoch", "1", "--batch-size", "4",
            "--validation-fraction", "0.25", "--warmup-epochs", "0.5",
            "--output", output, "--seed", "0", "--verbose", "0",
        ]
    )
    assert status == 0
    return output


def test_two_step_cli_run_writes_checkpoint_log_figures_and_saved_model(trained_run):
    files = set(os.listdir(trained_run))
    expected = {
        "best.keras", "final.keras", "log.csv", "loss.png", "accuracy.png",
        "predictions.png", "gradcam.png", "saved_model", "summary.json",
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

    model = keras.saving.load_model(os.path.join(trained_run, "best.keras"))
    assert model.output_shape == (None, 3)
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
         "validation", "--validation-fraction", "0.25", "--image-size", "32", "32",
         "--output", saved_output]
    ) == 0
    saved = json.load(open(os.path.join(saved_output, "evaluation.json"), encoding="utf-8"))
    assert saved["count"] == 6
    assert saved["top1"] == pytest.approx(summary["val_accuracy"], abs=1e-6)


def test_killed_run_resumes_from_its_last_epoch(image_folder, tmp_path):
    output = str(tmp_path / "resumable")
    epochs = 6
    command = [
        sys.executable, "-m", "keras_wavevit.cli", "train", "--data-dir", image_folder,
        "--model", MICRO_MODEL, "--epochs", str(epochs), "--batch-size", "2",
        "--validation-fraction", "0.25", "--output", output, "--seed", "0",
        "--verbose", "2", "--no-export", "--no-plots",
        # Plain batches: this test is about resuming, not augmentation.
        "--mixup", "0", "--rotation", "0", "--color-jitter", "0", "--crop-scale", "none",
    ]
    metadata_path = os.path.join(output, "backup", "training_metadata.json")
    log_file = open(tmp_path / "killed_run.log", "wb")  # a file never fills up like a pipe
    process = subprocess.Popen(command, stdout=log_file, stderr=subprocess.STDOUT)
    try:
        deadline = time.time() + 600
        while not os.path.exists(metadata_path):
            assert process.poll() is None, "the run ended before it wrote a backup"
            assert time.time() < deadline, "no backup written within 10 minutes"
            time.sleep(0.02)
        os.kill(process.pid, signal.SIGKILL)
        process.wait(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
        log_file.close()
    assert process.returncode == -signal.SIGKILL
    with open(metadata_path, encoding="utf-8") as file:
        resume_epoch = json.load(file)["epoch"]
    assert 1 <= resume_epoch < epochs, "the kill must land before the run finished"
    rows_before = read_rows(os.path.join(output, "log.csv"))

    restarted = subprocess.run(command, capture_output=True, text=True, timeout=900)
    assert restarted.returncode == 0, restarted.stdout[-3000:] + restarted.stderr[-3000:]
    rows = read_rows(os.path.join(output, "log.csv"))
    appended = rows[len(rows_before):]
    # The restarted run continued at the first epoch not yet backed up ...
    assert int(appended[0]["epoch"]) == resume_epoch
    assert [int(row["epoch"]) for row in appended] == list(range(resume_epoch, epochs))
    assert f"Epoch {resume_epoch + 1}/{epochs}" in restarted.stdout
    assert "Epoch 1/" not in restarted.stdout
    # ... and its wall clock continued from the killed run's.
    assert float(appended[0]["train_minutes"]) > float(rows_before[-1]["train_minutes"])
    assert sorted(set(int(row["epoch"]) for row in rows)) == list(range(epochs))
    assert not os.path.exists(os.path.join(output, "backup"))


def test_grad_cam_explains_the_predicted_class_at_image_resolution():
    from keras_wavevit.recipes import interpret

    model = training.build_model(MICRO_MODEL, 4, (32, 32))
    assert interpret.default_cam_layer(model) == "block3_0"
    images = np.random.default_rng(0).integers(0, 255, (3, 32, 32, 3)).astype("uint8")
    maps, classes = interpret.grad_cam(model, images)
    predicted = np.argmax(model.predict(training.data_lib.normalize_images(images), verbose=0), -1)
    np.testing.assert_array_equal(classes, predicted)
    assert maps.shape == (3, 32, 32) and maps.min() >= 0.0 and maps.max() <= 1.0 + 1e-6
    _, explained = interpret.grad_cam(model, images, class_ids=[1, 2, 3])
    np.testing.assert_array_equal(explained, [1, 2, 3])
    with pytest.raises(ValueError, match="stage 4|block4"):
        interpret.default_cam_layer(keras.Sequential([keras.layers.Dense(1)]), stage=4)
    with pytest.raises(ValueError, match="images"):
        interpret.grad_cam(model, images[0])


def test_confusion_matrix_and_figures(tmp_path):
    from keras_wavevit.recipes import plots

    matrix = plots.confusion_matrix([0, 1, 2, 2], [0, 2, 2, 1], 3)
    assert matrix.tolist() == [[1, 0, 0], [0, 0, 1], [0, 1, 1]]
    path = plots.plot_confusion_matrix(matrix, ["a", "b", "c"], str(tmp_path / "cm.png"))
    assert os.path.getsize(path) > 0
    with pytest.raises(ValueError, match="square"):
        plots.plot_confusion_matrix(np.zeros((2, 3)), ["a", "b"], str(tmp_path / "x.png"))
    with pytest.raises(ValueError, match="loss"):
        plots.plot_learning_curves({}, str(tmp_path))
    with pytest.raises(ValueError, match="same"):
        plots.plot_prediction_grid(np.zeros((2, 8, 8, 3)), [0], [0, 1], ["a", "b"], "x.png")
