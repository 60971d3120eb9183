"""Training data: image lists from folders, manifests and the shared data sets, and crop data sets.

Every image goes through :func:`latentface_sdk.cropset.prepare_crops`, the same MTCNN crop as
inference, once; the crops are cached as ``.npz`` so that epochs read memory, not JPEGs.
"""

from __future__ import annotations

import csv
import dataclasses
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import Dataset

from ..cropset import CropSet, prepare_crops
from ..errors import DataError
from .groups import labelled_rows
from .recipes import Stage1Config

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp")

#: Named sources inside the shared data folder (see ``../shared/data/README.md``). Stage 1 may use
#: UTKFace, the CelebA ``train`` rows and IMFDB; the CelebA ``verify`` rows are never offered here.
#: ``utkface-train`` is UTKFace without the held-out rows of ``utkface-heldout`` (every
#: :data:`UTKFACE_HOLDOUT_EVERY`-th file in sorted order), which the pose checks measure on.
#: The expression-rich sets: ``fer2013-train`` (the FER-2013 ``Training`` images without their labels;
#: ``PublicTest`` is never offered), ``taiwan-tcce-train`` (the Taiwan corpus less the performers of
#: :data:`TAIWAN_HOLDOUT`, on whom expression is measured), ``london-frl``, ``orl-att`` and
#: ``celeba-wild`` (CelebA originals of identities outside celeba10k's ``verify`` rows).
SHARED_SOURCES = ("utkface", "utkface-train", "utkface-heldout", "celeba-train", "imfdb", "fer2013-train",
                  "taiwan-tcce-train", "taiwan-tcce-heldout", "london-frl", "orl-att", "celeba-wild")

#: Taiwan corpus performers never trained on (either stage): expression is measured on them.
TAIWAN_HOLDOUT = ("tw26", "tw27", "tw28", "tw29", "tw30")

#: One UTKFace file in this many (sorted by name) is held out of ``utkface-train``.
UTKFACE_HOLDOUT_EVERY = 40


def image_folder(root: str | Path) -> list[str]:
    """All images under ``root`` (recursive), sorted."""
    base = Path(root)
    if not base.is_dir():
        raise DataError(f"{base}: not a folder of images")
    return sorted(str(p) for p in base.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())


def read_path_manifest(path: str | Path) -> list[str]:
    """Image paths from a CSV with a ``path`` column (relative paths resolve against the CSV's folder)."""
    csv_path = Path(path)
    try:
        with open(csv_path, newline="", encoding="utf-8") as fh:
            reader = csv.DictReader(fh)
            if reader.fieldnames is None or "path" not in reader.fieldnames:
                raise DataError(f"{csv_path}: needs a 'path' column (found {reader.fieldnames})")
            out = []
            for line, row in enumerate(reader, start=2):
                value = (row.get("path") or "").strip()
                if not value:
                    raise DataError(f"{csv_path}:{line}: empty path")
                p = Path(value)
                out.append(str(p if p.is_absolute() else csv_path.parent / p))
    except OSError as exc:
        raise DataError(f"{csv_path}: cannot read manifest ({exc})") from exc
    return out


def shared_source(root: str | Path, name: str) -> list[str]:
    """Image paths of a named source in the shared data folder (``utkface``, ``celeba-train``, ``imfdb``)."""
    base = Path(root)
    if name == "utkface":
        return image_folder(base / "utkface" / "images")
    if name in ("utkface-train", "utkface-heldout"):
        files = image_folder(base / "utkface" / "images")
        held = name == "utkface-heldout"
        return [p for i, p in enumerate(files) if (i % UTKFACE_HOLDOUT_EVERY == 0) == held]
    if name == "imfdb":
        return image_folder(base / "imfdb" / "images")
    if name == "fer2013-train":
        return image_folder(base / "fer2013" / "Training")
    if name in ("taiwan-tcce-train", "taiwan-tcce-heldout"):
        held = name == "taiwan-tcce-heldout"
        return [p for p, ident in labelled_rows(base / "taiwan_tcce") if (ident in TAIWAN_HOLDOUT) == held]
    if name in ("london-frl", "orl-att", "celeba-wild"):
        folder = {"london-frl": "london_frl", "orl-att": "orl_att", "celeba-wild": "celeba_ids_wild"}[name]
        return [p for p, _ in labelled_rows(base / folder)]
    if name == "celeba-train":
        table = base / "celeba10k" / "identity.csv"
        with open(table, newline="", encoding="utf-8") as fh:
            train = [r for r in csv.DictReader(fh) if r["split"] == "train"]
        return [str(base / "celeba10k" / "images" / r["image"]) for r in train]
    raise DataError(f"unknown shared source {name!r} (choose from {SHARED_SOURCES})")


def resolve_sources(sources: Sequence[str], shared_root: str | Path | None = None) -> list[str]:
    """Expand data sources: ``shared:<name>``, a folder, or a ``.csv`` manifest; in order, duplicates
    dropped."""
    paths: list[str] = []
    for src in sources:
        if src.startswith("shared:"):
            if shared_root is None:
                raise DataError(f"{src}: no shared data folder given")
            paths += shared_source(shared_root, src.split(":", 1)[1])
        elif src.lower().endswith(".csv"):
            paths += read_path_manifest(src)
        else:
            paths += image_folder(src)
    unique = list(dict.fromkeys(paths))  # first occurrences, in order
    if not unique:
        raise DataError(f"no images found in {list(sources)}")
    return unique


def stage1_crops(cfg: Stage1Config, cache_dir: Path, progress: bool = True) -> CropSet:
    """A stage-1 recipe's photos cropped with MTCNN once (cached in ``cache_dir``): one row per photo.

    The trainer's data (:func:`latentface_sdk.train.stage1.prepare_data`) and a training bundle
    (:func:`latentface_sdk.train.bundle.pack_bundle`) both start here, so they hold the same crops.
    """
    paths = resolve_sources(cfg.sources, cfg.shared_root)
    if cfg.max_images is not None:
        paths = paths[: cfg.max_images]
    crop = dataclasses.replace(cfg.crop, min_face_size=cfg.detect_min_face_size)
    cache_dir.mkdir(parents=True, exist_ok=True)
    return prepare_crops(paths, crop, detect=True, fallback="none",
                         cache_file=cache_dir / f"stage1_crops_{len(paths)}.npz", progress=progress)


class CropDataset(Dataset[Tensor]):
    """64x64 uint8 crops (N, H, W, 3) served as float tensors (3, H, W) in [0, 1].

    ``flip=True`` mirrors half of the samples at random (faces are near-symmetric; the model's own
    symmetry prior does not depend on it). ``landmarks`` (N, 5, 2), optional, are MTCNN's five points
    in crop coordinates ``[-1, 1]`` (NaN where unknown), used by the stage-1 landmark loss.
    """

    def __init__(self, crops: np.ndarray, flip: bool = True, landmarks: np.ndarray | None = None) -> None:
        if crops.ndim != 4 or crops.shape[-1] != 3 or crops.dtype != np.uint8:
            raise DataError(f"crops must be uint8 (N, H, W, 3), got {crops.dtype} {crops.shape}")
        if landmarks is not None and landmarks.shape != (crops.shape[0], 5, 2):
            raise DataError(f"landmarks must be (N, 5, 2) for {crops.shape[0]} crops, got {landmarks.shape}")
        self.crops = crops
        self.flip = flip
        self.landmarks = landmarks

    def __len__(self) -> int:
        return int(self.crops.shape[0])

    def __getitem__(self, index: int) -> Tensor:
        x = torch.from_numpy(np.ascontiguousarray(self.crops[index])).permute(2, 0, 1).float() / 255.0
        if self.flip and torch.rand(()) < 0.5:
            x = x.flip(-1)
        return x
