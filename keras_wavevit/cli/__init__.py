"""The `keras-wavevit` command: train, evaluate, export and convert.

Each subcommand has a module here, `keras_wavevit.cli.<name>`, holding only
its arguments: `configure_parser(parser)` and `run(args)`, which hands the
parsed arguments to the code that does the work (`recipes/`, `export`,
`weights/`). Only the module of the subcommand being run is imported, so a
problem in one subcommand's dependencies never breaks the others.

Two switches work anywhere on the command line of every subcommand:
`--traceback` (the Python traceback of a failed command instead of one line)
and `--verbose` (TensorFlow's own logs too, see `keras_wavevit.cli.output`).
"""

import argparse
import importlib
import sys

from keras_wavevit.cli import output

# Shows the Python traceback of a failed command instead of one line.
TRACEBACK_FLAG = "--traceback"
SUBCOMMANDS = {
    # name: (module, help)
    "train": ("keras_wavevit.cli.train", "train a Wave-ViT and export it"),
    "evaluate": ("keras_wavevit.cli.evaluate", "top-1/top-5 and a confusion matrix"),
    "export": ("keras_wavevit.cli.export",
               "export a .keras model (SavedModel, ONNX, OpenVINO IR, LiteRT)"),
    "convert": ("keras_wavevit.cli.convert", "convert an official checkpoint"),
}
SWITCHES_HELP = (
    f"Anywhere on the command line: {TRACEBACK_FLAG} shows the Python traceback of an "
    f"error; {output.VERBOSE_FLAG} (no value) also shows TensorFlow's logs and warnings."
)


def build_parser(command=None):
    """Builds the argument parser.

    Args:
        command: The subcommand whose arguments to configure (its module is
            imported); the others are listed with their help only.

    Returns:
        An `argparse.ArgumentParser`.

    Example:

    >>> parser = build_parser("convert")
    >>> parser.prog
    'keras-wavevit'
    """
    parser = argparse.ArgumentParser(
        prog="keras-wavevit",
        description="Wave-ViT for Keras 3 / TensorFlow.",
        epilog=SWITCHES_HELP,
    )
    subparsers = parser.add_subparsers(dest="command", required=True)
    for name, (module_name, help_text) in SUBCOMMANDS.items():
        subparser = subparsers.add_parser(
            name, help=help_text, description=help_text, epilog=SWITCHES_HELP
        )
        subparser.set_defaults(module_name=module_name)
        if name == command:
            importlib.import_module(module_name).configure_parser(subparser)
    return parser


def _command_of(argv):
    # The top-level parser has no options besides --help, so the first
    # argument that is not an option names the subcommand.
    return next((arg for arg in argv if not arg.startswith("-")), None)


def main(argv=None):
    """Entry point of `keras-wavevit`.

    An error in the user's input, files or installation (`ValueError`,
    `OSError`, `KeyError`, `ImportError` of an optional package) ends as one
    line, `keras-wavevit <command>: error: ...`, and
    exit status 2; `--traceback` anywhere on the command line shows the
    Python traceback instead. TensorFlow's logs are hidden unless
    `--verbose` is given (`keras_wavevit.cli.output`).

    Args:
        argv: Arguments (default: `sys.argv[1:]`).

    Returns:
        The exit status.

    Example:

    >>> main(["export", "missing.keras", "exported"])  # doctest: +SKIP
    2
    """
    argv = sys.argv[1:] if argv is None else list(argv)
    show_traceback = TRACEBACK_FLAG in argv
    argv = [arg for arg in argv if arg != TRACEBACK_FLAG]
    verbose, argv = output.take_verbose_flag(argv)
    with output.library_output(verbose):
        args = build_parser(_command_of(argv)).parse_args(argv)
        try:
            return importlib.import_module(args.module_name).run(args) or 0
        except (ValueError, OSError, KeyError, ImportError) as error:
            if show_traceback:
                raise
            message = error.args[0] if isinstance(error, KeyError) and error.args else error
            print(f"keras-wavevit {args.command}: error: {message}", file=sys.stderr)
            return 2
