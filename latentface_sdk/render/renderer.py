"""Rendering of a face given as depth + albedo maps under a pose and a light (diffuse shading).

:class:`FaceRenderer` turns a canonical depth map into a grid mesh (one vertex per pixel), shades the
albedo in the canonical frame (``ambient + diffuse * max(0, n . l)``), moves the mesh by the pose and
rasterises it with a perspective camera (FOV 10 degrees by default). The ``backend`` chooses the
rasteriser: ``"pytorch3d"`` (the renderer of record) or ``"fast"`` (a vectorised path for CPU training,
checked against PyTorch3D in the tests); see :mod:`.rasterize`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch
from torch import Tensor, nn

from . import geometry as geo
from .rasterize import Raster, interpolate, rasterize_fast, rasterize_pytorch3d

Backend = Literal["pytorch3d", "fast"]


@dataclass
class Shaded:
    """Canonical-frame shading of a face: ``image = albedo * shading`` and the normals used."""

    image: Tensor  # (B, 3, H, W)
    shading: Tensor  # (B, 1, H, W)
    normals: Tensor  # (B, 3, H, W)


@dataclass
class Rendered:
    """A rendered view: the image (B, C, S, S), its coverage mask (B, 1, S, S) and view depth (B, S, S)."""

    image: Tensor
    mask: Tensor
    depth: Tensor


class FaceRenderer(nn.Module):
    """Differentiable renderer of depth + albedo faces (see the module docstring)."""

    def __init__(self, image_size: int = 64, fov_deg: float = 10.0, centre_depth: float = 1.0,
                 backend: Backend = "pytorch3d") -> None:
        super().__init__()
        if backend not in ("pytorch3d", "fast"):
            raise ValueError(f"backend must be 'pytorch3d' or 'fast', got {backend!r}")
        self.image_size = image_size
        self.fov_deg = fov_deg
        self.focal = geo.focal_from_fov(fov_deg)
        self.centre_depth = centre_depth
        self.backend: Backend = backend

    def points(self, depth: Tensor) -> Tensor:
        """Canonical camera-space points (B, H, W, 3) of a depth map (B, H, W)."""
        return geo.depth_to_points(depth, self.focal)

    def shade(self, albedo: Tensor, depth: Tensor, light: Tensor) -> Shaded:
        """Shade an albedo map (B, 3, H, W) on a depth map (B, H, W) with a light (B, 4)."""
        normals = geo.normals_from_points(self.points(depth))
        shading = geo.diffuse_shading(normals, light).unsqueeze(1)
        return Shaded(image=albedo * shading, shading=shading, normals=normals.permute(0, 3, 1, 2))

    def rasterize(self, depth: Tensor, pose: Tensor, backend: Backend | None = None) -> Raster:
        """Rasterise the grid mesh of ``depth`` (B, H, W) moved by ``pose`` (B, 6)."""
        verts = geo.apply_pose(self.points(depth), pose, self.centre_depth)
        verts = verts.reshape(depth.shape[0], -1, 3)
        faces = geo.grid_faces(depth.shape[1], depth.shape[2], device=depth.device)
        use = backend or self.backend
        if use == "fast":
            return rasterize_fast(verts, faces, self.image_size, self.fov_deg)
        return rasterize_pytorch3d(verts, faces, self.image_size, self.fov_deg)

    def render(self, texture: Tensor, depth: Tensor, pose: Tensor,
               backend: Backend | None = None) -> Rendered:
        """Render canonical maps ``texture`` (B, C, H, W) on ``depth`` (B, H, W) as seen under ``pose`` (B,
        6)."""
        if texture.shape[0] != depth.shape[0] or texture.shape[-2:] != depth.shape[-2:]:
            raise ValueError(f"texture {tuple(texture.shape)} and depth {tuple(depth.shape)} do not match")
        raster = self.rasterize(depth, pose, backend)
        faces = geo.grid_faces(depth.shape[1], depth.shape[2], device=depth.device)
        attrs = texture.flatten(2).transpose(1, 2)
        image = interpolate(raster, faces, attrs)
        return Rendered(image=image, mask=raster.mask, depth=raster.zbuf)

    def render_face(self, texture: Tensor, depth: Tensor, pose: Tensor,
                    backend: Backend | None = None) -> Rendered:
        """Like :meth:`render`, but only the face: black outside it, with the mask of where it is.

        The mask is the mesh's coverage times the canonical :func:`~.geometry.face_region` carried
        through the render, so the crop's corners (background, hair) are left out of re-rendered views.
        """
        region = geo.face_region(depth.shape[-1], device=depth.device, dtype=depth.dtype)
        full = torch.cat([texture, region.expand(texture.shape[0], 1, *region.shape)], dim=1)
        view = self.render(full, depth, pose, backend)
        mask = view.mask * view.image[:, -1:]
        return Rendered(image=view.image[:, :-1] * mask, mask=mask, depth=view.depth)
