"""`keras-wavevit evaluate` (`keras_wavevit.cli.evaluate`): arguments to a report."""

import argparse
import json
import os

import pytest

from keras_wavevit.cli import evaluate as evaluate_cli
from keras_wavevit.export import export_saved_model
from tests.recipes.test_evaluation import write_folder
from tests.test_export import plain_classifier


def parse(argv):
    parser = argparse.ArgumentParser()
    evaluate_cli.configure_parser(parser)
    return parser.parse_args(argv)


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    work = tmp_path_factory.mktemp("evaluate_cli")
    model = plain_classifier(input_shape=(None, None, 3))
    model.save(str(work / "model.keras"))
    saved = export_saved_model(model, work / "serving", image_size=(16, 16),
                               class_names=["cat", "dog", "fox"])
    folder = str(work / "data")
    write_folder(folder, ["cat", "dog", "fox"])
    return {"keras": str(work / "model.keras"), "saved": saved, "data": folder, "work": work}


def test_saved_model_report_printed_and_written_beside_it(models, capsys):
    assert evaluate_cli.run(parse([models["saved"], "--data-dir", models["data"]])) == 0
    printed = capsys.readouterr().out
    beside = os.path.join(str(models["work"]), "serving-1-evaluation")
    assert "Images: 6\n" in printed and "Top-5 accuracy: 1.0000" in printed
    assert f"Numbers: {os.path.join(beside, 'evaluation.json')}" in printed
    result = json.load(open(os.path.join(beside, "evaluation.json"), encoding="utf-8"))
    assert result["count"] == 6 and result["class_names"] == ["cat", "dog", "fox"]
    assert sorted(os.listdir(models["saved"])) == ["assets", "fingerprint.pb",
                                                   "saved_model.pb", "variables"]


def test_keras_file_with_unknown_size_needs_image_size(models, tmp_path, capsys):
    with pytest.raises(ValueError, match="input size is unknown; pass image_size"):
        evaluate_cli.run(parse([models["keras"], "--data-dir", models["data"]]))
    output = str(tmp_path / "report")
    args = parse([models["keras"], "--data-dir", models["data"], "--image-size", "16x16",
                  "--output", output])
    assert evaluate_cli.run(args) == 0
    printed = capsys.readouterr().out
    assert "Note: The model carries no class names: its 3 classes were matched" in printed
    assert sorted(os.listdir(output)) == ["confusion_matrix.png", "evaluation.json"]


def test_mismatched_classes_fail_before_scoring(models, tmp_path):
    folder = str(tmp_path / "wolves")
    write_folder(folder, ["cat", "wolf"])
    with pytest.raises(ValueError, match=r"\['wolf'\] are not classes of the model"):
        evaluate_cli.run(parse([models["saved"], "--data-dir", folder,
                                "--output", str(tmp_path / "out")]))
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("argv", [["--image-size", "32", "32"], ["--image-size", "any"],
                                  ["--subset", "test"]])
def test_bad_arguments_are_parser_errors(argv, capsys):
    with pytest.raises(SystemExit):
        parse(["m.keras", "--data-dir", "d", *argv])
    assert "error:" in capsys.readouterr().err


def test_bad_image_files_are_named_or_skipped(models, tmp_path, capsys):
    folder = str(tmp_path / "data")
    write_folder(folder, ["cat", "dog"])
    with open(os.path.join(folder, "dog", "broken.png"), "wb") as handle:
        handle.write(b"\x89PNG\r\n\x1a\n truncated")
    argv = [models["saved"], "--data-dir", folder, "--output", str(tmp_path / "out")]
    with pytest.raises(ValueError, match="broken.png"):
        evaluate_cli.run(parse(argv))
    with pytest.warns(UserWarning, match="broken.png"):
        assert evaluate_cli.run(parse([*argv, "--skip-bad-images"])) == 0
    assert "Images: 4\n" in capsys.readouterr().out


def test_batch_size_must_be_positive(models):
    with pytest.raises(ValueError, match="batch_size must be a positive integer; received 0"):
        evaluate_cli.run(parse([models["saved"], "--data-dir", models["data"],
                                "--batch-size", "0"]))
