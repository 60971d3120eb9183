"""Stage-1 decoders (paper appendix B, Figures 12 and 13).

* :class:`MapDecoder`: latent (B, latent_dim) -> a 64x64 map with ``out_channels`` channels in [-1, 1]
  (tanh). Transposed convolutions double the resolution from 4x4 to 64x64, each followed by a 3x3
  convolution, group normalisation and ReLU; channels halve as the resolution grows. The albedo decoder
  has 3 channels, the depth decoder 1.
* :class:`ConfidenceNet`: image -> the two confidence maps of the self-calibrated losses (eq. 10): a
  photometric pair (B, 2, 64, 64) for the reconstruction and its flipped twin, and a feature-level pair
  (B, 2, 16, 16) on the shorter path. Softplus keeps them positive.
"""

from __future__ import annotations

from torch import Tensor, nn
from torch.nn import functional as F

from .encoders import _groups


def _up(cin: int, cout: int) -> list[nn.Module]:
    return [
        nn.ConvTranspose2d(cin, cout, 4, 2, 1, bias=False), nn.GroupNorm(_groups(cout), cout),
        nn.ReLU(inplace=True),
        nn.Conv2d(cout, cout, 3, 1, 1, bias=False), nn.GroupNorm(_groups(cout), cout), nn.ReLU(inplace=True),
    ]


class MapDecoder(nn.Module):
    """Latent (B, latent_dim) -> map (B, out_channels, 64, 64) in [-1, 1]."""

    def __init__(self, out_channels: int, latent_dim: int = 256, width: int = 32) -> None:
        super().__init__()
        c4, c8, c16, c32, c64 = width * 8, width * 4, width * 2, width, max(width // 2, 4)
        layers: list[nn.Module] = [
            nn.ConvTranspose2d(latent_dim, c4, 4, 1, 0), nn.ReLU(inplace=True),
            nn.Conv2d(c4, c4, 3, 1, 1, bias=False), nn.GroupNorm(_groups(c4), c4), nn.ReLU(inplace=True),
        ]
        for cin, cout in ((c4, c8), (c8, c16), (c16, c32), (c32, c64)):
            layers += _up(cin, cout)
        layers += [nn.Conv2d(c64, out_channels, 5, 1, 2), nn.Tanh()]
        self.net = nn.Sequential(*layers)

    def forward(self, z: Tensor) -> Tensor:
        return self.net(z[:, :, None, None])


class ConfidenceNet(nn.Module):
    """Image (B, 3, 64, 64) in [-1, 1] -> (photometric (B, 2, 64, 64), feature (B, 2, 16, 16)) confidences."""

    def __init__(self, width: int = 32, bottleneck: int = 128) -> None:
        super().__init__()
        chans = [3, width, width * 2, width * 4, width * 8]
        enc: list[nn.Module] = []
        for cin, cout in zip(chans[:-1], chans[1:], strict=True):
            enc += [nn.Conv2d(cin, cout, 4, 2, 1, bias=False), nn.GroupNorm(_groups(cout), cout),
                    nn.LeakyReLU(0.2, inplace=True)]
        enc += [nn.Conv2d(chans[-1], bottleneck, 4, 1, 0), nn.ReLU(inplace=True)]
        self.encoder = nn.Sequential(*enc)
        c4, c8, c16, c32 = width * 8, width * 4, width * 2, width
        self.to16 = nn.Sequential(
            nn.ConvTranspose2d(bottleneck, c4, 4, 1, 0), nn.ReLU(inplace=True), *_up(c4, c8), *_up(c8, c16)
        )
        self.feature_head = nn.Conv2d(c16, 2, 3, 1, 1)
        self.to64 = nn.Sequential(*_up(c16, c32), *_up(c32, max(c32 // 2, 4)))
        self.photo_head = nn.Conv2d(max(c32 // 2, 4), 2, 5, 1, 2)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        h16 = self.to16(self.encoder(x))
        feature = F.softplus(self.feature_head(h16)) + 1e-3
        photo = F.softplus(self.photo_head(self.to64(h16))) + 1e-3
        return photo, feature
