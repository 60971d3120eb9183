"""Face crops of a whole data set, and their cache: what training, evaluation and benchmarks read.

:func:`prepare_crops` sends every image path through the same one-image path as ``FaceEncoder``
(:func:`latentface_sdk.pipeline.crop_inputs`: MTCNN with the model's crop policy from
:mod:`latentface_sdk.detection`), keeps the largest face of each image with its box, score and five
landmarks, never drops a row (unreadable files are marked, faces not found are centre-cropped or marked),
and caches the result in an ``.npz`` keyed by the paths, their sizes and dates, and the settings.
It sits above both :mod:`~latentface_sdk.detection` and :mod:`~latentface_sdk.pipeline`, which import
nothing from it.
"""

from __future__ import annotations

import dataclasses
import logging
import os
from collections.abc import Sequence
from contextlib import closing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np
from tqdm.auto import tqdm

from .atomic import atomic_write
from .config import CropConfig
from .detection import (
    METHOD_CENTER,
    METHOD_FAILED,
    METHOD_MTCNN,
    METHOD_NOFACE,
    FaceBox,
    FaceDetector,
    landmarks_in_crop,
)
from .digests import json_digest
from .images import DEFAULT_MAX_PIXELS, convert_batches
from .pipeline import auto_decode_workers, crop_inputs

__all__ = ["CropSet", "prepare_crops"]

logger = logging.getLogger(__name__)

_CACHE_FORMAT = 2  # 2: crops carry their five landmarks


@dataclass
class CropSet:
    """Face crops of a data set, one row per input path (input order kept, nothing dropped).

    ``crops`` ``uint8 (N, size, size, 3)`` (zeros where not ``ok``); ``ok`` ``bool (N,)``;
    ``boxes`` ``float32 (N, 4)`` MTCNN boxes in original pixels (NaN when none); ``scores``
    ``float32 (N,)`` (NaN when none); ``landmarks`` ``float32 (N, 5, 2)`` MTCNN's five points (eyes,
    nose, mouth corners, in the image's left-to-right order) in crop coordinates ``[-1, 1]`` (see
    :func:`landmarks_in_crop`; NaN when none); ``method`` one of ``"mtcnn"``, ``"center"``, ``"noface"``,
    ``"failed"`` per row; ``errors`` the reason for ``"failed"`` rows (empty string otherwise).
    """

    paths: list[str]
    crops: np.ndarray
    ok: np.ndarray
    boxes: np.ndarray
    scores: np.ndarray
    method: np.ndarray
    errors: list[str] = field(default_factory=list)
    landmarks: np.ndarray = field(default_factory=lambda: np.zeros((0, 5, 2), dtype=np.float32))

    def __len__(self) -> int:
        return len(self.paths)

    def counts(self, done: int | None = None) -> dict[str, int]:
        """How many rows got each method code; ``done``: only the first ``done`` rows (those processed so
        far, while the rest still hold their initial ``"failed"``)."""
        method = self.method if done is None else self.method[:done]
        return {
            m: int((method == m).sum())
            for m in (METHOD_MTCNN, METHOD_CENTER, METHOD_NOFACE, METHOD_FAILED)
        }

    @property
    def n_failed(self) -> int:
        """Rows whose file could not be read."""
        return int((self.method == METHOD_FAILED).sum())


def prepare_crops(
    paths: Sequence[str | Path],
    crop: CropConfig,
    *,
    detect: bool = True,
    fallback: Literal["center", "none"] = "none",
    cache_file: Path | None = None,
    progress: bool = True,
    batch_size: int = 32,
    detector: FaceDetector | None = None,
    decode_workers: int | None = None,
) -> CropSet:
    """Crop the largest face of every image in ``paths`` (training and evaluation data).

    With ``detect=True`` MTCNN finds the faces and :func:`crop_face` cuts the largest; when none is
    found, ``fallback="center"`` uses :func:`crop_aligned` (method ``"center"``) and ``"none"`` marks
    the row ``"noface"``. With ``detect=False`` every image is centre-cropped. Unreadable files are
    marked ``"failed"`` and counted, never raised. ``decode_workers`` threads decode the next batches'
    files during detection (:func:`~latentface_sdk.images.convert_batches`; 0: none; None: 0 on the CPU,
    4 with a CUDA detector). With
    ``cache_file`` the result is saved as an ``.npz`` keyed by a hash of (paths, file sizes and mtimes,
    crop config, detect, fallback) and reused while the key matches; it is written atomically.
    """
    if fallback not in ("center", "none"):
        raise ValueError(f"fallback must be 'center' or 'none' (got {fallback!r})")
    if batch_size <= 0:
        raise ValueError(f"batch_size must be positive (got {batch_size})")
    names = [os.fspath(p) for p in paths]
    key = _cache_key(names, crop, detect, fallback)
    if cache_file is not None:
        cached = _load_cache(Path(cache_file), key)
        if cached is not None:
            logger.info("face crops: reusing %s (%d images)", cache_file, len(cached))
            return cached

    n, size = len(names), crop.size
    result = CropSet(
        paths=names,
        crops=np.zeros((n, size, size, 3), dtype=np.uint8),
        ok=np.zeros(n, dtype=bool),
        boxes=np.full((n, 4), np.nan, dtype=np.float32),
        scores=np.full(n, np.nan, dtype=np.float32),
        method=np.full(n, METHOD_FAILED, dtype="<U6"),
        errors=[""] * n,
        landmarks=np.full((n, 5, 2), np.nan, dtype=np.float32),
    )
    if detect and detector is None and n:
        detector = FaceDetector(crop)

    def detect_batch(rgbs: list[np.ndarray]) -> list[list[FaceBox]]:
        assert detector is not None
        return detector.detect_batch(rgbs)

    workers = auto_decode_workers(decode_workers, getattr(detector, "device", "cpu"))
    decoded = convert_batches(names, batch_size, max_pixels=DEFAULT_MAX_PIXELS, workers=workers)
    with tqdm(total=n, desc="face crops", unit="img", disable=not progress) as bar, closing(decoded):
        for start, converted in decoded:
            batch = crop_inputs(names[start:start + batch_size], start=start, single=False, detect=detect,
                                faces="largest", crop=crop, detect_batch=detect_batch,
                                max_pixels=DEFAULT_MAX_PIXELS, fallback=fallback, converted=converted)
            cropped = dict(zip(batch.crop_rows, batch.crops, strict=True))
            for r, row in enumerate(batch.rows):  # one row per image ("largest")
                i = row.source
                result.method[i] = row.method
                if row.method == METHOD_FAILED:
                    result.errors[i] = row.error or ""
                if r not in cropped:
                    continue
                result.crops[i], result.ok[i] = cropped[r], True
                if row.method == METHOD_MTCNN and row.box is not None:
                    result.boxes[i] = row.box
                    result.scores[i] = row.score
                    if row.landmarks is not None:
                        result.landmarks[i] = landmarks_in_crop(row.landmarks, row.box, crop.margin)
            bar.update(len(batch.rows))
            bar.set_postfix(result.counts(done=start + len(batch.rows)), refresh=False)
    if result.n_failed:
        logger.warning("face crops: %d of %d files could not be read", result.n_failed, n)
    if cache_file is not None:
        _save_cache(Path(cache_file), key, result)
    return result


def _cache_key(names: list[str], crop: CropConfig, detect: bool, fallback: str) -> str:
    stats: list[list[int] | None] = []
    for name in names:
        try:
            st = os.stat(name)
            stats.append([st.st_size, st.st_mtime_ns])
        except OSError:
            stats.append(None)
    payload = {
        "format": _CACHE_FORMAT,
        "paths": names,
        "stats": stats,
        "crop": dataclasses.asdict(crop),
        "detect": detect,
        "fallback": fallback,
    }
    return json_digest(payload)


def _load_cache(path: Path, key: str) -> CropSet | None:
    if not path.is_file():
        return None
    try:
        with np.load(path, allow_pickle=False) as data:
            if str(data["key"]) != key:
                logger.info("face crops: %s is stale (inputs or settings changed); recomputing", path)
                return None
            return CropSet(
                paths=[str(p) for p in data["paths"]],
                crops=data["crops"],
                ok=data["ok"],
                boxes=data["boxes"],
                scores=data["scores"],
                method=data["method"],
                errors=[str(e) for e in data["errors"]],
                landmarks=data["landmarks"],
            )
    except (OSError, ValueError, KeyError) as exc:
        logger.warning("face crops: cannot read cache %s (%s); recomputing", path, exc)
        return None


def _save_cache(path: Path, key: str, result: CropSet) -> None:
    atomic_write(path, lambda fh: np.savez(
        fh,
        key=np.asarray(key),
        paths=np.asarray(result.paths, dtype=str),
        crops=result.crops,
        ok=result.ok,
        boxes=result.boxes,
        scores=result.scores,
        method=np.asarray(result.method, dtype=str),
        errors=np.asarray(result.errors, dtype=str),
        landmarks=result.landmarks,
    ))
