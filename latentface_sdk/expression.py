"""Expression features: what the stage-1 encoders see of a face's expression, as one vector per face.

The 256-d texture and shape latents are made to redraw a 64x64 face through a small decoder; the
encoders' intermediate maps keep more of the mouth, eyes and brows than the latents do (measured with
the FER-2013 linear probe in docs/results.md). :func:`expression_features` reads those maps, pools each
on a coarse grid (so the vector keeps *where* on the face a feature fired) and puts them beside the
latents. :data:`EXPRESSION_READOUT` is the layout measured best; :func:`readout_layout` names the
columns.

Pure functions of an autoencoder and a batch: :meth:`latentface_sdk.FaceEncoder.expression_features`
runs them over images with the usual crop pipeline and typed rows.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from .models.autoencoder import LatentAutoencoder
from .models.encoders import FeatureEncoder, NumericalEncoder

__all__ = ["EXPRESSION_READOUT", "MapReadout", "expression_features", "readout_layout", "readout_name"]


@dataclass(frozen=True)
class MapReadout:
    """One pooled encoder map: ``encoder`` (``"texture"``, ``"shape"``, ``"pose"`` or ``"light"``), its
    strided ``block`` (1-4, block ``k`` has ``width * 2**(k-1)`` channels at ``64 / 2**k`` px) average-pooled
    to ``grid`` x ``grid``."""

    encoder: str
    block: int
    grid: int

    @property
    def name(self) -> str:
        """``"texture.block3@4x4"``: the column group's name in :func:`readout_layout`."""
        return f"{self.encoder}.block{self.block}@{self.grid}x{self.grid}"


#: The readout of :meth:`FaceEncoder.expression_features`: the texture and shape encoders' block-3 maps
#: (8x8) pooled to 2x2 and their block-4 maps at their full 4x4, and the pose and light encoders' block-3
#: and block-4 maps pooled to 2x2: 12,800 numbers with the latents at width 32 (docs/results.md compares
#: the layouts that were measured: ``experiments/expression_readout.py``).
EXPRESSION_READOUT: tuple[MapReadout, ...] = (
    MapReadout("texture", 3, 2), MapReadout("shape", 3, 2),
    MapReadout("texture", 4, 4), MapReadout("shape", 4, 4),
    MapReadout("pose", 3, 2), MapReadout("light", 3, 2),
    MapReadout("pose", 4, 2), MapReadout("light", 4, 2),
)

_ENCODERS = ("texture", "shape", "pose", "light")


def _check(readout: Sequence[MapReadout], size: int) -> None:
    for r in readout:
        if r.encoder not in _ENCODERS:
            raise ValueError(f"readout encoder must be one of {_ENCODERS} (got {r.encoder!r})")
        if not 1 <= r.block <= 4:
            raise ValueError(f"readout block must be 1-4 (got {r.block})")
        side = size >> r.block
        if r.grid < 1 or r.grid > side:
            raise ValueError(f"block {r.block} is {side}x{side}: grid must be 1-{side} (got {r.grid})")


def readout_name(readout: Sequence[MapReadout] = EXPRESSION_READOUT, mirror: bool = False) -> str:
    """A readout as text (``"texture.block3@2x2+...[+mirror]"``): what cached features depend on."""
    return "+".join([r.name for r in readout] + (["mirror"] if mirror else []))


def readout_layout(autoencoder: LatentAutoencoder,
                   readout: Sequence[MapReadout] = EXPRESSION_READOUT) -> dict[str, tuple[int, int]]:
    """Column ranges ``name -> (start, stop)`` of :func:`expression_features`' vector, in order.

    ``"texture"`` and ``"shape"`` are the latents ``Z_t`` and ``Z_s``; the rest are named by
    :attr:`MapReadout.name`.
    """
    cfg = autoencoder.cfg
    _check(readout, cfg.image_size)
    widths = [("texture", cfg.latent_dim), ("shape", cfg.latent_dim)]
    widths += [(r.name, cfg.width * 2 ** (r.block - 1) * r.grid * r.grid) for r in readout]
    layout: dict[str, tuple[int, int]] = {}
    start = 0
    for name, width in widths:
        if name in layout:
            raise ValueError(f"readout names {name} twice")
        layout[name] = (start, start + width)
        start += width
    return layout


def expression_features(autoencoder: LatentAutoencoder, images: Tensor,
                        readout: Sequence[MapReadout] = EXPRESSION_READOUT, *,
                        mirror: bool = False) -> Tensor:
    """Expression features ``(B, D)`` of face crops ``images`` (B, 3, 64, 64) in ``[0, 1]``.

    ``[Z_t, Z_s]`` followed by each :class:`MapReadout`'s pooled map (channels outermost, then grid rows
    and columns), laid out as :func:`readout_layout` says. ``mirror=True`` returns the mean of the
    features of each crop and of its mirror image (twice the work; less noise from a face's two sides).
    """
    _check(readout, autoencoder.cfg.image_size)
    if mirror:
        both = expression_features(autoencoder, torch.cat([images, images.flip(-1)]), readout)
        return (both[: len(images)] + both[len(images):]) / 2
    x = autoencoder.normalize(images)
    encoders: dict[str, FeatureEncoder | NumericalEncoder] = {
        "texture": autoencoder.texture_encoder, "shape": autoencoder.shape_encoder,
        "pose": autoencoder.pose_encoder, "light": autoencoder.light_encoder}
    latents: dict[str, Tensor] = {}
    blocks: dict[str, list[Tensor]] = {}
    for which in ["texture", "shape", *sorted({r.encoder for r in readout} - {"texture", "shape"})]:
        latents[which], blocks[which] = encoders[which].forward_blocks(x)
    parts = [latents["texture"], latents["shape"]]
    parts += [F.adaptive_avg_pool2d(blocks[r.encoder][r.block - 1], r.grid).flatten(1) for r in readout]
    return torch.cat(parts, dim=1)
