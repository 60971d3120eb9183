"""Shared pytest fixtures: where the shared face data lives (skipping cleanly without it), and the tiny
model and crops most encoder tests run on; for the Hub tests, a clean environment and a checkout with
bundled models.

Also the quick/full split (``tests/README.md``): tests marked ``slow`` (end-to-end runs, training, example
scripts, subprocesses that import the whole stack) are deselected unless ``--full`` is given or
``LATENTFACE_FULL_TESTS=1`` is set (``.ci/run`` sets it, so CI runs every test), an explicit ``-m``
expression is given, or the test's file or node id is named on the command line."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pytest
import torch

if TYPE_CHECKING:
    from latentface_sdk import FaceEncoder

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO_ROOT.parent / "shared" / "data"
#: Set to 1 (``.ci/run`` does) to run the tests marked ``slow`` too; same as ``--full``.
FULL_ENV = "LATENTFACE_FULL_TESTS"


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--full", action="store_true", default=False,
                     help=f"also run the tests marked slow (or set {FULL_ENV}=1; .ci/run does)")


def _full(config: pytest.Config) -> bool:
    return bool(config.getoption("--full")) or os.environ.get(FULL_ENV, "").strip() not in ("", "0")


def _named_files(config: pytest.Config) -> set[Path]:
    """Test files named on the command line, alone or with a ``::`` node id (folders do not count)."""
    if config.args_source != pytest.Config.ArgsSource.ARGS:
        return set()
    named = set()
    for arg in config.args:
        path = Path(config.invocation_params.dir, arg.split("::")[0])
        if path.is_file():
            named.add(path.resolve())
    return named


def pytest_report_header(config: pytest.Config) -> str:
    if _full(config):
        return "latentface: full suite (tests marked slow included)"
    return (f"latentface: quick suite: tests marked slow are deselected unless named; --full or {FULL_ENV}=1 "
            "runs them (CI does)")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if _full(config) or config.option.markexpr:  # an explicit -m expression decides by itself
        return
    named = _named_files(config)
    slow = [it for it in items if it.get_closest_marker("slow") and it.path.resolve() not in named]
    if slow:
        config.hook.pytest_deselected(items=slow)
        gone = set(map(id, slow))
        items[:] = [it for it in items if id(it) not in gone]


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


@pytest.fixture(scope="module")
def enc(tmp_path_factory: pytest.TempPathFactory) -> FaceEncoder:
    """The tiny model of ``tests/_tiny_model.py``, saved and loaded on the CPU: one per test module (a file
    that tests another model defines its own ``enc``)."""
    from _tiny_model import save_tiny_model

    from latentface_sdk import FaceEncoder

    return FaceEncoder.from_pretrained(save_tiny_model(tmp_path_factory.mktemp("tiny-model")), device="cpu")


@pytest.fixture(scope="module")
def crops() -> list[np.ndarray]:
    """Five different 64x64 face-sized noise crops (``synthetic_crops()`` of ``tests/_tiny_model.py``)."""
    from _tiny_model import synthetic_crops

    return synthetic_crops()


@pytest.fixture
def hub_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """No Hugging Face Hub settings from the environment: ``HF_HUB_OFFLINE``, ``HF_HUB_CACHE`` and
    ``HF_HOME`` unset for the test."""
    for var in ("HF_HUB_OFFLINE", "HF_HUB_CACHE", "HF_HOME"):
        monkeypatch.delenv(var, raising=False)


@pytest.fixture
def bundled(tmp_path: Path, model_dir: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A checkout layout with two bundled models, the default among them: copies of the test module's
    ``model_dir``. Returns its ``weights`` folder."""
    from latentface_sdk import _paths, hub

    root = tmp_path / "repo"
    (root / "latentface_sdk").mkdir(parents=True)
    (root / "pyproject.toml").write_text("[project]\n")
    for name in (hub.DEFAULT_MODEL, "other-model"):
        shutil.copytree(model_dir, root / "weights" / name)
    monkeypatch.setattr(_paths, "PACKAGE_DIR", root / "latentface_sdk")
    return root / "weights"


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
