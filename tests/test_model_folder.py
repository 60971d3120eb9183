"""latentface_sdk.checkpoint: model folders (``config.json`` + ``model.safetensors``) written and read back.

Broken, foreign and hostile folders (truncated or flipped bytes, pickles of every protocol, bad headers,
bad configs, NaN weights, mismatched keys) are tested in tests/robustness/test_weights.py; loading
through ``FaceEncoder.from_pretrained`` in tests/test_encoder.py. Here: what a good save writes, what a
load gives back, and the helpers that split a checkpoint into its parts.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from _tiny import tiny_config

from latentface_sdk.checkpoint import (
    PREFIXES,
    load_model_folder,
    load_part,
    pickled_files,
    prefixed,
    save_model_folder,
    split_state,
)
from latentface_sdk.config import CONFIG_NAME, WEIGHTS_NAME
from latentface_sdk.digests import file_digest
from latentface_sdk.errors import ChecksumError


def _state() -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(3)
    w = torch.randn(4, 6, generator=g, requires_grad=True)
    return {
        "autoencoder.w": w.t(),  # a non-contiguous view of a tensor that needs grad
        "autoencoder.half": torch.randn(3, generator=g).half(),
        "rdm_texture.steps": torch.arange(5),
        "rdm_shape.flag": torch.tensor([True, False]),
    }


def test_save_writes_the_two_files_and_records_the_checksum(tmp_path: Path) -> None:
    cfg = tiny_config("ckpt-test")
    assert cfg.checksum is None
    out = save_model_folder(tmp_path / "a" / "b" / "model", cfg, _state())  # parents created
    assert out == tmp_path / "a" / "b" / "model"
    assert sorted(p.name for p in out.iterdir()) == [CONFIG_NAME, WEIGHTS_NAME]  # no temporary files left
    assert cfg.checksum == file_digest(out / WEIGHTS_NAME)  # filled in on the config object too
    assert json.loads((out / CONFIG_NAME).read_text())["checksum"] == cfg.checksum


def test_the_same_weights_give_the_same_bytes(tmp_path: Path) -> None:
    a = save_model_folder(tmp_path / "a", tiny_config("ckpt-test"), _state())
    b = save_model_folder(tmp_path / "b", tiny_config("ckpt-test"), _state())
    assert (a / WEIGHTS_NAME).read_bytes() == (b / WEIGHTS_NAME).read_bytes()
    assert (a / CONFIG_NAME).read_bytes() == (b / CONFIG_NAME).read_bytes()
    changed = _state()
    changed["rdm_texture.steps"] = torch.arange(1, 6)
    c = save_model_folder(tmp_path / "c", tiny_config("ckpt-test"), changed)
    checksums = [json.loads((f / CONFIG_NAME).read_text())["checksum"] for f in (a, c)]
    assert checksums[0] != checksums[1]


def test_save_load_round_trip(tmp_path: Path) -> None:
    cfg = tiny_config("ckpt-test")
    folder = save_model_folder(tmp_path / "m", cfg, _state())
    loaded_cfg, state = load_model_folder(folder)
    assert loaded_cfg.to_dict() == cfg.to_dict()
    original = _state()
    assert sorted(state) == sorted(original)
    for key, value in original.items():
        assert state[key].dtype == value.dtype and torch.equal(state[key], value.detach()), key
        assert not state[key].requires_grad and state[key].is_contiguous()
    again = save_model_folder(tmp_path / "again", loaded_cfg, state)  # saved again: the same bytes
    assert (again / WEIGHTS_NAME).read_bytes() == (folder / WEIGHTS_NAME).read_bytes()


def test_a_replaced_weights_file_fails_the_checksum_unless_unchecked(tmp_path: Path) -> None:
    folder = save_model_folder(tmp_path / "m", tiny_config("ckpt-test"), _state())
    other = _state()
    other["autoencoder.half"] = other["autoencoder.half"] + 1
    donor = save_model_folder(tmp_path / "donor", tiny_config("ckpt-test"), other)
    (folder / WEIGHTS_NAME).write_bytes((donor / WEIGHTS_NAME).read_bytes())  # a valid file, but not this one
    with pytest.raises(ChecksumError, match="does not match the checksum in") as err:
        load_model_folder(folder)
    assert str(folder / WEIGHTS_NAME) in str(err.value) and str(folder / CONFIG_NAME) in str(err.value)
    _, state = load_model_folder(folder, verify_checksum=False)
    assert torch.equal(state["autoencoder.half"], other["autoencoder.half"])


def test_pickled_files_are_named_by_suffix(tmp_path: Path) -> None:
    for name in ("pytorch_model.bin", "model.pt", "a.pth", "last.ckpt", "w.pkl", "model.safetensors",
                 "notes.txt", "config.json"):
        (tmp_path / name).write_bytes(b"x")
    assert pickled_files(tmp_path) == ["a.pth", "last.ckpt", "model.pt", "pytorch_model.bin", "w.pkl"]


def test_parts_split_and_prefix_back() -> None:
    state = _state()
    assert PREFIXES == ("autoencoder.", "rdm_texture.", "rdm_shape.", "heads.")
    parts = {p: split_state(state, p) for p in PREFIXES}
    assert sorted(parts["autoencoder."]) == ["half", "w"] and list(parts["rdm_shape."]) == ["flag"]
    assert split_state({"autoencoderx.w": torch.zeros(1)}, "autoencoder.") == {}  # the dot is part of it
    lin = torch.nn.Linear(3, 2)
    assert sorted(prefixed(lin, "head.")) == ["head.bias", "head.weight"]
    copy = torch.nn.Linear(3, 2)
    load_part(copy, prefixed(lin, "head.") | {"other.x": torch.zeros(1)}, "head.", "test")
    assert torch.equal(copy.weight, lin.weight) and torch.equal(copy.bias, lin.bias)
