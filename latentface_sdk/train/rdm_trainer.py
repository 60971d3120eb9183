"""The stage-2 training loop: both representation diffusion models learn ``Z_id`` from groups of latents.

Each step samples ``batch_groups`` identity groups and up to ``frames_per_group`` frames of each
(:func:`sample_batch`); the target ``Z_id`` of a group is the mean of its sampled frames' ``Z_exp`` and
every sampled frame is a condition. The texture and shape RDMs (:class:`RDMPair`) train on the same
frames with one Adam optimiser. Randomness comes from ``(seed, step)``, so a resumed run draws what an
uninterrupted one would; checkpoints (weights as safetensors, optimiser and RNG state for
``torch.load(weights_only=True)``) are written atomically by rank 0. Under torchrun the pair is wrapped
in DistributedDataParallel; each step's groups, timesteps and noise are drawn for the global batch and
each rank takes its own groups, its loss weighted by its share of the rows, so N processes train (and
log) as one process with N times ``batch_groups``.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
from safetensors.torch import load_file
from torch import Tensor, nn
from tqdm.auto import tqdm

from ..atomic import save_safetensors
from ..config import RDMConfig
from ..digests import seed_digest, text_digest
from ..errors import ConfigError, DataError, WeightsError
from ..models.rdm import DEFAULT_SNR_GAMMA, RepresentationDiffusion
from .recipes import Stage2Config
from .runtime import (
    append_log,
    init_distributed,
    load_trainer_state,
    mean_over_ranks,
    rank_weights,
    save_trainer_state,
)

__all__ = ["CHECKPOINT_DIR", "LOG_NAME", "RDMPair", "sample_batch", "train_rdms"]

CHECKPOINT_DIR = "checkpoint"
CHECKPOINT_WEIGHTS = "rdm.safetensors"
CHECKPOINT_STATE = "trainer_state.pt"
LOG_NAME = "train_log.jsonl"


def _step_generator(seed: int, step: int, rank: int) -> torch.Generator:
    """The CPU generator of one training step on one rank (a pure function of its arguments)."""
    return torch.Generator().manual_seed(seed_digest(f"stage2|{seed}|{step}|{rank}".encode()))


def sample_batch(
    groups: Sequence[Tensor],
    batch_groups: int,
    frames_per_group: int,
    generator: torch.Generator,
) -> tuple[Tensor, Tensor]:
    """Sample the rows of one step: ``(frame indices (R,), group position of each row (R,))``.

    ``batch_groups`` distinct groups (with replacement only if there are fewer groups), and
    ``min(frames_per_group, group size)`` distinct frames of each.
    """
    g = len(groups)
    if g == 0:
        raise DataError("no groups to sample from")
    if batch_groups <= g:
        chosen = torch.randperm(g, generator=generator)[:batch_groups]
    else:
        chosen = torch.randint(0, g, (batch_groups,), generator=generator)
    frames: list[Tensor] = []
    owner: list[Tensor] = []
    for pos, gi in enumerate(chosen.tolist()):
        members = groups[gi]
        k = min(frames_per_group, members.numel())
        pick = members[torch.randperm(members.numel(), generator=generator)[:k]]
        frames.append(pick)
        owner.append(torch.full((k,), pos, dtype=torch.long))
    return torch.cat(frames), torch.cat(owner)


def _group_means(values: Tensor, owner: Tensor, n_groups: int) -> Tensor:
    """Per-row mean of the rows that share its group (the target ``Z_id`` of each row)."""
    sums = torch.zeros(n_groups, values.shape[1], dtype=values.dtype, device=values.device)
    sums.index_add_(0, owner, values)
    counts = torch.bincount(owner, minlength=n_groups).to(values.dtype).clamp(min=1)
    return (sums / counts[:, None])[owner]


# ---------------------------------------------------------------------------------------- training


class RDMPair(nn.Module):
    """The two stage-2 models: ``rdm_texture`` and ``rdm_shape`` (state-dict keys carry these prefixes)."""

    def __init__(self, cfg: RDMConfig, *, snr_gamma: float | None = DEFAULT_SNR_GAMMA) -> None:
        super().__init__()
        self.rdm_texture = RepresentationDiffusion(cfg, snr_gamma=snr_gamma)
        self.rdm_shape = RepresentationDiffusion(cfg, snr_gamma=snr_gamma)

    def forward(
        self,
        texture_id: Tensor,
        texture_exp: Tensor,
        shape_id: Tensor,
        shape_exp: Tensor,
        generator: torch.Generator | None = None,
        draws: Sequence[Tensor] | None = None,
    ) -> tuple[Tensor, Tensor]:
        """Training losses ``(texture, shape)`` of one batch (targets ``*_id``, conditions ``*_exp``).

        ``draws``: the timesteps and noise of both models (:func:`loss_draws`), instead of drawing them
        from ``generator``.
        """
        if draws is None:
            return (
                self.rdm_texture.training_loss(texture_id, texture_exp, generator=generator),
                self.rdm_shape.training_loss(shape_id, shape_exp, generator=generator),
            )
        t_tex, n_tex, t_shape, n_shape = draws
        return (
            self.rdm_texture.training_loss(texture_id, texture_exp, timesteps=t_tex, noise=n_tex),
            self.rdm_shape.training_loss(shape_id, shape_exp, timesteps=t_shape, noise=n_shape),
        )


def loss_draws(generator: torch.Generator, rows: int, dim: int, timesteps: int) -> list[Tensor]:
    """The timesteps and noise of one step's rows, for both models, drawn in the order (and with the
    shapes) in which the two models' ``training_loss`` would draw them: so one process draws the same
    whether it takes them from here or lets the models draw."""
    out: list[Tensor] = []
    for _ in range(2):
        out.append(torch.randint(0, timesteps, (rows,), generator=generator))
        out.append(torch.randn((rows, dim), generator=generator))
    return out


def _log(path: Path, record: dict[str, Any]) -> None:
    append_log(path, {"time": time.strftime("%Y-%m-%dT%H:%M:%S"), **record})


def _save_checkpoint(out_dir: Path, pair: RDMPair, opt: torch.optim.Optimizer, step: int,
                     recipe: str) -> None:
    ckpt = out_dir / CHECKPOINT_DIR
    state = {k: v.detach().to("cpu").contiguous() for k, v in pair.state_dict().items()}
    save_safetensors(state, ckpt / CHECKPOINT_WEIGHTS, {"step": str(step), "recipe_hash": recipe})
    save_trainer_state(ckpt / CHECKPOINT_STATE, opt, step)


def _load_checkpoint(out_dir: Path, pair: RDMPair, opt: torch.optim.Optimizer, recipe: str,
                     device: torch.device) -> int:
    """Restore weights, optimiser and RNG state; returns the step to continue from (0 when none)."""
    ckpt = out_dir / CHECKPOINT_DIR
    weights, state_file = ckpt / CHECKPOINT_WEIGHTS, ckpt / CHECKPOINT_STATE
    if not weights.is_file() or not state_file.is_file():
        return 0
    from safetensors import safe_open

    with safe_open(str(weights), framework="pt") as fh:
        meta = fh.metadata() or {}
    if meta.get("recipe_hash") != recipe:
        raise ConfigError(
            f"{ckpt}: the checkpoint was written by a different stage-2 recipe (data, batch, lr, seed or "
            "architecture changed); use another --out folder or the original config"
        )
    try:
        pair.load_state_dict(load_file(str(weights), device=str(device)))
        state = load_trainer_state(state_file, opt, device)
    except (RuntimeError, OSError) as exc:
        raise WeightsError(f"{ckpt}: cannot restore the stage-2 checkpoint ({exc})") from exc
    step = int(state["step"])
    if str(step) != meta.get("step"):
        raise WeightsError(f"{ckpt}: weights (step {meta.get('step')}) and trainer state "
                           f"(step {step}) disagree")
    return step


def train_rdms(
    latents: dict[str, Tensor],
    groups: Sequence[np.ndarray | Tensor],
    cfg: Stage2Config,
    out_dir: str | Path,
    *,
    device: str | torch.device = "cpu",
    resume: bool = False,
    progress: bool = True,
    data_key: str = "",
) -> tuple[RDMPair, list[dict[str, float]]]:
    """Train the texture and shape RDMs on cached latents grouped by identity.

    ``latents`` holds ``texture`` and ``shape`` (N, D); ``groups`` the row indices of each group (groups
    smaller than ``cfg.min_group_size`` are ignored). Trains until ``cfg.steps``, checkpointing every
    ``cfg.checkpoint_every`` steps and at the end into ``out_dir/checkpoint``; with ``resume`` it
    continues from that checkpoint (same recipe and ``data_key`` required). Logs JSON lines to
    ``out_dir/train_log.jsonl``. Returns the trained models (unwrapped, on ``device``) and the per-step
    losses of the steps run by this call (``{"step", "loss_texture", "loss_shape"}``).
    """
    cfg.validate()
    dev = torch.device(device)
    ddp = init_distributed(dev)
    out = Path(out_dir)
    rcfg = cfg.rdm
    tex = latents["texture"].to(dev, torch.float32)
    shp = latents["shape"].to(dev, torch.float32)
    if tex.shape != shp.shape or tex.ndim != 2 or tex.shape[1] != rcfg.latent_dim:
        raise DataError(f"latents must be (N, {rcfg.latent_dim}) for texture and shape; "
                        f"got {tuple(tex.shape)}, {tuple(shp.shape)}")
    members = [torch.as_tensor(np.asarray(g), dtype=torch.long) for g in groups]
    members = [m for m in members if m.numel() >= cfg.min_group_size]
    if not members:
        raise DataError(f"no group with at least {cfg.min_group_size} images")
    used = torch.unique(torch.cat(members))
    if int(used.max()) >= tex.shape[0] or int(used.min()) < 0:
        raise DataError("group indices fall outside the latents")

    with torch.random.fork_rng(devices=[]):  # initial weights depend on the seed only
        torch.manual_seed(cfg.seed)
        pair = RDMPair(rcfg, snr_gamma=cfg.snr_gamma).to(dev)
    pair.rdm_texture.set_latent_statistics(tex[used])
    pair.rdm_shape.set_latent_statistics(shp[used])
    opt = torch.optim.Adam(pair.parameters(), lr=cfg.lr)
    recipe = text_digest(f"{cfg.recipe_hash()}|{data_key}|{rcfg}")
    start = _load_checkpoint(out, pair, opt, recipe, dev) if resume else 0
    model: nn.Module = pair
    if ddp.active:
        from torch.nn.parallel import DistributedDataParallel

        model = DistributedDataParallel(pair, device_ids=[dev.index] if dev.type == "cuda" else None)

    is_main = ddp.rank == 0
    log_path = out / LOG_NAME
    if is_main:
        out.mkdir(parents=True, exist_ok=True)
        _log(log_path, {"event": "start", "step": start, "steps": cfg.steps, "groups": len(members),
                               "images": int(used.numel()), "world_size": ddp.world, "device": str(dev)})
    history: list[dict[str, float]] = []
    window: list[tuple[float, float]] = []
    t0 = time.perf_counter()
    pair.train()
    with tqdm(total=cfg.steps, initial=start, desc="stage 2", unit="step",
              disable=not (progress and is_main)) as bar:
        for step in range(start, cfg.steps):
            # One draw for the global batch (batch_groups groups on each rank), each rank taking its
            # groups and their rows' timesteps and noise: N processes train as one with N times the batch.
            gen = _step_generator(cfg.seed, step, 0)
            rows_all, owner_all = sample_batch(members, cfg.batch_groups * ddp.world,
                                               cfg.frames_per_group, gen)
            draws = loss_draws(gen, rows_all.numel(), rcfg.latent_dim, rcfg.num_train_timesteps)
            mine = owner_all // cfg.batch_groups == ddp.rank
            rows, owner = rows_all[mine].to(dev), (owner_all[mine] - ddp.rank * cfg.batch_groups).to(dev)
            n_groups = int(owner.max()) + 1
            t_exp, s_exp = tex[rows], shp[rows]
            t_id, s_id = _group_means(t_exp, owner, n_groups), _group_means(s_exp, owner, n_groups)
            loss_t, loss_s = model(t_id, t_exp, s_id, s_exp, draws=[d[mine] for d in draws])
            # Each rank's mean weighted by its share of the rows: DDP's average of the ranks' gradients
            # is then the gradient of the global batch's mean loss.
            share = float(mine.sum()) * ddp.world / rows_all.numel()
            opt.zero_grad(set_to_none=True)
            ((loss_t + loss_s) * share).backward()
            opt.step()
            lt, ls = float(loss_t.detach()) * share, float(loss_s.detach()) * share
            if ddp.active:
                means = mean_over_ranks({"texture": lt, "shape": ls})  # the global batch's losses
                lt, ls = means["texture"], means["shape"]
            history.append({"step": step + 1, "loss_texture": lt, "loss_shape": ls})
            window.append((lt, ls))
            bar.update(1)
            bar.set_postfix(tex=f"{lt:.4f}", shape=f"{ls:.4f}", refresh=False)
            done = step + 1
            if is_main and (done % cfg.log_every == 0 or done == cfg.steps):
                arr = np.asarray(window)
                _log(log_path, {"step": done, "loss_texture": float(arr[:, 0].mean()),
                                       "loss_shape": float(arr[:, 1].mean()), "rows": int(rows.numel()),
                                       "elapsed_s": round(time.perf_counter() - t0, 3)})
                window.clear()
            if done % cfg.checkpoint_every == 0 or done == cfg.steps:
                if is_main:
                    _save_checkpoint(out, pair, opt, done, recipe)
                if ddp.active:
                    dist.barrier()
    agree = rank_weights(pair)
    if is_main:
        _log(log_path, {"event": "end", "step": cfg.steps, "seconds": round(time.perf_counter() - t0, 3),
                        **agree})
    return pair, history
