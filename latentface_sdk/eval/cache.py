"""On-disk cache of per-image feature matrices, so that reruns skip feature extraction.

One ``.npz`` file per feature set and image list, named ``<feature>-<key[:16]>.npz``. The key is a
SHA-256 over the feature set's name, the identity of what computes it (parameters, model checksum or
weights digest), the crop policy and the image list (paths, sizes, modification times): change any of
them and the cache misses. Files are written atomically and read with ``allow_pickle=False``; an
unreadable or mismatching file is ignored with a warning and recomputed.
"""

from __future__ import annotations

import re
import warnings
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from ..atomic import atomic_write


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
        atomic_write(path, lambda fh: np.savez(
            fh,
            features=np.asarray(features),
            key=np.array(key),
            feature=np.array(feature),
            paths=np.array([str(p) for p in paths], dtype=str),
        ))
        return path


__all__ = ["FeatureCache"]
