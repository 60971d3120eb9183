"""Answer heads: small linear maps on the frozen features that turn them into answers a user can use
directly, shipped in the same ``model.safetensors`` under the prefix ``heads.``.

* :class:`IdentityHead`: standardised identity features -> a projection fitted on training identities
  (or unlabelled faces) -> a unit-length embedding made for cosine similarity.
* :class:`ExpressionHead`: the paper's linear probe (BatchNorm folded into one Linear layer) on
  :meth:`~latentface_sdk.FaceEncoder.expression_features`, trained on FER-2013 ``Training`` labels.

The features stay self-supervised; the heads are fitted afterwards (``experiments/answer_heads.py``)
and described in ``config.json`` (:class:`~latentface_sdk.config.HeadsConfig`).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..config import HeadsConfig

__all__ = ["AnswerHeads", "ExpressionHead", "IdentityHead", "identity_input_dim"]


def identity_input_dim(source: str, latent_dim: int) -> int:
    """Width of the features the identity head reads: ``"latents"`` ``[Z_t, Z_s]`` or
    ``"verification"`` ``[Z_id_t, Z_id_s, Z_t, Z_s]``."""
    return {"latents": 2 * latent_dim, "identity": 2 * latent_dim, "verification": 4 * latent_dim}[source]


class IdentityHead(nn.Module):
    """``normalize((x - mean) / scale @ projection)``: ``(N, in_dim)`` features -> ``(N, dim)`` unit rows."""

    def __init__(self, in_dim: int, dim: int) -> None:
        super().__init__()
        self.register_buffer("mean", torch.zeros(in_dim))
        self.register_buffer("scale", torch.ones(in_dim))
        self.register_buffer("projection", torch.zeros(in_dim, dim))

    mean: Tensor
    scale: Tensor
    projection: Tensor

    def forward(self, x: Tensor) -> Tensor:
        z = ((x - self.mean) / self.scale) @ self.projection
        return F.normalize(z, dim=1)


class ExpressionHead(nn.Module):
    """One linear layer: expression features ``(N, in_dim)`` -> class logits ``(N, n_classes)``."""

    def __init__(self, in_dim: int, n_classes: int) -> None:
        super().__init__()
        self.linear = nn.Linear(in_dim, n_classes)

    def forward(self, x: Tensor) -> Tensor:
        return self.linear(x)


class AnswerHeads(nn.Module):
    """The heads a config asks for (``identity`` and/or ``expression``; either may be absent)."""

    def __init__(self, config: HeadsConfig, latent_dim: int, expression_dim: int) -> None:
        super().__init__()
        self.identity: IdentityHead | None = None
        self.expression: ExpressionHead | None = None
        if config.identity_dim > 0:
            self.identity = IdentityHead(identity_input_dim(config.identity_input, latent_dim),
                                         config.identity_dim)
        if config.expression_classes:
            self.expression = ExpressionHead(expression_dim, len(config.expression_classes))

    @property
    def empty(self) -> bool:
        """True when the model has no head (older weights)."""
        return self.identity is None and self.expression is None
