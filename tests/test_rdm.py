"""The representation diffusion model: schedule (eq. 6), loss (eq. 12), DDIM sampling, reproducibility."""

from __future__ import annotations

import dataclasses
import math
import threading
from collections.abc import Sequence

import pytest
import torch
from torch import Tensor, nn

from latentface_sdk.config import RDMConfig
from latentface_sdk.errors import ConfigError
from latentface_sdk.models.rdm import RDMDenoiser, RepresentationDiffusion, timestep_embedding

SMALL = RDMConfig(latent_dim=8, channels=(32, 16, 24), time_embed_dim=16)


class _FakeDenoiser(RDMDenoiser):
    """A known, noise-dependent x0 predictor, to check the sampler against a hand-written DDIM loop.

    Its "modulation" is the timestep itself, so the sampler's cached modulations must be the right step's.
    """

    def modulations(self, steps: Tensor) -> list[Tensor]:
        return [steps[:, None].to(torch.float32)] * 6

    def denoise(self, z_t: Tensor, cond: Tensor, mods: Sequence[Tensor],
                index: Tensor | None = None) -> Tensor:
        t = mods[0] if index is None else mods[0][index]
        return 0.5 * cond + 0.1 * z_t + 1e-4 * t.to(z_t.dtype)


class _Oracle(RDMDenoiser):
    """Predicts the (standardised) condition itself."""

    def denoise(self, z_t: Tensor, cond: Tensor, mods: Sequence[Tensor],
                index: Tensor | None = None) -> Tensor:
        return cond


def _hand_alphas_cumprod(cfg: RDMConfig) -> list[float]:
    n = cfg.num_train_timesteps
    out, prod = [], 1.0
    for i in range(n):
        beta = cfg.beta_start + (cfg.beta_end - cfg.beta_start) * i / (n - 1)
        prod *= 1.0 - beta
        out.append(prod)
    return out


def test_alphas_cumprod_match_a_hand_computation() -> None:
    cfg = RDMConfig(latent_dim=8, channels=(32, 16, 24), time_embed_dim=16, num_train_timesteps=10,
                    beta_start=0.01, beta_end=0.2, sample_steps=2)
    rdm = RepresentationDiffusion(cfg)
    hand = torch.tensor(_hand_alphas_cumprod(cfg), dtype=torch.float64)
    assert torch.allclose(rdm.alphas_cumprod.double(), hand, rtol=1e-6, atol=0)
    # and the paper-sized schedule (T = 1000, linear 1e-4 .. 2e-2)
    full = RepresentationDiffusion(RDMConfig(latent_dim=8, channels=(32, 16, 24), time_embed_dim=16))
    hand_full = torch.tensor(_hand_alphas_cumprod(full.config), dtype=torch.float64)
    assert torch.allclose(full.alphas_cumprod.double(), hand_full, rtol=1e-4, atol=1e-9)
    assert full.alphas_cumprod[-1] < 1e-4 < full.alphas_cumprod[0]


def test_add_noise_is_equation_6() -> None:
    rdm = RepresentationDiffusion(SMALL)
    z0, eps = torch.randn(5, 8), torch.randn(5, 8)
    t = torch.tensor([0, 10, 250, 700, 999])
    abar = torch.tensor(_hand_alphas_cumprod(SMALL), dtype=torch.float64)[t][:, None]
    expected = abar.sqrt() * z0.double() + (1 - abar).sqrt() * eps.double()
    assert torch.allclose(rdm.add_noise(z0, eps, t).double(), expected, atol=1e-5)


def test_training_loss_is_the_clamped_snr_weighted_x0_error() -> None:
    rdm = RepresentationDiffusion(SMALL)
    z0, cond = torch.randn(6, 8), torch.randn(6, 8)
    loss = rdm.training_loss(z0, cond, generator=torch.Generator().manual_seed(3))
    g = torch.Generator().manual_seed(3)
    t = torch.randint(0, 1000, (6,), generator=g)
    eps = torch.randn(6, 8, generator=g)
    abar = rdm.alphas_cumprod[t][:, None]
    z_t = abar.sqrt() * z0 + (1 - abar).sqrt() * eps
    pred = rdm.denoiser(z_t, t, cond)
    snr = abar[:, 0] / (1 - abar[:, 0])
    expected = (snr.clamp(max=5.0) * (pred - z0).pow(2).mean(1)).mean()
    assert torch.allclose(loss, expected, rtol=1e-5)
    # the weight really is clamped at small t, and is the plain SNR without a gamma
    assert float(rdm.loss_weight(torch.tensor([0]))) == pytest.approx(5.0)
    plain = RepresentationDiffusion(SMALL, snr_gamma=None)
    assert float(plain.loss_weight(torch.tensor([0]))) > 1000.0


def test_one_ddim_step_matches_the_closed_form() -> None:
    rdm = RepresentationDiffusion(SMALL)
    sched = rdm.ddim_scheduler(5)
    assert sched.timesteps.tolist() == [999, 799, 599, 399, 199]
    abar = torch.tensor(_hand_alphas_cumprod(SMALL), dtype=torch.float64)
    x_t, x0 = torch.randn(4, 8, dtype=torch.float64), torch.randn(4, 8, dtype=torch.float64)
    prev = sched.step(x0.float(), 799, x_t.float(), eta=0.0, return_dict=False)[0]
    a_t, a_prev = abar[799], abar[599]
    eps = (x_t - a_t.sqrt() * x0) / (1 - a_t).sqrt()
    expected = a_prev.sqrt() * x0 + (1 - a_prev).sqrt() * eps
    assert torch.allclose(prev.double(), expected, rtol=1e-4, atol=1e-4)
    # the last step lands exactly on the predicted clean latent
    last = sched.step(x0.float(), 199, x_t.float(), eta=0.0, return_dict=False)[0]
    assert torch.allclose(last, x0.float(), atol=1e-6)


def test_sample_runs_the_ddim_recursion_from_pure_noise() -> None:
    rdm = RepresentationDiffusion(SMALL)
    rdm.denoiser = _FakeDenoiser(SMALL)
    cond = torch.randn(3, 8)
    out = rdm.sample(cond, generator=torch.Generator().manual_seed(7))
    abar = torch.tensor(_hand_alphas_cumprod(SMALL), dtype=torch.float64)
    z = torch.randn(3, 8, generator=torch.Generator().manual_seed(7)).double()
    c = cond.double()
    for t, prev in zip([999, 799, 599, 399, 199], [799, 599, 399, 199, -1], strict=True):
        x0 = 0.5 * c + 0.1 * z + 1e-4 * t
        a_t = abar[t]
        a_prev = abar[prev] if prev >= 0 else torch.tensor(1.0, dtype=torch.float64)
        eps = (z - a_t.sqrt() * x0) / (1 - a_t).sqrt()
        z = a_prev.sqrt() * x0 + (1 - a_prev).sqrt() * eps
    assert torch.allclose(out.double(), z, atol=1e-4)


def test_sample_shapes_and_seed_reproducibility() -> None:
    rdm = RepresentationDiffusion(SMALL)
    cond = torch.randn(5, 8)
    a = rdm.sample(cond, generator=torch.Generator().manual_seed(1))
    b = rdm.sample(cond, generator=torch.Generator().manual_seed(1))
    c = rdm.sample(cond, generator=torch.Generator().manual_seed(2))
    assert a.shape == (5, 8) and a.dtype == torch.float32 and not a.requires_grad
    assert torch.equal(a, b)
    assert not torch.allclose(a, c)
    assert rdm.sample(cond, steps=2, generator=torch.Generator().manual_seed(1)).shape == (5, 8)
    with pytest.raises(ValueError):
        rdm.sample(torch.randn(5, 7))
    with pytest.raises(ValueError):
        rdm.sample(cond, num_samples=0)


def test_num_samples_averages_independent_samples() -> None:
    rdm = RepresentationDiffusion(SMALL)
    nn.init.normal_(rdm.denoiser.out.weight)  # make the output depend strongly on the noise
    cond = torch.randn(4, 8)
    avg = rdm.sample(cond, num_samples=3, generator=torch.Generator().manual_seed(5))
    each = rdm.sample(cond.repeat(3, 1), generator=torch.Generator().manual_seed(5)).view(3, 4, 8)
    assert avg.shape == (4, 8)
    assert torch.allclose(avg, each.mean(0), atol=1e-5)
    assert not torch.allclose(each[0], each[1])


def test_sample_is_safe_to_call_from_several_threads() -> None:
    rdm = RepresentationDiffusion(SMALL)
    cond = torch.randn(6, 8)
    expected = {s: rdm.sample(cond, steps=3 + s % 3, generator=torch.Generator().manual_seed(s))
                for s in range(6)}
    results: dict[int, Tensor] = {}

    def work(seed: int) -> None:
        results[seed] = rdm.sample(cond, steps=3 + seed % 3, generator=torch.Generator().manual_seed(seed))

    threads = [threading.Thread(target=work, args=(s,)) for s in range(6)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert all(torch.equal(results[s], expected[s]) for s in range(6))


def _uncached_sample(rdm: RepresentationDiffusion, cond: Tensor, noise: Tensor, steps: int) -> Tensor:
    """DDIM as the sampler did before it cached the modulations: the whole denoiser at every step."""
    sched = rdm.ddim_scheduler(steps)
    c, z = rdm.normalize(cond), noise
    with torch.no_grad():
        for t in sched.timesteps.tolist():
            x0 = rdm.denoiser(z, torch.full((len(c),), int(t)), c)
            z = sched.step(x0, int(t), z, eta=0.0, return_dict=False)[0]
    return rdm.denormalize(z)


def _perturb(module: nn.Module) -> None:
    """Give every weight (the zero-initialised ones too) random values, so every path matters."""
    with torch.no_grad():
        for p in module.parameters():
            p.copy_(torch.randn_like(p) * 0.1)


def test_cached_modulations_give_the_uncached_sample_bit_for_bit() -> None:
    rdm = RepresentationDiffusion(SMALL)
    _perturb(rdm)
    cond, noise = torch.randn(6, 8), torch.randn(6, 8)
    for steps in (5, 3, 5):
        assert torch.equal(rdm.sample(cond, steps=steps, noise=noise),
                           _uncached_sample(rdm, cond, noise, steps))
    assert rdm.sampling_plan(5) is rdm.sampling_plan(5)  # cached per step count
    assert rdm.sampling_plan(5).timesteps == [999, 799, 599, 399, 199]


def test_sampling_plan_follows_weight_updates() -> None:
    """An optimizer step, load_state_dict or an in-place edit of the time layers invalidates the cache."""
    rdm = RepresentationDiffusion(SMALL)
    _perturb(rdm)
    cond, noise = torch.randn(4, 8), torch.randn(4, 8)
    before = rdm.sample(cond, noise=noise)
    opt = torch.optim.SGD(rdm.parameters(), lr=0.5)
    opt.zero_grad()
    rdm.training_loss(torch.randn(16, 8), torch.randn(16, 8),
                      generator=torch.Generator().manual_seed(0)).backward()
    opt.step()
    after_step = rdm.sample(cond, noise=noise)
    assert not torch.equal(after_step, before)
    assert torch.equal(after_step, _uncached_sample(rdm, cond, noise, 5))
    other = RepresentationDiffusion(SMALL)
    _perturb(other)
    rdm.load_state_dict(other.state_dict())
    assert torch.equal(rdm.sample(cond, noise=noise), other.sample(cond, noise=noise))
    with torch.no_grad():
        rdm.denoiser.residual_layers()[2].emb.bias.add_(1.0)
    assert torch.equal(rdm.sample(cond, noise=noise), _uncached_sample(rdm, cond, noise, 5))


def test_latent_statistics_standardise_and_are_saved() -> None:
    rdm = RepresentationDiffusion(SMALL)
    data = torch.randn(200, 8) * torch.linspace(0.5, 4.0, 8) + 3.0
    rdm.set_latent_statistics(data)
    z = rdm.normalize(data)
    assert torch.allclose(z.mean(0), torch.zeros(8), atol=1e-5)
    assert torch.allclose(z.std(0), torch.ones(8), atol=1e-4)
    assert torch.allclose(rdm.denormalize(z), data, atol=1e-5)
    state = rdm.state_dict()
    assert {"latent_mean", "latent_std"} <= set(state) and "alphas_cumprod" not in state
    # the sampler works in standardised units and returns raw latents: an oracle that returns the
    # standardised condition gives back the raw condition
    rdm.denoiser = _Oracle(SMALL)
    assert torch.allclose(rdm.sample(data[:4]), data[:4], atol=1e-4)


def test_denoiser_architecture_follows_the_paper() -> None:
    net = RDMDenoiser(RDMConfig())
    assert net.inp.in_features == 512
    sd = net.state_dict()
    assert [sd[f"{b}.layers.1.fc2.weight"].shape[0] for b in ("down", "middle", "up")] == [512, 128, 256]
    assert sd["up.layers.0.fc1.weight"].shape == (256, 128 + 512)  # the U-Net skip from the down block
    assert all(len(b.layers) == 2 for b in (net.down, net.middle, net.up))
    out = net(torch.randn(3, 256), torch.tensor([0, 500, 999]), torch.randn(3, 256))
    assert out.shape == (3, 256)
    with pytest.raises(ValueError):
        net(torch.randn(3, 256), torch.tensor([0, 1]), torch.randn(3, 256))


def test_timestep_embedding_is_sinusoidal() -> None:
    emb = timestep_embedding(torch.tensor([0, 3]), 6)
    assert emb.shape == (2, 6)
    assert torch.equal(emb[0], torch.tensor([0.0, 0.0, 0.0, 1.0, 1.0, 1.0]))
    freqs = [math.exp(-math.log(10000.0) * i / 3) for i in range(3)]
    expected = [math.sin(3 * f) for f in freqs] + [math.cos(3 * f) for f in freqs]
    assert torch.allclose(emb[1], torch.tensor(expected), atol=1e-6)


def test_bad_schedule_is_a_config_error() -> None:
    with pytest.raises(ConfigError):
        RepresentationDiffusion(RDMConfig(beta_schedule="nonsense"))


def test_denoiser_shares_timestep_work_without_changing_results() -> None:
    # Rows with the same timestep share one embedding (gathered per row); mixed batches must give what
    # each row gives alone.
    from latentface_sdk.config import RDMConfig
    from latentface_sdk.models.rdm import RDMDenoiser

    torch.manual_seed(0)
    model = RDMDenoiser(RDMConfig(channels=(64, 32, 48), time_embed_dim=16)).eval()
    for module in model.modules():
        if isinstance(module, torch.nn.Linear):
            torch.nn.init.normal_(module.weight, std=0.05)  # the zero-initialised layers too
    z, cond = torch.randn(6, 256), torch.randn(6, 256)
    t = torch.tensor([5, 900, 5, 300, 900, 5])
    with torch.no_grad():
        batch = model(z, t, cond)
        alone = torch.cat([model(z[i:i + 1], t[i:i + 1], cond[i:i + 1]) for i in range(6)])
        other_t = model(z, torch.full((6,), 300), cond)
    torch.testing.assert_close(batch, alone, rtol=1e-5, atol=1e-5)
    assert not torch.allclose(batch, other_t)  # the timestep still matters per row


def test_sampling_from_given_noise_matches_the_generator_draw() -> None:
    # The tiny test model's RDM (full-size latents) with non-trivial latent statistics.
    from _tiny import tiny_config

    rdm = RepresentationDiffusion(tiny_config().rdm).eval()
    rdm.set_latent_statistics(torch.randn(16, 256) * 0.5 + 0.1)
    cond = torch.randn(3, 256)
    for num_samples in (1, 2):
        expected = rdm.sample(cond, steps=5, generator=torch.Generator().manual_seed(7),
                              num_samples=num_samples)
        noise = torch.randn(num_samples * 3, 256, generator=torch.Generator().manual_seed(7))
        given = rdm.sample(cond, steps=5, num_samples=num_samples, noise=noise)
        torch.testing.assert_close(given, expected)
    with pytest.raises(ValueError, match="noise must have shape"):
        rdm.sample(cond, noise=torch.zeros(2, 256))


def test_condition_modulation_starts_as_the_plain_denoiser_and_then_acts() -> None:
    """``cond_modulation``: every residual layer gets the condition's own scale/shift, zero at the start."""
    torch.manual_seed(0)
    plain = RDMDenoiser(SMALL)
    with torch.no_grad():  # as after training: the zero-initialised last layers of the residuals moved
        for p in plain.parameters():
            p.add_(0.1 * torch.randn_like(p))
    film = RDMDenoiser(dataclasses.replace(SMALL, cond_modulation=True))
    missing, unexpected = film.load_state_dict(plain.state_dict(), strict=False)
    assert not unexpected and missing and all(".cond." in k for k in missing)
    assert len(missing) == 2 * len(film.residual_layers())  # weight and bias of each layer's map
    z, c, t = torch.randn(5, 8), torch.randn(5, 8), torch.tensor([0, 10, 500, 999, 10])
    torch.testing.assert_close(film(z, t, c), plain(z, t, c))
    with torch.no_grad():
        for layer in film.residual_layers():
            assert layer.cond is not None
            layer.cond.weight.normal_(0, 0.5)
    moved = film(z, t, c)
    assert not torch.allclose(moved, plain(z, t, c))
    # the condition reaches the output through the modulation too: a different cond, a different change
    other = torch.randn(5, 8)
    assert not torch.allclose(film(z, t, other) - plain(z, t, other), moved - plain(z, t, c))
    rdm = RepresentationDiffusion(dataclasses.replace(SMALL, cond_modulation=True))
    assert rdm.sample(torch.randn(4, 8), noise=torch.zeros(4, 8)).shape == (4, 8)
    assert rdm.training_loss(torch.randn(6, 8), torch.randn(6, 8)).ndim == 0
