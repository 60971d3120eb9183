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

import inspect
import math
import os
import threading
from collections.abc import Iterator, Sequence
from functools import partial
from typing import Any, Literal, TypeAlias

import torch
from torch import Tensor, nn
from tqdm.auto import tqdm

from .answers import (
    ExpressionScores,
    IdentityVectors,
    assemble_expressions,
    assemble_identity,
    compare,
    embed_batch,
    embed_latents,
    expression_head,
    identity_head,
    score_batch,
    verify_settings,
)
from .config import ModelConfig
from .detection import FaceDetector
from .errors import ConfigError
from .expression import EXPRESSION_READOUT, readout_layout
from .images import DEFAULT_MAX_PIXELS, ImageInput
from .models.autoencoder import LatentAutoencoder, Latents
from .models.heads import AnswerHeads
from .models.rdm import RepresentationDiffusion
from .operations import (
    IDENTITY_ROWS,
    NEUTRAL_LIGHT,
    CanonicalMaps,
    ExpressionMaps,
    IdentityLatents,
    LightSpec,
    RenderedViews,
    assemble_disentangled,
    assemble_expression,
    assemble_frontalized,
    assemble_meshes,
    decode_maps,
    parse_light,
    read_expression,
    render_views,
    sample_identity,
)
from .photo_views import check_size, check_texture, mesh_maps, render_textured_views
from .pipeline import (
    CropBatch,
    FacePipeline,
    FacePolicy,
    assemble_encoding,
    auto_decode_workers,
    encode_crops,
)
from .pretrained import PretrainedMixin
from .render.photo_texture import TextureMode
from .render.renderer import FaceRenderer
from .results import (
    Disentangled,
    Encoding,
    ExpressionFeatures,
    Expressions,
    FaceMeshes,
    Frontalized,
    IdentityEmbeddings,
    Verification,
)
from .threads import Threads
from .video import VideoEncoding

__all__ = ["FaceEncoder", "Images", "LightSpec", "NEUTRAL_LIGHT"]

#: One image or several (see the module docstring).
Images: TypeAlias = ImageInput | Sequence[ImageInput]

# ---------------------------------------------------------------------------------------- the model


class FaceEncoder(PretrainedMixin, nn.Module):
    """LatentFace as one object: the stage-1 autoencoder, the two RDMs, the renderer and a face detector.

    Build it with :meth:`from_pretrained` (weights) or :meth:`from_config` (random weights, for training
    and tests); it is a plain :class:`torch.nn.Module` whose parts can also be used alone:
    ``autoencoder`` (:class:`~latentface_sdk.models.autoencoder.LatentAutoencoder`), ``rdm_texture`` and
    ``rdm_shape`` (:class:`~latentface_sdk.models.rdm.RepresentationDiffusion`), ``renderer``
    (:class:`~latentface_sdk.render.renderer.FaceRenderer`) and ``detector``
    (:class:`~latentface_sdk.detection.FaceDetector`, built on first use). ``config`` is the
    :class:`~latentface_sdk.config.ModelConfig` (``name``, ``checksum`` of the weights, ``crop`` policy).
    The model is always in eval mode; see the module docstring for inputs, faces and batches.

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
    def detector(self) -> FaceDetector:
        """The MTCNN face detector with the model's crop settings, on the model's device (built once)."""
        if self._detector is None:
            with self._detector_lock:
                if self._detector is None:
                    det = FaceDetector(self.config.crop, device=self.device)
                    if self.channels_last:
                        det.mtcnn.to(memory_format=torch.channels_last)
                    self._detector = det
        return self._detector

    @property
    def render_backend(self) -> Literal["pytorch3d", "fast"]:
        """The rasteriser ``render`` uses: PyTorch3D's on CUDA when it is installed (the extra
        ``[pytorch3d]``), else the vectorised one (always on the CPU, as in training; the two agree within
        the tolerance of docs/renderer.md)."""
        if self.device.type != "cuda":
            return "fast"
        from .render.rasterize import has_pytorch3d

        return "pytorch3d" if has_pytorch3d() else "fast"

    def _pipeline(self) -> FacePipeline:
        return FacePipeline(self.config.crop, partial(encode_crops, self.autoencoder), lambda: self.detector,
                            self.threads, auto_decode_workers(self.decode_workers, self.device))

    # -- public API -------------------------------------------------------------------------------------
    def encode(
        self,
        images: Images,
        *,
        detect: bool = True,
        faces: FacePolicy = "largest",
        batch_size: int = 64,
        progress: bool = False,
        max_pixels: int = DEFAULT_MAX_PIXELS,
    ) -> Encoding:
        """Stage-1 latents (texture, shape, pose, light) and face boxes of one image or a list.

        ``batch_size`` inputs are read, detected and encoded at a time (memory stays bounded for long
        lists); ``progress`` shows a progress bar on stderr; ``max_pixels`` is the decompression-bomb
        limit. See the module docstring for ``detect``, ``faces`` and the single/batch rules.

        Raises (single input only): :class:`InvalidImageError`, :class:`NoFaceError`.
        """
        done = self._pipeline().run(images, detect=detect, faces=faces, batch_size=batch_size,
                                    progress=progress, desc="encode", max_pixels=max_pixels)
        return assemble_encoding([b for b, _ in done], self.config.autoencoder.latent_dim)

    def disentangle(
        self,
        images: Images,
        *,
        steps: int | None = None,
        seed: int | None = None,
        num_samples: int = 1,
        init: Literal["noise", "zero"] | None = None,
        detect: bool = True,
        faces: FacePolicy = "largest",
        batch_size: int = 64,
        progress: bool = False,
        max_pixels: int = DEFAULT_MAX_PIXELS,
    ) -> Disentangled:
        """Identity latents ``Z_id`` (by representation diffusion), expression ``Δexp = Z_exp - Z_id``, and
        ``Z_exp``.

        Each RDM runs ``steps`` DDIM steps (default: the model's ``rdm.sample_steps``, 5) from ``z_T``:
        ``init="noise"`` draws it from a Gaussian (the paper), ``"zero"`` starts from the prior's mode
        ``z_T = 0`` (deterministic, close to the mean of many samples); the default is the model's
        ``rdm.sample_init``. With ``num_samples > 1`` the identity is the mean of that many samples
        (only useful with noise). The noise of each face is drawn from a generator
        seeded by ``seed`` and a hash of the face crop, so with a seed the result of an image does not
        depend on the batch it came in, its position, or ``batch_size`` (equal up to float rounding).
        ``seed=None`` draws the seed from torch's global RNG (so ``torch.manual_seed`` makes it repeatable).
        Other arguments as in :meth:`encode`.
        """
        if isinstance(num_samples, bool) or not isinstance(num_samples, int) or num_samples < 1:
            raise ValueError(f"num_samples must be a positive integer (got {num_samples!r})")
        steps = self.config.rdm.sample_steps if steps is None else steps
        self.rdm_texture.ddim_scheduler(steps)  # validates steps before any work
        chosen = init if init is not None else self.config.rdm.sample_init
        if chosen not in ("noise", "zero"):
            raise ValueError(f"init must be 'noise' or 'zero' (got {chosen!r})")
        init = "zero" if chosen == "zero" else "noise"
        if seed is None:
            seed = int(torch.randint(0, 2**62, (1,)).item())
        base = int(seed)

        def identity(batch: CropBatch) -> IdentityLatents:
            return sample_identity(self.rdm_texture, self.rdm_shape, batch, steps=steps, init=init,
                                   num_samples=num_samples, seed=base)

        done = self._pipeline().run(images, detect=detect, faces=faces, batch_size=batch_size,
                                    progress=progress, desc="disentangle", max_pixels=max_pixels,
                                    work=identity, work_rows=IDENTITY_ROWS)
        dim = self.config.autoencoder.latent_dim
        return assemble_disentangled(done, assemble_encoding([b for b, _ in done], dim), dim)

    def expression_features(
        self,
        images: Images,
        *,
        mirror: bool = True,
        detect: bool = True,
        faces: FacePolicy = "largest",
        batch_size: int = 64,
        progress: bool = False,
        max_pixels: int = DEFAULT_MAX_PIXELS,
    ) -> ExpressionFeatures:
        """One feature vector per face for facial expression: ``[Z_t, Z_s]`` and the texture and shape
        encoders' intermediate maps pooled on coarse grids (:mod:`latentface_sdk.expression`).

        The vector a linear expression classifier should read (``examples/fer.py``; docs/results.md
        measures it against the latents, ``Δexp``, HOG and LBP). ``layout`` names its column ranges.
        ``mirror=True`` (default) averages each face's features with its mirror image's: twice the
        encoder work, and 2.4 points more on FER-2013 PublicTest with the bundled weights. Other
        arguments as in :meth:`encode`.
        """

        def read(batch: CropBatch) -> ExpressionMaps:
            return read_expression(self.autoencoder, batch, mirror=mirror)

        done = self._pipeline().run(images, detect=detect, faces=faces, batch_size=batch_size,
                                    progress=progress, desc="expression", max_pixels=max_pixels, work=read)
        enc = assemble_encoding([b for b, _ in done], self.config.autoencoder.latent_dim)
        return assemble_expression(done, enc, readout_layout(self.autoencoder, EXPRESSION_READOUT))

    def identity_embedding(
        self,
        images: Images,
        *,
        detect: bool = True,
        faces: FacePolicy = "largest",
        batch_size: int = 64,
        progress: bool = False,
        max_pixels: int = DEFAULT_MAX_PIXELS,
    ) -> IdentityEmbeddings:
        """One unit-length identity vector per face, made for cosine similarity (``a @ b`` of two rows).

        The model's identity head (``config.heads``: what it reads and how it was fitted) projects the
        identity features so that one person's faces lie close and two people's apart; the RDM runs from
        ``z_T = 0`` here, so a face always gets the same vector. Two faces whose cosine is at least
        :attr:`identity_threshold` are called the same person (:meth:`verify`). ``result.similarity()``
        gives the cosine matrix of all rows. Other arguments as in :meth:`encode`.

        Raises :class:`~latentface_sdk.errors.ConfigError` when the weights have no identity head.
        """
        head = identity_head(self.heads, self.config.name)
        source, steps = self.config.heads.identity_input, self.config.rdm.sample_steps

        def embed(batch: CropBatch) -> IdentityVectors:
            assert batch.latents is not None
            return embed_batch(head, source, batch.latents, self.rdm_texture, self.rdm_shape, steps)

        done = self._pipeline().run(images, detect=detect, faces=faces, batch_size=batch_size,
                                    progress=progress, desc="identity", max_pixels=max_pixels, work=embed,
                                    work_rows=IDENTITY_ROWS)
        enc = assemble_encoding([b for b, _ in done], self.config.autoencoder.latent_dim)
        return assemble_identity(done, enc, self.config.heads.identity_dim, self.identity_threshold)

    def identity_from_latents(self, encoding: Encoding) -> Tensor:
        """Identity embeddings ``(N, D)`` of an :class:`Encoding` a caller already has (from :meth:`encode`,
        a video, a saved ``.npz`` loaded back): the same vectors :meth:`identity_embedding` gives for those
        faces, NaN rows where ``encoding.ok`` is False. No image is read again."""
        head = identity_head(self.heads, self.config.name)
        dim = self.config.heads.identity_dim
        out = torch.full((len(encoding), dim), float("nan"))
        ok = encoding.ok.bool()
        if bool(ok.any()):
            p = next(self.parameters())
            with torch.inference_mode():
                emb = embed_latents(head, self.config.heads.identity_input,
                                    encoding.texture[ok].to(p.device, p.dtype),
                                    encoding.shape[ok].to(p.device, p.dtype), self.rdm_texture,
                                    self.rdm_shape, self.config.rdm.sample_steps)
            out[ok] = emb.float().cpu()
        return out

    @property
    def identity_threshold(self) -> float:
        """The cosine of two identity embeddings at and above which :meth:`verify` says "same person"
        (chosen on training identities; the model card gives its error rates on held-out ones)."""
        return float(self.config.heads.identity_threshold)

    def verify(
        self,
        a: Images,
        b: Images,
        *,
        threshold: float | None = None,
        detect: bool = True,
        batch_size: int = 64,
        progress: bool = False,
        max_pixels: int = DEFAULT_MAX_PIXELS,
    ) -> Verification:
        """Are ``a`` and ``b`` the same person? One image each, or two lists compared pair by pair.

        Returns a :class:`Verification`: the cosine of the two faces' identity embeddings (the largest
        face of each image), ``same_person`` (cosine >= ``threshold``, default :attr:`identity_threshold`)
        and, for lists, which side of a pair failed and why (that pair's similarity is NaN). Two single
        images raise like :meth:`encode` does when one has no face.
        """
        cut = verify_settings(a, b, threshold, self.identity_threshold)
        sides = [self.identity_embedding(x, detect=detect, batch_size=batch_size, progress=progress,
                                         max_pixels=max_pixels) for x in (a, b)]
        return compare(sides[0], sides[1], cut)

    def expressions(
        self,
        images: Images,
        *,
        detect: bool = True,
        faces: FacePolicy = "largest",
        batch_size: int = 64,
        progress: bool = False,
        max_pixels: int = DEFAULT_MAX_PIXELS,
    ) -> Expressions:
        """The facial expression of each face: probabilities over the expression head's classes
        (FER-2013's seven for the bundled weights: angry, disgust, fear, happy, neutral, sad, surprise)
        and the most probable label. No training on your side: the head is the paper's linear probe on
        :meth:`expression_features` (mirrored), shipped with the weights; the model card says what trained
        it and its accuracy. A head trained on grey faces (``config.heads.expression_grey``, as the bundled
        one, on FER-2013) reads each crop turned grey. Other arguments as in :meth:`encode`.

        Raises :class:`~latentface_sdk.errors.ConfigError` when the weights have no expression head.
        """
        head = expression_head(self.heads, self.config.name)
        grey = self.config.heads.expression_grey

        def score(batch: CropBatch) -> ExpressionScores:
            return score_batch(self.autoencoder, head, batch, grey=grey)

        done = self._pipeline().run(images, detect=detect, faces=faces, batch_size=batch_size,
                                    progress=progress, desc="expressions", max_pixels=max_pixels, work=score)
        enc = assemble_encoding([b for b, _ in done], self.config.autoencoder.latent_dim)
        return assemble_expressions(done, enc, tuple(self.config.heads.expression_classes))

    def frontalize(
        self,
        images: Images,
        *,
        light: LightSpec = "same",
        texture: TextureMode = "photo",
        size: int | None = None,
        maps: bool = False,
        return_tensors: bool = False,
        detect: bool = True,
        faces: FacePolicy = "largest",
        batch_size: int = 64,
        progress: bool = False,
        max_pixels: int = DEFAULT_MAX_PIXELS,
    ) -> Frontalized:
        """Re-render each face in the canonical (frontal, centred) pose.

        ``texture="photo"`` (default) colours the face from the photo itself: each canonical point of the
        decoded depth, moved by the estimated pose and projected, reads the photo where it lands; points
        the turned head hides take the mirrored side's colours, then the albedo's
        (:mod:`latentface_sdk.render.photo_texture`). ``"albedo"`` draws the decoded albedo, shaded (the
        paper's rendering; smoother and more generic). ``size``: the output's side in pixels (default the
        model's 64; e.g. 256, read from the original photo at that resolution where it has the pixels).
        ``light="same"`` shades with the light estimated from the input, ``"neutral"`` with
        :data:`NEUTRAL_LIGHT`, or give ``(ambient, diffuse, dx, dy)`` (a photo texture is relit by the
        ratio of the two shadings). ``maps=True`` adds the canonical albedo, depth, normal and shading
        maps (at the model's 64x64). ``return_tensors=True`` skips building PIL images (``images`` is
        then empty; use ``tensor``). Other arguments as in :meth:`encode`.
        """
        return self.render(images, yaw=0.0, pitch=0.0, roll=0.0, light=light, texture=texture, size=size,
                           maps=maps, return_tensors=return_tensors, detect=detect, faces=faces,
                           batch_size=batch_size, progress=progress, max_pixels=max_pixels, desc="frontalize")

    def render(
        self,
        images: Images,
        *,
        yaw: float = 0.0,
        pitch: float = 0.0,
        roll: float = 0.0,
        light: LightSpec = "same",
        texture: TextureMode = "photo",
        size: int | None = None,
        maps: bool = False,
        return_tensors: bool = False,
        detect: bool = True,
        faces: FacePolicy = "largest",
        batch_size: int = 64,
        progress: bool = False,
        max_pixels: int = DEFAULT_MAX_PIXELS,
        desc: str = "render",
    ) -> Frontalized:
        """Re-render each face from another view: rotated by ``yaw``, ``pitch``, ``roll`` (degrees) about its
        centre.

        ``yaw=pitch=roll=0`` is :meth:`frontalize`. The face is decoded to canonical depth and textured
        (``texture``, ``light`` and ``size`` as in :meth:`frontalize`) and rendered with the model's camera
        (no translation). Returns a :class:`Frontalized` whose ``pose`` holds the view.
        """
        angles = (float(yaw), float(pitch), float(roll))
        if not all(math.isfinite(a) for a in angles):
            raise ValueError(f"yaw, pitch and roll must be finite numbers of degrees (got {angles})")
        fixed_light = parse_light(light)
        mode = check_texture(texture)
        model_size = self.config.autoencoder.image_size
        side = check_size(size, model_size)

        def draw(batch: CropBatch) -> RenderedViews:
            assert batch.latents is not None
            if mode == "albedo" and side == model_size:  # the paper's rendering, unchanged
                return render_views(self.autoencoder, self.renderer, batch.latents, angles=angles,
                                    light=fixed_light, maps=maps, backend=self.render_backend)
            return render_textured_views(self.autoencoder, self.renderer, batch, angles=angles,
                                         light=fixed_light, maps=maps, backend=self.render_backend,
                                         texture=mode, size=side)

        done = self._pipeline().run(images, detect=detect, faces=faces, batch_size=batch_size,
                                    progress=progress, desc=desc, max_pixels=max_pixels, work=draw)
        enc = assemble_encoding([b for b, _ in done], self.config.autoencoder.latent_dim)
        return assemble_frontalized(done, enc, side, maps=maps, return_tensors=return_tensors,
                                    map_size=model_size)

    def mesh(
        self,
        images: Images,
        *,
        view: Literal["frontal", "photo"] = "frontal",
        texture: TextureMode = "photo",
        detect: bool = True,
        faces: FacePolicy = "largest",
        batch_size: int = 64,
        progress: bool = False,
        max_pixels: int = DEFAULT_MAX_PIXELS,
    ) -> FaceMeshes:
        """Each face as a textured 3D mesh: the decoded depth map's grid mesh over the face region, coloured
        and textured (:mod:`latentface_sdk.mesh`: axes y up, facing +z).

        ``texture="photo"`` (default): a 256x256 texture from the photo itself, as :meth:`frontalize`
        builds it (the photo's own light kept; hidden parts from the mirrored side, then the albedo);
        ``"albedo"``: the decoded albedo (64x64, unlit). ``view="frontal"`` gives the canonical (frontal)
        face; ``"photo"`` turns it by the head rotation estimated from the photo.
        ``result.meshes[i].save("face.obj")`` writes ``.obj`` (+ ``.mtl`` and a PNG texture), ``.ply``
        (vertex colours) or ``.glb`` (texture embedded). Other arguments as in :meth:`encode`.
        """
        if view not in ("frontal", "photo"):
            raise ValueError(f"view must be 'frontal' or 'photo' (got {view!r})")
        mode = check_texture(texture)

        def decode(batch: CropBatch) -> CanonicalMaps:
            assert batch.latents is not None
            if mode == "albedo":
                return decode_maps(self.autoencoder, batch.latents)
            return mesh_maps(self.autoencoder, self.renderer, batch, texture=mode,
                             backend=self.render_backend)

        done = self._pipeline().run(images, detect=detect, faces=faces, batch_size=batch_size,
                                    progress=progress, desc="mesh", max_pixels=max_pixels, work=decode)
        enc = assemble_encoding([b for b, _ in done], self.config.autoencoder.latent_dim)
        return assemble_meshes(done, enc, self.renderer, view=view)

    def encode_video_parts(self, path: str | os.PathLike[str], **options: Any) -> Iterator[VideoEncoding]:
        """:meth:`encode_video` as a stream of parts, one per ``frames_per_batch`` sampled frames (memory
        stays flat however long the video); takes :meth:`encode_video`'s keyword arguments (an unknown one
        is a ``TypeError``). A decoding error is raised after the last good part."""
        bound = inspect.signature(FaceEncoder.encode_video).bind(self, path, **options)
        bound.apply_defaults()
        settings = {k: v for k, v in bound.arguments.items() if k not in ("self", "path")}
        yield from self._video_stream(path, settings)

    def _video_stream(self, path: str | os.PathLike[str], o: dict[str, Any]) -> Iterator[VideoEncoding]:
        from .video import FaceTracker, encode_frames, frame_count

        if o["features"] not in ("encode", "disentangle"):
            raise ValueError(f"features must be 'encode' or 'disentangle' (got {o['features']!r})")
        per = o["frames_per_batch"]
        if isinstance(per, bool) or not isinstance(per, int) or per < 1:
            raise ValueError(f"frames_per_batch must be a positive int (got {per!r})")
        similarity = o["min_similarity"]
        if similarity is not None and (isinstance(similarity, bool)
                                       or not isinstance(similarity, (int, float))
                                       or not -1.0 <= float(similarity) <= 1.0):
            raise ValueError(f"min_similarity must be a cosine in [-1, 1] or None (got {similarity!r})")
        has_identity = self.heads.identity is not None
        if similarity is not None and not has_identity:
            raise ConfigError(f"min_similarity needs an identity head and the weights {self.config.name!r} "
                              "have none: leave it None to link faces by box overlap alone")
        if similarity is None and has_identity:
            similarity = self.identity_threshold
        tracker = FaceTracker(o["min_iou"], o["max_gap"], None if similarity is None else float(similarity))

        def run(frames: list[Any]) -> Encoding | Disentangled:
            if o["features"] == "disentangle":
                return self.disentangle(frames, faces=o["faces"], batch_size=o["batch_size"], seed=o["seed"])
            return self.encode(frames, faces=o["faces"], batch_size=o["batch_size"])

        total = frame_count(path) if o["progress"] else None
        with tqdm(total=total, desc="video", unit="frame", disable=not o["progress"]) as bar:
            def on_frame(n: int) -> None:
                bar.update(n - bar.n)

            yield from encode_frames(path, run, every=o["every"], fps=o["fps"], frames_per_batch=per,
                                     tracker=tracker, on_frame=on_frame,
                                     identify=self.identity_from_latents if has_identity else None,
                                     cut_threshold=o["cut_threshold"])

    def encode_video(
        self,
        path: str | os.PathLike[str],
        *,
        every: int | None = None,
        fps: float | None = None,
        features: Literal["encode", "disentangle"] = "encode",
        faces: FacePolicy = "all",
        frames_per_batch: int = 32,
        batch_size: int = 64,
        min_iou: float = 0.3,
        max_gap: int = 2,
        min_similarity: float | None = None,
        cut_threshold: float | None = 1.0,
        seed: int | None = 0,
        progress: bool = False,
    ) -> VideoEncoding:
        """Every face of a video file: one row per face per sampled frame, with frame index, time, shot,
        box, track id and identity embedding, and the latents of :meth:`encode`
        (``features="disentangle"``: also :meth:`disentangle`'s).

        Needs PyAV (``pip install 'latentface-sdk[video]'``). ``every=N`` keeps every N-th frame, ``fps``
        about that many frames per second (neither: all frames); ``time`` counts from the first frame
        (``result.start_time`` is the stream's offset). Frames are decoded one at a time and encoded
        ``frames_per_batch`` at a time; ``faces="all"`` (default) or ``"largest"`` per frame.

        Tracks (:class:`~latentface_sdk.video.FaceTracker`) hold one person within one shot: every
        decoded frame is compared with the one before it and a change of at least ``cut_threshold``
        (:mod:`latentface_sdk.shots`; ``None``: no cut detection) starts a new shot, which ends every
        track. A face continues a track seen within ``max_gap`` sampled frames when the boxes overlap
        (IoU >= ``min_iou``) and its identity embedding (:meth:`identity_from_latents`) has a cosine of at
        least ``min_similarity`` with the track's mean (``None``: the model's :attr:`identity_threshold`);
        within a shot a face may also re-join a track lost a few frames before by identity, where its box
        lies within one face width per sampled frame since. Weights without an identity head link faces by
        box overlap alone (``min_similarity`` must then be None). ``result.track_means()`` gives one mean
        row per track. Frames without a face give no row (a video without faces gives an empty result).
        Rotated phone videos are turned upright.

        Raises :class:`~latentface_sdk.video.VideoDecodeError` (a :class:`DataError`) naming the file and
        the frame when the file is no video or stops decoding part way; its ``partial`` holds the rows of
        the frames before it.
        """
        from .video import VideoDecodeError, concat_video, empty_video

        settings = {"every": every, "fps": fps, "features": features, "faces": faces,
                    "frames_per_batch": frames_per_batch, "batch_size": batch_size, "min_iou": min_iou,
                    "max_gap": max_gap, "min_similarity": min_similarity, "cut_threshold": cut_threshold,
                    "seed": seed, "progress": progress}
        identity_dim = self.config.heads.identity_dim if self.heads.identity is not None else 0
        parts: list[VideoEncoding] = []
        try:
            for part in self._video_stream(path, settings):
                parts.append(part)
        except VideoDecodeError as exc:
            exc.partial = (concat_video(parts) if parts
                           else empty_video(os.fspath(path), features, self.config.autoencoder.latent_dim,
                                            identity_dim=identity_dim))
            raise
        if not parts:
            return empty_video(os.fspath(path), features, self.config.autoencoder.latent_dim,
                               identity_dim=identity_dim)
        return concat_video(parts)

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
