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
        logger.info("latentface_sdk: using device %s", chosen)
        return chosen
    try:
        dev = torch.device(device)
    except RuntimeError as exc:
        raise ValueError(f"unknown device {device!r} (use 'auto', 'cpu', 'cuda' or 'cuda:N')") from exc
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {device!r} was requested but CUDA is not available on this machine")
    return dev
