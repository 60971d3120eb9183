"""Stage-2 trainer: the two representation diffusion models (texture and shape), stage-1 encoders frozen.

Pipeline (paper sections 2.3-2.4):

1. read identity groups (:mod:`latentface_sdk.train.groups`), crop the faces
   (:func:`latentface_sdk.detection.prepare_crops`, cached);
2. encode every crop once with the frozen stage-1 encoders (:func:`encode_latents`), cached in a
   safetensors file keyed by the model checksum and a hash of the crops (:func:`cached_latents`);
3. train (:func:`train_rdms`): each step samples ``batch_groups`` groups and ``k = min(frames_per_group,
   group size)`` frames of each; the target ``Z_id`` of a group is the mean of *its sampled frames'*
   ``Z_exp``, and every sampled frame's ``Z_exp`` is a condition. Both RDMs are trained on the same
   frames with one Adam optimiser (their parameters are disjoint, so this equals two optimisers);
4. write a model folder (:func:`write_model_folder`): the stage-1 ``autoencoder.*`` tensors and the new
   ``rdm_texture.*``/``rdm_shape.*`` tensors in one ``model.safetensors`` plus ``config.json``.

Randomness is derived from ``(seed, step, rank)`` at every step, so a resumed run draws exactly what
an uninterrupted one would. Checkpoints: ``<out>/checkpoint/rdm.safetensors`` (weights) and
``<out>/checkpoint/trainer_state.pt`` (optimiser state, step and torch RNG state; plain tensors and
numbers, read back with ``torch.load(weights_only=True)``). The log is JSON lines in
``<out>/train_log.jsonl``. Under ``torchrun`` (``WORLD_SIZE > 1``) the models are wrapped in
DistributedDataParallel (gloo on CPU, nccl on CUDA), each rank samples its own groups and rank 0 writes
every file.
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import os
import sys
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
from safetensors.torch import load_file
from torch import Tensor, nn
from tqdm.auto import tqdm

from ..atomic import save_safetensors, save_torch
from ..checkpoint import load_model_folder, load_part, prefixed, save_model_folder
from ..config import ModelConfig, RDMConfig, build_config, load_json
from ..devices import resolve_device as _resolve_device
from ..digests import array_digest, tensors_digest
from ..errors import ConfigError, DataError, LatentFaceError, WeightsError
from ..models.rdm import DEFAULT_SNR_GAMMA, RepresentationDiffusion
from .groups import (
    GroupedImages,
    celeba_identity_groups,
    imfdb_groups,
    read_group_manifest,
    voxceleb_groups,
)

__all__ = [
    "DataSource",
    "Stage2Config",
    "RDMPair",
    "encode_latents",
    "cached_latents",
    "load_groups",
    "sample_batch",
    "train_rdms",
    "write_model_folder",
    "train_stage2",
    "main",
    "DEFAULT_CONFIG",
]

#: The recipe that trains the shipped stage-2 weights on ``../shared/data``.
DEFAULT_CONFIG = Path(__file__).resolve().parent / "configs" / "stage2_default.json"

DATA_KINDS = ("celeba", "imfdb", "manifest", "voxceleb")
CHECKPOINT_DIR = "checkpoint"
CHECKPOINT_WEIGHTS = "rdm.safetensors"
CHECKPOINT_STATE = "trainer_state.pt"
LOG_NAME = "train_log.jsonl"


# ---------------------------------------------------------------------------------------- config


@dataclass
class DataSource:
    """One data set of identity groups: ``kind`` in celeba/imfdb/manifest/voxceleb and its ``path``.

    ``path`` is the shared data folder for celeba and imfdb, the CSV for a manifest, the tree root for
    voxceleb; relative paths are resolved against the current directory. ``split`` is used by celeba
    only and must be ``"train"`` (the ``verify`` identities are never trained on).
    """

    kind: str
    path: str
    split: str = "train"

    def validate(self) -> None:
        if self.kind not in DATA_KINDS:
            raise ConfigError(f"data kind must be one of {DATA_KINDS} (got {self.kind!r})")
        if not self.path:
            raise ConfigError(f"data source {self.kind!r} has an empty path")
        if self.kind == "celeba" and self.split != "train":
            raise ConfigError("stage 2 trains on the celeba10k 'train' split only ('verify' is held out)")

    @classmethod
    def parse(cls, text: str) -> DataSource:
        """``"KIND=PATH"`` (command line form), e.g. ``celeba=../shared/data``."""
        kind, sep, path = text.partition("=")
        if not sep:
            raise ConfigError(f"--data expects KIND=PATH with KIND in {DATA_KINDS} (got {text!r})")
        src = cls(kind.strip(), path.strip())
        src.validate()
        return src


@dataclass
class Stage2Config:
    """The stage-2 training recipe (saved in the model's metadata and checked on resume).

    ``batch_groups`` groups per step with ``frames_per_group`` frames each (fewer for smaller groups);
    ``min_group_size`` drops smaller groups; ``max_groups`` (if set) keeps a random subset of the groups
    (for quick runs). ``snr_gamma`` clamps the SNR loss weight (``null`` = the paper's plain SNR).
    ``rdm`` is the :class:`~latentface_sdk.config.RDMConfig` trained (architecture, schedule, sampling
    defaults); a recipe lists only the fields it changes.
    ``detect``/``crop_fallback`` go to :func:`~latentface_sdk.detection.prepare_crops`.
    """

    data: list[DataSource] = field(default_factory=list)
    steps: int = 5000
    batch_groups: int = 16
    frames_per_group: int = 16
    min_group_size: int = 2
    max_groups: int | None = None
    lr: float = 1e-4
    snr_gamma: float | None = DEFAULT_SNR_GAMMA
    seed: int = 0
    encode_batch_size: int = 128
    detect: bool = True
    crop_fallback: str = "center"
    checkpoint_every: int = 1000
    log_every: int = 50
    rdm: RDMConfig = field(default_factory=lambda: RDMConfig())

    def validate(self) -> None:
        for src in self.data:
            src.validate()
        positive = {
            "steps": self.steps,
            "batch_groups": self.batch_groups,
            "frames_per_group": self.frames_per_group,
            "encode_batch_size": self.encode_batch_size,
            "checkpoint_every": self.checkpoint_every,
            "log_every": self.log_every,
        }
        bad = [k for k, v in positive.items() if v < 1]
        if bad:
            raise ConfigError(f"stage-2 config: {', '.join(bad)} must be positive")
        if self.min_group_size < 2:
            raise ConfigError("stage-2 config: min_group_size must be at least 2 (a group of one has no identity mean)")
        if self.max_groups is not None and self.max_groups < 1:
            raise ConfigError("stage-2 config: max_groups must be positive or null")
        if not self.lr > 0:
            raise ConfigError("stage-2 config: lr must be positive")
        if self.snr_gamma is not None and not self.snr_gamma > 0:
            raise ConfigError("stage-2 config: snr_gamma must be positive or null")
        if self.crop_fallback not in ("center", "none"):
            raise ConfigError("stage-2 config: crop_fallback must be 'center' or 'none'")
        self.rdm.validate()

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any], *, source: str = "stage-2 config") -> Stage2Config:
        """A validated recipe from a JSON-like dict (nested ``data`` sources and ``rdm``; unknown keys refused)."""
        cfg = build_config(cls, data, source)
        try:
            cfg.validate()
        except ConfigError as exc:
            raise ConfigError(f"{source}: {exc}") from None
        return cfg

    @classmethod
    def load(cls, path: str | Path) -> Stage2Config:
        """Read and validate a recipe file (``_comment`` keys document it)."""
        return load_json(cls, path)

    def recipe_hash(self) -> str:
        """Hash of the fields that must not change when a run is resumed (everything but steps/logging)."""
        d = self.to_dict()
        for k in ("steps", "checkpoint_every", "log_every", "encode_batch_size"):
            d.pop(k)
        return hashlib.sha256(json.dumps(d, sort_keys=True).encode()).hexdigest()


# ---------------------------------------------------------------------------------------- hashing


# ---------------------------------------------------------------------------------------- encoding


@torch.no_grad()
def encode_latents(
    model: nn.Module,
    crops: np.ndarray,
    batch_size: int = 128,
    device: str | torch.device = "cpu",
    progress: bool = True,
) -> dict[str, Tensor]:
    """Encode face crops ``uint8 (N, 64, 64, 3)`` with a stage-1 model's ``encode``.

    The model is put in eval mode (batch-norm statistics frozen) and moved to ``device``. Returns
    ``{"texture": (N, D), "shape": (N, D)}`` float32 CPU tensors.
    """
    if crops.ndim != 4 or crops.shape[-1] != 3 or crops.dtype != np.uint8:
        raise DataError(f"crops must be uint8 (N, H, W, 3); got {crops.dtype} {crops.shape}")
    model.eval().to(device)
    encode: Callable[[Tensor], Any] = model.encode  # type: ignore[assignment]
    out: dict[str, list[Tensor]] = {"texture": [], "shape": []}
    n = crops.shape[0]
    with tqdm(total=n, desc="encode latents", unit="img", disable=not progress) as bar:
        for start in range(0, n, batch_size):
            chunk = torch.from_numpy(np.ascontiguousarray(crops[start : start + batch_size]))
            x = chunk.to(device).permute(0, 3, 1, 2).to(torch.float32) / 255.0
            lat = encode(x)
            out["texture"].append(lat.texture.detach().to("cpu", torch.float32))
            out["shape"].append(lat.shape.detach().to("cpu", torch.float32))
            bar.update(chunk.shape[0])
    return {k: torch.cat(v) if v else torch.zeros(0) for k, v in out.items()}


def cached_latents(
    model: nn.Module,
    crops: np.ndarray,
    cache_dir: str | Path,
    *,
    model_checksum: str | None = None,
    batch_size: int = 128,
    device: str | torch.device = "cpu",
    progress: bool = True,
) -> dict[str, Tensor]:
    """:func:`encode_latents`, cached in ``cache_dir/latents-<model>-<data>.safetensors``.

    The file name and its metadata carry the model checksum (:func:`~latentface_sdk.digests.tensors_digest` of the model
    unless given) and :func:`~latentface_sdk.digests.array_digest` of the crops; a file whose metadata or shapes do not match is
    recomputed. The file is written atomically.
    """
    model_key = model_checksum or tensors_digest(model.state_dict())
    data_key = array_digest(crops)
    path = Path(cache_dir) / f"latents-{model_key[:16]}-{data_key[:16]}.safetensors"
    if path.is_file():
        try:
            from safetensors import safe_open

            with safe_open(str(path), framework="pt") as fh:
                meta = fh.metadata() or {}
            tensors = load_file(str(path))
            if (
                meta.get("model_checksum") == model_key
                and meta.get("data_hash") == data_key
                and all(tensors[k].shape[0] == crops.shape[0] for k in ("texture", "shape"))
            ):
                return {"texture": tensors["texture"], "shape": tensors["shape"]}
        except (OSError, KeyError, RuntimeError, ValueError):
            pass  # unreadable or stale: recompute below
    latents = encode_latents(model, crops, batch_size=batch_size, device=device, progress=progress)
    save_safetensors(
        {k: v.contiguous() for k, v in latents.items()},
        path,
        {"model_checksum": model_key, "data_hash": data_key, "count": str(crops.shape[0])},
    )
    return latents


# ---------------------------------------------------------------------------------------- data


def load_groups(sources: Sequence[DataSource], *, min_size: int = 2) -> GroupedImages:
    """Read and combine the identity groups of several data sources (group labels kept distinct)."""
    if not sources:
        raise DataError("no stage-2 data: give at least one data source (celeba, imfdb, manifest or voxceleb)")
    parts: list[GroupedImages] = []
    for i, src in enumerate(sources):
        src.validate()
        if src.kind == "celeba":
            part = celeba_identity_groups(src.path, src.split, min_size=min_size)
        elif src.kind == "imfdb":
            part = imfdb_groups(src.path, min_size=min_size)
        elif src.kind == "manifest":
            part = read_group_manifest(src.path, min_size=min_size).prefixed(f"manifest{i}")
        else:
            part = voxceleb_groups(src.path, min_size=min_size).prefixed(f"voxceleb{i}")
        if not len(part):
            raise DataError(f"{src.kind} data at {src.path}: no group with at least {min_size} images")
        parts.append(part)
    return GroupedImages.concat(parts)


def _step_generator(seed: int, step: int, rank: int) -> torch.Generator:
    """The CPU generator of one training step on one rank (a pure function of its arguments)."""
    mixed = hashlib.sha256(f"stage2|{seed}|{step}|{rank}".encode()).digest()
    return torch.Generator().manual_seed(int.from_bytes(mixed[:8], "little") & (2**63 - 1))


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
    ) -> tuple[Tensor, Tensor]:
        """Training losses ``(texture, shape)`` of one batch (targets ``*_id``, conditions ``*_exp``)."""
        return (
            self.rdm_texture.training_loss(texture_id, texture_exp, generator=generator),
            self.rdm_shape.training_loss(shape_id, shape_exp, generator=generator),
        )


@dataclass
class _Dist:
    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @property
    def active(self) -> bool:
        return self.world > 1


def _init_distributed(device: torch.device) -> _Dist:
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return _Dist()
    if not dist.is_initialized():
        dist.init_process_group(backend="nccl" if device.type == "cuda" else "gloo")
    return _Dist(dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", "0")))


def resolve_device(name: str) -> torch.device:
    """``"auto"`` (CUDA when available, else CPU), ``"cpu"`` or ``"cuda"``/``"cuda:N"``.

    Under torchrun with CUDA a bare ``"cuda"`` becomes the local rank's GPU.
    """
    try:
        dev = _resolve_device(name)
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
    if dev.type == "cuda" and dev.index is None and int(os.environ.get("WORLD_SIZE", "1")) > 1:
        dev = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
    return dev


def _save_checkpoint(out_dir: Path, pair: RDMPair, opt: torch.optim.Optimizer, step: int, recipe: str) -> None:
    ckpt = out_dir / CHECKPOINT_DIR
    state = {k: v.detach().to("cpu").contiguous() for k, v in pair.state_dict().items()}
    save_safetensors(state, ckpt / CHECKPOINT_WEIGHTS, {"step": str(step), "recipe_hash": recipe})
    save_torch(
        {"step": torch.tensor(step, dtype=torch.long), "optimizer": opt.state_dict(), "torch_rng": torch.get_rng_state()},
        ckpt / CHECKPOINT_STATE,
    )


def _load_checkpoint(out_dir: Path, pair: RDMPair, opt: torch.optim.Optimizer, recipe: str, device: torch.device) -> int:
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
        state = torch.load(state_file, map_location=device, weights_only=True)
    except (RuntimeError, OSError) as exc:
        raise WeightsError(f"{ckpt}: cannot restore the stage-2 checkpoint ({exc})") from exc
    opt.load_state_dict(state["optimizer"])
    torch.set_rng_state(state["torch_rng"].to("cpu"))
    step = int(state["step"])
    if str(step) != meta.get("step"):
        raise WeightsError(f"{ckpt}: weights (step {meta.get('step')}) and trainer state (step {step}) disagree")
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
    ddp = _init_distributed(dev)
    out = Path(out_dir)
    rcfg = cfg.rdm
    tex = latents["texture"].to(dev, torch.float32)
    shp = latents["shape"].to(dev, torch.float32)
    if tex.shape != shp.shape or tex.ndim != 2 or tex.shape[1] != rcfg.latent_dim:
        raise DataError(f"latents must be (N, {rcfg.latent_dim}) for texture and shape; got {tuple(tex.shape)}, {tuple(shp.shape)}")
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
    recipe = hashlib.sha256(f"{cfg.recipe_hash()}|{data_key}|{rcfg}".encode()).hexdigest()
    start = _load_checkpoint(out, pair, opt, recipe, dev) if resume else 0
    model: nn.Module = pair
    if ddp.active:
        from torch.nn.parallel import DistributedDataParallel

        model = DistributedDataParallel(pair, device_ids=[dev.index] if dev.type == "cuda" else None)

    is_main = ddp.rank == 0
    log_path = out / LOG_NAME
    if is_main:
        out.mkdir(parents=True, exist_ok=True)
        _append_log(log_path, {"event": "start", "step": start, "steps": cfg.steps, "groups": len(members),
                               "images": int(used.numel()), "world_size": ddp.world, "device": str(dev)})
    history: list[dict[str, float]] = []
    window: list[tuple[float, float]] = []
    t0 = time.perf_counter()
    pair.train()
    with tqdm(total=cfg.steps, initial=start, desc="stage 2", unit="step", disable=not (progress and is_main)) as bar:
        for step in range(start, cfg.steps):
            gen = _step_generator(cfg.seed, step, ddp.rank)
            rows, owner = sample_batch(members, cfg.batch_groups, cfg.frames_per_group, gen)
            rows, owner = rows.to(dev), owner.to(dev)
            n_groups = int(owner.max()) + 1
            t_exp, s_exp = tex[rows], shp[rows]
            t_id, s_id = _group_means(t_exp, owner, n_groups), _group_means(s_exp, owner, n_groups)
            loss_t, loss_s = model(t_id, t_exp, s_id, s_exp, generator=gen)
            opt.zero_grad(set_to_none=True)
            (loss_t + loss_s).backward()
            opt.step()
            lt, ls = float(loss_t.detach()), float(loss_s.detach())
            history.append({"step": step + 1, "loss_texture": lt, "loss_shape": ls})
            window.append((lt, ls))
            bar.update(1)
            bar.set_postfix(tex=f"{lt:.4f}", shape=f"{ls:.4f}", refresh=False)
            done = step + 1
            if is_main and (done % cfg.log_every == 0 or done == cfg.steps):
                arr = np.asarray(window)
                _append_log(log_path, {"step": done, "loss_texture": float(arr[:, 0].mean()),
                                       "loss_shape": float(arr[:, 1].mean()), "rows": int(rows.numel()),
                                       "elapsed_s": round(time.perf_counter() - t0, 3)})
                window.clear()
            if done % cfg.checkpoint_every == 0 or done == cfg.steps:
                if is_main:
                    _save_checkpoint(out, pair, opt, done, recipe)
                if ddp.active:
                    dist.barrier()
    if is_main:
        _append_log(log_path, {"event": "end", "step": cfg.steps, "seconds": round(time.perf_counter() - t0, 3)})
    return pair, history


def _append_log(path: Path, record: dict[str, Any]) -> None:
    record = {"time": time.strftime("%Y-%m-%dT%H:%M:%S"), **record}
    with path.open("a", encoding="utf-8") as fh:
        fh.write(json.dumps(record) + "\n")


# ---------------------------------------------------------------------------------------- model folders


def load_stage1_folder(folder: str | Path) -> tuple[ModelConfig, dict[str, Tensor]]:
    """A stage-1 model folder -> (its config, its ``autoencoder.*`` tensors with the prefix kept).

    The checksum recorded in ``config.json`` is verified (:func:`latentface_sdk.checkpoint.load_model_folder`).
    """
    mcfg, state = load_model_folder(folder)
    ae = {k: v for k, v in state.items() if k.startswith("autoencoder.")}
    if not ae:
        raise WeightsError(f"{folder}: the weights hold no 'autoencoder.*' tensors (not a stage-1 model)")
    return mcfg, ae


def build_autoencoder(mcfg: ModelConfig, tensors: dict[str, Tensor], *, source: str = "stage-1 weights") -> nn.Module:
    """The stage-1 :class:`~latentface_sdk.models.autoencoder.LatentAutoencoder` with its weights loaded (eval mode)."""
    from ..models.autoencoder import LatentAutoencoder

    model = LatentAutoencoder(mcfg.autoencoder)
    load_part(model, tensors, "autoencoder.", source)
    return model.eval()


def write_model_folder(
    out_dir: str | Path,
    stage1_config: ModelConfig,
    autoencoder_tensors: dict[str, Tensor],
    pair: RDMPair,
    metadata: dict[str, Any],
) -> Path:
    """Write ``config.json`` + ``model.safetensors`` (stage-1 tensors and both RDMs) to ``out_dir``.

    The config is the stage-1 config with the trained ``rdm`` section and ``metadata["stage2"]`` set to
    ``metadata``; :func:`latentface_sdk.checkpoint.save_model_folder` fills in the checksum. Returns the
    folder.
    """
    tensors = dict(autoencoder_tensors)
    tensors.update(prefixed(pair.rdm_texture, "rdm_texture."))
    tensors.update(prefixed(pair.rdm_shape, "rdm_shape."))
    mcfg = dataclasses.replace(
        stage1_config,
        rdm=pair.rdm_texture.config,
        metadata={**stage1_config.metadata, "stage2": metadata},
        checksum=None,
    )
    mcfg.validate()
    return save_model_folder(out_dir, mcfg, tensors)


# ---------------------------------------------------------------------------------------- the whole run


def train_stage2(
    cfg: Stage2Config,
    *,
    stage1: str | Path,
    out: str | Path,
    device: str = "auto",
    resume: bool = False,
    cache_dir: str | Path | None = None,
    progress: bool = True,
) -> Path:
    """Run stage 2 end to end (groups -> crops -> latents -> RDMs -> model folder); returns the folder."""
    from ..detection import prepare_crops

    cfg.validate()
    dev = resolve_device(device)
    ddp = _init_distributed(dev)
    out_dir = Path(out)
    cache = Path(cache_dir) if cache_dir is not None else out_dir / "cache"
    mcfg, ae_tensors = load_stage1_folder(stage1)
    rcfg = cfg.rdm
    if rcfg.latent_dim != mcfg.autoencoder.latent_dim:
        raise ConfigError("rdm.latent_dim must equal the stage-1 autoencoder.latent_dim")

    data = load_groups(cfg.data, min_size=cfg.min_group_size)
    if cfg.max_groups is not None and data.num_groups > cfg.max_groups:
        index = data.group_indices()
        keep = torch.randperm(len(index), generator=torch.Generator().manual_seed(cfg.seed))[: cfg.max_groups]
        data = data.subset(np.sort(np.concatenate([index[i] for i in keep.tolist()])))

    crop_key = hashlib.sha256(json.dumps(data.paths).encode()).hexdigest()[:16]
    crop_file = cache / f"crops-{crop_key}.npz"

    def _crops() -> Any:
        return prepare_crops(data.paths, mcfg.crop, detect=cfg.detect, fallback=cfg.crop_fallback,  # type: ignore[arg-type]
                             cache_file=crop_file, progress=progress and ddp.rank == 0)

    # Rank 0 does the expensive work first; the others then read its caches.
    if ddp.rank == 0:
        crops = _crops()
    if ddp.active:
        dist.barrier()
    if ddp.rank != 0:
        crops = _crops()
    ok_rows = np.flatnonzero(crops.ok).tolist()
    sizes = Counter(data.groups[i] for i in ok_rows)
    rows = [i for i in ok_rows if sizes[data.groups[i]] >= cfg.min_group_size]
    data = data.subset(rows)
    face_crops = crops.crops[rows]
    if not len(data):
        raise DataError("stage 2: no usable face crops (every image failed or no group kept two faces)")

    ae = build_autoencoder(mcfg, ae_tensors)
    model_key = tensors_digest(ae_tensors)

    def _latents() -> dict[str, Tensor]:
        return cached_latents(ae, face_crops, cache, model_checksum=model_key,
                              batch_size=cfg.encode_batch_size, device=dev, progress=progress and ddp.rank == 0)

    if ddp.rank == 0:
        latents = _latents()
    if ddp.active:
        dist.barrier()
    if ddp.rank != 0:
        latents = _latents()

    t0 = time.perf_counter()
    pair, _ = train_rdms(latents, data.group_indices(), cfg, out_dir, device=dev,
                         resume=resume, progress=progress, data_key=f"{model_key}|{array_digest(face_crops)}")
    seconds = time.perf_counter() - t0
    if ddp.rank == 0:
        meta = {
            "recipe": cfg.to_dict(),
            "data": data.source,
            "images": len(data),
            "groups": data.num_groups,
            "face_crops": crops.counts(),
            "stage1_checksum": mcfg.checksum or model_key,
            "train_seconds_this_run": round(seconds, 1),
            "device": str(dev),
            "world_size": ddp.world,
            "finished": time.strftime("%Y-%m-%dT%H:%M:%S"),
        }
        write_model_folder(out_dir, mcfg, ae_tensors, pair, meta)
    if ddp.active:
        dist.barrier()
    return out_dir


# ---------------------------------------------------------------------------------------- CLI


def build_parser() -> argparse.ArgumentParser:
    """The ``stage2`` command line."""
    p = argparse.ArgumentParser(
        prog="latentface-train stage2",
        description="Train the stage-2 representation diffusion models (texture and shape) on identity "
        "groups, with the stage-1 encoders frozen.",
        epilog="examples:\n"
        "  latentface-train stage2 --stage1 runs/s1/model --out runs/s2 --threads 2\n"
        "  latentface-train stage2 --stage1 runs/s1/model --out runs/s2 --resume   # continue a stopped run\n"
        "  OMP_NUM_THREADS=1 torchrun --nproc_per_node 2 -m latentface_sdk.train stage2 --stage1 runs/s1/model "
        "--out runs/s2",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--config", type=Path, default=DEFAULT_CONFIG, help="recipe JSON (default: %(default)s)")
    p.add_argument("--stage1", type=Path, required=True, help="stage-1 model folder (config.json + model.safetensors)")
    p.add_argument("--out", type=Path, required=True, help="output model folder (also holds checkpoint/, cache/, log)")
    p.add_argument(
        "--data", action="append", default=None, metavar="KIND=PATH",
        help=f"data source, repeatable; KIND in {', '.join(DATA_KINDS)} (replaces the config's data list)",
    )
    p.add_argument("--steps", type=int, help="total training steps")
    p.add_argument("--batch-groups", type=int, help="groups per step")
    p.add_argument("--frames-per-group", type=int, help="frames sampled per group (paper: 16)")
    p.add_argument("--max-groups", type=int, help="train on a random subset of this many groups")
    p.add_argument("--lr", type=float, help="Adam learning rate")
    p.add_argument("--seed", type=int, help="random seed")
    p.add_argument("--checkpoint-every", type=int, help="steps between checkpoints")
    p.add_argument("--device", default="auto", help="auto, cpu or cuda (default: auto)")
    p.add_argument("--cache-dir", type=Path, help="where face crops and latents are cached (default: OUT/cache)")
    p.add_argument("--resume", action="store_true", help="continue from OUT/checkpoint")
    p.add_argument("--threads", type=int, help="torch intra-op CPU threads (default: torch's choice)")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    return p


def config_from_args(args: argparse.Namespace) -> Stage2Config:
    """The recipe file with the command-line overrides applied."""
    cfg = Stage2Config.load(args.config)
    overrides = {
        "steps": args.steps,
        "batch_groups": args.batch_groups,
        "frames_per_group": args.frames_per_group,
        "max_groups": args.max_groups,
        "lr": args.lr,
        "seed": args.seed,
        "checkpoint_every": args.checkpoint_every,
    }
    cfg = dataclasses.replace(cfg, **{k: v for k, v in overrides.items() if v is not None})
    if args.data:
        cfg = dataclasses.replace(cfg, data=[DataSource.parse(d) for d in args.data])
    cfg.validate()
    return cfg


def main(argv: list[str] | None = None) -> int:
    """``python -m latentface_sdk.train stage2 ...``: returns a process exit code."""
    args = build_parser().parse_args(argv)
    if args.threads is not None:
        torch.set_num_threads(max(1, args.threads))
    try:
        cfg = config_from_args(args)
        folder = train_stage2(cfg, stage1=args.stage1, out=args.out, device=args.device, resume=args.resume,
                              cache_dir=args.cache_dir, progress=not args.no_progress)
    except LatentFaceError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    finally:
        if dist.is_available() and dist.is_initialized():
            dist.destroy_process_group()
    if int(os.environ.get("RANK", "0")) == 0:
        print(f"stage-2 model written to {folder}")
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
