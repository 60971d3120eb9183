"""README.md's Python snippets run as pasted (from the repository root, with ../shared/data beside it)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def python_blocks(markdown: str) -> list[str]:
    """The fenced ```python blocks of a markdown text, in order."""
    return re.findall(r"^```python\n(.*?)^```", markdown, flags=re.S | re.M)


def test_readme_python_quickstart_runs_as_pasted(shared_data: Path, tmp_path: Path) -> None:
    blocks = python_blocks((REPO / "README.md").read_text(encoding="utf-8"))
    assert blocks, "README.md has no python snippet"
    # Run from a copy of the layout the README assumes: the repository root with ../shared/data beside it.
    root = tmp_path / "repo"
    root.mkdir()
    (tmp_path / "shared").symlink_to(shared_data.parent)
    for i, code in enumerate(blocks):
        proc = subprocess.run([sys.executable, "-c", code], cwd=root, capture_output=True, text=True,
                              timeout=300, env={**os.environ, "OMP_NUM_THREADS": "1"})
        assert proc.returncode == 0, f"README python block {i} failed:\n{code}\n{proc.stderr[-2000:]}"
        if "frontal.png" in code:
            assert (root / "frontal.png").is_file()
    assert "Encoding(n=1, ok=1" in proc.stdout and "no such file" in proc.stdout.lower()


def test_python_blocks_finds_fenced_code() -> None:
    text = "intro\n```python\nprint(1)\n```\n```bash\nls\n```\n```python\nx = 2\n```\n"
    assert python_blocks(text) == ["print(1)\n", "x = 2\n"]
    with pytest.raises(AssertionError):
        assert python_blocks("```bash\nls\n```\n")
