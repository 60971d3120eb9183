"""Content hashes (SHA-256, hex) that key caches and check weights: files, file lists, arrays, tensors,
bytes, text and JSON values, and the seeds drawn from them.

One function per kind of content, used everywhere a cache is keyed or a file checked, so that two
places never hash the same thing two different ways. This is the only module of the package that
imports :mod:`hashlib` (``tests/test_digests.py`` checks it).
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

import numpy as np
import torch
from torch import Tensor, nn

__all__ = [
    "array_digest",
    "bytes_digest",
    "file_digest",
    "files_digest",
    "json_digest",
    "modules_digest",
    "parts_digest",
    "seed_digest",
    "tensors_digest",
    "text_digest",
]


def bytes_digest(data: bytes) -> str:
    """SHA-256 of ``data``."""
    return hashlib.sha256(data).hexdigest()


def text_digest(text: str) -> str:
    """SHA-256 of ``text`` as UTF-8."""
    return bytes_digest(text.encode("utf-8"))


def json_digest(value: object) -> str:
    """SHA-256 of ``value`` written as JSON with sorted keys (``json.dumps(value, sort_keys=True)``)."""
    return text_digest(json.dumps(value, sort_keys=True))


def seed_digest(data: bytes) -> int:
    """A non-negative 63-bit seed from ``data``: the first 8 bytes of its SHA-256, little-endian."""
    return int.from_bytes(hashlib.sha256(data).digest()[:8], "little") & (2**63 - 1)


def file_digest(path: str | os.PathLike[str], chunk: int = 1 << 20) -> str:
    """SHA-256 of a file's bytes."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            h.update(block)
    return h.hexdigest()


def files_digest(paths: Sequence[str | os.PathLike[str]]) -> str:
    """SHA-256 of a list of files without reading them: each resolved path with its size and
    modification time, in order (a file that is missing hashes as ``missing``)."""
    h = hashlib.sha256()
    for p in paths:
        path = Path(p).resolve()
        try:
            st = path.stat()
            stamp = f"{st.st_size}:{st.st_mtime_ns}"
        except OSError:
            stamp = "missing"
        h.update(f"{path}\t{stamp}\n".encode())
    return h.hexdigest()


def tensors_digest(tensors: Mapping[str, Tensor]) -> str:
    """SHA-256 over the names, dtypes, shapes and bytes of a state dict (key order does not matter)."""
    h = hashlib.sha256()
    for name in sorted(tensors):
        t = tensors[name].detach().to("cpu").contiguous()
        h.update(f"{name}|{t.dtype}|{tuple(t.shape)}|".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()


def modules_digest(modules: nn.Module | Iterable[nn.Module]) -> str:
    """:func:`tensors_digest` of one module's state dict, or of several (their keys numbered in order)."""
    parts = [modules] if isinstance(modules, nn.Module) else list(modules)
    merged = {f"{i}.{k}": v for i, m in enumerate(parts) for k, v in m.state_dict().items()}
    return tensors_digest(merged)


def array_digest(array: np.ndarray) -> str:
    """SHA-256 of an array's shape, dtype and bytes."""
    arr = np.ascontiguousarray(array)
    h = hashlib.sha256(f"{arr.shape}|{arr.dtype}|".encode())
    h.update(arr.tobytes())
    return h.hexdigest()


def parts_digest(*parts: str) -> str:
    """SHA-256 of strings, joined unambiguously (each prefixed by its length)."""
    h = hashlib.sha256()
    for part in parts:
        h.update(f"{len(part)}:{part}".encode())
    return h.hexdigest()
