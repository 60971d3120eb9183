"""Mixed precision and memory layout for the stage-1 step: the recipe's ``amp`` and ``channels_last``.

``amp: "bf16"`` runs the networks (encoders, decoders, the feature network) under
``torch.autocast(device_type, dtype=torch.bfloat16)`` on any device (the CPU included); the geometry stays
in float32: :class:`Float32Renderer` turns autocast off and casts its inputs to float32 (bfloat16's 8-bit
mantissa would move vertices by ~0.25 px at 64 px and quantise depth), and the loss is computed on
float32 copies of the forward's outputs (:func:`as_float32`). bfloat16 has float32's range, so no loss
scaling is needed. ``amp: "off"`` changes nothing.

``channels_last: true`` stores the 4-D weights and the input batch as NHWC (faster convolutions with
cuDNN and oneDNN); the numbers are the same up to summation order.
"""

from __future__ import annotations

import contextlib
import dataclasses
from typing import Any, TypeVar

import torch
from torch import Tensor, nn

from ..errors import ConfigError
from ..render.rasterize import Raster
from ..render.renderer import Backend, FaceRenderer, Rendered, Shaded

__all__ = ["AMP_MODES", "AutocastFeatures", "Float32Renderer", "amp_context", "as_float32", "check_amp",
           "to_channels_last"]

#: Values of the recipe's ``amp`` field.
AMP_MODES = ("off", "bf16")

_T = TypeVar("_T")


def check_amp(amp: str) -> str:
    """``amp`` if it is one of :data:`AMP_MODES`, else :class:`ConfigError`."""
    if amp not in AMP_MODES:
        raise ConfigError(f"stage1.amp must be one of {AMP_MODES} (got {amp!r})")
    return amp


def amp_context(device: torch.device, amp: str) -> contextlib.AbstractContextManager[Any]:
    """bfloat16 autocast on ``device`` for ``amp == "bf16"``, else a context that does nothing."""
    if check_amp(amp) == "off":
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=torch.bfloat16)


def as_float32(value: _T) -> _T:
    """``value`` with every floating tensor inside it (dataclasses, lists, tuples, dicts) cast to float32.

    The cast is differentiable; float32 tensors are returned as they are.
    """
    if isinstance(value, Tensor):
        return value.float() if value.is_floating_point() and value.dtype != torch.float32 else value  # type: ignore[return-value]
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        changes = {f.name: as_float32(getattr(value, f.name)) for f in dataclasses.fields(value) if f.init}
        return dataclasses.replace(value, **changes)
    if isinstance(value, list | tuple):
        return type(value)(as_float32(v) for v in value)
    if isinstance(value, dict):
        return {k: as_float32(v) for k, v in value.items()}  # type: ignore[return-value]
    return value


def to_channels_last(module: nn.Module) -> nn.Module:
    """``module`` with its 4-D weights stored channels-last (NHWC), in place; returns it."""
    module.to(memory_format=torch.channels_last)  # type: ignore[call-overload]  # documented; missing from the stubs
    return module


def _no_autocast(x: Tensor) -> contextlib.AbstractContextManager[Any]:
    return torch.autocast(device_type=x.device.type, enabled=False)


class Float32Renderer(FaceRenderer):
    """A :class:`FaceRenderer` that shades, rasterises and renders in float32 even inside autocast."""

    def shade(self, albedo: Tensor, depth: Tensor, light: Tensor) -> Shaded:
        with _no_autocast(depth):
            return super().shade(albedo.float(), depth.float(), light.float())

    def rasterize(self, depth: Tensor, pose: Tensor, backend: Backend | None = None) -> Raster:
        with _no_autocast(depth):
            return super().rasterize(depth.float(), pose.float(), backend)

    def render(self, texture: Tensor, depth: Tensor, pose: Tensor,
               backend: Backend | None = None) -> Rendered:
        with _no_autocast(depth):
            return super().render(texture.float(), depth.float(), pose.float(), backend)


class AutocastFeatures(nn.Module):
    """A feature network run under bfloat16 autocast, its output returned in float32 (for the loss)."""

    def __init__(self, net: nn.Module, device_type: str) -> None:
        super().__init__()
        self.net = net
        self.device_type = device_type

    def forward(self, images: Tensor) -> Tensor:
        with torch.autocast(device_type=self.device_type, dtype=torch.bfloat16):
            out: Tensor = self.net(images)
        return out.float()
