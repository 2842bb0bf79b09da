"""`keras_wavevit.export_formats`: ONNX, OpenVINO and LiteRT exports run in their runtimes.

Each format is converted once (a micro Wave-ViT, module-scoped fixture) and
run in its own runtime on the same images as Keras: probabilities and logits
within 1e-4.
"""

import os

import keras
import numpy as np
import pytest

import keras_wavevit
from keras_wavevit import export_formats
from keras_wavevit.export_formats import export_model
from keras_wavevit.preprocessing import normalize_images
from tests.configs import MICRO_CLASSIFIER
from tests.test_export import plain_classifier

# format: (the file name `export_model` writes, the converter and runtime packages).
CASES = {
    "onnx": ("wavevit.onnx", ("tf2onnx", "onnxruntime")),
    "openvino": ("wavevit_openvino", ("openvino",)),
    "litert": ("wavevit.tflite", ("ai_edge_litert",)),
}


def run_onnx(path, images):
    import onnxruntime

    session = onnxruntime.InferenceSession(path, providers=["CPUExecutionProvider"])
    assert [i.name for i in session.get_inputs()] == ["images"]
    logits, probabilities = session.run(["logits", "probabilities"], {"images": images})
    return logits, probabilities


def run_openvino(path, images):
    import openvino

    # OpenVINO's CPU plugin runs in bfloat16 by default on CPUs with
    # AVX512_BF16 or AMX; the export is compared in float32.
    compiled = openvino.Core().compile_model(path, "CPU", {"INFERENCE_PRECISION_HINT": "f32"})
    results = compiled({"images": images})
    return results["logits"], results["probabilities"]


def run_litert(path, images):
    from ai_edge_litert.interpreter import Interpreter

    runner = Interpreter(model_path=path).get_signature_runner("serving_default")
    results = runner(images=images)
    return results["logits"], results["probabilities"]


RUNTIMES = {"onnx": run_onnx, "openvino": run_openvino, "litert": run_litert}


@pytest.fixture(scope="module")
def micro_model():
    keras.utils.set_random_seed(7)
    return keras_wavevit.WaveViT(**MICRO_CLASSIFIER)


@pytest.fixture(scope="module", params=sorted(CASES))
def exported(request, micro_model, tmp_path_factory):
    """`(format, what export_model returned, its directory)`, once per format."""
    name, packages = CASES[request.param]
    for package in packages:
        pytest.importorskip(package)
    directory = tmp_path_factory.mktemp(request.param)
    written = export_model(micro_model, str(directory / name), format=request.param)
    return request.param, written, directory


def test_runtime_matches_keras(exported, micro_model):
    format, written, _ = exported
    # A batch size other than the traced one: the batch axis stays dynamic.
    images = np.random.default_rng(0).uniform(0, 255, (3, 32, 32, 3)).astype("float32")
    logits = keras.ops.convert_to_numpy(micro_model(normalize_images(images)))
    probabilities = keras.ops.convert_to_numpy(keras.ops.softmax(logits))
    runtime_logits, runtime_probabilities = RUNTIMES[format](written, images)
    np.testing.assert_allclose(runtime_probabilities, probabilities, rtol=0, atol=1e-4)
    np.testing.assert_allclose(runtime_logits, logits, rtol=0, atol=1e-4)
    # Far apart classes: the comparison is not between near-uniform outputs.
    assert np.ptp(logits) > 1e-2


def test_files_are_written_whole_in_place(exported, tmp_path):
    format, written, directory = exported
    name = CASES[format][0]
    assert os.listdir(directory) == [name]
    if format == "openvino":
        assert written == str(directory / name / "model.xml")
        assert sorted(os.listdir(directory / name)) == ["model.bin", "model.xml"]
    else:
        assert written == str(directory / name)
    with pytest.raises(FileExistsError, match="already exists; pass overwrite=True"):
        export_model(plain_classifier(), str(directory / name), format=format)


def test_softmax_classifier_exports_its_logits():
    logits_model = plain_classifier()
    softmax_model = plain_classifier(activation="softmax")
    softmax_model.set_weights(logits_model.get_weights())
    images = np.random.default_rng(1).uniform(0, 255, (2, 16, 16, 3)).astype("float32")
    expected = logits_model.predict(normalize_images(images), verbose=0)
    for model in (logits_model, softmax_model):
        outputs = export_formats._inference_model(model, (16, 16)).predict(images, verbose=0)
        np.testing.assert_allclose(outputs["logits"], expected, atol=1e-5)
        np.testing.assert_allclose(
            outputs["probabilities"], keras.ops.softmax(expected), atol=1e-6
        )


def test_failed_conversion_leaves_nothing(tmp_path, monkeypatch):
    def half_written(self, path, **kwargs):
        with open(path, "wb") as handle:
            handle.write(b"half a model")
        raise RuntimeError("converter failed")

    monkeypatch.setattr(keras.Model, "export", half_written)
    monkeypatch.setattr(export_formats.importlib.util, "find_spec", lambda name: True)
    for format, name in (("onnx", "m.onnx"), ("openvino", "ov"), ("litert", "m.tflite")):
        with pytest.raises(RuntimeError, match="converter failed"):
            export_model(plain_classifier(), str(tmp_path / name), format=format)
    assert os.listdir(tmp_path) == []


@pytest.mark.parametrize(
    "format, path, options, error, message",
    [
        ("tflite", "m.tflite", {}, ValueError,
         r"format must be one of saved_model, onnx, openvino, litert; received 'tflite'"),
        ("onnx", "m.onnx", {"class_names": ["a", "b", "c"]}, ValueError,
         r"format='onnx' takes no option class_names \(options: opset_version\)"),
        ("litert", "m.tflite", {"opset_version": 17}, ValueError,
         r"format='litert' takes no option opset_version \(options: none\)"),
        ("onnx", "m.tflite", {}, ValueError,
         r"format='onnx' needs path to be a file name ending in \.onnx; received '.*m\.tflite'"),
        ("litert", "m.onnx", {}, ValueError, r"a file name ending in \.tflite"),
    ],
)
def test_bad_arguments_are_refused_before_writing(tmp_path, format, path, options, error, message):
    with pytest.raises(error, match=message):
        export_model(plain_classifier(), str(tmp_path / path), format=format, **options)
    assert os.listdir(tmp_path) == []


@pytest.mark.parametrize("format, package, extra", [
    ("onnx", "tf2onnx", "onnx"), ("openvino", "openvino", "openvino"),
])
def test_missing_converter_names_the_extra(tmp_path, monkeypatch, format, package, extra):
    real_find_spec = export_formats.importlib.util.find_spec
    monkeypatch.setattr(
        export_formats.importlib.util, "find_spec",
        lambda name: None if name == package else real_find_spec(name),
    )
    with pytest.raises(ImportError, match=rf'needs the {package} package: pip install '
                                          rf'"keras-wavevit\[{extra}\]"'):
        export_model(plain_classifier(), str(tmp_path / "out.onnx"), format=format)


def test_model_problems_are_refused(tmp_path):
    path = str(tmp_path / "m.onnx")
    any_size = plain_classifier(input_shape=(None, None, 3))
    with pytest.raises(ValueError, match=r"image_size must be two positive integers .* "
                                         r"input size is unknown"):
        export_model(any_size, path, format="onnx")
    with pytest.raises(ValueError, match=r"image_size=\(8, 8\) does not match"):
        export_model(plain_classifier(), path, format="onnx", image_size=(8, 8))
    with pytest.raises(ValueError, match=r"need a float32 model; .* policy 'mixed_float16'"):
        export_model(plain_classifier(dtype="mixed_float16"), path, format="onnx")
    images = keras.Input((16, 16, 3))
    feature_map = keras.Model(images, keras.layers.Conv2D(4, 1)(images))
    with pytest.raises(ValueError, match=r"classifier with output shape \(batch, num_classes\); "
                                         r"the model's output_shape is \(None, 16, 16, 4\)"):
        export_model(feature_map, path, format="onnx")
    assert os.listdir(tmp_path) == []
