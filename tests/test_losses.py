"""latentface_sdk.train.losses: the expression-region weights, the weighted photometric loss, the blurred keypoint depth."""

from __future__ import annotations

import math

import torch

from latentface_sdk.train.losses import confidence_l1, depth_at, region_points, region_weights

# MTCNN order: left eye, right eye, nose, left mouth corner, right mouth corner (crop coordinates in [-1, 1])
FACE = torch.tensor([[[-0.33, -0.21], [0.33, -0.21], [0.0, 0.17], [-0.29, 0.45], [0.29, 0.45]]])


def _pixel(u: float, v: float, size: int = 64) -> tuple[int, int]:
    return int((v + 1) / 2 * size), int((u + 1) / 2 * size)


def test_region_points_put_brows_above_the_eyes_and_follow_a_roll() -> None:
    pts = region_points(FACE)[0]
    assert torch.allclose(pts[0], FACE[0, 0]) and torch.allclose(pts[6], FACE[0, 3:5].mean(0))
    assert (pts[2:4, 1] < FACE[0, :2, 1] - 0.2).all()  # brows higher (smaller v) than the eyes
    a = math.radians(30)
    rot = torch.tensor([[math.cos(a), -math.sin(a)], [math.sin(a), math.cos(a)]])
    turned = region_points(FACE @ rot.T)[0]
    assert torch.allclose(turned, pts @ rot.T, atol=1e-5)  # the same face turned: the same points turned


def test_region_weights_peak_at_the_features_and_fall_to_one() -> None:
    w = region_weights(FACE, 64, strength=2.0)
    assert w.shape == (1, 1, 64, 64)
    for u, v in FACE[0, [0, 1, 3, 4]].tolist():
        assert w[0, 0, _pixel(u, v)[0], _pixel(u, v)[1]] > 2.7
    assert abs(float(w[0, 0, 0, 0]) - 1.0) < 1e-3 and abs(float(w[0, 0, 63, 63]) - 1.0) < 1e-3
    missing = torch.full_like(FACE, float("nan"))
    assert torch.equal(region_weights(missing, 64, 2.0), torch.ones(1, 1, 64, 64))


def test_weighted_confidence_l1_counts_weighted_pixels_more() -> None:
    torch.manual_seed(0)
    pred, target = torch.rand(2, 3, 8, 8), torch.rand(2, 3, 8, 8)
    sigma, mask = torch.rand(2, 1, 8, 8) + 0.5, (torch.rand(2, 1, 8, 8) > 0.3).float()
    plain = confidence_l1(pred, target, sigma, mask)
    assert torch.allclose(confidence_l1(pred, target, sigma, mask, torch.ones_like(mask)), plain)
    target2 = target.clone()
    target2[..., :4, :] = pred[..., :4, :]  # the top half is perfect, the bottom half is not
    weight = torch.ones_like(mask)
    weight[..., 4:, :] = 3.0
    assert confidence_l1(pred, target2, sigma, mask, weight) > confidence_l1(pred, target2, sigma, mask)


def test_blurred_keypoint_depth_reads_a_patch_not_a_pit() -> None:
    depth = torch.ones(1, 64, 64)
    kp = torch.tensor([[0.0, 0.0]])
    depth[0, 31:33, 31:33] = 0.0  # a pit under the keypoint
    assert float(depth_at(depth, kp)[0, 0]) < 0.1
    blurred = float(depth_at(depth, kp, blur=5)[0, 0])
    assert 0.75 < blurred < 0.95  # about 1 - 4/25 around the pit
    flat = torch.full((1, 64, 64), 0.7)
    assert torch.allclose(depth_at(flat, kp, blur=5), torch.tensor([[0.7]]))
