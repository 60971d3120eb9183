"""latentface_sdk.model_folder: model folders (``config.json`` + ``model.safetensors``) written and read back,
the state-dict prefixes (typed in no other module of the package), and the versioned JSON manifests (the ONNX
card, the training bundle's manifest, the parts index) with their version checks.

Broken, foreign and hostile folders (truncated or flipped bytes, pickles of every protocol, bad headers,
bad configs, NaN weights, mismatched keys) are tested in tests/robustness/test_weights.py; loading
through ``FaceEncoder.from_pretrained`` in tests/test_encoder.py. Here: what a good save writes, what a
load gives back, and the helpers that split a checkpoint into its parts.
"""

from __future__ import annotations

import ast
import json
from pathlib import Path

import pytest
import torch
from _tiny import tiny_config

import latentface_sdk
from latentface_sdk import model_folder
from latentface_sdk._paths import bundled_weights_dir, list_bundled
from latentface_sdk.digests import file_digest
from latentface_sdk.errors import ChecksumError, DataError, OnnxFormatError, WeightsError
from latentface_sdk.model_folder import (
    CHECKPOINT_PARTS,
    CONFIG_NAME,
    ONNX_CARD,
    PREFIXES,
    TRAINING_BUNDLE,
    WEIGHTS_NAME,
    ManifestFormat,
    check_model_folder,
    is_model_folder,
    load_model_folder,
    load_part,
    pickled_files,
    prefixed,
    recorded_checksum,
    save_model_folder,
    split_state,
    stray_keys,
    with_prefix,
)

#: A format of version 2: it reads versions 1 and 2.
_DEMO = ManifestFormat("demo-format", 2, "a demo manifest", DataError)


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


def test_prefixes_keep_or_strip_and_find_strays() -> None:
    state = _state() | {"stray.x": torch.zeros(1)}
    assert sorted(with_prefix(state, model_folder.AUTOENCODER)) == ["autoencoder.half", "autoencoder.w"]
    assert stray_keys(state) == ["stray.x"] and stray_keys(_state()) == []
    assert prefixed(split_state(state, model_folder.RDM_SHAPE), model_folder.RDM_SHAPE) == {
        "rdm_shape.flag": state["rdm_shape.flag"]}  # a state dict is prefixed as a module is
    with pytest.raises(WeightsError, match="no tensors with prefix 'heads.'"):
        load_part(torch.nn.Linear(1, 1), state, model_folder.HEADS, "test")


def test_folder_checks_name_the_missing_file(tmp_path: Path) -> None:
    folder = save_model_folder(tmp_path / "m", tiny_config("ckpt-test"), _state())
    assert is_model_folder(folder) and check_model_folder(folder) == folder
    assert recorded_checksum(folder) == file_digest(folder / WEIGHTS_NAME)
    (folder / WEIGHTS_NAME).rename(folder / "pytorch_model.bin")
    assert not is_model_folder(folder)
    with pytest.raises(WeightsError, match="pytorch_model.bin but no model.safetensors: pickled"):
        check_model_folder(folder, "folder")
    (folder / CONFIG_NAME).write_text("{not json")
    assert recorded_checksum(folder) is None  # listing never raises
    with pytest.raises(WeightsError, match="lacks config.json and model.safetensors"):
        check_model_folder(tmp_path)


def test_model_id_names_the_weights(tmp_path: Path) -> None:
    cfg = tiny_config("ckpt-test")
    assert model_folder.model_id(cfg) == "ckpt-test"  # never saved: the name alone
    folder = save_model_folder(tmp_path / "m", cfg, _state())
    assert model_folder.model_id(cfg) == f"ckpt-test@{file_digest(folder / WEIGHTS_NAME)}"
    cfg.checksum = None  # unrecorded: the weights file's digest
    assert model_folder.model_id(cfg, folder) == f"ckpt-test@{file_digest(folder / WEIGHTS_NAME)}"


def test_bundled_weights_load_unchanged() -> None:
    """The shipped folders still load with the checksums they were shipped with, every key under a
    known prefix (the file format is unchanged)."""
    names = list_bundled()
    assert names, "no bundled weights found"
    for name in names:
        folder = bundled_weights_dir() / name
        recorded = json.loads((folder / CONFIG_NAME).read_text())["checksum"]
        config, state = load_model_folder(folder)  # verifies the SHA-256
        assert config.checksum == recorded == file_digest(folder / WEIGHTS_NAME)
        assert stray_keys(state) == [] and with_prefix(state, model_folder.AUTOENCODER)


# ------------------------------------------------------------------------------------ versioned manifests

def test_manifest_round_trip_stamps_format_and_version(tmp_path: Path) -> None:
    body = {"b": [1, 2], "a": {"x": "Δ"}}
    path = _DEMO.write(tmp_path / "m.json", body)
    text = path.read_text(encoding="utf-8")
    assert text.endswith("\n") and "Δ" in text  # UTF-8, not escaped
    assert list(json.loads(text)) == ["a", "b", "format", "version"]  # sorted keys
    back = _DEMO.read(path)
    assert back == {**body, "format": "demo-format", "version": 2}
    assert _DEMO.loads(_DEMO.dumps(body, indent=None), "compact") == back
    assert "\n" not in _DEMO.dumps(body, indent=None)
    assert _DEMO.recognises(path) and not TRAINING_BUNDLE.recognises(path)
    assert _DEMO.read_versions == (1, 2)  # older versions of a format are read too
    assert _DEMO.check({"format": "demo-format", "version": 1}, "old") == {"format": "demo-format",
                                                                          "version": 1}


@pytest.mark.parametrize("fmt, error", [(ONNX_CARD, OnnxFormatError), (TRAINING_BUNDLE, DataError),
                                        (CHECKPOINT_PARTS, WeightsError)])
def test_manifest_refusals_are_the_formats_typed_errors(fmt: ManifestFormat, error: type[Exception],
                                                        tmp_path: Path) -> None:
    path = fmt.write(tmp_path / "m.json", {"payload": 1})
    assert fmt.read(path)["payload"] == 1
    newer = {"format": fmt.name, fmt.version_key: fmt.version + 1}
    with pytest.raises(error, match=f"{fmt.version_key} {fmt.version + 1} is newer than this latentface-sdk"):
        fmt.check(newer, "new.json")
    for version in (0, "1", True, None):
        with pytest.raises(error, match="is not one this latentface-sdk reads"):
            fmt.check({"format": fmt.name, fmt.version_key: version}, "odd.json")
    with pytest.raises(error, match=f"odd.json: not {fmt.what}"):
        fmt.check({"format": "something-else", fmt.version_key: fmt.version}, "odd.json")
    with pytest.raises(error, match="not valid JSON"):
        fmt.loads(b"{oops", "bad.json")
    with pytest.raises(error, match="no readable"):
        fmt.read(tmp_path / "missing.json")
    assert not fmt.recognises(tmp_path / "missing.json")


def test_the_three_formats_keep_their_names() -> None:
    """Files written by earlier versions carry these names and version keys: they must still be read."""
    assert (ONNX_CARD.name, ONNX_CARD.version_key) == ("latentface-onnx", "format_version")
    assert (TRAINING_BUNDLE.name, TRAINING_BUNDLE.version_key) == ("latentface-stage1-bundle", "version")
    assert (CHECKPOINT_PARTS.name, CHECKPOINT_PARTS.version_key) == ("latentface-checkpoint-parts", "version")


# ------------------------------------------------------------------------------------ one place for prefixes


def _prefix_literals(path: Path) -> list[str]:
    """Where ``path`` types a state-dict prefix: a string that is one, an f-string that starts with one, or
    a string that starts with one followed by ``*`` (``"autoencoder.*"``)."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.JoinedStr) and node.values and isinstance(node.values[0], ast.Constant):
            text = node.values[0].value
            hit = isinstance(text, str) and text in PREFIXES
        elif isinstance(node, ast.Constant) and isinstance(node.value, str):
            text = node.value
            hit = text in PREFIXES or text.startswith(tuple(p + "*" for p in PREFIXES))
        else:
            continue
        if hit:
            found.append(f"{path.name}:{node.lineno}: {text!r}")
    return found


def test_no_other_package_module_types_a_prefix() -> None:
    package = Path(latentface_sdk.__file__).parent
    own = Path(model_folder.__file__)
    found = [hit for path in sorted(package.rglob("*.py")) if path != own for hit in _prefix_literals(path)]
    assert found == [], "use latentface_sdk.model_folder's constants instead: " + "; ".join(found)
    assert len(_prefix_literals(own)) == len(PREFIXES)  # the check does see them where they are defined
