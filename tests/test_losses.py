"""latentface_sdk.train.losses: the expression-region weights, the weighted photometric loss, the blurred
keypoint depth."""

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


def _fake_reconstruction(pred: torch.Tensor, conf: torch.Tensor) -> object:
    from types import SimpleNamespace

    mask = torch.ones(pred.shape[0], 1, *pred.shape[-2:])
    rendered = SimpleNamespace(image=pred, mask=mask)
    return SimpleNamespace(recon=rendered, recon_flip=rendered, conf_photo=conf,
                           conf_feature=torch.ones_like(conf),
                           maps=SimpleNamespace(depth=torch.ones(pred.shape[0], 1, *pred.shape[-2:])))


def test_photometric_loss_without_confidence_ignores_the_confidence_map() -> None:
    from latentface_sdk.train.losses import Stage1Loss

    torch.manual_seed(0)
    images, pred = torch.rand(2, 3, 16, 16), torch.rand(2, 3, 16, 16)
    low, high = torch.full((2, 2, 16, 16), 0.5), torch.full((2, 2, 16, 16), 2.0)
    plain = Stage1Loss(photo_confidence=False)
    a = plain(_fake_reconstruction(pred, low), images, torch.nn.Identity())[1]  # type: ignore[arg-type]
    b = plain(_fake_reconstruction(pred, high), images, torch.nn.Identity())[1]  # type: ignore[arg-type]
    assert a["photo"] == b["photo"]
    err = (pred - images).abs().mean(1).mean().item()
    assert math.isclose(a["photo"], math.sqrt(2) * err + math.log(math.sqrt(2)), rel_tol=1e-5)
    learned = Stage1Loss()
    c = learned(_fake_reconstruction(pred, low), images, torch.nn.Identity())[1]  # type: ignore[arg-type]
    d = learned(_fake_reconstruction(pred, high), images, torch.nn.Identity())[1]  # type: ignore[arg-type]
    assert c["photo"] != d["photo"]


def test_without_confidence_the_confidence_map_gets_a_zero_gradient_not_none() -> None:
    """DistributedDataParallel waits for a gradient of every parameter: the unused confidence head must
    stay in the graph (a two-process run with ``photo_confidence: false`` stopped at its second step)."""
    from latentface_sdk.train.losses import Stage1Loss

    torch.manual_seed(0)
    images, pred = torch.rand(2, 3, 16, 16), torch.rand(2, 3, 16, 16)
    conf = torch.full((2, 2, 16, 16), 0.5, requires_grad=True)
    total, _ = Stage1Loss(photo_confidence=False)(_fake_reconstruction(pred, conf), images,
                                                  torch.nn.Identity())  # type: ignore[arg-type]
    total.backward()
    assert conf.grad is not None and float(conf.grad.abs().max()) == 0.0


def test_feature_loss_at_the_landmark_regions_counts_the_mouth_more() -> None:
    from latentface_sdk.train.losses import Stage1Loss

    torch.manual_seed(0)
    images = torch.rand(1, 3, 32, 32)
    pred = images.clone()
    r, c = _pixel(0.0, 0.45, 32)  # the mouth's centre
    pred[..., r - 2 : r + 3, c - 2 : c + 3] += 0.5  # wrong only at the mouth
    conf = torch.ones(1, 2, 32, 32)
    parts = [Stage1Loss(feature_region_weight=w)(_fake_reconstruction(pred, conf), images,
                                                 torch.nn.Identity(), FACE)[1]
             for w in (0.0, 2.0)]  # type: ignore[arg-type]
    # the Laplacian's log(sqrt(2) sigma) at sigma = 1, the same for every pixel
    floor = math.log(math.sqrt(2))
    assert parts[1]["feat"] - floor > 1.5 * (parts[0]["feat"] - floor) > 0
    assert parts[1]["photo"] == parts[0]["photo"]  # the photometric loss is not touched
