"""config.json: the current format (version 2), older files (version 1, with the fields it dropped) and
the one loader of config and recipe files."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import torch
from _tiny import tiny_config

from latentface_sdk.config import (
    CONFIG_NAME,
    CONFIG_VERSION,
    IMAGE_SIZE,
    LIGHT_DIM,
    POSE_DIM,
    AutoencoderConfig,
    ModelConfig,
)
from latentface_sdk.errors import ConfigError
from latentface_sdk.model_folder import load_model_folder, save_model_folder

#: The bundled model's config.json as the SDK wrote it before format 2 (commit daafae3): version 1, with
#: image_size, pose_dim, light_dim, shared_trunk and pose_init_scale, and coarse_steps in its metadata.
OLD_CONFIG = Path(__file__).parent / "data" / "config_v1.json"
BUNDLED = Path(__file__).resolve().parents[1] / "weights"

#: The autoencoder fields of format 1 that format 2 dropped, at the one value they could hold.
RETIRED = {"image_size": 64, "pose_dim": 6, "light_dim": 4, "shared_trunk": False, "pose_init_scale": 0.0}


def _old_format(cfg: ModelConfig) -> dict[str, Any]:
    """``cfg`` as a version-1 config.json held it."""
    data = cfg.to_dict()
    data["version"] = 1
    data["autoencoder"] = {**data["autoencoder"], **RETIRED}
    return data


def test_the_current_format_has_no_retired_field() -> None:
    data = tiny_config().to_dict()
    assert CONFIG_VERSION == 3 and data["version"] == 3
    assert not set(RETIRED) & set(data["autoencoder"])
    ae = AutoencoderConfig()
    assert (ae.image_size, ae.pose_dim, ae.light_dim) == (IMAGE_SIZE, POSE_DIM, LIGHT_DIM) == (64, 6, 4)
    with pytest.raises(TypeError):
        AutoencoderConfig(shared_trunk=True)  # type: ignore[call-arg]


def test_an_old_format_config_json_is_read_and_saved_in_the_current_format(tmp_path: Path) -> None:
    raw = json.loads(OLD_CONFIG.read_text())
    assert raw["version"] == 1 and RETIRED.items() <= raw["autoencoder"].items()
    cfg = ModelConfig.load(OLD_CONFIG)
    assert cfg.version == CONFIG_VERSION and cfg.checksum == raw["checksum"]
    kept = {k: v for k, v in raw["autoencoder"].items() if k not in RETIRED}
    assert cfg.autoencoder == AutoencoderConfig(**kept)
    assert cfg.metadata == raw["metadata"]  # free-form: carried as it is
    saved = json.loads(cfg.save(tmp_path / CONFIG_NAME).read_text())
    assert saved["version"] == CONFIG_VERSION and not set(RETIRED) & set(saved["autoencoder"])
    assert ModelConfig.load(tmp_path) == cfg
    assert ModelConfig.from_dict(cfg.to_dict()) == cfg  # exact inverses in the current format


def test_a_model_folder_with_an_old_config_json_loads(tmp_path: Path) -> None:
    torch.manual_seed(0)
    cfg = tiny_config("old-format")
    tensors = {"autoencoder.x": torch.randn(3, 2), "rdm_texture.y": torch.arange(4.0)}
    folder = save_model_folder(tmp_path / "m", cfg, tensors)
    data = json.loads((folder / CONFIG_NAME).read_text())
    (folder / CONFIG_NAME).write_text(json.dumps({**_old_format(cfg), "checksum": data["checksum"]}))
    loaded, weights = load_model_folder(folder)  # the checksum of the weights is still checked
    assert loaded == ModelConfig.from_dict(data)
    assert torch.equal(weights["autoencoder.x"], tensors["autoencoder.x"])


@pytest.mark.parametrize(
    ("field", "value", "why"),
    [
        ("image_size", 128, "64x64 crops only"),
        ("pose_dim", 7, r"pose is \(tx, ty, tz, yaw, pitch, roll\)"),
        ("light_dim", 3, r"light is \(ambient, diffuse, dx, dy\)"),
        ("shared_trunk", True, "one encoder trunk with four heads was a stage-1 lever measured and dropped"),
        ("shared_trunk", 0, "only false"),
        ("pose_init_scale", 0.3, "a pose head at random weights was a stage-1 lever measured and dropped"),
        ("image_size", "64", "only 64"),
    ],
)
def test_a_retired_field_at_another_value_is_refused_saying_why(tmp_path: Path, field: str, value: Any,
                                                                 why: str) -> None:
    data = _old_format(tiny_config())
    data["autoencoder"][field] = value
    path = tmp_path / CONFIG_NAME
    path.write_text(json.dumps(data))
    with pytest.raises(ConfigError, match=why) as info:
        ModelConfig.load(path)
    message = str(info.value)
    assert message.startswith(f"{path}: autoencoder.{field}: ")
    assert "removed in config version 2" in message


@pytest.mark.parametrize("version", [0, 4, 99])
def test_unknown_versions_are_refused(version: int) -> None:
    data = {**tiny_config().to_dict(), "version": version}
    with pytest.raises(ConfigError, match=f"config version {version} is not supported.*versions 1, 2 and 3"):
        ModelConfig.from_dict(data)


def test_the_bundled_configs_are_in_the_current_format() -> None:
    for path in sorted(BUNDLED.glob("*/" + CONFIG_NAME)):
        data = json.loads(path.read_text())
        assert data["version"] == CONFIG_VERSION, path
        assert not set(RETIRED) & set(data["autoencoder"]), path
        assert "coarse_steps" not in data["metadata"].get("stage1", {}), path
        assert json.loads(json.dumps(ModelConfig.load(path).to_dict())) == data
