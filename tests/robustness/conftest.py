"""Fixtures of the robustness suite: one offline MTCNN, real face photos, and a network guard.

The shared ``shared_data`` fixture comes from ``tests/conftest.py`` (it applies to this folder too).
"""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from latentface_sdk.config import CropConfig
from latentface_sdk.detection import FaceDetector
from latentface_sdk.images import to_rgb


def _refuse(*args: Any, **kwargs: Any) -> None:
    raise AssertionError("the SDK tried to open a network connection during a robustness test")


@pytest.fixture
def no_network(monkeypatch: pytest.MonkeyPatch) -> None:
    """Any attempt to connect anywhere fails the test (proves offline paths stay offline)."""
    monkeypatch.setattr(socket.socket, "connect", _refuse)
    monkeypatch.setattr(socket, "create_connection", _refuse)


@pytest.fixture(scope="session")
def detector() -> Iterator[FaceDetector]:
    """One MTCNN for the whole suite (its weights ship inside facenet-pytorch: built offline)."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(socket.socket, "connect", _refuse)
        mp.setattr(socket, "create_connection", _refuse)
        yield FaceDetector(CropConfig())


@pytest.fixture(scope="session")
def photos(shared_data: Path) -> Path:
    """``../shared/data/photos``: a few real photographs (one face, two people, a partial face)."""
    return shared_data / "photos"


@pytest.fixture(scope="session")
def one_face(photos: Path) -> np.ndarray:
    """A 320x240 RGB photo with one frontal face."""
    return to_rgb(photos / "obama_small.jpg")


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A model folder with random weights: full-size latents (256), narrow networks (fast on a CPU).

    Built with ``FaceEncoder.from_config(...).save_pretrained(...)``, so it goes through the same
    safetensors + checksum path as any published model.
    """
    import torch
    from _tiny import tiny_config

    from latentface_sdk.encoder import FaceEncoder

    config = tiny_config("tiny-robustness")
    torch.manual_seed(3)
    enc = FaceEncoder.from_config(config)
    for rdm in (enc.rdm_texture, enc.rdm_shape):
        rdm.set_latent_statistics(torch.randn(16, 256) * 0.5 + 0.1)
    return enc.save_pretrained(tmp_path_factory.mktemp("tiny-model"))


@pytest.fixture(scope="session")
def encoder(tiny_model: Path) -> Any:
    """One :class:`FaceEncoder` on the CPU for the suite (its MTCNN is built on first use)."""
    from latentface_sdk.encoder import FaceEncoder

    return FaceEncoder.from_pretrained(tiny_model, device="cpu")
