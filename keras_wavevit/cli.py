"""The `keras-wavevit` command: train, evaluate, export and convert.

Each subcommand lives in the module that does the work; that module exposes
`configure_parser(parser)` (its arguments) and `run(args)` (the work).
"""

import argparse
import importlib

SUBCOMMANDS = {
    # name: (module, help)
    "train": ("keras_wavevit.training", "train a Wave-ViT and export it"),
    "evaluate": ("keras_wavevit.evaluation", "top-1/top-5 and a confusion matrix"),
    "export": ("keras_wavevit.export", "export a .keras model as a SavedModel"),
    "convert": ("keras_wavevit.convert_cli", "convert an official checkpoint"),
}


def build_parser():
    """Builds the argument parser with every subcommand.

    Returns:
        An `argparse.ArgumentParser`.

    Example:

    >>> parser = build_parser()
    >>> parser.prog
    'keras-wavevit'
    """
    parser = argparse.ArgumentParser(
        prog="keras-wavevit", description="Wave-ViT for Keras 3 / TensorFlow."
    )
    subparsers = parser.add_subparsers(dest="command", required=True)
    for name, (module_name, help_text) in SUBCOMMANDS.items():
        subparser = subparsers.add_parser(name, help=help_text, description=help_text)
        importlib.import_module(module_name).configure_parser(subparser)
        subparser.set_defaults(module_name=module_name)
    return parser


def main(argv=None):
    """Entry point of `keras-wavevit`.

    Args:
        argv: Arguments (default: `sys.argv[1:]`).

    Returns:
        The exit status.

    Example:

    >>> main(["convert", "--help"])  # doctest: +SKIP
    """
    args = build_parser().parse_args(argv)
    return importlib.import_module(args.module_name).run(args) or 0


if __name__ == "__main__":
    raise SystemExit(main())
