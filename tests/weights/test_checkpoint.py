"""Tests of checkpoint reading (`keras_wavevit.weights.checkpoint`)."""

import argparse
import contextlib
import os
import pickle
import sys
import types

import keras
import numpy as np
import pytest

import keras_wavevit
from keras_wavevit.weights import checkpoint as reading
from keras_wavevit.weights import read_checkpoint

STATE_DICT = {
    "head.weight": np.arange(6, dtype="float32").reshape(2, 3),
    "head.bias": np.zeros(2, "float32"),
    "norm1.num_batches_tracked": np.array(7),
}

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
def test_unwrap_state_dict(wrapper):
    unwrapped = reading.unwrap_state_dict(WRAPPERS[wrapper](STATE_DICT))
    assert sorted(unwrapped) == sorted(STATE_DICT)
    assert all(unwrapped[name] is STATE_DICT[name] for name in STATE_DICT)


def test_unwrap_rejects_what_is_not_a_dict():
    with pytest.raises(ValueError, match="Expected a state dict .* received list"):
        reading.unwrap_state_dict([np.zeros(3)])


def test_npz_round_trip_strips_prefixes(tmp_path):
    path = tmp_path / "weights.npz"
    np.savez(path, **{f"module.{name}": a for name, a in STATE_DICT.items()})
    checkpoint = read_checkpoint(path)
    assert sorted(checkpoint) == sorted(STATE_DICT)
    for name, array in STATE_DICT.items():
        np.testing.assert_array_equal(checkpoint[name], array)
        assert checkpoint[name].dtype == array.dtype


def test_missing_and_unknown_files(tmp_path):
    with pytest.raises(FileNotFoundError, match="Checkpoint not found: .*nothing.pth"):
        read_checkpoint(tmp_path / "nothing.pth")
    unknown = tmp_path / "weights.ckpt"
    unknown.write_bytes(b"")
    with pytest.raises(ValueError, match="Unsupported checkpoint format: .*weights.ckpt"):
        read_checkpoint(unknown)


# --- files that cannot be a state dict of numbers (raw tracebacks before) -----------


def npz_bytes(tmp_path):
    source = tmp_path / "source.npz"
    np.savez(source, **STATE_DICT)
    data = source.read_bytes()
    source.unlink()
    return data


def test_zero_byte_file(tmp_path):
    for name in ("empty.npz", "empty.pth.tar", "empty.safetensors"):
        path = tmp_path / name
        path.write_bytes(b"")
        with pytest.raises(
            ValueError, match=f"{path} is empty \\(0 bytes\\): an interrupted download or copy"
        ):
            read_checkpoint(path)


@pytest.mark.parametrize("keep", [0.5, 0.98], ids=["half", "tail_cut"])
def test_truncated_npz(tmp_path, keep):
    data = npz_bytes(tmp_path)
    path = tmp_path / "truncated.npz"
    path.write_bytes(data[: int(len(data) * keep)])
    with pytest.raises(
        ValueError, match=f"{path} is not a valid .npz file \\(not a zip archive: truncated"
    ):
        read_checkpoint(path)


def test_random_bytes(tmp_path):
    path = tmp_path / "random.npz"
    path.write_bytes(np.random.default_rng(0).bytes(1000))
    with pytest.raises(ValueError, match=f"{path} is not a valid .npz file"):
        read_checkpoint(path)


def test_npz_with_a_damaged_member(tmp_path):
    data = bytearray(npz_bytes(tmp_path))
    start = data.index(b"\x93NUMPY")  # the first member's .npy header
    data[start : start + 6] = b"garbag"
    path = tmp_path / "damaged.npz"
    path.write_bytes(bytes(data))
    with pytest.raises(
        ValueError, match=f"{path} is a damaged .npz file: Bad CRC-32 for file 'head.weight.npy'"
    ):
        read_checkpoint(path)


def test_string_arrays_are_named(tmp_path):
    path = tmp_path / "strings.npz"
    np.savez(path, **{"head.weight": np.array(["a", "b"]), "head.bias": np.zeros(2),
                      "module.meta.arch": np.array("wavevit_s")})
    with pytest.raises(ValueError) as info:
        read_checkpoint(path)
    assert str(info.value) == (
        f"{path} holds entries that are not numbers (2): "
        "head.weight (dtype <U1), meta.arch (dtype <U9)"
    )


def test_object_arrays_are_never_unpickled(tmp_path):
    path = tmp_path / "objects.npz"
    np.savez(path, **{"head.bias": np.zeros(2), "head.weight": np.array([{"x": 1}], object)})
    with pytest.raises(
        ValueError, match=f"{path}: entry 'head.weight' holds Python objects, not numbers"
    ):
        read_checkpoint(path)


def test_npz_without_arrays(tmp_path):
    path = tmp_path / "nothing.npz"
    np.savez(path)
    with pytest.raises(ValueError, match=f"{path} holds no entries"):
        read_checkpoint(path)


def test_checkpoint_of_another_format_renamed(tmp_path):
    path = tmp_path / "model.npz"
    keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)]).save(tmp_path / "m.keras")
    os.replace(tmp_path / "m.keras", path)  # a zip archive, but not of .npy files
    with pytest.raises(
        ValueError, match=f"{path}: entry '.*' is not a NumPy array \\(a zip archive of other"
    ):
        read_checkpoint(path)


# --- PyTorch files ------------------------------------------------------------------


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
    path.write_bytes(b"PK")
    checkpoint = read_checkpoint(path)
    assert list(checkpoint) == ["head.bias"]
    np.testing.assert_array_equal(checkpoint["head.bias"], [0, 1, 2])
    assert calls == [(str(path), dict(map_location="cpu", weights_only=True))]
    assert allowed == [argparse.Namespace]


def test_pth_with_untrusted_objects_explains(tmp_path, monkeypatch):
    def load(path, **kwargs):
        raise pickle.UnpicklingError("Weights only load failed: unsupported global")

    monkeypatch.setitem(sys.modules, "torch", fake_torch(load)[0])
    path = tmp_path / "wavevit_s.pth"
    path.write_bytes(b"PK")
    with pytest.raises(ValueError, match=r"torch.load\(path, weights_only=False\)"):
        read_checkpoint(path)


def test_damaged_pth_is_named(tmp_path, monkeypatch):
    def load(path, **kwargs):  # what torch raises for a truncated zip-format file
        raise RuntimeError("PytorchStreamReader failed reading zip archive")

    monkeypatch.setitem(sys.modules, "torch", fake_torch(load)[0])
    path = tmp_path / "wavevit_s.pth.tar"
    path.write_bytes(b"PK\x03\x04")
    with pytest.raises(
        ValueError,
        match=f"{path} is not a readable PyTorch checkpoint: PytorchStreamReader failed",
    ):
        read_checkpoint(path)


def test_real_torch_file_round_trip(tmp_path):
    torch = pytest.importorskip("torch", reason="torch is an optional extra ([convert])")
    path = tmp_path / "wavevit.pth.tar"
    torch.save({"state_dict": {"module.head.bias": torch.arange(3.0)}}, path)
    np.testing.assert_array_equal(read_checkpoint(path)["head.bias"], [0.0, 1.0, 2.0])
    path.write_bytes(path.read_bytes()[:40])
    with pytest.raises(ValueError, match=f"{path} (is not a readable|could not be read)"):
        read_checkpoint(path)
