"""What both trainers share: the process group under ``torchrun``, each rank's device, the JSON log.

Under ``torchrun`` (``WORLD_SIZE > 1``) :func:`init_distributed` joins the process group (gloo on CPU,
nccl on CUDA) and :func:`rank_device` gives every rank its own GPU (``LOCAL_RANK``) and makes it the
current CUDA device; a single process is rank 0 of 1 and touches nothing. Checkpoints are written with
:mod:`latentface_sdk.atomic`; logs are JSON lines appended by rank 0 (:func:`append_log`).
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import torch
import torch.distributed as dist

from ..devices import resolve_device
from ..errors import ConfigError

__all__ = ["Distributed", "append_log", "init_distributed", "rank_device"]

T = TypeVar("T")


@dataclass(frozen=True)
class Distributed:
    """This process's place in a (possibly single-process) run."""

    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @property
    def active(self) -> bool:
        """True under torchrun with more than one process."""
        return self.world > 1

    @property
    def is_main(self) -> bool:
        """Rank 0 writes the logs, checkpoints and model folders."""
        return self.rank == 0

    def main_first(self, work: Callable[[], T]) -> T:
        """``work()`` on rank 0 first, then, after a barrier, on the other ranks (which read its caches)."""
        if self.rank == 0:
            result = work()
            if self.active:
                dist.barrier()
            return result
        dist.barrier()  # any other rank is part of a process group
        return work()


def _world_size() -> int:
    return int(os.environ.get("WORLD_SIZE", "1"))


def rank_device(name: str | torch.device) -> torch.device:
    """``name`` (``"auto"``, ``"cpu"``, ``"cuda"``, ``"cuda:N"``) as this rank's device.

    A CUDA device always comes back with an index (``torch.cuda.set_device``, NCCL and DDP's
    ``device_ids`` need one): a bare ``"cuda"`` (or ``"auto"`` on a GPU machine) becomes the local rank's
    GPU under torchrun, else the current CUDA device; it is made the current device (so NCCL and every
    ``.cuda()`` use it). Bad names raise :class:`ConfigError`.
    """
    try:
        dev = resolve_device(name)
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
    if dev.type == "cuda" and dev.index is None:
        local = int(os.environ.get("LOCAL_RANK", "0")) if _world_size() > 1 else torch.cuda.current_device()
        dev = torch.device("cuda", local)
    if dev.type == "cuda":
        torch.cuda.set_device(dev)
    return dev


def init_distributed(device: torch.device) -> Distributed:
    """Join the torchrun process group when there is one (once per process); returns this rank's place."""
    if _world_size() <= 1:
        return Distributed()
    if not dist.is_initialized():
        dist.init_process_group(backend="nccl" if device.type == "cuda" else "gloo")
    return Distributed(dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", "0")))


def append_log(path: Path, record: dict[str, Any]) -> None:
    """Append one JSON line to ``path``."""
    with path.open("a", encoding="utf-8") as fh:
        fh.write(json.dumps(record) + "\n")


def rank_weights(module: torch.nn.Module) -> dict[str, Any]:
    """Whether every rank ends with the same weights: each rank's digest of ``module`` (all ranks call it).

    DistributedDataParallel keeps the ranks' copies equal; a trainer logs this at its end so that a
    drift (a parameter outside the DDP module, a rank-dependent update) shows up in the log. Outside a
    process group: the one digest.
    """
    from ..digests import modules_digest

    mine = modules_digest(module)
    if not (dist.is_available() and dist.is_initialized()):
        return {"rank_weights": [mine], "ranks_agree": True}
    every: list[Any] = [None] * dist.get_world_size()
    dist.all_gather_object(every, mine)
    return {"rank_weights": every, "ranks_agree": len(set(every)) == 1}


def mean_over_ranks(parts: dict[str, float]) -> dict[str, float]:
    """Each value averaged over the ranks (all ranks call it with the same keys): the loss of the
    global batch, which is what one process with that batch would log. Unchanged outside a group."""
    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return parts
    keys = sorted(parts)
    values = torch.tensor([parts[k] for k in keys], dtype=torch.float64)
    dist.all_reduce(values)
    return {k: float(v) / dist.get_world_size() for k, v in zip(keys, values.tolist(), strict=True)}


def save_trainer_state(path: Path, optimizer: torch.optim.Optimizer, step: int, **extra: float) -> None:
    """Write what resuming needs besides the weights, atomically: optimizer state, step, torch's RNG."""
    from ..atomic import save_torch

    save_torch({"optimizer": optimizer.state_dict(), "step": int(step), "torch_rng": torch.get_rng_state(),
                **extra}, path)


def load_trainer_state(path: Path, optimizer: torch.optim.Optimizer,
                       device: str | torch.device = "cpu") -> dict[str, Any]:
    """Restore the optimizer and torch's RNG from :func:`save_trainer_state`'s file (tensors only, never
    unpickled code); returns the whole payload (``step`` and the extras)."""
    payload = torch.load(path, map_location=device, weights_only=True)
    optimizer.load_state_dict(payload["optimizer"])
    torch.set_rng_state(payload["torch_rng"].to("cpu"))
    return dict(payload)
