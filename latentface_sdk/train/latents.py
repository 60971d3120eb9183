"""Stage-2 inputs: every face crop encoded once by the frozen stage-1 encoders, cached on disk.

:func:`encode_latents` runs the encoders over ``uint8`` crops; :func:`cached_latents` keeps the result in a
safetensors file keyed by the model's checksum and a hash of the crops (recomputed when either changes).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import load_file
from torch import Tensor, nn
from tqdm.auto import tqdm

from ..atomic import save_safetensors
from ..digests import array_digest, tensors_digest
from ..errors import DataError
from ..pipeline import crops_to_input

__all__ = ["cached_latents", "encode_latents"]


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
            chunk = crops[start : start + batch_size]
            # as FaceEncoder feeds it
            lat = encode(crops_to_input(chunk, torch.device(device), torch.float32))
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

    The file name and its metadata carry the model checksum
    (:func:`~latentface_sdk.digests.tensors_digest` of the model unless given) and
    :func:`~latentface_sdk.digests.array_digest` of the crops; a file whose metadata or shapes do not
    match is recomputed. The file is written atomically.
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
