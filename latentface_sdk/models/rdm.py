"""Stage 2: the Representation Diffusion Model (RDM) that generates the identity latent ``Z_id``.

Paper sections 2.3-2.4 and appendix B/C. A denoiser ``E_r(Z_t, t, Z_exp)`` predicts the clean identity
latent (x0-prediction, eq. 7) from a noisy latent and the observed ("emotional") latent ``Z_exp``;
:class:`RepresentationDiffusion` adds the noise schedule (diffusers' :class:`~diffusers.DDPMScheduler`,
eq. 6), the SNR-weighted training loss (eq. 12) and DDIM sampling in a few steps (diffusers'
:class:`~diffusers.DDIMScheduler`, ``eta = 0``). One model is trained for the texture latent and one for
the shape latent; the expression part is ``Z_exp - Z_id``.

The module only ever sees latents standardised with per-dimension statistics that the trainer stores in
the ``latent_mean``/``latent_std`` buffers (saved with the weights), so callers pass and receive raw
stage-1 latents.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from diffusers.schedulers.scheduling_ddim import DDIMScheduler
from diffusers.schedulers.scheduling_ddpm import DDPMScheduler
from torch import Tensor, nn

from ..config import RDMConfig

__all__ = ["RDMDenoiser", "RepresentationDiffusion", "SamplingPlan", "timestep_embedding",
           "DEFAULT_SNR_GAMMA"]

#: Clamp of the SNR loss weight (min-SNR-gamma, Hang et al. 2023); see
#: :meth:`RepresentationDiffusion.training_loss`.
DEFAULT_SNR_GAMMA = 5.0


def timestep_embedding(t: Tensor, dim: int, *, max_period: float = 10000.0) -> Tensor:
    """Sinusoidal embedding of integer timesteps ``t`` (B,) as in DDPM: ``[sin(t f_i), cos(t f_i)]``.

    The frequencies ``f_i = max_period ** (-i / (dim // 2))`` are geometric; an odd ``dim`` gets a
    trailing zero column. Returns a float32 tensor (B, dim) on ``t``'s device.
    """
    half = dim // 2
    freqs = torch.exp(-math.log(max_period) * torch.arange(half, device=t.device, dtype=torch.float32) / half)
    args = t.to(torch.float32)[:, None] * freqs[None, :]
    emb = torch.cat([torch.sin(args), torch.cos(args)], dim=-1)
    if dim % 2:
        emb = F.pad(emb, (0, 1))
    return emb


def _norm(channels: int) -> nn.LayerNorm:
    """Per-sample normalisation of a feature vector (no dependence on the batch).

    Layer norm rather than the group norm of convolutional U-Nets: on vectors it plays the same role
    and its CPU backward pass is several times faster.
    """
    return nn.LayerNorm(channels)


class _ResidualLayer(nn.Module):
    """One ResNet layer on feature vectors: the MLP equivalent of a pair of 1x1 convolutions.

    ``norm -> swish -> linear``, then the timestep embedding modulates the features (scale and shift
    after a second norm), then ``swish -> linear`` (zero-initialised, so the layer starts as its skip
    path), plus a linear skip when the width changes.
    """

    def __init__(self, in_dim: int, out_dim: int, emb_dim: int, cond_dim: int = 0) -> None:
        super().__init__()
        self.norm1 = _norm(in_dim)
        self.fc1 = nn.Linear(in_dim, out_dim)
        self.emb = nn.Linear(emb_dim, 2 * out_dim)
        # Optional: the condition's own [scale, shift] (zero-initialised: the layer starts as without it).
        self.cond: nn.Linear | None = nn.Linear(cond_dim, 2 * out_dim) if cond_dim else None
        if self.cond is not None:
            nn.init.zeros_(self.cond.weight)
            nn.init.zeros_(self.cond.bias)
        self.norm2 = _norm(out_dim)
        self.fc2 = nn.Linear(out_dim, out_dim)
        nn.init.zeros_(self.fc2.weight)
        nn.init.zeros_(self.fc2.bias)
        self.skip: nn.Module = nn.Linear(in_dim, out_dim) if in_dim != out_dim else nn.Identity()

    def modulation(self, emb: Tensor) -> Tensor:
        """The timestep's ``[scale, shift]`` (S, 2 * out_dim) from the embedded timesteps ``emb`` (S,
        emb_dim)."""
        return self.emb(F.silu(emb))

    def forward(self, x: Tensor, mod: Tensor, index: Tensor | None = None,
                cond: Tensor | None = None) -> Tensor:
        """``mod`` (:meth:`modulation`) holds one row per distinct timestep and ``index`` picks each
        sample's row (None: one row for all samples, or one per sample). ``cond`` (B, cond_dim) adds its
        own modulation when the layer has one."""
        h = self.fc1(F.silu(self.norm1(x)))
        mod = mod if index is None else mod[index]
        if self.cond is not None and cond is not None:
            mod = mod + self.cond(cond)
        scale, shift = mod.chunk(2, dim=-1)
        h = self.norm2(h) * (1.0 + scale) + shift
        h = self.fc2(F.silu(h))
        return self.skip(x) + h


class _Block(nn.Module):
    """Two residual layers (one U-Net level of Figure 14)."""

    def __init__(self, in_dim: int, out_dim: int, emb_dim: int, cond_dim: int = 0) -> None:
        super().__init__()
        self.layers = nn.ModuleList([_ResidualLayer(in_dim, out_dim, emb_dim, cond_dim),
                                     _ResidualLayer(out_dim, out_dim, emb_dim, cond_dim)])

    def forward(self, x: Tensor, mods: Sequence[Tensor], index: Tensor | None = None,
                cond: Tensor | None = None) -> Tensor:
        for layer, mod in zip(self.layers, mods, strict=True):
            x = layer(x, mod, index, cond)
        return x


class RDMDenoiser(nn.Module):
    """The denoising "U-Net" ``E_r(Z_t, t, Z_exp) -> Z_0`` of Figure 14, on vectors.

    The input is ``concat(Z_t, Z_exp)`` (``2 * latent_dim`` = 512 features). It is projected to the
    down width, then goes through three blocks of two residual layers each, with widths
    ``cfg.channels`` (paper: 512 down, 128 middle, 256 up); the up block also receives the down block's
    output (the U-Net skip). Every layer is an MLP (the paper's 1x1 convolutions on a 1x1 "image" are
    exactly linear layers); activations are swish (SiLU) and the sinusoidal timestep embedding
    (``cfg.time_embed_dim``) goes through a two-layer swish MLP before modulating each residual layer.
    The output is the predicted clean latent (``latent_dim``). With ``cfg.cond_modulation`` the
    condition also scales and shifts every residual layer's features (its own zero-initialised linear
    map, added to the timestep's modulation).
    """

    def __init__(self, cfg: RDMConfig) -> None:
        super().__init__()
        cfg.validate()
        self.config = cfg
        d = cfg.latent_dim
        down, middle, up = cfg.channels
        temb = cfg.time_embed_dim
        emb_dim = 4 * temb
        self.time_mlp = nn.Sequential(nn.Linear(temb, emb_dim), nn.SiLU(), nn.Linear(emb_dim, emb_dim))
        self.inp = nn.Linear(2 * d, down)
        cond_dim = d if cfg.cond_modulation else 0
        self.down = _Block(down, down, emb_dim, cond_dim)
        self.middle = _Block(down, middle, emb_dim, cond_dim)
        self.up = _Block(middle + down, up, emb_dim, cond_dim)
        self.out_norm = _norm(up)
        self.out = nn.Linear(up, d)

    def residual_layers(self) -> list[_ResidualLayer]:
        """The six residual layers in order (down, middle, up)."""
        return [layer for block in (self.down, self.middle, self.up)  # type: ignore[misc]
                for layer in block.layers]

    def modulations(self, steps: Tensor) -> list[Tensor]:
        """Every residual layer's ``[scale, shift]`` for the distinct integer timesteps ``steps`` (S,):
        a list of (S, 2 * width) tensors, the only part of the network that depends on the timestep."""
        emb = self.time_mlp(timestep_embedding(steps, self.config.time_embed_dim).to(self.inp.weight.dtype))
        return [layer.modulation(emb) for layer in self.residual_layers()]

    def forward(self, z_t: Tensor, t: Tensor, cond: Tensor) -> Tensor:
        """Predict the clean latent from ``z_t`` (B, D), integer timesteps ``t`` (B,) and ``cond`` (B, D)."""
        if z_t.shape != cond.shape or z_t.ndim != 2 or z_t.shape[1] != self.config.latent_dim:
            raise ValueError(
                f"RDMDenoiser expects z_t and cond of shape (B, {self.config.latent_dim}); "
                f"got {tuple(z_t.shape)} and {tuple(cond.shape)}"
            )
        if t.ndim != 1 or t.shape[0] != z_t.shape[0]:
            raise ValueError(f"RDMDenoiser expects t of shape ({z_t.shape[0]},); got {tuple(t.shape)}")
        # The timestep embedding and its modulations are computed once per distinct timestep (in DDIM
        # sampling every row shares one), then gathered per row: half the sampler's work otherwise.
        steps, index = torch.unique(t, return_inverse=True)
        return self.denoise(z_t, cond, self.modulations(steps), index)

    def denoise(self, z_t: Tensor, cond: Tensor, mods: Sequence[Tensor],
                index: Tensor | None = None) -> Tensor:
        """The network on given :meth:`modulations` (``index`` picks each row's; None: they have one row
        that all rows share, or one per row). DDIM sampling reuses one step's modulations across calls."""
        h = self.inp(torch.cat([z_t, cond], dim=1))
        skip = self.down(h, mods[0:2], index, cond)
        h = self.middle(skip, mods[2:4], index, cond)
        h = self.up(torch.cat([h, skip], dim=1), mods[4:6], index, cond)
        return self.out(F.silu(self.out_norm(h)))


@dataclass(frozen=True)
class SamplingPlan:
    """:meth:`RepresentationDiffusion.sampling_plan`: a DDIM scheduler set to its steps, the steps'
    timesteps, each step's per-layer modulations, and the stamp of the weights they were computed from."""

    scheduler: DDIMScheduler
    timesteps: list[int]
    modulations: list[list[Tensor]]
    stamp: tuple[tuple[int, int], ...]


class RepresentationDiffusion(nn.Module):
    """One RDM: the :class:`RDMDenoiser` plus its noise schedule, loss and DDIM sampler.

    Buffers saved with the weights: ``latent_mean`` and ``latent_std`` (D,), the per-dimension
    statistics of the training ``Z_exp`` (set by :meth:`set_latent_statistics`); both the condition and
    the target are standardised with them, and :meth:`sample` returns raw latents.

    The schedule is diffusers' :class:`~diffusers.DDPMScheduler` built from ``cfg`` (``beta_schedule``,
    ``beta_start``, ``beta_end``, ``num_train_timesteps``); its ``alphas_cumprod`` is also kept as the
    (non-saved) buffer ``alphas_cumprod`` so it follows the module across devices. Timesteps are
    0-based (diffusers' convention): the paper's ``tau in 1..T`` is ``t = tau - 1``.
    """

    latent_mean: Tensor
    latent_std: Tensor
    alphas_cumprod: Tensor

    def __init__(self, cfg: RDMConfig, *, snr_gamma: float | None = DEFAULT_SNR_GAMMA) -> None:
        super().__init__()
        cfg.validate()
        if snr_gamma is not None and snr_gamma <= 0:
            raise ValueError(f"snr_gamma must be positive or None (got {snr_gamma})")
        self.config = cfg
        self.snr_gamma = snr_gamma
        self.denoiser = RDMDenoiser(cfg)
        d = cfg.latent_dim
        self.register_buffer("latent_mean", torch.zeros(d))
        self.register_buffer("latent_std", torch.ones(d))
        schedule: dict[str, Any] = {
            "num_train_timesteps": cfg.num_train_timesteps,
            "beta_schedule": cfg.beta_schedule,
            "beta_start": cfg.beta_start,
            "beta_end": cfg.beta_end,
            "prediction_type": "sample",
            # Latents are not images: never clip the predicted x0 to [-1, 1].
            "clip_sample": False,
        }
        try:
            self.noise_scheduler = DDPMScheduler(**schedule)
        except NotImplementedError as exc:
            from ..errors import ConfigError

            raise ConfigError(f"rdm.beta_schedule {cfg.beta_schedule!r} is not supported ({exc})") from None
        self.register_buffer("alphas_cumprod", self.noise_scheduler.alphas_cumprod.clone().float(),
                             persistent=False)
        # DDIM from pure noise: "trailing" spacing starts at t = T - 1 (z_T ~ N(0, I), as in the paper) and
        # the last step lands on the clean sample (alpha_prod = 1). Each call to `sample` builds its own
        # scheduler from this frozen dict, because DDIMScheduler.set_timesteps mutates the scheduler.
        self._ddim_kwargs: dict[str, Any] = {
            **schedule,
            "set_alpha_to_one": True,
            "timestep_spacing": "trailing",
            "steps_offset": 0,
        }
        self._plans: dict[int, SamplingPlan] = {}

    # -- latent standardisation -------------------------------------------------------------------
    @torch.no_grad()
    def set_latent_statistics(self, latents: Tensor, *, min_std: float = 1e-3) -> None:
        """Store the per-dimension mean and standard deviation of training latents (N, D).

        The standard deviation is floored at ``min_std`` times its mean over dimensions, so that a
        (nearly) constant dimension is not blown up.
        """
        if latents.ndim != 2 or latents.shape[1] != self.config.latent_dim or latents.shape[0] < 2:
            raise ValueError(f"expected at least two latents of dimension {self.config.latent_dim}")
        x = latents.detach().to(torch.float64)
        mean = x.mean(dim=0)
        std = x.std(dim=0)
        floor = max(float(std.mean()) * min_std, 1e-12)
        self.latent_mean.copy_(mean.to(self.latent_mean.dtype))
        self.latent_std.copy_(std.clamp(min=floor).to(self.latent_std.dtype))

    def normalize(self, z: Tensor) -> Tensor:
        """Raw latents -> the standardised space the denoiser works in."""
        return (z - self.latent_mean) / self.latent_std

    def denormalize(self, z: Tensor) -> Tensor:
        """Standardised latents -> raw latents."""
        return z * self.latent_std + self.latent_mean

    # -- schedule -----------------------------------------------------------------------------------
    def add_noise(self, z0: Tensor, noise: Tensor, t: Tensor) -> Tensor:
        """Eq. 6: ``sqrt(abar_t) z0 + sqrt(1 - abar_t) noise`` (diffusers' ``DDPMScheduler.add_noise``)."""
        return self.noise_scheduler.add_noise(z0, noise, t.to(torch.long))

    def snr(self, t: Tensor) -> Tensor:
        """Signal-to-noise ratio ``abar_t / (1 - abar_t)`` of timesteps ``t`` (the paper's ``w_t``)."""
        abar = self.alphas_cumprod[t.to(self.alphas_cumprod.device, torch.long)]
        return abar / (1.0 - abar)

    def loss_weight(self, t: Tensor) -> Tensor:
        """The per-sample loss weight: ``min(SNR_t, snr_gamma)``, or plain SNR when ``snr_gamma`` is None."""
        w = self.snr(t)
        return w if self.snr_gamma is None else w.clamp(max=self.snr_gamma)

    # -- training -----------------------------------------------------------------------------------
    def training_loss(
        self,
        z0: Tensor,
        cond: Tensor,
        *,
        generator: torch.Generator | None = None,
        timesteps: Tensor | None = None,
        noise: Tensor | None = None,
    ) -> Tensor:
        """SNR-weighted x0-prediction loss (eq. 12) on a batch of target ``Z_id`` ``z0`` and condition
        ``Z_exp``.

        Draws ``t ~ Uniform{0, ..., T-1}`` (unless ``timesteps`` is given) and ``eps ~ N(0, I)`` (unless
        ``noise`` is given) from ``generator`` (on the generator's device), forms ``Z_t`` with eq. 6, and
        returns ``mean_b w_t ||z0 - E_r(Z_t, t, Z_exp)||^2 / D`` in standardised units.

        The weight: the paper uses ``w_t = SNR_t``, which grows without bound as ``t -> 0`` (about 1e4 at
        ``t = 0`` for the linear schedule) and lets the nearly noise-free steps dominate the gradient.
        We clamp it with min-SNR-gamma (Hang et al., ICCV 2023): ``w_t = min(SNR_t, gamma)``, with
        ``gamma = snr_gamma`` (default 5); ``snr_gamma=None`` gives the paper's unclamped weight.
        """
        if z0.shape != cond.shape or z0.ndim != 2:
            raise ValueError(f"z0 and cond must have the same (B, D) shape; got {tuple(z0.shape)}, "
                             f"{tuple(cond.shape)}")
        device = z0.device
        gen_device = generator.device if generator is not None else device
        x0 = self.normalize(z0)
        c = self.normalize(cond)
        n = x0.shape[0]
        if timesteps is None:
            t = torch.randint(0, self.config.num_train_timesteps, (n,), generator=generator,
                              device=gen_device)
        else:
            t = timesteps
        t = t.to(device=device, dtype=torch.long)
        if noise is None:
            noise = torch.randn(x0.shape, generator=generator, device=gen_device, dtype=x0.dtype)
        noise = noise.to(device=device, dtype=x0.dtype)
        z_t = self.add_noise(x0, noise, t)
        pred = self.denoiser(z_t, t, c)
        per_sample = (pred - x0).pow(2).mean(dim=1)
        return (self.loss_weight(t).to(per_sample.dtype) * per_sample).mean()

    def forward(self, z0: Tensor, cond: Tensor, *, generator: torch.Generator | None = None) -> Tensor:
        """Same as :meth:`training_loss` (so that the model can be wrapped for data-parallel training)."""
        return self.training_loss(z0, cond, generator=generator)

    # -- sampling -----------------------------------------------------------------------------------
    def ddim_scheduler(self, steps: int | None = None) -> DDIMScheduler:
        """A fresh DDIM scheduler (prediction of the sample, ``eta = 0``) set to ``steps`` steps."""
        n = self.config.sample_steps if steps is None else int(steps)
        if not 1 <= n <= self.config.num_train_timesteps:
            raise ValueError(f"steps must be between 1 and {self.config.num_train_timesteps} (got {steps})")
        scheduler = DDIMScheduler(**self._ddim_kwargs)
        scheduler.set_timesteps(n)
        return scheduler

    def _timestep_weights_stamp(self) -> tuple[tuple[int, int], ...]:
        """Identifies the current values of the weights the modulations depend on (changes on every
        in-place update, e.g. an optimizer step or ``load_state_dict``, and on a move to another device)."""
        den = self.denoiser
        params = [*den.time_mlp.parameters(),
                  *(p for layer in den.residual_layers() for p in layer.emb.parameters())]
        return tuple((p.data_ptr(), p._version) for p in params)

    @torch.no_grad()
    def sampling_plan(self, steps: int | None = None) -> SamplingPlan:
        """What DDIM sampling with ``steps`` steps needs besides the latents: the scheduler, its timesteps
        and each step's :meth:`RDMDenoiser.modulations`, which depend only on the weights and the step.

        Cached per step count and recomputed when those weights change, so that repeated sampling (one
        call per group of faces in ``FaceEncoder.disentangle``) runs only the per-row part of the network: the
        modulations' layers hold almost half of the denoiser's weights, and reading them for a single
        row each step cost about half of a 5-step sample of 32 rows on CPU. The values are the ones the
        uncached computation gives, bit for bit.
        """
        n = self.config.sample_steps if steps is None else int(steps)
        stamp = self._timestep_weights_stamp()
        plan = self._plans.get(n)
        if plan is None or plan.stamp != stamp:
            scheduler = self.ddim_scheduler(n)
            timesteps = [int(t) for t in scheduler.timesteps.tolist()]
            device = self.latent_mean.device
            mods = [self.denoiser.modulations(torch.tensor([t], dtype=torch.long, device=device))
                    for t in timesteps]
            plan = SamplingPlan(scheduler=scheduler, timesteps=timesteps, modulations=mods, stamp=stamp)
            self._plans[n] = plan
        return plan

    @torch.no_grad()
    def sample(
        self,
        cond: Tensor,
        *,
        steps: int | None = None,
        generator: torch.Generator | None = None,
        num_samples: int = 1,
        noise: Tensor | None = None,
    ) -> Tensor:
        """Generate ``Z_id`` (B, D) for each condition ``Z_exp`` in ``cond`` (B, D) by DDIM.

        Starts from ``z_T ~ N(0, I)`` drawn with ``torch.randn(..., generator=generator)`` on the
        generator's device (the global RNG when ``generator`` is None), and runs ``steps`` deterministic
        DDIM steps (``eta = 0``; default ``cfg.sample_steps`` = 5). With ``num_samples > 1`` it draws that
        many independent samples per condition and returns their mean. The same generator state gives
        bit-identical outputs on CPU. It may be called from several threads at once (the only state it
        keeps is :meth:`sampling_plan`'s cache). ``noise`` (``(num_samples * B, D)``, sample-major) replaces
        the draw of ``z_T``, for callers that seed each condition separately (``FaceEncoder.disentangle``).
        """
        if cond.ndim != 2 or cond.shape[1] != self.config.latent_dim:
            raise ValueError(f"cond must have shape (B, {self.config.latent_dim}); got {tuple(cond.shape)}")
        if num_samples < 1:
            raise ValueError(f"num_samples must be at least 1 (got {num_samples})")
        plan = self.sampling_plan(steps)
        c = self.normalize(cond.to(device=self.latent_mean.device, dtype=self.latent_mean.dtype))
        b, d = c.shape
        c_rep = c.repeat(num_samples, 1)
        if noise is not None:
            if noise.shape != (num_samples * b, d):
                raise ValueError(f"noise must have shape ({num_samples * b}, {d}); got {tuple(noise.shape)}")
            z = noise.to(device=c.device, dtype=c.dtype)
        else:
            gen_device = generator.device if generator is not None else c.device
            z = torch.randn((num_samples * b, d), generator=generator, device=gen_device,
                            dtype=c.dtype).to(c.device)
        for step_t, mods in zip(plan.timesteps, plan.modulations, strict=True):
            x0 = self.denoiser.denoise(z, c_rep, mods)
            z = plan.scheduler.step(x0, step_t, z, eta=0.0, return_dict=False)[0]
        out = z.view(num_samples, b, d).mean(dim=0)
        return self.denormalize(out)
