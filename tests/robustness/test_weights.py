"""Broken, foreign and hostile weights: every one is refused with a typed error naming the file and the
reason.

Pickles are never unpickled: each hostile file carries a payload that would create a marker file when
unpickled (proved live on a control copy), and ``pickle``/``torch.load`` are booby-trapped during the load.
"""

from __future__ import annotations

import hashlib
import io
import json
import pickle
import struct
import zipfile
from pathlib import Path
from typing import Any

import pytest
import torch
from hypothesis import event, given, settings
from hypothesis import strategies as st

from latentface_sdk.config import CONFIG_NAME, AutoencoderConfig, ModelConfig
from latentface_sdk.errors import ChecksumError, ConfigError, LatentFaceError, WeightsError
from latentface_sdk.model_folder import (
    WEIGHTS_NAME,
    load_model_folder,
    load_part,
    prefixed,
    save_model_folder,
)
from latentface_sdk.models.autoencoder import LatentAutoencoder

from ._budget import examples
from .catalogue import pickle_bytes

# ------------------------------------------------------------------------------------------ fixtures


def _small_state() -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    return {
        "autoencoder.w": torch.randn(8, 4, generator=g),
        "autoencoder.b": torch.zeros(8),
        "rdm_texture.w": torch.randn(3, 3, generator=g),
    }


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    """A valid model folder (config.json with checksum + model.safetensors) with three small tensors."""
    return save_model_folder(tmp_path / "model", ModelConfig(), _small_state())


@pytest.fixture(scope="module")
def autoencoder_state() -> dict[str, torch.Tensor]:
    return prefixed(LatentAutoencoder(AutoencoderConfig()), "autoencoder.")


@pytest.fixture
def trapped(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Make every unpickling entry point fail loudly; returns the list of attempts (must stay empty)."""
    attempts: list[str] = []

    def trap(what: str) -> Any:
        def refuse(*args: Any, **kwargs: Any) -> Any:
            attempts.append(what)
            raise AssertionError(f"{what} was called while loading weights")

        return refuse

    monkeypatch.setattr(pickle, "load", trap("pickle.load"))
    monkeypatch.setattr(pickle, "loads", trap("pickle.loads"))
    monkeypatch.setattr(pickle, "Unpickler", trap("pickle.Unpickler"))
    monkeypatch.setattr(torch, "load", trap("torch.load"))
    return attempts


def _config(folder: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((folder / CONFIG_NAME).read_text())
    return data


def _write_config(folder: Path, data: dict[str, Any]) -> None:
    (folder / CONFIG_NAME).write_text(json.dumps(data))


def _set_checksum(folder: Path) -> None:
    """Record the weights file's real SHA-256, as an attacker controlling the folder would."""
    data = _config(folder)
    data["checksum"] = hashlib.sha256((folder / WEIGHTS_NAME).read_bytes()).hexdigest()
    _write_config(folder, data)


# ------------------------------------------------------------------------------------- missing parts


def test_missing_folder_config_and_weights_are_named(folder: Path, tmp_path: Path) -> None:
    with pytest.raises(WeightsError, match="not a folder") as info:
        load_model_folder(tmp_path / "nowhere")
    assert "nowhere" in str(info.value)
    with pytest.raises(WeightsError, match="not a folder"):
        load_model_folder(folder / WEIGHTS_NAME)  # the file instead of its folder
    (folder / WEIGHTS_NAME).unlink()
    with pytest.raises(WeightsError, match="missing weights file") as info:
        load_model_folder(folder)
    assert str(folder / WEIGHTS_NAME) in str(info.value)
    (folder / CONFIG_NAME).unlink()
    with pytest.raises(ConfigError, match="no such config file"):
        load_model_folder(folder)


# ----------------------------------------------------------------------------------- truncated files


@settings(max_examples=examples(30), deadline=None)
@given(fraction=st.floats(0.0, 1.0, exclude_max=True))
def test_truncated_safetensors_are_refused(fraction: float, tmp_path_factory: pytest.TempPathFactory) -> None:
    folder = save_model_folder(tmp_path_factory.mktemp("cut"), ModelConfig(), _small_state())
    weights = folder / WEIGHTS_NAME
    data = weights.read_bytes()
    cut = int(fraction * len(data))
    weights.write_bytes(data[:cut])
    with pytest.raises(ChecksumError, match="does not match the checksum"):
        load_model_folder(folder)
    # Without the checksum (or with one recomputed for the cut file) the parser still refuses it.
    _set_checksum(folder)
    with pytest.raises(WeightsError, match="not a readable safetensors file") as info:
        load_model_folder(folder)
    assert type(info.value) is WeightsError and str(weights) in str(info.value)
    event("header cut" if cut < 8 + struct.unpack("<Q", data[:8])[0] else "tensor data cut")


@settings(max_examples=examples(40), deadline=None)
@given(at=st.floats(0.0, 1.0, exclude_max=True), mask=st.integers(1, 255))
def test_any_changed_byte_is_caught_by_the_checksum(
    at: float, mask: int, tmp_path_factory: pytest.TempPathFactory
) -> None:
    folder = save_model_folder(tmp_path_factory.mktemp("flip"), ModelConfig(), _small_state())
    weights = folder / WEIGHTS_NAME
    data = bytearray(weights.read_bytes())
    data[int(at * len(data))] ^= mask
    weights.write_bytes(bytes(data))
    with pytest.raises(ChecksumError, match=r"SHA-256 [0-9a-f]{16}\.\.\. does not match") as info:
        load_model_folder(folder)
    assert "corrupt or was replaced" in str(info.value) and str(folder / CONFIG_NAME) in str(info.value)
    # Unchecked, a damaged header is refused by the parser; damaged tensor bytes load (hence the checksum).
    try:
        load_model_folder(folder, verify_checksum=False)
        event("unchecked: loads (tensor data changed)")
    except WeightsError as exc:
        assert "not a readable safetensors file" in str(exc)
        event("unchecked: refused by the parser")


@pytest.mark.parametrize(
    "header",
    [
        b'{"w": {"dtype": "F32", "shape": [1000000], "data_offsets": [0, 4000000]}}',  # lies about its size
        b'{"w": {"dtype": "Q99", "shape": [1], "data_offsets": [0, 4]}}',  # unknown dtype
        b'{"w": {"dtype": "F32", "shape": [2], "data_offsets": [4, 0]}}',  # reversed offsets
        b"[1, 2, 3]",  # not an object
        b"{not json",
    ],
)
def test_hostile_safetensors_headers_are_refused(folder: Path, header: bytes) -> None:
    weights = folder / WEIGHTS_NAME
    weights.write_bytes(struct.pack("<Q", len(header)) + header + b"\x00" * 8)
    _set_checksum(folder)
    with pytest.raises(WeightsError, match="not a readable safetensors file"):
        load_model_folder(folder)


def test_a_header_length_of_exabytes_is_refused_without_allocating(folder: Path) -> None:
    weights = folder / WEIGHTS_NAME
    weights.write_bytes(struct.pack("<Q", 2**62) + b"{}")
    _set_checksum(folder)
    with pytest.raises(WeightsError, match="not a readable safetensors file"):
        load_model_folder(folder)


# ---------------------------------------------------------------------------------------- pickles


def _torch_zip_bytes(marker: Path) -> bytes:
    """What ``torch.save`` writes: a zip whose ``data.pkl`` member is the (hostile) pickle."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("archive/data.pkl", pickle_bytes(marker, protocol=2))
        zf.writestr("archive/version", "3\n")
    return buf.getvalue()


def test_the_hostile_pickles_are_live(tmp_path: Path) -> None:
    """Control: the same payload, when unpickled, does create its marker (so its absence below means
    something)."""
    marker = tmp_path / "control-marker"
    pickle.loads(pickle_bytes(marker))
    assert marker.exists()


@pytest.mark.parametrize("protocol", [0, 1, 2, 3, 4, 5])
def test_a_pickle_named_model_safetensors_is_never_unpickled(
    folder: Path, tmp_path: Path, protocol: int, trapped: list[str]
) -> None:
    marker = tmp_path / "PWNED"
    (folder / WEIGHTS_NAME).write_bytes(pickle_bytes(marker, protocol=protocol))
    _set_checksum(folder)  # the checksum gate is passed on purpose: the format gate must hold alone
    with pytest.raises(WeightsError) as info:
        load_model_folder(folder)
    assert type(info.value) is WeightsError
    assert "not safetensors" in str(info.value) or "not a readable safetensors file" in str(info.value)
    assert not marker.exists() and trapped == []


def test_a_torch_save_zip_named_model_safetensors_is_never_unpickled(
    folder: Path, tmp_path: Path, trapped: list[str]
) -> None:
    marker = tmp_path / "PWNED"
    (folder / WEIGHTS_NAME).write_bytes(_torch_zip_bytes(marker))
    _set_checksum(folder)
    with pytest.raises(WeightsError, match="this is a pickle/zip file, not safetensors; it was not loaded"):
        load_model_folder(folder)
    assert not marker.exists() and trapped == []


@pytest.mark.parametrize("name", ["pytorch_model.bin", "model.pt", "model.ckpt", "weights.pkl"])
def test_pickled_weights_beside_a_missing_safetensors_are_refused_by_name(
    folder: Path, tmp_path: Path, name: str, trapped: list[str]
) -> None:
    marker = tmp_path / "PWNED"
    (folder / WEIGHTS_NAME).unlink()
    (folder / name).write_bytes(_torch_zip_bytes(marker))
    with pytest.raises(
        WeightsError, match=r"pickled weights are refused; convert them to safetensors"
    ) as info:
        load_model_folder(folder)
    assert name in str(info.value)
    assert not marker.exists() and trapped == []


# -------------------------------------------------------------------------------------- config.json


@pytest.mark.parametrize(
    ("change", "match"),
    [
        ({"version": 4}, "config version 4 is not supported"),
        ({"version": "1"}, "config version '1' is not supported"),
        ({"version": True}, "config version True is not supported"),
        ({"version": None}, "config version None is not supported"),
        ({"checksum": 5}, "checksum: expected a SHA-256 hex string"),
        ({"checksum": "abc"}, "checksum: expected a SHA-256 hex string"),
        ({"name": ["x"]}, "name: expected a string"),
        ({"metadata": [1]}, "metadata: expected an object"),
        ({"autoencoder": {"width": "wide"}}, "autoencoder.width: expected a number"),
        ({"autoencoder": {"width": 10}}, "multiples of 4"),
        ({"autoencoder": {"fov_deg": float("nan")}}, "fov_deg"),
        ({"rdm": {"channels": [1, 2]}}, "three positive widths"),
        ({"rdm": {"channels": ["a", 2, 3]}}, "rdm.channels: expected a list of numbers"),
        ({"rdm": {"latent_dim": 128}}, "rdm.latent_dim must equal autoencoder.latent_dim"),
        ({"crop": {"margin": -1}}, "crop.margin"),
        ({"crop": {"sharpen": True}}, r"unknown field\(s\) \['sharpen'\]"),
        ({"extra": 1}, r"unknown field\(s\) \['extra'\]"),
    ],
)
def test_bad_config_fields_are_named(folder: Path, change: dict[str, Any], match: str) -> None:
    data = _config(folder)
    for key, value in change.items():
        data[key] = {**data[key], **value} if isinstance(value, dict) else value
    _write_config(folder, data)
    with pytest.raises(ConfigError, match=match) as info:
        load_model_folder(folder)
    assert str(info.value).startswith(str(folder / CONFIG_NAME)), str(info.value)


@pytest.mark.parametrize(
    ("content", "match"),
    [
        (b"", "not valid JSON"),
        (b"{", "not valid JSON"),
        (b"[]", "expected a JSON object, got list"),
        (b"{}", "missing the 'version' field"),
        (b"\xff\xfe\x00garbage", "not UTF-8 text"),
        (pickle.dumps({"version": 1}), "not UTF-8 text|not valid JSON"),
    ],
)
def test_unreadable_config_files_are_refused(folder: Path, content: bytes, match: str) -> None:
    (folder / CONFIG_NAME).write_bytes(content)
    with pytest.raises(ConfigError, match=match):
        load_model_folder(folder)


_JSON = st.recursive(
    st.none() | st.booleans() | st.integers(-5, 300) | st.floats(allow_nan=False) | st.text(max_size=5),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
    max_leaves=6,
)


def _paths(data: dict[str, Any], prefix: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    out: list[tuple[str, ...]] = []
    for key, value in data.items():
        out.append((*prefix, key))
        if isinstance(value, dict):
            out += _paths(value, (*prefix, key))
    return out


_VALID = ModelConfig().to_dict()
_FIELDS = _paths(_VALID)


@settings(max_examples=examples(50), deadline=None)
@given(
    edits=st.lists(
        st.tuples(st.sampled_from(_FIELDS + [("unknown",), ("crop", "unknown")]), st.booleans(), _JSON),
        max_size=3,
    )
)
def test_any_edit_of_a_valid_config_gives_a_config_or_a_config_error(
    edits: list[tuple[tuple[str, ...], bool, Any]],
) -> None:
    """A valid config.json with up to three fields replaced by arbitrary JSON (or deleted)."""
    data = json.loads(json.dumps(_VALID))
    for path, delete, value in edits:
        holder = data
        for key in path[:-1]:
            holder = holder.get(key) if isinstance(holder, dict) else None
        if not isinstance(holder, dict):
            continue
        if delete:
            holder.pop(path[-1], None)
        else:
            holder[path[-1]] = value
    try:
        cfg = ModelConfig.from_dict(data, source="fuzz.json")
    except ConfigError as exc:
        assert str(exc).startswith("fuzz.json: ")
        event("ConfigError")
        return
    cfg.validate()
    assert ModelConfig.from_dict(cfg.to_dict()) == cfg
    event("valid config")


# ---------------------------------------------------------------------------------- tensors vs model


def test_wrong_shapes_name_the_key_and_both_shapes(autoencoder_state: dict[str, torch.Tensor]) -> None:
    narrow = prefixed(LatentAutoencoder(AutoencoderConfig(width=16)), "autoencoder.")
    with pytest.raises(
        WeightsError, match=r"shape mismatch autoencoder\.\S+: file \(\d+.*\) vs model \(\d+"
    ) as info:
        load_part(LatentAutoencoder(AutoencoderConfig()), narrow, "autoencoder.", "narrow/model.safetensors")
    assert str(info.value).startswith("narrow/model.safetensors: tensors do not match the model")


def test_missing_and_unexpected_keys_are_named(autoencoder_state: dict[str, torch.Tensor]) -> None:
    state = dict(autoencoder_state)
    gone = sorted(state)[0]
    del state[gone]
    state["autoencoder.surprise.weight"] = torch.zeros(1)
    with pytest.raises(WeightsError) as info:
        load_part(LatentAutoencoder(AutoencoderConfig()), state, "autoencoder.", "m.safetensors")
    assert f"missing ['{gone}']" in str(info.value)
    assert "unexpected ['autoencoder.surprise.weight']" in str(info.value)
    with pytest.raises(WeightsError, match="no tensors with prefix 'autoencoder.'"):
        rdm_only = {k: v for k, v in _small_state().items() if k.startswith("rdm_texture.")}
        load_part(LatentAutoencoder(AutoencoderConfig()), rdm_only, "autoencoder.", "m.safetensors")


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), -float("inf")])
def test_non_finite_weights_are_refused_by_key(
    autoencoder_state: dict[str, torch.Tensor], bad: float
) -> None:
    state = {k: v.clone() for k, v in autoencoder_state.items()}
    key = next(k for k, v in sorted(state.items()) if v.is_floating_point() and v.numel() > 1)
    state[key].view(-1)[1] = bad
    model = LatentAutoencoder(AutoencoderConfig())
    before = {k: v.clone() for k, v in model.state_dict().items()}
    with pytest.raises(WeightsError, match="NaN or infinite") as info:
        load_part(model, state, "autoencoder.", "m.safetensors")
    assert key in str(info.value)
    for k, v in model.state_dict().items():  # nothing was half-loaded
        assert torch.equal(v, before[k]), k


def test_a_good_folder_round_trips_exactly(folder: Path, autoencoder_state: dict[str, torch.Tensor]) -> None:
    cfg, state = load_model_folder(folder)
    assert cfg.checksum == hashlib.sha256((folder / WEIGHTS_NAME).read_bytes()).hexdigest()
    for k, v in _small_state().items():
        assert torch.equal(state[k], v)
    model = LatentAutoencoder(AutoencoderConfig())
    load_part(model, autoencoder_state, "autoencoder.", "x")
    for k, v in prefixed(model, "autoencoder.").items():
        assert torch.equal(v, autoencoder_state[k])


def test_every_weights_error_is_a_latentface_error() -> None:
    for kind in (WeightsError, ConfigError, ChecksumError):
        assert issubclass(kind, LatentFaceError)
