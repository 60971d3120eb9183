"""Renderer: geometry round trips, PyTorch3D agreement of the fast rasteriser, canonical identity."""

from __future__ import annotations

import pytest
import torch

from latentface_sdk.render import geometry as geo
from latentface_sdk.render.renderer import FaceRenderer


def face_like_depth(batch: int, seed: int = 0) -> torch.Tensor:
    """Smooth depth maps with a face-sized bulge and a nose, in the model's 0.9..1.1 range."""
    gen = torch.Generator().manual_seed(seed)
    grid = geo.image_grid(64, 64)
    maps = []
    for _ in range(batch):
        centre = torch.randn(2, generator=gen) * 0.1
        width = 0.3 + 0.2 * torch.rand(1, generator=gen)
        bulge = torch.exp(-((grid - centre) ** 2).sum(-1) / (2 * width**2))
        nose = torch.exp(-((grid - centre - torch.tensor([0.0, 0.05])) ** 2).sum(-1) / (2 * 0.08**2))
        maps.append(1.05 - 0.08 * bulge - 0.04 * nose)
    return torch.stack(maps)


def random_poses(batch: int, seed: int = 1) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    t = (torch.rand(batch, 2, generator=gen) * 2 - 1) * 0.1
    angles = (torch.rand(batch, 3, generator=gen) * 2 - 1) * torch.tensor([45.0, 25.0, 20.0])
    return torch.cat([t, torch.zeros(batch, 1), angles], dim=1)


def test_focal_matches_fov_definition() -> None:
    # Appendix D: 1 / f = 2 tan(FOV / 2) with the image width as unit; ours spans 2 units.
    assert geo.focal_from_fov(10.0) == pytest.approx(
        2.0 / (2.0 * torch.tan(torch.deg2rad(torch.tensor(5.0))).item()))


def test_pose_round_trip_points() -> None:
    pts = geo.depth_to_points(face_like_depth(3), geo.focal_from_fov(10.0))
    pose = random_poses(3)
    back = geo.invert_pose(geo.apply_pose(pts, pose), pose)
    assert torch.allclose(back, pts, atol=1e-5)


def test_yaw_then_minus_yaw_round_trips_through_rendering() -> None:
    renderer = FaceRenderer(backend="pytorch3d")
    depth = face_like_depth(2)
    yaw = torch.tensor([[0, 0, 0, 25.0, 0, 0], [0, 0, 0, -20.0, 0, 0]])
    seen = renderer.render(depth.unsqueeze(1), depth, yaw)
    # The depth seen under +yaw, rendered back under -yaw, lands on the canonical depth where visible.
    view_depth = torch.where(seen.mask[:, 0] > 0, seen.depth, torch.full_like(seen.depth, 1.1))
    back = renderer.render(view_depth.unsqueeze(1), view_depth, -yaw)
    centre = torch.zeros(64, 64, dtype=torch.bool)
    centre[16:48, 16:48] = True
    ok = (back.mask[:, 0] > 0) & centre & (seen.mask[:, 0] > 0)
    assert ok.float().mean() > 0.2
    err = (back.depth - depth).abs()[ok]
    assert err.median() < 1e-3, err.median()


@pytest.mark.parametrize("backend", ["pytorch3d", "fast"])
def test_zero_pose_reproduces_canonical_texture(backend: str) -> None:
    renderer = FaceRenderer(backend=backend)  # type: ignore[arg-type]
    depth = face_like_depth(2)
    texture = torch.rand(2, 3, 64, 64)
    out = renderer.render(texture, depth, torch.zeros(2, 6))
    assert out.mask.mean() == 1.0  # every pixel centre carries one vertex of the grid mesh
    assert torch.allclose(out.image, texture, atol=1e-4)
    assert torch.allclose(out.depth, depth, atol=1e-5)


def test_fast_rasteriser_matches_pytorch3d_on_random_poses() -> None:
    renderer = FaceRenderer()
    depth = face_like_depth(6, seed=3)
    pose = random_poses(6, seed=4)
    texture = torch.rand(6, 3, 64, 64)
    ref_raster = renderer.rasterize(depth, pose, backend="pytorch3d")
    fast_raster = renderer.rasterize(depth, pose, backend="fast")
    ref = renderer.render(texture, depth, pose, backend="pytorch3d")
    fast = renderer.render(texture, depth, pose, backend="fast")
    # Stated tolerance: identical coverage; the same face on >= 95% of covered pixels, and there the
    # same colour (1e-4) and depth (2e-4, float32 rounding). Elsewhere the two picked different faces at equal
    # depth (|dz| < 1e-3): ties on a shared edge, inside PyTorch3D's 0.01-pixel edge tolerance.
    assert torch.equal(ref.mask, fast.mask)
    covered = ref_raster.pix_to_face >= 0
    same = (ref_raster.pix_to_face == fast_raster.pix_to_face) & covered
    assert same.sum() >= 0.95 * covered.sum()
    colour = (ref.image - fast.image).abs().amax(1)
    assert colour[same].max() < 1e-4
    assert (ref.depth - fast.depth).abs()[same].max() < 2e-4
    ties = covered & ~same
    assert (ref.depth - fast.depth).abs()[ties].max() < 1e-3
    assert colour[covered].mean() < 1e-2


def test_fast_rasteriser_gradients_agree_with_pytorch3d() -> None:
    renderer = FaceRenderer()
    depth0 = face_like_depth(2, seed=5)
    pose = random_poses(2, seed=6)
    texture = torch.rand(2, 3, 64, 64)
    grads = []
    for backend in ("pytorch3d", "fast"):
        depth = depth0.clone().requires_grad_(True)
        renderer.render(texture, depth, pose,
                        backend=backend).image.sum().backward()  # type: ignore[arg-type]
        assert depth.grad is not None
        grads.append(depth.grad)
    cos = torch.nn.functional.cosine_similarity(grads[0].flatten(), grads[1].flatten(), dim=0)
    assert cos > 0.9, cos


def test_shading_of_frontal_plane_under_frontal_light() -> None:
    renderer = FaceRenderer()
    depth = torch.ones(1, 64, 64)
    light = torch.tensor([[0.2, 0.7, 0.0, 0.0]])
    shaded = renderer.shade(torch.ones(1, 3, 64, 64), depth, light)
    assert torch.allclose(shaded.shading, torch.full_like(shaded.shading, 0.9), atol=1e-4)
    # A light from the side dims the frontal plane by the cosine of its angle.
    side = renderer.shade(torch.ones(1, 3, 64, 64), depth, torch.tensor([[0.0, 1.0, 1.0, 0.0]]))
    assert torch.allclose(side.shading, torch.full_like(side.shading, 2**-0.5), atol=1e-4)


def test_normals_point_towards_camera() -> None:
    n = geo.normals_from_points(geo.depth_to_points(face_like_depth(1), geo.focal_from_fov(10.0)))
    assert (n[..., 2] < 0).all()
    assert torch.allclose(n.norm(dim=-1), torch.ones(1, 64, 64), atol=1e-5)


def test_fast_rasteriser_chunking_and_off_screen_clipping_change_nothing(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from latentface_sdk.render import rasterize

    renderer = FaceRenderer()
    # A rough surface (many stretched faces under rotation) shifted half off-screen.
    gen = torch.Generator().manual_seed(7)
    depth = (1.0 + 0.03 * torch.randn(2, 64, 64, generator=gen)).clamp(0.9, 1.1)
    pose = torch.tensor([[0.08, -0.05, 0.0, 40.0, -25.0, 10.0], [-0.1, 0.1, 0.0, -50.0, 30.0, 0.0]])
    ref = renderer.rasterize(depth, pose, backend="pytorch3d")
    whole = renderer.rasterize(depth, pose, backend="fast")
    monkeypatch.setattr(rasterize, "_MAX_WINDOW_PIXELS", 64)  # forces many small chunks
    chunked = renderer.rasterize(depth, pose, backend="fast")
    assert torch.equal(whole.pix_to_face, chunked.pix_to_face)
    assert torch.equal(whole.zbuf, chunked.zbuf)
    # Against PyTorch3D, as on smooth faces: the same coverage, the same face on most covered pixels
    # and there the same depth; elsewhere ties between faces within the edge tolerance.
    assert torch.equal(ref.pix_to_face >= 0, whole.pix_to_face >= 0)
    covered = ref.pix_to_face >= 0
    same = (ref.pix_to_face == whole.pix_to_face) & covered
    assert same.sum() >= 0.9 * covered.sum()
    # (slivers: a pixel centre inside PyTorch3D's edge tolerance is extrapolated, so allow 1e-3 there)
    dz = (ref.zbuf - whole.zbuf).abs()[same]
    assert dz.max() < 1e-3 and dz.mean() < 1e-5
