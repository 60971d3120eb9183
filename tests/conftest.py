"""Shared pytest fixtures: where the shared face data lives, and skipping cleanly without it."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO_ROOT.parent / "shared" / "data"


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """``../shared/data`` beside the repository; tests that need it skip with a reason when it is absent."""
    if not (SHARED_DATA / "README.md").is_file():
        pytest.skip(f"needs the shared face data at {SHARED_DATA} (absent on this machine)")
    return SHARED_DATA


@pytest.fixture(autouse=True)
def _seeded() -> None:
    """Every test starts from the same torch seed, so failures reproduce."""
    torch.manual_seed(0)


@pytest.fixture(autouse=True)
def _one_thread() -> Iterator[None]:
    """One intra-op thread per test: on a small shared machine, threads stall each other on these small
    tensors (one thread measured ~3x faster for the encoder here); restored afterwards."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="session")
def tiny_onnx(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A tiny random model folder and its ONNX export (``latentface_sdk.deploy``): ``(model_dir, onnx_dir)``.

    Skips when the ``onnx`` extra is not installed (it is part of ``.[dev]``, so CI runs these tests)."""
    pytest.importorskip("onnxruntime")
    pytest.importorskip("onnxscript")
    from _tiny import tiny_config

    from latentface_sdk import FaceEncoder
    from latentface_sdk.deploy.export import export_onnx

    with torch.random.fork_rng():
        torch.manual_seed(5)
        enc = FaceEncoder.from_config(tiny_config("tiny-onnx"))
        # Random weights that make the RDMs do something: non-zero last layers and latent statistics.
        for rdm in (enc.rdm_texture, enc.rdm_shape):
            for layer in rdm.denoiser.residual_layers():
                torch.nn.init.normal_(layer.fc2.weight, std=0.05)
            rdm.latent_mean.normal_()
            rdm.latent_std.uniform_(0.5, 2.0)
        model_dir = enc.save_pretrained(tmp_path_factory.mktemp("onnx-model"))
    out = tmp_path_factory.mktemp("onnx-export") / "export"
    export_onnx(str(model_dir), out)
    return model_dir, out
