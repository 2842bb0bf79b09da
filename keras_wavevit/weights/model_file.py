"""Loading a saved `.keras` model, with an error that says what is wrong with the file.

`keras.saving.load_model` reports a missing file, a zero-byte file and a
damaged one alike as "File not found"; `load_model_file` tells them apart
before Keras reads anything.
"""

import os
import zipfile
import zlib

import keras


def load_model_file(path, **kwargs):
    """Loads a model saved by Keras, refusing a damaged `.keras` file clearly.

    Args:
        path: The model file (`.keras`; other endings are passed to
            `keras.saving.load_model` as they are).
        **kwargs: Passed to `keras.saving.load_model` (`compile`,
            `custom_objects`, ...).

    Returns:
        The `keras.Model`.

    Raises:
        FileNotFoundError: `path` does not exist.
        ValueError: `path` exists but is not a valid `.keras` file (empty,
            truncated, not a zip archive, a zip archive without a model
            configuration, or damaged inside); the message names the file.

    Example:

    >>> import os, tempfile
    >>> path = os.path.join(tempfile.mkdtemp(), "best.keras")
    >>> with open(path, "wb") as file:
    ...     _ = file.write(b"half a model")
    >>> load_model_file(path)
    Traceback (most recent call last):
    ...
    ValueError: ...best.keras is not a valid .keras file: not a zip archive (truncated, ...
    """
    path = os.fspath(path)
    if not os.path.exists(path):
        raise FileNotFoundError(f"Model file not found: {path}")
    if not path.endswith(".keras") or os.path.isdir(path):
        return keras.saving.load_model(path, **kwargs)
    if not zipfile.is_zipfile(path):
        raise ValueError(
            f"{path} is not a valid .keras file: not a zip archive (truncated, empty, "
            "or another format renamed .keras)."
        )
    with zipfile.ZipFile(path) as archive:
        names = archive.namelist()
    if "config.json" not in names:
        raise ValueError(
            f"{path} is not a valid .keras file: a zip archive without config.json."
        )
    try:
        return keras.saving.load_model(path, **kwargs)
    except (zipfile.BadZipFile, zlib.error, EOFError) as error:
        raise ValueError(f"{path} is a damaged .keras file: {error}") from None
