"""Atomic writes: nothing partial under a destination, whatever happens."""

import os
import signal
import subprocess
import sys
import textwrap

import keras
import numpy as np
import pytest

from keras_wavevit import files


def test_a_failed_write_leaves_the_old_file_and_no_staging(tmp_path):
    destination = tmp_path / "summary.json"
    destination.write_text("old")
    with pytest.raises(RuntimeError, match="disk full"):
        with files.atomic_path(destination) as temporary:
            with open(temporary, "w") as handle:
                handle.write("half of the new")
            raise RuntimeError("disk full")
    assert destination.read_text() == "old"
    assert os.listdir(tmp_path) == ["summary.json"]


def test_written_files_get_the_umask_mode_not_a_private_one(tmp_path):
    previous = os.umask(0o022)
    try:
        files.atomic_write_text(tmp_path / "a.txt", "x")
        with files.atomic_directory(tmp_path / "export" / "1") as staging:
            open(os.path.join(staging, "saved_model.pb"), "w").close()
    finally:
        os.umask(previous)
    assert oct(os.stat(tmp_path / "a.txt").st_mode & 0o777) == oct(0o644)
    assert oct(os.stat(tmp_path / "export" / "1").st_mode & 0o777) == oct(0o755)


def test_directory_replace_rules(tmp_path):
    destination = tmp_path / "1"
    with files.atomic_directory(destination) as staging:
        open(os.path.join(staging, "old.pb"), "w").close()
    with pytest.raises(FileExistsError, match="already exists"):
        with files.atomic_directory(destination):
            raise AssertionError("the body must not run")
    with files.atomic_directory(destination, replace=True) as staging:
        open(os.path.join(staging, "new.pb"), "w").close()
    assert os.listdir(destination) == ["new.pb"]
    assert sorted(os.listdir(tmp_path)) == ["1"]


def test_model_files_round_trip_and_bad_endings_fail_first(tmp_path):
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
    x = np.ones((1, 3), "float32")
    files.save_model_atomically(model, tmp_path / "m.keras")
    np.testing.assert_array_equal(keras.saving.load_model(tmp_path / "m.keras")(x), model(x))
    with pytest.raises(ValueError, match=r"must end in \.keras or \.weights\.h5; received '.*m\.h5'"):
        files.save_model_atomically(model, tmp_path / "m.h5")
    assert sorted(os.listdir(tmp_path)) == ["m.keras"]


def test_kill_during_a_write_keeps_the_previous_file(tmp_path):
    """A writer killed with SIGKILL mid-write leaves the old content intact."""
    destination = tmp_path / "best.bin"
    destination.write_bytes(b"previous good state")
    script = textwrap.dedent(
        f"""
        import sys, time
        from keras_wavevit.files import atomic_path
        with atomic_path({str(destination)!r}) as temporary:
            with open(temporary, "wb") as handle:
                handle.write(b"partial")
                handle.flush()
                print("writing", flush=True)
                time.sleep(60)
        """
    )
    child = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout.readline().strip() == "writing"
        child.send_signal(signal.SIGKILL)
        child.wait(timeout=30)
    finally:
        child.kill()
    assert destination.read_bytes() == b"previous good state"
    leftovers = [name for name in os.listdir(tmp_path) if name != "best.bin"]
    assert len(leftovers) == 1 and leftovers[0].startswith(files.PARTIAL_PREFIX)
    assert files.remove_partial_writes(tmp_path) == leftovers
    assert os.listdir(tmp_path) == ["best.bin"]
