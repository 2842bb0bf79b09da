"""The Wave-ViT builders: parameter counts, sizes, save/load, fit, mixed precision."""

import os
import warnings

import keras
import numpy as np
import pytest

import keras_wavevit
from keras_wavevit import PRESETS, WaveViT, WaveViTConfig
from keras_wavevit.layers import LayerNormalization
from tests.configs import MICRO_ARCHITECTURE as MICRO


def trainable_count(model):
    return sum(int(np.prod(weight.shape)) for weight in model.trainable_weights)


@pytest.mark.parametrize(
    "builder, with_aux, without_aux",
    [
        (keras_wavevit.WaveViTSmall, 22_690_176, 22_241_176),
        (keras_wavevit.WaveViTBase, 33_516_128, 33_003_128),
        (keras_wavevit.WaveViTLarge, 57_474_504, 56_961_504),
    ],
)
def test_parameter_counts_equal_the_official_models(builder, with_aux, without_aux):
    assert trainable_count(builder(token_label=True, num_classes=1000)) == with_aux
    assert trainable_count(builder(token_label=False, num_classes=1000)) == without_aux


def test_named_builders_and_the_builder_share_the_presets():
    small = keras_wavevit.WaveViTSmall(num_classes=10, input_shape=(64, 64, 3))
    config = {k: v for k, v in PRESETS["small"].to_dict().items() if k != "input_shape"}
    general = WaveViT(**config, num_classes=10, input_shape=(64, 64, 3))
    assert trainable_count(small) == trainable_count(general)
    assert small.input_shape == (None, 64, 64, 3) and small.name == "WaveViTSmall"
    tiny = keras_wavevit.WaveViTTiny(num_classes=10)
    assert tiny.input_shape == (None, 32, 32, 3)
    assert tiny.get_layer("block4_1").drop_path_rate == pytest.approx(0.1)
    assert WaveViT("tiny", num_classes=10).count_params() == tiny.count_params()


def test_named_builders_have_real_signatures_and_docstrings():
    import inspect

    expected = ["include_top", "weights", "input_shape", "num_classes",
                "classifier_activation", "token_label", "drop_path_rate", "pooling", "name"]
    for name in ("Tiny", "Small", "Base", "Large"):
        builder = getattr(keras_wavevit, f"WaveViT{name}")
        assert builder.__name__ == f"WaveViT{name}"
        assert list(inspect.signature(builder).parameters) == expected
        assert inspect.signature(builder).parameters["name"].default == f"WaveViT{name}"
        assert "Example:" in builder.__doc__


def test_builder_takes_a_config_a_spec_or_keywords():
    config = WaveViTConfig(**MICRO, input_shape=(32, 32, 3))
    from_config = WaveViT(config, num_classes=3)
    from_keywords = WaveViT(**MICRO, input_shape=(32, 32, 3), num_classes=3)
    from_json = WaveViT(config.to_json(), num_classes=3)
    from_keywords.set_weights(from_config.get_weights())
    from_json.set_weights(from_config.get_weights())
    x = np.random.default_rng(0).normal(size=(2, 32, 32, 3)).astype("float32")
    reference = np.asarray(from_config(x))
    np.testing.assert_array_equal(np.asarray(from_keywords(x)), reference)
    np.testing.assert_array_equal(np.asarray(from_json(x)), reference)
    # input_shape and drop_path_rate replace the config's.
    model = WaveViT(config, input_shape=(None, None, 3), drop_path_rate=0.2, num_classes=3)
    assert model.input_shape == (None, None, None, 3)
    assert model.get_layer("block4_0").drop_path_rate == pytest.approx(0.2)
    assert WaveViT(config, num_classes=3).get_layer("block4_0").drop_path_rate == 0.0


def test_every_layer_norm_is_the_fused_one():
    model = WaveViT(**MICRO, input_shape=(32, 32, 3), num_classes=3)
    norms = [layer for layer in model._flatten_layers()
             if isinstance(layer, keras.layers.LayerNormalization)]
    assert {f"norm{stage}" for stage in (1, 2, 3, 4)} <= {norm.name for norm in norms}
    assert all(isinstance(norm, LayerNormalization) for norm in norms)
    assert model.get_layer("norm4").epsilon == 1e-6


@pytest.mark.parametrize("input_shape, axis", [((100, 96, 3), "height"), ((96, 50, 3), "width")])
def test_sizes_that_break_the_rule_are_rejected(input_shape, axis):
    size = input_shape[0] if axis == "height" else input_shape[1]
    with pytest.raises(ValueError, match=f"{axis} must be a multiple of 32.*{axis} {size}"):
        keras_wavevit.WaveViTSmall(input_shape=input_shape)


def test_unknown_and_non_square_sizes():
    model = WaveViT(**MICRO, input_shape=(None, None, 3), num_classes=7, token_label=True)
    for height, width in [(32, 32), (64, 96), (48, 16)]:
        out = model(np.zeros((2, height, width, 3), "float32"))
        assert tuple(out.shape) == (2, 7)
    official = keras_wavevit.WaveViT(
        embed_dims=(16, 32, 64, 96), num_heads=(1, 2, 4, 6), mlp_ratios=(2, 2, 2, 2),
        depths=(1, 1, 1, 1), sr_ratios=(4, 2, 1, 1), stem_hidden_dim=8,
        input_shape=(None, None, 3), num_classes=3,
    )
    assert tuple(official(np.zeros((1, 64, 96, 3), "float32")).shape) == (1, 3)


def test_layer_names_mirror_the_official_modules():
    model = WaveViT(**{**MICRO, "depths": (2, 1, 1, 1)}, token_label=True, num_classes=3)
    names = {layer.name for layer in model.layers}
    expected = {"patch_embed1", "patch_embed2", "patch_embed4", "block1_0", "block1_1",
                "block4_0", "norm1", "norm4", "post_network_0", "head"}
    assert expected <= names
    paths = {weight.path for weight in model.weights}
    assert {"block1_0/attn/reduce_conv/kernel", "block3_0/attn/kv/kernel",
            "head/aux_head/kernel", "block1_1/mlp/dwconv/kernel"} <= paths


def test_stochastic_depth_rises_linearly_over_blocks():
    model = WaveViT(**{**MICRO, "depths": (2, 1, 1, 1)}, drop_path_rate=0.3, num_classes=3)
    rates = [model.get_layer(name).drop_path_rate
             for name in ("block1_0", "block1_1", "block2_0", "block3_0", "block4_0")]
    np.testing.assert_allclose(rates, [0.0, 0.075, 0.15, 0.225, 0.3])


def test_keras_file_round_trip_gives_identical_outputs(tmp_path):
    model = WaveViT(**MICRO, input_shape=(None, None, 3), num_classes=5, token_label=True,
                    classifier_activation="softmax")
    x = np.random.default_rng(0).normal(size=(2, 32, 48, 3)).astype("float32")
    path = os.path.join(tmp_path, "model.keras")
    model.save(path)
    loaded = keras.saving.load_model(path)
    np.testing.assert_array_equal(np.asarray(loaded(x)), np.asarray(model(x)))
    layer_configs = lambda m: [(l["class_name"], l["config"]) for l in m.get_config()["layers"]]  # noqa: E731
    assert layer_configs(loaded) == layer_configs(model)


def _toy_task(samples=64):
    """Class = which image half is brighter: learnable in a few steps."""
    rng = np.random.default_rng(0)
    images = rng.normal(size=(samples, 32, 32, 3)).astype("float32") * 0.1
    labels = rng.integers(0, 2, size=samples)
    images[labels == 1, :16] += 1.0
    images[labels == 0, 16:] += 1.0
    return images, labels


@pytest.mark.parametrize("jit_compile", [False, True])
def test_fit_reduces_the_loss(jit_compile):
    images, labels = _toy_task()
    model = WaveViT(**MICRO, input_shape=(32, 32, 3), num_classes=2, drop_path_rate=0.1)
    model.compile(
        optimizer=keras.optimizers.AdamW(1e-3),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        jit_compile=jit_compile,
    )
    before = model.evaluate(images, labels, verbose=0)
    model.fit(images, labels, batch_size=16, epochs=4, verbose=0)
    after = model.evaluate(images, labels, verbose=0)
    assert after < 0.7 * before


@pytest.mark.parametrize("policy", ["mixed_bfloat16", "mixed_float16"])
def test_mixed_precision_keeps_logits_and_softmax_in_float32(policy):
    images, labels = _toy_task(16)
    reference = WaveViT(**MICRO, input_shape=(32, 32, 3), num_classes=2, token_label=True)
    keras.config.set_dtype_policy(policy)
    model = WaveViT(**MICRO, input_shape=(32, 32, 3), num_classes=2, token_label=True)
    model.set_weights(reference.get_weights())
    assert model.get_layer("block1_0").compute_dtype == policy.split("_")[1]
    logits = model(images, training=False)
    assert logits.dtype == "float32"
    expected = np.asarray(reference(images, training=False))
    assert np.abs(np.asarray(logits) - expected).max() < 0.05 * np.abs(expected).max() + 0.05
    model.compile(
        optimizer="adamw",
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
    )
    history = model.fit(images, labels, batch_size=8, epochs=1, verbose=0)
    assert np.isfinite(history.history["loss"][0])


@pytest.mark.parametrize(
    "overrides, message",
    [
        (dict(depths=(1, 1, 1)), r"depths must have one entry per stage \(4\)"),
        (dict(num_heads=(3, 2, 2, 4)), r"embed_dims\[0\]=8 must be divisible by num_heads\[0\]=3"),
        (dict(embed_dims=(6, 16, 32, 32), num_heads=(1, 2, 2, 4)), r"embed_dims\[0\]=6 must be divisible by 4"),
        (dict(sr_ratios=(0, 1, 1, 1)), r"sr_ratios\[0\] must be >= 1"),
        (dict(sr_ratios=(2, 1, 2, 1)), "sr_ratios of stages 3-4"),
    ],
)
def test_builder_validates_before_building(overrides, message):
    with pytest.raises(ValueError, match=message):
        WaveViT(**{**MICRO, **overrides}, input_shape=(32, 32, 3))


def test_public_api():
    expected = {
        "WaveViT", "WaveViTTiny", "WaveViTSmall", "WaveViTBase", "WaveViTLarge",
        "WaveViTConfig", "PRESETS", "resolve_config", "load_official_weights",
        "CheckpointMismatchError", "export_saved_model", "normalize_images",
        "fused_ops", "__version__",
    }
    assert expected <= set(keras_wavevit.__all__)
    for name in keras_wavevit.__all__:
        assert getattr(keras_wavevit, name) is not None
    # Layers live under keras_wavevit.layers only.
    for name in ("Attention", "Block", "DWT2D", "Stem", "LayerNormalization"):
        assert name not in keras_wavevit.__all__ and not hasattr(keras_wavevit, name)
        assert hasattr(keras_wavevit.layers, name)
    from keras_wavevit.export import export_saved_model

    assert keras_wavevit.export_saved_model is export_saved_model
    with pytest.raises(AttributeError, match="has no attribute 'Block'"):
        keras_wavevit.Block  # noqa: B018


def test_import_adds_no_recipe_plotting_dataset_or_export_module():
    import subprocess
    import sys

    code = (
        "import sys, keras\n"
        "before = set(sys.modules)\n"
        "import keras_wavevit\n"
        "print(sorted(set(sys.modules) - before))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            timeout=240, check=True)
    added = eval(result.stdout.strip().splitlines()[-1])  # noqa: S307 (our own print)
    assert "keras_wavevit.model" in added and "keras_wavevit.config" in added
    forbidden = ("keras_wavevit.recipes", "keras_wavevit.cli", "keras_wavevit.export",
                 "matplotlib", "tensorflow_datasets")
    assert [name for name in added if name.startswith(forbidden)] == []


def test_a_stage_reduced_to_one_token_is_warned_about():
    """Stem stride 4 on 32x32 leaves stage 4 a 1x1 map (its attention sees one token)."""
    small = dict(MICRO, stem_stride=4, sr_ratios=(1, 1, 1, 1))
    with pytest.warns(UserWarning, match=r"At input 32x32 with stem_stride=4, stage4 is a 1x1 "
                                         r"map: attention over a single token .* Use "
                                         r"stem_stride=2 or an input of at least 64 pixels"):
        WaveViT(**small, input_shape=(32, 32, 3), num_classes=3)
    with pytest.warns(UserWarning, match=r"stem_stride=2, stage4 is a 1x1 map: .* Use an input "
                                         r"of at least 32 pixels a side"):
        WaveViT(**dict(small, stem_stride=2), input_shape=(16, 16, 3), num_classes=3)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # stride 2 at 32, stride 4 at 64: no 1x1 stage
        WaveViT(**dict(small, stem_stride=2), input_shape=(32, 32, 3), num_classes=3)
        WaveViT(**small, input_shape=(64, 64, 3), num_classes=3)
