"""Stage-2 trainer: the two representation diffusion models (texture and shape), stage-1 encoders frozen.

Pipeline (paper sections 2.3-2.4):

1. read identity groups (:mod:`latentface_sdk.train.groups`), crop the faces
   (:func:`latentface_sdk.cropset.prepare_crops`, cached);
2. encode every crop once with the frozen stage-1 encoders (:func:`encode_latents`), cached in a
   safetensors file keyed by the model checksum and a hash of the crops (:func:`cached_latents`);
3. train (:func:`~latentface_sdk.train.rdm_trainer.train_rdms`): each step samples ``batch_groups``
   groups and ``k = min(frames_per_group, group size)`` frames of each; the target ``Z_id`` of a
   group is the mean of *its sampled frames'* ``Z_exp``, and every sampled frame's ``Z_exp`` is a
   condition. Both RDMs are trained on the same frames with one Adam optimiser (their parameters
   are disjoint, so this equals two optimisers);
4. write a model folder (:func:`write_model_folder`): the stage-1 ``autoencoder.*`` tensors and the new
   ``rdm_texture.*``/``rdm_shape.*`` tensors in one ``model.safetensors`` plus ``config.json``.

Randomness is derived from ``(seed, step)`` at every step, so a resumed run draws exactly what
an uninterrupted one would. Checkpoints: ``<out>/checkpoint/rdm.safetensors`` (weights) and
``<out>/checkpoint/trainer_state.pt`` (optimiser state, step and torch RNG state; plain tensors and
numbers, read back with ``torch.load(weights_only=True)``). The log is JSON lines in
``<out>/train_log.jsonl``. Under ``torchrun`` (``WORLD_SIZE > 1``) the models are wrapped in
DistributedDataParallel (gloo on CPU, nccl on CUDA), each rank takes its own groups of the global
batch's draw and rank 0 writes every file.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import time
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
import torch.distributed as dist
from torch import Tensor, nn

from ..config import HeadsConfig, ModelConfig
from ..digests import array_digest, json_digest, tensors_digest
from ..errors import ConfigError, DataError, LatentFaceError, WeightsError
from ..model_folder import (
    AUTOENCODER,
    RDM_SHAPE,
    RDM_TEXTURE,
    load_model_folder,
    load_part,
    prefixed,
    save_model_folder,
    with_prefix,
)
from ._cli import error_exit
from .groups import (
    GroupedImages,
    celeba_identity_groups,
    imfdb_groups,
    labelled_groups,
    read_group_manifest,
    voxceleb_groups,
)
from .latents import cached_latents, encode_latents
from .rdm_trainer import RDMPair, sample_batch, train_rdms
from .recipes import DATA_KINDS, DataSource, Stage2Config
from .runtime import init_distributed, rank_device

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


# ---------------------------------------------------------------------------------------- data


def load_groups(sources: Sequence[DataSource], *, min_size: int = 2) -> GroupedImages:
    """Read and combine the identity groups of several data sources (group labels kept distinct)."""
    if not sources:
        raise DataError("no stage-2 data: give at least one data source "
                        "(celeba, imfdb, labels, manifest or voxceleb)")
    parts: list[GroupedImages] = []
    for i, src in enumerate(sources):
        src.validate()
        if src.kind == "celeba":
            part = celeba_identity_groups(src.path, src.split, min_size=min_size)
        elif src.kind == "imfdb":
            part = imfdb_groups(src.path, min_size=min_size)
        elif src.kind == "labels":
            part = labelled_groups(src.path, holdout=src.holdout, min_size=min_size)
        elif src.kind == "manifest":
            part = read_group_manifest(src.path, min_size=min_size).prefixed(f"manifest{i}")
        else:
            part = voxceleb_groups(src.path, min_size=min_size).prefixed(f"voxceleb{i}")
        if not len(part):
            raise DataError(f"{src.kind} data at {src.path}: no group with at least {min_size} images")
        parts.append(part)
    return GroupedImages.concat(parts)


# ---------------------------------------------------------------------------------------- model folders


def load_stage1_folder(folder: str | Path) -> tuple[ModelConfig, dict[str, Tensor]]:
    """A stage-1 model folder -> (its config, its ``autoencoder.*`` tensors with the prefix kept).

    The checksum recorded in ``config.json`` is verified
    (:func:`latentface_sdk.model_folder.load_model_folder`).
    """
    mcfg, state = load_model_folder(folder)
    ae = with_prefix(state, AUTOENCODER)
    if not ae:
        raise WeightsError(f"{folder}: the weights hold no '{AUTOENCODER}*' tensors (not a stage-1 model)")
    return mcfg, ae


def build_autoencoder(mcfg: ModelConfig, tensors: dict[str, Tensor], *,
                      source: str = "stage-1 weights") -> nn.Module:
    """The stage-1 :class:`~latentface_sdk.models.autoencoder.LatentAutoencoder` with its weights loaded
    (eval mode)."""
    from ..models.autoencoder import LatentAutoencoder

    model = LatentAutoencoder(mcfg.autoencoder)
    load_part(model, tensors, AUTOENCODER, source)
    return model.eval()


def write_model_folder(
    out_dir: str | Path,
    stage1_config: ModelConfig,
    autoencoder_tensors: dict[str, Tensor],
    pair: RDMPair,
    metadata: dict[str, Any],
) -> Path:
    """Write ``config.json`` + ``model.safetensors`` (stage-1 tensors and both RDMs) to ``out_dir``.

    The config is the stage-1 config with the trained ``rdm`` section, no answer heads, and
    ``metadata["stage2"]`` set to ``metadata``; :func:`latentface_sdk.model_folder.save_model_folder` fills
    in the checksum. Returns the folder.
    """
    tensors = dict(autoencoder_tensors)
    tensors.update(prefixed(pair.rdm_texture, RDM_TEXTURE))
    tensors.update(prefixed(pair.rdm_shape, RDM_SHAPE))
    mcfg = dataclasses.replace(
        stage1_config,
        rdm=pair.rdm_texture.config,
        # answer heads read the old RDMs' outputs and come with no tensors here: a new stage 2 has none
        # (fit them again with experiments/answer_heads.py)
        heads=HeadsConfig(),
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
    from ..cropset import prepare_crops

    cfg.validate()
    dev = rank_device(device)
    ddp = init_distributed(dev)
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

    crop_key = json_digest(list(data.paths))[:16]  # a list: no keys to sort, the JSON of before
    crop_file = cache / f"crops-{crop_key}.npz"

    def _crops() -> Any:
        fallback: Literal["center", "none"] = "center" if cfg.crop_fallback == "center" else "none"
        return prepare_crops(data.paths, mcfg.crop, detect=cfg.detect, fallback=fallback,
                             cache_file=crop_file, progress=progress and ddp.rank == 0)

    # Rank 0 does the expensive work first; the others then read its caches.
    crops = ddp.main_first(_crops)
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
                              batch_size=cfg.encode_batch_size, device=dev,
                              progress=progress and ddp.rank == 0)

    latents = ddp.main_first(_latents)

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
        "  OMP_NUM_THREADS=1 torchrun --nproc_per_node 2 -m latentface_sdk.train stage2 "
        "--stage1 runs/s1/model --out runs/s2",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--config", type=Path, default=DEFAULT_CONFIG, help="recipe JSON (default: %(default)s)")
    p.add_argument("--stage1", type=Path, required=True,
                   help="stage-1 model folder (config.json + model.safetensors)")
    p.add_argument("--out", type=Path, required=True,
                   help="output model folder (also holds checkpoint/, cache/, log)")
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
    p.add_argument("--cache-dir", type=Path,
                   help="where face crops and latents are cached (default: OUT/cache)")
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
        return error_exit(exc)
    finally:
        if dist.is_available() and dist.is_initialized():
            dist.destroy_process_group()
    if int(os.environ.get("RANK", "0")) == 0:
        print(f"stage-2 model written to {folder}")
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
