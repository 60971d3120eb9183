"""``OnnxFaceEncoder``: ``encode`` and ``disentangle`` through onnxruntime, with the PyTorch path's crops
and results.

The networks run as the ONNX graphs of :func:`~latentface_sdk.deploy.export.export_onnx`; faces are found and
cut by the same :class:`~latentface_sdk.pipeline.FacePipeline` (MTCNN stays PyTorch), and the results are the
same typed :class:`~latentface_sdk.results.Encoding` and :class:`~latentface_sdk.results.Disentangled`, with
the same rules for single inputs, batches and bad items (see :mod:`latentface_sdk.encoder`). With the same
``seed`` the RDMs start from the same noise as
:meth:`FaceEncoder.disentangle <latentface_sdk.FaceEncoder.disentangle>` (drawn per crop by
:func:`~latentface_sdk.operations.identity_noise`), so both backends agree to float rounding.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch

from ..answers import (
    ExpressionScores,
    IdentityVectors,
    assemble_expressions,
    assemble_identity,
    compare,
    verify_settings,
)
from ..config import CropConfig
from ..detection import FaceDetector
from ..digests import file_digest, parts_digest
from ..errors import ConfigError, OnnxFormatError
from ..images import DEFAULT_MAX_PIXELS
from ..models.autoencoder import Latents
from ..operations import IDENTITY_ROWS, IdentityLatents, assemble_disentangled, identity_noise
from ..pipeline import CropBatch, FacePipeline, FacePolicy, assemble_encoding
from ..results import Disentangled, Encoding, Expressions, IdentityEmbeddings, Verification
from .export import CONFIG_NAME, DISENTANGLE_FILE, ENCODER_FILE, export_onnx, read_card, require

__all__ = ["OnnxFaceEncoder", "default_export_dir"]


def default_export_dir() -> Path:
    """Where :meth:`OnnxFaceEncoder.from_pretrained` keeps the exports it makes: ``$LATENTFACE_ONNX_CACHE``,
    or ``~/.cache/latentface/onnx``."""
    env = os.environ.get("LATENTFACE_ONNX_CACHE")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "latentface" / "onnx"


class OnnxFaceEncoder:
    """LatentFace's encoders and RDMs on onnxruntime: ``encode`` and ``disentangle`` as on a ``FaceEncoder``.

    Build it with :meth:`from_pretrained` (an export folder, or a model name / folder / Hub id that is
    exported on first use). ``threads`` is onnxruntime's intra-op thread count (None: its default, all cores).

    Example::

        from latentface_sdk import OnnxFaceEncoder

        enc = OnnxFaceEncoder.from_pretrained()      # the bundled model, exported once to
                                                     # ~/.cache/latentface/onnx
        r = enc.encode("photo.jpg")                  # Encoding, as FaceEncoder.encode gives
        d = enc.disentangle("photo.jpg", seed=0)     # Disentangled
    """

    def __init__(self, folder: str | os.PathLike[str], *, threads: int | None = None,
                 providers: Sequence[str] | None = None) -> None:
        """Open the ONNX export in ``folder`` (see :func:`~latentface_sdk.deploy.export.export_onnx`).

        Raises :class:`~latentface_sdk.errors.OnnxFormatError` when the folder is not an export, a graph is
        missing or its SHA-256 differs from the card's; :class:`ImportError` without onnxruntime.
        """
        ort = require("onnxruntime")
        if threads is not None and (isinstance(threads, bool) or not isinstance(threads, int) or threads < 1):
            raise ValueError(f"threads must be a positive integer or None (got {threads!r})")
        self.folder = Path(folder)
        self.card: dict[str, Any] = read_card(self.folder)
        sessions = {}
        graphs = [("encoder", ENCODER_FILE), ("disentangle", DISENTANGLE_FILE)]
        graphs += [(k, self.card["graphs"][k]["file"]) for k in ("identity", "expression")
                   if k in self.card["graphs"]]
        for key, name in graphs:
            path = self.folder / name
            if not path.is_file():
                raise OnnxFormatError(f"{self.folder}: {name} is missing")
            expected = self.card["graphs"][key].get("sha256")
            if expected and file_digest(path) != expected:
                raise OnnxFormatError(f"{path}: its SHA-256 differs from the one in {CONFIG_NAME} (altered "
                                      "or corrupt)")
            opts = ort.SessionOptions()
            # The two sessions run back to back: threads of one that spin after its run would steal the
            # cores from the other (disentangle at batch 32 and 2 threads: 2.9 -> 2.1 ms per face).
            opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
            if threads is not None:
                opts.intra_op_num_threads = threads
                opts.inter_op_num_threads = 1
            try:
                sessions[key] = ort.InferenceSession(str(path), opts,
                                                     providers=list(providers or ["CPUExecutionProvider"]))
            except Exception as exc:  # onnxruntime raises its own exception types
                raise OnnxFormatError(f"{path}: onnxruntime cannot load it ({exc})") from None
        self._encoder, self._disentangle = sessions["encoder"], sessions["disentangle"]
        self._identity, self._expression = sessions.get("identity"), sessions.get("expression")
        heads = self.card.get("heads", {})
        self.identity_dim = int(heads.get("identity_dim", 0))
        self.identity_threshold = float(heads.get("identity_threshold", 0.5))
        self.expression_classes: tuple[str, ...] = tuple(heads.get("expression_classes", ()))
        c = self.card["crop"]
        self.crop = CropConfig(size=int(c["size"]), margin=float(c["margin"]),
                               min_face_size=int(c["min_face_size"]), threshold=float(c["threshold"]))
        self.latent_dim = int(self.card["latent_dim"])
        self.sample_steps = int(self.card["rdm"]["sample_steps"])
        self.sample_init: str = self.card["rdm"]["sample_init"]
        self._detector: FaceDetector | None = None
        self._lock = threading.Lock()

    @classmethod
    def from_pretrained(
        cls,
        name_or_path: str | os.PathLike[str] | None = None,
        *,
        threads: int | None = None,
        providers: Sequence[str] | None = None,
        export_dir: str | os.PathLike[str] | None = None,
        **hub_kwargs: Any,
    ) -> OnnxFaceEncoder:
        """An export folder as it is; otherwise the PyTorch model ``name_or_path`` (anything
        ``FaceEncoder.from_pretrained`` takes; None: the bundled default) exported once into
        ``export_dir/<checksum>`` (default :func:`default_export_dir`) and reused while its weights are the
        same. ``hub_kwargs`` (``revision``, ``cache_dir``, ``local_files_only``) go to the Hub look-up."""
        if name_or_path is not None and (Path(name_or_path) / CONFIG_NAME).is_file():
            try:
                read_card(name_or_path)
                return cls(name_or_path, threads=threads, providers=providers)
            except OnnxFormatError:
                pass  # a PyTorch model folder: exported below
        from .. import hub
        from ..config import ModelConfig

        folder = hub.resolve(name_or_path, **hub_kwargs)
        config = ModelConfig.load(folder)
        key = parts_digest(str(config.checksum), str(config.rdm.sample_steps))[:16]
        dest = Path(export_dir) if export_dir is not None else default_export_dir()
        target = dest / f"{config.name}-{key}"
        try:
            read_card(target)
        except OnnxFormatError:
            export_onnx(str(folder), target, overwrite=target.exists())
        return cls(target, threads=threads, providers=providers)

    @property
    def detector(self) -> FaceDetector:
        """The MTCNN face detector (PyTorch, CPU) with the export's crop settings, built on first use."""
        if self._detector is None:
            with self._lock:
                if self._detector is None:
                    det = FaceDetector(self.crop, device="cpu")
                    # As FaceEncoder keeps it (faster; and the same boxes, so the same crops and RDM noise).
                    det.mtcnn.to(memory_format=torch.channels_last)
                    self._detector = det
        return self._detector

    def encode_crops(self, crops: np.ndarray, batch_size: int = 64) -> Latents:
        """Stage-1 latents of uint8 crops ``(M, S, S, 3)`` (float32 CPU tensors)."""
        parts: list[list[np.ndarray]] = [[], [], [], []]
        for s in range(0, crops.shape[0], batch_size):
            out = self._encoder.run(None,
                                    {"crops": np.ascontiguousarray(crops[s:s + batch_size], dtype=np.uint8)})
            for i in range(4):
                parts[i].append(out[i])
        t, sh, p, li = (torch.from_numpy(np.concatenate(x)) for x in parts)
        return Latents(texture=t, shape=sh, pose=p, light=li)

    def identity(self, texture: np.ndarray, shape: np.ndarray, noise_texture: np.ndarray,
                 noise_shape: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``Z_id`` of texture and shape latents ``(M, D)`` from the RDMs' starting noise ``(M, D)``."""
        out = self._disentangle.run(["identity_texture", "identity_shape"], {
            "texture": np.ascontiguousarray(texture, dtype=np.float32),
            "shape": np.ascontiguousarray(shape, dtype=np.float32),
            "noise_texture": np.ascontiguousarray(noise_texture, dtype=np.float32),
            "noise_shape": np.ascontiguousarray(noise_shape, dtype=np.float32),
        })
        return out[0], out[1]

    def _pipeline(self) -> FacePipeline:
        return FacePipeline(self.crop, self.encode_crops, lambda: self.detector, threads=None)

    def encode(self, images: Any, *, detect: bool = True, faces: FacePolicy = "largest", batch_size: int = 64,
               progress: bool = False, max_pixels: int = DEFAULT_MAX_PIXELS) -> Encoding:
        """As :meth:`FaceEncoder.encode <latentface_sdk.FaceEncoder.encode>`, the encoders run by
        onnxruntime."""
        done = self._pipeline().run(images, detect=detect, faces=faces, batch_size=batch_size,
                                    progress=progress, desc="encode", max_pixels=max_pixels)
        return assemble_encoding([b for b, _ in done], self.latent_dim)

    def disentangle(self, images: Any, *, seed: int | None = None, num_samples: int = 1,
                    init: Literal["noise", "zero"] | None = None, detect: bool = True,
                    faces: FacePolicy = "largest", batch_size: int = 64, progress: bool = False,
                    max_pixels: int = DEFAULT_MAX_PIXELS) -> Disentangled:
        """As :meth:`FaceEncoder.disentangle <latentface_sdk.FaceEncoder.disentangle>` with the export's DDIM
        steps (the graph has them unrolled, so there is no ``steps`` argument)."""
        if isinstance(num_samples, bool) or not isinstance(num_samples, int) or num_samples < 1:
            raise ValueError(f"num_samples must be a positive integer (got {num_samples!r})")
        chosen = init if init is not None else self.sample_init
        if chosen not in ("noise", "zero"):
            raise ValueError(f"init must be 'noise' or 'zero' (got {chosen!r})")
        base = int(torch.randint(0, 2**62, (1,)).item()) if seed is None else int(seed)
        d = self.latent_dim

        def identity(batch: CropBatch) -> IdentityLatents:
            assert batch.latents is not None
            t, s = batch.latents.texture.numpy(), batch.latents.shape.numpy()
            m = t.shape[0]
            if chosen == "zero":
                zeros = np.zeros((m, d), dtype=np.float32)
                it, is_ = self.identity(t, s, zeros, zeros)
            else:
                nt = identity_noise(batch.crops, "texture", seed=base, num_samples=num_samples, dim=d).numpy()
                ns = identity_noise(batch.crops, "shape", seed=base, num_samples=num_samples, dim=d).numpy()
                it, is_ = self.identity(np.tile(t, (num_samples, 1)), np.tile(s, (num_samples, 1)), nt, ns)
                it, is_ = it.reshape(num_samples, m, d).mean(0), is_.reshape(num_samples, m, d).mean(0)
            return IdentityLatents(texture=torch.from_numpy(np.ascontiguousarray(it)),
                                   shape=torch.from_numpy(np.ascontiguousarray(is_)))

        done = self._pipeline().run(images, detect=detect, faces=faces, batch_size=batch_size,
                                    progress=progress, desc="disentangle", max_pixels=max_pixels,
                                    work=identity, work_rows=IDENTITY_ROWS)
        return assemble_disentangled(done, assemble_encoding([b for b, _ in done], d), d)

    def _need(self, session: Any, what: str) -> Any:
        if session is None:
            raise ConfigError(f"{self.folder}: this export has no {what} graph (its model had no {what} "
                              "head; export weights that ship one, e.g. the bundled default)")
        return session

    def identity_from_latents(self, encoding: Encoding) -> torch.Tensor:
        """As :meth:`FaceEncoder.identity_from_latents <latentface_sdk.FaceEncoder.identity_from_latents>`."""
        session = self._need(self._identity, "identity")
        out = torch.full((len(encoding), self.identity_dim), float("nan"))
        ok = encoding.ok.bool()
        if bool(ok.any()):
            lat = {"texture": encoding.texture[ok].numpy(), "shape": encoding.shape[ok].numpy()}
            emb = session.run(None, {k: np.ascontiguousarray(v, np.float32) for k, v in lat.items()})[0]
            out[ok] = torch.from_numpy(emb)
        return out

    def identity_embedding(self, images: Any, *, detect: bool = True, faces: FacePolicy = "largest",
                           batch_size: int = 64, progress: bool = False,
                           max_pixels: int = DEFAULT_MAX_PIXELS) -> IdentityEmbeddings:
        """As :meth:`FaceEncoder.identity_embedding <latentface_sdk.FaceEncoder.identity_embedding>`."""
        session = self._need(self._identity, "identity")

        def embed(batch: CropBatch) -> IdentityVectors:
            assert batch.latents is not None
            emb = session.run(None, {"texture": batch.latents.texture.numpy(),
                                     "shape": batch.latents.shape.numpy()})[0]
            return IdentityVectors(torch.from_numpy(np.ascontiguousarray(emb)))

        done = self._pipeline().run(images, detect=detect, faces=faces, batch_size=batch_size,
                                    progress=progress, desc="identity", max_pixels=max_pixels, work=embed,
                                    work_rows=IDENTITY_ROWS)
        enc = assemble_encoding([b for b, _ in done], self.latent_dim)
        return assemble_identity(done, enc, self.identity_dim, self.identity_threshold)

    def verify(self, a: Any, b: Any, *, threshold: float | None = None, detect: bool = True,
               batch_size: int = 64, progress: bool = False,
               max_pixels: int = DEFAULT_MAX_PIXELS) -> Verification:
        """As :meth:`FaceEncoder.verify <latentface_sdk.FaceEncoder.verify>`."""
        cut = verify_settings(a, b, threshold, self.identity_threshold)
        ea = self.identity_embedding(a, detect=detect, batch_size=batch_size, progress=progress,
                                     max_pixels=max_pixels)
        eb = self.identity_embedding(b, detect=detect, batch_size=batch_size, progress=progress,
                                     max_pixels=max_pixels)
        return compare(ea, eb, cut)

    def expressions(self, images: Any, *, detect: bool = True, faces: FacePolicy = "largest",
                    batch_size: int = 64, progress: bool = False,
                    max_pixels: int = DEFAULT_MAX_PIXELS) -> Expressions:
        """As :meth:`FaceEncoder.expressions <latentface_sdk.FaceEncoder.expressions>`."""
        session = self._need(self._expression, "expression")

        def score(batch: CropBatch) -> ExpressionScores:
            probs = session.run(None, {"crops": np.ascontiguousarray(batch.crops, dtype=np.uint8)})[0]
            return ExpressionScores(torch.from_numpy(np.ascontiguousarray(probs)))

        done = self._pipeline().run(images, detect=detect, faces=faces, batch_size=batch_size,
                                    progress=progress, desc="expressions", max_pixels=max_pixels, work=score)
        enc = assemble_encoding([b for b, _ in done], self.latent_dim)
        return assemble_expressions(done, enc, self.expression_classes)

    def __repr__(self) -> str:
        model = self.card.get("model", {})
        return (f"OnnxFaceEncoder(model={model.get('name')!r}, folder={str(self.folder)!r}, "
                f"opset={self.card.get('opset')})")
