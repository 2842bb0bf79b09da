"""TrainConfig checks, what its precision option means, the rerun contract of an output
directory (no training)."""

import json
import os

import pytest

from keras_wavevit.recipes import run_state, training
from keras_wavevit.recipes.run_state import RunState
from keras_wavevit.recipes.train_config import TrainConfig


@pytest.mark.parametrize(
    "changes, message",
    [
        ({"epochs": True}, "epochs must be an integer >= 1; received epochs=True."),
        ({"batch_size": 2.5}, "batch_size must be an integer >= 1"),
        ({"learning_rate": 0.0}, r"learning_rate must be a finite number in \(0.0, inf\)"),
        ({"clip_norm": float("inf")}, "clip_norm must be a finite number"),
        ({"validation_fraction": 1.0}, r"validation_fraction must be a finite number in \[0.0, 1.0\)"),
        ({"rotation": 181}, r"rotation must be a finite number in \[0.0, 180.0\]"),
        ({"translate": 1.0}, r"translate must be a finite number in \[0.0, 1.0\)"),
        ({"erasing": 1.5}, r"erasing must be a finite number in \[0.0, 1.0\]"),
        ({"image_size": (32, 0)}, "image_size must be positive integers"),
        ({"crop_scale": (0.0, 1.0)}, r"crop_scale must be a finite number in \(0.0, 1.0\]"),
        ({"mixed_precision": "fp8"}, "mixed_precision must be one of"),
        ({"jit_compile": "sometimes"}, "jit_compile must be one of"),
        ({"verbose": 3}, "verbose must be one of"),
        ({"flip": "yes"}, "flip must be True or False; received flip='yes'."),
        ({"seed": -1}, "seed must be an integer >= 0 or None"),
        ({"regularize_from_epochs": -1}, "regularize_from_epochs must be an integer >= 0;"),
        ({"ema_momentum": 1.0}, r"ema_momentum must be a finite number in \(0.0, 1.0\) or None"),
        ({"ema_momentum": 0.0}, "ema_momentum must be a finite number"),
    ],
)
def test_every_field_is_checked_on_creation(changes, message):
    with pytest.raises(ValueError, match=message):
        TrainConfig(**changes)


def test_normalised_values_and_replace():
    config = TrainConfig(image_size=40, crop_scale=[0.5, 1], mixed_precision=None)
    assert config.image_size == (40, 40) and config.crop_scale == (0.5, 1.0)
    assert config.mixed_precision == "off"  # None and "off" are one default now
    assert config.replace(epochs=2).epochs == 2
    with pytest.raises(ValueError, match=r"Unknown training options \['epoch'\]"):
        config.replace(epoch=2)
    with pytest.raises(ValueError, match="epochs must be"):
        config.replace(epochs=0)
    assert json.loads(json.dumps(config.to_dict()))["image_size"] == [40, 40]
    assert TrainConfig(model="base").output_directory() == os.path.join("runs", "base")


def test_train_accepts_a_config_and_keyword_overrides(tmp_path):
    from keras_wavevit.recipes.training import train

    with pytest.raises(ValueError, match="epochs must be"):
        train(TrainConfig(), epochs=0)
    with pytest.raises(ValueError, match="Pass either dataset"):
        train(dataset="cifar10", data_dir=str(tmp_path))
    with pytest.raises(ValueError, match="config must be a TrainConfig; received dict"):
        train({"epochs": 1})


def test_new_and_resumed_runs(tmp_path, capsys):
    config = TrainConfig(output=str(tmp_path / "run"), epochs=3)
    state = RunState.open(config)
    assert state.phases == {} and os.path.isfile(state.path("phases.json"))
    state.finish("fit", {"epochs_completed": 3})
    open(state.path(".partial-x-best.keras"), "w").close()
    resumed = RunState.open(config.replace(verbose=0))  # display options may change
    assert resumed.done("fit") and not resumed.done("evaluate")
    assert not os.path.exists(state.path(".partial-x-best.keras"))
    assert "Resuming the unfinished run" in capsys.readouterr().out
    assert RunState.open(config.replace(overwrite=True)).phases == {}  # a fresh start
    assert not RunState.open(config).done("fit")


def test_a_run_stored_before_an_option_existed_resumes_at_its_default(tmp_path):
    config = TrainConfig(output=str(tmp_path / "run"), epochs=3)
    RunState.open(config).finish("fit", {"epochs_completed": 3})
    path = os.path.join(config.output, "phases.json")
    stored = json.load(open(path, encoding="utf-8"))
    del stored["config"]["ema_momentum"]  # as written before the option existed
    with open(path, "w", encoding="utf-8") as file:
        json.dump(stored, file)
    assert RunState.open(config).done("fit")
    with open(path, "w", encoding="utf-8") as file:
        json.dump(stored, file)
    with pytest.raises(ValueError, match=r"another configuration \(differs in: ema_momentum\)"):
        RunState.open(config.replace(ema_momentum=0.999))


def test_refuses_finished_different_or_foreign_runs_without_overwrite(tmp_path):
    output = str(tmp_path / "run")
    config = TrainConfig(output=output, epochs=3)
    state = RunState.open(config)
    with pytest.raises(ValueError, match=r"another configuration \(differs in: batch_size, epochs\)"):
        RunState.open(config.replace(epochs=4, batch_size=8))
    for phase in run_state.PHASES:
        state.finish(phase, {})
    with pytest.raises(ValueError, match="holds a finished run of this configuration. Pass --overwrite"):
        RunState.open(config)
    foreign = str(tmp_path / "foreign")
    os.makedirs(os.path.join(foreign, "backup"))
    open(os.path.join(foreign, "log.csv"), "w").close()
    open(os.path.join(foreign, "notes.txt"), "w").close()
    with pytest.raises(ValueError, match=r"holds files of another run \(backup, log.csv\)"):
        RunState.open(TrainConfig(output=foreign))
    replaced = RunState.open(TrainConfig(output=foreign, overwrite=True))
    assert replaced.phases == {}
    assert sorted(os.listdir(foreign)) == ["notes.txt", "phases.json"]


def test_non_chief_workers_write_to_a_private_folder(tmp_path):
    config = TrainConfig(output=str(tmp_path / "run"))
    chief = RunState.open(config)
    chief.finish("fit", {})
    worker = RunState.open(config, chief=False)
    assert worker.output != chief.output and os.path.isdir(worker.output)
    assert worker.shared_output == chief.output and worker.done("fit")
    worker.finish("evaluate", {})
    assert not RunState.open(config).done("evaluate")  # the chief's state is untouched
    worker.close()
    assert not os.path.exists(worker.output)


@pytest.mark.parametrize(
    "gpus, native_bfloat16, expected",
    [(["GPU:0"], False, "mixed_float16"), ([], True, "mixed_bfloat16"), ([], False, "float32")],
    ids=["gpu", "cpu-with-bfloat16", "cpu-without"],
)
def test_auto_precision_uses_bfloat16_only_where_the_cpu_computes_it(
    monkeypatch, gpus, native_bfloat16, expected
):
    monkeypatch.setattr(training.tf.config, "list_physical_devices", lambda kind=None: gpus)
    monkeypatch.setattr(training, "has_native_bfloat16", lambda: native_bfloat16)
    assert training.dtype_policy_name("auto") == expected
    assert training.dtype_policy_name("off") == "float32"
    assert training.dtype_policy_name("mixed_bfloat16") == "mixed_bfloat16"
