"""A textured triangle mesh (a :class:`~latentface_sdk.mesh.FaceMesh`) as binary glTF 2.0 (``.glb``): one
self-contained file.

:func:`write_glb` writes one triangle primitive with positions, vertex normals (:func:`vertex_normals`) and
either the mesh's texture image (an embedded PNG read through ``TEXCOORD_0``: the default, at the
texture's full resolution, e.g. the 256x256 photo texture) or its per-vertex colours (``COLOR_0``,
``colors=True``), under a matte PBR material. glTF's axes are the mesh's (y up, the front facing +z).
``FaceMesh.save("face.glb")`` and the demo page's 3D view (Gradio's ``Model3D``) use it;
``pytorch3d.io.IO`` reads it back once ``pytorch3d.io.experimental_gltf_io.MeshGlbFormat`` is registered.
This module is a writer below :mod:`latentface_sdk.mesh`: it takes any object with the mesh's arrays
(:class:`TexturedMesh`) and imports nothing of the package.
"""

from __future__ import annotations

import io
import json
import os
import struct
from pathlib import Path
from typing import Any, Protocol

import numpy as np
from PIL import Image

__all__ = ["TexturedMesh", "vertex_normals", "write_glb"]


class TexturedMesh(Protocol):
    """What :func:`write_glb` reads of a mesh (a :class:`~latentface_sdk.mesh.FaceMesh` has it all):
    ``vertices`` float ``(V, 3)``, ``faces`` int ``(F, 3)``, ``uvs`` float ``(V, 2)`` in ``[0, 1]`` (v up),
    ``colors`` float ``(V, 3)`` in ``[0, 1]`` (sRGB) and ``texture`` uint8 ``(T, T, 3)``."""

    @property
    def vertices(self) -> np.ndarray: ...

    @property
    def faces(self) -> np.ndarray: ...

    @property
    def uvs(self) -> np.ndarray: ...

    @property
    def colors(self) -> np.ndarray: ...

    @property
    def texture(self) -> np.ndarray: ...


def vertex_normals(vertices: np.ndarray, faces: np.ndarray) -> np.ndarray:
    """Unit normals ``(V, 3)`` float32: the area-weighted sum of the normals of each vertex's triangles
    (counter-clockwise triangles: the normals point to the side they are seen counter-clockwise from)."""
    v = vertices.astype(np.float64)
    a, b, c = (v[faces[:, k]] for k in range(3))
    per_face = np.cross(b - a, c - a)  # length = twice the area
    normals = np.zeros_like(v)
    for k in range(3):
        np.add.at(normals, faces[:, k], per_face)
    normals /= np.maximum(np.linalg.norm(normals, axis=1, keepdims=True), 1e-12)
    return normals.astype(np.float32)


def _srgb_to_linear(c: np.ndarray) -> np.ndarray:
    c = np.clip(c.astype(np.float64), 0.0, 1.0)
    return np.where(c <= 0.04045, c / 12.92, ((c + 0.055) / 1.055) ** 2.4).astype(np.float32)


_GLB_MAGIC, _GLB_JSON, _GLB_BIN = 0x46546C67, 0x4E4F534A, 0x004E4942
_FLOAT, _UINT32 = 5126, 5125
_ARRAY_BUFFER, _ELEMENT_ARRAY_BUFFER = 34962, 34963
_LINEAR, _CLAMP = 9729, 33071


def write_glb(mesh: TexturedMesh, path: str | os.PathLike[str], *, colors: bool = False) -> Path:
    """Write ``mesh`` as a binary glTF 2.0 file (``.glb``; see the module docstring). ``colors=False``
    (default): the texture image as an embedded PNG with the mesh's UVs (glTF's v runs down the image);
    ``colors=True``: the per-vertex colours instead (``COLOR_0``, linear as glTF wants). Returns the
    path."""
    verts = np.ascontiguousarray(mesh.vertices, dtype=np.float32)
    faces = np.ascontiguousarray(mesh.faces, dtype=np.int64)
    if verts.ndim != 2 or verts.shape[1] != 3 or len(verts) == 0 or faces.ndim != 2 or faces.shape[1] != 3:
        raise ValueError(f"expected vertices (V, 3) and faces (F, 3), V > 0; got {verts.shape} and "
                         f"{faces.shape}")
    if colors:
        surface = (_srgb_to_linear(mesh.colors), "VEC3", _FLOAT, _ARRAY_BUFFER)
    else:
        uv = np.asarray(mesh.uvs, dtype=np.float32).copy()
        uv[:, 1] = 1.0 - uv[:, 1]  # OBJ's v runs up the image, glTF's down
        surface = (uv, "VEC2", _FLOAT, _ARRAY_BUFFER)
    arrays = [(verts, "VEC3", _FLOAT, _ARRAY_BUFFER),
              (vertex_normals(verts, faces), "VEC3", _FLOAT, _ARRAY_BUFFER),
              surface,
              (faces.astype(np.uint32).reshape(-1), "SCALAR", _UINT32, _ELEMENT_ARRAY_BUFFER)]
    blob = bytearray()
    views: list[dict[str, Any]] = []
    accessors: list[dict[str, Any]] = []
    for i, (arr, kind, component, target) in enumerate(arrays):
        data = np.ascontiguousarray(arr).astype(arr.dtype.newbyteorder("<"), copy=False).tobytes()
        views.append({"buffer": 0, "byteOffset": len(blob), "byteLength": len(data), "target": target})
        blob += data + b"\0" * (-len(data) % 4)  # every view starts on a 4-byte boundary
        accessors.append({"bufferView": i, "componentType": component, "count": int(arr.shape[0]),
                          "type": kind})
    accessors[0]["min"] = [float(x) for x in verts.min(axis=0)]  # glTF requires the positions' bounds
    accessors[0]["max"] = [float(x) for x in verts.max(axis=0)]
    material: dict[str, Any] = {"baseColorFactor": [1.0, 1.0, 1.0, 1.0], "metallicFactor": 0.0,
                                "roughnessFactor": 0.8}
    attributes = {"POSITION": 0, "NORMAL": 1, ("COLOR_0" if colors else "TEXCOORD_0"): 2}
    doc: dict[str, Any] = {
        "asset": {"version": "2.0", "generator": "latentface_sdk.gltf"},
        "scene": 0, "scenes": [{"nodes": [0]}], "nodes": [{"mesh": 0, "name": "face"}],
        "meshes": [{"name": "face", "primitives": [{"attributes": attributes, "indices": 3, "material": 0,
                                                    "mode": 4}]}],
        "materials": [{"name": "face", "pbrMetallicRoughness": material}],
        "buffers": [], "bufferViews": views, "accessors": accessors,
    }
    if not colors:
        png = io.BytesIO()
        Image.fromarray(np.ascontiguousarray(mesh.texture, dtype=np.uint8)).save(png, format="PNG")
        data = png.getvalue()
        views.append({"buffer": 0, "byteOffset": len(blob), "byteLength": len(data)})
        blob += data + b"\0" * (-len(data) % 4)
        doc["images"] = [{"name": "texture", "mimeType": "image/png", "bufferView": len(views) - 1}]
        doc["samplers"] = [{"magFilter": _LINEAR, "minFilter": _LINEAR, "wrapS": _CLAMP, "wrapT": _CLAMP}]
        doc["textures"] = [{"source": 0, "sampler": 0}]
        material["baseColorTexture"] = {"index": 0}
    doc["buffers"] = [{"byteLength": len(blob)}]
    text = json.dumps(doc, separators=(",", ":")).encode("utf-8")
    text += b" " * (-len(text) % 4)
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    with open(out, "wb") as fh:
        fh.write(struct.pack("<III", _GLB_MAGIC, 2, 12 + 8 + len(text) + 8 + len(blob)))
        fh.write(struct.pack("<II", len(text), _GLB_JSON) + text)
        fh.write(struct.pack("<II", len(blob), _GLB_BIN) + bytes(blob))
    return out
