"""No machine-specific path in the committed data and documentation (issue 28): numbers must rerun elsewhere.

Every tracked JSON, Markdown, TOML, YAML and config file is searched for absolute paths outside the
repository (``/work/...``, ``/home/...``, ``/tmp/...``, ``C:\\...``): a results file or a page that names
a folder of the machine it was made on tells a reader a command they cannot run.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SUFFIXES = {".json", ".md", ".toml", ".yaml", ".yml", ".cfg", ".ini", ".txt"}
# An absolute POSIX path under a machine folder, or a Windows drive path; URLs (https://...) are not paths.
ABSOLUTE = re.compile(r"(?<![\w.:/~-])(?:/(?:work|home|root|tmp|Users|mnt|opt|var|scratch|data)/[\w.-]+"
                      r"|[A-Za-z]:\\\\?[\w.-]+)")


def tracked_files() -> list[Path]:
    """The repository's tracked files (a plain walk of the checkout when git is not available)."""
    try:
        out = subprocess.run(["git", "ls-files", "-z"], cwd=REPO, capture_output=True, check=True,
                             timeout=60).stdout
        return [REPO / name for name in out.decode().split("\0") if name]
    except (OSError, subprocess.SubprocessError):
        skip = {".git", ".venv", "runs", "node_modules"}
        return [p for p in REPO.rglob("*") if p.is_file() and not skip & set(p.relative_to(REPO).parts)]


def test_the_pattern_finds_what_it_should() -> None:
    assert ABSOLUTE.search("--json /work/runs/idle/x.json")
    assert ABSOLUTE.search('"init_from": "/home/me/runs/s1ft/model"')
    assert ABSOLUTE.search("written to C:\\Users\\me")
    for fine in ("https://huggingface.co/docs/work/x", "runs/cache", "../shared/data/photos",
                 "weights/x/config.json", "~/.cache/latentface/onnx", "a/tmp/b"):
        assert not ABSOLUTE.search(fine), fine


@pytest.mark.parametrize("suffix", sorted(SUFFIXES))
def test_no_absolute_machine_paths_in_committed_files(suffix: str) -> None:
    found = []
    for path in tracked_files():
        if path.suffix.lower() != suffix or not path.is_file():
            continue
        text = path.read_text(encoding="utf-8", errors="replace")
        for number, line in enumerate(text.splitlines(), 1):
            m = ABSOLUTE.search(line)
            if m:
                found.append(f"{path.relative_to(REPO)}:{number}: {m.group(0)}")
    assert not found, "machine-specific paths:\n" + "\n".join(found[:30])
