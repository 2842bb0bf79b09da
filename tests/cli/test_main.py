"""`keras-wavevit` entry point: subcommand dispatch and one-line errors."""

import sys
import types

import pytest

from keras_wavevit import cli


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
