"""Pure geometry for the LatentFace renderer: depth maps, grid meshes, poses, normals and shading.

Conventions (used everywhere in the package):

* Image coordinates ``(u, v)`` run from -1 (left/top edge) to +1 (right/bottom edge); the centre of
  pixel ``i`` of a ``S``-pixel row is at ``(2 i + 1) / S - 1``.
* Camera space is right-handed with X right, Y down and Z forward (away from the camera). A point
  projects to ``u = f X / Z``, ``v = f Y / Z`` with ``f = 1 / tan(fov / 2)`` (perspective camera).
* A depth map holds Z for every pixel of the canonical (frontal) view; unprojecting it gives a grid
  mesh whose vertex ``(i, j)`` projects exactly onto pixel ``(i, j)``.
* Pose is ``(tx, ty, tz, yaw, pitch, roll)``: the face rotates about its centre ``(0, 0, centre_depth)``
  by ``R = R_z(roll) R_x(pitch) R_y(yaw)`` (angles in degrees) and is then translated by ``t``.
* Normals point towards the camera (negative Z for a frontal plane); a light direction points from the
  surface towards the light, so a light at the camera is ``(0, 0, -1)``.

Every function here is pure (no state, no rendering calls) and differentiable where it makes sense.
"""

from __future__ import annotations

import math
from functools import lru_cache

import torch
import torch.nn.functional as F
from torch import Tensor


def focal_from_fov(fov_deg: float) -> float:
    """Focal length in normalised image units (the image spans [-1, 1]) for a field of view in degrees."""
    return 1.0 / math.tan(math.radians(fov_deg) / 2.0)


def pixel_centers(size: int, *, device: torch.device | str | None = None,
                  dtype: torch.dtype = torch.float32) -> Tensor:
    """Coordinates of the ``size`` pixel centres of one image row in [-1, 1]."""
    return (torch.arange(size, device=device, dtype=dtype) * 2 + 1) / size - 1


def image_grid(height: int, width: int, *, device: torch.device | str | None = None,
               dtype: torch.dtype = torch.float32) -> Tensor:
    """(H, W, 2) grid of ``(u, v)`` pixel-centre coordinates."""
    v = pixel_centers(height, device=device, dtype=dtype)
    u = pixel_centers(width, device=device, dtype=dtype)
    vv, uu = torch.meshgrid(v, u, indexing="ij")
    return torch.stack([uu, vv], dim=-1)


def depth_to_points(depth: Tensor, focal: float) -> Tensor:
    """Unproject a depth map (B, H, W) to camera-space points (B, H, W, 3) on the pixel-centre rays."""
    if depth.dim() != 3:
        raise ValueError(f"depth must be (B, H, W), got {tuple(depth.shape)}")
    grid = image_grid(depth.shape[1], depth.shape[2], device=depth.device, dtype=depth.dtype)
    xy = grid.unsqueeze(0) * depth.unsqueeze(-1) / focal
    return torch.cat([xy, depth.unsqueeze(-1)], dim=-1)


def project(points: Tensor, focal: float, eps: float = 1e-6) -> Tensor:
    """Perspective projection of camera-space points (..., 3) to image coordinates (..., 2)."""
    z = points[..., 2:3].clamp(min=eps)
    return points[..., :2] * focal / z


def euler_to_matrix(yaw: Tensor, pitch: Tensor, roll: Tensor) -> Tensor:
    """Rotation matrices (B, 3, 3) ``R_z(roll) @ R_x(pitch) @ R_y(yaw)`` from angles in degrees."""
    y, p, r = (torch.deg2rad(a) for a in (yaw, pitch, roll))
    one, zero = torch.ones_like(y), torch.zeros_like(y)
    cy, sy, cp, sp, cr, sr = y.cos(), y.sin(), p.cos(), p.sin(), r.cos(), r.sin()
    ry = torch.stack([cy, zero, sy, zero, one, zero, -sy, zero, cy], -1).view(-1, 3, 3)
    rx = torch.stack([one, zero, zero, zero, cp, -sp, zero, sp, cp], -1).view(-1, 3, 3)
    rz = torch.stack([cr, -sr, zero, sr, cr, zero, zero, zero, one], -1).view(-1, 3, 3)
    return rz @ rx @ ry


def pose_to_rt(pose: Tensor) -> tuple[Tensor, Tensor]:
    """Split a pose (B, 6) = (tx, ty, tz, yaw, pitch, roll [degrees]) into R (B, 3, 3) and t (B, 3)."""
    if pose.dim() != 2 or pose.shape[1] != 6:
        raise ValueError(f"pose must be (B, 6), got {tuple(pose.shape)}")
    return euler_to_matrix(pose[:, 3], pose[:, 4], pose[:, 5]), pose[:, :3]


def apply_pose(points: Tensor, pose: Tensor, centre_depth: float = 1.0) -> Tensor:
    """Move canonical points (B, ..., 3) by a pose: rotate about ``(0, 0, centre_depth)``, then translate."""
    rot, t = pose_to_rt(pose)
    centre = points.new_tensor([0.0, 0.0, centre_depth])
    flat = points.reshape(points.shape[0], -1, 3) - centre
    moved = flat @ rot.transpose(1, 2) + centre + t.unsqueeze(1)
    return moved.reshape(points.shape)


def invert_pose(points: Tensor, pose: Tensor, centre_depth: float = 1.0) -> Tensor:
    """Inverse of :func:`apply_pose`: bring posed points (B, ..., 3) back to the canonical frame."""
    rot, t = pose_to_rt(pose)
    centre = points.new_tensor([0.0, 0.0, centre_depth])
    flat = points.reshape(points.shape[0], -1, 3) - centre - t.unsqueeze(1)
    back = flat @ rot + centre
    return back.reshape(points.shape)


def normals_from_points(points: Tensor) -> Tensor:
    """Unit surface normals (B, H, W, 3) of a grid of points (B, H, W, 3), oriented towards the camera."""
    p = points.permute(0, 3, 1, 2)
    p = F.pad(p, (1, 1, 1, 1), mode="replicate")
    du = (p[:, :, 1:-1, 2:] - p[:, :, 1:-1, :-2]).permute(0, 2, 3, 1)
    dv = (p[:, :, 2:, 1:-1] - p[:, :, :-2, 1:-1]).permute(0, 2, 3, 1)
    n = torch.cross(du, dv, dim=-1)
    # With X right, Y down, Z forward, du x dv of a frontal plane is (0, 0, +a); flip to face the camera.
    return -F.normalize(n, dim=-1, eps=1e-8)


def light_direction(dxy: Tensor) -> Tensor:
    """Unit light directions (B, 3) from the two light parameters (B, 2): towards ``(dx, dy, -1)``."""
    d = torch.cat([dxy, -torch.ones_like(dxy[:, :1])], dim=1)
    return F.normalize(d, dim=1)


def diffuse_shading(normals: Tensor, light: Tensor) -> Tensor:
    """Diffuse shading ``ambient + diffuse * max(0, n . l)`` (B, H, W) for light (B, 4) = (ka, kd, dx, dy)."""
    if light.dim() != 2 or light.shape[1] != 4:
        raise ValueError(f"light must be (B, 4), got {tuple(light.shape)}")
    direction = light_direction(light[:, 2:])
    cos = (normals * direction[:, None, None, :]).sum(-1).clamp(min=0.0)
    return light[:, 0, None, None] + light[:, 1, None, None] * cos


def face_region(size: int, *, device: torch.device | str | None = None,
                dtype: torch.dtype = torch.float32) -> Tensor:
    """Soft mask (size, size) in [0, 1] of the face in the canonical view: an upright ellipse.

    Centred at ``(0, 0.05)`` with half-axes 0.85 (across) and 1.0 (down) in image units, fading to 0 over
    the outer tenth. The canonical depth map is a full grid, so without it a frontal render covers the
    whole frame; multiplied with the render's coverage it keeps the face and drops the crop's corners
    (background, hair, neck). Pure function.
    """
    grid = image_grid(size, size, device=device, dtype=dtype)
    r = ((grid[..., 0] / 0.85) ** 2 + ((grid[..., 1] - 0.05) / 1.0) ** 2).sqrt()
    return ((1.0 - r) / 0.1 + 1.0).clamp(0.0, 1.0)


@lru_cache(maxsize=8)
def _grid_faces(height: int, width: int) -> Tensor:
    idx = torch.arange(height * width).view(height, width)
    tl, tr = idx[:-1, :-1].reshape(-1), idx[:-1, 1:].reshape(-1)
    bl, br = idx[1:, :-1].reshape(-1), idx[1:, 1:].reshape(-1)
    upper = torch.stack([tl, bl, tr], dim=1)
    lower = torch.stack([tr, bl, br], dim=1)
    return torch.cat([upper, lower], dim=0)


def grid_faces(height: int, width: int, device: torch.device | str | None = None) -> Tensor:
    """Triangle indices (2 (H-1)(W-1), 3) of the grid mesh over an H x W vertex grid (row-major)."""
    return _grid_faces(height, width).to(device)


def flip_horizontal(x: Tensor) -> Tensor:
    """Mirror maps (B, C, H, W) or (B, H, W) left-right (the symmetry prior of the canonical face)."""
    return x.flip(-1)
