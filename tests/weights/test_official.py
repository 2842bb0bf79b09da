"""Tests of the Wave-ViT name table and loading (`keras_wavevit.weights.official`).

The parity tests use `fixtures/wavevit_tiny_c10.npz` (see `tests.weights.reference`):
the converted Keras model must reproduce the official model's logits and every
stage's output.
"""

import keras
import numpy as np
import pytest

import keras_wavevit
from keras_wavevit.weights import official
from tests.weights.reference import (
    NUM_TINY_ENTRIES,
    NUM_TINY_SKIPPED,
    TINY_CONFIG,
    TOLERANCE,
    broken,
    load_reference,
    max_error,
    nhwc,
    official_entries,
    read_key_list,
    variable,
    weights_of,
)


@pytest.fixture(scope="module")
def reference():
    return load_reference()


@pytest.fixture(scope="module")
def state_dict(reference):
    return official_entries(reference)


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


def test_wrapped_checkpoint_loads_with_parity(tiny_model, state_dict, reference):
    wrapped = {"model": {"state_dict": {f"module.{n}": a for n, a in state_dict.items()}}}
    keras_wavevit.load_official_weights(tiny_model, wrapped)
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
    with pytest.raises(official.CheckpointMismatchError) as info:
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
    with pytest.raises(official.CheckpointMismatchError) as info:
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
    with pytest.raises(official.CheckpointMismatchError) as info:
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


# --- checkpoints that must not load silently ----------------------------------------


def with_nonfinite(state_dict):
    poisoned = dict(state_dict)
    poisoned["norm3.weight"] = state_dict["norm3.weight"].copy()
    poisoned["norm3.weight"][[0, 5]] = [np.nan, np.inf]
    poisoned["block2.0.attn.q.bias"] = np.full_like(state_dict["block2.0.attn.q.bias"], -np.inf)
    return poisoned


NONFINITE_LINES = [
    "non-finite (2): checkpoint entries holding NaN or infinity:",
    "  block2.0.attn.q.bias (32 of 32 values)",
    "  norm3.weight (2 of 64 values)",
]


def test_strict_refuses_nan_and_inf_entries(tiny_model, state_dict):
    before = weights_of(tiny_model)
    with pytest.raises(official.CheckpointMismatchError) as info:
        keras_wavevit.load_official_weights(tiny_model, with_nonfinite(state_dict))
    message = str(info.value)
    assert message.startswith("The checkpoint does not match the model (nothing was loaded")
    assert all(line in message for line in NONFINITE_LINES), message
    assert "missing" not in message and "mismatched" not in message
    assert all(np.array_equal(a, b) for a, b in zip(before, weights_of(tiny_model)))


def test_non_strict_warns_and_leaves_nan_and_inf_entries_out(tiny_model, state_dict):
    before = {w.path: w.numpy() for w in tiny_model.weights}
    with pytest.warns(UserWarning) as record:
        plan = keras_wavevit.load_official_weights(
            tiny_model, with_nonfinite(state_dict), strict=False
        )
    message = str(record[0].message)
    assert message.startswith(f"Loaded {NUM_TINY_ENTRIES - 2} checkpoint entries; left out:")
    assert all(line in message for line in NONFINITE_LINES), message
    assert [entry[0] for entry in plan["nonfinite"]] == ["block2.0.attn.q.bias", "norm3.weight"]
    for path in ("norm3/gamma", "block2_0/attn/q/bias"):
        np.testing.assert_array_equal(variable(tiny_model, path).numpy(), before[path])
    assert all(np.isfinite(w.numpy()).all() for w in tiny_model.weights)
    np.testing.assert_array_equal(variable(tiny_model, "norm3/beta"), state_dict["norm3.bias"])


@pytest.mark.parametrize("strict", [True, False], ids=["strict", "non_strict"])
def test_a_checkpoint_of_which_nothing_matches_is_refused(tiny_model, strict):
    """Another network's weights: --non-strict used to 'convert' 0 entries."""
    before = weights_of(tiny_model)
    resnet = {
        "conv1.weight": np.zeros((64, 3, 7, 7), "float32"),
        "fc.weight": np.zeros((1000, 2048), "float32"),
        "block1.0.attn.dwt.w_ll": np.zeros((4, 4), "float32"),  # skipped: matches nothing
    }
    with pytest.raises(
        official.CheckpointMismatchError,
        match=r"^None of the 3 checkpoint entries matches a weight of the model, so "
        r"nothing was loaded \(also with strict=False\)",
    ) as info:
        keras_wavevit.load_official_weights(tiny_model, resnet, strict=strict)
    assert "  fc.weight (1000, 2048)" in str(info.value)
    assert all(np.array_equal(a, b) for a, b in zip(before, weights_of(tiny_model)))


@pytest.mark.parametrize(
    "checkpoint, problem",
    [
        ({}, "holds no entries"),
        ({"norm1.weight": np.array(["a", "b"])}, r"not numbers \(1\): norm1.weight \(dtype <U1\)"),
        ({"params": {"norm1.weight": np.ones(16)}}, r"not numbers \(1\): params \(dtype object\)"),
        ([np.ones(3)], "is not a state dict: Expected a state dict .* received list"),
    ],
    ids=["empty", "strings", "nested_dict", "list"],
)
def test_dicts_that_are_not_state_dicts_of_numbers(tiny_model, checkpoint, problem):
    with pytest.raises(ValueError, match=problem):
        keras_wavevit.load_official_weights(tiny_model, checkpoint)
