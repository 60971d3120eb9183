"""Landmark geometry, the landmark reprojection loss and the light-cycle loss of stage 1."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from _tiny import TINY_AE

from latentface_sdk.config import AutoencoderConfig
from latentface_sdk.detection import landmarks_in_crop, square_box
from latentface_sdk.landmarks import (
    canonical_keypoints,
    mirror_landmarks,
    pearson,
    roll_estimate,
    yaw_estimate,
)
from latentface_sdk.models.autoencoder import LatentAutoencoder
from latentface_sdk.render.geometry import face_region
from latentface_sdk.render.renderer import FaceRenderer
from latentface_sdk.train.losses import (
    Stage1Forward,
    landmark_l1,
    light_cycle_loss,
    project_keypoints,
    random_light,
)

#: A plausible frontal face in crop coordinates: eyes, nose, mouth corners.
FRONTAL = np.array([[-0.33, -0.21], [0.33, -0.21], [0.0, 0.17], [-0.29, 0.45], [0.29, 0.45]],
                   dtype=np.float32)


def test_landmarks_in_crop_maps_the_crop_square_to_minus_one_one() -> None:
    box = (10.0, 20.0, 50.0, 80.0)  # 40 x 60 -> square of side 60 (margin 0) centred at (30, 50)
    x1, y1, x2, y2 = square_box(box, 0.0)
    pts = np.array([[x1, y1], [x2, y2], [30.0, 50.0], [x1, y2], [x2, y1]])
    uv = landmarks_in_crop(pts, box, 0.0)
    np.testing.assert_allclose(uv, [[-1, -1], [1, 1], [0, 0], [-1, 1], [1, -1]], atol=1e-6)
    # A margin makes the square larger, so the same points move towards the centre.
    assert np.abs(landmarks_in_crop(pts, box, 0.5)[:2]).max() < 0.7


def test_mirror_swaps_sides_and_flips_the_yaw_and_roll_estimates() -> None:
    turned = FRONTAL.copy()
    turned[2, 0] = -0.15  # nose left of the eyes' midpoint
    turned[1, 1] += 0.05  # the image-right eye lower
    pts = torch.from_numpy(turned)
    back = mirror_landmarks(mirror_landmarks(pts))
    torch.testing.assert_close(back, pts)
    mirrored = mirror_landmarks(pts).numpy()
    assert yaw_estimate(turned) > 0.15 and yaw_estimate(mirrored) == pytest.approx(-yaw_estimate(turned))
    assert roll_estimate(turned) > 0 and roll_estimate(mirrored) == pytest.approx(-roll_estimate(turned))
    assert mirrored[0, 0] < 0 < mirrored[1, 0]  # still left eye first


def test_canonical_keypoints_average_frontal_faces_symmetrically() -> None:
    rng = np.random.default_rng(0)
    faces = FRONTAL[None] + rng.normal(0, 0.01, (200, 5, 2)).astype(np.float32)
    turned = FRONTAL.copy()
    turned[2, 0] = 0.3
    faces = np.concatenate([faces, np.repeat(turned[None], 100, 0), np.full((5, 5, 2), np.nan, np.float32)])
    kp = canonical_keypoints(faces)
    np.testing.assert_allclose(kp, FRONTAL, atol=0.01)  # turned faces and NaN rows left out
    assert kp[2, 0] == 0.0 and kp[0, 0] == -kp[1, 0] and kp[3, 1] == kp[4, 1]
    # no face within the threshold: the most frontal tenth stands in (still symmetrised)
    less = FRONTAL.copy()
    less[2, 0] = 0.1
    kp = canonical_keypoints(np.concatenate([np.repeat(turned[None], 9, 0), less[None]]))
    np.testing.assert_allclose(kp, FRONTAL, atol=1e-6)
    with pytest.raises(ValueError, match="no finite"):
        canonical_keypoints(np.full((3, 5, 2), np.nan, np.float32))


def test_pearson_ignores_nan_rows_and_is_nan_when_undefined() -> None:
    a = np.array([1.0, 2.0, 3.0, np.nan, 5.0])
    assert pearson(a, 2 * a + 1) == pytest.approx(1.0)
    assert np.isnan(pearson(np.ones(5), a))


def _face_depth(b: int = 1) -> torch.Tensor:
    """A depth map with a nose-like bump in front of the centre (smaller depth = closer)."""
    grid = torch.linspace(-1, 1, 64)
    vv, uu = torch.meshgrid(grid, grid, indexing="ij")
    return (1.0 - 0.08 * torch.exp(-(uu**2 + vv**2) / 0.3)).expand(b, 64, 64).clone()


def test_keypoints_project_to_themselves_frontally_and_follow_the_yaw_sign() -> None:
    r = FaceRenderer(64, 10.0, 1.0, "fast")
    kp = torch.from_numpy(FRONTAL)
    depth = _face_depth(3)
    pose = torch.zeros(3, 6)
    pose[1, 3], pose[2, 5] = 20.0, 15.0  # yaw, roll
    proj = project_keypoints(depth, pose, kp, r.focal, r.centre_depth)
    torch.testing.assert_close(proj[0], kp, atol=1e-5, rtol=0)
    # The landmark estimates of the projections carry the signs of the pose that made them.
    assert yaw_estimate(proj[1].numpy()) > 0.1
    assert roll_estimate(proj[2].numpy()) == pytest.approx(15.0, abs=1.0)


def test_landmark_loss_recovers_a_head_turn_by_gradient_descent() -> None:
    r = FaceRenderer(64, 10.0, 1.0, "fast")
    kp = torch.from_numpy(FRONTAL)
    depth = _face_depth(1)
    target = project_keypoints(depth, torch.tensor([[0.02, 0.0, 0.0, 25.0, -10.0, 8.0]]), kp, r.focal, 1.0)
    raw = torch.zeros(1, 6, requires_grad=True)  # scaled like the model's pose head
    scale = torch.tensor([0.1, 0.1, 0.0, 60.0, 60.0, 60.0])
    opt = torch.optim.Adam([raw], lr=0.01)
    for _ in range(300):
        pose = raw * scale
        loss = landmark_l1(project_keypoints(depth, pose, kp, r.focal, 1.0), target)
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert loss.item() < 0.003
    assert (pose[0, 3].item() == pytest.approx(25.0, abs=6.0)
            and pose[0, 5].item() == pytest.approx(8.0, abs=2.0))


def test_landmark_loss_skips_faces_without_landmarks() -> None:
    proj = torch.zeros(2, 5, 2, requires_grad=True)
    marks = torch.stack([torch.full((5, 2), 0.5), torch.full((5, 2), float("nan"))])
    assert landmark_l1(proj, marks).item() == pytest.approx(0.5)
    none = landmark_l1(proj, torch.full((2, 5, 2), float("nan")))
    assert none.item() == 0.0 and none.requires_grad


def test_light_cycle_trains_the_encoders_not_the_decoders() -> None:
    model = LatentAutoencoder(AutoencoderConfig(**TINY_AE))
    forward = Stage1Forward(model, FaceRenderer(64, 10.0, 1.0, "fast"), cycle_count=3)
    rec, relit = forward(torch.rand(4, 3, 64, 64))
    assert relit is not None and relit.images.shape == (3, 3, 64, 64) and relit.light.shape == (3, 4)
    loss, parts = light_cycle_loss(rec, relit)
    assert set(parts) == {"cycle_light", "cycle_texture", "cycle_shape", "cycle_pose"}
    assert all(np.isfinite(v) for v in parts.values())
    loss.backward()
    assert model.light_encoder.net[0].weight.grad is not None
    assert model.texture_encoder.net[0].weight.grad is not None
    assert model.albedo_decoder.net[-2].weight.grad is None  # the renders' maps are held fixed


def test_random_lights_stay_in_the_parameter_ranges() -> None:
    light = random_light(1000, torch.zeros(1))
    assert (light[:, :2] >= 0).all() and (light[:, :2] <= 1).all() and light[:, 2:].abs().max() <= 0.8
    assert light[:, 2:].std(0).min() > 0.3  # directions spread, not one light


def test_face_region_keeps_the_face_and_drops_the_corners() -> None:
    region = face_region(64)
    assert region.shape == (64, 64) and region.min() == 0.0 and region.max() == 1.0
    assert region[32, 32] == 1.0 and region[0, 0] == 0.0 and region[63, 63] == 0.0
    torch.testing.assert_close(region, region.flip(-1))  # symmetric
    r = FaceRenderer(64, 10.0, 1.0, "fast")
    view = r.render_face(torch.ones(1, 3, 64, 64), torch.ones(1, 64, 64), torch.zeros(1, 6))
    torch.testing.assert_close(view.mask[0, 0], region, atol=1e-4, rtol=0)
    torch.testing.assert_close(view.image[0, 0], region, atol=1e-4, rtol=0)  # black outside the face


def test_utkface_held_out_rows_never_enter_training(shared_data: Path) -> None:
    from latentface_sdk.train.data import UTKFACE_HOLDOUT_EVERY, resolve_sources, shared_source

    held, train = shared_source(shared_data, "utkface-heldout"), shared_source(shared_data, "utkface-train")
    every = shared_source(shared_data, "utkface")
    assert not set(held) & set(train) and sorted(held + train) == every
    assert len(held) == -(-len(every) // UTKFACE_HOLDOUT_EVERY)
    recipe = resolve_sources(["shared:utkface-train", "shared:imfdb"], shared_data)
    assert not set(held) & set(recipe)


def test_yaw_estimate_does_not_change_when_the_head_rolls() -> None:
    from latentface_sdk.train.augment import rotate_crops

    turned = torch.tensor([[[-0.3, -0.2], [0.3, -0.2], [-0.08, 0.1], [-0.2, 0.4], [0.2, 0.4]]])
    upright = float(yaw_estimate(turned.numpy())[0])
    assert upright == pytest.approx(0.08 / 0.6, abs=1e-6)
    for degrees in (-30.0, 15.0, 40.0):
        _, rolled = rotate_crops(torch.zeros(1, 3, 8, 8), turned, torch.tensor([degrees]))
        assert rolled is not None
        assert float(yaw_estimate(rolled.numpy())[0]) == pytest.approx(upright, abs=1e-5)
