"""Reading checkpoint files into flat dicts of numpy arrays.

Nothing here knows Wave-ViT: this module turns a file (`.pth`/`.pth.tar`,
`.npz`, `.safetensors`) or an in-memory dict into `{name: numpy array}`,
unwrapping training-checkpoint wrappers and DataParallel/`torch.compile`
name prefixes, and refuses with a `ValueError` naming the file and the
problem whatever cannot be a state dict of numbers (an empty, truncated or
foreign file, string or object entries). The Wave-ViT name table that maps
those names onto a model lives in `keras_wavevit.weights.official`.

Example:

>>> import numpy as np, os, tempfile
>>> path = os.path.join(tempfile.mkdtemp(), "weights.npz")
>>> np.savez(path, **{"module.head.bias": np.zeros(2, "float32")})
>>> read_checkpoint(path)
{'head.bias': array([0., 0.], dtype=float32)}
"""

import argparse
import contextlib
import os
import pickle
import zipfile

import numpy as np

# Checked in this order: EMA weights win when a checkpoint holds both (as in
# timm's own loader); the released Wave-ViT checkpoints hold `state_dict` only.
WRAPPER_KEYS = ("state_dict_ema", "state_dict", "model_ema", "model")
# DataParallel / DistributedDataParallel and `torch.compile` name prefixes.
NAME_PREFIXES = ("module.", "_orig_mod.")
TORCH_SUFFIXES = (".pth", ".pth.tar", ".pt", ".tar", ".bin")
# Booleans, integers (e.g. BatchNorm step counters) and floats.
_NUMERIC_KINDS = "biuf"
_INSTALL_TORCH = (
    'pip install "keras-wavevit[convert]" (or convert the checkpoint to '
    ".npz/.safetensors on a machine that has torch)"
)


def unwrap_state_dict(checkpoint):
    """Returns the flat state dict inside a checkpoint dict.

    Unwraps `state_dict_ema`, `state_dict`, `model_ema` and `model` entries
    (timm-style checkpoints, nested to any depth; EMA weights are preferred
    when both are present) and strips `module.` (DataParallel) and
    `_orig_mod.` (`torch.compile`) prefixes.

    Args:
        checkpoint: A dict of arrays, possibly wrapped.

    Returns:
        A dict mapping the names, without prefixes, to the values as given.

    Raises:
        ValueError: `checkpoint` (once unwrapped) is not a dict.

    Example:

    >>> import numpy as np
    >>> unwrap_state_dict({"state_dict": {"module.head.bias": np.zeros(2)}})
    {'head.bias': array([0., 0.])}
    """
    while isinstance(checkpoint, dict):
        wrapper = next((key for key in WRAPPER_KEYS if key in checkpoint), None)
        if wrapper is None or not isinstance(checkpoint[wrapper], dict):
            break
        checkpoint = checkpoint[wrapper]
    if not isinstance(checkpoint, dict):
        raise ValueError(
            f"Expected a state dict (a dict of arrays); received {type(checkpoint).__name__}."
        )
    return {_strip_prefixes(name): value for name, value in checkpoint.items()}


def _strip_prefixes(name):
    stripped = True
    while stripped:
        stripped = False
        for prefix in NAME_PREFIXES:
            if name.startswith(prefix):
                name, stripped = name[len(prefix) :], True
    return name


def _to_numpy(value):
    if hasattr(value, "detach"):  # torch.Tensor
        value = value.detach().cpu()
        if str(value.dtype) == "torch.bfloat16":
            value = value.float()
        value = value.numpy()
    return np.asarray(value)


def numeric_state_dict(checkpoint, source="the checkpoint"):
    """Unwraps a checkpoint and checks that every entry is a numeric array.

    Args:
        checkpoint: A dict of arrays (numpy, torch or anything
            `numpy.asarray` takes), possibly wrapped (see
            `unwrap_state_dict`).
        source: How to name the checkpoint in errors (e.g. its path).

    Returns:
        A dict mapping names to numpy arrays.

    Raises:
        ValueError: The checkpoint holds no entries, or entries that are not
            numbers (strings, Python objects, nested dicts); the message
            names them all with their dtypes.

    Example:

    >>> import numpy as np
    >>> numeric_state_dict({"model": {"norm1.weight": np.ones(2)}})
    {'norm1.weight': array([1., 1.])}
    >>> numeric_state_dict({"norm1.weight": np.array(["a"])}, "w.npz")
    Traceback (most recent call last):
    ...
    ValueError: w.npz holds entries that are not numbers (1): norm1.weight (dtype <U1)
    """
    try:
        state_dict = unwrap_state_dict(checkpoint)
    except ValueError as error:
        raise ValueError(f"{source} is not a state dict: {error}") from None
    if not state_dict:
        raise ValueError(f"{source} holds no entries (an empty state dict).")
    arrays = {name: _to_numpy(value) for name, value in state_dict.items()}
    wrong = [
        f"{name} (dtype {array.dtype})"
        for name, array in arrays.items()
        if array.dtype.kind not in _NUMERIC_KINDS
    ]
    if wrong:
        raise ValueError(
            f"{source} holds entries that are not numbers ({len(wrong)}): {', '.join(wrong)}"
        )
    return arrays


def _read_npz(path):
    if not zipfile.is_zipfile(path):
        raise ValueError(
            f"{path} is not a valid .npz file (not a zip archive: truncated, or "
            "another format renamed .npz)."
        )
    checkpoint = {}
    try:
        with np.load(path, allow_pickle=False) as archive:
            for name in archive.files:
                checkpoint[name] = _read_npz_entry(path, archive, name)
    except (zipfile.BadZipFile, EOFError) as error:
        raise ValueError(f"{path} is a damaged .npz file: {error}") from None
    return checkpoint


def _read_npz_entry(path, archive, name):
    try:
        value = archive[name]
    except ValueError as error:
        if "allow_pickle" in str(error):
            raise ValueError(
                f"{path}: entry {name!r} holds Python objects, not numbers (object "
                "arrays are never loaded: no code runs from a checkpoint)."
            ) from None
        raise ValueError(f"{path}: entry {name!r} is not a readable array: {error}") from None
    if isinstance(value, bytes):  # a member that is not an .npy file
        raise ValueError(
            f"{path}: entry {name!r} is not a NumPy array (a zip archive of other "
            "files renamed .npz?)."
        )
    return value


def _read_safetensors(path):
    try:
        from safetensors import SafetensorError
        from safetensors.numpy import load_file
    except ImportError as error:
        raise ImportError(
            "Reading .safetensors needs the safetensors package: "
            'pip install "keras-wavevit[safetensors]" (or '
            '"keras-wavevit[convert]", which also brings torch).'
        ) from error
    try:
        return load_file(path)
    except SafetensorError as error:
        raise ValueError(f"{path} is not a valid .safetensors file: {error}") from None


def _read_torch(path):
    try:
        import torch
    except ImportError as error:
        raise ImportError(
            f"Reading PyTorch checkpoints (.pth, .pth.tar) needs torch: {_INSTALL_TORCH}."
        ) from error
    # timm-style training checkpoints (the released ones) also pickle the
    # run's argparse.Namespace; allow exactly that next to the tensors.
    safe_globals = getattr(getattr(torch, "serialization", None), "safe_globals", None)
    allow = safe_globals([argparse.Namespace]) if safe_globals else contextlib.nullcontext()
    with allow:
        try:
            return torch.load(path, map_location="cpu", weights_only=True)
        except pickle.UnpicklingError as error:
            raise ValueError(
                f"{path} could not be read safely: it is damaged, or it holds Python "
                "objects besides tensors, which are not loaded without trust. If you "
                "trust the file, load it yourself (torch.load(path, weights_only=False)) "
                f"and pass the dict to load_official_weights. torch said: {error}"
            ) from None
        except (RuntimeError, EOFError) as error:
            raise ValueError(f"{path} is not a readable PyTorch checkpoint: {error}") from None


def read_checkpoint(path):
    """Reads a checkpoint file into a flat dict of numpy arrays.

    PyTorch files are read with `torch.load(..., weights_only=True)` (no
    arbitrary code runs), allowing the `argparse.Namespace` that timm-style
    training checkpoints carry; `.npz` files without pickles.

    Args:
        path: `.pth`/`.pth.tar`/`.pt` (needs `torch`: `pip install
            "keras-wavevit[convert]"`), `.npz` or `.safetensors` (needs
            `safetensors`, in the same extra). A `str` or `os.PathLike`.

    Returns:
        The unwrapped state dict (see `unwrap_state_dict`) as numpy arrays.

    Raises:
        FileNotFoundError: `path` does not exist.
        ImportError: The format needs a package that is not installed; the
            message says which and how to install it.
        ValueError: Unknown file extension, or a file that cannot be a
            state dict of numbers (empty, truncated, another format, string
            or object entries); the message names the file and the problem.

    Example:

    >>> import os, tempfile
    >>> path = os.path.join(tempfile.mkdtemp(), "empty.npz")
    >>> open(path, "wb").close()
    >>> read_checkpoint(path)
    Traceback (most recent call last):
    ...
    ValueError: ...empty.npz is empty (0 bytes): an interrupted download or copy?
    """
    path = os.fspath(path)
    if not os.path.exists(path):
        raise FileNotFoundError(f"Checkpoint not found: {path}")
    readers = {".npz": _read_npz, ".safetensors": _read_safetensors}
    readers.update(dict.fromkeys(TORCH_SUFFIXES, _read_torch))
    reader = next((read for end, read in readers.items() if path.endswith(end)), None)
    if reader is None:
        raise ValueError(
            f"Unsupported checkpoint format: {path} (expected .pth, .pth.tar, "
            ".npz or .safetensors)."
        )
    if os.path.isfile(path) and os.path.getsize(path) == 0:
        raise ValueError(f"{path} is empty (0 bytes): an interrupted download or copy?")
    return numeric_state_dict(reader(path), source=path)
