"""Tests of the SavedModel export (`keras_wavevit.export`)."""

import json
import os
import subprocess
import sys
import textwrap

import keras
import numpy as np
import pytest
import tensorflow as tf

import keras_wavevit
from keras_wavevit.export import SIGNATURES, export_saved_model
from keras_wavevit.preprocessing import normalize_images, preprocess_official
from tests.configs import MICRO_CLASSIFIER
from tests.view_reference import reference_views

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(keras_wavevit.__file__)))
CLASS_NAMES = ["cat", "dog", "fox"]
REQUESTS = {  # name: (batch, height, width); the model's input is 32x32.
    "small": (2, 32, 32),
    "large": (3, 48, 40),
}

# Runs in a fresh interpreter that cannot import keras_wavevit (nor Keras is
# needed): loads the SavedModel with plain TensorFlow and reports back.
CHILD_SCRIPT = textwrap.dedent(
    """
    import json, os, sys
    repo_root, export_dir, data_file, out_file = sys.argv[1:5]
    sys.path[:] = [
        p for p in sys.path
        if p and os.path.realpath(p) != os.path.realpath(repo_root)
    ]
    sys.meta_path[:] = [
        f for f in sys.meta_path
        if "editable" not in getattr(f, "__module__", type(f).__module__).lower()
    ]
    try:
        import keras_wavevit  # noqa: F401
        hidden = False
    except ImportError:
        hidden = True
    import numpy as np
    import tensorflow as tf

    data = np.load(data_file)
    loaded = tf.saved_model.load(export_dir)
    serve = loaded.signatures["serving_default"]
    result = {
        "hidden": hidden,
        "signatures": sorted(loaded.signatures.keys()),
        "inputs": {
            name: [
                [spec.name, spec.dtype.name, spec.shape.as_list()]
                for spec in fn.structured_input_signature[1].values()
            ]
            for name, fn in loaded.signatures.items()
        },
        "outputs": {},
        "errors": {},
    }
    arrays = {}
    for name in ("small", "large"):
        out = serve(images=tf.constant(data["images_" + name]))
        result["outputs"][name] = {
            key: [value.dtype.name, value.shape.as_list()] for key, value in out.items()
        }
        arrays["probabilities_" + name] = out["probabilities"].numpy()
        arrays["logits_" + name] = out["logits"].numpy()
        arrays["class_ids_" + name] = out["class_ids"].numpy()
        arrays["classes_" + name] = out["classes"].numpy().astype(str)
        arrays["top_k_class_ids_" + name] = out["top_k_class_ids"].numpy()
        arrays["top_k_classes_" + name] = out["top_k_classes"].numpy().astype(str)
        arrays["top_k_probabilities_" + name] = out["top_k_probabilities"].numpy()
        files = [tf.io.encode_png(image) for image in data["images_" + name]]
        from_files = loaded.signatures["serving_bytes"](image_bytes=tf.stack(files))
        arrays["bytes_probabilities_" + name] = from_files["probabilities"].numpy()
    bad_requests = {
        "dtype": np.zeros((2, 32, 32, 3), np.float32),
        "rank": np.zeros((32, 32, 3), np.uint8),
        "channels": np.zeros((1, 32, 32, 4), np.uint8),
    }
    for name, images in bad_requests.items():
        try:
            serve(images=tf.constant(images))
            result["errors"][name] = None
        except Exception as error:  # noqa: BLE001 - reported to the test
            result["errors"][name] = [type(error).__name__, str(error)]

    # Fine-tuning from the SavedModel: gradients in graph mode, as a training
    # step computes them.
    variables = loaded.trainable_variables

    @tf.function
    def loss_and_gradients(images):
        with tf.GradientTape() as tape:
            logits = loaded.serving_preprocessed(images)["logits"]
            loss = tf.reduce_sum(logits * logits)
        return loss, tape.gradient(loss, variables)

    normalized = tf.constant(data["normalized"])
    loss, gradients = loss_and_gradients(normalized)
    library = loss_and_gradients.get_concrete_function(normalized).graph.as_graph_def().library
    result["grad_functions"] = [
        f.signature.name for f in library.function if "internal_grad_fn" in f.signature.name
    ]
    for i, g in enumerate(gradients):
        arrays["gradient_%d" % i] = g.numpy()
    result["num_gradients"] = len(gradients)
    result["loss"] = float(loss)
    for variable, g in zip(variables, gradients):
        variable.assign_sub(1e-3 * g)
    result["loss_after_step"] = float(loss_and_gradients(normalized)[0])
    # The counter-example, saved without the custom gradients.
    plain = tf.saved_model.load(os.path.join(os.path.dirname(data_file), "no_custom_gradients"))

    @tf.function
    def plain_gradients(images):
        with tf.GradientTape() as tape:
            loss = tf.reduce_sum(plain.serve(images))
        return tape.gradient(loss, plain.trainable_variables)

    try:
        plain_gradients(tf.zeros((1, 8, 8, 3)))
        result["error_without_custom_gradients"] = None
    except Exception as error:  # noqa: BLE001 - reported to the test
        result["error_without_custom_gradients"] = [type(error).__name__, str(error)]
    with open(data_file.replace(".npz", "_assets.txt"), "w") as handle:
        handle.write(open(os.path.join(export_dir, "assets", "class_names.txt")).read())
    np.savez(out_file.replace(".json", ".npz"), **arrays)
    with open(out_file, "w") as handle:
        json.dump(result, handle)
    """
)


def tiny_wavevit():
    return keras_wavevit.WaveViT(**MICRO_CLASSIFIER)


def plain_classifier(input_shape=(16, 16, 3), activation=None, dtype=None):
    """A small non-Wave-ViT classifier: exports in seconds."""
    inputs = keras.Input(input_shape, name="images")
    x = keras.layers.Conv2D(4, 3, padding="same", dtype=dtype)(inputs)
    x = keras.layers.GlobalAveragePooling2D(dtype=dtype)(x)
    x = keras.layers.Dense(3, dtype=dtype)(x)
    outputs = keras.layers.Activation(activation, dtype="float32", name="predictions")(x)
    return keras.Model(inputs, outputs)


def export_without_custom_gradients(path):
    """A wavelet model saved with experimental_custom_gradients=False."""
    inputs = keras.Input((8, 8, 3))
    x = keras.layers.Conv2D(4, 1)(inputs)
    x = keras_wavevit.layers.DWT2D()(x)
    outputs = keras.layers.Dense(2)(keras.layers.GlobalAveragePooling2D()(x))
    model = keras.Model(inputs, outputs)
    archive = keras.export.ExportArchive()
    archive.add_variable_collection("trainable_variables", model.trainable_variables)
    archive.add_endpoint(
        "serve", lambda images: model(images), [tf.TensorSpec((None, 8, 8, 3), tf.float32)]
    )
    archive.write_out(
        path,
        options=tf.saved_model.SaveOptions(experimental_custom_gradients=False),
        verbose=False,
    )


def keras_probabilities(model, images, image_size=(32, 32)):
    """What the serving graph must reproduce, computed with Keras."""
    resized = tf.image.resize(tf.cast(images, tf.float32), image_size, method="bilinear")
    logits = model(normalize_images(resized), training=False)
    return tf.nn.softmax(tf.cast(logits, tf.float32)).numpy()


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    """Trains the tiny Wave-ViT one epoch, exports it and loads it elsewhere."""
    keras.utils.set_random_seed(0)
    work = tmp_path_factory.mktemp("served")
    model = tiny_wavevit()
    # Eager SGD: tracing or XLA-compiling a training step (or Adam's update)
    # costs far more than the two steps taken here.
    model.compile(
        optimizer=keras.optimizers.SGD(0.1),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        run_eagerly=True,
        jit_compile=False,
    )
    rng = np.random.default_rng(0)
    before = [v.numpy().copy() for v in model.trainable_variables]
    model.fit(
        normalize_images(rng.integers(0, 256, (4, 32, 32, 3)).astype("float32")),
        rng.integers(0, 3, 4),
        batch_size=2,
        epochs=1,
        verbose=0,
    )
    assert any(
        not np.array_equal(b, v.numpy()) for b, v in zip(before, model.trainable_variables)
    ), "training did not change the weights"
    written = export_saved_model(model, work / "models", class_names=CLASS_NAMES)

    data = {}
    for name, (batch, height, width) in REQUESTS.items():
        images = rng.integers(0, 256, (batch, height, width, 3)).astype("uint8")
        data["images_" + name] = images
        data["expected_" + name] = keras_probabilities(model, images)
    normalized = normalize_images(rng.integers(0, 256, (2, 32, 32, 3)).astype("float32"))
    data["normalized"] = np.asarray(normalized)
    with tf.GradientTape() as tape:
        logits = model(normalized, training=False)
        loss = tf.reduce_sum(logits * logits)
    keras_gradients = [g.numpy() for g in tape.gradient(loss, model.trainable_variables)]
    export_without_custom_gradients(str(work / "no_custom_gradients"))
    data_file = str(work / "data.npz")
    np.savez(data_file, **data)

    script = work / "child.py"
    script.write_text(CHILD_SCRIPT)
    out_file = str(work / "result.json")
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    completed = subprocess.run(
        [sys.executable, str(script), REPO_ROOT, written, data_file, out_file],
        cwd=str(work),
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert completed.returncode == 0, completed.stderr[-4000:]
    with open(out_file) as handle:
        result = json.load(handle)
    arrays = dict(np.load(out_file.replace(".json", ".npz")))
    return {
        "model": model,
        "written": written,
        "base": str(work / "models"),
        "data": data,
        "result": result,
        "arrays": arrays,
        "keras_gradients": keras_gradients,
        "keras_loss": float(loss),
        "assets": (work / "data_assets.txt").read_text(),
    }


def test_versioned_layout(served):
    assert served["written"] == os.path.join(served["base"], "1")
    assert sorted(os.listdir(served["base"])) == ["1"]  # no temporary left over
    for name in ("saved_model.pb", "variables", "assets"):
        assert os.path.exists(os.path.join(served["written"], name)), name


def test_export_needs_no_xla(served):
    # TensorFlow Serving runs XLA-marked functions only with its CPU JIT
    # switched on; the export must trace the plain ops instead.
    from tensorflow.core.protobuf import saved_model_pb2

    saved_model = saved_model_pb2.SavedModel()
    with open(os.path.join(served["written"], "saved_model.pb"), "rb") as handle:
        saved_model.ParseFromString(handle.read())
    functions = saved_model.meta_graphs[0].graph_def.library.function
    assert functions, "the export holds no functions to check"
    marked = [
        function.signature.name
        for function in functions
        if function.attr["_XlaMustCompile"].b
        or any(node.attr["_XlaMustCompile"].b for node in function.node_def)
    ]
    assert marked == []


def test_child_process_cannot_import_the_package(served):
    assert served["result"]["hidden"] is True


def test_signatures_and_names(served):
    result = served["result"]
    assert result["signatures"] == [
        "serving_bytes",
        "serving_default",
        "serving_float",
        "serving_preprocessed",
    ]
    assert sorted(SIGNATURES) == result["signatures"]
    assert result["inputs"]["serving_default"] == [["images", "uint8", [None, None, None, 3]]]
    assert result["inputs"]["serving_bytes"] == [["image_bytes", "string", [None]]]
    assert result["inputs"]["serving_float"] == [["images", "float32", [None, None, None, 3]]]
    assert result["inputs"]["serving_preprocessed"] == [
        ["images", "float32", [None, 32, 32, 3]]
    ]
    batch = REQUESTS["large"][0]
    assert result["outputs"]["large"] == {
        "classes": ["string", [batch]],
        "class_ids": ["int64", [batch]],
        "probabilities": ["float32", [batch, 3]],
        "top_k_classes": ["string", [batch, 3]],
        "top_k_class_ids": ["int64", [batch, 3]],
        "top_k_probabilities": ["float32", [batch, 3]],
        "logits": ["float32", [batch, 3]],
    }


@pytest.mark.parametrize("name", sorted(REQUESTS))
def test_serving_matches_keras(served, name):
    arrays, data = served["arrays"], served["data"]
    probabilities = arrays["probabilities_" + name]
    expected = data["expected_" + name]
    assert probabilities.shape == (REQUESTS[name][0], 3)
    np.testing.assert_allclose(probabilities, expected, rtol=0, atol=1e-5)
    np.testing.assert_allclose(
        tf.nn.softmax(arrays["logits_" + name]).numpy(), expected, rtol=0, atol=1e-5
    )
    np.testing.assert_array_equal(arrays["class_ids_" + name], expected.argmax(-1))
    np.testing.assert_array_equal(
        arrays["classes_" + name], np.array(CLASS_NAMES)[expected.argmax(-1)]
    )
    # The default top-k is every class here (3 < 5), most probable first.
    order = np.argsort(-expected, axis=-1, kind="stable")
    np.testing.assert_array_equal(arrays["top_k_class_ids_" + name], order)
    np.testing.assert_array_equal(
        arrays["top_k_classes_" + name], np.array(CLASS_NAMES)[order]
    )
    np.testing.assert_allclose(
        arrays["top_k_probabilities_" + name],
        np.take_along_axis(expected, order, axis=-1),
        rtol=0,
        atol=1e-5,
    )
    # PNG files of the same pixels (lossless) give the same answer.
    np.testing.assert_allclose(
        arrays["bytes_probabilities_" + name], probabilities, rtol=0, atol=1e-6
    )


def test_class_names_asset(served):
    assert served["assets"].splitlines() == CLASS_NAMES


def test_bad_requests_fail_at_the_boundary(served):
    errors = served["result"]["errors"]
    assert errors["dtype"][0] == "InvalidArgumentError"
    assert "expected to be a uint8 tensor but is a float tensor" in errors["dtype"][1]
    assert errors["rank"][0] == "InvalidArgumentError"
    assert (
        "Shape of tensor images [32,32,3] is not compatible with expected shape "
        "[?,?,?,3]" in errors["rank"][1]
    )
    assert errors["channels"][0] == "InvalidArgumentError"
    assert (
        "Shape of tensor images [1,32,32,4] is not compatible with expected shape "
        "[?,?,?,3]" in errors["channels"][1]
    )


def test_loaded_model_keeps_custom_gradients(served):
    result, arrays = served["result"], served["arrays"]
    # The registered wavelet gradients are in the graph-mode gradient...
    assert result["grad_functions"], "no saved custom gradient function was used"
    # ...and every gradient equals the Keras model's.
    keras_gradients = served["keras_gradients"]
    assert result["num_gradients"] == len(keras_gradients)
    np.testing.assert_allclose(result["loss"], served["keras_loss"], rtol=1e-5)
    for i, expected in enumerate(keras_gradients):
        np.testing.assert_allclose(
            arrays[f"gradient_{i}"], expected, rtol=1e-4, atol=1e-6, err_msg=f"variable {i}"
        )
    # One fine-tuning step on the loaded variables lowers the loss.
    assert result["loss_after_step"] < result["loss"]


def test_without_saved_custom_gradients_fine_tuning_breaks(served):
    """Why the export sets experimental_custom_gradients=True.

    Saved without the custom gradients, the wavelet transform's gradient is
    missing in a fresh process: graph-mode differentiation fails.
    """
    error = served["result"]["error_without_custom_gradients"]
    assert error is not None
    assert error[0] in ("LookupError", "StagingError")
    assert "No gradient defined for operation" in error[1]
    assert "IdentityN" in error[1]


def test_existing_version_is_kept_unless_overwrite(tmp_path):
    model = plain_classifier()
    base = tmp_path / "models"
    first = export_saved_model(model, base, class_names=["a", "b", "c"])
    asset = os.path.join(first, "assets", "class_names.txt")
    with pytest.raises(FileExistsError, match="overwrite=True"):
        export_saved_model(model, base, class_names=["x", "y", "z"])
    assert open(asset).read().split() == ["a", "b", "c"]

    second = export_saved_model(model, base, class_names=["x", "y", "z"], overwrite=True)
    assert second == first
    assert open(asset).read().split() == ["x", "y", "z"]
    export_saved_model(model, base, version=2)
    assert sorted(os.listdir(base)) == ["1", "2"]  # no temporaries left


def test_failed_export_leaves_nothing_behind(tmp_path, monkeypatch):
    model = plain_classifier()
    base = tmp_path / "models"
    export_saved_model(model, base, class_names=["a", "b", "c"])

    def broken_write_out(self, filepath, options=None, verbose=True):
        os.makedirs(os.path.join(filepath, "variables"), exist_ok=True)
        raise RuntimeError("disk full")

    archive_class = type(keras.export.ExportArchive())
    monkeypatch.setattr(archive_class, "write_out", broken_write_out)
    with pytest.raises(RuntimeError, match="disk full"):
        export_saved_model(model, base, overwrite=True)
    with pytest.raises(RuntimeError, match="disk full"):
        export_saved_model(model, base, version=3)
    assert sorted(os.listdir(base)) == ["1"]
    asset = base / "1" / "assets" / "class_names.txt"
    assert asset.read_text().split() == ["a", "b", "c"]  # old version intact


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"version": 0}, "version must be a positive integer"),
        ({"version": "1"}, "version must be a positive integer"),
        ({"image_size": (16,)}, "image_size must be two positive integers"),
        ({"image_size": (16, -4)}, "image_size must be two positive integers"),
        ({"image_size": (32, 16)}, "does not match the model's input height 16"),
        ({"class_names": ["a", "b"]}, "class_names has 2 entries but the model has 3"),
        ({"class_names": "abc"}, "not one string"),
        ({"class_names": ["a", "b\nc", "d"]}, "no line breaks"),
        ({"top_k": 4}, r"top_k must be an integer from 0 \(no top-k outputs\) to the "
                       r"number of classes, 3; received 4\."),
        ({"top_k": -1}, "top_k must be an integer from 0"),
        ({"top_k": True}, "top_k must be an integer from 0"),
        ({"preprocessing": "bicubic"},
         r"preprocessing must be one of \('resize', 'official'\); received 'bicubic'"),
        ({"flip_average": "false"}, "flip_average must be True or False; received 'false'"),
        ({"shift_average": -1}, r"shift must be a non-negative integer \(pixels\); received -1"),
        ({"shift_average": 16}, r"smaller than the image's sides \(16, 16\) .*received 16"),
    ],
)
def test_bad_arguments_raise_before_writing(tmp_path, kwargs, message):
    with pytest.raises(ValueError, match=message):
        export_saved_model(plain_classifier(), tmp_path / "models", **kwargs)
    assert not (tmp_path / "models").exists()


def test_unknown_input_size_needs_image_size(tmp_path):
    model = plain_classifier(input_shape=(None, None, 3))
    with pytest.raises(ValueError, match=r"input size is unknown.*image_size"):
        export_saved_model(model, tmp_path / "models")
    assert not (tmp_path / "models").exists()

    written = export_saved_model(model, tmp_path / "models", image_size=(24, 20))
    loaded = tf.saved_model.load(written)
    spec = loaded.signatures["serving_preprocessed"].structured_input_signature[1]["images"]
    assert spec.shape.as_list() == [None, 24, 20, 3]
    images = np.random.default_rng(1).integers(0, 256, (2, 30, 50, 3)).astype("uint8")
    out = loaded.signatures["serving_default"](images=tf.constant(images))
    expected = keras_probabilities(model, images, image_size=(24, 20))
    np.testing.assert_allclose(out["probabilities"].numpy(), expected, atol=1e-5)


def test_feature_extractor_is_rejected(tmp_path):
    inputs = keras.Input((16, 16, 3))
    model = keras.Model(inputs, keras.layers.Conv2D(4, 3)(inputs))
    with pytest.raises(ValueError, match="include_top=False"):
        export_saved_model(model, tmp_path / "models")


def test_softmax_and_mixed_precision_models(tmp_path):
    images = np.random.default_rng(2).integers(0, 256, (2, 16, 16, 3)).astype("uint8")
    softmax_model = plain_classifier(activation="softmax")
    loaded = tf.saved_model.load(export_saved_model(softmax_model, tmp_path / "softmax"))
    out = loaded.signatures["serving_float"](images=tf.constant(images, tf.float32))
    resized = tf.image.resize(tf.cast(images, tf.float32), (16, 16))
    expected = softmax_model(normalize_images(resized)).numpy()
    np.testing.assert_allclose(out["probabilities"].numpy(), expected, atol=1e-6)
    # The logits are the input of the softmax, not log-probabilities of it.
    np.testing.assert_allclose(tf.nn.softmax(out["logits"]).numpy(), expected, atol=1e-6)

    inputs = keras.Input((16, 16, 3))
    pooled = keras.layers.GlobalAveragePooling2D()(inputs)
    dense_softmax = keras.Model(inputs, keras.layers.Dense(3, activation="softmax")(pooled))
    out = tf.saved_model.load(export_saved_model(dense_softmax, tmp_path / "dense"))
    out = out.signatures["serving_default"](images=tf.constant(images))
    expected = dense_softmax(normalize_images(resized)).numpy()
    np.testing.assert_allclose(out["probabilities"].numpy(), expected, atol=1e-6)
    np.testing.assert_allclose(tf.nn.softmax(out["logits"]).numpy(), expected, atol=1e-6)

    inputs = keras.Input((16, 16, 3))
    sigmoid = keras.layers.Dense(3, activation="sigmoid")(
        keras.layers.GlobalAveragePooling2D()(inputs)
    )
    with pytest.raises(ValueError, match="logits or softmax"):
        export_saved_model(keras.Model(inputs, sigmoid), tmp_path / "sigmoid")
    assert not (tmp_path / "sigmoid").exists()

    mixed = plain_classifier(dtype="mixed_float16")
    written = export_saved_model(mixed, tmp_path / "mixed", include_logits=False)
    out = tf.saved_model.load(written).signatures["serving_default"](images=tf.constant(images))
    assert sorted(out) == [
        "class_ids", "classes", "probabilities",
        "top_k_class_ids", "top_k_classes", "top_k_probabilities",
    ]
    assert out["probabilities"].dtype == tf.float32
    np.testing.assert_allclose(out["probabilities"].numpy().sum(-1), 1.0, atol=1e-5)


def test_version_directory_gets_ordinary_modes(tmp_path):
    """Not 0700 from mkdtemp: a server running as another user reads the export."""
    previous = os.umask(0o022)
    try:
        model = plain_classifier()
        written = export_saved_model(model, tmp_path / "models", class_names=["a", "b", "c"])
        replaced = export_saved_model(model, tmp_path / "models", overwrite=True)
    finally:
        os.umask(previous)
    assert replaced == written
    modes = {}
    for root, directories, files in os.walk(written):
        modes[os.path.relpath(root, written)] = os.stat(root).st_mode & 0o777
        for name in files:
            full = os.path.join(root, name)
            modes[os.path.relpath(full, written)] = os.stat(full).st_mode & 0o777
    assert {".", "variables", "saved_model.pb", "variables/variables.index"} <= set(modes)
    for name, mode in modes.items():
        directory = os.path.isdir(os.path.join(written, name))
        assert mode == (0o755 if directory else 0o644), (name, oct(mode))


def test_pixel_signatures_share_one_definition(served):
    """serving_default (uint8) and serving_float answer alike for the same pixels."""
    loaded = tf.saved_model.load(served["written"])
    images = served["data"]["images_large"]
    as_uint8 = loaded.signatures["serving_default"](images=tf.constant(images))
    as_float = loaded.signatures["serving_float"](images=tf.constant(images, tf.float32))
    assert sorted(as_uint8) == sorted(as_float)
    for name in as_uint8:
        np.testing.assert_array_equal(as_uint8[name].numpy(), as_float[name].numpy())


def test_every_signature_shares_one_traced_model(served):
    """One `predict` function (the model traced once); one `_serve_pixels`
    definition traced for uint8 and for float32."""
    from tensorflow.core.protobuf import saved_model_pb2

    saved_model = saved_model_pb2.SavedModel()
    with open(os.path.join(served["written"], "saved_model.pb"), "rb") as handle:
        saved_model.ParseFromString(handle.read())
    names = [f.signature.name for f in saved_model.meta_graphs[0].graph_def.library.function]

    def traced(prefix):
        return [name for name in names if name.startswith(f"__inference_{prefix}_")]

    assert len(traced("predict")) == 1
    assert len(traced("serve_pixels")) == 2
    assert len(traced("serve_bytes")) == 1


def encoded_batch():
    """Image files of different sizes and kinds, with their RGB pixels."""
    rng = np.random.default_rng(3)
    rgb = rng.integers(0, 256, (30, 20, 3)).astype("uint8")
    grey = rng.integers(0, 256, (12, 40, 1)).astype("uint8")
    rgba = rng.integers(0, 256, (16, 16, 4)).astype("uint8")
    smooth = np.linspace(0, 255, 24 * 36 * 3).reshape(24, 36, 3).astype("uint8")
    jpeg = tf.io.encode_jpeg(smooth, quality=90).numpy()
    files = [
        tf.io.encode_png(rgb).numpy(),
        tf.io.encode_png(grey).numpy(),
        tf.io.encode_png(rgba).numpy(),
        jpeg,
    ]
    pixels = [rgb, np.repeat(grey, 3, axis=-1), rgba[..., :3], tf.io.decode_jpeg(jpeg).numpy()]
    return files, pixels


def test_bytes_signature_decodes_each_file_then_preprocesses_like_keras(tmp_path):
    model = plain_classifier()
    loaded = tf.saved_model.load(
        export_saved_model(model, tmp_path / "models", class_names=["a", "b", "c"])
    )
    files, pixels = encoded_batch()
    out = loaded.signatures["serving_bytes"](image_bytes=tf.constant(files))
    expected = np.concatenate(
        [keras_probabilities(model, image[None], image_size=(16, 16)) for image in pixels]
    )
    np.testing.assert_allclose(out["probabilities"].numpy(), expected, rtol=0, atol=1e-5)
    np.testing.assert_array_equal(out["class_ids"].numpy(), expected.argmax(-1))
    # The pixel signature on the same (decoded) pixels answers the same.
    for image, probabilities in zip(pixels, out["probabilities"].numpy()):
        from_pixels = loaded.signatures["serving_default"](images=tf.constant(image[None]))
        np.testing.assert_allclose(from_pixels["probabilities"][0], probabilities, atol=1e-6)


def test_bytes_signature_refuses_what_is_not_an_image(tmp_path):
    serve = tf.saved_model.load(
        export_saved_model(plain_classifier(), tmp_path / "models")
    ).signatures["serving_bytes"]
    files, _ = encoded_batch()
    with pytest.raises(tf.errors.InvalidArgumentError, match="Unknown image file format"):
        serve(image_bytes=tf.constant([files[0], b"not an image"]))
    with pytest.raises(
        tf.errors.InvalidArgumentError,
        match=r"Shape of tensor image_bytes \[1,1\] is not compatible with expected shape \[\?\]",
    ):
        serve(image_bytes=tf.constant([[files[0]]]))


def test_without_class_names_classes_are_the_ids_as_strings(tmp_path):
    loaded = tf.saved_model.load(
        export_saved_model(plain_classifier(), tmp_path / "models", top_k=2)
    )
    images = np.random.default_rng(4).integers(0, 256, (5, 16, 16, 3)).astype("uint8")
    out = loaded.signatures["serving_default"](images=tf.constant(images))
    probabilities = out["probabilities"].numpy()
    ids = probabilities.argmax(-1)
    np.testing.assert_array_equal(out["class_ids"].numpy(), ids)
    assert out["classes"].numpy().tolist() == [str(i).encode() for i in ids]
    order = np.argsort(-probabilities, axis=-1, kind="stable")[:, :2]
    np.testing.assert_array_equal(out["top_k_class_ids"].numpy(), order)
    assert out["top_k_classes"].numpy().tolist() == [
        [str(i).encode() for i in row] for row in order
    ]
    np.testing.assert_allclose(
        out["top_k_probabilities"].numpy(), np.take_along_axis(probabilities, order, -1)
    )
    assert not (tmp_path / "models" / "1" / "assets" / "class_names.txt").exists()


def test_top_k_zero_leaves_the_top_k_outputs_out(tmp_path):
    loaded = tf.saved_model.load(
        export_saved_model(plain_classifier(), tmp_path / "models", top_k=0,
                           include_logits=False)
    )
    out = loaded.signatures["serving_float"](images=tf.zeros((1, 9, 9, 3)))
    assert sorted(out) == ["class_ids", "classes", "probabilities"]


def test_official_preprocessing_serves_the_official_transform(tmp_path):
    keras.utils.set_random_seed(1)
    model = plain_classifier()
    written = export_saved_model(model, tmp_path / "models", preprocessing="official")
    loaded = tf.saved_model.load(written)
    images = np.random.default_rng(4).integers(0, 256, (2, 45, 60, 3)).astype("uint8")
    expected = tf.nn.softmax(model(preprocess_official(images, (16, 16)), training=False))
    for name, dtype in [("serving_default", tf.uint8), ("serving_float", tf.float32)]:
        served = loaded.signatures[name](images=tf.constant(images, dtype))
        np.testing.assert_allclose(served["probabilities"].numpy(), expected.numpy(),
                                   rtol=0, atol=1e-5)
    files = [tf.io.encode_png(image).numpy() for image in images]
    from_bytes = loaded.signatures["serving_bytes"](image_bytes=tf.constant(files))
    np.testing.assert_allclose(from_bytes["probabilities"].numpy(), expected.numpy(),
                               rtol=0, atol=1e-5)
    # Not the default bilinear resize: that answers differently.
    bilinear = keras_probabilities(model, images, image_size=(16, 16))
    assert not np.allclose(bilinear, expected.numpy(), atol=1e-5)
    record = json.loads((tmp_path / "models" / "1" / "assets" / "preprocessing.json").read_text())
    assert record["preprocessing"] == "official" and record["crop_pct"] == 0.96
    assert record["image_size"] == [16, 16]
    assert "short side to floor(size / 0.96), centre crop 16x16" in (
        record["signatures"]["serving_default"])
    assert "none applied" in record["signatures"]["serving_preprocessed"]


def test_default_export_records_the_bilinear_resize(tmp_path):
    export_saved_model(plain_classifier(), tmp_path / "models")
    record = json.loads((tmp_path / "models" / "1" / "assets" / "preprocessing.json").read_text())
    assert record["preprocessing"] == "resize" and record["crop_pct"] is None
    assert record["signatures"]["serving_bytes"].endswith(
        "bilinear resize to 16x16 (aspect ratio not kept, no crop), "
        "ImageNet mean/std normalisation")
    assert record["test_time_views"] == {"flip": False, "shift": 0, "count": 1}


@pytest.mark.parametrize("flip, shift, count", [(True, 0, 2), (False, 2, 5), (True, 1, 10)])
def test_test_time_averaging_serves_the_mean_logits_of_the_views(tmp_path, flip, shift, count):
    """Every signature averages the logits of the views of the preprocessed image."""
    keras.utils.set_random_seed(3)
    model = plain_classifier()
    written = export_saved_model(model, tmp_path / "models", flip_average=flip,
                                 shift_average=shift)
    loaded = tf.saved_model.load(written)
    images = np.random.default_rng(5).integers(0, 256, (3, 20, 24, 3)).astype("uint8")
    preprocessed = normalize_images(
        tf.image.resize(tf.cast(images, tf.float32), (16, 16), method="bilinear")).numpy()
    views = reference_views(preprocessed, flip, shift)
    logits = np.mean([np.asarray(model(view), "float64") for view in views], axis=0)
    single = np.asarray(model(preprocessed), "float64")
    assert not np.allclose(logits, single, atol=1e-4)  # the views change the scores
    expected = np.exp(logits) / np.exp(logits).sum(-1, keepdims=True)
    for name, inputs in (("serving_default", {"images": tf.constant(images)}),
                         ("serving_preprocessed", {"images": tf.constant(preprocessed)})):
        out = loaded.signatures[name](**inputs)
        np.testing.assert_allclose(out["logits"].numpy(), logits, rtol=0, atol=1e-5)
        np.testing.assert_allclose(out["probabilities"].numpy(), expected, rtol=0, atol=1e-5)
        assert out["class_ids"].numpy().tolist() == logits.argmax(-1).tolist()
    record = json.loads((tmp_path / "models" / "1" / "assets" / "preprocessing.json").read_text())
    assert record["test_time_views"] == {"flip": flip, "shift": shift, "count": count}
    for description in record["signatures"].values():
        assert f"logits averaged over {count} views" in description


def test_test_time_averaging_of_a_probabilities_only_model(tmp_path):
    """A model with a softmax built in: its probabilities are what is averaged."""
    inputs = keras.Input((16, 16, 3))
    flat = keras.layers.Flatten()(inputs)
    model = keras.Model(inputs, keras.layers.Dense(3, activation="softmax")(flat))
    loaded = tf.saved_model.load(export_saved_model(model, tmp_path / "models",
                                                    flip_average=True))
    images = np.random.default_rng(6).integers(0, 256, (2, 16, 16, 3)).astype("uint8")
    preprocessed = normalize_images(tf.cast(images, tf.float32)).numpy()
    expected = np.mean([model(view).numpy() for view in reference_views(preprocessed, True, 0)],
                       axis=0)
    out = loaded.signatures["serving_default"](images=tf.constant(images))
    np.testing.assert_allclose(out["probabilities"].numpy(), expected, rtol=0, atol=1e-6)
    np.testing.assert_allclose(out["probabilities"].numpy().sum(-1), 1.0, atol=1e-5)
