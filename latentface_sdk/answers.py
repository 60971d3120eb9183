"""Answers from the features: identity embeddings made for cosine, same-person decisions, expression
probabilities. Pure functions of a model's parts and a batch's latents; :class:`~latentface_sdk.FaceEncoder`
runs them over images with the usual crop pipeline and typed rows
(:meth:`~latentface_sdk.FaceEncoder.identity_embedding`, ``verify``, ``expressions``), or on an
:class:`~latentface_sdk.results.Encoding` a caller already has (``identity_from_latents``).

The heads themselves (:mod:`latentface_sdk.models.heads`) ship in ``model.safetensors``; a model without
them raises :class:`~latentface_sdk.errors.ConfigError` naming what is missing.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

from .errors import ConfigError
from .expression import EXPRESSION_READOUT, expression_features
from .models.autoencoder import LatentAutoencoder, Latents
from .models.heads import AnswerHeads, ExpressionHead, IdentityHead
from .models.rdm import RepresentationDiffusion
from .pipeline import CropBatch, crops_to_input
from .results import Encoding, Expressions, IdentityEmbeddings, Verification

__all__ = ["ExpressionScores", "IdentityVectors", "assemble_expressions", "assemble_identity", "compare",
           "embed_batch", "embed_latents", "expression_head", "expression_probabilities", "identity_head",
           "score_batch", "to_grey", "verify_settings"]


@dataclass
class IdentityVectors:
    """Unit identity embeddings of a batch's crops, ``(M, D)``."""

    embeddings: Tensor


@dataclass
class ExpressionScores:
    """Expression probabilities of a batch's crops, ``(M, C)``."""

    probabilities: Tensor


def identity_head(heads: AnswerHeads, name: str) -> IdentityHead:
    """The model's identity head, or a :class:`ConfigError` that says the weights ``name`` have none."""
    if heads.identity is None:
        raise ConfigError(
            f"the weights {name!r} have no identity head (config.json 'heads.identity_dim' is 0): "
            "use weights that ship one (the bundled default does) or fit one (experiments/answer_heads.py)"
        )
    return heads.identity


def expression_head(heads: AnswerHeads, name: str) -> ExpressionHead:
    """The model's expression head, or a :class:`ConfigError` that says the weights ``name`` have none."""
    if heads.expression is None:
        raise ConfigError(
            f"the weights {name!r} have no expression head (config.json 'heads.expression_classes' is "
            "empty): use weights that ship one (the bundled default does) or train one "
            "(experiments/answer_heads.py)"
        )
    return heads.expression


#: ITU-R BT.601 luma weights: how a colour crop is turned grey for a grey-trained expression head.
LUMA = (0.299, 0.587, 0.114)


def to_grey(x: Tensor) -> Tensor:
    """Images ``(B, 3, H, W)`` as grey (the luma in all three channels), same range and dtype."""
    w = x.new_tensor(LUMA).view(1, 3, 1, 1)
    return (x * w).sum(dim=1, keepdim=True).expand_as(x)


def expression_probabilities(autoencoder: LatentAutoencoder, head: ExpressionHead, images: Tensor, *,
                             grey: bool) -> Tensor:
    """Class probabilities ``(B, C)`` of face crops ``images`` ``(B, 3, 64, 64)`` in ``[0, 1]``: the mirrored
    :func:`~latentface_sdk.expression.expression_features` (of the grey crop when ``grey``), the head, a
    softmax. The ONNX graph computes the same (:class:`~latentface_sdk.deploy.graphs.ExpressionGraph`)."""
    x = to_grey(images) if grey else images
    # mirror=True written as two calls: its concatenate-then-split would fix an exported graph's batch size
    feats = (expression_features(autoencoder, x, EXPRESSION_READOUT)
             + expression_features(autoencoder, x.flip(-1), EXPRESSION_READOUT)) / 2
    return torch.softmax(head(feats), dim=1)


def score_batch(autoencoder: LatentAutoencoder, head: ExpressionHead, batch: CropBatch, *,
                grey: bool) -> ExpressionScores:
    """:func:`expression_probabilities` of a batch's crops, as the pipeline's work result."""
    p = next(autoencoder.parameters())
    return ExpressionScores(expression_probabilities(autoencoder, head, crops_to_input(batch.crops, p.device,
                                                                                       p.dtype), grey=grey))


def embed_latents(head: IdentityHead, source: str, texture: Tensor, shape: Tensor,
                  rdm_texture: RepresentationDiffusion, rdm_shape: RepresentationDiffusion,
                  steps: int) -> Tensor:
    """Unit identity embeddings ``(M, D)`` of latents ``Z_t``, ``Z_s`` ``(M, 256)``.

    ``source`` (``config.heads.identity_input``) says what the head reads: ``"latents"`` ``[Z_t, Z_s]``,
    ``"identity"`` ``[Z_id_t, Z_id_s]`` or ``"verification"`` ``[Z_id_t, Z_id_s, Z_t, Z_s]``. ``Z_id`` is
    one DDIM run of ``steps`` steps from ``z_T = 0``: deterministic, so a face always gets the same
    embedding (what cosine comparisons need).
    """
    if source == "latents":
        return head(torch.cat([texture, shape], dim=1))
    zero_t = torch.zeros_like(texture)
    id_t = rdm_texture.sample(texture, steps=steps, noise=zero_t)
    id_s = rdm_shape.sample(shape, steps=steps, noise=torch.zeros_like(shape))
    parts = [id_t, id_s] if source == "identity" else [id_t, id_s, texture, shape]
    return head(torch.cat(parts, dim=1))


def embed_batch(head: IdentityHead, source: str, latents: Latents, rdm_texture: RepresentationDiffusion,
                rdm_shape: RepresentationDiffusion, steps: int) -> IdentityVectors:
    """:func:`embed_latents` of a batch's latents, as the pipeline's work result."""
    return IdentityVectors(embed_latents(head, source, latents.texture, latents.shape, rdm_texture,
                                         rdm_shape, steps))


def assemble_identity(done: Sequence[tuple[CropBatch, IdentityVectors | None]], enc: Encoding, dim: int,
                      threshold: float) -> IdentityEmbeddings:
    """The rows of all batches' embeddings beside their encoding (NaN where a row failed)."""
    emb = torch.cat([b.scatter(r.embeddings if r else None, (dim,)) for b, r in done])
    return IdentityEmbeddings(embeddings=emb, threshold=threshold, encoding=enc)


def assemble_expressions(done: Sequence[tuple[CropBatch, ExpressionScores | None]], enc: Encoding,
                         classes: tuple[str, ...]) -> Expressions:
    """The rows of all batches' probabilities beside their encoding, with each ok row's top label."""
    probs = torch.cat([b.scatter(r.probabilities if r else None, (len(classes),)) for b, r in done])
    labels: list[str | None] = [classes[int(p.argmax())] if ok else None
                                for p, ok in zip(probs, enc.ok.tolist(), strict=True)]
    return Expressions(probabilities=probs, classes=classes, labels=labels, encoding=enc)


def verify_settings(a: object, b: object, threshold: float | None, default: float) -> float:
    """Check :meth:`~latentface_sdk.FaceEncoder.verify`'s arguments (one image per side or two lists; a
    cosine threshold) and return the threshold to use (``default``: the model's)."""
    if threshold is None:
        threshold = default
    elif isinstance(threshold, bool) or not isinstance(threshold, (int, float)) \
            or not -1.0 <= float(threshold) <= 1.0:
        raise ValueError(f"threshold must be a cosine in [-1, 1] (got {threshold!r})")
    single = [not isinstance(x, (list, tuple)) and getattr(x, "ndim", 0) != 4 for x in (a, b)]
    if single[0] != single[1]:
        raise ValueError("verify takes one image on each side or two lists of the same length")
    return float(threshold)


def compare(a: IdentityEmbeddings, b: IdentityEmbeddings, threshold: float) -> Verification:
    """Row ``i`` of ``a`` against row ``i`` of ``b``: cosine, same-person decision and which side failed."""
    if len(a) != len(b):
        raise ValueError(f"verify compares pairs: got {len(a)} face(s) on one side and {len(b)} on the other")
    sim = (a.embeddings * b.embeddings).sum(dim=1)
    ok = a.ok & b.ok
    errors: list[str | None] = []
    for i in range(len(a)):
        why = [f"{side}: {err}" for side, err in (("a", a.errors[i]), ("b", b.errors[i])) if err is not None]
        errors.append("; ".join(why) if why else None)
    sim = torch.where(ok, sim, torch.full_like(sim, float("nan")))
    return Verification(similarity=sim, same_person=ok & (sim >= threshold), threshold=float(threshold),
                        ok=ok, errors=errors, a=a, b=b)
