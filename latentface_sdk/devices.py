"""Device selection shared by inference and training (``device="auto"`` uses CUDA when present)."""

from __future__ import annotations

import logging

import torch

logger = logging.getLogger("latentface_sdk")


def resolve_device(device: str | torch.device | None = "auto") -> torch.device:
    """``"auto"``/``None`` -> CUDA if available, else CPU; anything else is passed to ``torch.device``.

    Raises ``ValueError`` for an unknown device string and for CUDA when no CUDA device is present.
    """
    if device is None or (isinstance(device, str) and device == "auto"):
        chosen = torch.device("cuda" if torch.cuda.is_available() else "cpu")
        logger.info("latentface_sdk: using device %s (%d torch CPU threads)", chosen, torch.get_num_threads())
        return chosen
    try:
        dev = torch.device(device)
    except RuntimeError as exc:
        raise ValueError(f"unknown device {device!r} (use 'auto', 'cpu', 'cuda' or 'cuda:N')") from exc
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {device!r} was requested but CUDA is not available on this machine")
    if dev.type == "cpu" and torch.cuda.is_available():
        # Surprising enough to show without logging set up: a GPU sits idle.
        logger.warning("latentface_sdk: using device cpu although CUDA is available (device=%r); "
                       "pass device='auto' or 'cuda' to use it", device)
    else:
        logger.info("latentface_sdk: using device %s (%d torch CPU threads)", dev, torch.get_num_threads())
    return dev
