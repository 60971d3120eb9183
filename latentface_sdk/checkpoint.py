"""Reading and writing model folders: ``config.json`` + ``model.safetensors`` (safetensors only).

A model folder holds every network of a checkpoint in one safetensors file, with prefixes per part:
``autoencoder.`` (stage 1), ``rdm_texture.`` and ``rdm_shape.`` (stage 2), and ``heads.`` (the answer heads,
when the config has them). The config records the
SHA-256 of the weights file, which :func:`load_model_folder` verifies. Nothing here ever unpickles.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import Tensor

from .atomic import atomic_path
from .config import CONFIG_NAME, WEIGHTS_NAME, ModelConfig
from .digests import file_digest
from .errors import ChecksumError, WeightsError

PREFIXES = ("autoencoder.", "rdm_texture.", "rdm_shape.", "heads.")

_PICKLE_MAGIC = (b"\x80\x02", b"\x80\x03", b"\x80\x04", b"\x80\x05", b"PK\x03\x04")


#: File suffixes of pickled weights (PyTorch, pickle): recognised to be refused with a reason, never read.
PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".ckpt", ".pkl")


def pickled_files(folder: Path) -> list[str]:
    """Names of the files in ``folder`` that look like pickled weights (sorted)."""
    return sorted(p.name for p in folder.iterdir() if p.suffix in PICKLE_SUFFIXES)


def save_model_folder(folder: str | Path, config: ModelConfig, state: dict[str, Tensor]) -> Path:
    """Write ``state`` and ``config`` (with the weights' checksum filled in) into ``folder``, atomically."""
    from safetensors.torch import save_file

    out = Path(folder)
    out.mkdir(parents=True, exist_ok=True)
    tensors = {k: v.detach().to("cpu").contiguous() for k, v in state.items()}
    # One metadata key only: safetensors writes its metadata map in hash order, so with several keys the
    # same weights could give different bytes (and checksums) from one save to the next.
    with atomic_path(out / WEIGHTS_NAME) as tmp:
        save_file(tensors, str(tmp), metadata={"format": "pt"})
        config.checksum = file_digest(tmp)
    with atomic_path(out / CONFIG_NAME) as tmp_cfg:
        config.save(tmp_cfg)
    return out


def load_model_folder(folder: str | Path, *,
                      verify_checksum: bool = True) -> tuple[ModelConfig, dict[str, Tensor]]:
    """Read a model folder; raise :class:`WeightsError` subclasses that name the file and the problem."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    root = Path(folder)
    if not root.is_dir():
        raise WeightsError(f"{root}: not a folder (expected {CONFIG_NAME} and {WEIGHTS_NAME} inside)")
    config = ModelConfig.load(root / CONFIG_NAME)
    weights = root / WEIGHTS_NAME
    if not weights.is_file():
        others = pickled_files(root)
        hint = (f" (found {others}: pickled weights are refused; convert them to safetensors)" if others
                else "")
        raise WeightsError(f"{weights}: missing weights file{hint}")
    with open(weights, "rb") as fh:
        head = fh.read(8)
    if any(head.startswith(m) for m in _PICKLE_MAGIC):
        raise WeightsError(f"{weights}: this is a pickle/zip file, not safetensors; it was not loaded")
    if verify_checksum and config.checksum:
        actual = file_digest(weights)
        if actual != config.checksum:
            raise ChecksumError(
                f"{weights}: SHA-256 {actual[:16]}... does not match the checksum in {root / CONFIG_NAME} "
                f"({config.checksum[:16]}...); the file is corrupt or was replaced"
            )
    try:
        state = load_file(str(weights))
    except (SafetensorError, OSError, ValueError) as exc:
        raise WeightsError(f"{weights}: not a readable safetensors file ({exc})") from exc
    return config, state


def split_state(state: dict[str, Tensor], prefix: str) -> dict[str, Tensor]:
    """The tensors of one part (``prefix`` stripped)."""
    return {k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)}


def load_part(module: torch.nn.Module, state: dict[str, Tensor], prefix: str, source: str) -> None:
    """Load one part into ``module``; name missing, unexpected and mis-shaped keys in the error.

    Floating-point tensors holding NaN or infinite values are refused too (naming the keys): they
    would load silently and turn every output into NaN.
    """
    part = split_state(state, prefix)
    if not part:
        raise WeightsError(f"{source}: no tensors with prefix {prefix!r}")
    own = module.state_dict()
    missing = sorted(set(own) - set(part))
    unexpected = sorted(set(part) - set(own))
    shapes = [f"{prefix}{k}: file {tuple(part[k].shape)} vs model {tuple(own[k].shape)}"
              for k in sorted(set(own) & set(part)) if own[k].shape != part[k].shape]
    if missing or unexpected or shapes:
        lines = []
        if missing:
            lines.append(f"missing {[prefix + k for k in missing[:5]]}{' ...' if len(missing) > 5 else ''}")
        if unexpected:
            lines.append("unexpected "
                         f"{[prefix + k for k in unexpected[:5]]}{' ...' if len(unexpected) > 5 else ''}")
        if shapes:
            lines.append("shape mismatch " + "; ".join(shapes[:5]))
        raise WeightsError(f"{source}: tensors do not match the model: " + ", ".join(lines))
    broken = [prefix + k for k in sorted(part) if part[k].is_floating_point()
              and not torch.isfinite(part[k]).all()]
    if broken:
        raise WeightsError(
            f"{source}: tensors hold NaN or infinite values: "
            f"{broken[:5]}{' ...' if len(broken) > 5 else ''}; the weights are broken (saved from a diverged "
            "run?) and would give NaN outputs"
        )
    module.load_state_dict(part, strict=True)


def prefixed(module: torch.nn.Module, prefix: str) -> dict[str, Tensor]:
    """``module``'s state dict with ``prefix`` added to every key."""
    return {prefix + k: v for k, v in module.state_dict().items()}
