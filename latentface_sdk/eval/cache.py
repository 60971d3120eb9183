"""On-disk cache of per-image feature matrices, so that reruns skip feature extraction.

One ``.npz`` file per feature set and image list, named ``<feature>-<key[:16]>.npz``. The key is a
SHA-256 over the feature set's name, the identity of what computes it (parameters, model checksum or
weights digest), the crop policy and the image list (paths, sizes, modification times): change any of
them and the cache misses. Files are written atomically and read with ``allow_pickle=False``; an
unreadable or mismatching file is ignored with a warning and recomputed.
"""

from __future__ import annotations

import hashlib
import os
import re
import tempfile
import warnings
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np
import torch
from torch import nn


def files_digest(paths: Sequence[str | Path]) -> str:
    """SHA-256 of the image list: each resolved path with its size and modification time, in order."""
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


def state_dict_digest(modules: nn.Module | Iterable[nn.Module]) -> str:
    """SHA-256 over the names, shapes, dtypes and values of every tensor in the modules' state dicts."""
    h = hashlib.sha256()
    for i, module in enumerate([modules] if isinstance(modules, nn.Module) else list(modules)):
        for name, tensor in sorted(module.state_dict().items()):
            t = tensor.detach().to("cpu").contiguous()
            h.update(f"{i}.{name}:{tuple(t.shape)}:{t.dtype}\n".encode())
            if t.dtype == torch.bfloat16:
                t = t.float()
            h.update(t.numpy().tobytes())
    return h.hexdigest()


def cache_key(*parts: str) -> str:
    """SHA-256 of the parts, joined unambiguously."""
    h = hashlib.sha256()
    for part in parts:
        h.update(f"{len(part)}:{part}".encode())
    return h.hexdigest()


class FeatureCache:
    """A folder of cached feature matrices (created on first write)."""

    def __init__(self, directory: str | Path) -> None:
        self.directory = Path(directory)

    def path(self, feature: str, key: str) -> Path:
        """Where the features of ``feature`` under ``key`` live."""
        safe = re.sub(r"[^A-Za-z0-9_.-]+", "_", feature)
        return self.directory / f"{safe}-{key[:16]}.npz"

    def load(self, feature: str, key: str, n_images: int) -> np.ndarray | None:
        """The cached ``(n_images, D)`` matrix, or None when absent, unreadable or stale."""
        path = self.path(feature, key)
        if not path.is_file():
            return None
        try:
            with np.load(path, allow_pickle=False) as data:
                stored_key = str(data["key"])
                features = np.asarray(data["features"])
        except (OSError, ValueError, KeyError) as exc:
            warnings.warn(f"ignoring unreadable feature cache {path} ({exc})", stacklevel=2)
            return None
        if stored_key != key or features.ndim != 2 or features.shape[0] != n_images:
            warnings.warn(f"ignoring stale feature cache {path}", stacklevel=2)
            return None
        return features

    def save(self, feature: str, key: str, features: np.ndarray, paths: Sequence[str | Path]) -> Path:
        """Write ``features`` (one row per path) atomically; returns the file written."""
        path = self.path(feature, key)
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=path.stem, suffix=".tmp", dir=path.parent)
        try:
            with os.fdopen(fd, "wb") as fh:
                np.savez(
                    fh,
                    features=np.asarray(features),
                    key=np.array(key),
                    feature=np.array(feature),
                    paths=np.array([str(p) for p in paths], dtype=str),
                )
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        return path


__all__ = ["FeatureCache", "cache_key", "files_digest", "state_dict_digest"]
