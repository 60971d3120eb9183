"""Stage-1 encoders (paper appendix B, Figures 10 and 11).

* :class:`FeatureEncoder`: the texture and shape encoders. Fully convolutional (strided 4x4 convolutions
  with group normalisation and LeakyReLU(0.2)) from a 64x64 image down to a ``latent_dim`` vector.
* :class:`NumericalEncoder`: the pose and light encoders. Strided convolutions with ReLU down to a small
  vector squashed by tanh to [-1, 1]; :class:`~latentface_sdk.models.autoencoder.LatentAutoencoder`
  maps it to the parameter ranges.

``width`` scales the channels (``width, 2 width, 4 width, 8 width``), so a CPU-sized model and the
paper-sized one (width 64) share the code.
"""

from __future__ import annotations

from torch import Tensor, nn


def _groups(channels: int) -> int:
    return max(1, channels // 16)


def _trunk(width: int) -> list[nn.Module]:
    """Strided 4x4 convolutions with group norm and LeakyReLU: (B, 3, 64, 64) -> (B, 8 width, 1, 1)."""
    chans = [3, width, width * 2, width * 4, width * 8]
    layers: list[nn.Module] = []
    for cin, cout in zip(chans[:-1], chans[1:], strict=True):
        layers += [nn.Conv2d(cin, cout, 4, 2, 1, bias=False), nn.GroupNorm(_groups(cout), cout),
                   nn.LeakyReLU(0.2, inplace=True)]
    return layers + [nn.Conv2d(chans[-1], chans[-1], 4, 1, 0), nn.LeakyReLU(0.2, inplace=True)]


class FeatureEncoder(nn.Module):
    """Image (B, 3, 64, 64) in [-1, 1] -> latent (B, latent_dim)."""

    def __init__(self, latent_dim: int = 256, width: int = 32) -> None:
        super().__init__()
        self.net = nn.Sequential(*_trunk(width), nn.Conv2d(width * 8, latent_dim, 1))
        self.latent_dim = latent_dim

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x).flatten(1)

    def forward_blocks(self, x: Tensor) -> tuple[Tensor, list[Tensor]]:
        """The latent and the map after each of the four strided blocks (its activation included).

        Block ``k`` (1-4) gives ``(B, width * 2**(k-1), 64 / 2**k, 64 / 2**k)``: what the encoder sees at
        that scale before the latent compresses it.
        """
        return _run_blocks(self.net, x)


def _run_blocks(net: nn.Sequential, x: Tensor) -> tuple[Tensor, list[Tensor]]:
    """Run ``net``; keep the output of each activation that follows a strided convolution."""
    maps: list[Tensor] = []
    strided = False
    for layer in net:
        x = layer(x)
        if isinstance(layer, nn.Conv2d):
            strided = layer.stride != (1, 1)
        elif strided and isinstance(layer, (nn.ReLU, nn.LeakyReLU)):
            maps.append(x)
            strided = False
    return x.flatten(1), maps


class NumericalEncoder(nn.Module):
    """Image (B, 3, 64, 64) in [-1, 1] -> (B, out_dim) in [-1, 1] (tanh)."""

    def __init__(self, out_dim: int, width: int = 32) -> None:
        super().__init__()
        chans = [3, width, width * 2, width * 4, width * 8]
        layers: list[nn.Module] = []
        for cin, cout in zip(chans[:-1], chans[1:], strict=True):
            layers += [nn.Conv2d(cin, cout, 4, 2, 1), nn.ReLU(inplace=True)]
        layers += [nn.Conv2d(chans[-1], chans[-1], 4, 1, 0), nn.ReLU(inplace=True),
                   nn.Conv2d(chans[-1], out_dim, 1), nn.Tanh()]
        self.net = nn.Sequential(*layers)

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x).flatten(1)

    def forward_blocks(self, x: Tensor) -> tuple[Tensor, list[Tensor]]:
        """The output and the map after each of the four strided blocks (see :class:`FeatureEncoder`)."""
        return _run_blocks(self.net, x)

