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
