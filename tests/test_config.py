"""WaveViTConfig: every architecture rule, the JSON format, presets, resolve_config."""

import dataclasses
import json

import pytest

from keras_wavevit.config import (
    PRESETS,
    WaveViTConfig,
    feature_strides,
    required_input_multiple,
    resolve_config,
)
from tests.configs import MICRO_ARCHITECTURE

MICRO = dict(MICRO_ARCHITECTURE, input_shape=(32, 32, 3))

RULE_CASES = [
    (dict(embed_dims=(8, 16, 32)), r"embed_dims must have one entry per stage \(4\); received embed_dims=\(8, 16, 32\)"),
    (dict(embed_dims=8), r"embed_dims must have one entry per stage \(4\); received embed_dims=8"),
    (dict(num_heads=(1, 1, 2)), r"num_heads must have one entry per stage \(4\)"),
    (dict(mlp_ratios=(2, 2, 2, 2, 2)), r"mlp_ratios must have one entry per stage \(4\)"),
    (dict(depths=[1, 1]), r"depths must have one entry per stage \(4\); received depths=\[1, 1\]"),
    (dict(sr_ratios=(2, 1, 1)), r"sr_ratios must have one entry per stage \(4\)"),
    (dict(embed_dims=(8.0, 16, 32, 32)), r"embed_dims must hold integers; received embed_dims=\(8.0, 16, 32, 32\)"),
    (dict(depths=(1, True, 1, 1)), r"depths must hold integers; received depths=\(1, True, 1, 1\)"),
    (dict(mlp_ratios=(2, "4", 2, 2)), r"mlp_ratios must hold numbers; received mlp_ratios=\(2, '4', 2, 2\)"),
    (dict(embed_dims=(8, 16, 0, 32)), r"embed_dims\[2\] must be >= 1; received embed_dims=\[8, 16, 0, 32\]"),
    (dict(num_heads=(3, 1, 2, 2)), r"embed_dims\[0\]=8 must be divisible by num_heads\[0\]=3"),
    (dict(num_heads=(1, 0, 2, 2)), r"embed_dims\[1\]=16 must be divisible by num_heads\[1\]=0"),
    (dict(embed_dims=(6, 16, 32, 32)), r"embed_dims\[0\]=6 must be divisible by 4 \(the wavelet branch"),
    (dict(embed_dims=(8, 18, 32, 32)), r"embed_dims\[1\]=18 must be divisible by 4"),
    (dict(sr_ratios=(0, 1, 1, 1)), r"sr_ratios\[0\] must be >= 1; received 0"),
    (dict(sr_ratios=(2, 1, 2, 1)), r"sr_ratios of stages 3-4 \(standard attention\) must be 1; received sr_ratios=\[2, 1, 2, 1\]"),
    (dict(depths=(1, 0, 1, 1)), r"depths\[1\] must be >= 1; received 0"),
    (dict(mlp_ratios=(2, 2, 0, 2)), r"mlp_ratios\[2\] must be > 0; received 0"),
    (dict(stem_hidden_dim=0), r"stem_hidden_dim must be a positive integer; received stem_hidden_dim=0"),
    (dict(stem_hidden_dim=8.0), r"stem_hidden_dim must be a positive integer; received stem_hidden_dim=8.0"),
    (dict(stem_stride=3), r"stem_stride must be one of \(2, 4\); received stem_stride=3"),
    (dict(stem_stride=4.0), r"stem_stride must be one of \(2, 4\); received stem_stride=4.0"),
    (dict(stem_first_stride=3), r"stem_first_stride must be None or one of \(1, 2\) with stem_stride=2; received stem_first_stride=3"),
    (dict(stem_first_stride=2.0), r"stem_first_stride must be None or one of \(1, 2\) with stem_stride=2; received stem_first_stride=2.0"),
    (dict(stem_stride=4, stem_first_stride=1, input_shape=(64, 64, 3)), r"stem_first_stride must be None or one of \(2,\) with stem_stride=4; received stem_first_stride=1"),
    (dict(drop_path_rate=1.0), r"drop_path_rate must be in \[0, 1\); received drop_path_rate=1.0"),
    (dict(drop_path_rate=-0.1), r"drop_path_rate must be in \[0, 1\); received drop_path_rate=-0.1"),
    (dict(drop_path_rate="0.1"), r"drop_path_rate must be in \[0, 1\); received drop_path_rate='0.1'"),
    (dict(input_shape=(32, 32)), r"input_shape must be \(height, width, channels\), without the batch axis; received input_shape=\(32, 32\)"),
    (dict(input_shape=None), r"without the batch axis; received input_shape=None"),
    (dict(input_shape=(32, 32, None)), r"input_shape must have a known, positive channel count; received input_shape=\(32, 32, None\)"),
    (dict(input_shape=(-16, 32, 3)), r"input_shape height must be a positive integer or None; received input_shape=\(-16, 32, 3\)"),
    (dict(input_shape=(40, 32, 3)), r"Input height must be a multiple of 16 .*received input_shape=\(40, 32, 3\) \(height 40\)"),
    (dict(input_shape=(None, 24, 3)), r"Input width must be a multiple of 16 .*\(width 24\)"),
]


@pytest.mark.parametrize("overrides, message", RULE_CASES)
def test_every_rule_names_the_field_and_value(overrides, message):
    with pytest.raises(ValueError, match=message):
        WaveViTConfig(**{**MICRO, **overrides})


def test_lists_become_tuples_and_defaults():
    config = WaveViTConfig(**{**MICRO, "depths": [1, 1, 1, 1], "input_shape": [None, None, 3]})
    assert config.depths == (1, 1, 1, 1) and config.input_shape == (None, None, 3)
    config = WaveViTConfig(**{k: v for k, v in MICRO.items() if k not in ("stem_stride", "input_shape")})
    assert (config.stem_stride, config.drop_path_rate, config.input_shape) == (4, 0.0, (224, 224, 3))
    hash(config)
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.depths = (2, 2, 2, 2)


def test_derived_values():
    config = WaveViTConfig(**MICRO)
    assert config.input_multiple == 16
    assert config.feature_strides() == {"stage1": 2, "stage2": 4, "stage3": 8, "stage4": 16}
    assert config.replace(drop_path_rate=0.3, depths=(2, 1, 1, 1)).block_drop_path_rates() == pytest.approx(
        [0.0, 0.075, 0.15, 0.225, 0.3]
    )
    assert config.block_drop_path_rates() == [0.0] * 4
    assert required_input_multiple(4, (4, 2, 1, 1)) == 32
    assert required_input_multiple(2, (2, 1, 1, 1)) == 16
    assert required_input_multiple(4, (8, 2, 1, 1)) == 64
    assert feature_strides(4) == {"stage1": 4, "stage2": 8, "stage3": 16, "stage4": 32}


def test_replace_checks_like_a_new_config():
    config = WaveViTConfig(**{**MICRO, "input_shape": (48, 48, 3)})
    assert config.replace(stem_stride=4, input_shape=(64, 64, 3)).stem_stride == 4
    with pytest.raises(ValueError, match=r"Input height must be a multiple of 32"):
        config.replace(stem_stride=4)
    with pytest.raises(ValueError, match=r"Unknown model configuration keys \['depth'\]"):
        config.replace(depth=(1, 1, 1, 1))


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_json_round_trip(name):
    config = PRESETS[name]
    assert WaveViTConfig.from_json(config.to_json()) == config
    assert WaveViTConfig.from_dict(json.loads(config.to_json(indent=2))) == config
    assert WaveViTConfig.from_dict(config.to_dict()) == config


def test_json_round_trip_of_any_size_input():
    config = WaveViTConfig(**{**MICRO, "input_shape": (None, 64, 1), "mlp_ratios": (1.5, 2, 2, 2)})
    assert json.loads(config.to_json())["input_shape"] == [None, 64, 1]
    assert WaveViTConfig.from_json(config.to_json()) == config


def test_from_dict_names_unknown_and_missing_keys():
    with pytest.raises(ValueError, match=r"Unknown model configuration keys \['colour', 'preset'\]"):
        WaveViTConfig.from_dict({**MICRO, "colour": 1, "preset": "tiny"})
    without = {k: v for k, v in MICRO.items() if k not in ("depths", "stem_hidden_dim")}
    with pytest.raises(ValueError, match=r"missing the keys \['depths', 'stem_hidden_dim'\]"):
        WaveViTConfig.from_dict(without)


def test_presets_are_read_only():
    assert sorted(PRESETS) == ["base", "large", "small", "tiny"]
    with pytest.raises(TypeError):
        PRESETS["huge"] = PRESETS["large"]
    with pytest.raises(TypeError):
        del PRESETS["tiny"]
    with pytest.raises(dataclasses.FrozenInstanceError):
        PRESETS["small"].depths = (1, 1, 1, 1)
    with pytest.raises(AttributeError):
        PRESETS["small"].depths.append(1)
    assert PRESETS["small"].depths == (3, 4, 6, 3)


def test_presets_hold_the_official_configs():
    assert PRESETS["small"].embed_dims == (64, 128, 320, 448)
    assert PRESETS["base"].depths == (3, 4, 12, 3)
    assert PRESETS["large"].drop_path_rate == 0.3
    assert PRESETS["tiny"].stem_stride == 2 and PRESETS["tiny"].input_shape == (32, 32, 3)
    assert all(PRESETS[name].input_multiple == 32 for name in ("small", "base", "large"))


def test_resolve_config_from_every_form(tmp_path):
    micro = WaveViTConfig(**MICRO)
    assert resolve_config("base") is PRESETS["base"]
    assert resolve_config(micro) is micro
    assert resolve_config(micro.to_json()) == micro
    assert resolve_config(micro.to_dict()) == micro
    path = tmp_path / "micro.json"
    path.write_text(micro.to_json(indent=2))
    assert resolve_config(str(path)) == micro
    assert resolve_config(path) == micro
    overridden = resolve_config('{"preset": "tiny", "depths": [1, 1, 1, 1], "drop_path_rate": 0.2}')
    assert overridden == PRESETS["tiny"].replace(depths=(1, 1, 1, 1), drop_path_rate=0.2)
    assert resolve_config({"preset": "small"}) == PRESETS["small"]


@pytest.mark.parametrize(
    "spec, message",
    [
        ("huge", r"Unknown model 'huge': expected one of \['base', 'large', 'small', 'tiny'\], an inline JSON object or the path of a JSON file"),
        ('{"preset": "tiny", "depths": [1, 1, 1}', r"Could not parse the model configuration as JSON: Expecting"),
        ('{"preset": "huge"}', r"Unknown preset 'huge'; expected one of \['base', 'large', 'small', 'tiny'\]"),
        ('{"preset": "tiny", "depth": 3}', r"Unknown model configuration keys \['depth'\]"),
        ('{"preset": "tiny", "stem_stride": 3}', r"stem_stride must be one of \(2, 4\); received stem_stride=3"),
        ('{"depths": [1, 1, 1, 1]}', r"missing the keys \['embed_dims', 'num_heads', 'mlp_ratios', 'sr_ratios', 'stem_hidden_dim'\]"),
        (3, r"must be a preset name, JSON text, a JSON file, a dict or a WaveViTConfig; received int 3"),
    ],
)
def test_resolve_config_errors_name_the_problem(spec, message):
    with pytest.raises(ValueError, match=message):
        resolve_config(spec)


def test_resolve_config_file_errors_name_the_file(tmp_path):
    broken = tmp_path / "broken.json"
    broken.write_text("{not json")
    with pytest.raises(ValueError, match=r"model configuration file '.*broken.json' as JSON"):
        resolve_config(str(broken))
    listing = tmp_path / "list.json"
    listing.write_text("[1, 2]")
    with pytest.raises(ValueError, match=r"file '.*list.json' must be a JSON object of WaveViTConfig fields; received list \[1, 2\]"):
        resolve_config(str(listing))
