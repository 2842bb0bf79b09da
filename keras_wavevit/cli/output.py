"""What `keras-wavevit` prints: progress, results and file paths, not library logs.

By default a command hides the messages TensorFlow writes for its own
developers: its C++ INFO and WARNING log lines (the grappler cost model's
`Error in PredictCost()` once per compiled training step, XLA start-up
lines), the `failed call to cuInit` error of a CUDA build on a machine
without a GPU, the `NodeDef mentions attribute ... not in the op definition`
error line of tf.data graphs, and the `unsaved custom gradients` warnings of loading a
SavedModel (the wavelets' custom gradients; the serving graph needs none).
`--verbose` (anywhere on the command line, without a value) shows them all,
untouched. Other warnings and errors always show.

`TF_CPP_MIN_LOG_LEVEL` hides C++ logs only when set before TensorFlow is
imported, and Keras imports TensorFlow with the package, so the C++ lines
written while a command runs are filtered from the process's standard error
by message; the few lines TensorFlow writes while being imported come first
and stay.
"""

import contextlib
import logging
import os
import re
import sys
import threading

from absl import logging as absl_logging

VERBOSE_FLAG = "--verbose"
# `train --verbose LEVEL` is Keras' progress display (a `TrainConfig`
# field), not this switch.
TRAIN_VERBOSITY = ("auto", "0", "1", "2")

# C++ log lines (absl format: severity, MMDD, time, thread, file:line]).
NATIVE_NOISE = re.compile(
    rb"^(?:[IW]\d{4} \d\d:\d\d:\d+\.\d+ +\d+ \S+:\d+\] "
    rb"|E\d{4} \d\d:\d\d:\d+\.\d+ +\d+ \S+:\d+\] failed call to cuInit"
    # tf.data graphs naming an attribute this TensorFlow build's op lacks (harmless).
    rb"|E\d{4} \d\d:\d\d:\d+\.\d+ +\d+ node_def_util\.cc:\d+\] NodeDef mentions attribute"
    rb"|WARNING: All log messages before absl::InitializeLog\(\) is called)"
)
# Python log records (absl logging, the `absl` logger), by message.
PYTHON_NOISE = re.compile(r"Importing a function \(.*\) with ops with unsaved custom gradients")


def take_verbose_flag(argv):
    """Finds and removes the `--verbose` switch from a command line.

    A `--verbose` followed by one of `train`'s progress levels (`auto`, 0,
    1, 2) is `train --verbose LEVEL` and stays.

    Args:
        argv: The command-line arguments, a list of strings.

    Returns:
        `(verbose, remaining_arguments)`.

    Example:

    >>> take_verbose_flag(["export", "m.keras", "out", "--verbose"])
    (True, ['export', 'm.keras', 'out'])
    >>> take_verbose_flag(["train", "--verbose", "2"])
    (False, ['train', '--verbose', '2'])
    """
    remaining = []
    verbose = False
    for index, argument in enumerate(argv):
        following = argv[index + 1] if index + 1 < len(argv) else None
        if argument == VERBOSE_FLAG and following not in TRAIN_VERBOSITY:
            verbose = True
        else:
            remaining.append(argument)
    return verbose, remaining


class _DropNoise(logging.Filter):
    def filter(self, record):
        return not PYTHON_NOISE.search(record.getMessage())


def _copy_lines(source, target):
    pending = b""
    while chunk := os.read(source, 65536):
        *lines, pending = (pending + chunk).split(b"\n")
        kept = b"".join(line + b"\n" for line in lines if not NATIVE_NOISE.match(line))
        if kept:
            os.write(target, kept)
    if pending and not NATIVE_NOISE.match(pending):
        os.write(target, pending)


@contextlib.contextmanager
def _filtered_stderr():
    """Routes file descriptor 2 through a thread that drops `NATIVE_NOISE` lines."""
    sys.stderr.flush()
    original = os.dup(2)
    read_end, write_end = os.pipe()
    os.dup2(write_end, 2)
    os.close(write_end)
    copier = threading.Thread(target=_copy_lines, args=(read_end, original), daemon=True)
    copier.start()
    try:
        yield
    finally:
        sys.stderr.flush()
        os.dup2(original, 2)  # closes the pipe's last write end: the copier ends
        copier.join(timeout=10)
        os.close(read_end)
        os.close(original)


@contextlib.contextmanager
def library_output(verbose):
    """Hides TensorFlow's logs (see the module docstring) unless `verbose`.

    Sets `TF_CPP_MIN_LOG_LEVEL=2` (unless set already) for a TensorFlow not
    yet imported (the JAX and PyTorch backends), filters the C++ lines of an
    imported one and the listed Python log records; all restored on exit.

    Args:
        verbose: True to show everything.

    Yields:
        Nothing; the command runs inside.

    Example:

    >>> with library_output(verbose=False):
    ...     print("Model written to out/1")
    Model written to out/1
    """
    if verbose:
        yield
        return
    level_was_set = "TF_CPP_MIN_LOG_LEVEL" in os.environ
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    noise = _DropNoise()
    absl_logger = absl_logging.get_absl_logger()
    absl_logger.addFilter(noise)
    try:
        with _filtered_stderr():
            yield
    finally:
        absl_logger.removeFilter(noise)
        if not level_was_set:
            del os.environ["TF_CPP_MIN_LOG_LEVEL"]
