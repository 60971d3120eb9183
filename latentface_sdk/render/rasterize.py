"""Rasterisation of grid meshes: PyTorch3D (the renderer of record) and a fast vectorised CPU path.

Both functions take camera-space vertices (X right, Y down, Z forward; see :mod:`.geometry`) of a batch
of meshes that share one face list, and return the same :class:`Raster` (one face per pixel, no blur,
perspective-correct barycentrics, closest face wins). Gradients reach the vertices through the
barycentric coordinates and the depth buffer, as in PyTorch3D.

``rasterize_fast`` exists because PyTorch3D's CPU rasteriser tests every face against every pixel on
one thread (~0.2 s per 64x64 face forward+backward). A grid mesh seen from near the canonical view
has triangles about one pixel wide, so each face only needs to be tested against a small window of
pixels; the whole batch is then a few tensor operations. Faces are grouped by the size of their
bounding box (1, 2, 3, 4, 6, 8, 16, ... pixels per side), so a stretched triangle is still tested
against every pixel it may cover and the result does not depend on a window size.
``tests/test_renderer.py`` measures the agreement with PyTorch3D on random poses.

PyTorch3D is optional (the extra ``[pytorch3d]``): nothing imports it until ``rasterize_pytorch3d`` runs,
and :func:`require_pytorch3d` turns its absence into an :class:`ImportError` that names the extra.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from .geometry import project

#: PyTorch3D counts a pixel centre lying exactly on an edge as outside every face. The canonical grid
#: puts a vertex on every pixel centre, so a tiny blur radius (NDC units) makes edges inclusive.
_EDGE_EPS = 1e-7
#: The same tolerance in pixel units for the fast path: PyTorch3D compares the squared NDC distance to
#: the blur radius, so a pixel centre within sqrt(_EDGE_EPS) NDC units of a face counts as inside.
_EDGE_NDC = _EDGE_EPS**0.5


@dataclass
class Raster:
    """Per-pixel result of rasterising a batch of meshes.

    ``pix_to_face`` (B, S, S) indexes the *packed* faces (``b * F + f``) or is -1 for background;
    ``bary`` (B, S, S, 3) are perspective-correct barycentric coordinates (0 on background);
    ``zbuf`` (B, S, S) is the camera-space depth of the visible surface (-1 on background).
    """

    pix_to_face: Tensor
    bary: Tensor
    zbuf: Tensor

    @property
    def mask(self) -> Tensor:
        """(B, 1, S, S) float mask of covered pixels."""
        return (self.pix_to_face >= 0).unsqueeze(1).to(self.bary.dtype)


#: How to get PyTorch3D, which only training with ``renderer: "pytorch3d"`` and the comparisons need.
PYTORCH3D_EXTRA = "pip install 'latentface-sdk[pytorch3d]' (from a checkout: pip install -e '.[pytorch3d]')"


def pytorch3d_problem() -> str | None:
    """Why PyTorch3D cannot be used here (not installed, or its compiled extension does not load with
    this torch), or ``None`` when it can. Imports ``pytorch3d._C`` the first time it is called."""
    try:
        from pytorch3d import _C  # noqa: F401
    except ImportError as exc:
        if isinstance(exc, ModuleNotFoundError) and (exc.name or "").split(".")[0] == "pytorch3d":
            return "PyTorch3D is not installed"
        return f"PyTorch3D does not load with torch {torch.__version__} ({exc})"
    return None


def has_pytorch3d() -> bool:
    """Whether PyTorch3D is installed and loads (see :func:`pytorch3d_problem`)."""
    return pytorch3d_problem() is None


def require_pytorch3d(what: str) -> None:
    """Raise an :class:`ImportError` naming the extra when ``what`` (e.g. "the pytorch3d rasteriser")
    cannot run for want of PyTorch3D."""
    problem = pytorch3d_problem()
    if problem is not None:
        raise ImportError(f"{what} needs PyTorch3D: {problem}. Install it with {PYTORCH3D_EXTRA}, "
                          "or use the project's own rasteriser (backend/renderer 'fast' or 'auto').")


def rasterize_pytorch3d(verts: Tensor, faces: Tensor, image_size: int, fov_deg: float) -> Raster:
    """Rasterise with ``pytorch3d.renderer`` (FoV perspective camera, one face per pixel).

    Raises :class:`ImportError` (naming the extra ``[pytorch3d]``) when PyTorch3D is not usable."""
    require_pytorch3d("the pytorch3d rasteriser")
    from pytorch3d.renderer import FoVPerspectiveCameras, MeshRasterizer, RasterizationSettings
    from pytorch3d.structures import Meshes

    batch = verts.shape[0]
    # PyTorch3D's camera space has +X left and +Y up: mirror X and Y of ours (X right, Y down).
    p3d_verts = verts * verts.new_tensor([-1.0, -1.0, 1.0])
    meshes = Meshes(verts=list(p3d_verts), faces=[faces] * batch)
    cameras = FoVPerspectiveCameras(fov=fov_deg, degrees=True, znear=0.01, zfar=100.0, device=verts.device)
    settings = RasterizationSettings(
        image_size=image_size, blur_radius=_EDGE_EPS, faces_per_pixel=1, perspective_correct=True,
        cull_backfaces=False, bin_size=0,
    )
    fragments = MeshRasterizer(cameras=cameras, raster_settings=settings)(meshes)
    pix_to_face = fragments.pix_to_face[..., 0]
    bary = fragments.bary_coords[..., 0, :]
    zbuf = fragments.zbuf[..., 0]
    return Raster(pix_to_face=pix_to_face, bary=bary, zbuf=zbuf)


def _barycentric(p: Tensor, a: Tensor, b: Tensor, c: Tensor, eps: float = 1e-12) -> tuple[Tensor, Tensor]:
    """Screen-space barycentrics (..., 3) of points ``p`` in triangles ``abc`` (..., 2), and the signed
    area."""
    area = ((b[..., 0] - a[..., 0]) * (c[..., 1] - a[..., 1])
            - (b[..., 1] - a[..., 1]) * (c[..., 0] - a[..., 0]))
    w0 = (b[..., 0] - p[..., 0]) * (c[..., 1] - p[..., 1]) - (b[..., 1] - p[..., 1]) * (c[..., 0] - p[..., 0])
    w1 = (c[..., 0] - p[..., 0]) * (a[..., 1] - p[..., 1]) - (c[..., 1] - p[..., 1]) * (a[..., 0] - p[..., 0])
    safe = torch.where(area.abs() < eps, torch.full_like(area, eps), area)
    l0, l1 = w0 / safe, w1 / safe
    return torch.stack([l0, l1, 1.0 - l0 - l1], dim=-1), area


def _inside(bary: Tensor, area: Tensor, a: Tensor, b: Tensor, c: Tensor, tol: float) -> Tensor:
    """Pixel centres inside a triangle or within ``tol`` pixels of each of its edges."""
    lengths = torch.stack([(c - b).norm(dim=-1), (a - c).norm(dim=-1), (b - a).norm(dim=-1)], dim=-1)
    dist = bary * area.abs().unsqueeze(-1) / lengths.clamp(min=1e-12)
    return (dist >= -tol).all(-1)


def _perspective_correct(bary: Tensor, z: Tensor) -> tuple[Tensor, Tensor]:
    """Perspective-correct barycentrics and interpolated depth from screen barycentrics and vertex depths."""
    w = bary / z
    denom = w.sum(-1, keepdim=True)
    denom = torch.where(denom.abs() < 1e-12, torch.full_like(denom, 1e-12), denom)
    pc = w / denom
    return pc, (pc * z).sum(-1)


def rasterize_fast(verts: Tensor, faces: Tensor, image_size: int, fov_deg: float) -> Raster:
    """Vectorised windowed rasteriser with PyTorch3D's semantics (see the module docstring)."""
    from .geometry import focal_from_fov

    batch = verts.shape[0]
    n_faces = faces.shape[0]
    size = image_size
    focal = focal_from_fov(fov_deg)
    device = verts.device
    tol = _EDGE_NDC * size / 2.0  # PyTorch3D's edge tolerance in pixel units

    with torch.no_grad():
        uv = project(verts, focal)
        px = (uv + 1.0) * (size / 2.0) - 0.5  # pixel-centre units: pixel i has centre at i
        tri = px[:, faces].reshape(batch * n_faces, 3, 2)
        tz = verts[..., 2][:, faces].reshape(batch * n_faces, 3)
        # The face's bounding box in pixel centres, clipped to the image: pixels outside never count,
        # and clipping keeps the windows of faces that reach far off-screen small.
        start = (tri.amin(dim=1) - tol).ceil().clamp(min=0.0)
        stop = (tri.amax(dim=1) + tol).floor().clamp(max=float(size - 1))
        span = (stop - start).amax(dim=1) + 1  # pixel centres the face's bounding box spans per side
        alive = (span >= 1) & ((stop - start).amin(dim=1) >= 0) & (tz > 1e-6).all(-1)
        keys: list[Tensor] = []
        zs: list[Tensor] = []
        fids: list[Tensor] = []
        lower = 0.0
        # Faces are processed in buckets of growing window size, so that the rare stretched triangle
        # (steep depth under rotation) is tested against all its pixels without widening every face.
        for k in _windows(size):
            selected = (alive & (span > lower) & (span <= k)).nonzero().squeeze(1)
            lower = float(k)
            # Chunks of at most ~4M window pixels bound the memory when many faces are stretched
            # (a noisy depth map under rotation early in training).
            for sel in selected.split(max(1, _MAX_WINDOW_PIXELS // (k * k))):
                _rasterize_window(sel, k, start, stop, tri, tz, tol, n_faces, size, keys, zs, fids)
        zbuf = torch.full((batch * size * size,), float("inf"), device=device, dtype=verts.dtype)
        pix_to_face = torch.full((batch * size * size,), -1, device=device, dtype=torch.long)
        if keys:
            key, zsel, fsel = torch.cat(keys), torch.cat(zs), torch.cat(fids)
            zbuf.scatter_reduce_(0, key, zsel, reduce="amin")
            winner = zsel <= zbuf[key]
            pix_to_face.scatter_reduce_(0, key[winner], fsel[winner], reduce="amax")
        pix_to_face = pix_to_face.view(batch, size, size)

    # Differentiable part: recompute barycentrics of each pixel's winning face from the vertices.
    hit = pix_to_face >= 0
    face_local = torch.where(hit, pix_to_face % n_faces, torch.zeros_like(pix_to_face))
    vidx = faces[face_local]  # (B, S, S, 3)
    bsel = torch.arange(batch, device=device).view(batch, 1, 1, 1).expand_as(vidx)
    uv_all = project(verts, focal)
    px_all = (uv_all + 1.0) * (size / 2.0) - 0.5
    corners = px_all[bsel, vidx]  # (B, S, S, 3, 2)
    zc = verts[..., 2][bsel, vidx]  # (B, S, S, 3)
    centres = torch.arange(size, device=device, dtype=verts.dtype)
    cy, cx = torch.meshgrid(centres, centres, indexing="ij")
    pix = torch.stack([cx, cy], dim=-1).expand(batch, size, size, 2)
    bary_s, _ = _barycentric(pix, corners[..., 0, :], corners[..., 1, :], corners[..., 2, :])
    bary_pc, zval = _perspective_correct(bary_s, zc)
    # Like PyTorch3D with a blur radius, clip barycentrics of centres just outside an edge.
    bary_pc = bary_pc.clamp(min=0.0)
    bary_pc = bary_pc / bary_pc.sum(-1, keepdim=True).clamp(min=1e-12)
    fmask = hit.unsqueeze(-1).to(verts.dtype)
    bary_out = bary_pc * fmask
    zbuf_out = torch.where(hit, zval, torch.full_like(zval, -1.0))
    return Raster(pix_to_face=pix_to_face, bary=bary_out, zbuf=zbuf_out)


_MAX_WINDOW_PIXELS = 1 << 22


def _rasterize_window(sel: Tensor, k: int, start: Tensor, stop: Tensor, tri: Tensor, tz: Tensor, tol: float,
                      n_faces: int, size: int, keys: list[Tensor], zs: list[Tensor],
                      fids: list[Tensor]) -> None:
    """Test the faces ``sel`` against every pixel centre of a k x k window at their box's corner."""
    offs = torch.arange(k, device=tri.device, dtype=tri.dtype)
    gx = start[sel, 0, None, None] + offs.view(1, 1, k)
    gy = start[sel, 1, None, None] + offs.view(1, k, 1)
    gx, gy = torch.broadcast_tensors(gx, gy)
    pts = torch.stack([gx, gy], dim=-1)
    a, b, c = (tri[sel, None, None, i, :] for i in range(3))
    bary, area = _barycentric(pts, a, b, c)
    _, zpix = _perspective_correct(bary, tz[sel, None, None, :])
    valid = (
        _inside(bary, area, a, b, c, tol) & (area.abs() > 1e-12)
        & (gx <= stop[sel, 0, None, None]) & (gy <= stop[sel, 1, None, None])
        & (gx >= 0) & (gx < size) & (gy >= 0) & (gy < size)
    )
    bidx = (sel // n_faces).view(-1, 1, 1).expand_as(gx)
    key = (bidx * size + gy.long().clamp(0, size - 1)) * size + gx.long().clamp(0, size - 1)
    keys.append(key[valid])
    zs.append(zpix[valid])
    fids.append(sel.view(-1, 1, 1).expand_as(gx)[valid])


def _windows(size: int) -> list[int]:
    sizes = [1, 2, 3, 4, 6, 8]
    while sizes[-1] < size:
        sizes.append(min(sizes[-1] * 2, size))
    return sizes


def interpolate(raster: Raster, faces: Tensor, attributes: Tensor) -> Tensor:
    """Interpolate per-vertex attributes (B, V, C) over the raster; returns (B, C, S, S), 0 on background."""
    batch, n_verts, channels = attributes.shape
    n_faces = faces.shape[0]
    hit = raster.pix_to_face >= 0
    face_local = torch.where(hit, raster.pix_to_face % n_faces, torch.zeros_like(raster.pix_to_face))
    vidx = faces[face_local]  # (B, S, S, 3)
    bsel = torch.arange(batch, device=attributes.device).view(batch, 1, 1, 1).expand_as(vidx)
    corner = attributes[bsel, vidx]  # (B, S, S, 3, C)
    out = (raster.bary.unsqueeze(-1) * corner).sum(-2)
    out = out * hit.unsqueeze(-1).to(out.dtype)
    return out.permute(0, 3, 1, 2).contiguous()
