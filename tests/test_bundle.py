"""Training bundles: a stage-1 recipe's crops and landmarks in one file, and training from it."""

from __future__ import annotations

import json
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
from _tiny import TINY_AE
from PIL import Image

from latentface_sdk.errors import ConfigError, DataError
from latentface_sdk.model_folder import load_model_folder
from latentface_sdk.train import __main__ as train_main
from latentface_sdk.train.bundle import (
    CROPS_PER_STRIP,
    DEFAULT_QUALITY,
    data_recipe,
    decode_strip,
    encode_strip,
    load_bundle,
    write_bundle,
)
from latentface_sdk.train.data import stage1_crops
from latentface_sdk.train.perceptual import MTCNNFeatures, build_feature_network
from latentface_sdk.train.stage1 import Stage1Config, train


def smooth_crops(n: int, seed: int = 0) -> np.ndarray:
    """Face-like smooth images: 8x8 noise enlarged to 64x64 (bicubic), uint8 (n, 64, 64, 3)."""
    rng = np.random.default_rng(seed)
    small = rng.integers(0, 256, size=(n, 8, 8, 3), dtype=np.uint8)
    return np.stack([np.asarray(Image.fromarray(s).resize((64, 64), Image.Resampling.BICUBIC))
                     for s in small])


def landmarks_for(n: int, seed: int = 1) -> np.ndarray:
    return np.random.default_rng(seed).uniform(-0.6, 0.6, size=(n, 5, 2)).astype(np.float32)


def tiny_recipe(**extra: object) -> Stage1Config:
    return Stage1Config.from_dict({"model": TINY_AE, "batch_size": 4, "steps": 2, "log_every": 1,
                                   "grid_every": 100, "checkpoint_every": 100, "device": "cpu",
                                   "sources": ["/nonexistent/photos"], **extra})


@pytest.fixture()
def bundle_file(tmp_path: Path) -> tuple[Path, np.ndarray, np.ndarray]:
    n = CROPS_PER_STRIP + 44  # two strips, the second one short
    crops, lms = smooth_crops(n), landmarks_for(n)
    path = tmp_path / "data.bundle"
    write_bundle(path, crops, lms, recipe=data_recipe(tiny_recipe()),
                 sources=[f"p/{i}.jpg" for i in range(n)], counts={"images": n + 3, "noface": 3})
    return path, crops, lms


def test_round_trip_keeps_landmarks_exactly_and_crops_within_jpeg_error(
        bundle_file: tuple[Path, np.ndarray, np.ndarray]) -> None:
    path, crops, lms = bundle_file
    bundle = load_bundle(path)
    assert bundle.crops.shape == crops.shape and bundle.crops.dtype == np.uint8
    np.testing.assert_array_equal(bundle.landmarks, lms)
    diff = np.abs(bundle.crops.astype(np.int16) - crops)
    # Stated margin: at quality 85 (4:4:4) these smooth, saturated images decode within 3/255 on average
    # (real face crops: 1.9/255, docs/gpu.md).
    assert diff.mean() < 3.0, diff.mean()
    m = bundle.manifest
    assert m["counts"] == {"crops": len(crops), "images": len(crops) + 3, "noface": 3}
    assert m["jpeg"]["quality"] == DEFAULT_QUALITY and m["jpeg"]["subsampling"] == "4:4:4"
    assert m["jpeg"]["mean_abs_diff"] == pytest.approx(diff.mean() / 255, abs=1e-6)
    assert [s["crops"] for s in m["strips"]] == [CROPS_PER_STRIP, 44]
    assert m["recipe_hash"] == bundle.recipe_hash and len(bundle.recipe_hash) == 64
    assert m["package_version"] and m["features"] is None
    with zipfile.ZipFile(path) as zf:  # crops stored, not deflated (JPEG does not shrink further)
        assert all(i.compress_type == zipfile.ZIP_STORED
                   for i in zf.infolist() if i.filename.endswith(".jpg"))
        assert zf.read("sources.txt").decode().splitlines()[:2] == ["p/0.jpg", "p/1.jpg"]
    ds = bundle.dataset()
    assert len(ds) == len(crops) and ds.landmarks is not None


def test_a_crop_in_a_strip_decodes_as_it_would_alone() -> None:
    # 4:4:4 and 64 = 8 x 8: every JPEG block lies inside one crop, so strips cost no quality.
    crops = smooth_crops(5, seed=3)
    strip = decode_strip(encode_strip(crops), 5, 64)
    for i in range(5):
        np.testing.assert_array_equal(strip[i], decode_strip(encode_strip(crops[i:i + 1]), 1, 64)[0])


def test_chroma_subsampling_is_smaller_and_recorded(tmp_path: Path) -> None:
    crops, lms = smooth_crops(64), landmarks_for(64)
    full = write_bundle(tmp_path / "444.bundle", crops, lms, recipe={})
    half = write_bundle(tmp_path / "420.bundle", crops, lms, recipe={}, quality=70, subsampling="4:2:0")
    assert half.jpeg_bytes < full.jpeg_bytes and half.mean_abs_diff > full.mean_abs_diff
    back = load_bundle(tmp_path / "420.bundle")
    assert back.manifest["jpeg"]["subsampling"] == "4:2:0" and back.crops.shape == crops.shape
    with pytest.raises(DataError, match="subsampling"):
        write_bundle(tmp_path / "x.bundle", crops, lms, recipe={}, subsampling="4:1:1")


def test_the_same_crops_give_the_same_bytes(tmp_path: Path) -> None:
    crops, lms = smooth_crops(20), landmarks_for(20)
    for name in ("a.bundle", "b.bundle"):
        write_bundle(tmp_path / name, crops, lms, recipe={"sources": ["x"]})
    assert (tmp_path / "a.bundle").read_bytes() == (tmp_path / "b.bundle").read_bytes()


def test_broken_bundles_raise_data_errors_naming_the_file(bundle_file: tuple[Path, np.ndarray, np.ndarray],
                                                          tmp_path: Path) -> None:
    path = bundle_file[0]
    cut = tmp_path / "cut.bundle"
    cut.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.raises(DataError, match="cut.bundle"):
        load_bundle(cut)
    other = tmp_path / "other.bundle"
    with zipfile.ZipFile(other, "w") as zf:
        zf.writestr("manifest.json", json.dumps({"format": "something-else"}))
    with pytest.raises(DataError, match="not a stage-1 training bundle"):
        load_bundle(other)
    newer = tmp_path / "newer.bundle"
    with zipfile.ZipFile(path) as src, zipfile.ZipFile(newer, "w") as dst:
        for info in src.infolist():
            data = src.read(info)
            if info.filename == "manifest.json":
                data = json.dumps({**json.loads(data), "version": 99}).encode()
            dst.writestr(info, data)
    with pytest.raises(DataError, match="newer"):
        load_bundle(newer)
    with pytest.raises(DataError, match="landmarks"):
        write_bundle(tmp_path / "x.bundle", smooth_crops(3), landmarks_for(2), recipe={})


def test_training_reads_the_bundle_instead_of_the_sources(bundle_file: tuple[Path, np.ndarray, np.ndarray],
                                                          tmp_path: Path) -> None:
    path = bundle_file[0]
    cfg = tiny_recipe(bundle=str(path))  # the sources do not exist: only the bundle is read
    final = train(cfg, tmp_path / "run", progress=False)
    config, _ = load_model_folder(final)
    meta = config.metadata["stage1"]["bundle"]
    assert meta["recipe_hash"] == load_bundle(path).recipe_hash and meta["crops"] == CROPS_PER_STRIP + 44
    log = [json.loads(line) for line in (tmp_path / "run" / "train.log").read_text().splitlines()]
    assert [r["step"] for r in log] == [1, 2] and all(np.isfinite(r["loss"]) for r in log)
    with pytest.raises(ConfigError, match="margin"):
        train(tiny_recipe(bundle=str(path), crop={"margin": 0.3}), tmp_path / "run2", progress=False)


def test_mtcnn_features_travel_in_the_bundle_without_facenet(tmp_path: Path,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    reference = MTCNNFeatures()
    crops, lms = smooth_crops(8), landmarks_for(8)
    write_bundle(tmp_path / "f.bundle", crops, lms, recipe={}, features=reference.net.state_dict(),
                 feature_net="mtcnn")
    bundle = load_bundle(tmp_path / "f.bundle")
    assert bundle.manifest["feature_net"] == "mtcnn" and bundle.features is not None
    monkeypatch.setitem(sys.modules, "facenet_pytorch", None)  # "import facenet_pytorch" now fails
    x = torch.rand(2, 3, 64, 64)
    assert torch.equal(MTCNNFeatures()(x), reference(x))  # the SDK ships ONet's weights itself
    net = build_feature_network("mtcnn", state=bundle.features)
    x = torch.rand(2, 3, 64, 64)
    assert torch.equal(net(x), reference(x))


def test_training_from_a_bundle_needs_neither_facenet_nor_pytorch3d(tmp_path: Path,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    crops, lms = smooth_crops(8), landmarks_for(8)
    write_bundle(tmp_path / "f.bundle", crops, lms, recipe=data_recipe(tiny_recipe()),
                 features=MTCNNFeatures().net.state_dict(), feature_net="mtcnn")
    for name in ("facenet_pytorch", "pytorch3d"):  # as on a bare GPU machine: importing them fails
        monkeypatch.setitem(sys.modules, name, None)
    cfg = tiny_recipe(bundle=str(tmp_path / "f.bundle"), feature_net="mtcnn", renderer="auto",
                      lambda_landmark=1.0)
    final = train(cfg, tmp_path / "run", progress=False)
    assert (final / "model.safetensors").is_file()


def test_stage1_training_imports_no_optional_heavy_package() -> None:
    # A bare GPU machine has torch but neither diffusers, facenet-pytorch nor PyTorch3D.
    import subprocess

    from latentface_sdk.models.rdm import DEFAULT_SNR_GAMMA as rdm_gamma
    from latentface_sdk.train.recipes import DEFAULT_SNR_GAMMA as recipe_gamma

    assert recipe_gamma == rdm_gamma  # repeated in recipes.py so that it needs no diffusers
    code = ("import sys; import latentface_sdk.train.stage1, latentface_sdk.train.__main__; "
            "print(sorted(m for m in ('diffusers', 'facenet_pytorch', 'pytorch3d') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                         check=True)
    assert out.stdout.strip() == "[]", out


def test_bundle_command_packs_what_the_trainer_would_train_on(shared_data: Path, tmp_path: Path,
                                                              capsys: pytest.CaptureFixture[str]) -> None:
    recipe = tmp_path / "recipe.json"
    recipe.write_text(json.dumps({"sources": ["shared:celeba-train"], "max_images": 6, "feature_net": "mtcnn",
                                  "detect_min_face_size": 40}))
    out = tmp_path / "s.bundle"
    code = train_main.main(["bundle", "--config", str(recipe), "--shared-root", str(shared_data),
                            "--cache-dir", str(tmp_path / "cache"), "--out", str(out), "--no-progress"])
    assert code == 0 and "bytes per crop" in capsys.readouterr().out
    bundle = load_bundle(out)
    cfg = Stage1Config.load(recipe)
    cfg.shared_root = str(shared_data)
    crops = stage1_crops(cfg, tmp_path / "cache", progress=False)  # the trainer's own path (cached)
    assert len(bundle) == int(crops.ok.sum()) > 0
    np.testing.assert_array_equal(bundle.landmarks, crops.landmarks[crops.ok])
    assert np.abs(bundle.crops.astype(np.int16) - crops.crops[crops.ok]).mean() < 3.0
    assert bundle.manifest["counts"]["images"] == 6 and bundle.manifest["feature_net"] == "mtcnn"
    assert bundle.recipe_hash == load_bundle(out).manifest["recipe_hash"]
    assert all(not s.startswith("/") for s in zipfile.ZipFile(out).read("sources.txt").decode().split())
