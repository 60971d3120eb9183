"""What a runtime supplies to the facade: the networks, and nothing else.

:class:`~latentface_sdk.facade.FaceFacade` holds every public operation once (the argument checks, the
sampling settings, the averaging of identity samples, the pipeline, the result assembly); a
:class:`FaceBackend` answers the few questions that differ between runtimes:

* crops -> stage-1 latents (:meth:`FaceBackend.encode_crops`);
* latents and starting noise -> identity latents ``Z_id`` (:meth:`FaceBackend.identity_latents`: one DDIM
  run per row; the facade draws the noise and averages the samples);
* latents -> unit identity embeddings (:meth:`FaceBackend.identity_vectors`) and crops -> expression
  probabilities (:meth:`FaceBackend.expression_probabilities`): the answer heads;
* crops -> expression features, latents -> canonical maps, renders and meshes, where the runtime has the
  decoders and the renderer.

:class:`TorchBackend` (the PyTorch modules of a :class:`~latentface_sdk.FaceEncoder`) has all of them;
:class:`~latentface_sdk.deploy.runtime.OnnxBackend` has the encoders, the RDMs and the heads that were
exported. A capability a backend lacks is refused before any image is read: a
:class:`~latentface_sdk.errors.ConfigError` for a head the weights do not ship, an
:class:`UnsupportedOperationError` for what the runtime cannot do (:meth:`FaceBackend.require`).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Literal, Protocol

import numpy as np
import torch
from torch import Tensor

from .config import CropConfig, ModelConfig
from .errors import LatentFaceError, UnsupportedOperationError
from .models.autoencoder import LatentAutoencoder, Latents
from .models.heads import AnswerHeads
from .models.rdm import RepresentationDiffusion
from .operations import CanonicalMaps, RenderedViews, decode_maps, read_expression, render_views
from .pipeline import CropBatch, encode_crops
from .render.photo_texture import TextureMode
from .render.renderer import FaceRenderer
from .threads import Threads

__all__ = ["CAPABILITIES", "Capability", "FaceBackend", "ModelFacts", "TorchBackend", "TorchModel",
           "UnsupportedOperationError"]

#: ``"identity"``: the identity head (``identity_embedding``, ``verify``, ``identity_from_latents``,
#: video tracks by identity); ``"expression"``: the expression head (``expressions``); ``"maps"``: the
#: decoders and the renderer (``frontalize``, ``render``, ``mesh`` and their ``*_from_latents``);
#: ``"expression_features"``: the encoders' intermediate maps (``expression_features``).
Capability = Literal["identity", "expression", "maps", "expression_features"]
CAPABILITIES: tuple[Capability, ...] = ("identity", "expression", "maps", "expression_features")


@dataclass(frozen=True)
class ModelFacts:
    """What the facade needs to know about a model, whatever runs it: ``name`` (for messages), ``crop``
    (the crop policy), ``latent_dim``, ``sample_steps`` and ``sample_init`` (the RDMs' defaults),
    ``identity_dim`` (0: no identity head), ``identity_threshold`` (the cosine at and above which two
    faces are one person) and ``expression_classes`` (empty: no expression head)."""

    name: str
    crop: CropConfig
    latent_dim: int
    sample_steps: int
    sample_init: str
    identity_dim: int = 0
    identity_threshold: float = 0.5
    expression_classes: tuple[str, ...] = ()


class FaceBackend(ABC):
    """The runtime-specific part of an encoder (see the module docstring).

    ``facts`` (:class:`ModelFacts`) describes the model; ``threads``, ``decode_workers`` and
    ``detector_device`` say how the pipeline runs. Tensors come back on the CPU or the backend's device;
    the pipeline moves them.
    """

    #: the runtime, for messages and ``repr`` (``"pytorch"``, ``"onnxruntime"``)
    runtime: str = ""
    facts: ModelFacts

    @property
    def threads(self) -> Threads:
        """The CPU thread setting of each pipeline batch (:mod:`latentface_sdk.threads`)."""
        return None

    @property
    def decode_workers(self) -> int:
        """Threads decoding the next batches' files ahead (0: none)."""
        return 0

    @property
    def detector_device(self) -> torch.device:
        """Where the MTCNN detector runs."""
        return torch.device("cpu")

    # -- capabilities -----------------------------------------------------------------------------------
    @abstractmethod
    def has(self, capability: Capability) -> bool:
        """Whether this backend (and its weights) can do ``capability``."""

    @abstractmethod
    def missing(self, capability: Capability) -> LatentFaceError:
        """The error that says why ``capability`` is not available and what to use instead."""

    def require(self, capability: Capability) -> None:
        """Raise :meth:`missing`'s error unless the backend :meth:`has` ``capability``."""
        if capability not in CAPABILITIES:
            raise ValueError(f"unknown capability {capability!r} (one of {CAPABILITIES})")
        if not self.has(capability):
            raise self.missing(capability)

    def check_steps(self, steps: int | None) -> int:
        """The DDIM steps to run (``None``: the model's ``sample_steps``), validated."""
        return self.facts.sample_steps if steps is None else steps

    # -- the networks -----------------------------------------------------------------------------------
    @abstractmethod
    def encode_crops(self, crops: np.ndarray, batch_size: int) -> Latents:
        """Stage-1 latents of uint8 crops ``(M, S, S, 3)``, ``batch_size`` at a time."""

    @abstractmethod
    def identity_latents(self, texture: Tensor, shape: Tensor, noise_texture: Tensor, noise_shape: Tensor,
                         steps: int) -> tuple[Tensor, Tensor]:
        """``Z_id`` (texture, shape) ``(R, D)`` of latents ``(R, D)``: one DDIM run of ``steps`` steps per row
        from the given starting noise ``z_T`` ``(R, D)``."""

    def identity_vectors(self, texture: Tensor, shape: Tensor) -> Tensor:
        """Unit identity embeddings ``(M, identity_dim)`` of latents ``(M, D)`` (the identity head)."""
        raise self.missing("identity")

    def expression_probabilities(self, crops: np.ndarray) -> Tensor:
        """Expression class probabilities ``(M, C)`` of uint8 crops ``(M, S, S, 3)`` (the expression head)."""
        raise self.missing("expression")

    def expression_features(self, batch: CropBatch, *, mirror: bool) -> Tensor:
        """:func:`latentface_sdk.expression.expression_features` of a batch's crops ``(M, F)``."""
        raise self.missing("expression_features")

    def expression_layout(self) -> dict[str, tuple[int, int]]:
        """The column ranges of :meth:`expression_features`."""
        raise self.missing("expression_features")

    def render(self, batch: CropBatch, *, angles: tuple[float, float, float], light: Tensor | None,
               maps: bool, texture: TextureMode, size: int) -> RenderedViews:
        """The batch's faces drawn from the view ``angles`` (degrees), ``size`` pixels wide."""
        raise self.missing("maps")

    def canonical_maps(self, batch: CropBatch, *, texture: TextureMode) -> CanonicalMaps:
        """The batch's canonical albedo, depth and pose (and photo texture) for meshes."""
        raise self.missing("maps")

    @property
    def renderer(self) -> FaceRenderer:
        """The renderer (its camera places the meshes)."""
        raise self.missing("maps")


class TorchModel(Protocol):
    """What :class:`TorchBackend` reads of a PyTorch model (a :class:`~latentface_sdk.FaceEncoder`): its
    config, its modules and where they run."""

    config: ModelConfig
    autoencoder: LatentAutoencoder
    rdm_texture: RepresentationDiffusion
    rdm_shape: RepresentationDiffusion
    heads: AnswerHeads
    renderer: FaceRenderer
    threads: Threads
    decode_workers: int | None

    @property
    def render_backend(self) -> Literal["pytorch3d", "fast"]: ...

    @property
    def device(self) -> torch.device: ...

    def parameters(self, recurse: bool = True) -> Iterator[torch.nn.Parameter]: ...


class TorchBackend(FaceBackend):
    """The PyTorch modules of a :class:`~latentface_sdk.FaceEncoder`: every capability its weights have.

    A view of the encoder (made on each use, so that ``.to()``, new weights or a changed config are seen
    at once); it holds no state of its own."""

    runtime = "pytorch"

    def __init__(self, encoder: TorchModel) -> None:
        self.encoder = encoder
        c, heads = encoder.config, encoder.heads
        self.facts = ModelFacts(
            name=c.name, crop=c.crop, latent_dim=c.autoencoder.latent_dim, sample_steps=c.rdm.sample_steps,
            sample_init=c.rdm.sample_init, identity_threshold=float(c.heads.identity_threshold),
            identity_dim=c.heads.identity_dim if heads.identity is not None else 0,
            expression_classes=tuple(c.heads.expression_classes) if heads.expression is not None else ())

    @property
    def threads(self) -> Threads:
        return self.encoder.threads

    @property
    def decode_workers(self) -> int:
        from .pipeline import auto_decode_workers

        return auto_decode_workers(self.encoder.decode_workers, self.encoder.device)

    @property
    def detector_device(self) -> torch.device:
        return self.encoder.device

    def has(self, capability: Capability) -> bool:
        heads = self.encoder.heads
        if capability == "identity":
            return heads.identity is not None
        if capability == "expression":
            return heads.expression is not None
        return True

    def missing(self, capability: Capability) -> LatentFaceError:
        from .answers import expression_head, identity_head
        from .errors import ConfigError

        try:
            head = identity_head if capability == "identity" else expression_head
            head(self.encoder.heads, self.facts.name)
        except ConfigError as exc:
            return exc
        return UnsupportedOperationError(f"{capability!r} is not available")  # pragma: no cover

    def check_steps(self, steps: int | None) -> int:
        chosen = super().check_steps(steps)
        self.encoder.rdm_texture.ddim_scheduler(chosen)  # validates steps before any work
        return chosen

    def _param(self) -> Tensor:
        return next(self.encoder.parameters())

    def encode_crops(self, crops: np.ndarray, batch_size: int) -> Latents:
        return encode_crops(self.encoder.autoencoder, crops, batch_size)

    def identity_latents(self, texture: Tensor, shape: Tensor, noise_texture: Tensor, noise_shape: Tensor,
                         steps: int) -> tuple[Tensor, Tensor]:
        e = self.encoder
        return (e.rdm_texture.sample(texture, steps=steps, noise=noise_texture),
                e.rdm_shape.sample(shape, steps=steps, noise=noise_shape))

    def identity_vectors(self, texture: Tensor, shape: Tensor) -> Tensor:
        from .answers import embed_latents, identity_head

        e, p = self.encoder, self._param()
        head = identity_head(e.heads, self.facts.name)
        return embed_latents(head, e.config.heads.identity_input, texture.to(p.device, p.dtype),
                             shape.to(p.device, p.dtype), e.rdm_texture, e.rdm_shape, self.facts.sample_steps)

    def expression_probabilities(self, crops: np.ndarray) -> Tensor:
        from .answers import expression_head, expression_probabilities
        from .pipeline import crops_to_input

        e, p = self.encoder, self._param()
        return expression_probabilities(e.autoencoder, expression_head(e.heads, self.facts.name),
                                        crops_to_input(crops, p.device, p.dtype),
                                        grey=e.config.heads.expression_grey)

    def expression_features(self, batch: CropBatch, *, mirror: bool) -> Tensor:
        return read_expression(self.encoder.autoencoder, batch, mirror=mirror).features

    def expression_layout(self) -> dict[str, tuple[int, int]]:
        from .expression import EXPRESSION_READOUT, readout_layout

        return readout_layout(self.encoder.autoencoder, EXPRESSION_READOUT)

    def render(self, batch: CropBatch, *, angles: tuple[float, float, float], light: Tensor | None,
               maps: bool, texture: TextureMode, size: int) -> RenderedViews:
        from .photo_views import render_textured_views

        e = self.encoder
        assert batch.latents is not None
        latents = _on(batch.latents, self._param())
        if texture == "albedo" and size == e.config.autoencoder.image_size:  # the paper's rendering
            return render_views(e.autoencoder, e.renderer, latents, angles=angles, light=light, maps=maps,
                                backend=e.render_backend)
        return render_textured_views(e.autoencoder, e.renderer, _with_latents(batch, latents), angles=angles,
                                     light=light, maps=maps, backend=e.render_backend, texture=texture,
                                     size=size)

    def canonical_maps(self, batch: CropBatch, *, texture: TextureMode) -> CanonicalMaps:
        from .photo_views import mesh_maps

        e = self.encoder
        assert batch.latents is not None
        latents = _on(batch.latents, self._param())
        if texture == "albedo":
            return decode_maps(e.autoencoder, latents)
        return mesh_maps(e.autoencoder, e.renderer, _with_latents(batch, latents), texture=texture,
                         backend=e.render_backend)

    @property
    def renderer(self) -> FaceRenderer:
        return self.encoder.renderer


def _on(latents: Latents, like: Tensor) -> Latents:
    """``latents`` on the device and dtype of ``like`` (a no-op where they are already)."""
    return Latents(*(x.to(like.device, like.dtype) for x in (latents.texture, latents.shape, latents.pose,
                                                               latents.light)))


def _with_latents(batch: CropBatch, latents: Latents) -> CropBatch:
    if latents is batch.latents:
        return batch
    return CropBatch(rows=batch.rows, crop_rows=batch.crop_rows, crops=batch.crops, latents=latents,
                     squares=batch.squares, sources=batch.sources)
