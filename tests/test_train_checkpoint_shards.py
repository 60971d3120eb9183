"""A checkpoint in parts under a size limit: round trip, missing and damaged parts, and resuming from it."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from _tiny import TINY_AE, tiny_config

from latentface_sdk.config import ModelConfig
from latentface_sdk.errors import ChecksumError, WeightsError
from latentface_sdk.model_folder import load_model_folder, prefixed, save_model_folder
from latentface_sdk.models.autoencoder import LatentAutoencoder
from latentface_sdk.train import __main__ as train_main
from latentface_sdk.train.data import CropDataset
from latentface_sdk.train.parts import (
    DEFAULT_PART_BYTES,
    INDEX_NAME,
    is_parts_folder,
    join_checkpoint,
    load_parts,
    load_weights,
    save_parts,
    split_checkpoint,
)
from latentface_sdk.train.recipes import Stage1Config
from latentface_sdk.train.runtime import save_trainer_state
from latentface_sdk.train.stage1 import train

SMALL = 2**20  # 1 MiB: cuts the tiny model (6 MiB) into several files and some tensors into pieces


def trained_state(cfg: Any) -> tuple[LatentAutoencoder, torch.optim.Optimizer]:
    model = LatentAutoencoder(cfg)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    for p in model.parameters():
        p.grad = torch.randn_like(p)
    opt.step()
    return model, opt


def assert_same_tree(a: Any, b: Any) -> None:
    if isinstance(a, torch.Tensor):
        assert isinstance(b, torch.Tensor) and a.dtype == b.dtype and torch.equal(a, b)
    elif isinstance(a, dict):
        assert isinstance(b, dict) and list(a) == list(b)
        for k in a:
            assert_same_tree(a[k], b[k])
    elif isinstance(a, list | tuple):
        assert type(a) is type(b) and len(a) == len(b)
        for x, y in zip(a, b, strict=True):
            assert_same_tree(x, y)
    else:
        assert a == b and type(a) is type(b)


@pytest.fixture()
def checkpoint(tmp_path: Path) -> Path:
    cfg = tiny_config()
    model, opt = trained_state(cfg.autoencoder)
    folder = tmp_path / "checkpoint"
    save_model_folder(folder, cfg, prefixed(model, "autoencoder."))
    save_trainer_state(folder / "trainer_state.pt", opt, 7, elapsed=1.5)
    return folder


def test_parts_stay_under_the_limit_and_reassemble_exactly(checkpoint: Path, tmp_path: Path) -> None:
    index = split_checkpoint(checkpoint, tmp_path / "parts", max_bytes=SMALL)
    parts = sorted((tmp_path / "parts").glob("*.safetensors"))
    names = [p.name for p in parts]
    assert sum(n.startswith("model-") for n in names) > 2 and sum(n.startswith("trainer-") for n in names) > 2
    assert all(p.stat().st_size < SMALL for p in parts)
    entries = json.loads(index.read_text())["tensors"]["model"]
    assert any(len(e["parts"]) > 1 for e in entries.values())  # some tensors were cut across files
    config, tensors = load_model_folder(checkpoint)
    loaded = load_parts(tmp_path / "parts")
    assert list(loaded.model) == list(tensors)
    for k, v in tensors.items():
        assert torch.equal(loaded.model[k], v), k
    assert loaded.config.autoencoder == config.autoencoder and loaded.config.name == config.name
    original = torch.load(checkpoint / "trainer_state.pt", weights_only=True)
    assert loaded.trainer is not None
    assert_same_tree(original, loaded.trainer)
    joined = join_checkpoint(tmp_path / "parts", tmp_path / "joined")
    assert (joined / "model.safetensors").read_bytes() == (checkpoint / "model.safetensors").read_bytes()
    assert_same_tree(original, torch.load(joined / "trainer_state.pt", weights_only=True))


def test_parts_load_without_the_index_or_the_optimizer_and_refuse_damage(checkpoint: Path,
                                                                         tmp_path: Path) -> None:
    parts = tmp_path / "parts"
    split_checkpoint(checkpoint, parts, max_bytes=SMALL)
    (parts / INDEX_NAME).unlink()  # the index also lives in the first model file
    assert is_parts_folder(parts)
    loaded = load_parts(parts)
    assert loaded.trainer is not None and torch.equal(
        loaded.trainer["torch_rng"], torch.load(checkpoint / "trainer_state.pt")["torch_rng"])
    for f in parts.glob("trainer-*.safetensors"):  # the optimizer state did not come back
        f.unlink()
    weights_only = load_parts(parts)
    assert weights_only.trainer is None and weights_only.model
    split_checkpoint(checkpoint, parts, max_bytes=SMALL)
    victim = sorted(parts.glob("model-*.safetensors"))[1]
    data = bytearray(victim.read_bytes())
    data[-5] ^= 0xFF
    victim.write_bytes(bytes(data))
    with pytest.raises(ChecksumError, match=victim.name):
        load_parts(parts)
    victim.unlink()
    with pytest.raises(WeightsError, match="missing"):
        load_parts(parts)


def test_weights_only_split_and_stale_parts_are_removed(checkpoint: Path, tmp_path: Path) -> None:
    parts = tmp_path / "parts"
    split_checkpoint(checkpoint, parts, max_bytes=SMALL)
    split_checkpoint(checkpoint, parts, optimizer=False)  # one model file now, no trainer files
    assert sorted(p.name for p in parts.iterdir()) == [INDEX_NAME, "model-00001-of-00001.safetensors"]
    assert load_parts(parts).trainer is None


def test_the_default_stage1_checkpoint_comes_back_in_eight_files(tmp_path: Path) -> None:
    """The shipped architecture: ~37 MiB of weights + ~75 MiB of Adam state = 3 + 5 files under 16 MiB,
    index embedded: what a machine that returns 8 files of 16 MiB can hand back."""
    cfg = Stage1Config.load(Path(__file__).resolve().parents[1]
                            / "latentface_sdk/train/configs/stage1_default.json")
    model, opt = trained_state(cfg.model)
    parts = tmp_path / "parts"
    save_parts(parts, ModelConfig(autoencoder=model.cfg), prefixed(model, "autoencoder."),
               {"optimizer": opt.state_dict(), "step": 1})
    files = sorted(parts.glob("*.safetensors"))
    assert [f.name.split("-")[0] for f in files] == ["model"] * 3 + ["trainer"] * 5
    assert all(f.stat().st_size < DEFAULT_PART_BYTES for f in files)


def _log(run: Path) -> list[dict[str, float]]:
    return [json.loads(line) for line in (run / "train.log").read_text().splitlines()]


@pytest.mark.slow
def test_a_run_resumes_from_a_checkpoint_that_came_back_in_parts(tmp_path: Path,
                                                                 capsys: pytest.CaptureFixture[str]) -> None:
    rng = np.random.default_rng(0)
    data = CropDataset(rng.integers(0, 256, size=(16, 64, 64, 3), dtype=np.uint8), flip=True)
    base = dict(model=TINY_AE, batch_size=4, steps=6, log_every=1, grid_every=100, checkpoint_every=3,
                device="cpu")
    train(Stage1Config.from_dict(base), tmp_path / "straight", data=data, progress=False)
    train(Stage1Config.from_dict({**base, "steps": 3}), tmp_path / "away", data=data, progress=False)
    # Away: split the checkpoint. Back here: join it into a new run folder and resume there.
    assert train_main.main(["split", "--checkpoint", str(tmp_path / "away" / "checkpoint"), "--out",
                            str(tmp_path / "parts"), "--max-mib", str(SMALL / 2**20)]) == 0
    assert train_main.main(["join", "--parts", str(tmp_path / "parts"), "--out",
                            str(tmp_path / "back" / "checkpoint")]) == 0
    capsys.readouterr()
    train(Stage1Config.from_dict(base), tmp_path / "back", data=data, resume=True, progress=False)
    straight, back = _log(tmp_path / "straight"), _log(tmp_path / "back")
    assert [r["step"] for r in back] == [4, 5, 6]
    for a, b in zip(straight[3:], back, strict=True):
        assert a["loss"] == pytest.approx(b["loss"], rel=1e-4, abs=1e-5), (a, b)


@pytest.mark.slow
def test_init_from_reads_a_checkpoint_in_parts(checkpoint: Path, tmp_path: Path) -> None:
    split_checkpoint(checkpoint, tmp_path / "parts", optimizer=False, max_bytes=SMALL)
    _, expected = load_model_folder(checkpoint)
    assert all(torch.equal(load_weights(tmp_path / "parts")[1][k], v) for k, v in expected.items())
    rng = np.random.default_rng(1)
    data = CropDataset(rng.integers(0, 256, size=(8, 64, 64, 3), dtype=np.uint8), flip=False)
    cfg = Stage1Config.from_dict(dict(model=TINY_AE, batch_size=4, steps=1, lr=0.0, grid_every=100,
                                      checkpoint_every=100, device="cpu", init_from=str(tmp_path / "parts")))
    final = train(cfg, tmp_path / "run", data=data, progress=False)
    _, got = load_model_folder(final)  # lr 0: the weights are the ones started from
    for k, v in expected.items():
        assert torch.equal(got[k], v), k
