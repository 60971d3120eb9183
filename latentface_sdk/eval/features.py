"""Feature sets selectable by name: a lazy registry of per-crop feature extractors.

Every extractor maps face crops (``uint8`` ``(N, 64, 64, 3)``) to a ``float32`` matrix ``(N, D)``.
Building one imports what it needs only then, so a missing optional piece (scikit-image, the trained
model) fails only when that feature set is requested.

==================== ================================================================================
name                 features
==================== ================================================================================
raw                  grey pixels, 2x2 average-pooled to 32x32, in [0, 1]
lbp                  uniform LBP (P=8, R=1) histograms on an 8x8 grid of cells
hog                  HOG, 9 orientations, 8x8-pixel cells, 2x2-cell blocks
random-encoder       [Z_t, Z_s] of a randomly initialised (seeded) copy of our autoencoder
lbp-frontal          LBP histograms of the model's frontal re-render (``FaceEncoder.frontalize``), albedo
lbp-frontal-photo    LBP histograms of the frontal view textured from the photo (``texture="photo"``)
hog-frontal          HOG of the model's frontal re-render (expression kept by the frontal view?)
raw-frontal          grey pixels of the model's frontal re-render
latentface           [Z_t, Z_s] from ``FaceEncoder.encode``
latentface-full      [Z_t, Z_s, pose, light] from ``FaceEncoder.encode``
latentface-exp       Z_exp = [Z_t, Z_s] (the FER ablation without Δexp; same numbers as ``latentface``)
latentface-id        [Z_id_t, Z_id_s]: the identity latents alone, from ``FaceEncoder.disentangle``
latentface-verify    [Z_id_t, Z_id_s, Z_t, Z_s]: the paper's verification features
latentface-embedding FaceEncoder.identity_embedding: the identity head's unit vectors (cosine-ready)
latentface-fer       [Δ_t, Δ_s, Z_t, Z_s]: the paper's expression features
latentface-expression  FaceEncoder.expression_features: [Z_t, Z_s] + the encoders' pooled maps
expression+delta     latentface-expression beside [Δ_t, Δ_s] (what the RDM adds to it)
==================== ================================================================================
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from torch import nn

from ..config import CropConfig
from ..digests import modules_digest
from .extractor import FeatureExtractor


@dataclass
class FeatureContext:
    """What model-based extractors share: the model to load, device, batch size and seed."""

    model: str | Path | None = None
    device: str = "cpu"
    batch_size: int = 64
    seed: int = 0
    #: RDM samples averaged per face by the disentangled feature sets (``disentangle(num_samples=...)``)
    rdm_samples: int = 1
    #: where DDIM starts for those sets: "noise" or "zero" (``disentangle(init=...)``; None = the model's
    #: default)
    rdm_init: str | None = None
    _encoder: Any = field(default=None, repr=False)

    def encoder(self) -> Any:
        """The :class:`latentface_sdk.FaceEncoder` for ``model`` (default: the bundled weights), loaded
        once."""
        if self._encoder is None:
            try:
                from .. import FaceEncoder
            except ImportError as exc:
                raise ImportError(
                    "the latentface feature sets need latentface_sdk.FaceEncoder, which this installation "
                    f"does not provide yet ({exc})"
                ) from exc
            loader = FaceEncoder.from_pretrained
            kwargs: dict[str, Any] = {}
            if "device" in inspect.signature(loader).parameters:
                kwargs["device"] = self.device
            self._encoder = loader(self.model, **kwargs) if self.model is not None else loader(**kwargs)
        return self._encoder


@dataclass(frozen=True)
class FeatureSpec:
    """A registered feature set: its name, a one-line description and how to build its extractor."""

    name: str
    description: str
    build: Callable[[FeatureContext], FeatureExtractor]


_REGISTRY: dict[str, FeatureSpec] = {}


def register_feature(
    name: str, description: str
) -> Callable[[Callable[[FeatureContext], FeatureExtractor]], Callable[[FeatureContext], FeatureExtractor]]:
    """Decorator: register ``build(context) -> FeatureExtractor`` under ``name``."""

    def deco(
        build: Callable[[FeatureContext], FeatureExtractor],
    ) -> Callable[[FeatureContext], FeatureExtractor]:
        if name in _REGISTRY:
            raise ValueError(f"feature set {name!r} is already registered")
        _REGISTRY[name] = FeatureSpec(name, description, build)
        return build

    return deco


def available_features() -> dict[str, str]:
    """Registered feature-set names and their descriptions."""
    return {name: spec.description for name, spec in _REGISTRY.items()}


def parse_feature_names(text: str) -> list[str]:
    """``"raw, lbp,hog"`` -> ``["raw", "lbp", "hog"]``; unknown or repeated names raise ValueError."""
    names = [t.strip() for t in text.split(",") if t.strip()]
    if not names:
        raise ValueError("no feature set named")
    unknown = [n for n in names if n not in _REGISTRY]
    if unknown:
        raise ValueError(f"unknown feature set(s) {unknown}; choose among {sorted(_REGISTRY)}")
    if len(set(names)) != len(names):
        raise ValueError(f"feature set named twice in {names}")
    return names


def build_extractor(name: str, context: FeatureContext | None = None) -> FeatureExtractor:
    """Build the extractor registered as ``name`` (imports its dependencies now)."""
    try:
        spec = _REGISTRY[name]
    except KeyError:
        raise ValueError(f"unknown feature set {name!r}; choose among {sorted(_REGISTRY)}") from None
    extractor = spec.build(context or FeatureContext())
    extractor.name = name
    extractor.cache_name = extractor.cache_name or name
    return extractor


# --------------------------------------------------------------------------------------- baselines


@register_feature("raw", "grey pixels, 2x2 average-pooled to 32x32, in [0, 1]")
def _raw(ctx: FeatureContext) -> FeatureExtractor:
    from .baselines import RawPixels

    return RawPixels(pool=2)


@register_feature("lbp", "uniform LBP (P=8, R=1) histograms on an 8x8 grid of cells")
def _lbp(ctx: FeatureContext) -> FeatureExtractor:
    from .baselines import LBPHistograms

    return LBPHistograms(points=8, radius=1.0, grid=8)


@register_feature("hog", "HOG: 9 orientations, 8x8-pixel cells, 2x2-cell blocks")
def _hog(ctx: FeatureContext) -> FeatureExtractor:
    from .baselines import HOGFeatures

    return HOGFeatures(orientations=9, cell=8, block=2)


@register_feature("random-encoder", "[Z_t, Z_s] of a randomly initialised (seeded) copy of our autoencoder")
def _random_encoder(ctx: FeatureContext) -> FeatureExtractor:
    from .baselines import RandomEncoderFeatures

    return RandomEncoderFeatures(seed=ctx.seed, device=ctx.device, batch_size=ctx.batch_size)


# ------------------------------------------------------------------------------------- our model


def encoder_identity(encoder: Any) -> str:
    """The model's name and weights checksum (from its config), else a digest of its weights."""
    cfg = getattr(encoder, "config", None)
    name = str(getattr(cfg, "name", type(encoder).__name__))
    checksum = getattr(cfg, "checksum", None)
    if checksum:
        return f"{name}@{checksum}"
    if isinstance(encoder, nn.Module):
        return f"{name}@{modules_digest(encoder)}"
    modules = [v for _, v in sorted(vars(encoder).items()) if isinstance(v, nn.Module)]
    if modules:
        return f"{name}@{modules_digest(modules)}"
    raise ValueError(f"cannot identify the weights of {type(encoder).__name__} for the feature cache")


def model_crop(encoder: Any) -> CropConfig | None:
    """The crop policy a model was trained with (``encoder.config.crop``), if it has one."""
    crop = getattr(getattr(encoder, "config", None), "crop", None)
    return crop if isinstance(crop, CropConfig) else None


def _to_numpy(t: Any) -> np.ndarray:
    if hasattr(t, "detach"):
        t = t.detach().to("cpu").float().numpy()
    return np.asarray(t, dtype=np.float32)


class _LatentFaceFeatures(FeatureExtractor):
    """Features read off :meth:`FaceEncoder.encode` or :meth:`FaceEncoder.disentangle` results."""

    def __init__(self, ctx: FeatureContext, method: str, parts: tuple[str, ...], first_half: bool = False):
        self.encoder = ctx.encoder()
        self.method = method
        self.parts = parts
        self.first_half = first_half
        self.batch_size = ctx.batch_size
        self.seed = ctx.seed
        self.rdm_samples = ctx.rdm_samples
        self.rdm_init = ctx.rdm_init
        self._identity = encoder_identity(self.encoder)

    def identity(self) -> str:
        half = ":first-half" if self.first_half else ""
        samples = f":samples={self.rdm_samples}" if self.method != "encode" and self.rdm_samples != 1 else ""
        rdm = getattr(getattr(self.encoder, "config", None), "rdm", None)
        init = self.rdm_init or getattr(rdm, "sample_init", "noise")
        start = f":init={init}" if self.method != "encode" and init != "noise" else ""
        readout = ""
        if self.method == "expression_features":
            from ..expression import EXPRESSION_READOUT, readout_name

            readout = f":readout={readout_name(EXPRESSION_READOUT, mirror=True)}"
        return (f"{self._identity}:{self.method}:{'+'.join(self.parts)}{half}:seed={self.seed}"
                f"{samples}{start}{readout}")

    def crop_config(self) -> CropConfig | None:
        return model_crop(self.encoder)

    def __call__(self, crops: np.ndarray, *, progress: bool = False) -> np.ndarray:
        images = list(np.asarray(crops, dtype=np.uint8))
        if self.method == "encode":
            result = self.encoder.encode(images, detect=False, batch_size=self.batch_size, progress=progress)
        elif self.method == "expression_features":
            result = self.encoder.expression_features(images, detect=False, batch_size=self.batch_size,
                                                      progress=progress)
        elif self.method == "identity_embedding":
            result = self.encoder.identity_embedding(images, detect=False, batch_size=self.batch_size,
                                                     progress=progress)
        else:
            start = {"init": self.rdm_init} if self.rdm_init is not None else {}  # else the model's default
            result = self.encoder.disentangle(
                images, detect=False, seed=self.seed, batch_size=self.batch_size,
                num_samples=self.rdm_samples, **start,
            )
        out = np.concatenate([_to_numpy(getattr(result, p)) for p in self.parts], axis=1)
        if self.first_half:
            out = out[:, : out.shape[1] // 2]
        return np.ascontiguousarray(out, dtype=np.float32)


class _FrontalizedFeatures(FeatureExtractor):
    """A baseline computed on the model's frontal re-render of each crop (``FaceEncoder.frontalize``)."""

    def __init__(self, ctx: FeatureContext, base: FeatureExtractor, texture: str = "albedo") -> None:
        self.encoder = ctx.encoder()
        self.base = base
        self.batch_size = ctx.batch_size
        self.texture = texture
        self._identity = encoder_identity(self.encoder)

    def identity(self) -> str:
        mode = "" if self.texture == "albedo" else f":texture={self.texture}"  # albedo: the first caches
        return f"{self._identity}:frontalize:light=same{mode}:{self.base.identity()}"

    def crop_config(self) -> CropConfig | None:
        return model_crop(self.encoder)

    def __call__(self, crops: np.ndarray, *, progress: bool = False) -> np.ndarray:
        images = list(np.asarray(crops, dtype=np.uint8))
        front = self.encoder.frontalize(images, detect=False, batch_size=self.batch_size, return_tensors=True,
                                        progress=progress, texture=self.texture)
        rgb = (front.tensor.nan_to_num(0.0).clamp(0, 1) * 255).round().byte().permute(0, 2, 3, 1).numpy()
        return self.base(np.ascontiguousarray(rgb), progress=progress)


@register_feature("lbp-frontal", "LBP histograms of the model's frontalized face (FaceEncoder.frontalize)")
def _lbp_frontal(ctx: FeatureContext) -> FeatureExtractor:
    from .baselines import LBPHistograms

    return _FrontalizedFeatures(ctx, LBPHistograms())


@register_feature("lbp-frontal-photo",
                  "LBP histograms of the frontal view textured from the photo (frontalize(texture='photo'))")
def _lbp_frontal_photo(ctx: FeatureContext) -> FeatureExtractor:
    from .baselines import LBPHistograms

    return _FrontalizedFeatures(ctx, LBPHistograms(), texture="photo")


@register_feature("hog-frontal", "HOG of the model's frontalized face (FaceEncoder.frontalize)")
def _hog_frontal(ctx: FeatureContext) -> FeatureExtractor:
    from .baselines import HOGFeatures

    return _FrontalizedFeatures(ctx, HOGFeatures(orientations=9, cell=8, block=2))


@register_feature("raw-frontal", "grey pixels of the model's frontalized face (FaceEncoder.frontalize)")
def _raw_frontal(ctx: FeatureContext) -> FeatureExtractor:
    from .baselines import RawPixels

    return _FrontalizedFeatures(ctx, RawPixels())


@register_feature("latentface", "[Z_t, Z_s] from FaceEncoder.encode")
def _latentface(ctx: FeatureContext) -> FeatureExtractor:
    return _LatentFaceFeatures(ctx, "encode", ("texture", "shape"))


@register_feature("latentface-full", "[Z_t, Z_s, pose, light] from FaceEncoder.encode")
def _latentface_full(ctx: FeatureContext) -> FeatureExtractor:
    return _LatentFaceFeatures(ctx, "encode", ("texture", "shape", "pose", "light"))


@register_feature(
    "latentface-exp", "Z_exp = [Z_t, Z_s] alone (FER ablation without Δexp; same as latentface)"
)
def _latentface_exp(ctx: FeatureContext) -> FeatureExtractor:
    extractor = _LatentFaceFeatures(ctx, "encode", ("texture", "shape"))
    extractor.cache_name = "latentface"
    return extractor


@register_feature("latentface-id", "[Z_id_t, Z_id_s]: the identity latents alone (FaceEncoder.disentangle)")
def _latentface_id(ctx: FeatureContext) -> FeatureExtractor:
    return _LatentFaceFeatures(ctx, "disentangle", ("verification_features",), first_half=True)


@register_feature("latentface-verify", "[Z_id_t, Z_id_s, Z_t, Z_s]: the paper's verification features")
def _latentface_verify(ctx: FeatureContext) -> FeatureExtractor:
    return _LatentFaceFeatures(ctx, "disentangle", ("verification_features",))


@register_feature("latentface-embedding", "FaceEncoder.identity_embedding: the shipped identity head's unit "
                  "vectors, made for cosine")
def _latentface_embedding(ctx: FeatureContext) -> FeatureExtractor:
    return _LatentFaceFeatures(ctx, "identity_embedding", ("embeddings",))


@register_feature("latentface-fer", "[Δ_t, Δ_s, Z_t, Z_s]: the paper's expression features")
def _latentface_fer(ctx: FeatureContext) -> FeatureExtractor:
    return _LatentFaceFeatures(ctx, "disentangle", ("fer_features",))


@register_feature("latentface-expression",
                  "FaceEncoder.expression_features: [Z_t, Z_s] and the encoders' pooled intermediate maps")
def _latentface_expression(ctx: FeatureContext) -> FeatureExtractor:
    return _LatentFaceFeatures(ctx, "expression_features", ("features",))


class _Joined(FeatureExtractor):
    """Several extractors' features side by side (each from its own cache entry's computation)."""

    def __init__(self, parts: list[FeatureExtractor]) -> None:
        self.parts = parts

    def identity(self) -> str:
        return "+".join(p.identity() for p in self.parts)

    def crop_config(self) -> CropConfig | None:
        return self.parts[0].crop_config()

    def __call__(self, crops: np.ndarray, *, progress: bool = False) -> np.ndarray:
        return np.concatenate([p(crops, progress=progress) for p in self.parts], axis=1)


@register_feature("expression+delta",
                  "latentface-expression beside [Δ_t, Δ_s] from FaceEncoder.disentangle (what the RDM adds)")
def _expression_delta(ctx: FeatureContext) -> FeatureExtractor:
    return _Joined([_LatentFaceFeatures(ctx, "expression_features", ("features",)),
                    _LatentFaceFeatures(ctx, "disentangle", ("expression_texture", "expression_shape"))])


__all__ = [
    "FeatureContext",
    "FeatureExtractor",
    "FeatureSpec",
    "available_features",
    "build_extractor",
    "encoder_identity",
    "parse_feature_names",
    "register_feature",
]
