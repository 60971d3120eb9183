"""Every snippet in README.md and docs/*.md works as pasted (issue 16).

* ``python`` blocks run, in order per file, from a folder laid out like the repository root (with
  ``../shared`` beside it), as a user pastes them after the README's set-up.
* ``bash`` blocks: each command (continuation lines joined, comments dropped) is checked up to its
  argument parsing by ``tests/_parse_only.py``: the script or module exists, imports, and its parser
  accepts every flag as written. Long jobs (training runs, full benchmarks) are documented with their
  times and cannot run inside the suite; this keeps their command lines from rotting. Other tools'
  commands (``pip check``) run as they are. ``pytest``
  commands are collected (``--collect-only``), which checks their paths and options. Files a command
  reads (``--config``, ``--pairs``, scripts) must exist.
* The README's set-up and test lines are what ``.ci/run`` executes; they are checked here like the rest.
* ``text`` blocks (file trees, usage synopses, outputs) are not commands. A block without a language
  fails the test: say what it is.
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
DOCS = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
BIN = Path(sys.executable).parent
PARSE_ONLY = REPO / "tests" / "_parse_only.py"
#: Flags whose value is a file the command reads (it must exist, relative to the repository root).
INPUT_FLAGS = {"--config", "--pairs"}


def fenced_blocks(markdown: str) -> list[tuple[str, str]]:
    """``(language, code)`` of each fenced block, in order."""
    return [(m.group(1), m.group(2))
            for m in re.finditer(r"^```(\w*)\n(.*?)^```", markdown, flags=re.S | re.M)]


def shell_commands(code: str) -> list[str]:
    """The commands of a bash block: continuation lines joined, comments and blank lines dropped."""
    joined = re.sub(r"\s*\\\n\s*", " ", code)
    out = []
    for line in joined.splitlines():
        line = line.split(" #")[0].strip() if not line.lstrip().startswith("#") else ""
        if line:
            out.append(line)
    return out


def _blocks(kind: str) -> list[tuple[str, int, str]]:
    found = []
    for doc in DOCS:
        for i, (lang, code) in enumerate(fenced_blocks(doc.read_text(encoding="utf-8"))):
            if lang == kind:
                found.append((doc.relative_to(REPO).as_posix(), i, code))
    return found


def test_every_block_says_what_it_is() -> None:
    for doc in DOCS:
        for lang, code in fenced_blocks(doc.read_text(encoding="utf-8")):
            assert lang in {"python", "bash", "text", "json"}, (
                f"{doc.name}: block without a known language:\n{code}")


def _argv(command: str) -> tuple[dict[str, str], list[str]]:
    """Environment assignments and the argument vector of one documented command, with the program
    mapped to this interpreter's tools (``python``, ``.venv/bin/python``, console scripts, torchrun)."""
    words = shlex.split(command)
    env: dict[str, str] = {}
    while words and re.fullmatch(r"[A-Z_][A-Z0-9_]*=\S*", words[0]):
        key, value = words.pop(0).split("=", 1)
        env[key] = value
    program = words[0].removeprefix(".venv/bin/")
    if program == "torchrun":  # torchrun [options] -m module args -> one process of the module
        words = ["python", *words[words.index("-m"):]]
        program = "python"
    words[0] = program
    if words[:3] == ["python", "-m", "pytest"]:
        words = ["pytest", *words[3:]]
    return env, words


def _check_inputs(words: list[str], cwd: Path) -> None:
    for flag, value in zip(words, words[1:], strict=False):
        if flag in INPUT_FLAGS:
            assert (cwd / value).exists(), f"{' '.join(words)}: {value} does not exist"


def _run_parse_only(words: list[str], env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    program, args = words[0], words[1:]
    if program == "python":
        if args[0] == "-m":
            cmd = [sys.executable, str(PARSE_ONLY), "module", args[1], *args[2:]]
        elif args[0] == "-c":
            cmd = [sys.executable, *args]  # a one-liner: run it
        else:
            assert (cwd / args[0]).is_file(), f"{args[0]} does not exist"
            cmd = [sys.executable, str(PARSE_ONLY), "script", args[0], *args[1:]]
    elif program == "pytest":
        cmd = [sys.executable, "-m", "pytest", "--collect-only", "-q", "-p", "no:cacheprovider", *args]
    else:
        assert (BIN / program).is_file(), f"{program}: not an installed command"
        cmd = [sys.executable, str(PARSE_ONLY), "console", program, *args]
    return subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=300,
                          env={**os.environ, "OMP_NUM_THREADS": "1", **env})


BASH = _blocks("bash")


@pytest.mark.parametrize(("doc", "index", "code"), BASH, ids=[f"{d}#{i}" for d, i, _ in BASH])
@pytest.mark.slow
def test_bash_snippets_parse(doc: str, index: int, code: str) -> None:
    commands = shell_commands(code)
    assert commands, f"{doc} block {index} has no command"
    for command in commands:
        for part in command.split(" && "):
            env, words = _argv(part)
            if words[0] == "python3" and words[1:3] == ["-m", "venv"]:
                continue  # the README's set-up makes the venv this suite runs in
            if words[0] == "pip" or words[:2] == ["pip", "install"] or words[0].endswith("pip"):
                continue  # installing is what .ci/run does from nothing
            _check_inputs(words, REPO)
            proc = _run_parse_only(words, env, REPO)
            assert proc.returncode == 0, (
                f"{doc} block {index}: `{part}` failed:\n{proc.stdout[-1500:]}{proc.stderr[-1500:]}")
            ours = words[0].startswith("latentface") or (words[0] == "python" and (
                words[1].endswith(".py")
                or words[1:3] == ["-m", words[2]] and words[2].startswith("latentface")))
            if ours:  # the repository's own commands all parse arguments before working
                assert "PARSED-OK" in proc.stdout or "RAN-TO-END" in proc.stdout, (
                    f"{doc}: `{part}` never parsed its arguments:\n{proc.stdout[-800:]}")


@pytest.mark.slow
def test_python_snippets_run_as_pasted(shared_data: Path, tmp_path: Path) -> None:
    blocks = _blocks("python")
    assert len(blocks) >= 2
    root = tmp_path / "repo"  # the repository root as the docs assume it: ../shared/data beside it
    root.mkdir()
    (tmp_path / "shared").symlink_to(shared_data.parent)
    for doc, index, code in blocks:
        proc = subprocess.run([sys.executable, "-c", code], cwd=root, capture_output=True, text=True,
                              timeout=300, env={**os.environ, "OMP_NUM_THREADS": "1",
                                   "LATENTFACE_ONNX_CACHE": str(tmp_path / "onnx-cache")})
        assert proc.returncode == 0, f"{doc} python block {index} failed:\n{code}\n{proc.stderr[-2000:]}"
        if doc == "README.md":
            assert "Encoding(n=1, ok=1" in proc.stdout and "no such file" in proc.stdout.lower()
    assert (root / "frontal.png").is_file() and (root / "a_frontal.png").is_file()


def test_helpers() -> None:
    text = "intro\n```python\nprint(1)\n```\n```bash\nls \\\n  -l  # long\n# note\n```\n```text\ntree\n```\n"
    assert fenced_blocks(text) == [("python", "print(1)\n"), ("bash", "ls \\\n  -l  # long\n# note\n"),
                                   ("text", "tree\n")]
    assert shell_commands(fenced_blocks(text)[1][1]) == ["ls -l"]
    assert _argv("OMP_NUM_THREADS=1 torchrun --nproc_per_node 2 -m pkg.mod --x 1") == (
        {"OMP_NUM_THREADS": "1"}, ["python", "-m", "pkg.mod", "--x", "1"])
    assert _argv(".venv/bin/python -m pytest -q")[1] == ["pytest", "-q"]
