"""Baseline features on the same 64x64 face crops as our model: raw pixels, LBP, HOG, random encoder.

The hand-crafted baselines (scikit-image) work on the grey crop; the random encoder is a seeded,
untrained copy of our stage-1 autoencoder, which shows what training adds to the architecture.
"""

from __future__ import annotations

import numpy as np
import torch
from tqdm.auto import tqdm

from ..digests import modules_digest
from .extractor import FeatureExtractor


def to_grey(crops: np.ndarray) -> np.ndarray:
    """ITU-R BT.601 luma of ``uint8`` ``(N, H, W, 3)`` (or already grey ``(N, H, W)``) crops, as ``uint8``."""
    x = np.asarray(crops)
    if x.ndim == 3:
        return x.astype(np.uint8)
    if x.ndim != 4 or x.shape[-1] != 3:
        raise ValueError(f"expected crops (N, H, W, 3), got {x.shape}")
    grey = x[..., 0] * 0.299 + x[..., 1] * 0.587 + x[..., 2] * 0.114
    return np.clip(np.rint(grey), 0, 255).astype(np.uint8)


def raw_pixels(crops: np.ndarray, pool: int = 2) -> np.ndarray:
    """Grey pixels in [0, 1], average-pooled by ``pool`` x ``pool``, flattened: ``(N, (H/pool)*(W/pool))``."""
    g = to_grey(crops).astype(np.float32) / 255.0
    n, h, w = g.shape
    if h % pool or w % pool:
        raise ValueError(f"crop size {h}x{w} is not divisible by pool={pool}")
    g = g.reshape(n, h // pool, pool, w // pool, pool).mean(axis=(2, 4))
    return g.reshape(n, -1).astype(np.float32)


def lbp_histograms(
    crops: np.ndarray, points: int = 8, radius: float = 1.0, grid: int = 8, *, progress: bool = False
) -> np.ndarray:
    """Uniform LBP codes pooled into a ``grid`` x ``grid`` array of normalised cell histograms.

    Each cell histogram has ``points + 2`` bins and sums to 1: ``(N, grid * grid * (points + 2))``.
    """
    from skimage.feature import local_binary_pattern

    g = to_grey(crops)
    n, h, w = g.shape
    if h % grid or w % grid:
        raise ValueError(f"crop size {h}x{w} is not divisible by grid={grid}")
    bins = points + 2
    ch, cw = h // grid, w // grid
    out = np.empty((n, grid * grid * bins), dtype=np.float32)
    for i in tqdm(range(n), desc="lbp", disable=not progress, unit="img"):
        codes = local_binary_pattern(g[i], points, radius, method="uniform").astype(np.int64)
        cells = codes.reshape(grid, ch, grid, cw).transpose(0, 2, 1, 3).reshape(grid * grid, ch * cw)
        offsets = np.arange(grid * grid)[:, None] * bins
        hist = np.bincount((cells + offsets).ravel(), minlength=grid * grid * bins)
        out[i] = hist / float(ch * cw)
    return out


def hog_features(
    crops: np.ndarray, orientations: int = 9, cell: int = 8, block: int = 2, *, progress: bool = False
) -> np.ndarray:
    """scikit-image HOG (L2-Hys block normalisation) of each grey crop, ``(N, D)``."""
    from skimage.feature import hog

    g = to_grey(crops)
    rows = [
        hog(
            g[i],
            orientations=orientations,
            pixels_per_cell=(cell, cell),
            cells_per_block=(block, block),
            block_norm="L2-Hys",
            feature_vector=True,
        )
        for i in tqdm(range(len(g)), desc="hog", disable=not progress, unit="img")
    ]
    if not rows:
        return np.zeros((0, 0), dtype=np.float32)
    return np.stack(rows).astype(np.float32)


class RawPixels(FeatureExtractor):
    """:func:`raw_pixels` as a registered feature set."""

    def __init__(self, pool: int = 2) -> None:
        self.pool = pool

    def identity(self) -> str:
        return f"raw:grey:pool={self.pool}"

    def __call__(self, crops: np.ndarray, *, progress: bool = False) -> np.ndarray:
        return raw_pixels(crops, self.pool)


class LBPHistograms(FeatureExtractor):
    """:func:`lbp_histograms` as a registered feature set."""

    def __init__(self, points: int = 8, radius: float = 1.0, grid: int = 8) -> None:
        self.points, self.radius, self.grid = points, radius, grid

    def identity(self) -> str:
        return f"lbp:uniform:P={self.points}:R={self.radius}:grid={self.grid}"

    def __call__(self, crops: np.ndarray, *, progress: bool = False) -> np.ndarray:
        return lbp_histograms(crops, self.points, self.radius, self.grid, progress=progress)


class HOGFeatures(FeatureExtractor):
    """:func:`hog_features` as a registered feature set."""

    def __init__(self, orientations: int = 9, cell: int = 8, block: int = 2) -> None:
        self.orientations, self.cell, self.block = orientations, cell, block

    def identity(self) -> str:
        return f"hog:o={self.orientations}:cell={self.cell}:block={self.block}:L2-Hys"

    def __call__(self, crops: np.ndarray, *, progress: bool = False) -> np.ndarray:
        return hog_features(crops, self.orientations, self.cell, self.block, progress=progress)


class RandomEncoderFeatures(FeatureExtractor):
    """``[Z_t, Z_s]`` of an untrained ``LatentAutoencoder(AutoencoderConfig())`` built under ``seed``.

    The copy is in eval mode (BatchNorm uses its initial running statistics), so a crop's features do
    not depend on the rest of its batch.
    """

    def __init__(self, seed: int = 0, device: str = "cpu", batch_size: int = 64) -> None:
        from ..config import AutoencoderConfig
        from ..models.autoencoder import LatentAutoencoder

        self.seed, self.batch_size = seed, batch_size
        self.device = torch.device(device)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            self.model = LatentAutoencoder(AutoencoderConfig()).to(self.device).eval()
        self._digest = modules_digest(self.model)

    def identity(self) -> str:
        return f"random-encoder:seed={self.seed}:{self._digest}"

    @torch.no_grad()
    def __call__(self, crops: np.ndarray, *, progress: bool = False) -> np.ndarray:
        x = np.asarray(crops, dtype=np.uint8)
        out = []
        for start in tqdm(range(0, len(x), self.batch_size), desc="random-encoder", disable=not progress):
            batch = torch.from_numpy(x[start : start + self.batch_size]).to(self.device)
            batch = batch.permute(0, 3, 1, 2).float() / 255.0
            latents = self.model.encode(batch)
            out.append(torch.cat([latents.texture, latents.shape], dim=1).float().cpu().numpy())
        return np.concatenate(out) if out else np.zeros((0, 0), dtype=np.float32)


__all__ = [
    "HOGFeatures",
    "LBPHistograms",
    "RandomEncoderFeatures",
    "RawPixels",
    "hog_features",
    "lbp_histograms",
    "raw_pixels",
    "to_grey",
]
