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
"""

import os
import re
import tempfile

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
_WRAPPER_KEYS = ("state_dict_ema", "state_dict", "model_ema", "model")


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
    (timm-style checkpoints) and strips `module.` prefixes (DataParallel).

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
    return {
        (name[len("module.") :] if name.startswith("module.") else name): value
        for name, value in checkpoint.items()
    }


def _to_numpy(value):
    if hasattr(value, "detach"):  # torch.Tensor
        value = value.detach().cpu()
        if str(value.dtype) == "torch.bfloat16":
            value = value.float()
        value = value.numpy()
    return np.asarray(value)


def read_checkpoint(path):
    """Reads a checkpoint file into a flat dict of numpy arrays.

    Args:
        path: `.pth`/`.pth.tar`/`.pt` (needs `torch`: `pip install
            "keras-wavevit[convert]"`), `.npz` or `.safetensors` (needs
            `safetensors`).

    Returns:
        The unwrapped state dict as numpy arrays.

    Example:

    >>> import numpy as np, tempfile, os
    >>> path = os.path.join(tempfile.mkdtemp(), "w.npz")
    >>> np.savez(path, **{"head.bias": np.zeros(3)})
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
                'pip install "keras-wavevit[convert]"'
            ) from error
        checkpoint = load_file(path)
    elif path.endswith((".pth", ".pth.tar", ".pt", ".tar", ".bin")):
        try:
            import torch
        except ImportError as error:
            raise ImportError(
                "Reading PyTorch checkpoints needs torch: "
                'pip install "keras-wavevit[convert]" (or convert the '
                "checkpoint to .npz/.safetensors elsewhere)."
            ) from error
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    else:
        raise ValueError(
            f"Unsupported checkpoint format: {path} (expected .pth, .pth.tar, "
            ".npz or .safetensors)."
        )
    return {name: _to_numpy(value) for name, value in unwrap_state_dict(checkpoint).items()}


def plan_conversion(model, state_dict, skip_head=False):
    """Matches official entries to the model's variables without changing it.

    Args:
        model: A `keras_wavevit` model.
        state_dict: Flat dict of official names to numpy arrays.
        skip_head: Leave `head`/`aux_head` out (fine-tuning to another
            number of classes).

    Returns:
        A dict with `assignments` (list of `(variable, array, official
        name)`), `missing` (Keras variable paths with no entry), `unexpected`
        (official names with no Keras variable), `mismatched` (`(name,
        official shape, expected shape)`) and `skipped` (names ignored on
        purpose).

    Example:

    >>> import keras_wavevit
    >>> model = keras_wavevit.WaveViTTiny(num_classes=10)
    >>> plan = plan_conversion(model, {})
    >>> len(plan["missing"]) == len(model.weights)
    True
    """
    variables = {variable.path: variable for variable in model.weights}
    is_head_path = lambda path: path.startswith("head/")  # noqa: E731
    plan = dict(assignments=[], missing=[], unexpected=[], mismatched=[], skipped=[])
    used = set()
    for name, array in state_dict.items():
        if _is_skipped(name) or (skip_head and name.startswith(HEAD_PREFIXES)):
            plan["skipped"].append(name)
            continue
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
        if variable is None:
            plan["unexpected"].append(name)
            continue
        converted = to_keras_layout(np.asarray(array), tuple(variable.shape))
        if tuple(converted.shape) != tuple(variable.shape):
            plan["mismatched"].append((name, tuple(np.shape(array)), tuple(variable.shape)))
            continue
        plan["assignments"].append((variable, converted, name))
        used.add(variable.path)
    plan["missing"] = [
        path
        for path in variables
        if path not in used and not (skip_head and is_head_path(path))
    ]
    return plan


def _format_problems(plan):
    lines = []
    if plan["missing"]:
        lines.append(f"missing ({len(plan['missing'])}): Keras weights with no entry:")
        lines += [f"  {path}" for path in plan["missing"]]
    if plan["unexpected"]:
        lines.append(f"unexpected ({len(plan['unexpected'])}): entries with no Keras weight:")
        lines += [f"  {name}" for name in plan["unexpected"]]
    if plan["mismatched"]:
        lines.append(f"mismatched ({len(plan['mismatched'])}): official shape -> expected:")
        lines += [
            f"  {name}: {official} -> Keras {expected}"
            for name, official, expected in plan["mismatched"]
        ]
    return "\n".join(lines)


def load_official_weights(model, checkpoint, strict=True, skip_head=False):
    """Loads official Wave-ViT weights into a `keras_wavevit` model.

    Strict by default: any missing, unexpected or mis-shaped entry raises one
    `ValueError` listing them all, and the model is left untouched. With
    `strict=False` the problems are reported in the returned plan and the
    matching entries are loaded.

    Args:
        model: A model built by `keras_wavevit` (for the released checkpoints:
            `token_label=True` and `num_classes=1000`).
        checkpoint: A path (`.pth`, `.pth.tar`, `.npz`, `.safetensors`) or a
            dict of arrays (wrappers such as `state_dict` and `module.`
            prefixes are unwrapped).
        strict: Raise on any mismatch (default) or load what matches.
        skip_head: Don't load `head`/`aux_head` (fine-tuning to a different
            number of classes); the model keeps its own head weights.

    Returns:
        The conversion plan (see `plan_conversion`).

    Example:

    >>> import keras_wavevit
    >>> model = keras_wavevit.WaveViTSmall(token_label=True)
    >>> # keras_wavevit.load_official_weights(model, "wavevit_s.pth.tar")
    """
    state_dict = (
        read_checkpoint(checkpoint)
        if isinstance(checkpoint, (str, os.PathLike))
        else {name: _to_numpy(value) for name, value in unwrap_state_dict(checkpoint).items()}
    )
    plan = plan_conversion(model, state_dict, skip_head=skip_head)
    problems = _format_problems(plan)
    if problems and strict:
        raise ValueError(
            "The checkpoint does not match the model (nothing was loaded):\n" + problems
        )
    for variable, array, _ in plan["assignments"]:
        variable.assign(array.astype(variable.dtype))
    return plan


def atomic_save(model, path):
    """Saves a model (`.keras`) or its weights (`.weights.h5`) atomically.

    Writes to a temporary file in the same directory, then renames it over
    `path`, so an interrupted write never leaves a partial file there.

    Args:
        model: The Keras model.
        path: Destination ending in `.keras` or `.weights.h5`.

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
        os.replace(temporary, path)
    finally:
        if os.path.exists(temporary):
            os.remove(temporary)
