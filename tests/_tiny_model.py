"""A saved tiny model that draws visibly, and synthetic face-sized crops: what the tests of the encoder
facade, the pipeline, the operations and the results build their fixtures from.

The ``enc`` and ``crops`` fixtures of ``tests/conftest.py`` are built from them, one per test module, so
that a file runs alone; building and saving the tiny model takes a fraction of a second.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from _tiny import tiny_config

from latentface_sdk import FaceEncoder


def save_tiny_model(folder: Path) -> Path:
    """The tiny model (``tiny_config()``, seed 1) with relief, pose and RDM statistics, saved into ``folder``.

    An untrained autoencoder starts flat and frontal (zeroed depth and pose heads); the heads get random
    weights, as a trained one has, so that light and view options show in the renders; the RDMs get
    non-trivial latent statistics, so that a save/load that dropped them would show.
    """
    with torch.random.fork_rng():
        torch.manual_seed(1)
        enc = FaceEncoder.from_config(tiny_config())
        for head in (enc.autoencoder.depth_decoder.net[-2], enc.autoencoder.pose_encoder.net[-2]):
            torch.nn.init.normal_(head.weight, std=0.05)  # type: ignore[arg-type]
        for rdm in (enc.rdm_texture, enc.rdm_shape):
            rdm.set_latent_statistics(torch.randn(16, 256) * 0.5 + 0.1)
        return enc.save_pretrained(folder)


def synthetic_crops(n: int = 5) -> list[np.ndarray]:
    """``n`` different uint8 ``64 x 64 x 3`` noise images (one pattern rolled sideways)."""
    rng = np.random.default_rng(0)
    base = rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)
    return [np.roll(base, 7 * k, axis=1) for k in range(n)]
