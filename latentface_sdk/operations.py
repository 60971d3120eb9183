"""What :class:`~latentface_sdk.FaceEncoder` does with a batch's latents beyond encoding, as typed results.

* :func:`sample_identity` -> :class:`IdentityLatents`: the RDMs' identity latents ``Z_id`` (DDIM from
  ``z_T = 0`` or from seeded noise that depends only on the crop's bytes, so a face gets the same sample
  in any batch and any backend; the backend supplies the DDIM run, the noise and the averaging are here).
* :func:`render_views` -> :class:`RenderedViews`: decode albedo and depth, shade, render from a view.
* :func:`read_expression` -> :class:`ExpressionMaps`: the encoders' pooled maps beside the latents
  (:func:`latentface_sdk.expression.expression_features`).
* :func:`parse_light`: the ``light`` argument of ``frontalize``/``render``.

The :mod:`latentface_sdk.pipeline` calls these once per batch (through a backend,
:mod:`latentface_sdk.backends`); the facade (:mod:`latentface_sdk.facade`) assembles their rows into
:class:`~latentface_sdk.results.Disentangled`, :class:`~latentface_sdk.results.Frontalized` and
:class:`~latentface_sdk.results.FaceMeshes`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Literal, TypeAlias

import numpy as np
import torch
from PIL import Image
from torch import Tensor

from .digests import bytes_digest, seed_digest
from .expression import EXPRESSION_READOUT, MapReadout, expression_features
from .mesh import FaceMesh, face_mesh
from .models.autoencoder import LatentAutoencoder, Latents
from .pipeline import CropBatch, crops_to_input
from .render.renderer import FaceRenderer
from .results import Disentangled, Encoding, ExpressionFeatures, FaceMeshes, Frontalized

__all__ = ["IDENTITY_ROWS", "CanonicalMaps", "ExpressionMaps", "assemble_meshes", "decode_maps",
           "IdentityLatents", "IdentitySampler", "identity_noise", "LightSpec", "NEUTRAL_LIGHT",
           "RenderedViews",
           "assemble_disentangled", "assemble_expression", "assemble_frontalized", "parse_light",
           "read_expression", "render_views", "sample_identity"]

#: ``"same"`` (the light estimated from each input), ``"neutral"`` (:data:`NEUTRAL_LIGHT`) or 4 numbers
#: ``(ambient, diffuse, dx, dy)``.
LightSpec: TypeAlias = Literal["same", "neutral"] | Sequence[float]

#: A soft frontal light: ``ambient 0.6 + diffuse 0.4`` from the camera direction (a frontal surface
#: gets shading 1.0, so the render shows the albedo there; surfaces turned away get darker).
NEUTRAL_LIGHT = (0.6, 0.4, 0.0, 0.0)

#: ``FaceEncoder.disentangle`` samples the identity of at least this many faces at a time (the crops of
#: several batches together): each DDIM step reads all of both denoisers' weights (17 MB) whatever the
#: rows, so more rows per step cost less per face. On 2 CPU cores ``disentangle`` adds 17% to ``encode``
#: for 256 faces in one call at batch_size 32, 37% when called once per 32 faces (docs/benchmarks.md §3).
IDENTITY_ROWS = 256


@dataclass
class IdentityLatents:
    """Identity latents of a batch's crops: ``texture`` and ``shape`` ``(M, D)``."""

    texture: Tensor
    shape: Tensor


@dataclass
class CanonicalMaps:
    """Decoded canonical maps of a batch's crops: ``albedo`` ``(M, 3, S, S)`` in [0, 1], ``depth``
    ``(M, S, S)``, each face's ``pose`` ``(M, 6)`` and, for photo-textured meshes, the canonical texture
    from the photo ``(M, 3, T, T)`` (:func:`latentface_sdk.photo_views.mesh_maps`)."""

    albedo: Tensor
    depth: Tensor
    pose: Tensor
    texture: Tensor | None = None


def decode_maps(autoencoder: LatentAutoencoder, latents: Latents) -> CanonicalMaps:
    """Albedo and depth of a batch's latents, with their poses."""
    m = autoencoder.decode(latents.texture, latents.shape)
    return CanonicalMaps(albedo=m.albedo, depth=m.depth, pose=latents.pose)


def assemble_meshes(done: Sequence[tuple[CropBatch, CanonicalMaps | None]], enc: Encoding,
                    renderer: FaceRenderer, *, view: Literal["frontal", "photo"]) -> FaceMeshes:
    """One :class:`~latentface_sdk.mesh.FaceMesh` per ok row (None elsewhere), in row order."""
    meshes: list[FaceMesh | None] = [None] * len(enc)
    row = 0
    for batch, maps in done:
        n_rows = len(batch.rows)
        if maps is not None:
            for k, r in enumerate(batch.crop_rows):
                meshes[row + r] = face_mesh(maps.depth[k], maps.albedo[k], focal=renderer.focal,
                                            centre_depth=renderer.centre_depth,
                                            rotation=maps.pose[k] if view == "photo" else None,
                                            texture=None if maps.texture is None else maps.texture[k])
        row += n_rows
    return FaceMeshes(meshes=meshes, view=view, encoding=enc)


@dataclass
class RenderedViews:
    """Renders of a batch's crops: image ``(M, 3, S, S)``, mask ``(M, 1, S, S)``, the view's pose ``(M, 6)``,
    the light used ``(M, 4)``, and the canonical maps when asked for."""

    image: Tensor
    mask: Tensor
    pose: Tensor
    light: Tensor
    albedo: Tensor | None = None
    depth: Tensor | None = None
    normal: Tensor | None = None
    shading: Tensor | None = None


@dataclass
class ExpressionMaps:
    """Per-crop expression features ``(M, D)`` (:func:`read_expression`)."""

    features: Tensor


def read_expression(autoencoder: LatentAutoencoder, batch: CropBatch,
                    readout: Sequence[MapReadout] = EXPRESSION_READOUT, *,
                    mirror: bool = False) -> ExpressionMaps:
    """The expression features of a batch's crops, on the autoencoder's device and dtype."""
    p = next(autoencoder.parameters())
    x = crops_to_input(batch.crops, p.device, p.dtype)
    return ExpressionMaps(expression_features(autoencoder, x, readout, mirror=mirror))


def _seed_from(*parts: bytes | str | int) -> int:
    return seed_digest(b"".join((p if isinstance(p, bytes) else str(p).encode()) + b"|" for p in parts))


#: A backend's identity sampler: ``(texture, shape, noise_texture, noise_shape, steps) -> (Z_id_t, Z_id_s)``,
#: one DDIM run per row (:meth:`latentface_sdk.backends.FaceBackend.identity_latents`).
IdentitySampler: TypeAlias = Callable[[Tensor, Tensor, Tensor, Tensor, int], tuple[Tensor, Tensor]]


def sample_identity(sampler: IdentitySampler, batch: CropBatch, *, steps: int,
                    init: Literal["noise", "zero"], num_samples: int, seed: int) -> IdentityLatents:
    """``Z_id`` of each crop of ``batch``: the mean of ``num_samples`` DDIM samples of ``sampler``, each from
    the crop's own seeded noise (:func:`identity_noise`); one with ``init="zero"``, where the
    deterministic start ``z_T = 0`` makes all samples equal, so the mean costs one. The same for every
    backend: only ``sampler`` differs."""
    assert batch.latents is not None
    texture, shape = batch.latents.texture, batch.latents.shape
    m, d = texture.shape
    if init == "zero":
        zeros = torch.zeros(m, d)
        return IdentityLatents(*sampler(texture, shape, zeros, zeros, steps))
    noise_t, noise_s = (identity_noise(batch.crops, which, seed=seed, num_samples=num_samples, dim=d)
                        for which in ("texture", "shape"))
    k = num_samples
    id_t, id_s = sampler(texture.repeat(k, 1), shape.repeat(k, 1), noise_t, noise_s, steps)
    return IdentityLatents(texture=id_t.reshape(k, m, d).mean(dim=0), shape=id_s.reshape(k, m, d).mean(dim=0))


def identity_noise(crops: np.ndarray, which: str, *, seed: int, num_samples: int,
                   dim: int) -> Tensor:
    """The starting noise ``z_T`` of the ``which`` RDM for uint8 ``crops`` (M, S, S, 3):
    ``(num_samples * M, dim)``, sample-major (``which``: ``"texture"`` or ``"shape"``). Each crop's rows come
    from a generator seeded by ``seed``, ``which`` and the crop's SHA-256, so
    a face gets the same noise whatever batch it comes in (and in every backend that draws it here)."""
    digests = [bytes.fromhex(bytes_digest(c.tobytes())) for c in crops]
    noise = torch.empty(num_samples, len(digests), dim)
    for m, digest in enumerate(digests):
        g = torch.Generator().manual_seed(_seed_from("rdm", seed, which, digest))
        noise[:, m] = torch.randn(num_samples, dim, generator=g)
    return noise.reshape(num_samples * len(digests), dim)


def parse_light(light: LightSpec) -> Tensor | None:
    """``None`` for ``"same"``, else the fixed light ``(1, 4)``; raises ``ValueError`` for anything else."""
    if isinstance(light, str):
        if light == "same":
            return None
        if light == "neutral":
            return torch.tensor([NEUTRAL_LIGHT], dtype=torch.float32)
        raise ValueError(f"light must be 'same', 'neutral' or (ambient, diffuse, dx, dy) (got {light!r})")
    bad = ValueError(f"light must be 'same', 'neutral' or 4 finite numbers (got {light!r})")
    if isinstance(light, (bytes, bytearray, dict)):
        raise bad
    try:
        values = torch.as_tensor(np.asarray(light, dtype=np.float64), dtype=torch.float32).reshape(-1)
    except (TypeError, ValueError):
        raise bad from None
    if values.numel() != 4 or not torch.isfinite(values).all():
        raise bad
    return values.reshape(1, 4)


def render_views(autoencoder: LatentAutoencoder, renderer: FaceRenderer, latents: Latents, *,
                 angles: tuple[float, float, float], light: Tensor | None, maps: bool,
                 backend: Literal["pytorch3d", "fast"]) -> RenderedViews:
    """Decode, shade (``light``, or each face's own when ``None``) and render at ``(yaw, pitch, roll)``."""
    b = latents.texture.shape[0]
    lt = latents.light if light is None else light.to(latents.light).expand(b, 4)
    pose = latents.pose.new_tensor([0.0, 0.0, 0.0, *angles]).expand(b, 6)
    m = autoencoder.decode(latents.texture, latents.shape)
    shaded = renderer.shade(m.albedo, m.depth, lt)
    view = renderer.render_face(shaded.image, m.depth, pose, backend=backend)
    views = RenderedViews(image=view.image.clamp(0.0, 1.0), mask=view.mask, pose=pose, light=lt)
    if maps:
        views.albedo, views.depth, views.normal, views.shading = (m.albedo, m.depth, shaded.normals,
                                                                  shaded.shading)
    return views


def assemble_disentangled(done: Sequence[tuple[CropBatch, IdentityLatents | None]], enc: Encoding,
                          latent_dim: int) -> Disentangled:
    """The rows of all batches' identity latents beside their encoding."""
    id_t = torch.cat([b.scatter(r.texture if r else None, (latent_dim,)) for b, r in done])
    id_s = torch.cat([b.scatter(r.shape if r else None, (latent_dim,)) for b, r in done])
    return Disentangled(texture=enc.texture, shape=enc.shape, identity_texture=id_t, identity_shape=id_s,
                        expression_texture=enc.texture - id_t, expression_shape=enc.shape - id_s,
                        encoding=enc)


def assemble_expression(done: Sequence[tuple[CropBatch, ExpressionMaps | None]], enc: Encoding,
                        layout: dict[str, tuple[int, int]]) -> ExpressionFeatures:
    """The rows of all batches' expression features beside their encoding (NaN where a row failed)."""
    width = max(stop for _, stop in layout.values())
    feats = torch.cat([b.scatter(r.features if r else None, (width,)) for b, r in done])
    return ExpressionFeatures(features=feats, layout=dict(layout), encoding=enc)


def assemble_frontalized(done: Sequence[tuple[CropBatch, RenderedViews | None]], enc: Encoding, size: int, *,
                         maps: bool, return_tensors: bool, map_size: int | None = None) -> Frontalized:
    """The rows of all batches' renders (NaN where a row failed; mask 0 there) and, unless
    ``return_tensors``, a PIL image per ok row. Renders are ``size`` pixels wide, the maps ``map_size``
    (default ``size``)."""
    side = size if map_size is None else map_size

    def gather(field: str, shape: tuple[int, ...]) -> Tensor:
        return torch.cat([b.scatter(getattr(r, field) if r else None, shape) for b, r in done])

    image = gather("image", (3, size, size))
    mask = gather("mask", (1, size, size)).nan_to_num(0.0)
    pil: list[Image.Image | None] = []
    if not return_tensors:
        for i in range(len(enc)):
            if bool(enc.ok[i]):
                arr = (image[i].clamp(0, 1) * 255).round().to(torch.uint8).permute(1, 2, 0).numpy()
                pil.append(Image.fromarray(np.ascontiguousarray(arr)))
            else:
                pil.append(None)
    return Frontalized(
        tensor=image, mask=mask, pose=gather("pose", (6,)), light=gather("light", (4,)), encoding=enc,
        images=pil, albedo=gather("albedo", (3, side, side)) if maps else None,
        depth=gather("depth", (side, side)) if maps else None,
        normal=gather("normal", (3, side, side)) if maps else None,
        shading=gather("shading", (1, side, side)) if maps else None,
    )
