"""Tests of the official-weight converter (`keras_wavevit.weights.official`).

The parity tests use `fixtures/wavevit_tiny_c10.npz`, made by running the
official PyTorch code (YehLi/ImageNetModel `classification/wavevit.py`) on a
small configuration with randomised weights: the converted Keras model must
reproduce its logits and every stage's output. The `*_state_dict_keys.txt`
fixtures list every entry of the released S/B/L checkpoints with its shape.
"""

import argparse
import ast
import contextlib
import json
import os
import pathlib
import pickle
import sys
import types

import keras
import numpy as np
import pytest

import keras_wavevit
from keras_wavevit import cli
from keras_wavevit.weights import official as convert

FIXTURES = pathlib.Path(__file__).parent / "fixtures"
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


@pytest.fixture(scope="module")
def reference():
    with np.load(TINY_FIXTURE) as archive:
        return {name: archive[name] for name in archive.files}


@pytest.fixture(scope="module")
def state_dict(reference):
    """The official entries of the fixture (the names with dots)."""
    return {name: array for name, array in reference.items() if "." in name}


@pytest.fixture(scope="module")
def token_model(state_dict):
    """The fixture model with the official weights (token_label=True)."""
    model = keras_wavevit.WaveViT(**TINY_CONFIG, token_label=True)
    plan = keras_wavevit.load_official_weights(model, state_dict)
    assert len(plan["assignments"]) == NUM_TINY_ENTRIES == len(model.weights)
    return model


@pytest.fixture(scope="module")
def cls_model(state_dict):
    """token_label=False: the released weights minus the auxiliary head."""
    model = keras_wavevit.WaveViT(**TINY_CONFIG, token_label=False)
    with pytest.warns(UserWarning, match="unexpected"):
        plan = keras_wavevit.load_official_weights(model, state_dict, strict=False)
    assert plan["unexpected"] == [("aux_head.weight", (10, 96)), ("aux_head.bias", (10,))]
    assert plan["missing"] == [] and plan["mismatched"] == []
    return model


@pytest.fixture(scope="module")
def _blank_tiny():
    model = keras_wavevit.WaveViT(**TINY_CONFIG, token_label=True)
    return model, weights_of(model)


@pytest.fixture
def tiny_model(_blank_tiny):
    """The fixture architecture with fresh random weights (reset per test)."""
    model, initial = _blank_tiny
    model.set_weights(initial)
    return model


# --- parity with the official model -------------------------------------------------


@pytest.mark.parametrize("size", [224, 64])
def test_logits_match_official_model(token_model, reference, size):
    logits = token_model(nhwc(reference[f"input_{size}"]), training=False)
    error = max_error(logits, reference[f"logits_{size}"])
    assert error <= TOLERANCE, f"max abs error {error:.2e} at {size}x{size}"


@pytest.mark.parametrize("size", [224, 64])
def test_class_token_logits_match_without_token_label(cls_model, reference, size):
    logits = cls_model(nhwc(reference[f"input_{size}"]), training=False)
    error = max_error(logits, reference[f"cls_logits_{size}"])
    assert error <= TOLERANCE, f"max abs error {error:.2e} at {size}x{size}"


@pytest.mark.parametrize("size", [224, 64])
def test_every_stage_and_the_aux_head_match(token_model, reference, size):
    features = keras.Model(
        token_model.input,
        [token_model.get_layer(f"norm{stage}").output for stage in (1, 2, 3, 4)],
    )
    outputs = [np.asarray(x) for x in features(nhwc(reference[f"input_{size}"]))]
    for stage, output in enumerate(outputs, start=1):
        expected = reference[f"stage{stage}_{size}"]  # (B, H*W, C); stage 4: cls first
        tokens = output.reshape(expected.shape)
        error = max_error(tokens, expected)
        assert error <= TOLERANCE, f"stage {stage} at {size}: max abs error {error:.2e}"
    aux_head = token_model.get_layer("head").aux_head
    aux_logits = aux_head(outputs[3][:, 1:])
    assert max_error(aux_logits, reference[f"aux_logits_{size}"]) <= TOLERANCE


def test_layouts_are_converted_as_documented(token_model, state_dict):
    def keras_value(path):
        return variable(token_model, path).numpy()

    # Linear (out, in) -> Dense (in, out)
    np.testing.assert_array_equal(keras_value("head/head/kernel"), state_dict["head.weight"].T)
    # Conv2d (O, I, kh, kw) -> (kh, kw, I, O)
    np.testing.assert_array_equal(
        keras_value("patch_embed1/conv0/kernel"),
        state_dict["patch_embed1.conv.0.weight"].transpose(2, 3, 1, 0),
    )
    # depthwise (C, 1, kh, kw) -> (kh, kw, C, 1)
    np.testing.assert_array_equal(
        keras_value("block1_0/mlp/dwconv/kernel"),
        state_dict["block1.0.mlp.dwconv.dwconv.weight"].transpose(2, 3, 0, 1),
    )
    # BatchNorm running statistics and LayerNorm affine as they are
    np.testing.assert_array_equal(
        keras_value("block1_0/attn/reduce_bn/moving_variance"),
        state_dict["block1.0.attn.reduce.1.running_var"],
    )
    np.testing.assert_array_equal(
        keras_value("block1_0/attn/kv_norm/gamma"), state_dict["block1.0.attn.kv.0.weight"]
    )


# --- full-size checkpoints ----------------------------------------------------------


@pytest.mark.parametrize(
    "variant, builder",
    [
        ("b", keras_wavevit.WaveViTBase),
        pytest.param("l", keras_wavevit.WaveViTLarge, marks=pytest.mark.slow),
    ],
    ids=["base", "large"],
)
def test_released_key_lists_map_exactly(variant, builder):
    """(Small goes through the CLI in `test_cli_converts_the_small_key_list`.)"""
    official, num_parameters = read_key_list(variant)
    model = builder(token_label=True, input_shape=(None, None, 3))
    plan = keras_wavevit.load_official_weights(model, official)
    assert len(plan["assignments"]) == len(model.weights)
    assert all(
        name.endswith(".num_batches_tracked") or ".dwt." in name or ".idwt." in name
        for name in plan["skipped"]
    )
    assert len(plan["assignments"]) + len(plan["skipped"]) == len(official)
    assert sum(int(np.prod(w.shape)) for w in model.trainable_weights) == num_parameters
    del model, plan, official
    keras.backend.clear_session()


# --- checkpoint wrappers and dtypes -------------------------------------------------


WRAPPERS = {
    "state_dict": lambda sd: {"state_dict": sd, "epoch": 299, "arch": "wavevit_s"},
    "state_dict_ema": lambda sd: {
        "state_dict_ema": sd,
        "state_dict": {name: np.zeros_like(a) for name, a in sd.items()},
    },
    "model": lambda sd: {"model": sd, "optimizer": {"lr": 1e-3}},
    "module_prefix": lambda sd: {f"module.{name}": a for name, a in sd.items()},
    "nested": lambda sd: {"model": {"state_dict": {f"module.{n}": a for n, a in sd.items()}}},
    "compiled": lambda sd: {f"_orig_mod.module.{name}": a for name, a in sd.items()},
}


@pytest.mark.parametrize("wrapper", sorted(WRAPPERS))
def test_unwrap_state_dict(state_dict, wrapper):
    unwrapped = convert.unwrap_state_dict(WRAPPERS[wrapper](state_dict))
    assert sorted(unwrapped) == sorted(state_dict)
    assert all(unwrapped[name] is state_dict[name] for name in state_dict)


def test_unwrap_rejects_what_is_not_a_dict():
    with pytest.raises(ValueError, match="Expected a state dict .* received list"):
        convert.unwrap_state_dict([np.zeros(3)])


def test_wrapped_checkpoint_loads_with_parity(tiny_model, state_dict, reference):
    keras_wavevit.load_official_weights(tiny_model, WRAPPERS["nested"](state_dict))
    logits = tiny_model(nhwc(reference["input_64"]), training=False)
    assert max_error(logits, reference["logits_64"]) <= TOLERANCE


def test_float16_entries_are_accepted(tiny_model, state_dict):
    half = {
        name: a.astype(np.float16) if a.dtype == np.float32 else a
        for name, a in state_dict.items()
    }
    keras_wavevit.load_official_weights(tiny_model, half)
    kernel = variable(tiny_model, "block3_0/attn/q/kernel")
    assert kernel.dtype == "float32"
    np.testing.assert_array_equal(
        kernel.numpy(), half["block3.0.attn.q.weight"].T.astype(np.float32)
    )
    assert not np.array_equal(kernel.numpy(), state_dict["block3.0.attn.q.weight"].T)


# --- strict and non-strict loading --------------------------------------------------


def broken(state_dict, *problems):
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


EXPECTED_LINES = {
    "missing": ["missing (1): ", "  block1_0/mlp/fc1/kernel (16, 32)"],
    "unexpected": ["unexpected (1): ", "  block9.0.attn.q.weight (5, 5)"],
    "mismatched": [
        "mismatched (2): ",
        "  patch_embed1.conv.0.weight (7, 7, 3, 8)"
        " -> patch_embed1/conv0/kernel expects (8, 3, 7, 7)",
        "  norm2.weight (33,) -> norm2/gamma expects (32,)",
    ],
}


@pytest.mark.parametrize(
    "problems",
    [("missing",), ("unexpected",), ("mismatched",), ("missing", "unexpected", "mismatched")],
    ids=["missing", "unexpected", "mismatched", "all"],
)
def test_strict_error_lists_every_problem_and_loads_nothing(tiny_model, state_dict, problems):
    before = weights_of(tiny_model)
    with pytest.raises(convert.CheckpointMismatchError) as info:
        keras_wavevit.load_official_weights(tiny_model, broken(state_dict, *problems))
    message = str(info.value)
    assert message.startswith("The checkpoint does not match the model (nothing was loaded")
    for kind, lines in EXPECTED_LINES.items():
        for line in lines:
            assert (line in message) == (kind in problems), (line, message)
    assert isinstance(info.value, ValueError)
    after = weights_of(tiny_model)
    assert all(np.array_equal(a, b) for a, b in zip(before, after))


def test_non_strict_reports_and_loads_the_rest(tiny_model, state_dict):
    before = {w.path: w.numpy() for w in tiny_model.weights}
    faulty = broken(state_dict, "missing", "unexpected", "mismatched")
    with pytest.warns(UserWarning) as record:
        plan = keras_wavevit.load_official_weights(tiny_model, faulty, strict=False)
    message = str(record[0].message)
    assert message.startswith(f"Loaded {NUM_TINY_ENTRIES - 3} checkpoint entries; left out:")
    assert all(line in message for lines in EXPECTED_LINES.values() for line in lines)
    assert plan["missing"] == [("block1_0/mlp/fc1/kernel", (16, 32))]
    assert plan["unexpected"] == [("block9.0.attn.q.weight", (5, 5))]
    assert [entry[0] for entry in plan["mismatched"]] == [
        "patch_embed1.conv.0.weight",
        "norm2.weight",
    ]
    for path in ("block1_0/mlp/fc1/kernel", "norm2/gamma", "patch_embed1/conv0/kernel"):
        np.testing.assert_array_equal(variable(tiny_model, path).numpy(), before[path])
    np.testing.assert_array_equal(variable(tiny_model, "norm3/gamma"), state_dict["norm3.weight"])
    np.testing.assert_array_equal(
        variable(tiny_model, "block1_0/mlp/fc2/kernel"), state_dict["block1.0.mlp.fc2.weight"].T
    )


def test_exact_checkpoint_loads_without_warning(tiny_model, state_dict, recwarn):
    plan = keras_wavevit.load_official_weights(tiny_model, state_dict, strict=False)
    assert not [w for w in recwarn if issubclass(w.category, UserWarning)]
    assert len(plan["skipped"]) == NUM_TINY_SKIPPED


def thousand_class(state_dict):
    """The fixture with 1000-class heads, like the released checkpoints."""
    bigger = dict(state_dict)
    for name in ("head.weight", "head.bias", "aux_head.weight", "aux_head.bias"):
        bigger[name] = np.resize(state_dict[name], (1000,) + state_dict[name].shape[1:])
    return bigger


def test_thousand_class_head_into_ten_classes_needs_skip_head(tiny_model, state_dict):
    before = weights_of(tiny_model)
    with pytest.raises(convert.CheckpointMismatchError) as info:
        keras_wavevit.load_official_weights(tiny_model, thousand_class(state_dict))
    message = str(info.value)
    assert "mismatched (4): " in message
    assert "  head.weight (1000, 96) -> head/head/kernel expects (10, 96)" in message
    assert "  aux_head.bias (1000,) -> head/aux_head/bias expects (10,)" in message
    assert "skip_head=True" in message
    assert all(np.array_equal(a, b) for a, b in zip(before, weights_of(tiny_model)))


def test_skip_head_loads_everything_but_the_heads(tiny_model, state_dict):
    heads = {w.path: w.numpy() for w in tiny_model.weights if w.path.startswith("head/")}
    assert len(heads) == 4
    plan = keras_wavevit.load_official_weights(
        tiny_model, thousand_class(state_dict), skip_head=True
    )
    head_entries = ["aux_head.bias", "aux_head.weight", "head.bias", "head.weight"]
    assert sorted(set(plan["skipped"]) & set(head_entries)) == head_entries
    assert len(plan["assignments"]) == NUM_TINY_ENTRIES - 4
    for path, value in heads.items():
        np.testing.assert_array_equal(variable(tiny_model, path).numpy(), value)
    for weight, array, name in plan["assignments"]:
        np.testing.assert_array_equal(weight.numpy(), array, err_msg=name)
    np.testing.assert_array_equal(
        variable(tiny_model, "post_network_0/fc1/kernel"),
        state_dict["post_network.0.mlp.fc1.weight"].T,
    )


@pytest.mark.parametrize("pooling", [None, "cls"])
def test_backbone_loads_with_skip_head_and_matches_the_stages(state_dict, reference, pooling):
    backbone = keras_wavevit.WaveViT(
        **{**TINY_CONFIG, "num_classes": 1000}, include_top=False, pooling=pooling
    )
    num_class_block = 0 if pooling == "cls" else 14  # post_network.0.* entries
    with pytest.raises(convert.CheckpointMismatchError) as info:
        keras_wavevit.load_official_weights(backbone, state_dict)
    assert f"unexpected ({4 + num_class_block}): " in str(info.value)
    plan = keras_wavevit.load_official_weights(backbone, state_dict, skip_head=True)
    skipped_class_block = [name for name in plan["skipped"] if name.startswith("post_network.")]
    assert len(skipped_class_block) == num_class_block
    assert len(plan["assignments"]) == len(backbone.weights)
    outputs = backbone(nhwc(reference["input_64"]), training=False)
    if pooling == "cls":  # the normalised class token
        assert max_error(outputs, reference["stage4_64"][:, 0]) <= TOLERANCE
    else:  # NHWC maps; stage 4 without the class token
        for stage in (1, 2, 3):
            expected = reference[f"stage{stage}_64"]
            tokens = np.reshape(outputs[f"stage{stage}"], expected.shape)
            assert max_error(tokens, expected) <= TOLERANCE
        tokens = np.reshape(outputs["stage4"], (2, -1, 96))
        assert max_error(tokens, reference["stage4_64"][:, 1:]) <= TOLERANCE


# --- reading files ------------------------------------------------------------------


def test_npz_path_loads_with_parity(tiny_model, state_dict, reference, tmp_path):
    path = tmp_path / "wavevit_tiny.npz"
    np.savez(path, **{f"module.{name}": a for name, a in state_dict.items()})
    keras_wavevit.load_official_weights(tiny_model, path)  # a pathlib.Path
    logits = tiny_model(nhwc(reference["input_64"]), training=False)
    assert max_error(logits, reference["logits_64"]) <= TOLERANCE


def test_safetensors_path(tiny_model, state_dict, tmp_path):
    safetensors_numpy = pytest.importorskip(
        "safetensors.numpy", reason="safetensors is an optional extra ([safetensors])"
    )
    path = str(tmp_path / "wavevit_tiny.safetensors")
    safetensors_numpy.save_file(dict(state_dict), path)
    plan = keras_wavevit.load_official_weights(tiny_model, path)
    assert len(plan["assignments"]) == NUM_TINY_ENTRIES
    np.testing.assert_array_equal(variable(tiny_model, "norm4/beta"), state_dict["norm4.bias"])


def test_missing_and_unknown_files(tmp_path):
    with pytest.raises(FileNotFoundError, match="Checkpoint not found: .*nothing.pth"):
        convert.read_checkpoint(tmp_path / "nothing.pth")
    unknown = tmp_path / "weights.ckpt"
    unknown.write_bytes(b"")
    with pytest.raises(ValueError, match="Unsupported checkpoint format: .*weights.ckpt"):
        convert.read_checkpoint(unknown)


def test_pth_without_torch_says_how_to_install(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "torch", None)  # `import torch` now fails
    path = tmp_path / "wavevit_s.pth.tar"
    path.write_bytes(b"not read")
    with pytest.raises(ImportError) as info:
        keras_wavevit.load_official_weights(keras.Sequential(), path)
    assert 'needs torch: pip install "keras-wavevit[convert]"' in str(info.value)


def fake_torch(load):
    allowed = []

    @contextlib.contextmanager
    def safe_globals(objects):
        allowed.extend(objects)
        yield

    module = types.SimpleNamespace(
        load=load, serialization=types.SimpleNamespace(safe_globals=safe_globals)
    )
    return module, allowed


def test_pth_is_read_weights_only_and_unwrapped(tmp_path, monkeypatch):
    calls = []

    def load(path, **kwargs):
        calls.append((path, kwargs))
        return {
            "state_dict": {"module.head.bias": np.arange(3, dtype=np.float16)},
            "args": argparse.Namespace(model="wavevit_s"),
            "epoch": 299,
        }

    torch, allowed = fake_torch(load)
    monkeypatch.setitem(sys.modules, "torch", torch)
    path = tmp_path / "wavevit_s.pth.tar"
    path.write_bytes(b"")
    checkpoint = convert.read_checkpoint(path)
    assert list(checkpoint) == ["head.bias"]
    np.testing.assert_array_equal(checkpoint["head.bias"], [0, 1, 2])
    assert calls == [(str(path), dict(map_location="cpu", weights_only=True))]
    assert allowed == [argparse.Namespace]


def test_pth_with_untrusted_objects_explains(tmp_path, monkeypatch):
    def load(path, **kwargs):
        raise pickle.UnpicklingError("Weights only load failed: unsupported global")

    monkeypatch.setitem(sys.modules, "torch", fake_torch(load)[0])
    path = tmp_path / "wavevit_s.pth"
    path.write_bytes(b"")
    with pytest.raises(ValueError, match=r"torch.load\(path, weights_only=False\)"):
        convert.read_checkpoint(path)


# --- atomic writes ------------------------------------------------------------------


def test_atomic_save_writes_a_loadable_file(tiny_model, tmp_path):
    path = tmp_path / "tiny.weights.h5"
    saved = weights_of(tiny_model)
    convert.atomic_save(tiny_model, path)
    assert os.listdir(tmp_path) == ["tiny.weights.h5"]
    umask = os.umask(0)
    os.umask(umask)
    assert path.stat().st_mode & 0o777 == 0o666 & ~umask
    tiny_model.set_weights([np.zeros_like(w) for w in saved])
    tiny_model.load_weights(path)
    assert all(np.array_equal(a, b) for a, b in zip(saved, weights_of(tiny_model)))


def interrupted_save(error):
    def save(path):
        with open(path, "wb") as file:
            file.write(b"half a file")
        raise error

    return save


def test_interrupted_save_keeps_the_previous_file(tmp_path):
    path = tmp_path / "model.weights.h5"
    path.write_bytes(b"previous conversion")
    model = types.SimpleNamespace(save_weights=interrupted_save(KeyboardInterrupt()))
    with pytest.raises(KeyboardInterrupt):
        convert.atomic_save(model, path)
    assert path.read_bytes() == b"previous conversion"
    assert os.listdir(tmp_path) == ["model.weights.h5"]


def test_failed_save_leaves_nothing(tmp_path):
    model = types.SimpleNamespace(save=interrupted_save(OSError("disk full")))
    with pytest.raises(OSError, match="disk full"):
        convert.atomic_save(model, tmp_path / "out" / "model.keras")
    assert os.listdir(tmp_path / "out") == []


def test_atomic_save_rejects_other_extensions(tmp_path):
    with pytest.raises(ValueError, match=r"must end in .keras or .weights.h5; received .*\.h5"):
        convert.atomic_save(keras.Sequential(), tmp_path / "model.h5")
    assert os.listdir(tmp_path) == []


# --- command line -------------------------------------------------------------------


def main(argv):
    """`keras-wavevit` with only the `convert` subcommand registered.

    `cli.main` imports every subcommand's module to build its parser; the
    other subcommands are tested with their own modules.
    """
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(cli, "SUBCOMMANDS", {"convert": cli.SUBCOMMANDS["convert"]})
        return cli.main(argv)


@pytest.fixture
def tiny_files(state_dict, tmp_path):
    """The fixture as an .npz checkpoint and its configuration as JSON."""
    checkpoint = tmp_path / "wavevit_tiny.npz"
    np.savez(checkpoint, **state_dict)
    config = tmp_path / "tiny.json"
    config.write_text(json.dumps({**TINY_CONFIG, "input_shape": None}))
    return str(checkpoint), str(config)


def test_cli_converts_to_weights_with_parity(
    tiny_files, tiny_model, reference, tmp_path, capsys
):
    checkpoint, config = tiny_files
    output = tmp_path / "tiny.weights.h5"
    assert main(["convert", checkpoint, str(output), "--config", config]) == 0
    printed = capsys.readouterr().out
    # 303,488 parameters (the fixture's n_params) + 168 BatchNorm statistics
    assert f"mapped {NUM_TINY_ENTRIES} checkpoint entries (303,656 values)" in printed
    assert "fixed Haar filters (DWT2D/IDWT2D compute them, no weights) (10): " in printed
    assert "BatchNorm step counters (not used at inference) (7): " in printed
    assert f"wrote {output}" in printed
    tiny_model.load_weights(output)
    logits = tiny_model(nhwc(reference["input_64"]), training=False)
    assert max_error(logits, reference["logits_64"]) <= TOLERANCE


def test_cli_converts_to_a_keras_model(tiny_files, reference, tmp_path):
    checkpoint, config = tiny_files
    output = tmp_path / "tiny.keras"
    assert main(["convert", checkpoint, str(output), "--config", config,
                 "--image-size", "64"]) == 0
    model = keras.saving.load_model(output)
    assert model.input_shape == (None, 64, 64, 3)
    logits = model(nhwc(reference["input_64"]), training=False)
    assert max_error(logits, reference["logits_64"]) <= TOLERANCE


def test_cli_fine_tuning_and_no_token_label(tiny_files, tmp_path, capsys):
    checkpoint, config = tiny_files
    output = tmp_path / "tiny3.weights.h5"
    assert main(["convert", checkpoint, str(output), "--config", config, "--num-classes", "3",
                 "--skip-head", "--no-token-label"]) == 0
    printed = capsys.readouterr().out
    assert "dropped aux_head.bias, aux_head.weight (--no-token-label)" in printed
    heads = "classifier (skip_head) (2): head.weight, head.bias"
    assert heads in printed
    assert "unexpected" not in printed and "missing" not in printed
    assert output.exists()


def test_cli_mismatch_fails_and_writes_nothing(state_dict, tiny_files, tmp_path, capsys):
    _, config = tiny_files
    checkpoint = tmp_path / "broken.npz"
    np.savez(checkpoint, **broken(state_dict, "missing"))
    output = tmp_path / "broken.weights.h5"
    assert main(["convert", str(checkpoint), str(output), "--config", config]) == 1
    captured = capsys.readouterr()
    assert "error: The checkpoint does not match the model" in captured.err
    assert "  block1_0/mlp/fc1/kernel (16, 32)" in captured.err
    assert not output.exists()
    # --non-strict converts what matches and prints the problem
    assert main(["convert", str(checkpoint), str(output), "--config", config,
                 "--non-strict"]) == 0
    printed = capsys.readouterr().out
    assert "missing (1): Keras weights with no checkpoint entry:" in printed
    assert output.exists()


def test_cli_reports_unreadable_checkpoints(tmp_path, capsys):
    output = tmp_path / "out.weights.h5"
    assert main(["convert", str(tmp_path / "absent.npz"), str(output), "--variant", "small"]) == 1
    assert "error: Checkpoint not found" in capsys.readouterr().err
    assert main(["convert", str(tmp_path / "absent.npz"), str(tmp_path / "out.h5"),
                 "--variant", "small"]) == 1
    assert "OUTPUT must end in .weights.h5 or .keras" in capsys.readouterr().err
    assert os.listdir(tmp_path) == []


def test_cli_converts_the_small_key_list(tmp_path, capsys):
    """The released Wave-ViT-S entries map exactly onto `--variant small`."""
    official, num_parameters = read_key_list("s")
    checkpoint = tmp_path / "wavevit_s.npz"
    np.savez(checkpoint, **official)
    output = tmp_path / "wavevit_s.weights.h5"
    assert main(["convert", str(checkpoint), str(output), "--variant", "small"]) == 0
    printed = capsys.readouterr().out
    num_buffers = sum(a.size for n, a in official.items() if "running_" in n)
    assert f"mapped 425 checkpoint entries ({num_parameters + num_buffers:,} values)" in printed
    assert "skipped 52 entries without a Keras counterpart:" in printed
    assert "missing" not in printed and "unexpected" not in printed
    assert sorted(os.listdir(tmp_path)) == ["wavevit_s.npz", "wavevit_s.weights.h5"]
    keras.backend.clear_session()
