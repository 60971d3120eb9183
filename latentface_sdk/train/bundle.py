"""A stage-1 training bundle: a recipe's face crops and landmarks in one file, for a machine without the data.

``latentface-train bundle --config RECIPE.json --out data.bundle --shared-root ../shared/data`` runs the
trainer's own data preparation (:func:`latentface_sdk.train.data.stage1_crops`: the recipe's sources,
MTCNN, the 64x64 crops and their five landmarks, cached) and packs the usable crops into one file;
``latentface-train stage1 --bundle data.bundle ...`` (or the recipe field ``bundle``) trains on it
instead of the sources, so the training machine needs neither the photos nor MTCNN (facenet-pytorch):
the weights of the ``mtcnn`` feature network travel in the bundle too.

The file is an uncompressed zip (readable with any zip tool):

* ``manifest.json`` (:data:`~latentface_sdk.model_folder.TRAINING_BUNDLE`): format and version, the package
  version, the data recipe (sources, ``max_images``,
  crop settings) and its hash, counts (photos, usable crops, MTCNN outcomes), the JPEG settings, the
  strips, and the mean absolute difference between the stored and the original crops;
* ``crops/NNNNN.jpg``: the crops as JPEG strips of up to :data:`CROPS_PER_STRIP` crops stacked
  vertically (one 64 x 16384 image), quality :data:`DEFAULT_QUALITY`, no chroma subsampling (4:4:4) unless
  asked ("4:2:0": smaller, and colour bleeds by a pixel between neighbouring crops), and optimised Huffman
  tables. With 4:4:4 and a crop side that is a multiple of 8 every 8x8 JPEG block lies inside one crop, so
  a crop decodes exactly as it would alone; a strip shares one set of headers and tables across 256 crops
  (a lone 64x64 JPEG spends ~600 bytes on them);
* ``landmarks.npy``: float32 (N, 5, 2), MTCNN's five points in crop coordinates ``[-1, 1]``;
* ``sources.txt`` (deflated): each crop's photo, relative to the shared data folder where it lies in it;
* ``features.safetensors``: the ``mtcnn`` feature network's weights, when the recipe uses it.

:func:`load_bundle` decodes every strip once into the uint8 (N, 64, 64, 3) array that
:class:`~latentface_sdk.train.data.CropDataset` holds. Quality 85 was chosen by measurement on real
crops of the default recipe's sources (docs/gpu.md): ~1,220 bytes per crop and a mean absolute
difference of 1.9/255 from the raw crop, against a reconstruction L1 of ~0.09 (23/255) in training;
``quality=70, subsampling="4:2:0"`` gives ~700 bytes and 3.3/255 (a bundle that must fit beside this
repository's 41 MB of tracked files in a 64 MiB working tree).
"""

from __future__ import annotations

import dataclasses
import io
import logging
import os
import time
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image
from torch import Tensor

from .._version import __version__
from ..atomic import atomic_path
from ..config import CropConfig
from ..digests import json_digest
from ..errors import DataError
from ..model_folder import TRAINING_BUNDLE
from .data import CropDataset, stage1_crops
from .recipes import Stage1Config

__all__ = ["BUNDLE_FORMAT", "BUNDLE_VERSION", "CROPS_PER_STRIP", "DEFAULT_QUALITY", "BundleReport",
           "Stage1Bundle", "data_recipe", "decode_strip", "encode_strip", "load_bundle", "pack_bundle",
           "write_bundle"]

logger = logging.getLogger("latentface_sdk.train")

#: The manifest's ``format`` name and version (:data:`~latentface_sdk.model_folder.TRAINING_BUNDLE`).
BUNDLE_FORMAT = TRAINING_BUNDLE.name
BUNDLE_VERSION = TRAINING_BUNDLE.version
#: Crops per JPEG strip: 256 x 64 px = 16,384 px tall (JPEG allows 65,535).
CROPS_PER_STRIP = 256
#: JPEG quality of the stored crops (measured in docs/gpu.md: size against difference from the raw crop).
DEFAULT_QUALITY = 85
#: Chroma subsampling names and PIL's codes for them.
SUBSAMPLING = {"4:4:4": 0, "4:2:0": 2}
#: Fixed zip timestamps: the same crops give the same bytes.
_ZIP_TIME = (1980, 1, 1, 0, 0, 0)


def data_recipe(cfg: Stage1Config) -> dict[str, Any]:
    """The recipe fields that decide which crops a run trains on (what a bundle stands for).

    ``shared_root`` is left out (where the data lies on one machine); the crop settings are those of the
    data preparation (``crop`` with MTCNN's minimum face size ``detect_min_face_size``).
    """
    crop = dataclasses.replace(cfg.crop, min_face_size=cfg.detect_min_face_size)
    return {"sources": list(cfg.sources), "max_images": cfg.max_images, "crop": crop.to_dict()}


def encode_strip(crops: np.ndarray, quality: int = DEFAULT_QUALITY, subsampling: str = "4:4:4") -> bytes:
    """Crops uint8 (k, S, S, 3) as one JPEG strip (k*S tall, S wide; optimised Huffman tables)."""
    if subsampling not in SUBSAMPLING:
        raise DataError(f"JPEG subsampling must be one of {sorted(SUBSAMPLING)} (got {subsampling!r})")
    k, s = crops.shape[0], crops.shape[1]
    buf = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(crops).reshape(k * s, s, 3)).save(
        buf, "JPEG", quality=quality, subsampling=SUBSAMPLING[subsampling], optimize=True)
    return buf.getvalue()


def decode_strip(data: bytes, count: int, size: int) -> np.ndarray:
    """A strip of :func:`encode_strip` back to uint8 (count, size, size, 3)."""
    with Image.open(io.BytesIO(data)) as img:
        if img.size != (size, count * size):
            raise DataError(f"strip is {img.size[0]}x{img.size[1]} px, expected {size}x{count * size}")
        pixels = np.asarray(img.convert("RGB"))
    return pixels.reshape(count, size, size, 3)


@dataclass
class Stage1Bundle:
    """A bundle's contents: the decoded crops, their landmarks, the manifest and the feature weights."""

    crops: np.ndarray
    landmarks: np.ndarray
    manifest: dict[str, Any]
    features: dict[str, Tensor] | None = None
    path: str = ""

    def __len__(self) -> int:
        return int(self.crops.shape[0])

    def dataset(self) -> CropDataset:
        """The crops as the stage-1 trainer's data set (mirrored at random, with their landmarks)."""
        return CropDataset(self.crops, flip=True, landmarks=self.landmarks)

    @property
    def recipe_hash(self) -> str:
        """The hash of the data recipe the crops were packed from (:func:`data_recipe`)."""
        return str(self.manifest["recipe_hash"])

    @property
    def crop(self) -> CropConfig:
        """The crop settings the crops were cut with."""
        return CropConfig.from_dict(self.manifest["recipe"]["crop"], source=f"{self.path}: recipe.crop")


@dataclass
class BundleReport:
    """What :func:`write_bundle` wrote: file size, bytes per crop, JPEG difference, timings (seconds)."""

    path: Path
    crops: int
    bytes: int
    jpeg_bytes: int
    mean_abs_diff: float
    encode_seconds: float
    decode_seconds: float
    manifest: dict[str, Any] = field(default_factory=dict)

    @property
    def bytes_per_crop(self) -> float:
        return self.bytes / max(self.crops, 1)

    def summary(self) -> str:
        return (f"{self.path}: {self.crops} crops, {self.bytes / 1e6:.2f} MB "
                f"({self.bytes_per_crop:.0f} bytes per "
                f"crop, JPEG {self.jpeg_bytes / max(self.crops, 1):.0f}), mean |JPEG - raw| "
                f"{self.mean_abs_diff * 255:.2f}/255, encode {self.encode_seconds:.1f} s, "
                f"decode {self.decode_seconds:.1f} s")


def _member(name: str, compress: bool = False) -> zipfile.ZipInfo:
    info = zipfile.ZipInfo(name, date_time=_ZIP_TIME)
    info.compress_type = zipfile.ZIP_DEFLATED if compress else zipfile.ZIP_STORED
    info.external_attr = 0o644 << 16
    return info


def _relative(path: str, root: str | None) -> str:
    if root:
        try:
            return (os.path.relpath(path, root)
                    if Path(path).resolve().is_relative_to(Path(root).resolve()) else path)
        except (OSError, ValueError):
            return path
    return path


def write_bundle(out: str | Path, crops: np.ndarray, landmarks: np.ndarray, *, recipe: dict[str, Any],
                 sources: list[str] | None = None, counts: dict[str, int] | None = None,
                 features: dict[str, Tensor] | None = None, feature_net: str | None = None,
                 quality: int = DEFAULT_QUALITY, subsampling: str = "4:4:4") -> BundleReport:
    """Pack ``crops`` uint8 (N, S, S, 3) and ``landmarks`` (N, 5, 2) into one bundle file, atomically.

    ``recipe``: :func:`data_recipe` of the recipe the crops come from (hashed into the manifest);
    ``sources``: one photo path per crop; ``features``: the feature network's weights (``feature_net``).
    The stored crops are decoded back once to measure their mean absolute difference from ``crops``.
    """
    from safetensors.torch import save as save_tensors

    if crops.ndim != 4 or crops.shape[-1] != 3 or crops.dtype != np.uint8 or crops.shape[1] != crops.shape[2]:
        raise DataError(f"crops must be uint8 (N, S, S, 3), got {crops.dtype} {crops.shape}")
    n, size = int(crops.shape[0]), int(crops.shape[1])
    if landmarks.shape != (n, 5, 2):
        raise DataError(f"landmarks must be (N, 5, 2) for {n} crops, got {landmarks.shape}")
    if sources is not None and len(sources) != n:
        raise DataError(f"{len(sources)} source paths for {n} crops")
    if not 1 <= quality <= 100:
        raise DataError(f"JPEG quality must be in 1..100 (got {quality})")
    t0 = time.perf_counter()
    strips = [encode_strip(crops[s:s + CROPS_PER_STRIP], quality, subsampling)
              for s in range(0, n, CROPS_PER_STRIP)]
    t1 = time.perf_counter()
    counts_per_strip = [min(CROPS_PER_STRIP, n - s) for s in range(0, n, CROPS_PER_STRIP)]
    diff = 0.0
    for data, count, start in zip(strips, counts_per_strip, range(0, n, CROPS_PER_STRIP), strict=True):
        back = decode_strip(data, count, size)
        diff += float(np.abs(back.astype(np.int16) - crops[start:start + count]).sum())
    t2 = time.perf_counter()
    mean_abs = diff / max(n * size * size * 3, 1) / 255.0
    manifest: dict[str, Any] = TRAINING_BUNDLE.stamp({
        "package_version": __version__,
        "recipe_hash": json_digest(recipe),
        "recipe": recipe,
        "counts": {"crops": n, **(counts or {})},
        "image_size": size,
        "jpeg": {"quality": quality, "subsampling": subsampling, "optimize": True,
                 "crops_per_strip": CROPS_PER_STRIP, "mean_abs_diff": round(mean_abs, 6)},
        "strips": [{"name": f"crops/{i:05d}.jpg", "crops": c} for i, c in enumerate(counts_per_strip)],
        "landmarks": {"name": "landmarks.npy", "dtype": "float32", "shape": [n, 5, 2]},
        "sources": "sources.txt" if sources is not None else None,
        "feature_net": feature_net if features is not None else None,
        "features": "features.safetensors" if features is not None else None,
    })
    lm_buf = io.BytesIO()
    np.save(lm_buf, np.ascontiguousarray(landmarks, dtype=np.float32), allow_pickle=False)
    path = Path(out)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp, zipfile.ZipFile(tmp, "w") as zf:
        zf.writestr(_member("manifest.json"), TRAINING_BUNDLE.dumps(manifest))
        for entry, data in zip(manifest["strips"], strips, strict=True):
            zf.writestr(_member(entry["name"]), data)
        zf.writestr(_member("landmarks.npy"), lm_buf.getvalue())
        if sources is not None:
            zf.writestr(_member("sources.txt", compress=True), "\n".join(sources) + "\n")
        if features is not None:
            zf.writestr(_member("features.safetensors"),
                        save_tensors({k: v.detach().cpu().contiguous() for k, v in features.items()}))
    return BundleReport(path=path, crops=n, bytes=path.stat().st_size,
                        jpeg_bytes=sum(len(s) for s in strips), mean_abs_diff=mean_abs,
                        encode_seconds=t1 - t0, decode_seconds=t2 - t1, manifest=manifest)


def pack_bundle(cfg: Stage1Config, out: str | Path, *, cache_dir: str | Path, quality: int = DEFAULT_QUALITY,
                subsampling: str = "4:4:4", progress: bool = True) -> BundleReport:
    """Prepare ``cfg``'s training data exactly as :func:`~latentface_sdk.train.stage1.train` does (sources,
    MTCNN crops and landmarks, cached in ``cache_dir``) and pack the usable crops into ``out``."""
    from .perceptual import MTCNNFeatures

    crops = stage1_crops(cfg, Path(cache_dir), progress)
    ok = crops.ok
    if not ok.any():
        raise DataError("no usable face crops to bundle")
    sources = [_relative(p, cfg.shared_root) for p, keep in zip(crops.paths, ok, strict=True) if keep]
    features = None
    if cfg.feature_net == "mtcnn":
        features = {k: v.clone() for k, v in MTCNNFeatures().net.state_dict().items()}
    report = write_bundle(out, crops.crops[ok], crops.landmarks[ok], recipe=data_recipe(cfg), sources=sources,
                          counts={"images": len(crops), **crops.counts()}, features=features,
                          feature_net=cfg.feature_net if features is not None else None, quality=quality,
                          subsampling=subsampling)
    logger.info("%s", report.summary())
    return report


def _read(zf: zipfile.ZipFile, name: str, where: str) -> bytes:
    try:
        return zf.read(name)
    except KeyError:
        raise DataError(f"{where}: the bundle has no {name!r}") from None


def load_bundle(path: str | Path) -> Stage1Bundle:
    """Read a bundle of :func:`write_bundle`: decode every JPEG strip once into uint8 (N, S, S, 3).

    A file that is not a bundle, of a newer version, truncated or with a damaged member (the zip's
    CRC) raises :class:`~latentface_sdk.errors.DataError` naming the file.
    """
    where = str(path)
    t0 = time.perf_counter()
    try:
        with zipfile.ZipFile(path) as zf:
            manifest = TRAINING_BUNDLE.loads(_read(zf, "manifest.json", where), where)
            size = int(manifest["image_size"])
            parts = [decode_strip(_read(zf, s["name"], where), int(s["crops"]), size)
                     for s in manifest["strips"]]
            crops = np.concatenate(parts) if parts else np.zeros((0, size, size, 3), np.uint8)
            landmarks = np.load(io.BytesIO(_read(zf, manifest["landmarks"]["name"], where)),
                                allow_pickle=False)
            features = None
            if manifest.get("features"):
                from safetensors.torch import load as load_tensors

                features = load_tensors(_read(zf, manifest["features"], where))
    except DataError:
        raise
    except (zipfile.BadZipFile, OSError, ValueError, KeyError, TypeError) as exc:
        raise DataError(f"{where}: cannot read the training bundle ({exc})") from exc
    n = int(manifest["counts"]["crops"])
    if crops.shape[0] != n or landmarks.shape != (n, 5, 2):
        raise DataError(f"{where}: the manifest lists {n} crops, the file holds {crops.shape[0]} crops and "
                        f"landmarks {landmarks.shape}")
    logger.info("bundle %s: %d crops decoded in %.1f s", where, n, time.perf_counter() - t0)
    return Stage1Bundle(crops=crops, landmarks=landmarks.astype(np.float32, copy=False), manifest=manifest,
                        features=features, path=where)
