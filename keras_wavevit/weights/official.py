"""Official PyTorch Wave-ViT checkpoints -> Keras weights.

The official release (YehLi/ImageNetModel, `classification/wavevit.py`)
names its weights like `block1.0.attn.reduce.0.weight`. Two tables turn such
a name into a Keras variable path of `keras_wavevit.WaveViT`:

* `MODULE_TABLE` maps the official module (everything before the last dot)
  to the Keras layer path;
* `PARAMETER_TABLE` maps the official parameter (the last part) to the Keras
  variable name, chosen by what the Keras layer holds.

Layout changes (`to_keras_layout`): Linear `(out, in)` -> Dense `(in, out)`;
Conv2d `(out, in, kh, kw)` -> Conv2D `(kh, kw, in, out)`; depthwise Conv2d
`(channels, 1, kh, kw)` -> DepthwiseConv2D `(kh, kw, channels, 1)`; BatchNorm
(`weight, bias, running_mean, running_var` -> `gamma, beta, moving_mean,
moving_variance`) and LayerNorm (`weight, bias` -> `gamma, beta`) vectors are
copied as they are.

Official entries with no Keras counterpart (`SKIPPED_PATTERNS`): the fixed
Haar filters (`*.attn.dwt.w_*`, `*.attn.idwt.filters`; `DWT2D`/`IDWT2D` hold
no weights) and BatchNorm `num_batches_tracked`.

Example:

>>> import keras_wavevit
>>> model = keras_wavevit.WaveViTSmall(token_label=True)  # doctest: +SKIP
>>> plan = keras_wavevit.load_official_weights(
...     model, "wavevit_s.pth.tar")  # doctest: +SKIP
>>> print(describe_plan(plan))  # doctest: +SKIP
"""

import argparse
import contextlib
import os
import pickle
import re
import tempfile
import warnings

import numpy as np

MODULE_TABLE = (
    # (official module regex, Keras layer path)
    (r"patch_embed1\.conv\.0", "patch_embed1/conv0"),
    (r"patch_embed1\.conv\.1", "patch_embed1/bn0"),
    (r"patch_embed1\.conv\.3", "patch_embed1/conv1"),
    (r"patch_embed1\.conv\.4", "patch_embed1/bn1"),
    (r"patch_embed1\.conv\.6", "patch_embed1/conv2"),
    (r"patch_embed1\.conv\.7", "patch_embed1/bn2"),
    (r"patch_embed(\d)\.(proj|norm)", r"patch_embed\1/\2"),
    (r"block(\d)\.(\d+)\.(norm1|norm2)", r"block\1_\2/\3"),
    (r"block(\d)\.(\d+)\.attn\.reduce\.0", r"block\1_\2/attn/reduce_conv"),
    (r"block(\d)\.(\d+)\.attn\.reduce\.1", r"block\1_\2/attn/reduce_bn"),
    (r"block(\d)\.(\d+)\.attn\.filter\.0", r"block\1_\2/attn/filter_conv"),
    (r"block(\d)\.(\d+)\.attn\.filter\.1", r"block\1_\2/attn/filter_bn"),
    (r"block(\d)\.(\d+)\.attn\.kv\.0", r"block\1_\2/attn/kv_norm"),
    (r"block(\d)\.(\d+)\.attn\.kv\.1", r"block\1_\2/attn/kv"),
    (r"block(\d)\.(\d+)\.attn\.(q|kv|kv_embed|proj)", r"block\1_\2/attn/\3"),
    (r"block(\d)\.(\d+)\.mlp\.(fc1|fc2)", r"block\1_\2/mlp/\3"),
    (r"block(\d)\.(\d+)\.mlp\.dwconv\.dwconv", r"block\1_\2/mlp/dwconv"),
    (r"norm(\d)", r"norm\1"),
    (r"post_network\.0\.(norm1|norm2)", r"post_network_0/\1"),
    (r"post_network\.0\.attn\.(q|kv|proj)", r"post_network_0/attn/\1"),
    (r"post_network\.0\.mlp\.(fc1|fc2)", r"post_network_0/\1"),
    (r"head", "head/head"),
    (r"aux_head", "head/aux_head"),
)

PARAMETER_TABLE = {
    # official parameter: Keras variable names it may become, by layer kind
    "weight": ("kernel", "gamma"),
    "bias": ("bias", "beta"),
    "running_mean": ("moving_mean",),
    "running_var": ("moving_variance",),
}

SKIPPED_PATTERNS = (
    r".*\.attn\.dwt\.w_(ll|lh|hl|hh)",
    r".*\.attn\.idwt\.filters",
    r".*\.num_batches_tracked",
)

HEAD_PREFIXES = ("head.", "aux_head.")
# The class-attention block feeds only the classifier: a backbone without it
# (`include_top=False`, `pooling=None` or `"avg"`) leaves it out with the head.
CLASS_BLOCK_PREFIX = "post_network."
# Checked in this order: EMA weights win when a checkpoint holds both (as in
# timm's own loader); the released Wave-ViT checkpoints hold `state_dict` only.
_WRAPPER_KEYS = ("state_dict_ema", "state_dict", "model_ema", "model")
# DataParallel / DistributedDataParallel and `torch.compile` name prefixes.
_NAME_PREFIXES = ("module.", "_orig_mod.")


class CheckpointMismatchError(ValueError):
    """A checkpoint does not match the model; nothing was loaded.

    The message lists every missing, unexpected and mis-shaped entry;
    `plan` holds the same lists (see `plan_conversion`).

    Args:
        message: The full report.
        plan: The conversion plan that failed.

    Example:

    >>> error = CheckpointMismatchError("missing (1): ...", plan={})
    >>> isinstance(error, ValueError)
    True
    """

    def __init__(self, message, plan):
        super().__init__(message)
        self.plan = plan


def _is_skipped(name):
    return any(re.fullmatch(pattern, name) for pattern in SKIPPED_PATTERNS)


def keras_layer_path(official_module):
    """Keras layer path of an official module name, or None if unknown.

    Args:
        official_module: e.g. `"block1.0.attn.reduce.0"`.

    Returns:
        e.g. `"block1_0/attn/reduce_conv"`.

    Example:

    >>> keras_layer_path("block2.1.mlp.dwconv.dwconv")
    'block2_1/mlp/dwconv'
    """
    for pattern, replacement in MODULE_TABLE:
        if re.fullmatch(pattern, official_module):
            return re.sub(pattern, replacement, official_module)
    return None


def to_keras_layout(array, keras_shape):
    """Converts an official weight array to the layout of a Keras variable.

    Args:
        array: The PyTorch-layout array.
        keras_shape: Shape of the Keras variable it goes to; it tells a
            depthwise kernel (Keras `(kh, kw, channels, 1)`, official
            `(channels, 1, kh, kw)`) from a full one.

    Returns:
        The array in Keras layout.

    Example:

    >>> import numpy as np
    >>> to_keras_layout(np.zeros((8, 3, 7, 7)), (7, 7, 3, 8)).shape
    (7, 7, 3, 8)
    >>> to_keras_layout(np.zeros((32, 1, 3, 3)), (3, 3, 32, 1)).shape
    (3, 3, 32, 1)
    """
    if array.ndim == 4:
        is_depthwise = array.shape[1] == 1 and keras_shape[-1] == 1
        return np.transpose(array, (2, 3, 0, 1) if is_depthwise else (2, 3, 1, 0))
    if array.ndim == 2:
        return np.transpose(array)
    return array


def unwrap_state_dict(checkpoint):
    """Returns the flat state dict inside a checkpoint dict.

    Unwraps `state_dict_ema`, `state_dict`, `model_ema` and `model` entries
    (timm-style checkpoints, nested to any depth; EMA weights are preferred
    when both are present) and strips `module.` (DataParallel) and
    `_orig_mod.` (`torch.compile`) prefixes.

    Args:
        checkpoint: A dict of arrays, possibly wrapped.

    Returns:
        A dict mapping official names to arrays.

    Example:

    >>> import numpy as np
    >>> unwrap_state_dict({"state_dict": {"module.head.bias": np.zeros(2)}})
    {'head.bias': array([0., 0.])}
    """
    while isinstance(checkpoint, dict):
        wrapper = next((key for key in _WRAPPER_KEYS if key in checkpoint), None)
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
        for prefix in _NAME_PREFIXES:
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


def _load_torch_checkpoint(path):
    try:
        import torch
    except ImportError as error:
        raise ImportError(
            "Reading PyTorch checkpoints (.pth, .pth.tar) needs torch: "
            'pip install "keras-wavevit[convert]" (or convert the checkpoint '
            "to .npz/.safetensors on a machine that has torch)."
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
                f"{path} holds Python objects besides tensors, which are not "
                "loaded without trust. If you trust the file, load it yourself "
                "(torch.load(path, weights_only=False)) and pass the dict to "
                f"load_official_weights. torch said: {error}"
            ) from error


def read_checkpoint(path):
    """Reads a checkpoint file into a flat dict of numpy arrays.

    PyTorch files are read with `torch.load(..., weights_only=True)` (no
    arbitrary code runs), allowing the `argparse.Namespace` that timm-style
    training checkpoints carry.

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
        ValueError: Unknown file extension.

    Example:

    >>> import numpy as np, tempfile, os
    >>> path = os.path.join(tempfile.mkdtemp(), "w.npz")
    >>> np.savez(path, **{"module.head.bias": np.zeros(3)})
    >>> sorted(read_checkpoint(path))
    ['head.bias']
    """
    path = os.fspath(path)
    if not os.path.exists(path):
        raise FileNotFoundError(f"Checkpoint not found: {path}")
    if path.endswith(".npz"):
        with np.load(path, allow_pickle=False) as archive:
            checkpoint = {name: archive[name] for name in archive.files}
    elif path.endswith(".safetensors"):
        try:
            from safetensors.numpy import load_file
        except ImportError as error:
            raise ImportError(
                "Reading .safetensors needs the safetensors package: "
                'pip install "keras-wavevit[safetensors]" (or '
                '"keras-wavevit[convert]", which also brings torch).'
            ) from error
        checkpoint = load_file(path)
    elif path.endswith((".pth", ".pth.tar", ".pt", ".tar", ".bin")):
        checkpoint = _load_torch_checkpoint(path)
    else:
        raise ValueError(
            f"Unsupported checkpoint format: {path} (expected .pth, .pth.tar, "
            ".npz or .safetensors)."
        )
    return {name: _to_numpy(value) for name, value in unwrap_state_dict(checkpoint).items()}


def _official_shape(keras_shape):
    """The PyTorch-layout shape that becomes a Keras variable of `keras_shape`."""
    keras_shape = tuple(keras_shape)
    if len(keras_shape) == 4:
        kh, kw, channels_in, channels_out = keras_shape
        if channels_out == 1:  # depthwise: (kh, kw, C, 1) <- (C, 1, kh, kw)
            return (channels_in, 1, kh, kw)
        return (channels_out, channels_in, kh, kw)
    if len(keras_shape) == 2:
        return keras_shape[::-1]
    return keras_shape


def plan_conversion(model, state_dict, skip_head=False):
    """Matches official entries to the model's variables without changing it.

    Args:
        model: A `keras_wavevit` model.
        state_dict: Flat dict of official names to numpy arrays (see
            `unwrap_state_dict`).
        skip_head: Leave `head`/`aux_head` out (fine-tuning to another
            number of classes): their entries are skipped and the model's
            own head weights are not reported missing. For a backbone
            without the class-attention block (`include_top=False`,
            `pooling=None` or `"avg"`) its `post_network.*` entries are
            skipped too.

    Returns:
        A dict with
        `assignments`: list of `(variable, array in Keras layout, official
        name)`;
        `missing`: `(Keras variable path, shape)` with no entry;
        `unexpected`: `(official name, shape)` with no Keras variable;
        `mismatched`: `(official name, official shape, Keras variable path,
        shape the model expects in the official layout)`;
        `skipped`: official names ignored on purpose (`SKIPPED_PATTERNS`,
        and the heads with `skip_head`).

    Example:

    >>> import numpy as np, keras_wavevit
    >>> model = keras_wavevit.WaveViTTiny(num_classes=10)
    >>> plan = plan_conversion(model, {"head.bias": np.zeros(1000),
    ...                                "block1.0.attn.dwt.w_ll": np.zeros(4)})
    >>> plan["mismatched"]
    [('head.bias', (1000,), 'head/head/bias', (10,))]
    >>> plan["skipped"]
    ['block1.0.attn.dwt.w_ll']
    >>> len(plan["missing"]) == len(model.weights) - 1
    True
    """
    variables = {variable.path: variable for variable in model.weights}
    head_prefixes = HEAD_PREFIXES
    if not any(path.startswith("post_network_0/") for path in variables):
        head_prefixes += (CLASS_BLOCK_PREFIX,)
    plan = dict(assignments=[], missing=[], unexpected=[], mismatched=[], skipped=[])
    used = set()
    for name, array in state_dict.items():
        if _is_skipped(name) or (skip_head and name.startswith(head_prefixes)):
            plan["skipped"].append(name)
            continue
        array = np.asarray(array)
        module, _, parameter = name.rpartition(".")
        layer_path = keras_layer_path(module)
        candidates = PARAMETER_TABLE.get(parameter, ())
        variable = next(
            (
                variables[f"{layer_path}/{candidate}"]
                for candidate in candidates
                if layer_path is not None and f"{layer_path}/{candidate}" in variables
            ),
            None,
        )
        if variable is None or variable.path in used:
            plan["unexpected"].append((name, tuple(array.shape)))
            continue
        expected = tuple(variable.shape)
        converted = to_keras_layout(array, expected)
        if tuple(converted.shape) != expected:
            plan["mismatched"].append(
                (name, tuple(array.shape), variable.path, _official_shape(expected))
            )
            used.add(variable.path)
            continue
        plan["assignments"].append((variable, converted, name))
        used.add(variable.path)
    plan["missing"] = [
        (path, tuple(variable.shape))
        for path, variable in variables.items()
        if path not in used and not (skip_head and path.startswith("head/"))
    ]
    return plan


def format_problems(plan):
    """Lists a plan's missing, unexpected and mis-shaped entries, one a line.

    Args:
        plan: A dict returned by `plan_conversion`.

    Returns:
        The report (empty when the checkpoint matches the model exactly).

    Example:

    >>> print(format_problems(dict(missing=[("head/head/bias", (10,))],
    ...                            unexpected=[], mismatched=[])))
    missing (1): Keras weights with no checkpoint entry:
      head/head/bias (10,)
    """
    lines = []
    if plan["missing"]:
        lines.append(f"missing ({len(plan['missing'])}): Keras weights with no checkpoint entry:")
        lines += [f"  {path} {shape}" for path, shape in plan["missing"]]
    if plan["unexpected"]:
        lines.append(
            f"unexpected ({len(plan['unexpected'])}): checkpoint entries with no Keras weight:"
        )
        lines += [f"  {name} {shape}" for name, shape in plan["unexpected"]]
    if plan["mismatched"]:
        lines.append(
            f"mismatched ({len(plan['mismatched'])}): checkpoint shape vs the shape the "
            "model expects (both in the official layout):"
        )
        lines += [
            f"  {name} {official} -> {path} expects {expected}"
            for name, official, path, expected in plan["mismatched"]
        ]
    return "\n".join(lines)


def _skip_reason(name):
    if name.endswith(".num_batches_tracked"):
        return "BatchNorm step counters (not used at inference)"
    if name.startswith(HEAD_PREFIXES + (CLASS_BLOCK_PREFIX,)):
        return "classifier (skip_head)"
    return "fixed Haar filters (DWT2D/IDWT2D compute them, no weights)"


def describe_plan(plan):
    """Summarises a conversion plan: what was mapped, skipped and wrong.

    Args:
        plan: A dict returned by `plan_conversion` or
            `load_official_weights`.

    Returns:
        A multi-line report.

    Example:

    >>> print(describe_plan(dict(assignments=[], missing=[], unexpected=[],
    ...                          mismatched=[], skipped=["norm1.num_batches_tracked"])))
    mapped 0 checkpoint entries (0 values) onto Keras weights
    skipped 1 entry without a Keras counterpart:
      BatchNorm step counters (not used at inference) (1): norm1.num_batches_tracked
    """
    values = sum(int(np.size(array)) for _, array, _ in plan["assignments"])
    lines = [
        f"mapped {len(plan['assignments'])} checkpoint entries ({values:,} values) "
        "onto Keras weights"
    ]
    if plan["skipped"]:
        count = len(plan["skipped"])
        lines.append(
            f"skipped {count} entr{'y' if count == 1 else 'ies'} without a Keras counterpart:"
        )
        groups = {}
        for name in plan["skipped"]:
            groups.setdefault(_skip_reason(name), []).append(name)
        lines += [
            f"  {reason} ({len(names)}): {', '.join(names)}" for reason, names in groups.items()
        ]
    problems = format_problems(plan)
    if problems:
        lines.append(problems)
    return "\n".join(lines)


def load_official_weights(model, checkpoint, strict=True, skip_head=False):
    """Loads official Wave-ViT weights into a `keras_wavevit` model.

    Strict by default: any missing, unexpected or mis-shaped entry raises one
    `CheckpointMismatchError` (a `ValueError`) listing them all with their
    shapes, and the model is left untouched. With `strict=False` the
    problems are reported in a warning and in the returned plan, and every
    matching entry is loaded.

    Args:
        model: A model built by `keras_wavevit` (for the released checkpoints:
            `token_label=True` and `num_classes=1000`).
        checkpoint: A path (`.pth`, `.pth.tar`, `.npz`, `.safetensors`) or a
            dict of arrays (numpy or torch, any float dtype including
            float16); wrappers such as `state_dict`, `state_dict_ema`, `model`
            and `module.` prefixes are unwrapped.
        strict: Raise on any mismatch (default) or load what matches.
        skip_head: Don't load `head`/`aux_head` (fine-tuning to a different
            number of classes); the model keeps its own head weights. Also
            the way to load a backbone (`include_top=False`); see
            `plan_conversion`.

    Returns:
        The conversion plan (see `plan_conversion`; `describe_plan` prints
        it).

    Raises:
        CheckpointMismatchError: With `strict=True`, when the checkpoint does
            not match the model exactly.

    Example:

    >>> import keras_wavevit
    >>> model = keras_wavevit.WaveViTSmall(token_label=True)  # doctest: +SKIP
    >>> plan = keras_wavevit.load_official_weights(
    ...     model, "wavevit_s.pth.tar")  # doctest: +SKIP
    >>> finetune = keras_wavevit.WaveViTSmall(
    ...     num_classes=10, token_label=True)  # doctest: +SKIP
    >>> plan = keras_wavevit.load_official_weights(
    ...     finetune, "wavevit_s.pth.tar", skip_head=True)  # doctest: +SKIP
    """
    state_dict = (
        read_checkpoint(checkpoint)
        if isinstance(checkpoint, (str, os.PathLike))
        else {name: _to_numpy(value) for name, value in unwrap_state_dict(checkpoint).items()}
    )
    plan = plan_conversion(model, state_dict, skip_head=skip_head)
    problems = format_problems(plan)
    if problems and strict:
        raise CheckpointMismatchError(
            "The checkpoint does not match the model (nothing was loaded; "
            "strict=False loads what matches, skip_head=True leaves the "
            "classifier out):\n" + problems,
            plan,
        )
    if problems:
        warnings.warn(
            f"Loaded {len(plan['assignments'])} checkpoint entries; left out:\n{problems}",
            stacklevel=2,
        )
    for variable, array, _ in plan["assignments"]:
        variable.assign(array.astype(variable.dtype))
    return plan


def _current_umask():
    umask = os.umask(0)
    os.umask(umask)
    return umask


def atomic_save(model, path):
    """Saves a model (`.keras`) or its weights (`.weights.h5`) atomically.

    Writes to a temporary file in the same directory, then renames it over
    `path` (an atomic `os.replace`), so an interrupted or failed write never
    leaves a partial file under `path` nor clobbers an existing one, and the
    temporary file is removed.

    Args:
        model: The Keras model.
        path: Destination ending in `.keras` or `.weights.h5`.

    Raises:
        ValueError: `path` has another extension.

    Example:

    >>> import keras_wavevit, tempfile, os
    >>> model = keras_wavevit.WaveViTTiny(num_classes=10)
    >>> atomic_save(model, os.path.join(tempfile.mkdtemp(), "tiny.weights.h5"))
    """
    path = os.fspath(path)
    if path.endswith(".weights.h5"):
        suffix, save = ".weights.h5", model.save_weights
    elif path.endswith(".keras"):
        suffix, save = ".keras", model.save
    else:
        raise ValueError(f"Output must end in .keras or .weights.h5; received {path}.")
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    handle, temporary = tempfile.mkstemp(suffix=suffix, prefix=".partial-", dir=directory)
    os.close(handle)
    try:
        save(temporary)
        # mkstemp creates the file private (0600); give it the usual mode.
        os.chmod(temporary, 0o666 & ~_current_umask())
        os.replace(temporary, path)
    finally:
        if os.path.exists(temporary):
            os.remove(temporary)
