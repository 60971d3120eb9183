"""A Hugging Face Hub cache built by hand, in the layout huggingface_hub writes, for the tests that read
model folders from it offline (tests/test_hub.py, tests/test_catalog.py).

The fixtures those tests share (``hub_env``: no Hub settings from the environment; ``bundled``: a
checkout with two bundled models) are in ``tests/conftest.py``.
"""

from __future__ import annotations

import shutil
from collections.abc import Sequence
from pathlib import Path

#: The snapshot commit :func:`fake_cache` writes unless told otherwise.
COMMIT = "0123456789abcdef0123456789abcdef01234567"


def fake_cache(cache: Path, repo_id: str, model_dir: Path, commit: str = COMMIT,
               files: Sequence[str] = ("config.json", "model.safetensors")) -> Path:
    """``files`` of ``model_dir`` as snapshot ``commit`` of ``repo_id`` in ``cache``, with ``refs/main``
    pointing at it (``models--owner--name/{refs/main, snapshots/<commit>/files}``); returns the snapshot."""
    repo = cache / ("models--" + repo_id.replace("/", "--"))
    snap = repo / "snapshots" / commit
    snap.mkdir(parents=True)
    for name in files:
        shutil.copy(model_dir / name, snap / name)
    (repo / "refs").mkdir(exist_ok=True)
    (repo / "refs" / "main").write_text(commit)
    return snap
