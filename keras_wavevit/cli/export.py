"""`keras-wavevit export`: a `.keras` model file -> SavedModel, ONNX, OpenVINO IR or LiteRT.

Arguments only; the work is `keras_wavevit.export_formats.export_model`
(the SavedModel: `keras_wavevit.export.export_saved_model`).

Example:

    keras-wavevit export runs/tiny/best.keras serving/wavevit --class-names cat,dog,fox
    keras-wavevit export model.keras serving/wavevit --version 2 --image-size 224 --top-k 3
    keras-wavevit export runs/cifar10/best.keras serving/cifar10 --flip-average --shift-average 1
    keras-wavevit export model.keras wavevit.onnx --format onnx
    keras-wavevit export model.keras wavevit_openvino --format openvino
    keras-wavevit export model.keras wavevit.tflite --format litert
"""

from keras_wavevit.cli.arguments import add_test_time_arguments, image_size_argument
from keras_wavevit.export_formats import FORMATS, export_model
from keras_wavevit.weights.model_file import load_model_file

# The flags of the SavedModel only (the other formats have no class names,
# top-k, versions, in-graph resizing or test-time averaging), and their
# values when not given.
SAVED_MODEL_FLAGS = {
    "version": ("--version", None),
    "class_names": ("--class-names", None),
    "class_names_file": ("--class-names-file", None),
    "no_logits": ("--no-logits", False),
    "top_k": ("--top-k", None),
    "preprocessing": ("--preprocessing", None),
    "flip_average": ("--flip-average", False),
    "shift_average": ("--shift-average", 0),
}

FORMAT_NAMES = {
    "saved_model": "SavedModel",
    "onnx": "ONNX model",
    "openvino": "OpenVINO IR",
    "litert": "LiteRT model",
}


def _read_class_names(args):
    if args.class_names:
        return [name.strip() for name in args.class_names.split(",")]
    if args.class_names_file:
        with open(args.class_names_file, encoding="utf-8") as handle:
            return [line.rstrip("\r\n") for line in handle if line.strip()]
    return None


def _format_options(args):
    """The options of `export_model` for `args.format`; refuses misplaced flags."""
    if args.format != "saved_model":
        given = [flag for name, (flag, unset) in SAVED_MODEL_FLAGS.items()
                 if getattr(args, name) != unset]
        if given:
            raise ValueError(
                f"{', '.join(given)}: SavedModel options, not for --format "
                f"{args.format} (leave them out, or use --format saved_model)."
            )
        return {}
    options = dict(
        class_names=_read_class_names(args),
        version=1 if args.version is None else args.version,
        include_logits=not args.no_logits,
        top_k=args.top_k,
        flip_average=args.flip_average,
        shift_average=args.shift_average,
    )
    if args.preprocessing is not None:
        options["preprocessing"] = args.preprocessing
    return options


def configure_parser(parser):
    """Adds the arguments of `keras-wavevit export` to `parser`.

    Args:
        parser: An `argparse.ArgumentParser` (the `export` subparser).

    Example:

    >>> import argparse
    >>> parser = argparse.ArgumentParser()
    >>> configure_parser(parser)
    >>> args = parser.parse_args(
    ...     ["m.keras", "out", "--version", "2", "--image-size", "64x48", "--top-k", "3"])
    >>> args.version, args.image_size, args.top_k
    (2, (64, 48), 3)
    """
    parser.add_argument("model", help="the trained model, a .keras file")
    parser.add_argument(
        "path",
        help="saved_model: the model base path (writes PATH/VERSION/); onnx: a .onnx "
        "file; openvino: a directory (model.xml, model.bin); litert: a .tflite file",
    )
    parser.add_argument(
        "--format",
        choices=FORMATS,
        default="saved_model",
        help="what to write (default saved_model); onnx, openvino and litert take "
        "float32 pixels [0, 255] at the model's size and output logits and probabilities",
    )
    parser.add_argument(
        "--version", type=int, help="saved_model: version number (default 1)"
    )
    parser.add_argument(
        "--overwrite", action="store_true",
        help="replace an existing export (saved_model: the version)"
    )
    parser.add_argument(
        "--image-size",
        type=image_size_argument(),
        metavar="N|HxW",
        help="saved_model: size the serving graph resizes images to; other formats: "
        "the input size (default: the model's input size)",
    )
    names = parser.add_mutually_exclusive_group()
    names.add_argument("--class-names", help="comma-separated class names, in class-id order")
    names.add_argument(
        "--class-names-file", help="text file with one class name per line, in class-id order"
    )
    parser.add_argument(
        "--no-logits", action="store_true", help="leave out the `logits` output"
    )
    parser.add_argument(
        "--top-k",
        type=int,
        metavar="K",
        help="classes in the top_k_* outputs, 0 for none (default: 5, or the class "
        "count when smaller)",
    )
    parser.add_argument(
        "--preprocessing",
        choices=("resize", "official"),
        help="saved_model: the in-graph preprocessing, a bilinear resize (default) or "
        "the official evaluation transform (bicubic short side to size/0.96, centre crop)",
    )
    add_test_time_arguments(parser, prefix="saved_model, averaged inside the graph: ")


def run(args):
    """Runs `keras-wavevit export`: loads a .keras model and exports it.

    The SavedModel-only flags given with another `--format` are refused
    before the model is read.

    Args:
        args: Parsed arguments from `configure_parser`.

    Returns:
        0 on success.

    Example:

    >>> from keras_wavevit.cli import main
    >>> main(["export", "model.keras", "serving/wavevit"])  # doctest: +SKIP
    0
    """
    options = _format_options(args)
    written = export_model(
        load_model_file(args.model, compile=False),
        args.path,
        format=args.format,
        image_size=args.image_size,
        overwrite=args.overwrite,
        **options,
    )
    print(f"{FORMAT_NAMES[args.format]} written to {written}")
    return 0
