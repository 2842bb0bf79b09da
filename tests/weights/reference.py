"""The official-model reference shared by the converter tests.

`fixtures/wavevit_tiny_c10.npz` was made by running the official PyTorch code
(YehLi/ImageNetModel `classification/wavevit.py`) on a small configuration
with randomised weights: its dotted entries are the official state dict, the
others are inputs and the official model's logits and stage outputs. The
`*_state_dict_keys.txt` fixtures list every entry of the released S/B/L
checkpoints with its shape.
"""

import ast
import pathlib

import numpy as np

FIXTURES = pathlib.Path(__file__).parent.parent / "fixtures"
TINY_FIXTURE = FIXTURES / "wavevit_tiny_c10.npz"
TINY_CONFIG = dict(
    stem_hidden_dim=8,
    embed_dims=(16, 32, 64, 96),
    num_heads=(1, 2, 4, 6),
    mlp_ratios=(2, 2, 2, 2),
    depths=(1, 1, 1, 1),
    sr_ratios=(4, 2, 1, 1),
    num_classes=10,
    input_shape=(None, None, 3),
)
# Logits of float32 models: the official model and an independent float64
# re-implementation agree to 1.4e-6; this port measured 1.2e-6.
TOLERANCE = 1e-4
NUM_TINY_ENTRIES = 153  # state-dict entries with a Keras weight
NUM_TINY_SKIPPED = 17  # 10 Haar filter buffers + 7 BatchNorm step counters


def load_reference():
    """Every array of the fixture."""
    with np.load(TINY_FIXTURE) as archive:
        return {name: archive[name] for name in archive.files}


def official_entries(reference):
    """The official state dict of the fixture (the names with dots)."""
    return {name: array for name, array in reference.items() if "." in name}


def nhwc(images):
    return np.transpose(images, (0, 2, 3, 1))


def max_error(actual, expected):
    return float(np.max(np.abs(np.asarray(actual) - expected)))


def weights_of(model):
    return [np.array(variable.numpy()) for variable in model.weights]


def variable(model, path):
    return next(weight for weight in model.weights if weight.path == path)


def read_key_list(variant):
    """The zero-filled state dict and parameter count of a released model."""
    path = FIXTURES / f"wavevit_{variant}_state_dict_keys.txt"
    lines = path.read_text().splitlines()
    num_parameters = int(lines[0].rsplit(";", 1)[1].split()[0])
    state_dict = {}
    for line in lines[1:]:
        name, shape, dtype = line.split("\t")
        state_dict[name] = np.zeros(ast.literal_eval(shape), dtype)
    return state_dict, num_parameters


def broken(state_dict, *problems):
    """The state dict with a missing, an unexpected or mis-shaped entries."""
    broken_dict = dict(state_dict)
    if "missing" in problems:
        del broken_dict["block1.0.mlp.fc1.weight"]
    if "unexpected" in problems:
        broken_dict["block9.0.attn.q.weight"] = np.zeros((5, 5), "float32")
    if "mismatched" in problems:
        broken_dict["norm2.weight"] = np.ones(33, "float32")
        # a kernel already in Keras layout is not silently accepted
        broken_dict["patch_embed1.conv.0.weight"] = np.zeros((7, 7, 3, 8), "float32")
    return broken_dict
