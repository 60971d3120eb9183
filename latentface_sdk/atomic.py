"""Atomic file writes: a file is either its old self or completely new, never half written.

Every writer in the package (model folders, checkpoints, crop and feature caches, the command line's
outputs and resumable parts) goes through :func:`atomic_path`: write to a temporary file in the same
folder, then ``os.replace`` it over the target; on any error the temporary file is removed and the
target is untouched. Files get mode 0644 unless told otherwise (``mkstemp`` would leave them owner-only).
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any, BinaryIO

__all__ = ["atomic_path", "atomic_write", "atomic_write_bytes", "save_safetensors", "save_torch"]

#: Mode of the files written (``rw-r--r--``), like other tools; a model folder is often shared.
FILE_MODE = 0o644


@contextmanager
def atomic_path(path: str | os.PathLike[str], *, mode: int = FILE_MODE) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; when the block ends without error it replaces ``path``.

    The parent folder is created. Use it with writers that take a file name (``safetensors``,
    ``torch.save``); :func:`atomic_write` is the same for writers that take an open file.
    """
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix="." + target.name + ".", suffix=".tmp", dir=target.parent)
    os.close(fd)
    try:
        yield Path(tmp)
        os.chmod(tmp, mode)
        os.replace(tmp, target)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def atomic_write(path: str | os.PathLike[str], write: Callable[[BinaryIO], object], *,
                 mode: int = FILE_MODE) -> Path:
    """Call ``write(fh)`` on a binary file handle and put the result at ``path`` atomically; returns the
    path."""
    with atomic_path(path, mode=mode) as tmp, open(tmp, "wb") as fh:
        write(fh)
    return Path(path)


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes, *, mode: int = FILE_MODE) -> Path:
    """Write ``data`` to ``path`` atomically; returns the path."""
    return atomic_write(path, lambda fh: fh.write(data), mode=mode)


def save_safetensors(tensors: Mapping[str, Any], path: str | os.PathLike[str],
                     metadata: dict[str, str] | None = None) -> Path:
    """``safetensors.torch.save_file`` to ``path``, atomically; returns the path."""
    from safetensors.torch import save_file

    with atomic_path(path) as tmp:
        save_file(dict(tensors), str(tmp), metadata=metadata)
    return Path(path)


def save_torch(obj: Any, path: str | os.PathLike[str]) -> Path:
    """``torch.save`` of plain data (trainer state) to ``path``, atomically; read it back with
    ``torch.load(..., weights_only=True)``. Returns the path."""
    import torch

    with atomic_path(path) as tmp:
        torch.save(obj, tmp)
    return Path(path)
