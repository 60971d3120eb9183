"""FaceEncoder: the public model. Load weights, then encode, disentangle, frontalize or re-render faces.

The data flows one way: image -> face crop -> stage-1 latents -> (RDM) -> identity/expression, or
latents -> canonical maps -> render.

Inputs
    A path, the bytes of an image file, a PIL image, a numpy ``HxWxC`` array, a torch ``CxHxW`` tensor, or a
    list of these; a 4-D ``BxCxHxW`` tensor or ``BxHxWxC`` array is a batch of ``B`` images. Every conversion
    and refusal is :mod:`latentface_sdk.images`'s (grey, RGBA and palette images are converted; bad inputs get
    a typed :class:`~latentface_sdk.errors.InvalidImageError` naming the input and the reason).

Faces
    ``detect=True`` (default): MTCNN finds the faces and :func:`latentface_sdk.detection.crop_face` cuts
    them with the model's crop policy (``config.crop``), the same function the training data went
    through. ``detect=False``: the inputs are already face crops; the centred square is used
    (:func:`latentface_sdk.detection.crop_aligned`). ``faces="largest"`` (default) keeps the largest
    face of each input; ``faces="all"`` keeps every face, one row each.

One image or a batch
    A **single** input (not a list, not a 4-D batch) must give a face: a bad input raises its
    :class:`~latentface_sdk.errors.InvalidImageError` and an image without a face raises
    :class:`~latentface_sdk.errors.NoFaceError`. A **list** never raises for one bad item: every input
    gets (at least) one row, in input order; a row that failed has ``ok=False``, NaN values and the
    reason in ``errors`` (with ``faces="all"``, an input with no face still gets one such row). See
    :mod:`latentface_sdk.results`.

Threads
    Calls keep no state between them and run under :func:`torch.inference_mode`, so one encoder may
    serve several threads; the detector is built once, on first use, under a lock.
"""

from __future__ import annotations

import threading
from typing import Any, Literal

import torch
from torch import Tensor, nn

from .backends import TorchBackend
from .config import ModelConfig
from .detection import FaceDetector
from .errors import ConfigError
from .expression import EXPRESSION_READOUT, readout_layout
from .facade import FaceFacade, Images
from .models.autoencoder import LatentAutoencoder, Latents
from .models.heads import AnswerHeads
from .models.rdm import RepresentationDiffusion
from .operations import NEUTRAL_LIGHT, LightSpec
from .pretrained import PretrainedMixin
from .render.renderer import FaceRenderer
from .threads import Threads

__all__ = ["FaceEncoder", "Images", "LightSpec", "NEUTRAL_LIGHT"]

# ---------------------------------------------------------------------------------------- the model


class FaceEncoder(FaceFacade, PretrainedMixin, nn.Module):
    """LatentFace as one object: the stage-1 autoencoder, the two RDMs, the renderer and a face detector.

    Build it with :meth:`from_pretrained` (weights) or :meth:`from_config` (random weights, for training
    and tests); it is a plain :class:`torch.nn.Module` whose parts can also be used alone:
    ``autoencoder`` (:class:`~latentface_sdk.models.autoencoder.LatentAutoencoder`), ``rdm_texture`` and
    ``rdm_shape`` (:class:`~latentface_sdk.models.rdm.RepresentationDiffusion`), ``renderer``
    (:class:`~latentface_sdk.render.renderer.FaceRenderer`) and ``detector``
    (:class:`~latentface_sdk.detection.FaceDetector`, built on first use). ``config`` is the
    :class:`~latentface_sdk.config.ModelConfig` (``name``, ``checksum`` of the weights, ``crop`` policy).
    The model is always in eval mode; see the module docstring for inputs, faces and batches.

    Its operations are :class:`~latentface_sdk.facade.FaceFacade`'s, run by the PyTorch backend
    (:attr:`backend`, :class:`~latentface_sdk.backends.TorchBackend`): the same methods, checks and results
    as :class:`~latentface_sdk.OnnxFaceEncoder`'s. Besides the image-in operations, an
    :class:`~latentface_sdk.results.Encoding` you already have can be rendered, meshed or embedded
    without reading its images again (:meth:`render_from_latents`, :meth:`mesh_from_latents`,
    :meth:`identity_from_latents`).

    Example::

        from latentface_sdk import FaceEncoder

        enc = FaceEncoder.from_pretrained()              # bundled weights; device="auto"
        r = enc.encode("photo.jpg")                      # Encoding: texture, shape (1, 256), pose, light
        d = enc.disentangle(["a.jpg", "b.jpg"])          # identity (Z_id) and expression (Δexp) latents
        x = enc.expression_features("photo.jpg")         # ExpressionFeatures: what an emotion
                                                         # classifier reads
        enc.frontalize("photo.jpg").images[0].save("front.png")   # the face seen from the front, 64x64
    """

    def __init__(self, config: ModelConfig) -> None:
        """Random weights for ``config`` (a :class:`~latentface_sdk.config.ModelConfig`); most users want
        :meth:`from_pretrained`."""
        nn.Module.__init__(self)  # the mixin has no __init__ of its own
        config.validate()
        if config.crop.size != config.autoencoder.image_size:
            raise ConfigError(
                f"crop.size ({config.crop.size}) must equal autoencoder.image_size "
                f"({config.autoencoder.image_size}): crops are the network's input"
            )
        self.config = config
        ae = config.autoencoder
        self.autoencoder = LatentAutoencoder(ae)
        self.rdm_texture = RepresentationDiffusion(config.rdm)
        self.rdm_shape = RepresentationDiffusion(config.rdm)
        self.renderer = FaceRenderer(ae.image_size, ae.fov_deg, (ae.depth_min + ae.depth_max) / 2.0)
        layout = readout_layout(self.autoencoder, EXPRESSION_READOUT)
        #: the answer heads shipped with the weights (identity embedding, expression classes); either may
        #: be absent (:class:`~latentface_sdk.models.heads.AnswerHeads`)
        self.heads = AnswerHeads(config.heads, ae.latent_dim, max(stop for _, stop in layout.values()))
        self._detector: FaceDetector | None = None
        self._detector_lock = threading.Lock()
        self.channels_last = False
        #: CPU threads per batch: ``"auto"`` (the cores other processes leave free), a count, or None
        #: (torch's own setting); see :mod:`latentface_sdk.threads`.
        self.threads: Threads = "auto"
        #: Threads decoding the next batches' image files while a batch is detected and encoded (0: none;
        #: see :func:`latentface_sdk.images.convert_batches`); None: 4 on CUDA, 0 on the CPU
        #: (:func:`latentface_sdk.pipeline.auto_decode_workers`). The detector's batching across image
        #: sizes is ``self.detector.mixed_sizes``.
        self.decode_workers: int | None = None
        self.use_channels_last(True)
        self.eval()

    def use_channels_last(self, enabled: bool = True) -> FaceEncoder:
        """Keep convolution weights channels-last (the default) or in the plain layout: the fast path.

        Applies to the stage-1 encoders and the MTCNN detector. Decoded images arrive ``H x W x C``,
        so the encoders' input is already channels-last and channels-last weights spare oneDNN a layout
        conversion in every convolution (about 1.2x faster encoding); in MTCNN they make the max-pooling
        of the R-net and O-net run on channels-last tensors, several times faster than on NCHW ones on a
        CPU (detection about 2x faster on small photos). Measured by ``benchmarks/encode_speed.py`` and
        ``benchmarks/pipeline_speed.py``. Results equal the plain layout's up to float rounding
        (``tests/test_benchmarks_fastpath.py``); saved weights are the same either way. Returns ``self``.
        """
        fmt = torch.channels_last if enabled else torch.contiguous_format
        ae = self.autoencoder
        for part in ae.encoders():
            part.to(memory_format=fmt)  # type: ignore[call-overload]  # documented; missing from the stubs
        self.channels_last = bool(enabled)
        if self._detector is not None:
            self._detector.mtcnn.to(memory_format=fmt)
        return self

    # -- device ---------------------------------------------------------------------------------------
    @property
    def device(self) -> torch.device:
        """The device of the model's parameters (inputs are moved there)."""
        return next(self.parameters()).device

    @property
    def dtype(self) -> torch.dtype:
        """The floating type of the model's parameters."""
        return next(self.parameters()).dtype

    def to(self, *args: Any, **kwargs: Any) -> FaceEncoder:
        """Move or cast the model like :meth:`torch.nn.Module.to`; a built detector follows the device."""
        super().to(*args, **kwargs)
        if self._detector is not None:
            self._detector.to(self.device)
        return self

    def train(self, mode: bool = True) -> FaceEncoder:
        """The encoder is an inference object: it stays in eval mode (train its parts instead)."""
        return super().train(False)

    @property
    def render_backend(self) -> Literal["pytorch3d", "fast"]:
        """The rasteriser ``render`` uses: PyTorch3D's on CUDA when it is installed (the extra
        ``[pytorch3d]``), else the vectorised one (always on the CPU, as in training; the two agree within
        the tolerance of docs/renderer.md)."""
        if self.device.type != "cuda":
            return "fast"
        from .render.rasterize import has_pytorch3d

        return "pytorch3d" if has_pytorch3d() else "fast"

    @property
    def backend(self) -> TorchBackend:
        """The PyTorch backend: this model's modules (:class:`~latentface_sdk.backends.TorchBackend`)."""
        return TorchBackend(self)

    def forward(self, images: Tensor) -> Latents:
        """Stage-1 latents of face crops ``(B, 3, 64, 64)`` in ``[0, 1]`` already on the model's device (no
        detection)."""
        return self.autoencoder.encode(images)

    def extra_repr(self) -> str:
        return f"name={self.config.name!r}, checksum={(self.config.checksum or 'none')[:12]}"

    def __repr__(self) -> str:
        """One line (name, weights, device, size); ``print(enc.autoencoder)`` etc. show the module trees."""
        params = sum(p.numel() for p in self.parameters())
        return (f"FaceEncoder(name={self.config.name!r}, checksum={(self.config.checksum or 'none')[:12]}, "
                f"device={str(self.device)!r}, dtype={str(self.dtype).replace('torch.', '')}, "
                f"parameters={params / 1e6:.1f}M, parts=[autoencoder, rdm_texture, rdm_shape, renderer])")
