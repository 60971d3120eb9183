"""Widen a trained autoencoder's encoders without changing what they compute (issue 24's capacity lever).

A wider encoder cannot load a narrower one's weights, and training it from scratch costs a full stage-1
run. :func:`widen_encoders` instead builds the wider model around the trained one: every old channel keeps
its weights, the new channels get a fresh random start, and the weights that would carry the new channels
into the next layer start at zero. The wider model then computes exactly what the trained one did (to
float rounding) and training can continue from it, the new channels growing in as the next layers' zero
weights move away from zero (the "zero-init" variant of Net2WiderNet).

Group normalisation stays exact because the new channels are appended at the end and every group holds
16 channels at both widths (``width`` a multiple of 16): the old groups keep their members and statistics
and the new channels form groups of their own.
"""

from __future__ import annotations

import dataclasses

import torch
from torch import nn

from latentface_sdk.errors import ConfigError
from latentface_sdk.models.autoencoder import LatentAutoencoder

__all__ = ["widen_encoders"]

_GROUP = 16


def _grow(new: torch.Tensor, old: torch.Tensor) -> None:
    """Copy ``old`` into the leading block of ``new``; zero the new inputs of the old outputs."""
    index = tuple(slice(0, n) for n in old.shape)
    if new.dim() >= 2:  # (out, in, ...): the old outputs ignore the new inputs
        new[: old.shape[0], old.shape[1]:] = 0
    new[index] = old


def _widen_module(new: nn.Module, old: nn.Module) -> None:
    for (name, p_new), (_, p_old) in zip(new.named_parameters(), old.named_parameters(), strict=True):
        if p_new.dim() != p_old.dim() or any(a < b for a, b in zip(p_new.shape, p_old.shape, strict=True)):
            raise ValueError(f"{name}: cannot widen {tuple(p_old.shape)} into {tuple(p_new.shape)}")
        _grow(p_new.data, p_old.data)
    for layer_new, layer_old in zip(new.modules(), old.modules(), strict=True):
        if isinstance(layer_new, nn.GroupNorm):
            assert isinstance(layer_old, nn.GroupNorm)
            per_group_new = layer_new.num_channels // layer_new.num_groups
            if per_group_new != layer_old.num_channels // layer_old.num_groups:
                raise ValueError("group sizes differ between the widths: the old groups would change")


@torch.no_grad()
def widen_encoders(model: LatentAutoencoder, width: int, *, seed: int = 0) -> LatentAutoencoder:
    """A copy of ``model`` whose four encoders are ``width`` wide and compute what ``model``'s compute.

    Decoders and the confidence network are copied unchanged. ``width`` must be at least the model's and
    both widths multiples of 16 (so that group normalisation keeps its groups). ``seed`` draws the new
    channels' starting weights.
    """
    old_width = model.cfg.width
    if width < old_width:
        raise ConfigError(f"widen_encoders: width {width} is narrower than the model's {old_width}")
    if width % _GROUP or old_width % _GROUP:
        raise ConfigError(f"widen_encoders: widths must be multiples of {_GROUP} "
                          f"(got {old_width} -> {width})")
    torch.manual_seed(seed)
    wide = LatentAutoencoder(dataclasses.replace(model.cfg, width=width))
    encoder_names = ("texture_encoder", "shape_encoder", "pose_encoder", "light_encoder")
    for name in encoder_names:
        _widen_module(getattr(wide, name), getattr(model, name))
    rest = {k: v for k, v in model.state_dict().items() if k.split(".", 1)[0] not in encoder_names}
    missing, unexpected = wide.load_state_dict(rest, strict=False)
    if unexpected:
        raise ValueError(f"widen_encoders: unexpected keys {unexpected}")
    if any(k.split(".", 1)[0] not in encoder_names for k in missing):
        raise ValueError(f"widen_encoders: keys not copied {missing}")
    return wide.train(model.training)
