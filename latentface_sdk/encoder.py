"""FaceEncoder: the public model. Load weights, then encode, disentangle, frontalize or re-render faces.

The data flows one way: image -> face crop -> stage-1 latents -> (RDM) -> identity/expression, or
latents -> canonical maps -> render.

Inputs
    A path, a PIL image, a numpy ``HxWxC`` array, a torch ``CxHxW`` tensor, or a list of these; a 4-D
    ``BxCxHxW`` tensor or ``BxHxWxC`` array is a batch of ``B`` images. Every conversion and refusal is
    :mod:`latentface_sdk.images`'s (grey, RGBA and palette images are converted; bad inputs get a typed
    :class:`~latentface_sdk.errors.InvalidImageError` naming the input and the reason).

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

import copy
import hashlib
import os
import tempfile
import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, TypeAlias

import numpy as np
import torch
from PIL import Image
from torch import Tensor, nn
from tqdm.auto import tqdm

from . import hub
from .checkpoint import PREFIXES, load_model_folder, load_part, prefixed, save_model_folder
from .config import WEIGHTS_NAME, ModelConfig
from .detection import FaceDetector, crop_aligned, crop_face, select_faces
from .devices import resolve_device
from .errors import ConfigError, NoFaceError, WeightsError
from .images import DEFAULT_MAX_PIXELS, ImageInput, convert_items, split_inputs
from .models.autoencoder import LatentAutoencoder, Latents
from .models.rdm import RepresentationDiffusion
from .render.renderer import FaceRenderer
from .results import Disentangled, Encoding, Frontalized
from .threads import Threads, choose_threads, thread_scope

__all__ = ["FaceEncoder", "Images", "LightSpec", "NEUTRAL_LIGHT"]

#: One image or several (see the module docstring).
Images: TypeAlias = ImageInput | Sequence[ImageInput]

#: ``"same"`` (the light estimated from each input), ``"neutral"`` (:data:`NEUTRAL_LIGHT`) or 4 numbers
#: ``(ambient, diffuse, dx, dy)``.
LightSpec: TypeAlias = Literal["same", "neutral"] | Sequence[float]

#: A soft frontal light: ``ambient 0.6 + diffuse 0.4`` from the camera direction (a frontal surface
#: gets shading 1.0, so the render shows the albedo there; surfaces turned away get darker).
NEUTRAL_LIGHT = (0.6, 0.4, 0.0, 0.0)

FacePolicy: TypeAlias = Literal["largest", "all"]


# ------------------------------------------------------------------------------------------ internals


@dataclass
class _Row:
    """One output row of a chunk (a face, or a failed input)."""

    name: str
    source: int
    box: tuple[float, float, float, float] | None = None
    score: float = float("nan")
    error: str | None = None


@dataclass
class _Chunk:
    """Rows of a chunk of inputs, the crops of its ok rows and their stage-1 latents (model device)."""

    rows: list[_Row]
    crop_rows: list[int]  # row index of each crop
    crops: np.ndarray  # uint8 (M, S, S, 3)
    latents: Latents | None = None
    extra: dict[str, Tensor] = field(default_factory=dict)  # per-crop outputs (M, ...) on the CPU


def _nan_rows(n: int, shape: tuple[int, ...], values: Tensor | None, index: list[int]) -> Tensor:
    """An ``(n, *shape)`` float32 CPU tensor of NaN with ``values`` scattered into rows ``index``."""
    out = torch.full((n, *shape), float("nan"), dtype=torch.float32)
    if values is not None and index:
        out[torch.tensor(index, dtype=torch.long)] = values.detach().to("cpu", torch.float32)
    return out


def _seed_from(*parts: bytes | str | int) -> int:
    h = hashlib.sha256()
    for p in parts:
        h.update(p if isinstance(p, bytes) else str(p).encode())
        h.update(b"|")
    return int.from_bytes(h.digest()[:8], "little") & (2**63 - 1)


# ---------------------------------------------------------------------------------------- the model


class FaceEncoder(nn.Module):
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
        enc.frontalize("photo.jpg").images[0].save("front.png")   # the face seen from the front, 64x64
    """

    def __init__(self, config: ModelConfig) -> None:
        """Random weights for ``config`` (a :class:`~latentface_sdk.config.ModelConfig`); most users want
        :meth:`from_pretrained`."""
        super().__init__()
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
        self._detector: FaceDetector | None = None
        self._detector_lock = threading.Lock()
        self.channels_last = False
        #: CPU threads per batch: ``"auto"`` (the cores other processes leave free), a count, or None
        #: (torch's own setting); see :mod:`latentface_sdk.threads`.
        self.threads: Threads = "auto"
        self.use_channels_last(True)
        self.eval()

    # -- building, loading, saving ------------------------------------------------------------------
    @classmethod
    def from_config(cls, config: ModelConfig | None = None, *, device: str | torch.device = "cpu") -> FaceEncoder:
        """A model with randomly initialised weights (seeded by torch's global RNG) for ``config``."""
        cfg = copy.deepcopy(config) if config is not None else ModelConfig()
        cfg.checksum = None
        return cls(cfg).to(resolve_device(device))

    @classmethod
    def from_pretrained(
        cls,
        name_or_path: str | os.PathLike[str] | None = None,
        *,
        revision: str | None = None,
        cache_dir: str | os.PathLike[str] | None = None,
        local_files_only: bool | None = None,
        device: str | torch.device = "auto",
        dtype: torch.dtype = torch.float32,
        threads: Threads = "auto",
    ) -> FaceEncoder:
        """Load a model: the bundled default (no argument), a bundled name, a folder, or a Hub repo id.

        The look-up is :func:`latentface_sdk.hub.resolve` (``revision``, ``cache_dir`` and
        ``local_files_only`` apply to Hub ids; ``HF_HUB_OFFLINE=1`` is honoured). The weights are read
        with safetensors only and their SHA-256 checked against ``config.json``. ``device="auto"`` uses
        CUDA when available and logs the choice; ``dtype`` is the parameters' floating type. ``threads``:
        CPU threads per batch, ``"auto"`` (the cores other running processes leave free, re-checked every
        batch), a fixed count, or None for torch's own setting (:mod:`latentface_sdk.threads`); also the
        attribute ``enc.threads``.

        Raises:
            WeightsError: no such model, a missing, corrupt, pickled or mismatched weights file (the
                message names the file and the tensor keys); :class:`~latentface_sdk.errors.ConfigError`
                for a bad or unknown-version ``config.json``; :class:`~latentface_sdk.errors.ChecksumError`;
                :class:`~latentface_sdk.errors.OfflineError` for a Hub id not cached while offline.
        """
        if not isinstance(dtype, torch.dtype) or not dtype.is_floating_point:
            raise ValueError(f"dtype must be a floating torch dtype (got {dtype!r})")
        folder = hub.resolve(name_or_path, revision=revision, cache_dir=cache_dir, local_files_only=local_files_only)
        config, state = load_model_folder(folder)
        model = cls(config)
        model.load_tensors(state, source=str(folder / WEIGHTS_NAME))
        choose_threads(threads)  # validates the setting now rather than at the first call
        model.threads = threads
        return model.to(device=resolve_device(device), dtype=dtype)

    def load_tensors(self, state: dict[str, Tensor], *, source: str = "state dict") -> None:
        """Load a model-folder state dict (keys prefixed ``autoencoder.``, ``rdm_texture.``, ``rdm_shape.``).

        Missing, unexpected and mis-shaped tensors raise :class:`WeightsError` naming ``source`` and the keys.
        """
        stray = sorted(k for k in state if not k.startswith(PREFIXES))
        if stray:
            raise WeightsError(
                f"{source}: unexpected tensors {stray[:5]}{' ...' if len(stray) > 5 else ''} "
                f"(every key must start with one of {list(PREFIXES)})"
            )
        for prefix, module in self._parts():
            load_part(module, state, prefix, source)

    def _parts(self) -> list[tuple[str, nn.Module]]:
        return [("autoencoder.", self.autoencoder), ("rdm_texture.", self.rdm_texture), ("rdm_shape.", self.rdm_shape)]

    def save_pretrained(self, folder: str | os.PathLike[str], *, storage_dtype: torch.dtype | None = None) -> Path:
        """Write ``config.json`` + ``model.safetensors`` into ``folder`` (the inverse of :meth:`from_pretrained`).

        The weights file is written atomically and its SHA-256 recorded in the config (and in
        ``self.config.checksum``). ``storage_dtype=torch.float16`` stores floating-point tensors at half
        size (how the bundled weights ship); loading casts them back to the model's dtype, so outputs
        differ from the full-precision model only by the rounding of the weights. Returns the folder.
        """
        if storage_dtype is not None and not storage_dtype.is_floating_point:
            raise ValueError(f"storage_dtype must be a floating-point dtype (got {storage_dtype})")
        state: dict[str, Tensor] = {}
        for prefix, module in self._parts():
            state.update(prefixed(module, prefix))
        if storage_dtype is not None:
            state = {k: v.to(storage_dtype) if v.is_floating_point() else v for k, v in state.items()}
        cfg = copy.deepcopy(self.config)
        cfg.checksum = None
        out = save_model_folder(Path(os.fspath(folder)), cfg, state)
        self.config.checksum = cfg.checksum
        return out

    def push_to_hub(
        self,
        repo_id: str,
        *,
        storage_dtype: torch.dtype | None = None,
        model_card: str | None = None,
        private: bool | None = None,
        token: str | None = None,
        revision: str | None = None,
        commit_message: str | None = None,
        create_pr: bool = False,
        api: Any = None,
    ) -> Any:
        """Upload this model to the Hugging Face Hub as ``repo_id`` (``owner/name``); returns the ``CommitInfo``.

        Writes :meth:`save_pretrained` (``storage_dtype`` as there) and a ``README.md`` model card
        (``model_card``, else :func:`latentface_sdk.hub.model_card`: the Hub's YAML metadata and how to
        load it) into a temporary folder and uploads these three files with ``huggingface_hub``
        (creating the repository if needed). ``FaceEncoder.from_pretrained(repo_id)`` loads it back,
        offline too once it is in the Hub cache. ``api``: an ``HfApi`` to use instead of a new one.
        """
        with tempfile.TemporaryDirectory(prefix="latentface-push-") as tmp:
            folder = self.save_pretrained(Path(tmp) / "model", storage_dtype=storage_dtype)
            card = model_card if model_card is not None else hub.model_card(self.config, repo_id)
            (folder / "README.md").write_text(card, encoding="utf-8")
            return hub.push_folder(folder, repo_id, private=private, token=token, revision=revision,
                                   commit_message=commit_message, create_pr=create_pr, api=api)

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
    def _backend(self) -> Literal["pytorch3d", "fast"]:
        # The renderer of record on CUDA; on the CPU the vectorised rasteriser (as in stage-1 training).
        return "pytorch3d" if self.device.type == "cuda" else "fast"

    # -- the pipeline -----------------------------------------------------------------------------------
    def _chunks(
        self,
        images: Images,
        *,
        detect: bool,
        faces: FacePolicy,
        batch_size: int,
        progress: bool,
        desc: str,
        max_pixels: int,
    ) -> Iterator[_Chunk]:
        """Convert, detect, crop and encode ``batch_size`` inputs at a time."""
        if faces not in ("largest", "all"):
            raise ValueError(f"faces must be 'largest' or 'all' (got {faces!r})")
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise ValueError(f"batch_size must be a positive integer (got {batch_size!r})")
        items, single = split_inputs(images)
        with tqdm(total=len(items), desc=desc, unit="img", disable=not progress) as bar:
            for start in range(0, len(items), batch_size):
                chunk = self._crop(items[start : start + batch_size], start, single, detect, faces, max_pixels)
                if chunk.crops.shape[0]:
                    chunk.latents = self._encode_crops(chunk.crops, batch_size)
                yield chunk
                bar.update(min(batch_size, len(items) - start))

    def _crop(
        self, items: list[Any], start: int, single: bool, detect: bool, faces: FacePolicy, max_pixels: int
    ) -> _Chunk:
        size = self.config.crop.size
        converted = convert_items(items, start=start, single=single, max_pixels=max_pixels)  # single: raises
        names = [c.name for c in converted]
        rgbs = {k: c.rgb for k, c in enumerate(converted) if c.rgb is not None}
        errors = {k: str(c.error) for k, c in enumerate(converted) if c.error is not None}
        found: dict[int, list[Any]] = {}
        if detect and rgbs:
            keys = list(rgbs)
            found = dict(zip(keys, self.detector.detect_batch([rgbs[k] for k in keys]), strict=True))
        rows: list[_Row] = []
        crops: list[np.ndarray] = []
        crop_rows: list[int] = []
        for k in range(len(items)):
            name, source = names[k], start + k
            if k in errors:
                rows.append(_Row(name, source, error=errors[k]))
                continue
            rgb = rgbs[k]
            if not detect:
                h, w = rgb.shape[:2]
                side = float(min(h, w))
                left, top = (w - side) / 2.0, (h - side) / 2.0
                crop_rows.append(len(rows))
                rows.append(_Row(name, source, box=(left, top, left + side, top + side)))
                crops.append(crop_aligned(rgb, size))
                continue
            chosen = select_faces(found.get(k, []), faces)
            if not chosen:
                c = self.config.crop
                message = (
                    f"{name}: no face found (MTCNN: faces of at least {c.min_face_size} px with score "
                    f">= {c.threshold}); for an image that is already a face crop, pass detect=False"
                )
                if single:
                    raise NoFaceError(message)
                rows.append(_Row(name, source, error=message))
                continue
            for face in chosen:
                try:
                    crop = crop_face(rgb, face.box, self.config.crop)
                except ValueError as exc:  # a degenerate box
                    if single and len(chosen) == 1:
                        raise NoFaceError(f"{name}: {exc}") from exc
                    rows.append(_Row(name, source, box=face.box, score=face.score, error=f"{name}: {exc}"))
                    continue
                crop_rows.append(len(rows))
                rows.append(_Row(name, source, box=face.box, score=face.score))
                crops.append(crop)
        stacked = np.stack(crops) if crops else np.zeros((0, size, size, 3), dtype=np.uint8)
        return _Chunk(rows=rows, crop_rows=crop_rows, crops=stacked)

    def _to_input(self, crops: np.ndarray) -> Tensor:
        x = torch.from_numpy(np.ascontiguousarray(crops)).to(self.device).permute(0, 3, 1, 2)
        return x.to(self.dtype) / 255.0

    def _encode_crops(self, crops: np.ndarray, batch_size: int) -> Latents:
        parts: list[Latents] = []
        with torch.inference_mode():
            for s in range(0, crops.shape[0], batch_size):
                parts.append(self.autoencoder.encode(self._to_input(crops[s : s + batch_size])))
        if len(parts) == 1:
            return parts[0]
        return Latents(*(torch.cat([getattr(p, f) for p in parts]) for f in ("texture", "shape", "pose", "light")))

    def _encoding(self, chunks: list[_Chunk]) -> Encoding:
        """Assemble the rows of all chunks into one :class:`Encoding` (NaN where a row failed)."""
        dim = self.config.autoencoder.latent_dim
        parts: dict[str, list[Tensor]] = {"texture": [], "shape": [], "pose": [], "light": []}
        widths = {"texture": (dim,), "shape": (dim,), "pose": (6,), "light": (4,)}
        boxes: list[Tensor] = []
        scores: list[Tensor] = []
        ok: list[bool] = []
        errors: list[str | None] = []
        names: list[str] = []
        source: list[int] = []
        nan4 = (float("nan"),) * 4
        for ch in chunks:
            n, lat = len(ch.rows), ch.latents
            for key, out in parts.items():
                out.append(_nan_rows(n, widths[key], getattr(lat, key) if lat is not None else None, ch.crop_rows))
            boxes.append(torch.tensor([r.box or nan4 for r in ch.rows], dtype=torch.float32).reshape(n, 4))
            scores.append(torch.tensor([r.score for r in ch.rows], dtype=torch.float32))
            good = set(ch.crop_rows)
            ok.extend(i in good for i in range(n))
            errors.extend(r.error for r in ch.rows)
            names.extend(r.name for r in ch.rows)
            source.extend(r.source for r in ch.rows)
        return Encoding(
            texture=torch.cat(parts["texture"]), shape=torch.cat(parts["shape"]),
            pose=torch.cat(parts["pose"]), light=torch.cat(parts["light"]),
            boxes=torch.cat(boxes), scores=torch.cat(scores), ok=torch.tensor(ok, dtype=torch.bool),
            errors=errors, names=names, source=torch.tensor(source, dtype=torch.long),
        )

    def _run(
        self,
        images: Images,
        *,
        detect: bool,
        faces: FacePolicy,
        batch_size: int,
        progress: bool,
        desc: str,
        max_pixels: int,
        extra: Callable[[_Chunk], dict[str, Tensor]] | None = None,
    ) -> list[_Chunk]:
        chunks = []
        with thread_scope(self.threads) as refresh:  # CPU threads per batch (see latentface_sdk.threads)
            for ch in self._chunks(images, detect=detect, faces=faces, batch_size=batch_size, progress=progress,
                                   desc=desc, max_pixels=max_pixels):
                if extra is not None and ch.latents is not None:
                    with torch.inference_mode():
                        ch.extra = {k: v.detach().to("cpu", torch.float32) for k, v in extra(ch).items()}
                ch.latents = None if ch.latents is None else Latents(
                    *(getattr(ch.latents, f).detach().to("cpu", torch.float32)
                      for f in ("texture", "shape", "pose", "light"))
                )
                chunks.append(ch)
                refresh()  # chosen again for the next batch: the load changes
        return chunks

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
        chunks = self._run(images, detect=detect, faces=faces, batch_size=batch_size, progress=progress,
                           desc="encode", max_pixels=max_pixels)
        return self._encoding(chunks)

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
        """Identity latents ``Z_id`` (by representation diffusion), expression ``Δexp = Z_exp - Z_id``, and ``Z_exp``.

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

        def identity(ch: _Chunk) -> dict[str, Tensor]:
            assert ch.latents is not None
            out: dict[str, Tensor] = {}
            if init == "zero":  # one deterministic sample: the mean of num_samples equal ones, without the work
                for which, rdm, z in (("texture", self.rdm_texture, ch.latents.texture),
                                      ("shape", self.rdm_shape, ch.latents.shape)):
                    out[which] = rdm.sample(z, steps=steps, noise=torch.zeros(z.shape[0], z.shape[1]))
                return out
            digests = [hashlib.sha256(c.tobytes()).digest() for c in ch.crops]
            for which, rdm, z in (("texture", self.rdm_texture, ch.latents.texture),
                                  ("shape", self.rdm_shape, ch.latents.shape)):
                d = z.shape[1]
                noise = torch.empty(num_samples, len(digests), d)
                for m, digest in enumerate(digests):
                    g = torch.Generator().manual_seed(_seed_from("rdm", base, which, digest))
                    noise[:, m] = torch.randn(num_samples, d, generator=g)
                out[which] = rdm.sample(z, steps=steps, num_samples=num_samples,
                                        noise=noise.reshape(num_samples * len(digests), d))
            return out

        chunks = self._run(images, detect=detect, faces=faces, batch_size=batch_size, progress=progress,
                           desc="disentangle", max_pixels=max_pixels, extra=identity)
        enc = self._encoding(chunks)
        n, dim = len(enc), self.config.autoencoder.latent_dim
        id_t = torch.cat([_nan_rows(len(c.rows), (dim,), c.extra.get("texture"), c.crop_rows) for c in chunks])
        id_s = torch.cat([_nan_rows(len(c.rows), (dim,), c.extra.get("shape"), c.crop_rows) for c in chunks])
        assert id_t.shape[0] == n
        return Disentangled(
            texture=enc.texture, shape=enc.shape,
            identity_texture=id_t, identity_shape=id_s,
            expression_texture=enc.texture - id_t, expression_shape=enc.shape - id_s,
            encoding=enc,
        )

    def frontalize(
        self,
        images: Images,
        *,
        light: LightSpec = "same",
        maps: bool = False,
        return_tensors: bool = False,
        detect: bool = True,
        faces: FacePolicy = "largest",
        batch_size: int = 64,
        progress: bool = False,
        max_pixels: int = DEFAULT_MAX_PIXELS,
    ) -> Frontalized:
        """Re-render each face in the canonical (frontal, centred) pose.

        ``light="same"`` shades with the light estimated from the input, ``"neutral"`` with
        :data:`NEUTRAL_LIGHT`, or give ``(ambient, diffuse, dx, dy)``. ``maps=True`` adds the canonical
        albedo, depth, normal and shading maps. ``return_tensors=True`` skips building PIL images
        (``images`` is then empty; use ``tensor``). Other arguments as in :meth:`encode`.
        """
        return self.render(images, yaw=0.0, pitch=0.0, roll=0.0, light=light, maps=maps,
                           return_tensors=return_tensors, detect=detect, faces=faces, batch_size=batch_size,
                           progress=progress, max_pixels=max_pixels, desc="frontalize")

    def render(
        self,
        images: Images,
        *,
        yaw: float = 0.0,
        pitch: float = 0.0,
        roll: float = 0.0,
        light: LightSpec = "same",
        maps: bool = False,
        return_tensors: bool = False,
        detect: bool = True,
        faces: FacePolicy = "largest",
        batch_size: int = 64,
        progress: bool = False,
        max_pixels: int = DEFAULT_MAX_PIXELS,
        desc: str = "render",
    ) -> Frontalized:
        """Re-render each face from another view: rotated by ``yaw``, ``pitch``, ``roll`` (degrees) about its centre.

        ``yaw=pitch=roll=0`` is :meth:`frontalize`. The face is decoded to canonical albedo and depth,
        shaded (see ``light`` in :meth:`frontalize`) and rendered with the model's camera (no
        translation). Returns a :class:`Frontalized` whose ``pose`` holds the view.
        """
        angles = (float(yaw), float(pitch), float(roll))
        if not all(np.isfinite(angles)):
            raise ValueError(f"yaw, pitch and roll must be finite numbers of degrees (got {angles})")
        fixed_light = self._light(light)

        def draw(ch: _Chunk) -> dict[str, Tensor]:
            assert ch.latents is not None
            lat = ch.latents
            b = lat.texture.shape[0]
            lt = lat.light if fixed_light is None else fixed_light.to(lat.light).expand(b, 4)
            pose = lat.pose.new_tensor([0.0, 0.0, 0.0, *angles]).expand(b, 6)
            m = self.autoencoder.decode(lat.texture, lat.shape)
            shaded = self.renderer.shade(m.albedo, m.depth, lt)
            view = self.renderer.render_face(shaded.image, m.depth, pose, backend=self._backend)
            out = {"image": view.image.clamp(0.0, 1.0), "mask": view.mask, "pose": pose, "light": lt}
            if maps:
                out.update(albedo=m.albedo, depth=m.depth, normal=shaded.normals, shading=shaded.shading)
            return out

        chunks = self._run(images, detect=detect, faces=faces, batch_size=batch_size, progress=progress,
                           desc=desc, max_pixels=max_pixels, extra=draw)
        enc = self._encoding(chunks)
        s = self.config.autoencoder.image_size

        def gather(key: str, shape: tuple[int, ...]) -> Tensor:
            return torch.cat([_nan_rows(len(c.rows), shape, c.extra.get(key), c.crop_rows) for c in chunks])

        image = gather("image", (3, s, s))
        mask = gather("mask", (1, s, s)).nan_to_num(0.0)
        pil: list[Image.Image | None] = []
        if not return_tensors:
            for i in range(len(enc)):
                if bool(enc.ok[i]):
                    arr = (image[i].clamp(0, 1) * 255).round().to(torch.uint8).permute(1, 2, 0).numpy()
                    pil.append(Image.fromarray(np.ascontiguousarray(arr)))
                else:
                    pil.append(None)
        return Frontalized(
            tensor=image, mask=mask, pose=gather("pose", (6,)), light=gather("light", (4,)), encoding=enc,
            images=pil,
            albedo=gather("albedo", (3, s, s)) if maps else None,
            depth=gather("depth", (s, s)) if maps else None,
            normal=gather("normal", (3, s, s)) if maps else None,
            shading=gather("shading", (1, s, s)) if maps else None,
        )

    @staticmethod
    def _light(light: LightSpec) -> Tensor | None:
        if isinstance(light, str):
            if light == "same":
                return None
            if light == "neutral":
                return torch.tensor([NEUTRAL_LIGHT], dtype=torch.float32)
            raise ValueError(f"light must be 'same', 'neutral' or (ambient, diffuse, dx, dy) (got {light!r})")
        values = torch.as_tensor(np.asarray(light, dtype=np.float64), dtype=torch.float32).reshape(-1)
        if values.numel() != 4 or not torch.isfinite(values).all():
            raise ValueError(f"light must be 'same', 'neutral' or 4 finite numbers (got {light!r})")
        return values.reshape(1, 4)

    def forward(self, images: Tensor) -> Latents:
        """Stage-1 latents of face crops ``(B, 3, 64, 64)`` in ``[0, 1]`` already on the model's device (no detection)."""
        return self.autoencoder.encode(images)

    def extra_repr(self) -> str:
        return f"name={self.config.name!r}, checksum={(self.config.checksum or 'none')[:12]}"
