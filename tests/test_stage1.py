"""Stage 1: output shapes and ranges, gradient flow, a real overfit, and exact resume."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from _tiny import TINY_AE

from latentface_sdk.config import AutoencoderConfig, CropConfig
from latentface_sdk.cropset import prepare_crops
from latentface_sdk.models.autoencoder import LatentAutoencoder
from latentface_sdk.render.renderer import FaceRenderer
from latentface_sdk.train.data import CropDataset
from latentface_sdk.train.losses import Stage1Loss, confidence_l1, reconstruct
from latentface_sdk.train.perceptual import RandomConvFeatures
from latentface_sdk.train.stage1 import Stage1Config, batch_indices, train

TINY = TINY_AE


def tiny_model() -> LatentAutoencoder:
    return LatentAutoencoder(AutoencoderConfig(**TINY))


@pytest.fixture(scope="module")
def eight_faces(shared_data: Path) -> np.ndarray:
    import csv

    with open(shared_data / "celeba10k" / "identity.csv", newline="") as fh:
        rows = [r for r in csv.DictReader(fh) if r["split"] == "train"][:8]
    paths = [shared_data / "celeba10k" / "images" / r["image"] for r in rows]
    crops = prepare_crops(paths, CropConfig(min_face_size=40), detect=True, fallback="center", progress=False)
    assert crops.ok.all()
    return crops.crops


def test_latents_and_maps_have_documented_shapes_and_ranges() -> None:
    model = LatentAutoencoder()  # the shipped (CPU-sized) architecture
    latents, maps = model(torch.rand(3, 3, 64, 64))
    assert latents.texture.shape == (3, 256) and latents.shape.shape == (3, 256)
    assert latents.pose.shape == (3, 6) and latents.light.shape == (3, 4)
    cfg = model.cfg
    assert latents.pose[:, 3:].abs().max() <= cfg.max_rotation_deg
    assert latents.pose[:, :2].abs().max() <= cfg.max_translation_xy + 1e-6
    assert (latents.light[:, :2] >= 0).all() and (latents.light[:, :2] <= 1).all()
    assert latents.light[:, 2:].abs().max() <= 1
    assert maps.albedo.shape == (3, 3, 64, 64) and 0 <= maps.albedo.min() and maps.albedo.max() <= 1
    assert maps.depth.shape == (3, 64, 64)
    assert cfg.depth_min <= maps.depth.min() and maps.depth.max() <= cfg.depth_max
    photo, feature = model.confidence(model.normalize(torch.rand(3, 3, 64, 64)))
    assert photo.shape == (3, 2, 64, 64) and feature.shape == (3, 2, 16, 16)
    assert (photo > 0).all() and (feature > 0).all()


def test_confidence_loss_matches_equation_10() -> None:
    pred, target = torch.zeros(1, 3, 2, 2), torch.full((1, 3, 2, 2), 0.5)
    sigma = torch.full((1, 1, 2, 2), 0.25)
    expected = 2**0.5 * 0.5 / 0.25 + np.log(2**0.5 * 0.25)
    assert confidence_l1(pred, target, sigma).item() == pytest.approx(expected, rel=1e-6)
    mask = torch.zeros(1, 1, 2, 2)
    mask[..., 0, 0] = 1
    target2 = target.clone()
    target2[..., 1, 1] = 5.0  # outside the mask: ignored
    assert confidence_l1(pred, target2, sigma, mask).item() == pytest.approx(expected, rel=1e-6)


def test_gradients_reach_every_network() -> None:
    model = tiny_model()
    renderer = FaceRenderer(backend="fast")
    x = torch.rand(4, 3, 64, 64)
    features = RandomConvFeatures()
    # The zeroed depth/pose heads block gradients to the layers before them until their first update,
    # so take one optimizer step first (as training does), then check the second step reaches everything.
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    for step in range(2):
        opt.zero_grad()
        loss, _ = Stage1Loss()(reconstruct(model, renderer, x), x, features)
        loss.backward()
        if step == 0:
            opt.step()
    for name in ("texture_encoder", "shape_encoder", "pose_encoder", "light_encoder",
                 "albedo_decoder", "depth_decoder", "confidence"):
        grads = [p.grad for p in getattr(model, name).parameters()]
        assert all(g is not None for g in grads), name
        assert sum(float(g.abs().sum()) for g in grads if g is not None) > 0, name


def test_batches_cover_the_data_once_per_epoch_and_split_across_ranks() -> None:
    seen = torch.cat([batch_indices(32, s, 4, seed=0) for s in range(8)])
    assert sorted(seen.tolist()) == list(range(32))
    r0, r1 = batch_indices(32, 3, 4, 0, rank=0, world=2), batch_indices(32, 3, 4, 0, rank=1, world=2)
    assert not set(r0.tolist()) & set(r1.tolist())


def _log(run: Path) -> list[dict[str, float]]:
    return [json.loads(line) for line in (run / "train.log").read_text().splitlines()]


@pytest.mark.slow
def test_overfit_on_eight_real_faces_lowers_photometric_error(eight_faces: np.ndarray,
                                                              tmp_path: Path) -> None:
    cfg = Stage1Config.from_dict(dict(model=TINY, batch_size=8, lr=1e-3, steps=60, log_every=1, grid_every=60,
                       checkpoint_every=60, device="cpu"))
    train(cfg, tmp_path / "run", data=CropDataset(eight_faces, flip=False), progress=False)
    log = _log(tmp_path / "run")
    first = np.mean([r["l1"] for r in log[:3]])
    last = np.mean([r["l1"] for r in log[-3:]])
    # Stated margin: the masked L1 reconstruction error drops by at least 30% in 60 steps.
    assert last < 0.7 * first, (first, last)
    assert (tmp_path / "run" / "grids" / "step_0000060.png").is_file()
    assert (tmp_path / "run" / "model" / "model.safetensors").is_file()


@pytest.mark.slow
def test_resume_continues_with_the_same_loss(eight_faces: np.ndarray, tmp_path: Path) -> None:
    data = CropDataset(np.concatenate([eight_faces, eight_faces[:, :, ::-1]]), flip=True)
    base = dict(model=TINY, batch_size=4, steps=6, log_every=1, grid_every=100, checkpoint_every=3,
                device="cpu")
    train(Stage1Config.from_dict(base), tmp_path / "straight", data=data, progress=False)
    train(Stage1Config.from_dict({**base, "steps": 3}), tmp_path / "split", data=data, progress=False)
    train(Stage1Config.from_dict(base), tmp_path / "split", data=data, resume=True, progress=False)
    straight, split = _log(tmp_path / "straight"), _log(tmp_path / "split")
    assert [r["step"] for r in split] == [1, 2, 3, 4, 5, 6]
    for a, b in zip(straight, split, strict=True):
        assert a["loss"] == pytest.approx(b["loss"], rel=1e-4, abs=1e-5), (a, b)


def test_untrained_model_starts_flat_and_frontal() -> None:
    # The zeroed last layers of the depth decoder and pose encoder: a flat face seen frontally, so the
    # first steps neither rasterise slivers nor rotate faces that the reconstruction cannot explain.
    model = LatentAutoencoder(AutoencoderConfig(**TINY))
    latents, maps = model(torch.rand(3, 3, 64, 64))
    assert torch.equal(latents.pose, torch.zeros_like(latents.pose))
    mid = (model.cfg.depth_min + model.cfg.depth_max) / 2
    assert torch.allclose(maps.depth, torch.full_like(maps.depth, mid), atol=1e-6)
    # ... and they still learn: both heads receive gradients.
    (maps.depth.sum() + latents.pose.sum()).backward()
    assert model.depth_decoder.net[-2].weight.grad.abs().sum() > 0  # type: ignore[union-attr]


def test_depth_curvature_ignores_planes_and_penalises_ridges() -> None:
    from latentface_sdk.train.losses import depth_curvature

    yy, xx = torch.meshgrid(torch.arange(64.0), torch.arange(64.0), indexing="ij")
    pixel = 0.003
    tilted = (1.0 + pixel * (0.5 * xx - 0.3 * yy))[None]  # a plane at any slope: no curvature
    assert depth_curvature(tilted, pixel).item() == pytest.approx(0.0, abs=1e-3)
    ridges = tilted + 0.5 * pixel * (yy % 2)[None]  # rows alternating by half a pixel's depth
    # second difference of the alternating rows is 2 * 0.5 = 1 slope unit per row on average in y
    assert depth_curvature(ridges, pixel).item() == pytest.approx(1.0, rel=1e-3)
    # the recipe weight enters the total loss (and only when asked)
    assert Stage1Loss().lambda_smooth == 0.0
    assert Stage1Config.load(
        Path(__file__).parents[1] / "latentface_sdk/train/configs/stage1_default.json").lambda_smooth > 0


@pytest.fixture(scope="module")
def eight_with_landmarks(shared_data: Path) -> CropDataset:
    import csv

    with open(shared_data / "celeba10k" / "identity.csv", newline="") as fh:
        rows = [r for r in csv.DictReader(fh) if r["split"] == "train"][:8]
    paths = [shared_data / "celeba10k" / "images" / r["image"] for r in rows]
    crops = prepare_crops(paths, CropConfig(min_face_size=40), detect=True, fallback="none", progress=False)
    assert crops.ok.all() and np.isfinite(crops.landmarks).all()
    # MTCNN's points land where a face's features are in a margin-0.1 crop (some of these faces are turned
    # far, with the nose beyond an eye): eyes above the nose above the mouth, left points left of right ones.
    lm = crops.landmarks
    assert (lm[:, 0, 0] < lm[:, 1, 0]).all() and (lm[:, 3, 0] < lm[:, 4, 0]).all()
    assert (lm[:, :2, 1].max(1) < lm[:, 2, 1]).all() and (lm[:, 2, 1] < lm[:, 3:, 1].min(1)).all()
    assert np.abs(lm).max() < 1.0
    return CropDataset(crops.crops, flip=True, landmarks=crops.landmarks)


@pytest.mark.slow
def test_recipe_with_landmarks_and_light_cycle_trains_and_logs_pose_health(
    eight_with_landmarks: CropDataset, tmp_path: Path
) -> None:
    cfg = Stage1Config.from_dict(dict(model={**TINY, "depth_prior": 0.3}, batch_size=8, lr=2e-3, steps=4,
                                      log_every=2, grid_every=4, checkpoint_every=4, device="cpu",
                                      lambda_landmark=10.0, lambda_light_cycle=1.0, light_cycle_count=4,
                                      lambda_smooth=0.02))
    train(cfg, tmp_path / "run", data=eight_with_landmarks, progress=False)
    log = _log(tmp_path / "run")
    for key in ("landmark", "cycle_light", "cycle_texture", "relief", "nose_relief", "yaw_r", "yaw_std"):
        assert key in log[-1], key
    assert log[-1]["nose_relief"] > 0  # the depth prior starts convex
    meta = json.loads((tmp_path / "run" / "model" / "config.json").read_text())["metadata"]["stage1"]
    assert meta["lambda_landmark"] == 10.0 and len(meta["canonical_keypoints"]) == 5


@pytest.mark.slow
def test_landmark_loss_pulls_the_keypoints_onto_mtcnn_points(eight_with_landmarks: CropDataset) -> None:
    from latentface_sdk.landmarks import canonical_keypoints
    from latentface_sdk.train.stage1 import Stage1Trainer

    assert eight_with_landmarks.landmarks is not None
    frontal = np.array([[[-0.33, -0.21], [0.33, -0.21], [0.0, 0.17], [-0.29, 0.45], [0.29, 0.45]]],
                       np.float32)
    keypoints = canonical_keypoints(np.concatenate([eight_with_landmarks.landmarks, frontal]))
    cfg = Stage1Config.from_dict(dict(model={**TINY, "depth_prior": 0.3}, lr=2e-3, lambda_landmark=10.0,
                                      device="cpu"))
    trainer = Stage1Trainer(cfg, torch.device("cpu"), keypoints)
    x = torch.from_numpy(eight_with_landmarks.crops).permute(0, 3, 1, 2).float() / 255
    marks = torch.from_numpy(eight_with_landmarks.landmarks)
    losses = [trainer.step(x, marks)["landmark"] for _ in range(30)]
    # Stated margin: the landmark error falls by a quarter within 30 steps (the zero-initialised pose
    # head first has to grow; measured here 0.111 -> 0.064-0.086 over the last five steps).
    assert min(losses[-5:]) < 0.75 * losses[0], losses


def test_landmark_loss_needs_landmarks(eight_faces: np.ndarray, tmp_path: Path) -> None:
    from latentface_sdk.errors import ConfigError

    cfg = Stage1Config.from_dict(dict(model=TINY, batch_size=4, steps=1, device="cpu", lambda_landmark=1.0))
    with pytest.raises(ConfigError, match="landmarks"):
        train(cfg, tmp_path / "run", data=CropDataset(eight_faces), progress=False)


def test_depth_prior_starts_from_a_convex_face() -> None:
    model = LatentAutoencoder(AutoencoderConfig(**TINY, depth_prior=0.3))
    _, maps = model(torch.rand(2, 3, 64, 64))
    d = maps.depth[0]
    assert d[34, 32] < d[34, 12] < d[2, 2]  # nose region closer than the cheek, closer than the corner
    flat = LatentAutoencoder(AutoencoderConfig(**TINY))
    assert flat(torch.rand(1, 3, 64, 64))[1].depth.std() < 1e-6  # the paper's (and old configs') flat start


def test_mtcnn_feature_network_is_frozen_face_features() -> None:
    from latentface_sdk.train.perceptual import build_feature_network

    net = build_feature_network("mtcnn")
    x = torch.rand(2, 3, 64, 64)
    out = net(x)
    assert out.shape == (2, 64, 14, 14) and not any(p.requires_grad for p in net.parameters())
    # Transposed in and back out: a horizontal mirror of the image mirrors the feature map's columns.
    torch.testing.assert_close(net(x.flip(-1)).abs().mean(), out.abs().mean(), rtol=0.2, atol=0)


def test_coarse_removes_detail_above_32_px() -> None:
    from latentface_sdk.train.augment import coarse

    checker = (torch.arange(64)[:, None] + torch.arange(64)[None, :]) % 2
    fine = checker.float().expand(1, 3, 64, 64)
    assert coarse(fine).sub(0.5).abs().max() < 0.01  # one-pixel detail is gone
    smooth = torch.linspace(0, 1, 64).expand(1, 3, 64, 64)
    assert coarse(smooth).sub(smooth).abs().max() < 0.02  # what 32 px can hold stays


def test_recipes_of_the_dropped_levers_read_at_their_off_value_only() -> None:
    """The three levers measured and dropped (docs/training.md) are no recipe fields any more: an older
    recipe that names them switched off still reads; one that switches them on is refused, saying why."""
    from latentface_sdk.errors import ConfigError

    off = {"shared_trunk": False, "pose_init_scale": 0, "image_size": 64}
    old = Stage1Config.from_dict(dict(model={**TINY, **off}, coarse_steps=0, steps=3))
    assert old == Stage1Config.from_dict(dict(model=TINY, steps=3))
    assert not hasattr(old, "coarse_steps") and not hasattr(old.model, "shared_trunk")
    with pytest.raises(ConfigError, match=r"coarse_steps: 150 is not supported.*curriculum.*dropped"):
        Stage1Config.from_dict(dict(coarse_steps=150))
    with pytest.raises(ConfigError, match=r"model\.shared_trunk: True is not supported.*only false"):
        Stage1Config.from_dict(dict(model={"shared_trunk": True}))
    with pytest.raises(ConfigError, match=r"model\.pose_init_scale: 0\.3 is not supported.*only 0\.0"):
        Stage1Config.from_dict(dict(model={"pose_init_scale": 0.3}))
