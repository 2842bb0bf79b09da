"""`keras-wavevit evaluate` (`keras_wavevit.cli.evaluate`): arguments to a report."""

import argparse
import json
import os

import numpy as np
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


COLOURS = {"blue": (0, 0, 255), "green": (0, 255, 0), "red": (255, 0, 0)}


def colour_model():
    """Scores each class by the mean of its colour channel (any input size)."""
    import keras

    inputs = keras.Input((None, None, 3))
    pooled = keras.layers.GlobalAveragePooling2D()(inputs)
    # Channels R, G, B -> classes blue (0), green (1), red (2).
    dense = keras.layers.Dense(3, use_bias=False)
    outputs = dense(pooled)
    dense.set_weights([np.eye(3)[::-1]])
    return keras.Model(inputs, outputs)


def write_striped_folder(root):
    """Each class's colour fills only the centre of its images, the other two
    colours wider bands on both sides: a centre crop sees the class, a resize
    of the whole image mostly the other colours."""
    from PIL import Image

    for index, name in enumerate(COLOURS):
        others = [colour for other, colour in COLOURS.items() if other != name]
        os.makedirs(os.path.join(root, name))
        for number, (long, short, portrait) in enumerate([(40, 16, False), (48, 20, True)]):
            band = long // 2 - short // 4 - 2  # each side band; the centre is narrower
            row = np.array([others[0]] * band + [COLOURS[name]] * (long - 2 * band)
                           + [others[1]] * band, "uint8")
            image = np.repeat(row[None], short, axis=0)
            if portrait:
                image = image.transpose(1, 0, 2)
            Image.fromarray(image).save(os.path.join(root, name, f"{number}.png"))


@pytest.fixture(scope="module")
def striped(tmp_path_factory):
    work = tmp_path_factory.mktemp("official")
    model = colour_model()
    model.save(str(work / "model.keras"))
    names = ["blue", "green", "red"]
    folder = str(work / "data")
    write_striped_folder(folder)
    return {
        "keras": str(work / "model.keras"), "data": folder, "work": work,
        "official": export_saved_model(model, work / "official", image_size=(16, 16),
                                       class_names=names, preprocessing="official"),
        "resize": export_saved_model(model, work / "resize", image_size=(16, 16),
                                     class_names=names),
    }


def evaluation_numbers(output):
    return json.load(open(os.path.join(output, "evaluation.json"), encoding="utf-8"))


def test_official_preprocessing_of_a_keras_file_crops_each_image_at_its_own_size(
        striped, capsys):
    from PIL import Image

    from keras_wavevit.preprocessing import preprocess_official

    output = str(striped["work"] / "keras-official")
    argv = [striped["keras"], "--data-dir", striped["data"], "--image-size", "16",
            "--preprocessing", "official", "--output", output]
    assert evaluate_cli.run(parse(argv)) == 0
    printed = capsys.readouterr().out
    assert "Preprocessing: official at 16x16\n" in printed
    assert "Top-1 accuracy: 1.0000" in printed
    # The same numbers computed image by image, outside the pipeline.
    model = colour_model()
    for name in COLOURS:
        for path in sorted(os.listdir(os.path.join(striped["data"], name))):
            image = np.asarray(Image.open(os.path.join(striped["data"], name, path)))
            scores = model(preprocess_official(image, 16)[None])
            assert ["blue", "green", "red"][int(np.argmax(scores))] == name
    result = evaluation_numbers(output)
    assert result["preprocessing"] == "official" and result["confusion_matrix"] == [
        [2, 0, 0], [0, 2, 0], [0, 0, 2]]


def test_default_preprocessing_of_a_keras_file_is_the_bilinear_resize(striped, capsys):
    output = str(striped["work"] / "keras-resize")
    argv = [striped["keras"], "--data-dir", striped["data"], "--image-size", "16",
            "--output", output]
    assert evaluate_cli.run(parse(argv)) == 0
    assert "Preprocessing: resize at 16x16\n" in capsys.readouterr().out
    # The whole image resized: the side bands win, never the centre class.
    assert evaluation_numbers(output)["top1"] == 0.0


@pytest.mark.parametrize("export, top1", [("official", 1.0), ("resize", 0.0)])
def test_saved_model_uses_its_recorded_preprocessing_and_size(striped, export, top1, capsys):
    output = str(striped["work"] / f"saved-{export}")
    argv = [striped[export], "--data-dir", striped["data"], "--output", output]
    assert evaluate_cli.run(parse(argv)) == 0
    assert f"Preprocessing: {export} at 16x16\n" in capsys.readouterr().out
    result = evaluation_numbers(output)
    assert result["top1"] == top1 and result["image_size"] == [16, 16]


def test_official_preprocessing_needs_a_crop_size(striped):
    with pytest.raises(ValueError, match="input size is unknown; pass image_size"):
        evaluate_cli.run(parse([striped["keras"], "--data-dir", striped["data"],
                                "--preprocessing", "official"]))


def test_unknown_preprocessing_is_a_parser_error(capsys):
    with pytest.raises(SystemExit):
        parse(["m.keras", "--data-dir", "d", "--preprocessing", "bilinear"])
    assert "invalid choice: 'bilinear'" in capsys.readouterr().err
