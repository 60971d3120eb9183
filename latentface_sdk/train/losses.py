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
from ..render import geometry as geo
from ..render.geometry import flip_horizontal
from ..render.renderer import FaceRenderer, Rendered, Shaded

_SQRT2 = math.sqrt(2.0)


def confidence_l1(pred: Tensor, target: Tensor, sigma: Tensor, mask: Tensor | None = None,
                  weight: Tensor | None = None) -> Tensor:
    """Eq. 10: negative log-likelihood of a Laplacian with scale ``sigma`` over the masked pixels.

    ``pred``/``target`` (B, C, H, W); ``sigma``, ``mask`` and ``weight`` (B, 1, H, W). The per-pixel error is
    the mean absolute difference over channels; the loss is ``sqrt(2) |d| / sigma + log(sqrt(2) sigma)``
    averaged over the mask (all pixels without one), each pixel counted ``weight`` times (default 1).
    """
    err = (pred - target).abs().mean(dim=1, keepdim=True)
    nll = _SQRT2 * err / sigma + torch.log(_SQRT2 * sigma)
    if mask is None and weight is None:
        return nll.mean()
    w = torch.ones_like(nll) if mask is None else mask.expand_as(nll)
    if weight is not None:
        w = w * weight
    return (nll * w).sum() / w.sum().clamp(min=1.0)


def region_points(landmarks: Tensor) -> Tensor:
    """Where expression shows, from MTCNN's five landmarks (B, 5, 2) in ``[-1, 1]`` -> (B, 8, 2).

    The two eyes, two brows (above each eye by 0.45 interocular distances, perpendicular to the eye
    line, so they follow a rolled head), the two mouth corners, the mouth's centre and the nose tip.
    """
    eyes, nose, mouth = landmarks[:, :2], landmarks[:, 2:3], landmarks[:, 3:5]
    across = eyes[:, 1] - eyes[:, 0]
    # the eye line turned a quarter, towards the brows
    up = torch.stack([across[:, 1], -across[:, 0]], dim=-1)
    brows = eyes + 0.45 * up.unsqueeze(1)
    return torch.cat([eyes, brows, mouth, mouth.mean(dim=1, keepdim=True), nose], dim=1)


def region_weights(landmarks: Tensor, size: int, strength: float, sigma: float = 0.3) -> Tensor:
    """Pixel weights (B, 1, size, size): ``1 + strength`` at the eyes, brows, mouth and nose, 1 far away.

    Each point of :func:`region_points` spreads as a Gaussian of ``sigma`` interocular distances; a pixel
    takes the largest. Faces without landmarks (NaN) get weight 1 everywhere. The mouth, eyes and brows
    that carry an expression are a few dozen pixels of a 64x64 crop: this lets a photometric loss see them.
    """
    b = landmarks.shape[0]
    valid = torch.isfinite(landmarks).all(dim=-1).all(dim=-1)
    pts = region_points(torch.nan_to_num(landmarks, nan=0.0))
    iod = (pts[:, 1] - pts[:, 0]).norm(dim=-1).clamp(min=1e-3)  # (B,)
    axis = (torch.arange(size, device=landmarks.device, dtype=landmarks.dtype) + 0.5) / size * 2.0 - 1.0
    gy, gx = torch.meshgrid(axis, axis, indexing="ij")
    grid = torch.stack([gx, gy], dim=-1).view(1, 1, size, size, 2)
    d2 = (grid - pts.view(b, -1, 1, 1, 2)).pow(2).sum(-1)  # (B, K, H, W)
    bump = torch.exp(-d2 / (2 * (sigma * iod).view(b, 1, 1, 1) ** 2)).amax(dim=1, keepdim=True)
    bump = bump * valid.view(b, 1, 1, 1).to(bump.dtype)
    return 1.0 + strength * bump


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
    """Encode, decode, shade and render ``images`` (B, 3, 64, 64) in [0, 1], and its flipped twin
    (eq. 4, 5)."""
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


def depth_at(depth: Tensor, keypoints: Tensor, blur: int = 1) -> Tensor:
    """The depth map (B, H, W) read bilinearly at canonical image positions (K, 2) -> (B, K).

    ``blur`` > 1 reads the mean depth of a ``blur`` x ``blur`` pixel neighbourhood (odd sizes) instead of
    one point: a loss on it moves a patch of the surface, not a single pixel into a pit.
    """
    if blur > 1:
        depth = F.avg_pool2d(depth.unsqueeze(1), blur, stride=1, padding=blur // 2,
                             count_include_pad=False).squeeze(1)
    b, k = depth.shape[0], keypoints.shape[0]
    grid = keypoints.to(depth).view(1, 1, k, 2).expand(b, 1, k, 2)
    z = F.grid_sample(depth.unsqueeze(1), grid, mode="bilinear", padding_mode="border", align_corners=False)
    return z.view(b, k)


def project_keypoints(depth: Tensor, pose: Tensor, keypoints: Tensor, focal: float, centre_depth: float,
                      blur: int = 1) -> Tensor:
    """Where canonical keypoints land in the posed view: (B, K, 2) image coordinates in ``[-1, 1]``.

    ``keypoints`` (K, 2) are canonical-view image positions; the depth map (B, H, W) is read there
    (bilinear), the points are unprojected, moved by ``pose`` (B, 6) and projected with the camera,
    exactly as the renderer moves the mesh vertices. ``blur``: see :func:`depth_at`.
    """
    z = depth_at(depth, keypoints, blur).unsqueeze(-1)
    uv = keypoints.to(depth).unsqueeze(0)
    points = torch.cat([uv * z / focal, z], dim=-1)
    return geo.project(geo.apply_pose(points, pose, centre_depth), focal)


def landmark_l1(projected: Tensor, landmarks: Tensor) -> Tensor:
    """Mean absolute distance (per coordinate) between projected keypoints and landmarks (B, K, 2).

    Faces whose landmarks are not finite (MTCNN gave none) do not count; without any, the loss is 0.
    """
    valid = torch.isfinite(landmarks).all(dim=-1).all(dim=-1)
    if not bool(valid.any()):
        return projected.sum() * 0.0
    return (projected[valid] - landmarks[valid]).abs().mean()


def random_light(batch: int, like: Tensor) -> Tensor:
    """Random lights (B, 4) = (ambient, diffuse, dx, dy) spread over the range real photos show."""
    r = torch.rand(batch, 4, device=like.device, dtype=like.dtype)
    ambient = 0.1 + 0.5 * r[:, :1]
    diffuse = 0.2 + 0.7 * r[:, 1:2]
    direction = (r[:, 2:] * 2.0 - 1.0) * 0.8
    return torch.cat([ambient, diffuse, direction], dim=1)


@dataclass
class Relit:
    """Faces re-rendered under known lights (:func:`relight`) and what the encoders read from them."""

    light: Tensor  # (n, 4) the lights rendered with
    images: Tensor  # (n, 3, H, W)
    latents: Latents | None = None  # encoder outputs on ``images`` (filled by the training forward)


def relight(renderer: FaceRenderer, rec: Reconstruction, images: Tensor, count: int) -> Relit:
    """Re-render the first ``count`` reconstructed faces under random known lights.

    Albedo, depth and pose are held fixed (detached); the render is pasted over the input's background.
    """
    n = min(count, images.shape[0])
    albedo, depth = rec.maps.albedo[:n].detach(), rec.maps.depth[:n].detach()
    pose = rec.latents.pose[:n].detach()
    light = random_light(n, albedo)
    view = renderer.render(renderer.shade(albedo, depth, light).image, depth, pose)
    out = (view.image * view.mask + images[:n] * (1.0 - view.mask)).clamp(0.0, 1.0)
    return Relit(light=light, images=out)


def _relative_mse(pred: Tensor, target: Tensor) -> Tensor:
    target = target.detach()
    return (pred - target).pow(2).mean() / target.pow(2).mean().clamp(min=1e-6)


def light_cycle_loss(rec: Reconstruction, relit: Relit) -> tuple[Tensor, dict[str, float]]:
    """Light-cycle loss (not in the paper): the encoders must invert the renderer's lighting.

    On faces re-rendered under known lights (:func:`relight`), the light encoder must recover the light
    (L1) and the texture, shape and pose encoders must give what they gave for the original image
    (relative mean squared difference; pose in units of 10 degrees): light goes to the light latent
    and nowhere else, the split that the photometric loss alone leaves ambiguous between albedo
    and shading.
    """
    if relit.latents is None:
        raise ValueError("light_cycle_loss needs the encoder outputs on the relit faces")
    enc, n = relit.latents, relit.light.shape[0]
    lat = rec.latents
    light_err = (enc.light - relit.light).abs().mean()
    tex_err = _relative_mse(enc.texture, lat.texture[:n])
    shape_err = _relative_mse(enc.shape, lat.shape[:n])
    pose_err = ((enc.pose - lat.pose[:n].detach()) / 10.0).abs().mean()
    total = light_err + tex_err + shape_err + pose_err
    parts = {"cycle_light": float(light_err.detach()), "cycle_texture": float(tex_err.detach()),
             "cycle_shape": float(shape_err.detach()), "cycle_pose": float(pose_err.detach())}
    return total, parts


class Stage1Forward(nn.Module):
    """The whole stage-1 forward pass as one module (so that DistributedDataParallel can wrap it).

    ``forward(images)`` returns the :class:`Reconstruction` and, when ``cycle_count > 0``, the
    :class:`Relit` faces with their encoder outputs. Every use of the autoencoder's parameters
    happens inside this one call.
    """

    def __init__(self, model: LatentAutoencoder, renderer: FaceRenderer, cycle_count: int = 0) -> None:
        super().__init__()
        self.model = model
        self.renderer = renderer
        self.cycle_count = cycle_count

    def forward(self, images: Tensor) -> tuple[Reconstruction, Relit | None]:
        rec = reconstruct(self.model, self.renderer, images)
        if self.cycle_count <= 0:
            return rec, None
        relit = relight(self.renderer, rec, images, self.cycle_count)
        relit.latents = self.model.encode(relit.images)
        return rec, relit


@dataclass
class Stage1Loss:
    """Weights of eq. 11."""

    lambda_f: float = 1.0
    lambda_flip: float = 0.5
    #: weight of :func:`depth_curvature` (0 = the paper's loss; the shipped recipe uses a small prior)
    lambda_smooth: float = 0.0
    #: depth of one pixel's width at the canonical distance, to express curvature in slope units
    pixel_depth: float = 2 * math.tan(math.radians(5.0)) / 64
    #: weight of the landmark reprojection loss (0 = the paper's loss); needs ``keypoints``
    lambda_landmark: float = 0.0
    #: canonical keypoints (5, 2) of :func:`latentface_sdk.landmarks.canonical_keypoints`
    keypoints: Tensor | None = None
    #: camera of the renderer, for the keypoint projection
    focal: float = 1.0 / math.tan(math.radians(5.0))
    centre_depth: float = 1.0
    #: extra weight of the photometric loss at the eyes, brows and mouth (:func:`region_weights`; 0 = off)
    region_weight: float = 0.0
    #: the landmark loss reads the depth as the mean of this many pixels square
    #: (:func:`depth_at`; 1 = a point)
    keypoint_blur: int = 1
    #: False: the photometric losses ignore the learned confidence map (a plain masked L1, ``sigma = 1``),
    #: so no pixel (the mouth and eyes included) can be discounted as uncertain
    photo_confidence: bool = True
    #: extra weight of the feature-level loss at the eyes, brows and mouth (:func:`region_weights` at the
    #: feature map's size; 0 = off): a feature loss at the landmark regions
    feature_region_weight: float = 0.0

    def __call__(self, rec: Reconstruction, images: Tensor, features: nn.Module,
                 landmarks: Tensor | None = None) -> tuple[Tensor, dict[str, float]]:
        """Total loss and its parts (as floats, for logs); ``landmarks`` (B, 5, 2) for the landmark loss."""
        mask = rec.recon.mask.detach()
        mask_f = rec.recon_flip.mask.detach()
        weight = None
        if self.region_weight > 0 and landmarks is not None:
            weight = region_weights(landmarks.to(images), images.shape[-1], self.region_weight)
        # Without the confidence sigma is 1; the map stays in the graph with a zero gradient, so that
        # DistributedDataParallel, which waits for every parameter's gradient, still gets its head's.
        sig_p = rec.conf_photo if self.photo_confidence else 1.0 + 0.0 * rec.conf_photo
        photo = confidence_l1(rec.recon.image, images, sig_p[:, :1], mask, weight)
        photo_f = confidence_l1(rec.recon_flip.image, images, sig_p[:, 1:], mask_f, weight)
        feat_in = features(images)
        size = feat_in.shape[-2:]
        sig_f = F.interpolate(rec.conf_feature, size=size, mode="bilinear", align_corners=False)
        fmask = (F.adaptive_avg_pool2d(mask, size) > 0.99).to(mask.dtype)
        fmask_f = (F.adaptive_avg_pool2d(mask_f, size) > 0.99).to(mask.dtype)
        fweight = None
        if self.feature_region_weight > 0 and landmarks is not None:
            fweight = region_weights(landmarks.to(images), size[-1], self.feature_region_weight)
        feat = confidence_l1(features(rec.recon.image), feat_in, sig_f[:, :1], fmask, fweight)
        feat_f = confidence_l1(features(rec.recon_flip.image), feat_in, sig_f[:, 1:], fmask_f, fweight)
        total = photo + self.lambda_f * feat + self.lambda_flip * (photo_f + self.lambda_f * feat_f)
        smooth = depth_curvature(rec.maps.depth, self.pixel_depth)
        if self.lambda_smooth > 0:
            total = total + self.lambda_smooth * smooth
        lm_part: dict[str, float] = {}
        if self.lambda_landmark > 0 and landmarks is not None and self.keypoints is not None:
            projected = project_keypoints(rec.maps.depth, rec.latents.pose, self.keypoints, self.focal,
                                          self.centre_depth, self.keypoint_blur)
            lm = landmark_l1(projected, landmarks.to(projected))
            total = total + self.lambda_landmark * lm
            lm_part = {"landmark": float(lm.detach())}
        with torch.no_grad():
            l1 = (((rec.recon.image - images).abs().mean(1, keepdim=True) * mask).sum()
                  / mask.sum().clamp(min=1))
        parts = {
            "loss": float(total.detach()), "photo": float(photo.detach()),
            "photo_flip": float(photo_f.detach()), "feat": float(feat.detach()),
            "feat_flip": float(feat_f.detach()), "l1": float(l1),
            "curvature": float(smooth.detach()), **lm_part,
        }
        return total, parts
