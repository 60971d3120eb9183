"""The public operations of an encoder, written once over a :class:`~latentface_sdk.backends.FaceBackend`.

:class:`FaceFacade` is what :class:`~latentface_sdk.FaceEncoder` (PyTorch) and
:class:`~latentface_sdk.OnnxFaceEncoder` (ONNX Runtime) share: the argument checks, the sampling settings,
the averaging of identity samples, the one road through :class:`~latentface_sdk.pipeline.FacePipeline`,
the result assembly and every output. Its subclasses supply only :attr:`FaceFacade.backend` (crops ->
latents, latents -> identity, the heads, the maps) and how the model is loaded. See
:mod:`latentface_sdk.encoder` for the rules every image-in operation follows (inputs, faces, single input
or batch).

Two kinds of operation:

* **image in** (``encode``, ``disentangle``, ``identity_embedding``, ``verify``, ``expressions``,
  ``expression_features``, ``frontalize``, ``render``, ``mesh``, ``encode_video``): inputs are read,
  faces found and cut, encoded, then the operation's work runs on each batch;
* **latents in** (:meth:`FaceFacade.identity_from_latents`, :meth:`FaceFacade.render_from_latents`,
  :meth:`FaceFacade.mesh_from_latents`): an :class:`~latentface_sdk.results.Encoding` a caller already has
  (from ``encode``, a video's rows, a saved ``.npz`` loaded back) is rendered, meshed or embedded without
  reading an image again. (Expressions need the crops: the expression head reads the encoders'
  intermediate maps, which an ``Encoding`` does not keep.)
"""

from __future__ import annotations

import math
import os
import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Literal, TypeAlias, TypeVar

import numpy as np
import torch
from torch import Tensor
from tqdm.auto import tqdm

from .answers import (
    ExpressionScores,
    IdentityVectors,
    assemble_expressions,
    assemble_identity,
    compare,
    verify_settings,
)
from .backends import FaceBackend
from .detection import FaceDetector, _resample_square, square_box
from .errors import ConfigError, InvalidImageError
from .images import DEFAULT_MAX_PIXELS, ImageInput, split_inputs, to_rgb
from .models.autoencoder import Latents
from .operations import (
    IDENTITY_ROWS,
    CanonicalMaps,
    ExpressionMaps,
    IdentityLatents,
    LightSpec,
    RenderedViews,
    assemble_disentangled,
    assemble_expression,
    assemble_frontalized,
    assemble_meshes,
    parse_light,
    sample_identity,
)
from .photo_views import check_size, check_texture
from .pipeline import CropBatch, FacePipeline, FacePolicy, Row, assemble_encoding, to_cpu
from .render.photo_texture import TextureMode
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
from .video import VideoEncoding, VideoSettings

__all__ = ["FaceFacade", "IdentitySampling", "Images"]

#: One image or several (see :mod:`latentface_sdk.encoder`).
Images: TypeAlias = ImageInput | Sequence[ImageInput]
T = TypeVar("T")
Done: TypeAlias = list[tuple[CropBatch, T | None]]


@dataclass(frozen=True)
class IdentitySampling:
    """Checked settings of the RDMs' identity sampling (``disentangle``'s ``steps``, ``init``,
    ``num_samples``, ``seed``)."""

    steps: int
    init: Literal["noise", "zero"]
    num_samples: int
    seed: int


class FaceFacade:
    """Every public operation of an encoder, over :attr:`backend` (see the module docstring).

    Subclasses set ``_detector = None`` and ``_detector_lock = threading.Lock()`` and define
    :attr:`backend`."""

    _detector: FaceDetector | None
    _detector_lock: threading.Lock
    #: the MTCNN's weights channels-last (faster on a CPU; the same boxes)
    channels_last: bool = True

    @property
    def backend(self) -> FaceBackend:
        """The runtime that computes the networks (:mod:`latentface_sdk.backends`)."""
        raise NotImplementedError

    # -- faces ------------------------------------------------------------------------------------------
    @property
    def detector(self) -> FaceDetector:
        """The MTCNN face detector with the model's crop settings, on the backend's detector device (built
        once, on first use, under a lock)."""
        if self._detector is None:
            with self._detector_lock:
                if self._detector is None:
                    b = self.backend
                    det = FaceDetector(b.facts.crop, device=b.detector_device)
                    if self.channels_last:
                        det.mtcnn.to(memory_format=torch.channels_last)
                    self._detector = det
        return self._detector

    def _pipeline(self) -> FacePipeline:
        b = self.backend
        return FacePipeline(b.facts.crop, b.encode_crops, lambda: self.detector, b.threads, b.decode_workers)

    def _run(self, images: Images, *, desc: str, detect: bool, faces: FacePolicy, batch_size: int,
             progress: bool, max_pixels: int, work: Callable[[CropBatch], T] | None = None,
             work_rows: int = 0) -> tuple[Done[T], Encoding]:
        """The pipeline's batches with their work results, and the rows' :class:`Encoding`."""
        done = self._pipeline().run(images, detect=detect, faces=faces, batch_size=batch_size,
                                    progress=progress, desc=desc, max_pixels=max_pixels, work=work,
                                    work_rows=work_rows)
        return done, assemble_encoding([b for b, _ in done], self.backend.facts.latent_dim)

    # -- encode and disentangle -------------------------------------------------------------------------
    def encode(self, images: Images, *, detect: bool = True, faces: FacePolicy = "largest",
               batch_size: int = 64, progress: bool = False,
               max_pixels: int = DEFAULT_MAX_PIXELS) -> Encoding:
        """Stage-1 latents (texture, shape, pose, light) and face boxes of one image or a list.

        ``batch_size`` inputs are read, detected and encoded at a time (memory stays bounded for long
        lists); ``progress`` shows a progress bar on stderr; ``max_pixels`` is the decompression-bomb
        limit. See :mod:`latentface_sdk.encoder` for ``detect``, ``faces`` and the single/batch rules.

        Raises (single input only): :class:`InvalidImageError`, :class:`NoFaceError`.
        """
        return self._run(images, desc="encode", detect=detect, faces=faces, batch_size=batch_size,
                         progress=progress, max_pixels=max_pixels)[1]

    def identity_sampling(self, *, steps: int | None = None, seed: int | None = None, num_samples: int = 1,
                          init: Literal["noise", "zero"] | None = None) -> IdentitySampling:
        """:meth:`disentangle`'s sampling arguments checked and completed with the model's defaults (a
        ``seed`` of None drawn from torch's global RNG)."""
        if isinstance(num_samples, bool) or not isinstance(num_samples, int) or num_samples < 1:
            raise ValueError(f"num_samples must be a positive integer (got {num_samples!r})")
        b = self.backend
        chosen_steps = b.check_steps(steps)
        chosen = init if init is not None else b.facts.sample_init
        if chosen not in ("noise", "zero"):
            raise ValueError(f"init must be 'noise' or 'zero' (got {chosen!r})")
        if seed is None:
            seed = int(torch.randint(0, 2**62, (1,)).item())
        return IdentitySampling(steps=chosen_steps, init="zero" if chosen == "zero" else "noise",
                                num_samples=num_samples, seed=int(seed))

    def disentangle(self, images: Images, *, steps: int | None = None, seed: int | None = None,
                    num_samples: int = 1, init: Literal["noise", "zero"] | None = None, detect: bool = True,
                    faces: FacePolicy = "largest", batch_size: int = 64, progress: bool = False,
                    max_pixels: int = DEFAULT_MAX_PIXELS) -> Disentangled:
        """Identity latents ``Z_id`` (by representation diffusion), expression ``Δexp = Z_exp - Z_id``, and
        ``Z_exp``.

        Each RDM runs ``steps`` DDIM steps (default: the model's ``rdm.sample_steps``, 5; an ONNX export
        has its steps unrolled and takes no other number) from ``z_T``: ``init="noise"`` draws it from a
        Gaussian (the paper), ``"zero"`` starts from the prior's mode ``z_T = 0`` (deterministic, close to
        the mean of many samples); the default is the model's ``rdm.sample_init``. With
        ``num_samples > 1`` the identity is the mean of that many samples (only useful with noise). The
        noise of each face is drawn from a generator seeded by ``seed`` and a hash of the face crop, so
        with a seed the result of an image does not depend on the batch it came in, its position,
        ``batch_size`` or the backend (equal up to float rounding). ``seed=None`` draws the seed from
        torch's global RNG (so ``torch.manual_seed`` makes it repeatable). Other arguments as in
        :meth:`encode`.
        """
        sampling = self.identity_sampling(steps=steps, seed=seed, num_samples=num_samples, init=init)
        return self._disentangle(images, sampling, detect=detect, faces=faces, batch_size=batch_size,
                                 progress=progress, max_pixels=max_pixels)

    def _disentangle(self, images: Images, sampling: IdentitySampling, *, detect: bool, faces: FacePolicy,
                     batch_size: int, progress: bool, max_pixels: int) -> Disentangled:
        sampler = self.backend.identity_latents

        def identity(batch: CropBatch) -> IdentityLatents:
            return sample_identity(sampler, batch, steps=sampling.steps, init=sampling.init,
                                   num_samples=sampling.num_samples, seed=sampling.seed)

        done, enc = self._run(images, desc="disentangle", detect=detect, faces=faces, batch_size=batch_size,
                              progress=progress, max_pixels=max_pixels, work=identity,
                              work_rows=IDENTITY_ROWS)
        return assemble_disentangled(done, enc, self.backend.facts.latent_dim)

    def expression_features(self, images: Images, *, mirror: bool = True, detect: bool = True,
                            faces: FacePolicy = "largest", batch_size: int = 64, progress: bool = False,
                            max_pixels: int = DEFAULT_MAX_PIXELS) -> ExpressionFeatures:
        """One feature vector per face for facial expression: ``[Z_t, Z_s]`` and the texture and shape
        encoders' intermediate maps pooled on coarse grids (:mod:`latentface_sdk.expression`).

        The vector a linear expression classifier should read (``examples/fer.py``; docs/results.md
        measures it against the latents, ``Δexp``, HOG and LBP). ``layout`` names its column ranges.
        ``mirror=True`` (default) averages each face's features with its mirror image's: twice the
        encoder work, and 2.4 points more on FER-2013 PublicTest with the bundled weights. Other
        arguments as in :meth:`encode`.
        """
        b = self.backend
        b.require("expression_features")

        def read(batch: CropBatch) -> ExpressionMaps:
            return ExpressionMaps(b.expression_features(batch, mirror=mirror))

        done, enc = self._run(images, desc="expression", detect=detect, faces=faces, batch_size=batch_size,
                              progress=progress, max_pixels=max_pixels, work=read)
        return assemble_expression(done, enc, b.expression_layout())

    # -- answers ----------------------------------------------------------------------------------------
    @property
    def identity_threshold(self) -> float:
        """The cosine of two identity embeddings at and above which :meth:`verify` says "same person"
        (chosen on training identities; the model card gives its error rates on held-out ones)."""
        return self.backend.facts.identity_threshold

    def identity_embedding(self, images: Images, *, detect: bool = True, faces: FacePolicy = "largest",
                           batch_size: int = 64, progress: bool = False,
                           max_pixels: int = DEFAULT_MAX_PIXELS) -> IdentityEmbeddings:
        """One unit-length identity vector per face, made for cosine similarity (``a @ b`` of two rows).

        The model's identity head (``config.heads``: what it reads and how it was fitted) projects the
        identity features so that one person's faces lie close and two people's apart; the RDM runs from
        ``z_T = 0`` here, so a face always gets the same vector. Two faces whose cosine is at least
        :attr:`identity_threshold` are called the same person (:meth:`verify`). ``result.similarity()``
        gives the cosine matrix of all rows. Other arguments as in :meth:`encode`.

        Raises :class:`~latentface_sdk.errors.ConfigError` when the weights have no identity head.
        """
        b = self.backend
        b.require("identity")

        def embed(batch: CropBatch) -> IdentityVectors:
            assert batch.latents is not None
            return IdentityVectors(b.identity_vectors(batch.latents.texture, batch.latents.shape))

        done, enc = self._run(images, desc="identity", detect=detect, faces=faces, batch_size=batch_size,
                              progress=progress, max_pixels=max_pixels, work=embed, work_rows=IDENTITY_ROWS)
        return assemble_identity(done, enc, b.facts.identity_dim, b.facts.identity_threshold)

    def verify(self, a: Images, b: Images, *, threshold: float | None = None, detect: bool = True,
               batch_size: int = 64, progress: bool = False,
               max_pixels: int = DEFAULT_MAX_PIXELS) -> Verification:
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

    def expressions(self, images: Images, *, detect: bool = True, faces: FacePolicy = "largest",
                    batch_size: int = 64, progress: bool = False,
                    max_pixels: int = DEFAULT_MAX_PIXELS) -> Expressions:
        """The facial expression of each face: probabilities over the expression head's classes
        (FER-2013's seven for the bundled weights: angry, disgust, fear, happy, neutral, sad, surprise)
        and the most probable label. No training on your side: the head is the paper's linear probe on
        :meth:`expression_features` (mirrored), shipped with the weights; the model card says what trained
        it and its accuracy. A head trained on grey faces (``config.heads.expression_grey``, as the bundled
        one, on FER-2013) reads each crop turned grey. Other arguments as in :meth:`encode`.

        Raises :class:`~latentface_sdk.errors.ConfigError` when the weights have no expression head.
        """
        b = self.backend
        b.require("expression")

        def score(batch: CropBatch) -> ExpressionScores:
            return ExpressionScores(b.expression_probabilities(batch.crops))

        done, enc = self._run(images, desc="expressions", detect=detect, faces=faces, batch_size=batch_size,
                              progress=progress, max_pixels=max_pixels, work=score)
        return assemble_expressions(done, enc, b.facts.expression_classes)

    # -- views and meshes -------------------------------------------------------------------------------
    def frontalize(self, images: Images, *, light: LightSpec = "same", texture: TextureMode = "photo",
                   size: int | None = None, maps: bool = False, return_tensors: bool = False,
                   detect: bool = True, faces: FacePolicy = "largest", batch_size: int = 64,
                   progress: bool = False, max_pixels: int = DEFAULT_MAX_PIXELS) -> Frontalized:
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

    def render(self, images: Images, *, yaw: float = 0.0, pitch: float = 0.0, roll: float = 0.0,
               light: LightSpec = "same", texture: TextureMode = "photo", size: int | None = None,
               maps: bool = False, return_tensors: bool = False, detect: bool = True,
               faces: FacePolicy = "largest", batch_size: int = 64, progress: bool = False,
               max_pixels: int = DEFAULT_MAX_PIXELS, desc: str = "render") -> Frontalized:
        """Re-render each face from another view: rotated by ``yaw``, ``pitch``, ``roll`` (degrees) about its
        centre.

        ``yaw=pitch=roll=0`` is :meth:`frontalize`. The face is decoded to canonical depth and textured
        (``texture``, ``light`` and ``size`` as in :meth:`frontalize`) and rendered with the model's camera
        (no translation). Returns a :class:`Frontalized` whose ``pose`` holds the view.
        """
        draw, side = self._view(yaw, pitch, roll, light, texture, size, maps)
        done, enc = self._run(images, desc=desc, detect=detect, faces=faces, batch_size=batch_size,
                              progress=progress, max_pixels=max_pixels, work=draw)
        return assemble_frontalized(done, enc, side, maps=maps, return_tensors=return_tensors,
                                    map_size=self.backend.facts.crop.size)

    def _view(self, yaw: float, pitch: float, roll: float, light: LightSpec, texture: TextureMode,
              size: int | None, maps: bool) -> tuple[Callable[[CropBatch], RenderedViews], int]:
        """``render``'s checked settings as the work of a batch, and the output's side."""
        b = self.backend
        b.require("maps")
        angles = (float(yaw), float(pitch), float(roll))
        if not all(math.isfinite(a) for a in angles):
            raise ValueError(f"yaw, pitch and roll must be finite numbers of degrees (got {angles})")
        fixed_light = parse_light(light)
        mode = check_texture(texture)
        side = check_size(size, b.facts.crop.size)

        def draw(batch: CropBatch) -> RenderedViews:
            return b.render(batch, angles=angles, light=fixed_light, maps=maps, texture=mode, size=side)

        return draw, side

    def mesh(self, images: Images, *, view: Literal["frontal", "photo"] = "frontal",
             texture: TextureMode = "photo", detect: bool = True, faces: FacePolicy = "largest",
             batch_size: int = 64, progress: bool = False,
             max_pixels: int = DEFAULT_MAX_PIXELS) -> FaceMeshes:
        """Each face as a textured 3D mesh: the decoded depth map's grid mesh over the face region, coloured
        and textured (:mod:`latentface_sdk.mesh`: axes y up, facing +z).

        ``texture="photo"`` (default): a 256x256 texture from the photo itself, as :meth:`frontalize`
        builds it (the photo's own light kept; hidden parts from the mirrored side, then the albedo);
        ``"albedo"``: the decoded albedo (64x64, unlit). ``view="frontal"`` gives the canonical (frontal)
        face; ``"photo"`` turns it by the head rotation estimated from the photo.
        ``result.meshes[i].save("face.obj")`` writes ``.obj`` (+ ``.mtl`` and a PNG texture), ``.ply``
        (vertex colours) or ``.glb`` (texture embedded). Other arguments as in :meth:`encode`.
        """
        decode = self._mesh_work(view, texture)
        done, enc = self._run(images, desc="mesh", detect=detect, faces=faces, batch_size=batch_size,
                              progress=progress, max_pixels=max_pixels, work=decode)
        return assemble_meshes(done, enc, self.backend.renderer, view=view)

    def _mesh_work(self, view: str, texture: TextureMode) -> Callable[[CropBatch], CanonicalMaps]:
        b = self.backend
        b.require("maps")
        if view not in ("frontal", "photo"):
            raise ValueError(f"view must be 'frontal' or 'photo' (got {view!r})")
        mode = check_texture(texture)

        def decode(batch: CropBatch) -> CanonicalMaps:
            return b.canonical_maps(batch, texture=mode)

        return decode

    # -- latents in -------------------------------------------------------------------------------------
    def identity_from_latents(self, encoding: Encoding) -> Tensor:
        """Identity embeddings ``(N, D)`` of an :class:`Encoding` a caller already has (from :meth:`encode`,
        a video, a saved ``.npz`` loaded back): the same vectors :meth:`identity_embedding` gives for those
        faces, NaN rows where ``encoding.ok`` is False. No image is read again.

        Raises :class:`~latentface_sdk.errors.ConfigError` when the weights have no identity head."""
        b = self.backend
        b.require("identity")
        out = torch.full((len(encoding), b.facts.identity_dim), float("nan"))
        ok = encoding.ok.bool()
        if bool(ok.any()):
            with torch.inference_mode():
                emb = b.identity_vectors(encoding.texture[ok], encoding.shape[ok])
            out[ok] = emb.float().cpu()
        return out

    def render_from_latents(self, encoding: Encoding, *, yaw: float = 0.0, pitch: float = 0.0,
                            roll: float = 0.0, light: LightSpec = "same", texture: TextureMode = "albedo",
                            size: int | None = None, maps: bool = False, return_tensors: bool = False,
                            photos: Images | None = None, batch_size: int = 64) -> Frontalized:
        """:meth:`render` of an :class:`Encoding` a caller already has: each ok row's face drawn from the view
        ``yaw``, ``pitch``, ``roll`` (all 0: frontal), with no image read or encoded again.

        ``texture="albedo"`` (the default here) draws the decoded albedo; ``texture="photo"`` colours the
        face from its photo, which must then be given: ``photos`` are the images the encoding was made
        from, in the order of its ``source`` (one image, or a list), and each face is cut again from its
        row's box (the model's crop square around an MTCNN box; a box without a detection score is the
        square itself, as ``detect=False`` gives). ``light``, ``size``, ``maps`` and ``return_tensors`` as
        in :meth:`frontalize`. The result equals :meth:`render` on the same images up to float rounding;
        rows that are not ok stay NaN with their errors.
        """
        draw, side = self._view(yaw, pitch, roll, light, texture, size, maps)
        done = self._latent_batches(encoding, photos if texture == "photo" else None, batch_size, draw,
                                    need_photos=texture == "photo")
        return assemble_frontalized(done, encoding, side, maps=maps, return_tensors=return_tensors,
                                    map_size=self.backend.facts.crop.size)

    def mesh_from_latents(self, encoding: Encoding, *, view: Literal["frontal", "photo"] = "frontal",
                          texture: TextureMode = "albedo", photos: Images | None = None,
                          batch_size: int = 64) -> FaceMeshes:
        """:meth:`mesh` of an :class:`Encoding` a caller already has: one textured 3D mesh per ok row, with
        no image read or encoded again. ``texture="albedo"`` (the default here) or ``"photo"`` with
        ``photos`` as in :meth:`render_from_latents`; ``view`` as in :meth:`mesh`."""
        decode = self._mesh_work(view, texture)
        done = self._latent_batches(encoding, photos if texture == "photo" else None, batch_size, decode,
                                    need_photos=texture == "photo")
        return assemble_meshes(done, encoding, self.backend.renderer, view=view)

    def _latent_batches(self, encoding: Encoding, photos: Images | None, batch_size: int,
                        work: Callable[[CropBatch], T], *, need_photos: bool) -> Done[T]:
        """``work`` on the ok rows of ``encoding``, ``batch_size`` rows at a time, as the pipeline would run
        it on batches of those faces (results on the CPU in float32)."""
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise ValueError(f"batch_size must be a positive integer (got {batch_size!r})")
        if need_photos and photos is None:
            raise ValueError("texture='photo' needs the photos the encoding was made from (photos=...); "
                             "texture='albedo' needs none")
        crop = self.backend.facts.crop
        rgbs: dict[int, np.ndarray] = {}
        items = split_inputs(photos)[0] if photos is not None else []
        done: Done[T] = []
        for start in range(0, len(encoding), batch_size):
            rows = list(range(start, min(start + batch_size, len(encoding))))
            ok = [k for k, i in enumerate(rows) if bool(encoding.ok[i])]
            picked = torch.as_tensor([rows[k] for k in ok], dtype=torch.long)
            batch = CropBatch(rows=[Row(encoding.names[i], int(encoding.source[i]), error=encoding.errors[i])
                                    for i in rows], crop_rows=ok,
                              crops=np.zeros((len(ok), crop.size, crop.size, 3), dtype=np.uint8),
                              latents=Latents(*(getattr(encoding, f)[picked]
                                                for f in ("texture", "shape", "pose", "light"))))
            if photos is not None and ok:
                squares, sources = [], []
                for i in picked.tolist():
                    rgb = _photo(rgbs, items, int(encoding.source[i]))
                    box = tuple(float(v) for v in encoding.boxes[i])
                    detected = not math.isnan(float(encoding.scores[i]))  # detect=False: the square itself
                    squares.append(square_box(box, crop.margin) if detected else box)
                    sources.append(rgb)
                batch.squares = np.asarray(squares, dtype=np.float64)
                batch.sources = sources
                batch.crops = np.stack([_resample_square(rgb, sq, crop.size)  # type: ignore[arg-type]
                                        for rgb, sq in zip(sources, squares, strict=True)])
            result: T | None = None
            if ok:
                with torch.inference_mode():
                    result = to_cpu(work(batch))
            batch.sources = None
            done.append((batch, result))
        return done

    # -- video ------------------------------------------------------------------------------------------
    def encode_video_parts(self, path: str | os.PathLike[str], **options: Any) -> Iterator[VideoEncoding]:
        """:meth:`encode_video` as a stream of parts, one per ``frames_per_batch`` sampled frames (memory
        stays flat however long the video); takes :meth:`encode_video`'s keyword arguments (an unknown one
        is a ``TypeError``). A decoding error is raised after the last good part."""
        yield from self._video_parts(path, VideoSettings(**options))

    def _video_parts(self, path: str | os.PathLike[str], s: VideoSettings) -> Iterator[VideoEncoding]:
        from .video import FaceTracker, VideoParts, frame_count, frame_groups

        b = self.backend
        has_identity = b.has("identity")
        similarity = s.min_similarity
        if similarity is not None and not has_identity:
            raise ConfigError(f"min_similarity needs an identity head and the weights {b.facts.name!r} have "
                              "none: leave it None to link faces by box overlap alone")
        if similarity is None and has_identity:
            similarity = b.facts.identity_threshold
        sampling = self.identity_sampling(seed=s.seed) if s.features == "disentangle" else None
        parts = VideoParts(os.fspath(path), FaceTracker(s.min_iou, s.max_gap,
                                                        None if similarity is None else float(similarity)))
        total = frame_count(path) if s.progress else None
        with tqdm(total=total, desc="video", unit="frame", disable=not s.progress) as bar:
            def on_frame(n: int) -> None:
                bar.update(n - bar.n)

            for frames, decoded in frame_groups(path, every=s.every, fps=s.fps,
                                                frames_per_batch=s.frames_per_batch, on_frame=on_frame,
                                                cut_threshold=s.cut_threshold):
                images = [f.image for f in frames]
                args: dict[str, Any] = {"detect": True, "faces": s.faces, "batch_size": s.batch_size,
                                        "progress": False, "max_pixels": DEFAULT_MAX_PIXELS}
                result: Encoding | Disentangled = (self._disentangle(images, sampling, **args)
                                                   if sampling is not None else self.encode(images, **args))
                enc = result if isinstance(result, Encoding) else result.encoding
                identity = self.identity_from_latents(enc) if has_identity and len(enc) else None
                yield parts.add(frames, result, identity, decoded)

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

        Needs PyAV (the ``[video]`` extra). ``every=N`` keeps every N-th frame, ``fps``
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

        settings = VideoSettings(every=every, fps=fps, features=features, faces=faces,
                                 frames_per_batch=frames_per_batch, batch_size=batch_size, min_iou=min_iou,
                                 max_gap=max_gap, min_similarity=min_similarity, cut_threshold=cut_threshold,
                                 seed=seed, progress=progress)
        facts = self.backend.facts
        parts: list[VideoEncoding] = []

        def gathered() -> VideoEncoding:
            if parts:
                return concat_video(parts)
            return empty_video(os.fspath(path), features, facts.latent_dim, identity_dim=facts.identity_dim)

        try:
            for part in self._video_parts(path, settings):
                parts.append(part)
        except VideoDecodeError as exc:
            exc.partial = gathered()
            raise
        return gathered()


def _photo(cache: dict[int, np.ndarray], items: Sequence[Any], source: int) -> np.ndarray:
    """The RGB array of ``items[source]`` (converted once)."""
    if source not in cache:
        if not 0 <= source < len(items):
            raise InvalidImageError(f"the encoding has a row of input {source} but {len(items)} photo(s) "
                                    "were given: pass the images the encoding was made from, in order")
        cache[source] = to_rgb(items[source], name=f"item {source}")
    return cache[source]
