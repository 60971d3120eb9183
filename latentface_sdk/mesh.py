"""A reconstructed face as a textured triangle mesh, written as ``.obj`` (+ ``.mtl`` + PNG) or ``.ply``.

:func:`face_mesh` turns one face's canonical depth map and albedo (what the stage-1 decoders give) into a
:class:`FaceMesh`: the grid mesh of the depth map (vertex ``(i, j)`` lies on the ray of pixel ``(i, j)``,
as the renderer builds it), cut to the face region (:func:`~latentface_sdk.render.geometry.face_region`:
no background sheet), optionally turned by the photo's head rotation.

Axes and units of the written files (right-handed): **y up, x to the viewer's right, the face looking
towards +z** (towards a viewer in front of it); the origin is the face's rotation centre (the renderer's
``centre_depth`` on the optical axis); lengths are in the renderer's depth units, in which the face is
about 0.17 wide (a 64 px crop at the 10° field of view). Triangles are counter-clockwise seen from the
front. ``FaceMesh.save`` writes ``.obj`` (with ``.mtl`` and the albedo as a PNG texture, UVs in
``[0, 1]`` with v up, as OBJ expects) or ``.ply`` (binary, vertex colours as 8-bit RGB). The writers are
this module's own and need no PyTorch3D; their files are byte for byte those of ``pytorch3d.io``'s
``save_obj(..., decimal_places=6)`` and ``IO().save_mesh(..., binary=True, colors_as_uint8=True)``
(tests/test_mesh.py compares them where PyTorch3D is installed).
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from .gltf import write_glb
from .render import geometry as geo

__all__ = ["FaceMesh", "face_mesh", "MESH_SUFFIXES", "to_camera"]

#: The file types :meth:`FaceMesh.save` writes.
MESH_SUFFIXES = (".obj", ".ply", ".glb")


@dataclass(frozen=True)
class FaceMesh:
    """A face as a triangle mesh (see the module docstring for axes and units).

    ``vertices`` float32 ``(V, 3)``; ``faces`` int64 ``(F, 3)`` indices into ``vertices``; ``uvs`` float32
    ``(V, 2)`` in ``[0, 1]`` (v up) into ``texture``; ``colors`` float32 ``(V, 3)`` in ``[0, 1]`` (the albedo
    at each vertex); ``texture`` uint8 ``(T, T, 3)``, the canonical texture (the albedo map, or the photo
    texture of ``FaceEncoder.mesh(texture="photo")``, 256x256); ``grid`` int64 ``(V, 2)``, the ``(row,
    column)`` of the depth-map pixel each vertex comes from.
    """

    vertices: np.ndarray
    faces: np.ndarray
    uvs: np.ndarray
    colors: np.ndarray
    texture: np.ndarray
    grid: np.ndarray

    def save(self, path: str | os.PathLike[str]) -> list[Path]:
        """Write the mesh to ``path`` (``.obj``: also ``<stem>.mtl`` and ``<stem>.png`` beside it; ``.ply``;
        ``.glb``: binary glTF with the texture embedded, :func:`latentface_sdk.gltf.write_glb`); returns the
        files written. Raises :class:`ValueError` for another suffix."""
        out = Path(path)
        suffix = out.suffix.lower()
        if suffix not in MESH_SUFFIXES:
            raise ValueError(f"{out}: a mesh is written as {' or '.join(MESH_SUFFIXES)} (got "
                             f"{out.suffix or 'no suffix'!r})")
        out.parent.mkdir(parents=True, exist_ok=True)
        if suffix == ".glb":
            return [write_glb(self, out)]
        if suffix == ".obj":
            return _write_obj(out, self.vertices, self.faces, self.uvs, self.texture)
        return _write_ply(out, self.vertices, self.faces, self.colors)

    def __repr__(self) -> str:
        return (f"FaceMesh(vertices={len(self.vertices)}, faces={len(self.faces)}, "
                f"texture={self.texture.shape[:2]})")


def to_camera(vertices: np.ndarray | Tensor, centre_depth: float) -> Tensor:
    """The inverse of the file axes: mesh vertices ``(V, 3)`` back to the renderer's camera space
    (x right, y down, z away from the camera)."""
    v = torch.as_tensor(vertices, dtype=torch.float32)
    return torch.stack([v[:, 0], -v[:, 1], centre_depth - v[:, 2]], dim=1)


def face_mesh(depth: Tensor, albedo: Tensor, *, focal: float, centre_depth: float,
              rotation: Tensor | None = None, region_min: float = 0.5,
              texture: Tensor | None = None) -> FaceMesh:
    """One face's mesh from its canonical ``depth`` ``(H, W)`` and ``albedo`` ``(3, H, W)`` in ``[0, 1]``.

    ``texture``: a canonical texture ``(3, T, T)`` in ``[0, 1]`` of any size over the same square (the
    photo texture) to use instead of the albedo, as the texture image and for the vertex colours (read
    at each vertex's pixel centre).

    Vertices where :func:`~latentface_sdk.render.geometry.face_region` is below ``region_min`` are dropped,
    with the triangles that use them. ``rotation``: a pose ``(6,)`` whose yaw, pitch and roll turn the face
    about its centre (the photo's head pose); its translation is ignored, so the face stays at the origin.
    Pure function of its inputs.
    """
    if depth.dim() != 2 or albedo.shape != (3, *depth.shape):
        raise ValueError(f"expected depth (H, W) and albedo (3, H, W); got {tuple(depth.shape)} and "
                         f"{tuple(albedo.shape)}")
    if texture is not None and (texture.dim() != 3 or texture.shape[0] != 3):
        raise ValueError(f"expected a texture (3, T, T); got {tuple(texture.shape)}")
    h, w = depth.shape
    d = depth.detach().to("cpu", torch.float32)
    points = geo.depth_to_points(d[None], focal)  # (1, H, W, 3), camera space
    if rotation is not None:
        pose = torch.zeros(1, 6)
        pose[0, 3:] = rotation.detach().to("cpu", torch.float32).reshape(-1)[3:6]
        points = geo.apply_pose(points, pose, centre_depth)
    cam = points[0].reshape(-1, 3)
    # camera (x right, y down, z away) -> file axes (y up, facing +z): a half turn about x, centred on the
    # face's rotation centre.
    verts = torch.stack([cam[:, 0], -cam[:, 1], centre_depth - cam[:, 2]], dim=1)
    keep = (geo.face_region(h) >= region_min).reshape(-1)
    tri = geo.grid_faces(h, w)
    tri = tri[keep[tri].all(dim=1)]
    # the grid's triangles (top-left, bottom-left, top-right) are counter-clockwise seen from +z once y is up.
    index = torch.full((h * w,), -1, dtype=torch.long)
    kept = keep.nonzero().flatten()
    index[kept] = torch.arange(kept.numel())
    rows, cols = kept // w, kept % w
    uvs = torch.stack([(cols.float() + 0.5) / w, 1.0 - (rows.float() + 0.5) / h], dim=1)
    image = (albedo if texture is None else texture).detach().to("cpu", torch.float32).clamp(0, 1)
    if image.shape[-2:] != (h, w):
        at = geo.image_grid(h, w).reshape(1, 1, h * w, 2)  # each vertex's pixel centre, in [-1, 1]
        per_vertex = torch.nn.functional.grid_sample(image[None], at, mode="bilinear", padding_mode="border",
                                                     align_corners=False)[0, :, 0]
    else:
        per_vertex = image.reshape(3, -1)
    colors = per_vertex.t()[kept]
    texture_image = (image.permute(1, 2, 0) * 255).round().to(torch.uint8)
    return FaceMesh(
        vertices=verts[kept].numpy().astype(np.float32),
        faces=index[tri].numpy().astype(np.int64),
        uvs=uvs.numpy().astype(np.float32),
        colors=colors.numpy().astype(np.float32),
        texture=texture_image.numpy(),
        grid=torch.stack([rows, cols], dim=1).numpy().astype(np.int64),
    )


# ------------------------------------------------------------------------------------------ writers


def _write_obj(out: Path, vertices: np.ndarray, faces: np.ndarray, uvs: np.ndarray,
               texture: np.ndarray) -> list[Path]:
    """``out`` (.obj: vertices, one UV per vertex, faces ``v/vt``), ``<stem>.mtl`` (material ``mesh``
    with the texture as its diffuse map) and ``<stem>.png`` (``texture``); the layout of PyTorch3D's
    ``save_obj`` with six decimals, including its leading blank line and no newline after the last face."""
    from PIL import Image

    lines = [f"\nmtllib {out.stem}.mtl\nusemtl mesh\n\n"]
    lines += [f"v {x:.6f} {y:.6f} {z:.6f}\n" for x, y, z in vertices.astype(np.float32).tolist()]
    lines += [f"vt {u:.6f} {v:.6f}\n" for u, v in uvs.astype(np.float32).tolist()]
    lines.append("\n".join(f"f {a}/{a} {b}/{b} {c}/{c}" for a, b, c in (faces.astype(np.int64) + 1).tolist()))
    out.write_text("".join(lines))
    mtl, png = out.with_suffix(".mtl"), out.with_suffix(".png")
    Image.fromarray(np.ascontiguousarray(texture, dtype=np.uint8)).save(png)
    mtl.write_text(f"newmtl mesh\nmap_Kd {out.stem}.png\n")
    return [out, mtl, png]


def _write_ply(out: Path, vertices: np.ndarray, faces: np.ndarray, colors: np.ndarray) -> list[Path]:
    """``out`` as binary PLY in the machine's byte order: float32 ``x y z`` and uchar ``red green blue``
    per vertex (colours in ``[0, 1]`` times 255, rounded), ``uchar``-counted ``int`` index lists per face."""
    order = "big" if sys.byteorder == "big" else "little"
    header = (f"ply\nformat binary_{order}_endian 1.0\nelement vertex {len(vertices)}\n"
              "property float x\nproperty float y\nproperty float z\n"
              "property uchar red\nproperty uchar green\nproperty uchar blue\n"
              f"element face {len(faces)}\nproperty list uchar int vertex_index\nend_header\n")
    verts = np.zeros(len(vertices), dtype=[("xyz", np.float32, 3), ("rgb", np.uint8, 3)])
    verts["xyz"] = vertices
    verts["rgb"] = np.rint(np.asarray(colors, dtype=np.float32) * 255)
    tris = np.zeros(len(faces), dtype=[("count", np.uint8), ("index", np.uint32, 3)])
    tris["count"] = 3
    tris["index"] = faces
    with open(out, "wb") as f:
        f.write(header.encode("ascii"))
        f.write(verts.tobytes())
        f.write(tris.tobytes())
    return [out]
