"""The two computations that are exported to ONNX, as plain torch modules without Python control flow.

* :class:`CropEncoderGraph`: uint8 face crops ``(N, 64, 64, 3)`` (the crop pipeline's output, RGB,
  ``H x W x C``) -> ``texture``, ``shape`` (N, 256), ``pose`` (N, 6), ``light`` (N, 4); the scaling to
  ``[-1, 1]`` and the channel permutation happen inside the graph, so a caller passes the crop's pixels as
  they are.
* :class:`IdentityGraph` (models with an identity head): ``texture``, ``shape`` -> the unit identity embedding
  (the RDMs from ``z_T = 0`` where the head reads ``Z_id``, as
  :meth:`~latentface_sdk.FaceEncoder.identity_embedding` runs them).
* :class:`ExpressionGraph` (models with an expression head): uint8 crops -> expression probabilities
  (:func:`~latentface_sdk.answers.expression_probabilities`: grey when the head says so, the mirrored
  expression features, the head, a softmax).
* :class:`DisentangleGraph`: ``texture``/``shape`` latents (``Z_exp``) and the starting noise ``z_T`` of each
  RDM (N, 256) -> ``identity_*`` (``Z_id``) and ``expression_*`` (``Δexp = Z_exp - Z_id``). The DDIM steps are
  unrolled: each step's timestep modulations are constants of the graph, and each DDIM update
  ``z <- a_k * x0 + b_k * z`` uses coefficients read off diffusers' scheduler (its step is linear in the
  predicted sample and in ``z`` for ``eta = 0``), so the graph computes what
  :meth:`~latentface_sdk.models.rdm.RepresentationDiffusion.sample` computes from the same noise.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from ..answers import expression_probabilities
from ..models.autoencoder import LatentAutoencoder
from ..models.heads import ExpressionHead, IdentityHead
from ..models.rdm import RepresentationDiffusion

__all__ = ["CropEncoderGraph", "DisentangleGraph", "ExpressionGraph", "IdentityGraph", "UnrolledDDIM",
           "ddim_coefficients"]


class CropEncoderGraph(nn.Module):
    """The four stage-1 encoders on uint8 crops; returns ``(texture, shape, pose, light)``."""

    def __init__(self, autoencoder: LatentAutoencoder) -> None:
        super().__init__()
        self.autoencoder = autoencoder

    def forward(self, crops: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        x = crops.permute(0, 3, 1, 2).to(torch.float32) / 255.0
        lat = self.autoencoder.encode(x)
        return lat.texture, lat.shape, lat.pose, lat.light


@torch.no_grad()
def ddim_coefficients(rdm: RepresentationDiffusion, steps: int) -> list[tuple[int, float, float]]:
    """``(timestep, a, b)`` of each DDIM step of ``rdm`` with ``steps`` steps: the update is
    ``a * x0 + b * z``.

    Read off the scheduler the sampler uses (one call with ``x0 = 1, z = 0`` gives ``a``, one with
    ``x0 = 0, z = 1`` gives ``b``), so no schedule formula is written twice.
    """
    plan = rdm.sampling_plan(steps)
    one, zero = torch.ones(1, 1, dtype=torch.float64), torch.zeros(1, 1, dtype=torch.float64)
    out = []
    for t in plan.timesteps:
        a = plan.scheduler.step(one, t, zero, eta=0.0, return_dict=False)[0]
        b = plan.scheduler.step(zero, t, one, eta=0.0, return_dict=False)[0]
        out.append((t, float(a.item()), float(b.item())))
    return out


class UnrolledDDIM(nn.Module):
    """One RDM's DDIM sampler with ``steps`` steps unrolled: ``(Z_exp, z_T) -> Z_id`` in raw latent units."""

    mean: Tensor
    std: Tensor

    def __init__(self, rdm: RepresentationDiffusion, steps: int) -> None:
        super().__init__()
        self.denoiser = rdm.denoiser
        self.register_buffer("mean", rdm.latent_mean.detach().clone())
        self.register_buffer("std", rdm.latent_std.detach().clone())
        plan = rdm.sampling_plan(steps)
        self.coefficients = [(a, b) for _, a, b in ddim_coefficients(rdm, steps)]
        # Each step's per-layer modulations (1, 2 * width): constants, as in the cached sampling plan.
        self.modulations = nn.ParameterList(
            [nn.Parameter(m.detach().clone(), requires_grad=False) for mods in plan.modulations for m in mods]
        )
        self.layers_per_step = len(plan.modulations[0]) if plan.modulations else 0

    def forward(self, cond: Tensor, noise: Tensor) -> Tensor:
        c = (cond - self.mean) / self.std
        z = noise
        for k, (a, b) in enumerate(self.coefficients):
            mods = list(self.modulations[k * self.layers_per_step:(k + 1) * self.layers_per_step])
            x0 = self.denoiser.denoise(z, c, mods)
            z = a * x0 + b * z
        return z * self.std + self.mean


class DisentangleGraph(nn.Module):
    """Both RDMs: ``(texture, shape, noise_texture, noise_shape)`` ->
    ``(identity_texture, identity_shape, expression_texture, expression_shape)``."""

    def __init__(self, rdm_texture: RepresentationDiffusion, rdm_shape: RepresentationDiffusion,
                 steps: int) -> None:
        super().__init__()
        self.texture = UnrolledDDIM(rdm_texture, steps)
        self.shape = UnrolledDDIM(rdm_shape, steps)

    def forward(self, texture: Tensor, shape: Tensor, noise_texture: Tensor,
                noise_shape: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        id_t = self.texture(texture, noise_texture)
        id_s = self.shape(shape, noise_shape)
        return id_t, id_s, texture - id_t, shape - id_s


class IdentityGraph(nn.Module):
    """``(texture, shape)`` -> unit identity embeddings ``(N, D)``: the identity head on what it reads
    (``source``: ``"latents"``, ``"identity"`` or ``"verification"``), the RDMs unrolled from zero noise."""

    def __init__(self, rdm_texture: RepresentationDiffusion, rdm_shape: RepresentationDiffusion, steps: int,
                 head: IdentityHead, source: str) -> None:
        super().__init__()
        self.texture = UnrolledDDIM(rdm_texture, steps)
        self.shape = UnrolledDDIM(rdm_shape, steps)
        self.head = head
        self.source = source

    def forward(self, texture: Tensor, shape: Tensor) -> Tensor:
        if self.source == "latents":
            return self.head(torch.cat([texture, shape], dim=1))
        id_t = self.texture(texture, torch.zeros_like(texture))
        id_s = self.shape(shape, torch.zeros_like(shape))
        parts = [id_t, id_s] if self.source == "identity" else [id_t, id_s, texture, shape]
        return self.head(torch.cat(parts, dim=1))


class ExpressionGraph(nn.Module):
    """uint8 crops ``(N, 64, 64, 3)`` -> expression probabilities ``(N, C)`` (mirrored features, head,
    softmax)."""

    def __init__(self, autoencoder: LatentAutoencoder, head: ExpressionHead, grey: bool) -> None:
        super().__init__()
        self.autoencoder = autoencoder
        self.head = head
        self.grey = grey

    def forward(self, crops: Tensor) -> Tensor:
        x = crops.permute(0, 3, 1, 2).to(torch.float32) / 255.0
        return expression_probabilities(self.autoencoder, self.head, x, grey=self.grey)
