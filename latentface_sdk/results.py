"""Typed results of :class:`~latentface_sdk.FaceEncoder`: latents, face boxes, disentangled parts, renders.

Every result has one **row per face** and keeps, for each row, where it came from and whether it worked:

* ``names[i]``: the input's name (the path for paths, ``"item k"`` for other inputs);
* ``source[i]``: the index of the input the row comes from (with ``faces="largest"``, the default, row
  ``i`` is input ``i``; with ``faces="all"`` an input gives one row per face, in input order);
* ``ok[i]``: whether the row holds a real face; ``errors[i]`` the reason when not (``None`` when ok).

Rows that are not ok hold NaN in every float field, so they can never be mistaken for a face.
Tensors are on the CPU in ``float32`` (whatever device the model runs on); :meth:`Encoding.numpy` and
friends give plain numpy arrays keyed by field name, ready for :func:`numpy.savez`.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch import Tensor

from .mesh import FaceMesh

__all__ = ["Encoding", "Disentangled", "ExpressionFeatures", "Expressions", "Frontalized", "FaceMeshes",
           "IdentityEmbeddings", "Verification"]


def _np(t: Tensor) -> np.ndarray:
    return t.detach().to("cpu").numpy()


def _short_repr(obj: object, ok: Tensor, errors: list[str | None]) -> str:
    """``Name(n=3, ok=2, texture=(3, 256), ..., first_error='item 2: ...')``: shapes, not values."""
    shapes = []
    for name, value in vars(obj).items():
        if isinstance(value, Tensor) and name != "ok":
            shapes.append(f"{name}={tuple(value.shape)}")
    first = next((e for e in errors if e is not None), None)
    tail = f", first_error={first!r}" if first is not None else ""
    n = int(ok.shape[0])
    return f"{type(obj).__name__}(n={n}, ok={int(ok.sum())}, {', '.join(shapes)}{tail})"


def _row_arrays(names: list[str], ok: Tensor, errors: list[str | None],
                source: Tensor) -> dict[str, np.ndarray]:
    return {
        "names": np.asarray(names, dtype=str),
        "ok": _np(ok).astype(bool),
        "errors": np.asarray(["" if e is None else e for e in errors], dtype=str),
        "source": _np(source).astype(np.int64),
    }


@dataclass(frozen=True, repr=False)
class Encoding:
    """The stage-1 latents of each face, and where the face was found.

    Attributes:
        texture: ``(N, 256)`` texture (albedo) latent ``Z_t``.
        shape: ``(N, 256)`` shape (depth) latent ``Z_s``.
        pose: ``(N, 6)``: ``tx, ty, tz`` (units of the face depth) then ``yaw, pitch, roll`` in degrees
            (also available as :attr:`yaw`, :attr:`pitch`, :attr:`roll`).
        light: ``(N, 4)``: ``ambient, diffuse`` in ``[0, 1]`` then the direction ``dx, dy`` in ``[-1, 1]``.
        boxes: ``(N, 4)`` ``x1, y1, x2, y2`` in pixels of the input image: the MTCNN box with
            ``detect=True``; with ``detect=False`` the square that was cropped (the centred square of side
            ``min(H, W)``); NaN when no face.
        scores: ``(N,)`` MTCNN probability of the face; NaN with ``detect=False`` and when no face.
        ok: ``(N,)`` bool, whether the row holds a face.
        errors: the reason of each row that is not ok, ``None`` for ok rows.
        names: the name of each row's input (the path, or ``"item k"``).
        source: ``(N,)`` int64, the input index of each row.
    """

    texture: Tensor
    shape: Tensor
    pose: Tensor
    light: Tensor
    boxes: Tensor
    scores: Tensor
    ok: Tensor
    errors: list[str | None]
    names: list[str]
    source: Tensor

    def __len__(self) -> int:
        return int(self.texture.shape[0])

    def __repr__(self) -> str:
        return _short_repr(self, self.ok, self.errors)

    @property
    def yaw(self) -> Tensor:
        """``(N,)`` yaw in degrees (rotation about the vertical axis)."""
        return self.pose[:, 3]

    @property
    def pitch(self) -> Tensor:
        """``(N,)`` pitch in degrees (rotation about the horizontal axis)."""
        return self.pose[:, 4]

    @property
    def roll(self) -> Tensor:
        """``(N,)`` roll in degrees (in-plane rotation)."""
        return self.pose[:, 5]

    @property
    def latents(self) -> Tensor:
        """``(N, 512)``: ``[Z_t, Z_s]``, the texture and shape latents side by side."""
        return torch.cat([self.texture, self.shape], dim=1)

    def numpy(self) -> dict[str, np.ndarray]:
        """Every field as a numpy array, keyed by field name (``errors`` as strings, ``""`` when ok)."""
        out = {k: _np(getattr(self, k)) for k in ("texture", "shape", "pose", "light", "boxes", "scores")}
        out.update(_row_arrays(self.names, self.ok, self.errors, self.source))
        return out


class _RowsOfEncoding:
    """``ok``, ``errors``, ``names`` and ``source`` of results built on an :class:`Encoding`."""

    encoding: Encoding

    def __repr__(self) -> str:
        return _short_repr(self, self.encoding.ok, self.encoding.errors)

    @property
    def ok(self) -> Tensor:
        """``(N,)`` bool, whether the row holds a face (see :class:`Encoding`)."""
        return self.encoding.ok

    @property
    def errors(self) -> list[str | None]:
        """The reason of each row that is not ok (see :class:`Encoding`)."""
        return self.encoding.errors

    @property
    def names(self) -> list[str]:
        """The name of each row's input (see :class:`Encoding`)."""
        return self.encoding.names

    @property
    def source(self) -> Tensor:
        """``(N,)`` the input index of each row (see :class:`Encoding`)."""
        return self.encoding.source


@dataclass(frozen=True, repr=False)
class Disentangled(_RowsOfEncoding):
    """Identity and expression parts of each face's latents (stage 2, representation diffusion).

    ``Z_exp`` is the observed latent (:attr:`texture`, :attr:`shape`); the RDM generates the identity latent
    ``Z_id`` from it (:attr:`identity_texture`, :attr:`identity_shape`), and the expression is the rest,
    ``Δexp = Z_exp - Z_id`` (:attr:`expression_texture`, :attr:`expression_shape`). All ``(N, 256)``.
    :attr:`encoding` holds the stage-1 result the latents came from (boxes, pose, light, rows).
    """

    texture: Tensor
    shape: Tensor
    identity_texture: Tensor
    identity_shape: Tensor
    expression_texture: Tensor
    expression_shape: Tensor
    encoding: Encoding

    def __len__(self) -> int:
        return int(self.texture.shape[0])

    @property
    def verification_features(self) -> Tensor:
        """``(N, 1024)``: ``[Z_id_t, Z_id_s, Z_t, Z_s]``, the paper's features for face verification."""
        return torch.cat([self.identity_texture, self.identity_shape, self.texture, self.shape], dim=1)

    @property
    def fer_features(self) -> Tensor:
        """``(N, 1024)``: ``[Δ_t, Δ_s, Z_t, Z_s]``, the paper's features for expression recognition."""
        return torch.cat([self.expression_texture, self.expression_shape, self.texture, self.shape], dim=1)

    def numpy(self) -> dict[str, np.ndarray]:
        """The encoding's arrays plus ``identity_*``, ``expression_*`` and both feature vectors."""
        out = self.encoding.numpy()
        for k in ("identity_texture", "identity_shape", "expression_texture", "expression_shape"):
            out[k] = _np(getattr(self, k))
        out["verification_features"] = _np(self.verification_features)
        out["fer_features"] = _np(self.fer_features)
        return out


@dataclass(frozen=True, repr=False)
class ExpressionFeatures(_RowsOfEncoding):
    """One expression feature vector per face (:meth:`FaceEncoder.expression_features`).

    ``[Z_t, Z_s]`` beside the texture and shape encoders' intermediate maps pooled on coarse grids
    (:mod:`latentface_sdk.expression`): what a linear classifier of facial expression should read
    (docs/results.md measures it against the latents, ``Δexp``, HOG and LBP).

    Attributes:
        features: ``(N, D)`` float32, NaN rows where not ok.
        layout: column range ``(start, stop)`` of each named part, in order (``"texture"``, ``"shape"``,
            then e.g. ``"texture.block3@4x4"``); :meth:`part` cuts one out.
        encoding: the stage-1 result of the same faces (latents, boxes, pose, rows, errors).
    """

    features: Tensor
    layout: dict[str, tuple[int, int]]
    encoding: Encoding

    def __len__(self) -> int:
        return int(self.features.shape[0])

    def part(self, name: str) -> Tensor:
        """``(N, width)``: the columns of one named part of :attr:`layout`."""
        if name not in self.layout:
            raise KeyError(f"no part {name!r}; the parts are {list(self.layout)}")
        start, stop = self.layout[name]
        return self.features[:, start:stop]

    def numpy(self) -> dict[str, np.ndarray]:
        """``features`` and the encoding's arrays (latents, boxes, rows)."""
        out = self.encoding.numpy()
        out["features"] = _np(self.features)
        return out


@dataclass(frozen=True, repr=False)
class Frontalized(_RowsOfEncoding):
    """Faces re-rendered by :meth:`FaceEncoder.frontalize` (canonical pose) or :meth:`FaceEncoder.render`.

    Attributes:
        tensor: ``(N, 3, S, S)`` the renders in ``[0, 1]`` (``S``: the call's ``size``, default 64; textured
            from the photo or by the albedo as the call's ``texture`` says; black where the face mesh does
            not cover the pixel; NaN rows where not ok).
        mask: ``(N, 1, S, S)`` in [0, 1]: where the rendered face is (the mesh covers the pixel and it
            lies inside the canonical face region, :func:`~latentface_sdk.render.geometry.face_region`).
        images: the renders as RGB PIL images (``None`` for rows that are not ok); empty when the call
            asked for ``return_tensors=True``.
        pose: ``(N, 6)`` the pose each face was rendered under.
        light: ``(N, 4)`` the light each face was shaded with.
        albedo, depth, normal, shading: the canonical-frame maps when asked for with ``maps=True``, at the
            model's 64x64 whatever ``size`` (``(N, 3, 64, 64)`` albedo in ``[0, 1]``, ``(N, 64, 64)`` depth,
            ``(N, 3, 64, 64)`` unit normals, ``(N, 1, 64, 64)`` shading), else ``None``.
        encoding: the stage-1 result the renders came from (boxes, rows, errors).
    """

    tensor: Tensor
    mask: Tensor
    pose: Tensor
    light: Tensor
    encoding: Encoding
    images: list[Image.Image | None] = field(default_factory=list)
    albedo: Tensor | None = None
    depth: Tensor | None = None
    normal: Tensor | None = None
    shading: Tensor | None = None

    def __len__(self) -> int:
        return int(self.tensor.shape[0])

    def numpy(self) -> dict[str, np.ndarray]:
        """Renders (``images`` as ``uint8 (N, 64, 64, 3)``), masks, pose, light and maps when present, plus
        rows."""
        rgb = (self.tensor.nan_to_num(0.0).clamp(0, 1) * 255).round().to(torch.uint8).permute(0, 2, 3, 1)
        out = {"images": _np(rgb), "mask": _np(self.mask), "pose": _np(self.pose), "light": _np(self.light)}
        for k in ("albedo", "depth", "normal", "shading"):
            value = getattr(self, k)
            if value is not None:
                out[k] = _np(value)
        out.update(_row_arrays(self.names, self.ok, self.errors, self.source))
        return out


@dataclass(frozen=True, repr=False)
class FaceMeshes(_RowsOfEncoding):
    """Faces as textured 3D meshes (:meth:`FaceEncoder.mesh`): one :class:`~latentface_sdk.mesh.FaceMesh` per
    row.

    Attributes:
        meshes: one mesh per row (``None`` for rows that are not ok); ``meshes[i].save("face.obj")``
            writes it (``.obj`` + ``.mtl`` + PNG texture, ``.ply`` or ``.glb``); the texture is the photo's
            (256x256) or the albedo (64x64), as the call's ``texture`` says.
        view: ``"frontal"`` (canonical pose) or ``"photo"`` (turned by each photo's head rotation).
        encoding: the stage-1 result the meshes came from (boxes, pose, rows, errors).
    """

    meshes: list[FaceMesh | None]
    view: str
    encoding: Encoding

    def __len__(self) -> int:
        return len(self.meshes)

    def __repr__(self) -> str:
        ok = [m for m in self.meshes if m is not None]
        sizes = f", vertices={len(ok[0].vertices)}" if ok else ""
        return f"FaceMeshes(n={len(self)}, ok={len(ok)}, view={self.view!r}{sizes})"

    def save(self, folder: str | os.PathLike[str], suffix: str = ".obj") -> list[Path | None]:
        """Write every ok row's mesh into ``folder`` as ``face<i><suffix>`` (``.obj``, ``.ply`` or ``.glb``);
        returns each row's main file (``None`` for rows that are not ok)."""
        out: list[Path | None] = []
        root = Path(folder)
        for i, mesh in enumerate(self.meshes):
            out.append(mesh.save(root / f"face{i}{suffix}")[0] if mesh is not None else None)
        return out



@dataclass(frozen=True, repr=False)
class IdentityEmbeddings(_RowsOfEncoding):
    """One unit-length identity vector per face (:meth:`FaceEncoder.identity_embedding`), made for cosine
    similarity: the dot product of two rows is their cosine, high for one person, low for two.

    Attributes:
        embeddings: ``(N, D)`` float32 unit rows (NaN rows where not ok).
        threshold: the model's same-person cosine threshold (chosen on training identities; the model
            card states its false-accept and false-reject rates on held-out identities).
        encoding: the stage-1 result of the same faces (latents, boxes, rows, errors).
    """

    embeddings: Tensor
    threshold: float
    encoding: Encoding

    def __len__(self) -> int:
        return int(self.embeddings.shape[0])

    def similarity(self, other: IdentityEmbeddings | None = None) -> Tensor:
        """Cosine similarity matrix ``(N, M)`` between these rows and ``other``'s (default: these rows
        again); NaN where either row is not ok."""
        b = self.embeddings if other is None else other.embeddings
        return self.embeddings @ b.T

    def numpy(self) -> dict[str, np.ndarray]:
        """``identity_embedding`` and the encoding's arrays (latents, boxes, rows)."""
        out = self.encoding.numpy()
        out["identity_embedding"] = _np(self.embeddings)
        return out


@dataclass(frozen=True, repr=False)
class Verification:
    """Pairs of faces compared (:meth:`FaceEncoder.verify`): one row per pair ``(a[i], b[i])``.

    Attributes:
        similarity: ``(N,)`` cosine of the two identity embeddings (NaN where a side has no face).
        same_person: ``(N,)`` bool, ``similarity >= threshold`` (False where a side failed).
        threshold: the cosine threshold used (the model's, unless the call gave one).
        ok: ``(N,)`` bool, both sides had a face; ``errors[i]`` says which side failed and why.
        a, b: the two sides' :class:`IdentityEmbeddings` (boxes, names, the embeddings themselves).
    """

    similarity: Tensor
    same_person: Tensor
    threshold: float
    ok: Tensor
    errors: list[str | None]
    a: IdentityEmbeddings
    b: IdentityEmbeddings

    def __len__(self) -> int:
        return int(self.similarity.shape[0])

    def __repr__(self) -> str:
        if len(self) == 1 and bool(self.ok[0]):
            return (f"Verification(similarity={float(self.similarity[0]):.3f}, "
                    f"same_person={bool(self.same_person[0])}, threshold={self.threshold:.3f})")
        first = next((e for e in self.errors if e is not None), None)
        tail = f", first_error={first!r}" if first is not None else ""
        return (f"Verification(n={len(self)}, ok={int(self.ok.sum())}, same={int(self.same_person.sum())}, "
                f"threshold={self.threshold:.3f}{tail})")

    def numpy(self) -> dict[str, np.ndarray]:
        """``similarity``, ``same_person``, ``ok``, ``errors`` and ``threshold`` as numpy arrays."""
        return {"similarity": _np(self.similarity), "same_person": _np(self.same_person).astype(bool),
                "ok": _np(self.ok).astype(bool), "threshold": np.asarray(self.threshold),
                "errors": np.asarray(["" if e is None else e for e in self.errors], dtype=str)}


@dataclass(frozen=True, repr=False)
class Expressions(_RowsOfEncoding):
    """Facial expression of each face (:meth:`FaceEncoder.expressions`): probabilities over the head's
    classes (FER-2013's seven for the bundled weights) and the most probable one.

    Attributes:
        probabilities: ``(N, C)`` float32, rows sum to 1 (NaN rows where not ok).
        classes: the class names, in column order.
        labels: the top class per row (``None`` where not ok).
        encoding: the stage-1 result of the same faces (latents, boxes, rows, errors).
    """

    probabilities: Tensor
    classes: tuple[str, ...]
    labels: list[str | None]
    encoding: Encoding

    def __len__(self) -> int:
        return int(self.probabilities.shape[0])

    def top(self, k: int = 3) -> list[list[tuple[str, float]]]:
        """The ``k`` most probable classes of each row as ``(name, probability)``, best first (empty for
        rows that are not ok)."""
        out: list[list[tuple[str, float]]] = []
        for row, ok in zip(self.probabilities, self.ok.tolist(), strict=True):
            if not ok:
                out.append([])
                continue
            values, idx = row.topk(min(k, len(self.classes)))
            out.append([(self.classes[int(i)], float(v)) for v, i in zip(values, idx, strict=True)])
        return out

    def numpy(self) -> dict[str, np.ndarray]:
        """``expression_probabilities``, ``expression`` (top label, empty where not ok), ``classes`` and the
        encoding's arrays."""
        out = self.encoding.numpy()
        out["expression_probabilities"] = _np(self.probabilities)
        out["expression"] = np.asarray(["" if v is None else v for v in self.labels], dtype=str)
        out["expression_classes"] = np.asarray(self.classes, dtype=str)
        return out
