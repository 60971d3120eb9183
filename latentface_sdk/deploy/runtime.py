"""``OnnxFaceEncoder``: the encoder's operations through onnxruntime, with the PyTorch path's crops and
results.

:class:`OnnxFaceEncoder` is the same facade as :class:`~latentface_sdk.FaceEncoder`
(:class:`~latentface_sdk.facade.FaceFacade`: the same methods, checks, sampling, averaging and typed
results) over :class:`OnnxBackend`, which runs the ONNX graphs of
:func:`~latentface_sdk.deploy.export.export_onnx`: the encoders, the RDMs (DDIM steps unrolled) and the
answer heads that were exported. Faces are found and cut by the same
:class:`~latentface_sdk.pipeline.FacePipeline` (MTCNN stays PyTorch). With the same ``seed`` the RDMs start
from the same noise as :meth:`FaceEncoder.disentangle <latentface_sdk.FaceEncoder.disentangle>` (drawn per
crop by :func:`~latentface_sdk.operations.identity_noise`), so both backends agree to float rounding. What
needs the decoders and the renderer (``frontalize``, ``render``, ``mesh``, their ``*_from_latents``) and
``expression_features`` raise :class:`~latentface_sdk.errors.UnsupportedOperationError`.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from ..backends import Capability, FaceBackend, ModelFacts, UnsupportedOperationError
from ..config import CropConfig
from ..digests import file_digest, parts_digest
from ..errors import ConfigError, LatentFaceError, OnnxFormatError
from ..facade import FaceFacade
from ..models.autoencoder import Latents
from .export import CONFIG_NAME, DISENTANGLE_FILE, ENCODER_FILE, export_onnx, read_card, require

__all__ = ["OnnxBackend", "OnnxFaceEncoder", "default_export_dir"]


def default_export_dir() -> Path:
    """Where :meth:`OnnxFaceEncoder.from_pretrained` keeps the exports it makes: ``$LATENTFACE_ONNX_CACHE``,
    or ``~/.cache/latentface/onnx``."""
    env = os.environ.get("LATENTFACE_ONNX_CACHE")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "latentface" / "onnx"


def _float32(x: Tensor | np.ndarray) -> np.ndarray:
    """A contiguous float32 numpy array of a CPU tensor or an array (what the graphs take)."""
    return np.ascontiguousarray(x.numpy() if isinstance(x, Tensor) else x, dtype=np.float32)


class OnnxBackend(FaceBackend):
    """The ONNX graphs of one export folder on onnxruntime sessions: the encoders, the RDMs (with the
    export's DDIM steps unrolled) and the answer heads the model had (see the module docstring).

    ``threads`` is onnxruntime's intra-op thread count (None: its default, all cores); ``providers`` its
    execution providers (default: the CPU's). Raises :class:`~latentface_sdk.errors.OnnxFormatError` when
    the folder is not an export, a graph is missing or its SHA-256 differs from the card's;
    :class:`ImportError` without onnxruntime.
    """

    runtime = "onnxruntime"

    def __init__(self, folder: str | os.PathLike[str], *, threads: int | None = None,
                 providers: Sequence[str] | None = None) -> None:
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
        self.facts = ModelFacts(
            name=str(self.card.get("model", {}).get("name") or self.folder.name),
            crop=CropConfig.from_dict(self.card["crop"], source=f"{self.folder / CONFIG_NAME}: crop"),
            latent_dim=int(self.card["latent_dim"]), sample_steps=int(self.card["rdm"]["sample_steps"]),
            sample_init=str(self.card["rdm"]["sample_init"]),
            identity_dim=int(heads.get("identity_dim", 0)) if self._identity is not None else 0,
            identity_threshold=float(heads.get("identity_threshold", 0.5)),
            expression_classes=(tuple(heads.get("expression_classes", ())) if self._expression is not None
                                else ()))

    def has(self, capability: Capability) -> bool:
        if capability == "identity":
            return self._identity is not None
        if capability == "expression":
            return self._expression is not None
        return False  # the maps and the expression features need the PyTorch decoders and encoders

    def missing(self, capability: Capability) -> LatentFaceError:
        if capability in ("identity", "expression"):
            return ConfigError(f"{self.folder}: this export has no {capability} graph (its model had no "
                               f"{capability} head; export weights that ship one, e.g. the bundled default)")
        what = ("frontalize, render, mesh and their *_from_latents need the decoders and the renderer"
                if capability == "maps" else "expression_features needs the encoders' intermediate maps")
        return UnsupportedOperationError(f"{self.folder}: {what}, which an ONNX export does not hold (it has "
                                         "the encoders, the RDMs and the answer heads): use FaceEncoder for "
                                         "them")

    def check_steps(self, steps: int | None) -> int:
        n = self.facts.sample_steps
        if steps is not None and steps != n:
            raise UnsupportedOperationError(
                f"{self.folder}: the export's disentangle graph has its {n} DDIM steps "
                f"unrolled (got steps={steps!r}): export a model whose rdm.sample_steps is {steps!r}, or use "
                "FaceEncoder")
        return n

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
            "texture": _float32(texture), "shape": _float32(shape),
            "noise_texture": _float32(noise_texture), "noise_shape": _float32(noise_shape),
        })
        return out[0], out[1]

    def identity_latents(self, texture: Tensor, shape: Tensor, noise_texture: Tensor, noise_shape: Tensor,
                         steps: int) -> tuple[Tensor, Tensor]:
        it, is_ = self.identity(_float32(texture), _float32(shape), _float32(noise_texture),
                                _float32(noise_shape))
        return torch.from_numpy(np.ascontiguousarray(it)), torch.from_numpy(np.ascontiguousarray(is_))

    def identity_vectors(self, texture: Tensor, shape: Tensor) -> Tensor:
        if self._identity is None:
            raise self.missing("identity")
        emb = self._identity.run(None, {"texture": _float32(texture), "shape": _float32(shape)})[0]
        return torch.from_numpy(np.ascontiguousarray(emb))

    def expression_probabilities(self, crops: np.ndarray) -> Tensor:
        if self._expression is None:
            raise self.missing("expression")
        probs = self._expression.run(None, {"crops": np.ascontiguousarray(crops, dtype=np.uint8)})[0]
        return torch.from_numpy(np.ascontiguousarray(probs))


class OnnxFaceEncoder(FaceFacade):
    """LatentFace on onnxruntime: :class:`~latentface_sdk.FaceEncoder`'s facade over :class:`OnnxBackend`.

    ``encode``, ``disentangle``, ``identity_embedding``, ``verify``, ``expressions``,
    ``identity_from_latents`` and ``encode_video`` answer as on a ``FaceEncoder`` (the same code, the same
    results up to float rounding); ``disentangle`` runs the export's DDIM steps. Build it with
    :meth:`from_pretrained` (an export folder, or a model name / folder / Hub id that is exported on first
    use). ``threads`` is onnxruntime's intra-op thread count (None: its default, all cores).

    Example::

        from latentface_sdk import OnnxFaceEncoder

        enc = OnnxFaceEncoder.from_pretrained()      # the bundled model, exported once to
                                                     # ~/.cache/latentface/onnx
        r = enc.encode("photo.jpg")                  # Encoding, as FaceEncoder.encode gives
        d = enc.disentangle("photo.jpg", seed=0)     # Disentangled
    """

    def __init__(self, folder: str | os.PathLike[str], *, threads: int | None = None,
                 providers: Sequence[str] | None = None) -> None:
        """Open the ONNX export in ``folder`` (see :func:`~latentface_sdk.deploy.export.export_onnx` and
        :class:`OnnxBackend` for the errors)."""
        self._backend = b = OnnxBackend(folder, threads=threads, providers=providers)
        self._detector = None
        self._detector_lock = threading.Lock()
        #: the export folder and its ``config.json`` (graphs, crop, latents, RDM steps, heads)
        self.folder, self.card = b.folder, b.card
        facts = b.facts
        #: the exported model's crop policy, latent width, the DDIM steps unrolled in its disentangle graph
        #: and the RDMs' default start; the identity embedding's width (0: no identity graph) and the
        #: expression classes (empty: no expression graph)
        self.crop, self.latent_dim, self.sample_steps = facts.crop, facts.latent_dim, facts.sample_steps
        self.sample_init = facts.sample_init
        self.identity_dim, self.expression_classes = facts.identity_dim, facts.expression_classes

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
    def backend(self) -> OnnxBackend:
        """The onnxruntime backend (:class:`OnnxBackend`)."""
        return self._backend

    def encode_crops(self, crops: np.ndarray, batch_size: int = 64) -> Latents:
        """Stage-1 latents of uint8 crops ``(M, S, S, 3)`` (float32 CPU tensors)."""
        return self._backend.encode_crops(crops, batch_size)

    def identity(self, texture: np.ndarray, shape: np.ndarray, noise_texture: np.ndarray,
                 noise_shape: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``Z_id`` of texture and shape latents ``(M, D)`` from the RDMs' starting noise ``(M, D)``."""
        return self._backend.identity(texture, shape, noise_texture, noise_shape)

    def __repr__(self) -> str:
        model = self.card.get("model", {})
        return (f"OnnxFaceEncoder(model={model.get('name')!r}, folder={str(self.folder)!r}, "
                f"opset={self.card.get('opset')})")
