"""`keras-wavevit` entry point: subcommand dispatch, one-line errors, quiet output."""

import os
import pathlib
import subprocess
import sys
import types

import pytest

from keras_wavevit import cli
from keras_wavevit.cli import output

ROOT = pathlib.Path(__file__).resolve().parents[2]


def _fake_subcommand(monkeypatch, error):
    module = types.ModuleType("fake_subcommand")
    module.configure_parser = lambda parser: parser.add_argument("path")

    def run(args):
        raise error

    module.run = run
    monkeypatch.setitem(sys.modules, "fake_subcommand", module)
    monkeypatch.setattr(cli, "SUBCOMMANDS", {"fake": ("fake_subcommand", "a fake")})


@pytest.mark.parametrize(
    "error, expected",
    [
        (ValueError("image size must be N, HxW or H,W; received 'big'."),
         "keras-wavevit fake: error: image size must be N, HxW or H,W; received 'big'.\n"),
        (FileNotFoundError("No such file: 'x.keras'"),
         "keras-wavevit fake: error: No such file: 'x.keras'\n"),
        (ImportError("Reading .pth files needs torch: pip install torch"),
         "keras-wavevit fake: error: Reading .pth files needs torch: pip install torch\n"),
        (KeyError("missing weight 'head/kernel'"),
         "keras-wavevit fake: error: missing weight 'head/kernel'\n"),
    ],
)
def test_user_errors_end_as_one_line_and_status_2(monkeypatch, capsys, error, expected):
    _fake_subcommand(monkeypatch, error)
    assert cli.main(["fake", "some/path"]) == 2
    captured = capsys.readouterr()
    assert captured.err == expected
    assert "Traceback" not in captured.err


def test_traceback_flag_reraises_anywhere_on_the_line(monkeypatch):
    _fake_subcommand(monkeypatch, ValueError("bad input"))
    with pytest.raises(ValueError, match="bad input"):
        cli.main(["fake", "some/path", "--traceback"])
    with pytest.raises(ValueError, match="bad input"):
        cli.main(["--traceback", "fake", "some/path"])


def test_programming_errors_are_not_hidden(monkeypatch):
    _fake_subcommand(monkeypatch, TypeError("a bug"))
    with pytest.raises(TypeError, match="a bug"):
        cli.main(["fake", "some/path"])


def test_unknown_subcommand_is_an_argparse_error(capsys):
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["fly"])
    assert exit_info.value.code == 2
    assert "invalid choice: 'fly'" in capsys.readouterr().err


# --- TensorFlow's logs: hidden unless --verbose ---------------------------------------

# Lines TensorFlow 2.21 writes, as the C++ code writes them (file descriptor 2).
CUINIT = (b"E0000 00:00:1796000618.745454   18513 cuda_platform.cc:52] failed call to cuInit: "
          b"INTERNAL: CUDA error: Failed call to cuInit: UNKNOWN ERROR (303)\n")
PREDICT_COST = (b"W0000 00:00:1796000627.940271   18513 op_level_cost_estimator.cc:699] Error in "
                b"PredictCost() for the op: op: \"CropAndResize\" attr { key: \"T\" }\n")
XLA = (b"I0000 00:00:1796000813.174039   18992 device_compiler.h:208] Compiled cluster using "
       b"XLA!  This line is logged at most once for the lifetime of the process.\n")
NODEDEF = (b"E0000 00:00:1796004866.545464   15189 node_def_util.cc:682] NodeDef mentions "
           b"attribute use_unbounded_threadpool which is not in the op definition: Op<...>\n")
REAL_ERROR = b"E0000 00:00:1796000813.174039   18992 kernel.cc:1] Out of memory\n"
GRADIENTS = ("Importing a function (__inference_internal_grad_fn_53392) with ops with unsaved "
             "custom gradients. Will likely fail if a gradient is requested.")


def _noisy_subcommand(monkeypatch):
    from absl import logging as absl_logging

    module = types.ModuleType("noisy_subcommand")
    module.configure_parser = lambda parser: parser.add_argument("path")

    def run(args):
        os.write(2, CUINIT + NODEDEF + PREDICT_COST + b"partial line without newline, then " + XLA)
        os.write(2, REAL_ERROR + b"a last line without a newline")
        absl_logging.warning(GRADIENTS)
        absl_logging.warning("a warning the user should see")
        print(f"Model written to {args.path}")
        return 0

    module.run = run
    monkeypatch.setitem(sys.modules, "noisy_subcommand", module)
    monkeypatch.setattr(cli, "SUBCOMMANDS", {"noisy": ("noisy_subcommand", "noise")})


@pytest.mark.parametrize("verbose", [False, True])
def test_library_logs_are_hidden_unless_verbose(monkeypatch, capfd, caplog, verbose):
    _noisy_subcommand(monkeypatch)
    monkeypatch.delenv("TF_CPP_MIN_LOG_LEVEL", raising=False)
    assert cli.main(["noisy", "out/1"] + ["--verbose"] * verbose) == 0
    captured = capfd.readouterr()
    assert captured.out == "Model written to out/1\n"
    kept = REAL_ERROR.decode() + "a last line without a newline"
    noise = [line.decode() for line in (CUINIT, NODEDEF, PREDICT_COST, XLA)]
    if verbose:
        assert captured.err == "".join(noise[:3]) + "partial line without newline, then " + \
            noise[3] + kept
    else:
        assert captured.err == "partial line without newline, then " + noise[3] + kept
    messages = [record.getMessage() for record in caplog.records]
    assert "a warning the user should see" in messages
    assert (GRADIENTS in messages) == verbose
    assert "TF_CPP_MIN_LOG_LEVEL" not in os.environ  # restored


def test_verbose_switch_and_train_progress_levels():
    assert output.take_verbose_flag(["export", "--verbose", "m.keras", "out"]) == (
        True, ["export", "m.keras", "out"])
    assert output.take_verbose_flag(["train", "--epochs", "2", "--verbose"]) == (
        True, ["train", "--epochs", "2"])
    for level in ("auto", "0", "1", "2"):
        argv = ["train", "--verbose", level, "--verbose"]
        assert output.take_verbose_flag(argv) == (True, ["train", "--verbose", level])
    assert output.take_verbose_flag(["train", "--verbose=1"]) == (False, ["train", "--verbose=1"])
    # The levels `train --verbose` takes are TrainConfig's.
    from keras_wavevit.recipes.train_config import VERBOSITY

    assert output.TRAIN_VERBOSITY == tuple(str(level) for level in VERBOSITY)


_IMPORT_THEN_MAIN = (
    "import sys\n"
    "from keras_wavevit import cli\n"
    "print('IMPORTED', file=sys.stderr, flush=True)\n"
    "raise SystemExit(cli.main())\n"
)


def test_export_prints_its_error_and_tensorflow_logs_only_with_verbose(tmp_path):
    """A real command in a fresh process: the lines TensorFlow writes once the
    package is imported (loading the model starts its devices; the model's
    unknown input size then stops the export before any work)."""
    from tests.test_export import plain_classifier

    model = str(tmp_path / "model.keras")
    plain_classifier(input_shape=(None, None, 3)).save(model)
    env = {key: value for key, value in os.environ.items() if key != "TF_CPP_MIN_LOG_LEVEL"}
    after_import = {}
    for verbose in (False, True):
        result = subprocess.run(
            [sys.executable, "-c", _IMPORT_THEN_MAIN, "export", model, str(tmp_path / "served")]
            + ["--verbose"] * verbose,
            cwd=ROOT, env=env, capture_output=True, text=True, timeout=300,
        )
        assert result.returncode == 2, result.stderr[-3000:]
        lines = result.stderr.split("IMPORTED\n", 1)[1].splitlines()
        assert lines[-1].startswith("keras-wavevit export: error: ") and "input size" in lines[-1]
        after_import[verbose] = [line for line in lines if output.NATIVE_NOISE.match(line.encode())]
    assert after_import[True], "no TensorFlow log line to hide"  # here: failed call to cuInit
    assert after_import[False] == []
