"""Real checks that the pinned stack works on this machine: PyTorch3D, facenet-pytorch's MTCNN, safetensors.

These fail loudly when an install is broken (a PyTorch3D build without its C++ extension, MTCNN without its
bundled weights, a safetensors that changes dtypes), before any LatentFace code is involved.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

IMAGE_SIZE = 16
PLANE_Z0 = 2.0
PLANE_SLOPE = 0.25  # z = PLANE_Z0 + PLANE_SLOPE * x: a tilted plane, so gradients reach x as well as z
# The square is shifted left by 0.05 so that no pixel centre lies exactly on the shared diagonal edge
# (PyTorch3D leaves such pixels empty with blur_radius=0): its x span (-0.55, 0.45) and y span (-0.5, 0.5)
# each hold exactly 8 pixel centres of a 16-pixel image.
X_SHIFT = -0.05


def _quad_verts() -> torch.Tensor:
    """Four corners of a unit square in NDC (x in [-0.55, 0.45], y in [-0.5, 0.5]), on the plane z = 2 + 0.25
    x."""
    xy = torch.tensor([[-0.5, -0.5], [0.5, -0.5], [0.5, 0.5], [-0.5, 0.5]]) + torch.tensor([X_SHIFT, 0.0])
    z = PLANE_Z0 + PLANE_SLOPE * xy[:, :1]
    return torch.cat([xy, z], dim=1)


def _pixel_centres_ndc(size: int) -> torch.Tensor:
    """NDC coordinate of each pixel centre along one axis (PyTorch3D: +X left, +Y up, so it decreases)."""
    return 1.0 - (2.0 * torch.arange(size, dtype=torch.float32) + 1.0) / size


def test_pytorch3d_extension_loads() -> None:
    """The compiled ``pytorch3d._C`` extension imports and exposes the rasterizer kernels."""
    from pytorch3d import _C

    assert callable(_C.rasterize_meshes)
    assert callable(_C.rasterize_meshes_backward)


def test_rasterize_two_triangles_on_cpu_with_gradients() -> None:
    """Two triangles (a square) rasterize to the exact pixels and depths, and gradients reach the vertices."""
    from pytorch3d.renderer.mesh import rasterize_meshes
    from pytorch3d.structures import Meshes

    verts = _quad_verts().requires_grad_(True)
    faces = torch.tensor([[0, 1, 2], [0, 2, 3]], dtype=torch.int64)
    meshes = Meshes(verts=[verts], faces=[faces])

    pix_to_face, zbuf, bary, _dists = rasterize_meshes(
        meshes, image_size=IMAGE_SIZE, blur_radius=0.0, faces_per_pixel=1, bin_size=0
    )
    assert pix_to_face.device.type == "cpu"
    assert pix_to_face.shape == (1, IMAGE_SIZE, IMAGE_SIZE, 1)

    covered = pix_to_face[0, :, :, 0] >= 0
    # 8 x 8 pixel centres fall inside the square, split between the two triangles; the corners stay empty.
    assert int(covered.sum()) == 64
    assert set(pix_to_face[covered.unsqueeze(0).unsqueeze(-1)].tolist()) == {0, 1}
    assert not covered[0, 0] and not covered[-1, -1]

    # Screen-space barycentrics interpolate a plane exactly: the depth at each pixel is z = 2 + 0.25 x.
    x_ndc = _pixel_centres_ndc(IMAGE_SIZE).expand(IMAGE_SIZE, IMAGE_SIZE)
    expected_z = PLANE_Z0 + PLANE_SLOPE * x_ndc
    depth = zbuf[0, :, :, 0]
    torch.testing.assert_close(depth[covered], expected_z[covered], atol=1e-5, rtol=0)
    assert torch.all(depth[~covered] == -1)
    torch.testing.assert_close(bary[0, :, :, 0][covered].sum(-1), torch.ones(64), atol=1e-5, rtol=0)

    depth[covered].sum().backward()
    grad = verts.grad
    assert grad is not None and torch.isfinite(grad).all()
    # d(sum of depths)/d(z_v) is the sum of v's barycentric weights; over all vertices that is one per pixel.
    assert torch.all(grad[:, 2] > 0)
    assert float(grad[:, 2].sum()) == pytest.approx(64.0, abs=1e-3)
    # The tilt makes depth depend on where the triangles sit on screen, so x receives gradient too.
    assert float(grad[:, 0].abs().sum()) > 1e-3


def _iou(a: torch.Tensor, b: torch.Tensor) -> float:
    """Intersection over union of two (x1, y1, x2, y2) boxes."""
    w = (torch.minimum(a[2], b[2]) - torch.maximum(a[0], b[0])).clamp(min=0)
    h = (torch.minimum(a[3], b[3]) - torch.maximum(a[1], b[1])).clamp(min=0)
    inter = w * h
    area = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return float(inter / area)


def test_mtcnn_finds_both_faces(shared_data: Path) -> None:
    """facenet-pytorch's MTCNN (its own bundled weights, on CPU) finds the two faces in two_people.jpg."""
    from facenet_pytorch import MTCNN
    from PIL import Image

    with Image.open(shared_data / "photos" / "two_people.jpg") as im:
        image = im.convert("RGB")
    # Both faces are ~150 px wide; skipping the pyramid scales for faces under 40 px keeps this fast on CPU.
    mtcnn = MTCNN(keep_all=True, min_face_size=40, device=torch.device("cpu"))
    boxes, probs = mtcnn.detect(image)

    assert boxes is not None and probs is not None, "MTCNN found no face at all"
    assert boxes.shape == (2, 4), f"expected two faces, got boxes {boxes}"
    # facenet-pytorch 2.5.3 under numpy 2 hands back object arrays: convert explicitly.
    t = torch.as_tensor(np.asarray(boxes, dtype=np.float32))
    assert (np.asarray(probs, dtype=np.float32) > 0.95).all(), f"low face confidences {probs}"
    width, height = image.size
    assert torch.all(t[:, 2] > t[:, 0]) and torch.all(t[:, 3] > t[:, 1])
    assert torch.all((t[:, 2] - t[:, 0]) > 40), "faces in this photo are larger than 40 px"
    assert torch.all(t[:, 0] > -20) and torch.all(t[:, 2] < width + 20) and torch.all(t[:, 3] < height + 20)
    assert _iou(t[0], t[1]) == 0.0, "the two boxes must be two different faces"


class _Tiny(nn.Module):
    """A module whose state dict mixes float32 weights, an int64 buffer (BatchNorm) and low-precision
    params."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3)
        self.bn = nn.BatchNorm2d(4)
        self.f16 = nn.Parameter(torch.randn(5, dtype=torch.float16))
        self.bf16 = nn.Parameter(torch.randn(2, 3, dtype=torch.bfloat16))
        self.register_buffer("mask", torch.tensor([True, False, True]))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.bn(self.conv(x))


def test_safetensors_round_trips_a_state_dict(tmp_path: Path) -> None:
    """save_file / load_file keep every key, dtype, shape and bit; a fresh module loads it strictly."""
    from safetensors.torch import load_file, save_file

    torch.manual_seed(0)
    model = _Tiny()
    model.train()
    model(torch.randn(2, 3, 8, 8))  # update the BatchNorm running stats and its int64 counter
    model.eval()
    state = {k: v.detach() for k, v in model.state_dict().items()}
    path = tmp_path / "model.safetensors"
    save_file(state, str(path), metadata={"format": "pt"})

    loaded = load_file(str(path))
    assert loaded.keys() == state.keys()
    for key, value in state.items():
        assert loaded[key].dtype == value.dtype, key
        assert loaded[key].shape == value.shape, key
        assert torch.equal(loaded[key], value), key
    assert loaded["bn.num_batches_tracked"].item() == 1

    torch.manual_seed(1)
    fresh = _Tiny().eval()
    fresh.load_state_dict(loaded, strict=True)
    x = torch.randn(1, 3, 8, 8)
    assert torch.equal(fresh(x), model(x))
