"""`keras-wavevit export`: a `.keras` model file -> a SavedModel for TensorFlow Serving.

Arguments only; the work is `keras_wavevit.export.export_saved_model`.

Example:

    keras-wavevit export runs/tiny/best.keras serving/wavevit --class-names cat,dog,fox
    keras-wavevit export model.keras serving/wavevit --version 2 --image-size 224 --top-k 3
"""

from keras_wavevit.cli.arguments import image_size_argument
from keras_wavevit.export import export_saved_model
from keras_wavevit.weights.model_file import load_model_file


def _read_class_names(args):
    if args.class_names:
        return [name.strip() for name in args.class_names.split(",")]
    if args.class_names_file:
        with open(args.class_names_file, encoding="utf-8") as handle:
            return [line.rstrip("\r\n") for line in handle if line.strip()]
    return None


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
    parser.add_argument("path", help="model base path; writes PATH/VERSION/")
    parser.add_argument("--version", type=int, default=1, help="version number (default 1)")
    parser.add_argument(
        "--overwrite", action="store_true", help="replace an existing version"
    )
    parser.add_argument(
        "--image-size",
        type=image_size_argument(),
        metavar="N|HxW",
        help="size the serving graph resizes images to (default: the model's input size)",
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


def run(args):
    """Runs `keras-wavevit export`: loads a .keras model and exports it.

    Args:
        args: Parsed arguments from `configure_parser`.

    Returns:
        0 on success.

    Example:

    >>> from keras_wavevit.cli import main
    >>> main(["export", "model.keras", "serving/wavevit"])  # doctest: +SKIP
    0
    """
    class_names = _read_class_names(args)
    written = export_saved_model(
        load_model_file(args.model, compile=False),
        args.path,
        image_size=args.image_size,
        class_names=class_names,
        version=args.version,
        overwrite=args.overwrite,
        include_logits=not args.no_logits,
        top_k=args.top_k,
    )
    print(f"SavedModel written to {written}")
    return 0
