"""The README's TensorFlow Serving requests, sent to an exported model.

The README section "Serving with TensorFlow Serving" shows REST (curl) and
gRPC requests. These tests run those snippets as written (read from
README.md, so they cannot drift) against a SavedModel written by
`export_saved_model`. No TensorFlow Serving binary can be installed here, so
the tests stand in for the server:

* REST: `curl` is replaced by a script that records the request; the body is
  then read the way Serving's JSON front end does
  (tensorflow_serving/util/json_tensor.cc: the row format `instances` and the
  columnar format `inputs`, `{"b64": ...}` objects decoded for string
  tensors) and the reply is written as it does (`predictions` / `outputs`).
* gRPC: the `PredictionServiceStub` is replaced by one whose `Predict` turns
  the request's TensorProtos into tensors (`tf.make_ndarray`), calls the
  signature and answers a `PredictResponse`, as Serving's predict handler
  does.
"""

import base64
import json
import os
import re
import stat
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

from keras_wavevit.export import export_saved_model
from tests.test_export import REPO_ROOT, plain_classifier

CLASS_NAMES = ["cat", "dog", "fox"]
SECTION = ("## Serving with TensorFlow Serving", "## Training")
FAKE_CURL = """#!{python}
import json, os, sys
arguments = sys.argv[1:]
data = arguments[arguments.index("-d") + 1]
if data.startswith("@"):
    with open(data[1:]) as handle:
        data = handle.read()
with open(os.environ["CURL_LOG"], "a") as log:
    log.write(json.dumps({{"arguments": arguments, "data": data}}) + "\\n")
"""


# --- What TensorFlow Serving's REST front end does (json_tensor.cc) -------------


class RequestError(ValueError):
    """A request TensorFlow Serving would refuse (HTTP 400)."""


def _is_b64(value):
    return isinstance(value, dict) and len(value) == 1 and isinstance(value.get("b64"), str)


def _json_shape(value):
    shape = []
    while isinstance(value, list):
        shape.append(len(value))
        value = value[0] if value else None
    return tuple(shape)


def _leaf(value, dtype):
    if dtype == tf.string:
        if _is_b64(value):
            return base64.b64decode(value["b64"], validate=True)
        if isinstance(value, str):
            return value.encode()
    elif dtype.is_integer:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    elif dtype.is_floating:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return value
    raise RequestError(f"JSON Value: {json.dumps(value)} is not of expected type: {dtype.name}")


def json_to_tensor(value, dtype):
    """One JSON value -> a numpy array, as Serving fills a TensorProto."""
    shape = _json_shape(value)

    def fill(item, level):
        if not isinstance(item, list):
            if level != len(shape):
                raise RequestError(f"JSON Value found at incorrect level: {level + 1}")
            return [_leaf(item, dtype)]
        if level >= len(shape) or len(item) != shape[level]:
            raise RequestError(f"Encountered list at unexpected size or level {level}")
        return [leaf for element in item for leaf in fill(element, level + 1)]

    flat = fill(value, 0)
    array_dtype = object if dtype == tf.string else dtype.as_numpy_dtype
    return np.array(flat, dtype=array_dtype).reshape(shape)


def _instances_to_tensors(instances, specs):
    if not isinstance(instances, list) or not instances:
        raise RequestError("Excepting 'instances' to be a non-empty list/array")
    named = isinstance(instances[0], dict) and not _is_b64(instances[0])
    if not named and len(specs) > 1:
        raise RequestError("instances is a plain list, but expecting list of objects")
    rows = {name: [] for name in specs}
    for instance in instances:
        if named != (isinstance(instance, dict) and not _is_b64(instance)):
            raise RequestError("instances mixes objects and values")
        if named and set(instance) != set(specs):
            raise RequestError(f"keys must be equal to: {','.join(sorted(specs))}")
        for name in specs:
            value = instance[name] if named else instance
            rows[name].append(json_to_tensor(value, specs[name].dtype))
    tensors = {}
    for name, arrays in rows.items():
        if len({array.shape for array in arrays}) != 1:
            raise RequestError(f"instances of {name} have different shapes")
        tensors[name] = np.stack(arrays)
    return tensors


def _inputs_to_tensors(inputs, specs):
    if not isinstance(inputs, dict) or _is_b64(inputs):
        if len(specs) > 1:
            raise RequestError("inputs is a plain value/list, but expecting an object")
        (name, spec), = specs.items()
        return {name: json_to_tensor(inputs, spec.dtype)}
    missing = sorted(set(specs) - set(inputs))
    if missing:
        raise RequestError(f"Missing named input: {missing[0]} in 'inputs' object.")
    return {name: json_to_tensor(inputs[name], spec.dtype) for name, spec in specs.items()}


def _to_json(name, array):
    """A numpy output as JSON; strings are text unless the name ends in _bytes."""
    if array.dtype == object:
        if name.endswith("_bytes"):
            encode = np.vectorize(lambda b: {"b64": base64.b64encode(b).decode()}, otypes=[object])
        else:
            encode = np.vectorize(lambda b: b.decode(), otypes=[object])
        return encode(array).tolist() if array.size else array.tolist()
    return array.tolist()


def rest_predict(loaded, body):
    """The reply of Serving's `:predict` REST verb to the JSON `body`."""
    request = json.loads(body)
    if not isinstance(request, dict):
        raise RequestError("Is not object")
    signature = loaded.signatures[request.get("signature_name", "serving_default")]
    specs = signature.structured_input_signature[1]
    if ("instances" in request) == ("inputs" in request):
        raise RequestError("expecting only one of 'inputs' or 'instances' keys to exist")
    row = "instances" in request
    if row:
        tensors = _instances_to_tensors(request["instances"], specs)
    else:
        tensors = _inputs_to_tensors(request["inputs"], specs)
    outputs = {
        name: value.numpy()
        for name, value in signature(**{k: tf.constant(v) for k, v in tensors.items()}).items()
    }
    if not row:
        columns = {name: _to_json(name, array) for name, array in outputs.items()}
        return {"outputs": columns if len(columns) > 1 else next(iter(columns.values()))}
    predictions = []
    for i in range(len(next(iter(outputs.values())))):
        item = {
            name: _to_json(name, np.asarray(array[i], dtype=array.dtype))
            for name, array in outputs.items()
        }
        predictions.append(item if len(item) > 1 else next(iter(item.values())))
    return {"predictions": predictions}


# --- What TensorFlow Serving's gRPC Predict does ---------------------------------


class FakePredictionService:
    """Stands in for `PredictionServiceStub`: answers `Predict` from the SavedModel."""

    def __init__(self, loaded, model_name, predict_pb2):
        self.loaded, self.model_name, self.requests = loaded, model_name, []
        self.predict_pb2 = predict_pb2

    def __call__(self, channel):
        return self

    def Predict(self, request, timeout=None):  # noqa: N802 - the gRPC method name
        self.requests.append(request)
        if request.model_spec.name != self.model_name:
            raise RequestError(f"Servable not found for request: {request.model_spec.name}")
        name = request.model_spec.signature_name or "serving_default"
        signature = self.loaded.signatures[name]
        specs = signature.structured_input_signature[1]
        if set(request.inputs) != set(specs):
            raise RequestError(f"inputs {sorted(request.inputs)}; expected {sorted(specs)}")
        arguments = {}
        for key, proto in request.inputs.items():
            if tf.dtypes.as_dtype(proto.dtype) != specs[key].dtype:
                raise RequestError(
                    f"Expects arg {key} to be {specs[key].dtype.name} but "
                    f"{tf.dtypes.as_dtype(proto.dtype).name} is provided"
                )
            arguments[key] = tf.constant(tf.make_ndarray(proto))
        response = self.predict_pb2.PredictResponse()
        response.model_spec.CopyFrom(request.model_spec)
        response.model_spec.signature_name = name
        for key, value in signature(**arguments).items():
            response.outputs[key].CopyFrom(tf.make_tensor_proto(value.numpy()))
        return response


# --- The README's snippets ------------------------------------------------------


def readme_blocks():
    """`(language, code)` of every fenced block in the README's serving section."""
    with open(os.path.join(REPO_ROOT, "README.md"), encoding="utf-8") as handle:
        text = handle.read()
    start = text.index(SECTION[0])
    section = text[start:text.index(SECTION[1], start)]
    return re.findall(r"^```(\w*)\n(.*?)^```$", section, flags=re.M | re.S)


def model_name_and_ports():
    """The model name and ports of the README's `docker run` command."""
    (docker,) = [code for _, code in readme_blocks() if "docker run" in code]
    name = re.search(r"-e MODEL_NAME=(\w+)", docker).group(1)
    ports = sorted(int(port) for port in re.findall(r"-p (\d+):\1", docker))
    return name, ports


def rest_snippets():
    return [code for language, code in readme_blocks() if language == "bash" and "curl" in code]


def grpc_snippets():
    blocks = readme_blocks()
    first = [i for i, (_, code) in enumerate(blocks) if "PredictionServiceStub" in code]
    assert len(first) == 1, "the README has no (or several) gRPC stub snippets"
    return [code for language, code in blocks[first[0]:]
            if language == "python" and "predict_pb2" in code]


def documented_reply(code):
    """The reply the README shows after `curl` (a `# {...}` comment line)."""
    (line,) = [line for line in code.splitlines() if line.startswith("# {")]
    return line[2:]


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    """An exported 3-class model, the README's image files and a work folder."""
    work = tmp_path_factory.mktemp("requests")
    version = export_saved_model(plain_classifier((32, 32, 3)), work / "models",
                                 class_names=CLASS_NAMES)
    rng = np.random.default_rng(7)
    smooth = np.linspace(0, 255, 40 * 30 * 3).reshape(40, 30, 3).astype("uint8")
    files = {
        "cat.jpg": tf.io.encode_jpeg(smooth, quality=90).numpy(),
        "dog.png": tf.io.encode_png(rng.integers(0, 256, (20, 50, 3)).astype("uint8")).numpy(),
    }
    for name, data in files.items():
        (work / name).write_bytes(data)
    bin_dir = work / "bin"
    bin_dir.mkdir()
    (bin_dir / "curl").write_text(FAKE_CURL.format(python=sys.executable))
    (bin_dir / "python").write_text(f'#!/bin/sh\nexec "{sys.executable}" "$@"\n')
    for tool in ("curl", "python"):
        (bin_dir / tool).chmod(stat.S_IRWXU)
    return {"work": work, "loaded": tf.saved_model.load(version), "files": files,
            "bin": str(bin_dir)}


def run_rest_snippet(served, code):
    """Runs a README curl snippet in bash; returns the recorded curl call."""
    log = served["work"] / "curl.jsonl"
    log.unlink(missing_ok=True)
    env = dict(os.environ, PATH=served["bin"] + os.pathsep + os.environ["PATH"],
               CURL_LOG=str(log))
    completed = subprocess.run(
        ["bash", "-euo", "pipefail", "-c", code], cwd=served["work"], env=env,
        capture_output=True, text=True, timeout=120,
    )
    assert completed.returncode == 0, completed.stderr[-3000:]
    (call,) = [json.loads(line) for line in log.read_text().splitlines()]
    return call


def direct_answer(served, images):
    """serving_default on decoded pixels: what every request must reproduce."""
    serve = served["loaded"].signatures["serving_default"]
    return [{k: v.numpy()[0] for k, v in serve(images=tf.constant(image[None])).items()}
            for image in images]


def decoded(served):
    return [tf.io.decode_image(served["files"][name], channels=3).numpy()
            for name in ("cat.jpg", "dog.png")]


def test_the_readme_shows_rest_and_grpc_for_both_signatures():
    name, ports = model_name_and_ports()
    assert (name, ports) == ("wavevit", [8500, 8501])
    bodies = " ".join(rest_snippets())
    assert len(rest_snippets()) == 2
    for needle in ('\\"instances\\"', '"inputs"', '\\"b64\\"', "serving_bytes", "serving_default"):
        assert needle in bodies, needle
    assert all(f"localhost:8501/v1/models/{name}:predict" in code for code in rest_snippets())
    assert len(grpc_snippets()) == 2
    assert 'grpc.insecure_channel("localhost:8500")' in grpc_snippets()[0]


def test_rest_b64_files_in_the_row_format(served):
    (code,) = [code for code in rest_snippets() if "b64" in code]
    call = run_rest_snippet(served, code)
    name, _ = model_name_and_ports()
    assert f"http://localhost:8501/v1/models/{name}:predict" in call["arguments"]
    assert call["arguments"][:3] == ["-s", "-X", "POST"]
    reply = json.loads(json.dumps(rest_predict(served["loaded"], call["data"])))
    expected = direct_answer(served, decoded(served))
    assert len(reply["predictions"]) == 2
    for got, want in zip(reply["predictions"], expected):
        assert got["classes"] == want["classes"].decode()
        assert got["class_ids"] == int(want["class_ids"])
        np.testing.assert_allclose(got["probabilities"], want["probabilities"], atol=1e-6)
        assert got["top_k_classes"] == [c.decode() for c in want["top_k_classes"]]
    shown = documented_reply(code)
    assert shown.startswith('{"predictions": [{')
    assert set(re.findall(r'"(\w+)": ', shown)) - {"predictions"} <= set(reply["predictions"][0])
    assert isinstance(reply["predictions"][0]["classes"], str)


def test_rest_uint8_pixels_in_the_columnar_format(served):
    (code,) = [code for code in rest_snippets() if '"inputs"' in code]
    call = run_rest_snippet(served, code)
    reply = json.loads(json.dumps(rest_predict(served["loaded"], call["data"])))
    images = np.array(json.loads(call["data"])["inputs"]["images"], dtype="uint8")
    assert images.shape[0] == 2 and images.shape[-1] == 3
    expected = direct_answer(served, images)
    outputs = reply["outputs"]
    assert outputs["classes"] == [want["classes"].decode() for want in expected]
    assert outputs["class_ids"] == [int(want["class_ids"]) for want in expected]
    np.testing.assert_allclose(
        outputs["probabilities"], [want["probabilities"] for want in expected], atol=1e-6
    )
    shown = documented_reply(code)
    assert shown.startswith('{"outputs": {')
    assert set(re.findall(r'"(\w+)": ', shown)) - {"outputs"} <= set(outputs)
    assert isinstance(outputs["classes"][0], str) and isinstance(outputs["class_ids"][0], int)


def test_grpc_snippets(served, monkeypatch):
    """Needs tensorflow-serving-api (a test-only dependency), as the snippet does."""
    import grpc

    pytest.importorskip("tensorflow_serving.apis")
    from tensorflow_serving.apis import predict_pb2, prediction_service_pb2_grpc

    name, _ = model_name_and_ports()
    service = FakePredictionService(served["loaded"], name, predict_pb2)
    monkeypatch.setattr(grpc, "insecure_channel", lambda target: target)
    monkeypatch.setattr(prediction_service_pb2_grpc, "PredictionServiceStub", service)
    monkeypatch.chdir(served["work"])
    namespace = {}
    for i, code in enumerate(grpc_snippets()):
        exec(compile(code, f"README.md gRPC snippet {i + 1}", "exec"), namespace)  # noqa: S102
    first, second = service.requests
    assert first.model_spec.signature_name == "serving_bytes"
    assert second.model_spec.signature_name == ""  # the server's default: serving_default

    expected = direct_answer(served, decoded(served))
    assert namespace["classes"].tolist() == [want["classes"] for want in expected]
    assert namespace["top_k_classes"].tolist() == [want["top_k_classes"].tolist()
                                                   for want in expected]
    images = namespace["images"]
    assert images.dtype == np.uint8 and images.shape[1:] == (64, 48, 3)
    np.testing.assert_allclose(
        namespace["probabilities"],
        [want["probabilities"] for want in direct_answer(served, images)],
        atol=1e-6,
    )


# --- The stand-in server refuses what Serving refuses ---------------------------


@pytest.mark.parametrize(
    "body, message",
    [
        ('{"instances": [{"b64": "AAAA"}]}', "is not of expected type: uint8"),
        ('{"instances": [[[[1, 2, 3]]], [[[1, 2, 3], [4, 5, 6]]]]}', "different shapes"),
        ('{"instances": [], "signature_name": "serving_bytes"}', "non-empty"),
        ('{"instances": [1], "inputs": [1]}', "only one of 'inputs' or 'instances'"),
        ('{"inputs": {"pixels": [1]}}', "Missing named input: images"),
        ('{"inputs": [[[[1.5, 2, 3]]]]}', "is not of expected type: uint8"),
    ],
)
def test_the_stand_in_refuses_what_serving_refuses(served, body, message):
    with pytest.raises(RequestError, match=re.escape(message)):
        rest_predict(served["loaded"], body)


def test_the_stand_in_decodes_b64_in_both_formats(served):
    data = base64.b64encode(served["files"]["dog.png"]).decode()
    row = rest_predict(served["loaded"], json.dumps(
        {"signature_name": "serving_bytes", "instances": [{"image_bytes": {"b64": data}}]}
    ))
    columnar = rest_predict(served["loaded"], json.dumps(
        {"signature_name": "serving_bytes", "inputs": [{"b64": data}]}
    ))
    assert row["predictions"][0]["classes"] == columnar["outputs"]["classes"][0]
    np.testing.assert_allclose(row["predictions"][0]["probabilities"],
                               columnar["outputs"]["probabilities"][0], atol=1e-7)
