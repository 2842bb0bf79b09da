"""Export a Wave-ViT classifier to SavedModel, ONNX, OpenVINO IR or LiteRT.

`export_model(model, path, format=...)` is the one entry point:

* `"saved_model"` - `keras_wavevit.export.export_saved_model` (TensorFlow
  Serving layout, signatures with resizing and class names in the graph).
* `"onnx"` - one `.onnx` file (converted by `tf2onnx`; run it with ONNX
  Runtime). Extra: `pip install "keras-wavevit[onnx]"`.
* `"openvino"` - a directory holding the OpenVINO IR pair `model.xml` and
  `model.bin` (run it with `openvino.Core().compile_model`; on CPUs with
  AVX512_BF16 or AMX, OpenVINO computes in bfloat16 unless compiled with
  `{"INFERENCE_PRECISION_HINT": "f32"}`). Extra:
  `pip install "keras-wavevit[openvino]"`.
* `"litert"` - one `.tflite` file (TensorFlow Lite converter; run it with
  the LiteRT interpreter, `ai_edge_litert.interpreter.Interpreter`). Extra
  for the runtime: `pip install "keras-wavevit[litert]"`.

The ONNX, OpenVINO and LiteRT graphs (Keras' `model.export(format=...)`)
share one interface:

* input `images`: float32 `[batch, image_height, image_width, 3]`, RGB pixel
  values in [0, 255] at the model's size (any batch size; no resizing in the
  graph: resize on the client);
* outputs `logits` and `probabilities` (softmax), float32
  `[batch, num_classes]`;
* `keras_wavevit.preprocessing.normalize_images` (ImageNet mean and
  standard deviation) runs inside the graph, as in the SavedModel.

They are traced under `fused_ops(False)`: the XLA-fused elementwise kernels
(`keras_wavevit.layers.fusion`) become `PartitionedCall` nodes that
`tf2onnx` cannot convert, and the plain ops compute the same formulas. The
wavelet transforms' custom gradients only matter for training; these
formats hold the forward pass. Every file is written atomically
(`keras_wavevit.files`): a runtime never sees a half-written model.

Limits of these three formats (each refused with a clear error, or stated
here): the height and width are fixed at export (`image_size`; only the
batch axis is dynamic) and the model must be float32 (a mixed-precision
model is refused: rebuild it under the float32 policy and load its
weights). Only the TensorFlow backend exports.
"""

import contextlib
import functools
import importlib.util
import logging
import os
import warnings

import keras

from keras_wavevit.files import atomic_directory, atomic_path
from keras_wavevit.layers.checks import check_tensorflow_backend
from keras_wavevit.layers.fusion import fused_ops
from keras_wavevit.preprocessing import normalize_images

FORMATS = ("saved_model", "onnx", "openvino", "litert")
OPENVINO_MODEL_FILE = "model.xml"
# format: (file ending of `path`, the package its conversion needs beyond
# TensorFlow, the extra that installs it, the options passed on to Keras'
# exporter). LiteRT converts with TensorFlow's own converter; its extra
# installs the runtime only.
_CONVERTERS = {
    "onnx": (".onnx", "tf2onnx", "onnx", ("opset_version",)),
    "openvino": ("", "openvino", "openvino", ()),
    "litert": (".tflite", None, "litert", ()),
}


def _check_format(format, options):
    if format not in FORMATS:
        raise ValueError(
            f"format must be one of {', '.join(FORMATS)}; received {format!r}."
        )
    if format == "saved_model":
        return
    _, package, extra, allowed = _CONVERTERS[format]
    unknown = sorted(set(options) - set(allowed))
    if unknown:
        raise ValueError(
            f"format={format!r} takes no option {', '.join(unknown)} "
            f"(options: {', '.join(allowed) or 'none'}); class names, top-k, "
            "versions, in-graph resizing and test-time averaging are SavedModel features."
        )
    if package is not None and importlib.util.find_spec(package) is None:
        raise ImportError(
            f'format={format!r} needs the {package} package: pip install '
            f'"keras-wavevit[{extra}]".'
        )


def _check_path(path, format, overwrite):
    ending = _CONVERTERS[format][0]
    if path is None or not str(path) or not str(path).endswith(ending):
        kind = f"a file name ending in {ending}" if ending else "a directory path"
        raise ValueError(f"format={format!r} needs path to be {kind}; received {path!r}.")
    path = os.path.abspath(os.fspath(path))
    if os.path.exists(path) and not overwrite:
        raise FileExistsError(f"{path} already exists; pass overwrite=True to replace it.")
    return path


def _image_size(model, image_size):
    input_shape = model.input_shape
    if not isinstance(input_shape, tuple) or len(input_shape) != 4:
        raise ValueError(
            f"export_model needs a model with one NHWC image input; the model's "
            f"input_shape is {input_shape}."
        )
    static = tuple(input_shape[1:3])
    if image_size is None:
        image_size = static
    image_size = tuple(image_size) if isinstance(image_size, (tuple, list)) else image_size
    valid = isinstance(image_size, tuple) and len(image_size) == 2 and all(
        isinstance(size, int) and not isinstance(size, bool) and size > 0
        for size in image_size
    )
    if not valid:
        raise ValueError(
            "image_size must be two positive integers (height, width), required "
            f"when the model's input size is unknown (input_shape={input_shape}); "
            f"received {image_size!r}."
        )
    if any(s is not None and s != wanted for s, wanted in zip(static, image_size)):
        raise ValueError(
            f"image_size={image_size} does not match the model's input_shape "
            f"{input_shape}."
        )
    return image_size


def _check_classifier(model):
    if not isinstance(model, keras.Model):
        raise ValueError(f"model must be a keras.Model; received {type(model).__name__}.")
    output_shape = model.output_shape
    if not isinstance(output_shape, tuple) or len(output_shape) != 2:
        raise ValueError(
            "export_model needs a classifier with output shape (batch, num_classes); "
            f"the model's output_shape is {output_shape}."
        )
    policies = sorted({layer.dtype_policy.name for layer in model.layers} - {"float32"})
    if policies:
        raise ValueError(
            "The ONNX, OpenVINO and LiteRT exports need a float32 model; this one "
            f"has layers under the dtype policy {', '.join(map(repr, policies))}. "
            "Rebuild it under the float32 policy, load its weights, then export."
        )


def _inference_model(model, image_size):
    """`images` (pixels) -> {"logits", "probabilities"}: the exported graph."""
    from keras_wavevit.export import _logits_model

    logits_model, outputs_are_probabilities = _logits_model(model)
    images = keras.Input((*image_size, 3), name="images")
    outputs = logits_model(keras.layers.Lambda(normalize_images, name="normalize")(images))
    if outputs_are_probabilities:
        probabilities = outputs
        logits = keras.layers.Lambda(keras.ops.log, name="logits")(outputs)
    else:
        logits = outputs
        probabilities = keras.layers.Softmax(name="probabilities")(outputs)
    return keras.Model(images, {"logits": logits, "probabilities": probabilities})


def _not_about_custom_gradients(record):
    return "unsaved custom gradients" not in record.getMessage()


@contextlib.contextmanager
def _quiet_converters():
    """Hides the converters' noise: absl warnings about unsaved custom gradients.

    The LiteRT converter reloads a SavedModel written without the wavelet
    transforms' gradient functions and warns once per function; these
    formats hold the forward pass only, so no gradient is ever requested.
    """
    absl_logger = logging.getLogger("absl")
    absl_logger.addFilter(_not_about_custom_gradients)
    try:
        with warnings.catch_warnings():
            # Keras' tf2onnx patch probes `np.object`, which NumPy 2 warns about.
            warnings.filterwarnings("ignore", "In the future `np.object`", FutureWarning)
            yield
    finally:
        absl_logger.removeFilter(_not_about_custom_gradients)


def _write(inference_model, path, format, options, overwrite):
    export = functools.partial(
        inference_model.export,
        format=format,
        verbose=False,
        input_signature=[inference_model.inputs[0]],
        **options,
    )
    with fused_ops(False), _quiet_converters():
        if format == "openvino":
            with atomic_directory(path, replace=overwrite) as staging:
                export(os.path.join(staging, OPENVINO_MODEL_FILE))
            return os.path.join(path, OPENVINO_MODEL_FILE)
        with atomic_path(path, suffix=_CONVERTERS[format][0]) as temporary:
            export(temporary)
        return path


def export_model(model, path, format="saved_model", image_size=None, overwrite=False, **options):
    """Exports a Wave-ViT classifier in one of `FORMATS`.

    Args:
        model: A `keras.Model` classifier with one NHWC image input, outputting
            logits (`classifier_activation=None`) or softmax probabilities.
            ONNX, OpenVINO and LiteRT need a float32 model.
        path: Where to write. `"saved_model"`: the model base path (writes
            `path/<version>/`); `"onnx"`: a file ending in `.onnx`;
            `"openvino"`: a directory (writes `model.xml` and `model.bin`
            in it); `"litert"`: a file ending in `.tflite`.
        format: One of `"saved_model"`, `"onnx"`, `"openvino"`, `"litert"`.
        image_size: `(height, width)` of the exported input. Defaults to the
            model's static input size; required when it is unknown. For
            `"saved_model"`, the size the graph resizes images to.
        overwrite: Replace an existing export; without it an existing
            `path` (SavedModel: `path/<version>`) raises `FileExistsError`.
        **options: `"saved_model"`: the other arguments of
            `export_saved_model` (`class_names`, `version`, `top_k`,
            `include_logits`, ...). `"onnx"`: `opset_version`. The other
            formats take none.

    Returns:
        What a runtime loads: the SavedModel version directory, the `.onnx`
        file, the OpenVINO `model.xml` or the `.tflite` file.

    Raises:
        ValueError: An unknown format or option, a bad path, image size or
            model (checked before anything is written), or a Keras backend
            other than TensorFlow.
        ImportError: The format's converter is not installed; the message
            names the extra to install.
        FileExistsError: The destination exists and `overwrite` is False.

    Example:

    >>> import tempfile
    >>> import numpy as np
    >>> import onnxruntime  # doctest: +SKIP
    >>> import keras_wavevit
    >>> model = keras_wavevit.WaveViT(
    ...     embed_dims=(8, 16, 32, 32), num_heads=(1, 1, 2, 2),
    ...     mlp_ratios=(2, 2, 2, 2), depths=(1, 1, 1, 1),
    ...     sr_ratios=(2, 1, 1, 1), stem_hidden_dim=8, stem_stride=2,
    ...     input_shape=(32, 32, 3), num_classes=3)
    >>> path = export_model(model, tempfile.mkdtemp() + "/wavevit.onnx",
    ...                     format="onnx")  # doctest: +SKIP
    >>> session = onnxruntime.InferenceSession(path)  # doctest: +SKIP
    >>> images = np.zeros((2, 32, 32, 3), "float32")
    >>> logits, probabilities = session.run(
    ...     ["logits", "probabilities"], {"images": images})  # doctest: +SKIP
    >>> probabilities.shape  # doctest: +SKIP
    (2, 3)
    """
    check_tensorflow_backend("export_model")
    _check_format(format, options)
    if format == "saved_model":
        from keras_wavevit.export import export_saved_model

        return export_saved_model(
            model, path, image_size=image_size, overwrite=overwrite, **options
        )
    _check_classifier(model)
    image_size = _image_size(model, image_size)
    path = _check_path(path, format, overwrite)
    return _write(_inference_model(model, image_size), path, format, options, overwrite)
