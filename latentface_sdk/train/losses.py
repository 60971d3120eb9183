"""Losses of both stages (paper appendix C).

Stage 1: confidence-weighted photometric loss (eq. 8/10), the feature-level loss with its own confidence
map (eq. 9) and the reconstruction of the flipped canonical face (eq. 11, ``lambda_flip = 0.5``,
``lambda_f = 1``). :func:`reconstruct` runs the whole differentiable pipeline once, so that the trainer,
the tests and the reconstruction grids share it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..models.autoencoder import LatentAutoencoder, Latents, Maps
from ..render.geometry import flip_horizontal
from ..render.renderer import FaceRenderer, Rendered, Shaded

_SQRT2 = math.sqrt(2.0)


def confidence_l1(pred: Tensor, target: Tensor, sigma: Tensor, mask: Tensor | None = None) -> Tensor:
    """Eq. 10: negative log-likelihood of a Laplacian with scale ``sigma`` over the masked pixels.

    ``pred``/``target`` (B, C, H, W); ``sigma`` and ``mask`` (B, 1, H, W). The per-pixel error is the mean
    absolute difference over channels; the loss is ``sqrt(2) |d| / sigma + log(sqrt(2) sigma)`` averaged
    over the mask (all pixels without one).
    """
    err = (pred - target).abs().mean(dim=1, keepdim=True)
    nll = _SQRT2 * err / sigma + torch.log(_SQRT2 * sigma)
    if mask is None:
        return nll.mean()
    return (nll * mask).sum() / mask.sum().clamp(min=1.0)


@dataclass
class Reconstruction:
    """Everything one stage-1 forward pass produces (for losses, grids and tests)."""

    latents: Latents
    maps: Maps
    shaded: Shaded
    recon: Rendered
    recon_flip: Rendered
    conf_photo: Tensor
    conf_feature: Tensor


def reconstruct(model: LatentAutoencoder, renderer: FaceRenderer, images: Tensor) -> Reconstruction:
    """Encode, decode, shade and render ``images`` (B, 3, 64, 64) in [0, 1], and its flipped twin (eq. 4, 5)."""
    latents, maps = model(images)
    shaded = renderer.shade(maps.albedo, maps.depth, latents.light)
    recon = renderer.render(shaded.image, maps.depth, latents.pose)
    depth_f = flip_horizontal(maps.depth)
    shaded_f = renderer.shade(flip_horizontal(maps.albedo), depth_f, latents.light)
    recon_f = renderer.render(shaded_f.image, depth_f, latents.pose)
    conf_photo, conf_feature = model.confidence(model.normalize(images))
    return Reconstruction(latents, maps, shaded, recon, recon_f, conf_photo, conf_feature)


def depth_curvature(depth: Tensor, pixel_depth: float) -> Tensor:
    """Mean absolute second difference of a depth map (B, H, W) along x and y, in slope units.

    A smooth face has small second differences; the high-frequency ridges that the photometric loss
    alone can settle into (rows of stripes that, tilted, mimic texture and shading) have large ones.
    Unlike a first-order (total variation) prior it does not flatten the face's overall relief.
    """
    dxx = depth[:, :, 2:] - 2 * depth[:, :, 1:-1] + depth[:, :, :-2]
    dyy = depth[:, 2:, :] - 2 * depth[:, 1:-1, :] + depth[:, :-2, :]
    return (dxx.abs().mean() + dyy.abs().mean()) / pixel_depth


@dataclass
class Stage1Loss:
    """Weights of eq. 11."""

    lambda_f: float = 1.0
    lambda_flip: float = 0.5
    #: weight of :func:`depth_curvature` (0 = the paper's loss; the shipped recipe uses a small prior)
    lambda_smooth: float = 0.0
    #: depth of one pixel's width at the canonical distance, to express curvature in slope units
    pixel_depth: float = 2 * math.tan(math.radians(5.0)) / 64

    def __call__(self, rec: Reconstruction, images: Tensor, features: nn.Module) -> tuple[Tensor, dict[str, float]]:
        """Total loss and its parts (as floats, for logs)."""
        mask = rec.recon.mask.detach()
        mask_f = rec.recon_flip.mask.detach()
        photo = confidence_l1(rec.recon.image, images, rec.conf_photo[:, :1], mask)
        photo_f = confidence_l1(rec.recon_flip.image, images, rec.conf_photo[:, 1:], mask_f)
        feat_in = features(images)
        size = feat_in.shape[-2:]
        sig_f = F.interpolate(rec.conf_feature, size=size, mode="bilinear", align_corners=False)
        fmask = (F.adaptive_avg_pool2d(mask, size) > 0.99).to(mask.dtype)
        fmask_f = (F.adaptive_avg_pool2d(mask_f, size) > 0.99).to(mask.dtype)
        feat = confidence_l1(features(rec.recon.image), feat_in, sig_f[:, :1], fmask)
        feat_f = confidence_l1(features(rec.recon_flip.image), feat_in, sig_f[:, 1:], fmask_f)
        total = photo + self.lambda_f * feat + self.lambda_flip * (photo_f + self.lambda_f * feat_f)
        smooth = depth_curvature(rec.maps.depth, self.pixel_depth)
        if self.lambda_smooth > 0:
            total = total + self.lambda_smooth * smooth
        with torch.no_grad():
            l1 = ((rec.recon.image - images).abs().mean(1, keepdim=True) * mask).sum() / mask.sum().clamp(min=1)
        parts = {
            "loss": float(total.detach()), "photo": float(photo.detach()), "photo_flip": float(photo_f.detach()),
            "feat": float(feat.detach()), "feat_flip": float(feat_f.detach()), "l1": float(l1),
            "curvature": float(smooth.detach()),
        }
        return total, parts
