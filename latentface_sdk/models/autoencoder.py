"""The stage-1 model: image -> latents (texture, shape, pose, light) -> maps (albedo, depth).

No rendering happens here (that is :mod:`latentface_sdk.render`); this module only holds the networks
and maps their raw outputs to physical quantities:

* pose ``(tx, ty, tz, yaw, pitch, roll)``: tanh outputs scaled by the config's translation and rotation
  ranges (angles in degrees);
* light ``(ambient, diffuse, dx, dy)``: ambient and diffuse in [0, 1], direction components in [-1, 1];
* albedo in [0, 1] (B, 3, 64, 64);
* depth (B, 64, 64): the decoder's tanh map, centred on its mean, scaled to the config's depth range.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from ..config import AutoencoderConfig
from .decoders import ConfidenceNet, MapDecoder
from .encoders import FeatureEncoder, NumericalEncoder


@dataclass
class Latents:
    """Stage-1 latents of a batch: ``texture`` and ``shape`` (B, latent_dim), ``pose`` (B, 6), ``light`` (B,
    4)."""

    texture: Tensor
    shape: Tensor
    pose: Tensor
    light: Tensor


@dataclass
class Maps:
    """Decoded canonical maps: ``albedo`` (B, 3, H, W) in [0, 1] and ``depth`` (B, H, W)."""

    albedo: Tensor
    depth: Tensor


def face_bump(size: int) -> Tensor:
    """A unit ellipsoidal bump (size, size) over the face region of a crop: -1 at its apex, 0 outside.

    Negative values are closer to the camera. The ellipse is centred slightly below the crop's centre
    (the nose) with half-axes 0.75 (across) and 0.95 (down) in ``[-1, 1]`` image units.
    """
    grid = (torch.arange(size, dtype=torch.float32) * 2 + 1) / size - 1
    vv, uu = torch.meshgrid(grid, grid, indexing="ij")
    inside = (1.0 - (uu / 0.75) ** 2 - ((vv - 0.05) / 0.95) ** 2).clamp(min=0.0)
    return -inside.sqrt()


class LatentAutoencoder(nn.Module):
    """Encoders and decoders of the 3D latent autoencoder (paper section 2.2, appendix B)."""

    def __init__(self, cfg: AutoencoderConfig | None = None) -> None:
        super().__init__()
        self.cfg = cfg or AutoencoderConfig()
        self.cfg.validate()
        w, d = self.cfg.width, self.cfg.latent_dim
        self.texture_encoder = FeatureEncoder(d, w)
        self.shape_encoder = FeatureEncoder(d, w)
        self.pose_encoder = NumericalEncoder(self.cfg.pose_dim, w)
        self.light_encoder = NumericalEncoder(self.cfg.light_dim, w)
        dw = self.cfg.decoder_width
        self.albedo_decoder = MapDecoder(3, d, dw)
        self.depth_decoder = MapDecoder(1, d, dw)
        self.confidence = ConfidenceNet(dw)
        self._init_flat_frontal()
        c = self.cfg
        self.pose_scale: Tensor
        self.register_buffer(
            "pose_scale",
            torch.tensor([c.max_translation_xy, c.max_translation_xy, c.max_translation_z,
                          c.max_rotation_deg, c.max_rotation_deg, c.max_rotation_deg]),
            persistent=False,
        )
        self.depth_prior: Tensor
        self.register_buffer("depth_prior", self.cfg.depth_prior * face_bump(self.cfg.image_size),
                             persistent=False)

    def encoders(self) -> list[nn.Module]:
        """The four image encoders: texture, shape, pose, light."""
        return [self.texture_encoder, self.shape_encoder, self.pose_encoder, self.light_encoder]

    def _init_flat_frontal(self) -> None:
        """Start from a flat canonical depth seen frontally (zeroed last layers of depth and pose).

        With default initialisation the depth decoder starts as high-frequency noise (neighbouring
        pixels differ by ~0.04, slopes of ~13 pixel widths): rotated, such a surface is a field of
        slivers that the renderer must rasterise and the photometric loss cannot explain. From a flat,
        frontal start, relief and rotation grow only as the reconstruction asks for them.
        """
        for head in (self.depth_decoder.net[-2], self.pose_encoder.net[-2]):
            assert isinstance(head, nn.Conv2d)
            nn.init.zeros_(head.weight)
            if head.bias is not None:
                nn.init.zeros_(head.bias)

    @staticmethod
    def normalize(images: Tensor) -> Tensor:
        """Images in [0, 1] -> network input in [-1, 1]."""
        return images * 2.0 - 1.0

    def encode(self, images: Tensor) -> Latents:
        """Encode images (B, 3, 64, 64) in [0, 1]."""
        x = self.normalize(images)
        return Latents(
            texture=self.texture_encoder(x),
            shape=self.shape_encoder(x),
            pose=self.map_pose(self.pose_encoder(x)),
            light=self.map_light(self.light_encoder(x)),
        )

    def map_pose(self, raw: Tensor) -> Tensor:
        """tanh outputs (B, 6) -> pose in translation units and degrees."""
        return raw * self.pose_scale

    @staticmethod
    def map_light(raw: Tensor) -> Tensor:
        """tanh outputs (B, 4) -> (ambient, diffuse) in [0, 1] and direction (dx, dy) in [-1, 1]."""
        return torch.cat([(raw[:, :2] + 1.0) / 2.0, raw[:, 2:]], dim=1)

    def decode_albedo(self, texture: Tensor) -> Tensor:
        """Texture latent (B, D) -> albedo (B, 3, 64, 64) in [0, 1]."""
        return (self.albedo_decoder(texture) + 1.0) / 2.0

    def decode_depth(self, shape: Tensor) -> Tensor:
        """Shape latent (B, D) -> depth (B, 64, 64) in [depth_min, depth_max], centred on the range middle."""
        raw = self.depth_decoder(shape)[:, 0] + self.depth_prior
        raw = raw - raw.mean(dim=(1, 2), keepdim=True)
        c = self.cfg
        mid, half = (c.depth_min + c.depth_max) / 2.0, (c.depth_max - c.depth_min) / 2.0
        return (mid + raw * half).clamp(c.depth_min, c.depth_max)

    def decode(self, texture: Tensor, shape: Tensor) -> Maps:
        """Decode both canonical maps."""
        return Maps(albedo=self.decode_albedo(texture), depth=self.decode_depth(shape))

    def forward(self, images: Tensor) -> tuple[Latents, Maps]:
        latents = self.encode(images)
        return latents, self.decode(latents.texture, latents.shape)
