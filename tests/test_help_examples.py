"""Every command's --help ends with an example a user can copy (issue 16)."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from latentface_sdk import cli
from latentface_sdk.eval import cli as eval_cli
from latentface_sdk.train import __main__ as train_main
from latentface_sdk.train import stage1, stage2

REPO = Path(__file__).resolve().parents[1]


def _help(main: Callable[[list[str]], int], argv: list[str], capsys: pytest.CaptureFixture[str]) -> str:
    with pytest.raises(SystemExit) as exc:
        main(argv)
    assert exc.value.code == 0
    return capsys.readouterr().out


@pytest.mark.parametrize(
    ("main", "argv", "expected"),
    [
        (cli.main, ["--help"], "latentface encode photos/ -o features.npz"),
        (cli.main, ["encode", "--help"], "latentface encode photos/"),
        (cli.main, ["disentangle", "--help"], "latentface disentangle photos/"),
        (cli.main, ["frontalize", "--help"], "latentface frontalize photo.jpg -o front.png"),
        (stage1.main, ["--help"], "-m latentface_sdk.train stage1"),
        (stage2.main, ["--help"], "latentface-train stage2 --stage1"),
        (train_main.export_main, ["--help"], "latentface-train export --model"),
        (eval_cli.main, ["verify", "--help"], "python -m latentface_sdk.eval verify --pairs"),
        (eval_cli.main, ["fer", "--help"], "python -m latentface_sdk.eval fer --data"),
    ],
)
def test_help_has_an_example(main: Callable[[list[str]], int], argv: list[str], expected: str,
                             capsys: pytest.CaptureFixture[str]) -> None:
    text = _help(main, argv, capsys)
    assert "example" in text and expected in text


def test_train_dispatcher_usage_lists_examples(capsys: pytest.CaptureFixture[str]) -> None:
    assert train_main.main(["--help"]) == 0
    out = capsys.readouterr().out
    assert "examples:" in out and "latentface-train stage2 --stage1" in out
    assert train_main.main(["nope"]) == 2 and "unknown stage" in capsys.readouterr().err


@pytest.mark.parametrize("script", ["verify.py", "fer.py", "pictures.py"])
@pytest.mark.slow
def test_examples_have_a_quick_mode(script: str) -> None:
    proc = subprocess.run([sys.executable, str(REPO / "examples" / script), "--help"], capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "--quick" in proc.stdout
