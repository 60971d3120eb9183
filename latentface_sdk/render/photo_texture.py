"""The canonical (frontal) face textured from the photo itself: classic frontalization on the model's 3D face.

The stage-1 model gives every face a canonical depth map and a pose. Each canonical pixel's 3D point,
moved by the pose and projected by the camera (:func:`photo_coordinates`, the transform the renderer
uses to redraw the photo), lands in the input crop: the photo's colour there is the person's. Where the
turned face hides the point (the photo view's z-buffer, :func:`splat_zbuffer`, is nearer than the point, or
the surface faces away from the camera: :func:`photo_visibility`), the mirrored canonical pixel's photo
colour fills it (the face's symmetry), and where both sides are hidden the decoded albedo, shaded and
matched to the photo's colours, does (:func:`photo_texture`). The weights are soft, so the three sources
blend at their seams.

:func:`render_texture` draws a canonical texture of any size on the depth map's mesh from any view:
the mesh is rasterised at the output size and each covered pixel reads the texture at its canonical
coordinates, so a 256x256 frontal view does not need a 256x256 mesh.

Every function here is a pure function of tensors (see :mod:`.geometry` for the conventions); the
photo is given as a square patch ``(B, 3, P, P)`` in ``[0, 1]`` covering the crop's square (the crop
itself, or the same square cut from the original image at a higher resolution).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor

from . import geometry as geo
from .rasterize import Raster, interpolate, rasterize_fast, rasterize_pytorch3d

__all__ = ["PhotoTexture", "TEXTURE_MODES", "TextureMode", "photo_coordinates", "photo_texture",
           "photo_visibility", "render_texture", "resize_maps", "sample_photo", "splat_zbuffer"]

#: ``"photo"``: the face's colours sampled from the photo; ``"albedo"``: the decoded albedo, shaded (the
#: paper's rendering).
TextureMode = Literal["photo", "albedo"]
TEXTURE_MODES: tuple[TextureMode, ...] = ("photo", "albedo")

#: Depth tolerance of the z-buffer test in the renderer's depth units (the face is about 0.17 wide and its
#: relief spans about 0.1), on top of the surface's own slope over one photo pixel.
Z_TOLERANCE = 0.01
#: How much more obliquely the photo may see a surface than the canonical (frontal) view does: the ratio
#: of the two cosines (normal to view ray) gives no weight below ``FACING_MIN`` (a photo pixel would be
#: stretched over more than 1/FACING_MIN canonical ones) and full weight from ``FACING_MIN + FACING_RAMP``.
FACING_MIN = 0.2
FACING_RAMP = 0.3
#: Bounds of the shading ratios that move a photo colour to another light or to the mirrored side.
RATIO_BOUNDS = (0.5, 2.0)


@dataclass
class PhotoTexture:
    """A canonical texture from the photo: ``texture`` ``(B, 3, N, N)`` in ``[0, 1]``, and the weights of its
    sources ``(B, 1, N, N)``: ``own`` (the photo at the pixel's own point), ``mirrored`` (the photo at the
    mirrored point); the albedo has the rest, ``(1 - own) * (1 - mirrored)``."""

    texture: Tensor
    own: Tensor
    mirrored: Tensor

    @property
    def albedo(self) -> Tensor:
        """``(B, 1, N, N)``: the albedo's weight."""
        return (1.0 - self.own) * (1.0 - self.mirrored)


def resize_maps(x: Tensor, size: int) -> Tensor:
    """Canonical maps ``(B, C, H, W)`` resampled to ``size x size`` on the same [-1, 1] square (bilinear,
    pixel centres as in :mod:`.geometry`; antialiased when shrinking). The input itself when it has that
    size."""
    if x.shape[-1] == size and x.shape[-2] == size:
        return x
    return F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False,
                         antialias=size < x.shape[-1])


def photo_coordinates(depth: Tensor, pose: Tensor, *, focal: float,
                      centre_depth: float) -> tuple[Tensor, Tensor]:
    """Where each canonical pixel of ``depth`` ``(B, H, W)`` lands in the photo under ``pose`` ``(B, 6)``:
    image coordinates ``(B, H, W, 2)`` in the crop's [-1, 1] square, and the moved points ``(B, H, W, 3)``
    (camera space)."""
    points = geo.apply_pose(geo.depth_to_points(depth, focal), pose, centre_depth)
    return geo.project(points, focal), points


#: Each canonical grid cell is split into ``SPLAT_SUPERSAMPLE``\ :sup:`2` points for :func:`splat_zbuffer`, so
#: that a surface the photo sees up to this many times larger than the canonical view still puts a point in
#: every photo pixel it covers.
SPLAT_SUPERSAMPLE = 2


def splat_zbuffer(points: Tensor, size: int, focal: float, supersample: int = SPLAT_SUPERSAMPLE) -> Tensor:
    """The z-buffer ``(B, size, size)`` of a depth map's surface ``points`` ``(B, H, W, 3)`` (camera space)
    seen by the camera: each photo pixel holds the nearest depth of the surface points projecting into it,
    ``inf`` where none does.

    The surface is sampled ``supersample`` times more finely than its grid (bilinear between the grid's
    points, the mesh's vertices) and each sample is splatted into the pixel it projects into, the same
    pixel ``grid_sample(mode="nearest")`` reads at that point's image coordinates. This is the part of
    rasterisation the visibility test needs (no barycentrics, no faces), at a fraction of its cost; every
    point finds at least its own depth in its pixel, so a surface never hides itself.
    """
    b, h, w, _ = points.shape
    if supersample > 1:
        grid = points.permute(0, 3, 1, 2)
        grid = F.interpolate(grid, size=((h - 1) * supersample + 1, (w - 1) * supersample + 1),
                             mode="bilinear", align_corners=True)
        points = grid.permute(0, 2, 3, 1)
    uv = geo.project(points, focal).reshape(b, -1, 2)
    z = points[..., 2].reshape(b, -1)
    ij = ((uv + 1.0) * (size / 2.0)).floor()
    ok = (ij >= 0).all(-1) & (ij < size).all(-1) & (z > 1e-6)
    ij = ij.clamp(0, size - 1).long()
    key = (torch.arange(b, device=points.device)[:, None] * size + ij[..., 1]) * size + ij[..., 0]
    zbuf = torch.full((b * size * size,), float("inf"), device=points.device, dtype=points.dtype)
    zbuf.scatter_reduce_(0, key[ok], z[ok], reduce="amin")
    return zbuf.view(b, size, size)


def _rasterize(verts: Tensor, faces: Tensor, size: int, fov_deg: float,
               backend: Literal["pytorch3d", "fast"]) -> Raster:
    if backend == "fast":
        return rasterize_fast(verts, faces, size, fov_deg)
    return rasterize_pytorch3d(verts, faces, size, fov_deg)


def _to_grid(uv: Tensor) -> Tensor:
    """Image coordinates (B, H, W, 2) as ``grid_sample``'s grid (same convention, align_corners=False)."""
    return uv.to(torch.float32)


def photo_visibility(depth: Tensor, pose: Tensor, *, focal: float, centre_depth: float, fov_deg: float,
                     backend: Literal["pytorch3d", "fast"] = "fast", bounds: Tensor | None = None,
                     z_tolerance: float = Z_TOLERANCE) -> Tensor:
    """``(B, 1, H, W)`` in [0, 1]: how well the photo shows each canonical pixel of ``depth`` under ``pose``.

    A point counts as seen when it projects where the photo has pixels (``bounds`` ``(B, 4)``: the part
    ``(u0, v0, u1, v1)`` of the crop's square that lies inside the original image, default the whole
    square; beyond it a crop only repeats the image's edge), is not behind the surface the photo
    view's z-buffer holds there (at the depth map's resolution: :func:`splat_zbuffer` with ``backend="fast"``,
    the mesh rasterised by PyTorch3D with ``"pytorch3d"``; tolerance ``z_tolerance`` plus the point's own
    depth change over one photo pixel), and faces the
    camera about as well as in the canonical view (the ratio of the photo's and the canonical view's
    normal-to-ray cosines ramps the weight from 0 at :data:`FACING_MIN` to 1 at ``+``
    :data:`FACING_RAMP`: a surface the photo sees edge-on would be smeared over the frontal view). The
    map is then eroded by one pixel (the edge of an occluder's footprint is where the test errs) and
    smoothed, so that photo and fill blend over a few pixels.
    """
    b, h, w = depth.shape
    uv, points = photo_coordinates(depth, pose, focal=focal, centre_depth=centre_depth)
    if backend == "pytorch3d":
        faces = geo.grid_faces(h, w, device=depth.device)
        raster = _rasterize(points.reshape(b, -1, 3), faces, h, fov_deg, backend)
        zbuf = torch.where(raster.pix_to_face >= 0, raster.zbuf, torch.full_like(raster.zbuf, 1e3))
    else:
        zbuf = splat_zbuffer(points, h, focal, SPLAT_SUPERSAMPLE).clamp(max=1e3)
    front = F.grid_sample(zbuf[:, None], _to_grid(uv), mode="nearest", padding_mode="border",
                          align_corners=False)[:, 0]
    z = points[..., 2]
    # the point's own depth change per photo pixel (along either grid direction): how far the z-buffer's
    # pixel centre may see the same surface in front of or behind it
    px = uv * (h / 2.0)
    dz_x = (z[:, :, 1:] - z[:, :, :-1]).abs() / (px[:, :, 1:] - px[:, :, :-1]).norm(dim=-1).clamp(min=1e-3)
    dz_y = (z[:, 1:] - z[:, :-1]).abs() / (px[:, 1:] - px[:, :-1]).norm(dim=-1).clamp(min=1e-3)
    slope = torch.maximum(F.pad(dz_x, (0, 1), mode="replicate"), F.pad(dz_x, (1, 0), mode="replicate"))
    slope = torch.maximum(slope, torch.maximum(F.pad(dz_y[:, None], (0, 0, 0, 1), mode="replicate")[:, 0],
                                               F.pad(dz_y[:, None], (0, 0, 1, 0), mode="replicate")[:, 0]))
    seen = (z <= front + z_tolerance + slope.clamp(max=0.05)).to(depth.dtype)
    canonical = geo.depth_to_points(depth, focal)
    cos_canonical = -(geo.normals_from_points(canonical) * F.normalize(canonical, dim=-1)).sum(-1)
    cos = -(geo.normals_from_points(points) * F.normalize(points, dim=-1)).sum(-1)
    ratio = cos.clamp(min=0.0) / cos_canonical.clamp(min=0.05)
    facing = ((ratio - FACING_MIN) / FACING_RAMP).clamp(0.0, 1.0)
    # where the photo has pixels, fading out over one crop pixel beyond (where its edge is only continued)
    box = uv.new_tensor([-1.0, -1.0, 1.0, 1.0]).expand(b, 4) if bounds is None else bounds.to(uv)
    lo, hi = box[:, None, None, :2], box[:, None, None, 2:]
    margin = torch.minimum(uv - lo, hi - uv).amin(dim=-1)
    inside = (margin * h / 2.0 + 1.0).clamp(0.0, 1.0)
    vis = (seen * facing * inside)[:, None]
    vis = -F.max_pool2d(-vis, 3, stride=1, padding=1)  # erode: min over 3x3
    return F.avg_pool2d(F.pad(vis, (1, 1, 1, 1), mode="replicate"), 3, stride=1)


def sample_photo(photo: Tensor, uv: Tensor) -> Tensor:
    """The photo patch ``(B, 3, P, P)`` (covering the crop's [-1, 1] square) read at image coordinates
    ``uv`` ``(B, N, N, 2)``: ``(B, 3, N, N)`` (bilinear; the patch's edge continues beyond it)."""
    return F.grid_sample(photo, _to_grid(uv).to(photo.dtype), mode="bilinear", padding_mode="border",
                         align_corners=False)


def _ratio(num: Tensor, den: Tensor) -> Tensor:
    lo, hi = RATIO_BOUNDS
    return (num / den.clamp(min=1e-3)).clamp(lo, hi)


def photo_texture(photo: Tensor, depth: Tensor, pose: Tensor, *, focal: float, centre_depth: float,
                  fov_deg: float, albedo: Tensor, photo_shading: Tensor, shading: Tensor | None = None,
                  size: int | None = None, backend: Literal["pytorch3d", "fast"] = "fast",
                  bounds: Tensor | None = None) -> PhotoTexture:
    """The canonical texture of each face from its photo (see the module docstring).

    ``photo`` ``(B, 3, P, P)`` in [0, 1] covers the crop's square; ``depth`` ``(B, H, W)`` and ``pose``
    ``(B, 6)`` are the model's; ``albedo`` ``(B, 3, H, W)`` is the decoded albedo, the fill of last resort;
    ``photo_shading`` ``(B, 1, H, W)`` is the canonical shading under the light estimated from the photo,
    ``shading`` the shading wanted in the output (``None``: the photo's own light). A photo colour moved to
    another shading is multiplied by the ratio of the shadings (bounded by :data:`RATIO_BOUNDS`), so the
    mirrored side takes this side's light and ``light="neutral"`` lifts the photo's shadows. The albedo
    fill is shaded and scaled per channel to the photo's colours where the photo is seen. ``bounds``: where
    the photo has pixels (:func:`photo_visibility`). ``size``: the
    side of the texture (default: the depth map's); the photo's coordinates, the visibility and the
    shadings are computed at the depth map's resolution and resampled (bilinear), the photo is read at
    every texture pixel.
    """
    b, h, w = depth.shape
    n = size or h
    out_shading = photo_shading if shading is None else shading
    vis = photo_visibility(depth, pose, focal=focal, centre_depth=centre_depth, fov_deg=fov_deg,
                           backend=backend, bounds=bounds)
    uv, _ = photo_coordinates(depth, pose, focal=focal, centre_depth=centre_depth)
    photo = photo.to(depth.dtype)
    own_ratio = None if shading is None else _ratio(out_shading, photo_shading)
    mirror_ratio = _ratio(out_shading, photo_shading.flip(-1))
    # the albedo fill's colours brought to the photo's where the photo shows the face (inside its region),
    # one gain per face and channel, at the model's resolution
    fill = albedo * out_shading
    raw = sample_photo(photo, uv)
    own = raw if own_ratio is None else raw * own_ratio
    region = geo.face_region(h, device=depth.device, dtype=depth.dtype)
    weight = vis * region
    total = weight.sum(dim=(2, 3)).clamp(min=1e-6)
    gain = (((own * weight).sum(dim=(2, 3)) / total)
            / ((fill * weight).sum(dim=(2, 3)) / total).clamp(min=1e-3)).clamp(*RATIO_BOUNDS)
    enough = (weight.sum(dim=(2, 3)) > 0.05 * region.sum()).to(gain.dtype)  # else keep the albedo's own
    fill = fill * (enough * gain + (1.0 - enough))[:, :, None, None]
    own_w, mir_r = vis, mirror_ratio
    if n != h:
        # resampled to n at once: the photo coordinates of the resampled depth are the depth's points'
        # coordinates resampled (both bilinear), to well under a photo pixel; the photo is read at n
        parts = [uv.permute(0, 3, 1, 2), vis, mirror_ratio, fill] + ([] if own_ratio is None else [own_ratio])
        maps = resize_maps(torch.cat(parts, dim=1), n)
        own_w, mir_r, fill = maps[:, 2:3], maps[:, 3:4], maps[:, 4:7]
        raw = sample_photo(photo, maps[:, :2].permute(0, 2, 3, 1))
        own = raw if own_ratio is None else raw * maps[:, 7:8]
    mirrored_w = own_w.flip(-1)
    mirrored = raw.flip(-1).mul_(mir_r)
    # in place on fresh tensors (at size 256 each full-size map is ~50 MB per 64 faces: allocations count)
    texture = fill.lerp(mirrored, mirrored_w).lerp_(own, own_w).clamp_(0.0, 1.0)
    return PhotoTexture(texture=texture, own=own_w, mirrored=mirrored_w)


def render_texture(texture: Tensor, depth: Tensor, pose: Tensor, *, focal: float, centre_depth: float,
                   fov_deg: float, size: int, backend: Literal["pytorch3d", "fast"] = "fast"
                   ) -> tuple[Tensor, Tensor]:
    """Draw a canonical ``texture`` ``(B, C, N, N)`` on the mesh of ``depth`` ``(B, H, W)`` seen under
    ``pose`` ``(B, 6)``, as a ``size x size`` image: ``(image (B, C, size, size), mask (B, 1, size, size))``.

    Like :meth:`~.renderer.FaceRenderer.render_face` (black outside the face; the mask is the mesh's
    coverage times the canonical :func:`~.geometry.face_region`), but the mesh is rasterised at ``size``
    and every covered pixel reads the texture where the canonical view sees its surface point (the
    point interpolated on the mesh's triangle, projected; bilinear), so texture, mesh and image sizes are
    free.
    """
    b, h, w = depth.shape
    if not bool((pose != 0).any()):
        # the canonical view itself: each pixel sees its own canonical point (what the rasteriser finds, up
        # to the mesh's edge at its last vertices' pixel centres), so no rasterisation is needed
        grid = geo.image_grid(size, size, device=depth.device, dtype=depth.dtype)
        covered = (grid.abs().amax(dim=-1) <= 1.0 - 1.0 / h + 1e-6).to(depth.dtype)
        region = geo.face_region(size, device=depth.device, dtype=depth.dtype)
        mask = (region * covered).expand(b, 1, size, size)
        return resize_maps(texture.to(depth.dtype), size) * mask, mask
    canonical = geo.depth_to_points(depth, focal)
    verts = geo.apply_pose(canonical, pose, centre_depth).reshape(b, -1, 3)
    faces = geo.grid_faces(h, w, device=depth.device)
    raster = _rasterize(verts, faces, size, fov_deg, backend)
    # each pixel's canonical surface point (exact on the planar triangles) and where the canonical view
    # sees it: the texture and the face region are read there
    at = interpolate(raster, faces, canonical.reshape(b, h * w, 3))
    uv = geo.project(at.permute(0, 2, 3, 1), focal)
    n = texture.shape[-1]
    region = geo.face_region(n, device=depth.device, dtype=depth.dtype).expand(b, 1, n, n)
    read = F.grid_sample(torch.cat([texture.to(depth.dtype), region], dim=1), uv, mode="bilinear",
                         padding_mode="border", align_corners=False)
    mask = raster.mask * read[:, -1:]
    return read[:, :-1] * mask, mask
