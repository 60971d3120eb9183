"""Renders and mesh textures of a batch's faces textured from their photos (``texture="photo"``), at any size.

The work :class:`~latentface_sdk.FaceEncoder`'s ``frontalize``, ``render`` and ``mesh`` hand to the
:class:`~latentface_sdk.pipeline.FacePipeline` when asked for a photo texture or another size than the
model's 64x64: decode the canonical maps, build the canonical texture (the photo's colours,
:func:`latentface_sdk.render.photo_texture.photo_texture`; or the shaded albedo), and draw it
(:func:`~latentface_sdk.render.photo_texture.render_texture`). The photo is read from each crop's source
image at the output's resolution (:func:`photo_patches`), so a 256x256 frontal view of a large face is
sharper than the 64x64 crop the model saw.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
import torch
from torch import Tensor

from .detection import _resample_square
from .models.autoencoder import LatentAutoencoder, Latents
from .operations import CanonicalMaps, RenderedViews
from .pipeline import CropBatch, crops_to_input
from .render import photo_texture as pt
from .render.renderer import FaceRenderer

__all__ = ["MESH_TEXTURE_SIZE", "canonical_texture", "check_size", "check_texture", "mesh_maps",
           "photo_bounds", "photo_patches", "render_textured_views"]

#: The side of a photo-textured mesh's texture image.
MESH_TEXTURE_SIZE = 256
#: The largest ``size`` of a frontal view or render.
MAX_SIZE = 1024


def check_texture(texture: object) -> pt.TextureMode:
    """``texture`` as a :data:`~latentface_sdk.render.photo_texture.TextureMode`, or a ``ValueError``."""
    if texture not in pt.TEXTURE_MODES:
        raise ValueError(f"texture must be 'photo' or 'albedo' (got {texture!r})")
    return texture


def check_size(size: object, default: int) -> int:
    """``size`` (``None``: ``default``) as an int in [16, :data:`MAX_SIZE`], or a ``ValueError``."""
    if size is None:
        return default
    if isinstance(size, bool) or not isinstance(size, (int, np.integer)) or not 16 <= int(size) <= MAX_SIZE:
        raise ValueError(f"size must be an integer from 16 to {MAX_SIZE} pixels (got {size!r})")
    return int(size)


def photo_patches(batch: CropBatch, size: int, device: torch.device, dtype: torch.dtype) -> Tensor:
    """The photo of each crop of ``batch`` as ``(M, 3, size, size)`` in [0, 1]: the crop's square cut from
    its source image at ``size`` pixels (edges replicated, PIL bilinear: antialiased when the photo has more
    pixels, interpolated when it has fewer), or the crops themselves at their own size (or when the
    sources are gone)."""
    crop_size = batch.crops.shape[1]
    if size == crop_size or batch.sources is None or batch.squares is None:
        return crops_to_input(batch.crops, device, dtype)
    cut = [_resample_square(rgb, tuple(float(v) for v in sq), size)  # type: ignore[arg-type]
           for rgb, sq in zip(batch.sources, batch.squares, strict=True)]
    return crops_to_input(np.stack(cut), device, dtype)


def photo_bounds(batch: CropBatch) -> Tensor | None:
    """``(M, 4)``: the part ``(u0, v0, u1, v1)`` of each crop's square (in its [-1, 1] coordinates) that lies
    inside its source image, where the photo has pixels (a face near the image's edge gets a crop whose
    outer part repeats the edge); None when the sources are not known."""
    if batch.sources is None or batch.squares is None:
        return None
    out = []
    for rgb, (x1, y1, x2, y2) in zip(batch.sources, batch.squares, strict=True):
        h, w = rgb.shape[:2]
        out.append([2.0 * (0.0 - x1) / (x2 - x1) - 1.0, 2.0 * (0.0 - y1) / (y2 - y1) - 1.0,
                    2.0 * (w - x1) / (x2 - x1) - 1.0, 2.0 * (h - y1) / (y2 - y1) - 1.0])
    return torch.tensor(out, dtype=torch.float32).clamp(-1.0, 1.0)


def canonical_texture(autoencoder: LatentAutoencoder, renderer: FaceRenderer, latents: Latents,
                      photo: Tensor | None, *, light: Tensor | None, size: int,
                      backend: Literal["pytorch3d", "fast"],
                      bounds: Tensor | None = None) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """The canonical texture ``(M, 3, size, size)`` of a batch (the photo's colours when ``photo`` is given,
    else the shaded albedo), with the decoded albedo, depth and the light used: ``(texture, albedo, depth,
    light)``. ``light``: ``None`` keeps each photo's own light, else a fixed ``(1, 4)`` one; ``bounds``: where
    the photo has pixels (:func:`photo_bounds`)."""
    b = latents.texture.shape[0]
    lt = latents.light if light is None else light.to(latents.light).expand(b, 4)
    m = autoencoder.decode(latents.texture, latents.shape)
    own = renderer.shade(m.albedo, m.depth, latents.light)
    out = own if light is None else renderer.shade(m.albedo, m.depth, lt)
    if photo is None:
        return pt.resize_maps(out.image, size), m.albedo, m.depth, lt
    tex = pt.photo_texture(photo, m.depth, latents.pose, focal=renderer.focal,
                           centre_depth=renderer.centre_depth, fov_deg=renderer.fov_deg, albedo=m.albedo,
                           photo_shading=own.shading, shading=None if light is None else out.shading,
                           size=size, backend=backend, bounds=bounds)
    return tex.texture, m.albedo, m.depth, lt


def render_textured_views(autoencoder: LatentAutoencoder, renderer: FaceRenderer, batch: CropBatch, *,
                          angles: tuple[float, float, float], light: Tensor | None, maps: bool,
                          backend: Literal["pytorch3d", "fast"], texture: pt.TextureMode,
                          size: int) -> RenderedViews:
    """:func:`latentface_sdk.operations.render_views` with a choice of texture and output ``size``: the
    canonical texture (:func:`canonical_texture`) drawn at ``(yaw, pitch, roll)`` on a ``size x size``
    image. The maps (``maps=True``) stay at the model's resolution."""
    assert batch.latents is not None
    latents = batch.latents
    p = latents.texture
    photo = photo_patches(batch, size, p.device, p.dtype) if texture == "photo" else None
    tex, albedo, depth, lt = canonical_texture(autoencoder, renderer, latents, photo, light=light, size=size,
                                               backend=backend, bounds=photo_bounds(batch))
    b = p.shape[0]
    pose = p.new_tensor([0.0, 0.0, 0.0, *angles]).expand(b, 6)
    image, mask = pt.render_texture(tex, depth, pose, focal=renderer.focal,
                                    centre_depth=renderer.centre_depth, fov_deg=renderer.fov_deg, size=size,
                                    backend=backend)
    views = RenderedViews(image=image.clamp(0.0, 1.0), mask=mask, pose=pose, light=lt)
    if maps:
        shaded = renderer.shade(albedo, depth, lt)
        views.albedo, views.depth, views.normal, views.shading = (albedo, depth, shaded.normals,
                                                                  shaded.shading)
    return views


def mesh_maps(autoencoder: LatentAutoencoder, renderer: FaceRenderer, batch: CropBatch, *,
              texture: pt.TextureMode, backend: Literal["pytorch3d", "fast"],
              texture_size: int = MESH_TEXTURE_SIZE) -> CanonicalMaps:
    """The canonical maps of a batch for its meshes: albedo, depth, pose and, for ``texture="photo"``, the
    photo texture at ``texture_size`` (under the photo's own light, as the photo shows the face)."""
    assert batch.latents is not None
    latents = batch.latents
    if texture == "albedo":
        m = autoencoder.decode(latents.texture, latents.shape)
        return CanonicalMaps(albedo=m.albedo, depth=m.depth, pose=latents.pose)
    p = latents.texture
    photo = photo_patches(batch, texture_size, p.device, p.dtype)
    tex, albedo, depth, _ = canonical_texture(autoencoder, renderer, latents, photo, light=None,
                                              size=texture_size, backend=backend, bounds=photo_bounds(batch))
    return CanonicalMaps(albedo=albedo, depth=depth, pose=latents.pose, texture=tex)
