"""Stage-1 augmentations beyond the mirror: in-plane rotation (roll) and grey images.

Pure tensor functions plus :func:`augment_plan`, which draws a step's augmentation from the step
number (like :func:`latentface_sdk.train.stage1.flips_for`), so that a resumed run and every rank
see the same images as an uninterrupted one.

* Rotation: the shared training crops are aligned (their eye lines are level within a few degrees),
  so without it the roll latent never sees a rolled head. A crop turned in its plane by ``a`` degrees,
  with its five landmarks turned the same way, is a face rolled by ``a``; the landmark loss then asks
  the pose encoder for that roll.
* Grey: a share of the crops lose their colour (luma copied to the three channels), as in grey
  photo archives and expression data sets.
* Low resolution (:func:`low_resolution`): a share of the crops are shrunk to between 24 and 48 px
  and enlarged back, as the 48x48 faces of expression data sets (FER-2013) and small faces in
  photos reach the model. :func:`coarse` is the shrink and enlargement of one size.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

#: ITU-R BT.601 luma weights (R, G, B).
LUMA = (0.299, 0.587, 0.114)


def rotation_matrices(degrees: Tensor) -> Tensor:
    """2x2 rotation matrices (B, 2, 2) turning crop coordinates ``(u, v)`` by ``degrees`` (B,).

    In image coordinates (``v`` pointing down) a positive angle turns the content clockwise.
    """
    rad = degrees * (math.pi / 180.0)
    c, s = torch.cos(rad), torch.sin(rad)
    return torch.stack([torch.stack([c, -s], -1), torch.stack([s, c], -1)], -2)


def rotate_crops(images: Tensor, landmarks: Tensor | None, degrees: Tensor) -> tuple[Tensor, Tensor | None]:
    """Turn crops (B, C, H, W) and their landmarks (B, 5, 2) in ``[-1, 1]`` by ``degrees`` (B,).

    Pixels that come from outside the crop repeat its border. Landmarks follow the content exactly
    (NaN stays NaN). A zero angle returns the sample unchanged.
    """
    rot = rotation_matrices(degrees.to(images.dtype))  # content turned by R: output p shows input R^-1 p
    inv = rot.transpose(1, 2)
    theta = torch.cat([inv, torch.zeros(len(degrees), 2, 1, dtype=images.dtype)], dim=2).to(images.device)
    grid = F.affine_grid(theta, list(images.shape), align_corners=False)
    turned = F.grid_sample(images, grid, mode="bilinear", padding_mode="border", align_corners=False)
    keep = (degrees == 0).to(images.device).view(-1, 1, 1, 1)
    turned = torch.where(keep, images, turned)
    if landmarks is None:
        return turned, None
    pts = torch.einsum("bij,bkj->bki", rot.to(landmarks.dtype).to(landmarks.device), landmarks)
    return turned, pts


def to_grey(images: Tensor, mask: Tensor) -> Tensor:
    """Crops (B, 3, H, W) with the ones where ``mask`` (B,) is true replaced by their luma in all channels."""
    weights = torch.tensor(LUMA, dtype=images.dtype, device=images.device).view(1, 3, 1, 1)
    grey = (images * weights).sum(1, keepdim=True).expand_as(images)
    return torch.where(mask.to(images.device).view(-1, 1, 1, 1), grey, images)


@dataclass(frozen=True)
class AugmentPlan:
    """One step's draws: roll angles in degrees (B,), 0 where not turned, and which crops turn grey (B,)."""

    degrees: Tensor
    grey: Tensor
    #: side in pixels each crop is shrunk to before it is enlarged back (B,); 0 = kept as it is
    low_res: Tensor | None = None

    def apply(self, images: Tensor, landmarks: Tensor | None) -> tuple[Tensor, Tensor | None]:
        """The augmented batch and its landmarks."""
        if bool((self.degrees != 0).any()):
            images, landmarks = rotate_crops(images, landmarks, self.degrees)
        if bool(self.grey.any()):
            images = to_grey(images, self.grey)
        if self.low_res is not None and bool((self.low_res > 0).any()):
            images = low_resolution(images, self.low_res)
        return images, landmarks


def augment_plan(step: int, count: int, seed: int, rank: int = 0, *, world: int = 1, roll_deg: float = 0.0,
                 roll_p: float = 0.5, grey_p: float = 0.0, low_res_p: float = 0.0) -> AugmentPlan:
    """Draw a step's augmentation from the step number: with probability ``roll_p`` a crop turns by an
    angle uniform in ``[-roll_deg, roll_deg]``; with probability ``grey_p`` it turns grey; with
    probability ``low_res_p`` it loses its detail above a side drawn uniformly in 24..48 px.

    The draws are made for the whole global batch (``count`` crops on each of ``world`` ranks) and each
    rank takes its slice, so ``world`` processes see what one process with the global batch sees.
    """
    if not 0 <= rank < world:
        raise ValueError(f"rank {rank} outside a world of {world}")
    total = count * world
    gen = torch.Generator().manual_seed(seed * 104_729 + step * 37 + 1)
    turn = torch.rand(total, generator=gen) < roll_p
    angles = (torch.rand(total, generator=gen) * 2 - 1) * roll_deg
    grey = torch.rand(total, generator=gen) < grey_p
    degrees = torch.where(turn & (roll_deg > 0), angles, torch.zeros(total))
    mine = slice(rank * count, (rank + 1) * count)
    low_res = None
    if low_res_p > 0:  # drawn after the others, so that the earlier draws stay what they were
        shrink = torch.rand(total, generator=gen) < low_res_p
        sides = torch.randint(24, 49, (total,), generator=gen)
        low_res = torch.where(shrink, sides, torch.zeros_like(sides))[mine]
    return AugmentPlan(degrees=degrees[mine], grey=grey[mine], low_res=low_res)


def coarse(images: Tensor, size: int = 32) -> Tensor:
    """Images (B, C, H, W) with their detail above ``size`` px removed: area-shrunk, bilinearly enlarged."""
    h, w = images.shape[-2:]
    small = F.interpolate(images, size=(size, size), mode="area")
    return F.interpolate(small, size=(h, w), mode="bilinear", align_corners=False).clamp(0.0, 1.0)


def low_resolution(images: Tensor, sides: Tensor) -> Tensor:
    """Crops (B, C, H, W) with crop ``i`` area-shrunk to ``sides[i]`` px and bilinearly enlarged back.

    ``sides[i] <= 0`` (or at least the crop's size) leaves crop ``i`` unchanged.
    """
    out = images.clone()
    size = images.shape[-1]
    for side in sorted({int(s) for s in sides.tolist()}):
        if side <= 0 or side >= size:
            continue
        rows = (sides == side).nonzero().flatten().to(images.device)
        out[rows] = coarse(images[rows], side)
    return out
