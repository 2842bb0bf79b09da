"""Export a Wave-ViT as a SavedModel for TensorFlow Serving.

The exported SavedModel needs TensorFlow only (not Keras, not this package):
preprocessing runs inside the graph, so a client sends raw pixels.

Layout (what TensorFlow Serving expects under its model base path)::

    PATH/
      1/                        # the version directory, `version=1`
        saved_model.pb
        variables/
        assets/class_names.txt  # only when `class_names` is given
        assets/preprocessing.json
        fingerprint.pb

Signatures (stable names; see the README section "Serving with TensorFlow
Serving"):

* `serving_default` - input `images`: uint8 `[batch, height, width, 3]`,
  any batch size and any height and width.
* `serving_bytes` - input `image_bytes`: string `[batch]`, one encoded image
  file per entry (JPEG, PNG, BMP, GIF - first frame - or WebP; each its own
  size), what a REST client sends as `{"b64": "..."}`. Each image is decoded
  with `tf.io.decode_image(..., channels=3, expand_animations=False)` (grey
  images become RGB, an alpha channel is dropped).
* `serving_float` - input `images`: float32 `[batch, height, width, 3]`,
  pixel values in [0, 255].
* `serving_preprocessed` - input `images`: float32
  `[batch, image_height, image_width, 3]`, already resized and normalised.

Preprocessing in the graph (every signature but `serving_preprocessed`),
the same for all of them (one definition, `_preprocess`), chosen with
`preprocessing=`:

* `"resize"` (the default; what the training recipe trains and evaluates
  with): the pixels are cast to float32, resized to `image_size` with
  `tf.image.resize(images, image_size, method="bilinear")` (no
  antialiasing, no crop, the aspect ratio is not kept: the interpolation of
  Keras' `Resizing` layer used by the training pipeline) and normalised
  with `keras_wavevit.preprocessing.normalize_images` (`x / 255`, then the
  ImageNet mean `(0.485, 0.456, 0.406)` subtracted and divided by the
  standard deviation `(0.229, 0.224, 0.225)`).
* `"official"` (for converted official checkpoints): the official
  evaluation transform, `keras_wavevit.preprocessing.preprocess_official`
  (bicubic resize of the short side to `floor(size / 0.96)`, a centre crop
  of `image_size`, the same normalisation), applied to each image.

Test-time averaging (optional, `flip_average=` / `shift_average=`): every
signature then scores each image as the mean of the model's logits over
several views of its preprocessed image, the views of
`keras_wavevit.test_time.views` (its mirror image; its diagonal shifts by
`shift_average` pixels, edges reflected; or both: 2, 5 or 10 views). The
softmax and the top-k are taken from the averaged logits. It costs one
model pass per view, inside the graph, so a client still sends each image
once. `keras-wavevit evaluate --flip-average --shift-average S` on the
`.keras` file gives the same scores.

What each signature takes and applies is written to the asset
`preprocessing.json` (`{"preprocessing", "image_size", "crop_pct",
"signatures": {name: description}, "test_time_views": {"flip", "shift",
"count"}}`), which clients (and
`keras_wavevit.recipes.serving.SavedModelClassifier`) read.

Outputs of every signature (the names of TensorFlow's estimator
convention):

* `classes` - string `[batch]`: the top-1 class name; without
  `class_names`, the class id written as a string (`b"3"`).
* `class_ids` - int64 `[batch]`: the top-1 class id.
* `probabilities` - float32 `[batch, num_classes]`: softmax (float32 also
  for mixed-precision models); with test-time averaging, the softmax of
  the averaged logits.
* `top_k_classes` (string), `top_k_class_ids` (int64) and
  `top_k_probabilities` (float32), each `[batch, top_k]`: the `top_k` most
  probable classes, most probable first (ties: lower id first); left out
  with `top_k=0`.
* `logits` - float32 `[batch, num_classes]` (averaged over the views with
  test-time averaging), unless `include_logits=False`.

There is no separate `scores` output: it would repeat `probabilities`
(TensorFlow Serving's `classify` API, which names them `scores`, takes
`tf.Example` protos, not images).

Custom gradients: the Haar wavelet transforms carry custom gradients. The
SavedModel is written with
`tf.saved_model.SaveOptions(experimental_custom_gradients=True)`, which
stores those gradient functions with the graph, so `tf.GradientTape` on the
loaded model (fine-tuning from the SavedModel) differentiates each wavelet
transform with its registered gradient, the inverse transform, exactly as
the Keras model does, instead of falling back to differentiating the
reshapes and slices of the forward pass.
"""

import json
import os
import tempfile

import keras
import tensorflow as tf

from keras_wavevit import test_time
from keras_wavevit.files import atomic_directory
from keras_wavevit.layers.checks import check_tensorflow_backend
from keras_wavevit.layers.fusion import fused_ops
from keras_wavevit.preprocessing import (
    OFFICIAL_CROP_PCT,
    check_preprocessing,
    normalize_images,
    preprocess_official,
)

CLASS_NAMES_ASSET = "class_names.txt"
PREPROCESSING_ASSET = "preprocessing.json"
SIGNATURES = ("serving_default", "serving_bytes", "serving_float", "serving_preprocessed")
DEFAULT_TOP_K = 5


def _validate_image_size(model, image_size):
    input_shape = model.input_shape
    if not isinstance(input_shape, tuple) or len(input_shape) != 4:
        raise ValueError(
            "export_saved_model needs a model with one NHWC image input; "
            f"the model's input_shape is {input_shape}."
        )
    height, width = input_shape[1:3]
    if image_size is None:
        if height is None or width is None:
            raise ValueError(
                "The model's input size is unknown (input_shape="
                f"{input_shape}); pass image_size=(height, width), the size "
                "the serving graph resizes the images to."
            )
        image_size = (height, width)
    try:
        image_size = tuple(image_size)
    except TypeError:
        raise ValueError(
            f"image_size must be (height, width); received {image_size!r}."
        ) from None
    if len(image_size) != 2 or not all(
        isinstance(size, int) and not isinstance(size, bool) and size > 0
        for size in image_size
    ):
        raise ValueError(
            "image_size must be two positive integers (height, width); "
            f"received {image_size!r}."
        )
    for axis_name, static, wanted in zip(("height", "width"), (height, width), image_size):
        if static is not None and static != wanted:
            raise ValueError(
                f"image_size={image_size} does not match the model's input "
                f"{axis_name} {static} (input_shape={input_shape}); build the "
                "model with that size, or with None for any size."
            )
    return image_size


def _validate_class_names(class_names, num_classes):
    if class_names is None:
        return None
    if isinstance(class_names, str):
        raise ValueError(
            "class_names must be a sequence of strings, not one string; "
            f"received {class_names!r}."
        )
    class_names = list(class_names)
    if not all(isinstance(name, str) for name in class_names):
        raise ValueError(f"class_names must all be strings; received {class_names!r}.")
    if len(class_names) != num_classes:
        raise ValueError(
            f"class_names has {len(class_names)} entries but the model has "
            f"{num_classes} classes."
        )
    bad = [name for name in class_names if not name or "\n" in name or "\r" in name]
    if bad:
        raise ValueError(
            "class_names must be non-empty and contain no line breaks; "
            f"received {bad!r}."
        )
    return class_names


def _validate_version(version):
    if isinstance(version, bool) or not isinstance(version, int) or version < 1:
        raise ValueError(
            "version must be a positive integer (TensorFlow Serving loads "
            f"numbered version directories); received {version!r}."
        )
    return version


def _logits_model(model):
    """Returns `(logits_model, outputs_are_probabilities)` for a classifier.

    Wave-ViT classifiers end in an `Activation` layer (`predictions`): linear
    (the default, `classifier_activation=None`) gives logits; softmax gives
    probabilities, whose logits are the input of that layer. A layer with a
    built-in softmax (e.g. `Dense(activation="softmax")`) gives probabilities
    only; the `logits` output is then their logarithm.
    """
    last = model.layers[-1] if model.layers else None
    if isinstance(last, keras.layers.Softmax):
        activation_name = "softmax"
    else:
        activation = getattr(last, "activation", None)
        activation_name = (
            "linear" if activation is None else keras.activations.serialize(activation)
        )
    if activation_name == "linear":
        return model, False
    if activation_name == "softmax":
        if isinstance(last, (keras.layers.Activation, keras.layers.Softmax)):
            try:
                return keras.Model(model.inputs, last.input), False
            except (AttributeError, ValueError):
                pass
        return model, True
    raise ValueError(
        "export_saved_model expects a classifier that outputs logits or softmax "
        f"probabilities; the model's last layer has activation {activation_name!r}."
    )


def _class_names_table(class_names, directory):
    """A lookup table id -> name, initialised from a text asset file."""
    filename = os.path.join(directory, CLASS_NAMES_ASSET)
    with open(filename, "w", encoding="utf-8") as handle:
        handle.write("\n".join(class_names) + "\n")
    initializer = tf.lookup.TextFileInitializer(
        filename,
        key_dtype=tf.int64,
        key_index=tf.lookup.TextFileIndex.LINE_NUMBER,
        value_dtype=tf.string,
        value_index=tf.lookup.TextFileIndex.WHOLE_LINE,
    )
    return tf.lookup.StaticHashTable(initializer, default_value="")


def _class_names_lookup(table):
    """Class ids -> names: the table, or the ids as strings without one."""
    if table is None:
        return tf.strings.as_string
    return table.lookup


def _outputs(logits, probabilities, top_k, include_logits, names):
    """The output dict of every signature (see the module docstring)."""
    class_ids = tf.argmax(probabilities, axis=-1, output_type=tf.int64)
    result = {
        "classes": names(class_ids),
        "class_ids": class_ids,
        "probabilities": probabilities,
    }
    if top_k:
        top = tf.math.top_k(probabilities, k=top_k)
        top_ids = tf.cast(top.indices, tf.int64)
        result["top_k_classes"] = names(top_ids)
        result["top_k_class_ids"] = top_ids
        result["top_k_probabilities"] = top.values
    if include_logits:
        result["logits"] = logits
    return result


def _predict_function(head, image_size, top_k, include_logits, table, views):
    """One tf.function shared by every endpoint: the model is traced once.

    With test-time `views` `(flip, shift)`, the model's outputs (logits, or
    probabilities for a model that gives only those) are averaged over the
    views of each image (`keras_wavevit.test_time.mean_over_views`).
    """
    logits_model, outputs_are_probabilities = head
    names = _class_names_lookup(table)
    flip, shift = views

    def score(images):
        return logits_model(images, training=False)

    @tf.function(
        input_signature=[tf.TensorSpec((None, *image_size, 3), tf.float32)],
        autograph=False,
    )
    def predict(normalized):
        outputs = test_time.mean_over_views(score, normalized, flip, shift)
        if outputs_are_probabilities:
            probabilities = outputs
            logits = tf.math.log(probabilities)
        else:
            logits = outputs
            probabilities = tf.nn.softmax(logits, axis=-1)
        return _outputs(logits, probabilities, top_k, include_logits, names)

    return predict


def _preprocess(preprocessing, image_size):
    """Pixels in [0, 255] (a batch, any size) -> the model's normalised input."""
    if preprocessing == "official":
        return lambda images: preprocess_official(images, image_size, OFFICIAL_CROP_PCT)

    def resize(images):
        images = tf.image.resize(tf.cast(images, tf.float32), image_size, method="bilinear")
        return normalize_images(images)

    return resize


def _views_description(views):
    """What the signatures average over, or `""` for a single view."""
    flip, shift = views
    count = test_time.view_count(flip, shift)
    if count == 1:
        return ""
    parts = ["the image"]
    if shift:
        parts.append(f"its 4 diagonal shifts by {shift} pixel{'s' if shift > 1 else ''} "
                     "(edges reflected)")
    if flip:
        parts.append("the mirror image of each" if shift else "its mirror image")
    return f"; logits averaged over {count} views: {', '.join(parts)}"


def _descriptions(preprocessing, image_size, views):
    """`{signature: what it takes and applies}`, for the preprocessing asset."""
    height, width = image_size
    if preprocessing == "official":
        applied = (
            f"the official evaluation transform: bicubic resize of the short side to "
            f"floor(size / {OFFICIAL_CROP_PCT}), centre crop {height}x{width}, "
            "ImageNet mean/std normalisation"
        )
    else:
        applied = (
            f"bilinear resize to {height}x{width} (aspect ratio not kept, no crop), "
            "ImageNet mean/std normalisation"
        )
    averaged = _views_description(views)
    return {
        "serving_default": f"uint8 images [batch, height, width, 3], any size; {applied}"
                           f"{averaged}",
        "serving_bytes": f"encoded image files [batch], each decoded to RGB; {applied}"
                         f"{averaged}",
        "serving_float": f"float32 pixels in [0, 255], any size; {applied}{averaged}",
        "serving_preprocessed": (
            f"float32 [batch, {height}, {width}, 3], already preprocessed; none applied"
            f"{averaged}"
        ),
    }


def _endpoints(predict, image_size, preprocessing):
    """`{name: (function, input name, shape, dtype)}` of every signature.

    Restored signatures check the dtype of their input but not its shape, so
    each endpoint checks the shape first: a bad request then fails with
    "Shape of tensor images [...] is not compatible with expected shape
    [...]" instead of an error from deep inside the graph.
    """
    any_size = (None, None, None, 3)
    model_size = (None, *image_size, 3)
    preprocess = _preprocess(preprocessing, image_size)

    def serve_pixels(images):
        """`serving_default` (uint8) and `serving_float` (float32) alike."""
        images = tf.ensure_shape(images, any_size, name="images")
        return predict(preprocess(images))

    def decode_and_preprocess(data):
        image = tf.io.decode_image(data, channels=3, expand_animations=False)
        return preprocess(image[tf.newaxis])[0]

    def serve_bytes(image_bytes):
        """`serving_bytes`: each file decoded and preprocessed on its own."""
        image_bytes = tf.ensure_shape(image_bytes, (None,), name="image_bytes")
        images = tf.map_fn(
            decode_and_preprocess,
            image_bytes,
            fn_output_signature=tf.TensorSpec((*image_size, 3), tf.float32),
        )
        return predict(images)

    def serve_preprocessed(images):
        return predict(tf.ensure_shape(images, model_size, name="images"))

    return {
        "serving_default": (serve_pixels, "images", any_size, tf.uint8),
        "serving_bytes": (serve_bytes, "image_bytes", (None,), tf.string),
        "serving_float": (serve_pixels, "images", any_size, tf.float32),
        "serving_preprocessed": (serve_preprocessed, "images", model_size, tf.float32),
    }


def _build_archive(model, head, options, asset_dir):
    image_size, class_names, top_k, views, preprocessing, include_logits = options
    table = None if class_names is None else _class_names_table(class_names, asset_dir)
    predict = _predict_function(head, image_size, top_k, include_logits, table, views)
    archive = keras.export.ExportArchive()
    # The variables, in the model's order, so that the loaded SavedModel's
    # `trainable_variables` can be fine-tuned. (`archive.track(model)` would
    # do the same but also trace the model once more, only to look for
    # lookup tables, which Wave-ViT has none of.)
    archive.add_variable_collection("variables", model.variables)
    archive.add_variable_collection("trainable_variables", model.trainable_variables)
    archive.add_variable_collection(
        "non_trainable_variables", model.non_trainable_variables
    )
    if table is not None:
        archive.track(table)
    endpoints = _endpoints(predict, image_size, preprocessing)
    for name, (function, input_name, shape, dtype) in endpoints.items():
        archive.add_endpoint(name, function, [tf.TensorSpec(shape, dtype, name=input_name)])
    return archive


def _write_preprocessing_asset(directory, image_size, preprocessing, views):
    """`assets/preprocessing.json`: the in-graph preprocessing, for clients."""
    flip, shift = views
    record = {
        "preprocessing": preprocessing,
        "image_size": list(image_size),
        "crop_pct": OFFICIAL_CROP_PCT if preprocessing == "official" else None,
        "signatures": _descriptions(preprocessing, image_size, views),
        "test_time_views": {
            "flip": flip, "shift": shift, "count": test_time.view_count(flip, shift),
        },
    }
    os.makedirs(os.path.join(directory, "assets"), exist_ok=True)
    with open(os.path.join(directory, "assets", PREPROCESSING_ASSET), "w",
              encoding="utf-8") as handle:
        handle.write(json.dumps(record, indent=2) + "\n")


def _validate_top_k(top_k, num_classes):
    if top_k is None:
        return min(DEFAULT_TOP_K, num_classes)
    if isinstance(top_k, bool) or not isinstance(top_k, int) or not 0 <= top_k <= num_classes:
        raise ValueError(
            f"top_k must be an integer from 0 (no top-k outputs) to the number of "
            f"classes, {num_classes}; received {top_k!r}."
        )
    return top_k


def _validate_arguments(model, path, version, image_size, class_names, top_k, views):
    """Checks every argument of `export_saved_model` before any work.

    Returns `(version, (image_size, class_names, top_k, (flip, shift)))`.
    """
    if not isinstance(model, keras.Model):
        raise ValueError(
            f"model must be a keras.Model; received {type(model).__name__}."
        )
    if path is None or not str(path):
        raise ValueError(f"path must be a directory path; received {path!r}.")
    version = _validate_version(version)
    image_size = _validate_image_size(model, image_size)
    output_shape = model.output_shape
    if not isinstance(output_shape, tuple) or len(output_shape) != 2:
        raise ValueError(
            "export_saved_model needs a classifier with output shape "
            f"(batch, num_classes); the model's output_shape is {output_shape} "
            "(a model built with include_top=False cannot be exported)."
        )
    class_names = _validate_class_names(class_names, output_shape[-1])
    top_k = _validate_top_k(top_k, output_shape[-1])
    flip, shift = views
    views = (test_time.check_flip(flip), test_time.check_shift(shift, image_size))
    return version, (image_size, class_names, top_k, views)


def export_saved_model(
    model,
    path,
    image_size=None,
    class_names=None,
    version=1,
    overwrite=False,
    include_logits=True,
    top_k=None,
    preprocessing="resize",
    flip_average=False,
    shift_average=0,
):
    """Exports a Wave-ViT classifier as a SavedModel for TensorFlow Serving.

    Writes `path/<version>/` (the layout TensorFlow Serving expects) with the
    signatures `serving_default` (uint8 images of any size), `serving_bytes`
    (encoded JPEG/PNG files), `serving_float` (float pixels in [0, 255]) and
    `serving_preprocessed` (normalised float input at `image_size`); see the
    module docstring for their inputs, outputs and preprocessing. The
    preprocessing runs inside the graph: by default a bilinear resize (like
    the training pipeline's `Resizing` layer) and `normalize_images`; with
    `preprocessing="official"` the official evaluation transform
    (`keras_wavevit.preprocessing.preprocess_official`). The asset
    `preprocessing.json` records which, and what each signature takes.

    The export is atomic (`keras_wavevit.files.atomic_directory`): the
    SavedModel is written to a hidden `.partial-*` directory inside `path`
    and renamed into place, so TensorFlow Serving (which only loads numeric
    directories) never sees a half-written version, and a replaced version
    stays whole until the new one is in place. The version directory and
    everything in it get the ordinary modes (`0o777`/`0o666` less the
    umask), so a server running as another user can read them.

    Args:
        model: A `keras.Model` classifier with one NHWC image input, outputting
            logits (`classifier_activation=None`) or softmax probabilities.
            Mixed-precision models are fine: outputs are float32.
        path: The model base path (created if missing).
        image_size: `(height, width)` the images are resized to inside the
            graph. Defaults to the model's static input size; required when
            that size is unknown.
        class_names: Optional sequence of `num_classes` names. Stored as the
            asset `class_names.txt` (one name per line, line `i` is class `i`)
            and used for the `classes` and `top_k_classes` outputs; without
            them those outputs hold the class ids as strings.
        version: Positive integer, the version directory name.
        overwrite: Replace an existing `path/<version>`; without it an
            existing version raises `FileExistsError`.
        include_logits: Add the `logits` output.
        top_k: Number of classes in the `top_k_*` outputs, from 0 (none) to
            the number of classes. Defaults to 5, or the number of classes
            when there are fewer.
        preprocessing: `"resize"` (bilinear resize to `image_size`, what the
            training recipe uses) or `"official"` (bicubic resize of the
            short side to `floor(size / 0.96)` and a centre crop of
            `image_size`, what the official checkpoints are evaluated with).
        flip_average: Test-time averaging: every signature averages the
            logits of each image and of its mirror image (for models
            trained with random flips). One more model pass per view.
        shift_average: Test-time averaging over the image shifted by this
            many pixels in the four diagonal directions, edges reflected
            (and their mirror images with `flip_average`: 10 views with
            1 pixel), for models trained with translations; smaller than
            both sides of `image_size`. 0 (the default): no shifts.

    Returns:
        The version directory written, as a string.

    Raises:
        ValueError: For bad arguments (checked before anything is written),
            or when Keras runs on another backend than TensorFlow.
        FileExistsError: If `path/<version>` exists and `overwrite` is False.

    Example:

    >>> import tempfile
    >>> import numpy as np
    >>> import tensorflow as tf
    >>> import keras_wavevit
    >>> model = keras_wavevit.WaveViT(
    ...     embed_dims=(8, 16, 32, 32), num_heads=(1, 1, 2, 2),
    ...     mlp_ratios=(2, 2, 2, 2), depths=(1, 1, 1, 1),
    ...     sr_ratios=(2, 1, 1, 1), stem_hidden_dim=8, stem_stride=2,
    ...     input_shape=(32, 32, 3), num_classes=3)
    >>> base = tempfile.mkdtemp()
    >>> written = export_saved_model(model, base, class_names=["a", "b", "c"])
    >>> written == f"{base}/1"
    True
    >>> serve = tf.saved_model.load(written).signatures["serving_default"]
    >>> outputs = serve(images=tf.zeros((2, 50, 60, 3), tf.uint8))
    >>> outputs["probabilities"].shape, outputs["top_k_classes"].shape
    (TensorShape([2, 3]), TensorShape([2, 3]))
    >>> bool(tf.reduce_all(tf.gather(["a", "b", "c"], outputs["class_ids"]) == outputs["classes"]))
    True
    """
    check_tensorflow_backend("export_saved_model")
    version, options = _validate_arguments(
        model, path, version, image_size, class_names, top_k, (flip_average, shift_average)
    )
    preprocessing = check_preprocessing(preprocessing)
    head = _logits_model(model)
    target = os.path.join(os.path.abspath(os.fspath(path)), str(version))
    if os.path.exists(target) and not overwrite:
        raise FileExistsError(
            f"Version {version} already exists at {target}; pass overwrite=True "
            "(CLI: --overwrite) to replace it, or choose another version."
        )
    # Trace the plain ops, not the XLA-fused kernels: TensorFlow Serving runs
    # functions marked for XLA only with its CPU JIT switched on
    # (`--xla_cpu_compilation_enabled`), which is off by default.
    with atomic_directory(target, replace=overwrite) as staging, \
            tempfile.TemporaryDirectory() as asset_dir, fused_ops(False):
        archive = _build_archive(
            model, head, (*options, preprocessing, include_logits), asset_dir
        )
        archive.write_out(
            staging,
            options=tf.saved_model.SaveOptions(experimental_custom_gradients=True),
            verbose=False,
        )
        _write_preprocessing_asset(staging, options[0], preprocessing, options[3])
    return target

