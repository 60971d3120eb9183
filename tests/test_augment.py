"""Stage-1 augmentations: rotation moves pixels and landmarks together; grey; reproducible plans."""

import pytest
import torch

from latentface_sdk.landmarks import roll_estimate
from latentface_sdk.train.augment import augment_plan, rotate_crops, to_grey


def _dot_image(u: float, v: float, size: int = 64) -> torch.Tensor:
    """A black crop with one bright 3x3 spot at crop coordinates (u, v) in [-1, 1]."""
    img = torch.zeros(1, 3, size, size)
    col = int(round((u + 1) / 2 * size - 0.5))
    row = int(round((v + 1) / 2 * size - 0.5))
    img[0, :, row - 1: row + 2, col - 1: col + 2] = 1.0
    return img


def _spot(img: torch.Tensor) -> tuple[float, float]:
    """Brightness-weighted centre of the crop, in [-1, 1] coordinates."""
    size = img.shape[-1]
    w = img[0, 0]
    coords = (torch.arange(size, dtype=torch.float32) + 0.5) / size * 2 - 1
    total = w.sum()
    return float((w.sum(0) * coords).sum() / total), float((w.sum(1) * coords).sum() / total)


def test_rotation_moves_the_pixels_where_the_landmarks_go() -> None:
    u, v = 0.5, -0.25
    img = _dot_image(u, v)
    pts = torch.tensor([[[u, v]] * 5])
    for deg in (30.0, -45.0, 90.0):
        out, moved = rotate_crops(img, pts, torch.tensor([deg]))
        su, sv = _spot(out)
        assert moved is not None
        assert abs(su - float(moved[0, 0, 0])) < 0.06 and abs(sv - float(moved[0, 0, 1])) < 0.06, (
            deg, su, sv, moved[0, 0])
        # the spot really moved (not an identity transform)
        assert abs(su - u) + abs(sv - v) > 0.2


def test_rotation_changes_the_eye_line_angle_by_the_angle() -> None:
    eyes = torch.tensor([[[-0.3, -0.2], [0.3, -0.2], [0.0, 0.1], [-0.2, 0.4], [0.2, 0.4]]])
    before = float(roll_estimate(eyes.numpy())[0])
    _, moved = rotate_crops(torch.zeros(1, 3, 64, 64), eyes, torch.tensor([20.0]))
    assert moved is not None
    after = float(roll_estimate(moved.numpy())[0])
    assert abs(abs(after - before) - 20.0) < 0.5


def test_zero_angle_and_nan_landmarks() -> None:
    img = torch.rand(2, 3, 64, 64)
    pts = torch.full((2, 5, 2), float("nan"))
    out, moved = rotate_crops(img, pts, torch.tensor([0.0, 10.0]))
    assert torch.equal(out[0], img[0]) and not torch.equal(out[1], img[1])
    assert moved is not None and torch.isnan(moved).all()


def test_grey_keeps_others_and_equalises_channels() -> None:
    img = torch.rand(3, 3, 8, 8)
    out = to_grey(img, torch.tensor([True, False, True]))
    assert torch.equal(out[1], img[1])
    assert torch.allclose(out[0, 0], out[0, 1]) and torch.allclose(out[0, 1], out[0, 2])
    assert torch.allclose(out[0, 0], 0.299 * img[0, 0] + 0.587 * img[0, 1] + 0.114 * img[0, 2])


def test_plan_is_reproducible_and_respects_its_settings() -> None:
    a = augment_plan(7, 256, 0, 1, world=2, roll_deg=15, roll_p=0.5, grey_p=0.25)
    b = augment_plan(7, 256, 0, 1, world=2, roll_deg=15, roll_p=0.5, grey_p=0.25)
    assert torch.equal(a.degrees, b.degrees) and torch.equal(a.grey, b.grey)
    other = augment_plan(8, 256, 0, 1, world=2, roll_deg=15, roll_p=0.5, grey_p=0.25)
    assert not torch.equal(a.degrees, other.degrees)
    assert a.degrees.abs().max() <= 15 and 0.3 < float((a.degrees != 0).float().mean()) < 0.7
    assert 0.1 < float(a.grey.float().mean()) < 0.4
    off = augment_plan(7, 64, 0, roll_deg=0.0, grey_p=0.0)
    assert not off.degrees.any() and not off.grey.any()


def test_ranks_take_slices_of_the_global_batch_draws() -> None:
    from latentface_sdk.train.stage1 import flips_for

    whole = augment_plan(3, 8, 5, roll_deg=20, roll_p=0.5, grey_p=0.5)
    halves = [augment_plan(3, 4, 5, r, world=2, roll_deg=20, roll_p=0.5, grey_p=0.5) for r in (0, 1)]
    assert torch.equal(torch.cat([h.degrees for h in halves]), whole.degrees)
    assert torch.equal(torch.cat([h.grey for h in halves]), whole.grey)
    assert torch.equal(torch.cat([flips_for(3, 4, 5, r, 2) for r in (0, 1)]), flips_for(3, 8, 5))
    with pytest.raises(ValueError, match="outside"):
        augment_plan(3, 4, 5, 2, world=2)


def test_low_resolution_shrinks_only_the_chosen_crops() -> None:
    from latentface_sdk.train.augment import coarse, low_resolution

    torch.manual_seed(0)
    images = torch.rand(3, 3, 64, 64)
    out = low_resolution(images, torch.tensor([0, 32, 64]))
    assert torch.equal(out[0], images[0]) and torch.equal(out[2], images[2])
    assert torch.allclose(out[1], coarse(images[1:2], 32)[0])
    assert not torch.allclose(out[1], images[1])
    assert torch.equal(images, images.clone())  # the input is not changed in place


def test_low_resolution_draws_leave_the_earlier_draws_as_they_were() -> None:
    """Recipes without the low-resolution augmentation see exactly what they saw before it existed."""
    from latentface_sdk.train.augment import augment_plan

    before = augment_plan(7, 16, 0, roll_deg=25.0, grey_p=0.2)
    after = augment_plan(7, 16, 0, roll_deg=25.0, grey_p=0.2, low_res_p=0.5)
    assert before.low_res is None
    assert torch.equal(before.degrees, after.degrees) and torch.equal(before.grey, after.grey)
    assert after.low_res is not None and (
        (after.low_res == 0) | ((after.low_res >= 24) & (after.low_res <= 48))).all()
    assert 0 < int((after.low_res > 0).sum()) < 16
    halves = [augment_plan(7, 8, 0, r, world=2, low_res_p=0.5).low_res for r in (0, 1)]
    whole = augment_plan(7, 16, 0, low_res_p=0.5).low_res
    assert whole is not None and torch.equal(torch.cat([h for h in halves if h is not None]), whole)
