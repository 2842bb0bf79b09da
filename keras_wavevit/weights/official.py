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

import os
import re
import warnings

import numpy as np

from keras_wavevit.weights.checkpoint import numeric_state_dict, read_checkpoint

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


def _variable_for(name, variables):
    """The model variable an official entry names, or None."""
    module, _, parameter = name.rpartition(".")
    layer_path = keras_layer_path(module)
    if layer_path is None:
        return None
    paths = (f"{layer_path}/{candidate}" for candidate in PARAMETER_TABLE.get(parameter, ()))
    return next((variables[path] for path in paths if path in variables), None)


def _count_nonfinite(array):
    if array.dtype.kind != "f":
        return 0
    return int(array.size - np.count_nonzero(np.isfinite(array)))


def plan_conversion(model, state_dict, skip_head=False):
    """Matches official entries to the model's variables without changing it.

    Args:
        model: A `keras_wavevit` model.
        state_dict: Flat dict of official names to numpy arrays (see
            `keras_wavevit.weights.read_checkpoint`).
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
        `nonfinite`: `(official name, number of NaN/infinite values, size)`
        for entries that fit a variable but hold NaN or infinity (they are
        not assigned);
        `skipped`: official names ignored on purpose (`SKIPPED_PATTERNS`,
        and the heads with `skip_head`).

    Example:

    >>> import numpy as np, keras_wavevit
    >>> model = keras_wavevit.WaveViTTiny(num_classes=10)
    >>> plan = plan_conversion(model, {"head.bias": np.zeros(1000),
    ...                                "norm4.bias": np.full(256, np.nan),
    ...                                "block1.0.attn.dwt.w_ll": np.zeros(4)})
    >>> plan["mismatched"]
    [('head.bias', (1000,), 'head/head/bias', (10,))]
    >>> plan["nonfinite"]
    [('norm4.bias', 256, 256)]
    >>> plan["skipped"]
    ['block1.0.attn.dwt.w_ll']
    >>> len(plan["missing"]) == len(model.weights) - 2
    True
    """
    variables = {variable.path: variable for variable in model.weights}
    head_prefixes = HEAD_PREFIXES
    if not any(path.startswith("post_network_0/") for path in variables):
        head_prefixes += (CLASS_BLOCK_PREFIX,)
    plan = dict(
        assignments=[], missing=[], unexpected=[], mismatched=[], nonfinite=[], skipped=[]
    )
    used = set()
    for name, array in state_dict.items():
        if _is_skipped(name) or (skip_head and name.startswith(head_prefixes)):
            plan["skipped"].append(name)
            continue
        array = np.asarray(array)
        variable = _variable_for(name, variables)
        if variable is None or variable.path in used:
            plan["unexpected"].append((name, tuple(array.shape)))
            continue
        used.add(variable.path)
        expected = tuple(variable.shape)
        converted = to_keras_layout(array, expected)
        if tuple(converted.shape) != expected:
            plan["mismatched"].append(
                (name, tuple(array.shape), variable.path, _official_shape(expected))
            )
        elif _count_nonfinite(array):
            plan["nonfinite"].append((name, _count_nonfinite(array), int(array.size)))
        else:
            plan["assignments"].append((variable, converted, name))
    plan["missing"] = [
        (path, tuple(variable.shape))
        for path, variable in variables.items()
        if path not in used and not (skip_head and path.startswith("head/"))
    ]
    return plan


def format_problems(plan):
    """Lists a plan's missing, unexpected, mis-shaped and non-finite entries.

    Args:
        plan: A dict returned by `plan_conversion`.

    Returns:
        The report, one entry a line (empty when the checkpoint matches the
        model exactly).

    Example:

    >>> print(format_problems(dict(missing=[("head/head/bias", (10,))],
    ...                            unexpected=[], mismatched=[],
    ...                            nonfinite=[("norm4.bias", 2, 96)])))
    missing (1): Keras weights with no checkpoint entry:
      head/head/bias (10,)
    non-finite (1): checkpoint entries holding NaN or infinity:
      norm4.bias (2 of 96 values)
    """
    sections = (
        ("missing", "Keras weights with no checkpoint entry", "  {} {}"),
        ("unexpected", "checkpoint entries with no Keras weight", "  {} {}"),
        (
            "mismatched",
            "checkpoint shape vs the shape the model expects (both in the official layout)",
            "  {} {} -> {} expects {}",
        ),
        ("nonfinite", "checkpoint entries holding NaN or infinity", "  {} ({} of {} values)"),
    )
    lines = []
    for key, title, line in sections:
        if plan[key]:
            label = "non-finite" if key == "nonfinite" else key
            lines.append(f"{label} ({len(plan[key])}): {title}:")
            lines += [line.format(*entry) for entry in plan[key]]
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
    ...                          mismatched=[], nonfinite=[],
    ...                          skipped=["norm1.num_batches_tracked"])))
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

    Strict by default: any missing, unexpected, mis-shaped or non-finite
    (NaN/infinity) entry raises one `CheckpointMismatchError` (a
    `ValueError`) listing them all with their shapes, and the model is left
    untouched. With `strict=False` the problems are reported in a warning
    and in the returned plan, and every matching entry is loaded; entries
    holding NaN or infinity are left out (the model keeps its own values
    there), never loaded. A checkpoint of which no entry matches is refused
    even with `strict=False`: it is not a checkpoint of this model.

    Args:
        model: A model built by `keras_wavevit` (for the released checkpoints:
            `token_label=True` and `num_classes=1000`).
        checkpoint: A path (`.pth`, `.pth.tar`, `.npz`, `.safetensors`; see
            `keras_wavevit.weights.read_checkpoint`) or a dict of arrays
            (numpy or torch, any float dtype including float16); wrappers
            such as `state_dict`, `state_dict_ema`, `model` and `module.`
            prefixes are unwrapped.
        strict: Raise on any problem (default) or load what matches.
        skip_head: Don't load `head`/`aux_head` (fine-tuning to a different
            number of classes); the model keeps its own head weights. Also
            the way to load a backbone (`include_top=False`); see
            `plan_conversion`.

    Returns:
        The conversion plan (see `plan_conversion`; `describe_plan` prints
        it).

    Raises:
        CheckpointMismatchError: With `strict=True`, when the checkpoint does
            not match the model exactly; always when nothing matches.
        ValueError: The checkpoint cannot be read as a state dict of numbers
            (see `read_checkpoint`).

    Example:

    >>> import numpy as np, keras_wavevit
    >>> model = keras_wavevit.WaveViTTiny(num_classes=10)
    >>> keras_wavevit.load_official_weights(
    ...     model, {"fc.weight": np.zeros((10, 512))}, strict=False)
    Traceback (most recent call last):
    ...
    keras_wavevit.weights.official.CheckpointMismatchError: None of the 1 checkpoint entries ...
    >>> model = keras_wavevit.WaveViTSmall(token_label=True)  # doctest: +SKIP
    >>> plan = keras_wavevit.load_official_weights(
    ...     model, "wavevit_s.pth.tar")  # doctest: +SKIP
    >>> finetune = keras_wavevit.WaveViTSmall(
    ...     num_classes=10, token_label=True)  # doctest: +SKIP
    >>> plan = keras_wavevit.load_official_weights(
    ...     finetune, "wavevit_s.pth.tar", skip_head=True)  # doctest: +SKIP
    """
    if isinstance(checkpoint, (str, os.PathLike)):
        state_dict = read_checkpoint(checkpoint)
    else:
        state_dict = numeric_state_dict(checkpoint)
    plan = plan_conversion(model, state_dict, skip_head=skip_head)
    problems = format_problems(plan)
    if not plan["assignments"]:
        raise CheckpointMismatchError(
            f"None of the {len(state_dict)} checkpoint entries matches a weight of the "
            "model, so nothing was loaded (also with strict=False): is it a Wave-ViT "
            "checkpoint of this architecture?\n" + problems,
            plan,
        )
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
