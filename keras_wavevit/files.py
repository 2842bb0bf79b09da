"""Atomic writes: every file and directory the package writes goes through here.

A write is staged beside its destination (same directory, so the same file
system) under a name starting with `.partial-`, then renamed over the
destination with `os.replace`, which is atomic on POSIX. An interrupted
write (an exception, `kill -9`, a full disk) therefore never leaves a
partial file under the destination nor clobbers the file that was there.
Staged files get the mode an ordinary `open()` would give (`0o666` or, for
directories, `0o777`, less the umask), not the private mode of `tempfile`.
Leftover `.partial-*` entries from a killed process are harmless and can be
removed with `remove_partial_writes`.
"""

import contextlib
import os
import shutil
import tempfile

PARTIAL_PREFIX = ".partial-"


def _current_umask():
    """The process umask (read without changing it for longer than a call)."""
    umask = os.umask(0)
    os.umask(umask)
    return umask


def _staging_directory(path):
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    return directory


@contextlib.contextmanager
def atomic_path(path, suffix=None):
    """Yields a temporary path to write; renames it over `path` on success.

    Use it for writers that take a file name (`model.save`, `np.savez`,
    `matplotlib`'s `savefig`). On an exception the temporary file is removed
    and `path` is left as it was.

    Args:
        path: The destination file.
        suffix: Ending of the temporary name (default: the basename of
            `path`), for writers that choose the format by extension.

    Yields:
        The temporary file name, in the destination's directory.

    Example:

    >>> import json, os, tempfile
    >>> destination = os.path.join(tempfile.mkdtemp(), "config.json")
    >>> with atomic_path(destination) as temporary:
    ...     with open(temporary, "w") as handle:
    ...         json.dump({"epochs": 3}, handle)
    >>> json.load(open(destination))
    {'epochs': 3}
    """
    path = os.fspath(path)
    suffix = "-" + os.path.basename(path) if suffix is None else suffix
    handle, temporary = tempfile.mkstemp(
        prefix=PARTIAL_PREFIX, suffix=suffix, dir=_staging_directory(path)
    )
    os.close(handle)
    try:
        yield temporary
        os.chmod(temporary, 0o666 & ~_current_umask())
        os.replace(temporary, path)
    finally:
        if os.path.exists(temporary):
            os.remove(temporary)


def atomic_write_text(path, text):
    """Writes `text` to `path` atomically (UTF-8).

    Args:
        path: The destination file.
        text: The whole new content.

    Example:

    >>> import os, tempfile
    >>> destination = os.path.join(tempfile.mkdtemp(), "labels.txt")
    >>> atomic_write_text(destination, "cat\\ndog\\n")
    >>> open(destination).read().split()
    ['cat', 'dog']
    """
    with atomic_path(path) as temporary:
        with open(temporary, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())


def save_model_atomically(model, path):
    """Saves a model (`.keras`) or its weights (`.weights.h5`) atomically.

    Args:
        model: A Keras model.
        path: Destination ending in `.keras` or `.weights.h5`.

    Raises:
        ValueError: `path` has another ending (checked before any work).

    Example:

    >>> import os, tempfile, keras
    >>> model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    >>> path = os.path.join(tempfile.mkdtemp(), "model.weights.h5")
    >>> save_model_atomically(model, path)
    >>> os.path.exists(path)
    True
    """
    path = os.fspath(path)
    if path.endswith(".weights.h5"):
        suffix, save = ".weights.h5", model.save_weights
    elif path.endswith(".keras"):
        suffix, save = ".keras", model.save
    else:
        raise ValueError(
            f"A model file must end in .keras or .weights.h5; received {path!r}."
        )
    with atomic_path(path, suffix=suffix) as temporary:
        save(temporary)


@contextlib.contextmanager
def atomic_directory(path, replace=False):
    """Yields a staging directory that is renamed to `path` on success.

    Args:
        path: The destination directory.
        replace: Whether an existing `path` may be replaced. The old one is
            moved aside first and removed only after the new one is in
            place, so a kill between the two renames loses nothing: the old
            directory is then kept as `.partial-*-old` beside `path`.

    Yields:
        The staging directory, in the destination's parent.

    Raises:
        FileExistsError: `path` exists and `replace` is false (checked
            before the body runs).

    Example:

    >>> import os, tempfile
    >>> destination = os.path.join(tempfile.mkdtemp(), "export", "1")
    >>> with atomic_directory(destination) as staging:
    ...     open(os.path.join(staging, "saved_model.pb"), "w").close()
    >>> os.listdir(destination)
    ['saved_model.pb']
    """
    path = os.path.abspath(os.fspath(path))
    if os.path.exists(path) and not replace:
        raise FileExistsError(f"{path} already exists.")
    staging = tempfile.mkdtemp(
        prefix=PARTIAL_PREFIX, suffix="-" + os.path.basename(path),
        dir=_staging_directory(path),
    )
    try:
        yield staging
        os.chmod(staging, 0o777 & ~_current_umask())
        if os.path.exists(path):
            retired = staging + "-old"
            os.replace(path, retired)
            os.replace(staging, path)
            shutil.rmtree(retired)
        else:
            os.replace(staging, path)
    finally:
        if os.path.exists(staging):
            shutil.rmtree(staging)


def remove_partial_writes(directory):
    """Removes `.partial-*` files and folders a killed writer left behind.

    Args:
        directory: The folder to clean (not recursive); missing is fine.

    Returns:
        The sorted names that were removed.

    Example:

    >>> import os, tempfile
    >>> folder = tempfile.mkdtemp()
    >>> open(os.path.join(folder, ".partial-abc-best.keras"), "w").close()
    >>> remove_partial_writes(folder)
    ['.partial-abc-best.keras']
    """
    if not os.path.isdir(directory):
        return []
    removed = sorted(name for name in os.listdir(directory) if name.startswith(PARTIAL_PREFIX))
    for name in removed:
        full = os.path.join(directory, name)
        if os.path.isdir(full) and not os.path.islink(full):
            shutil.rmtree(full)
        else:
            os.remove(full)
    return removed
