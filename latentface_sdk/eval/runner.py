"""End-to-end evaluation runs: images -> face crops -> cached features -> protocol -> table, JSON, PNGs.

:func:`run_verification` and :func:`run_fer` are what ``python -m latentface_sdk.eval verify|fer``
call. Images are cropped exactly as for training (``latentface_sdk.cropset.prepare_crops``: MTCNN,
centre-crop fallback for already aligned faces), once for all feature sets of a run, and only when some
feature set is not cached yet.
"""

from __future__ import annotations

import dataclasses
import time
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from .._version import __version__
from ..config import CropConfig
from ..digests import files_digest, parts_digest
from .cache import FeatureCache
from .datasets import LabeledImages, check_disjoint
from .features import FeatureContext, FeatureExtractor, build_extractor
from .fer import FER_PROBE, FERResult, evaluate_fer
from .pairs import PairSet
from .plots import plot_confusion, plot_roc
from .probes import ProbeConfig
from .report import fer_table, verification_table, write_json
from .verification import VERIFY_PROBE, VerificationResult, evaluate_verification


class CropFunction(Protocol):
    """Turns image files into crops ``uint8 (N, S, S, 3)``, a usable mask ``bool (N,)`` and per-row
    method names (``"mtcnn"``, ``"center"``, ``"failed"``, ...)."""

    def __call__(
        self,
        paths: list[Path],
        crop: CropConfig,
        *,
        detect: bool,
        cache_file: Path | None,
        progress: bool,
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]: ...


def detection_crops(
    paths: list[Path],
    crop: CropConfig,
    *,
    detect: bool,
    cache_file: Path | None,
    progress: bool,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The training crop policy: :func:`latentface_sdk.cropset.prepare_crops` with a centre fallback.

    Rows whose file cannot be read come back unusable (``ok`` False) and are left out by the protocols.
    """
    from ..cropset import prepare_crops

    result = prepare_crops(
        paths, crop, detect=detect, fallback="center", cache_file=cache_file, progress=progress
    )
    return np.asarray(result.crops), np.asarray(result.ok, dtype=bool), np.asarray(result.method, dtype=str)


@dataclass
class EvalSettings:
    """Where results and caches go, how images are cropped, and what model-based features load."""

    out_dir: Path
    cache_dir: Path | None = None
    context: FeatureContext = field(default_factory=FeatureContext)
    crop: CropConfig | None = None
    detect: bool = True
    progress: bool = True
    crop_fn: CropFunction = detection_crops

    @property
    def cache(self) -> FeatureCache:
        return FeatureCache(self.cache_dir if self.cache_dir is not None else Path(self.out_dir) / "cache")


@dataclass
class FeatureMatrices:
    """Per-image features of one image list, by feature-set name, with how they were obtained."""

    features: dict[str, np.ndarray]
    cached: dict[str, bool]
    seconds: dict[str, float]
    usable: np.ndarray
    methods: dict[str, int]


@dataclass
class RunReport:
    """What a run produced: per-feature results, the markdown table, and the files written."""

    results: list[Any]
    table: str
    files: dict[str, Path]
    meta: dict[str, Any]


def build_extractors(names: Sequence[str], context: FeatureContext) -> list[FeatureExtractor]:
    """Build every requested extractor up front, so a missing piece fails before any long work."""
    return [build_extractor(n, context) for n in names]


def resolve_crop(extractors: Sequence[FeatureExtractor], crop: CropConfig | None) -> CropConfig:
    """The crop policy: the one given, else the model's (when a model-based feature set is used), else the
    default."""
    if crop is not None:
        return crop
    for e in extractors:
        c = e.crop_config()
        if c is not None:
            return c
    return CropConfig()


def _crop_identity(crop: CropConfig, settings: EvalSettings) -> str:
    fn = getattr(settings.crop_fn, "__module__", "?") + "." + getattr(settings.crop_fn, "__qualname__", "?")
    return f"crop={sorted(dataclasses.asdict(crop).items())}:detect={settings.detect}:fallback=center:fn={fn}"


def compute_features(
    paths: Sequence[Path],
    extractors: Sequence[FeatureExtractor],
    crop: CropConfig,
    settings: EvalSettings,
) -> FeatureMatrices:
    """Features of ``paths`` for every extractor, from the cache when possible, else computed and cached.

    The crops are always obtained (``settings.crop_fn`` keeps its own cache) because they say which
    images are usable; rows of unreadable images hold features of an empty crop, masked by ``usable``.
    """
    paths = list(paths)
    cache = settings.cache
    crop_id = _crop_identity(crop, settings)
    files = files_digest(paths)
    crop_file = cache.directory / f"crops-{parts_digest(crop_id, files)[:16]}.npz"
    crop_file.parent.mkdir(parents=True, exist_ok=True)
    crops, ok, method = settings.crop_fn(
        paths, crop, detect=settings.detect, cache_file=crop_file, progress=settings.progress
    )
    if len(crops) != len(paths) or len(ok) != len(paths) or len(method) != len(paths):
        raise RuntimeError(f"the crop function returned {len(crops)} crops for {len(paths)} images")
    names, counts = np.unique(np.asarray(method, dtype=str), return_counts=True)
    out = FeatureMatrices(
        {}, {}, {}, np.asarray(ok, dtype=bool), dict(zip(names.tolist(), counts.tolist(), strict=True))
    )
    for ext in extractors:
        key = parts_digest(ext.cache_name, ext.identity(), crop_id, files)
        start = time.perf_counter()
        feats = cache.load(ext.cache_name, key, len(paths))
        out.cached[ext.name] = feats is not None
        if feats is None:
            feats = np.asarray(ext(crops, progress=settings.progress), dtype=np.float32)
            if feats.shape[0] != len(paths) or feats.ndim != 2:
                raise RuntimeError(f"feature set {ext.name!r} returned {feats.shape} for {len(paths)} images")
            if not np.all(np.isfinite(feats)):
                raise RuntimeError(f"feature set {ext.name!r} produced non-finite values")
            cache.save(ext.cache_name, key, feats, paths)
        out.features[ext.name] = feats
        out.seconds[ext.name] = time.perf_counter() - start
    return out


def _counts_text(methods: dict[str, int]) -> str:
    return ", ".join(f"{n} {m}" for m, n in sorted(methods.items())) or "none"


def _meta(settings: EvalSettings, crop: CropConfig, extractors: Sequence[FeatureExtractor]) -> dict[str, Any]:
    return {
        "latentface_sdk": __version__,
        "crop": dataclasses.asdict(crop),
        "detect": settings.detect,
        "features": {e.name: e.identity() for e in extractors},
    }


def run_verification(
    pairs: PairSet,
    feature_names: Sequence[str],
    settings: EvalSettings,
    *,
    probe: ProbeConfig = VERIFY_PROBE,
    title: str | None = None,
) -> RunReport:
    """Leave-one-fold-out verification of every feature set on ``pairs``.

    Writes ``verification.md`` (the side-by-side table), ``verification.json`` (per-fold numbers and
    the run's settings), ``roc-cosine.png`` and ``roc-probe.png`` into ``settings.out_dir``.
    """
    out_dir = Path(settings.out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    extractors = build_extractors(feature_names, settings.context)
    crop = resolve_crop(extractors, settings.crop)
    images = pairs.images()
    mats = compute_features(images, extractors, crop, settings)
    ia, ib = pairs.indices(images)
    keep = mats.usable[ia] & mats.usable[ib]
    unreadable = [str(images[i]) for i in np.flatnonzero(~mats.usable)]
    if unreadable:
        warnings.warn(
            f"skipped {int((~keep).sum())} pair(s) naming {len(unreadable)} unreadable image(s), "
            f"e.g. {unreadable[0]}",
            stacklevel=2,
        )
    ia, ib, labels, folds = ia[keep], ib[keep], pairs.labels[keep], pairs.folds[keep]
    results: list[VerificationResult] = []
    for ext in extractors:
        res = evaluate_verification(
            mats.features[ext.name], ia, ib, labels, folds, name=ext.name, probe=probe
        )
        res.extra = {"cached": mats.cached[ext.name], "feature_seconds": round(mats.seconds[ext.name], 3)}
        results.append(res)
    table = verification_table(results)
    name = title or (f"{pairs.source.parent.name}/{pairs.source.name}" if pairs.source else "pairs")
    n_same = int(labels.sum())
    lines = [
        f"# Face verification: {name}",
        "",
        f"{len(labels)} pairs ({n_same} same, {len(labels) - n_same} different) over {len(images)} images, "
        f"folds {sorted(set(folds.tolist()))}; leave-one-fold-out, accuracy as mean ± standard error "
        "over folds.",
        f"Pairs skipped: {len({m.line for m in pairs.missing})} for missing images, "
        f"{int((~keep).sum())} for unreadable ones. Crops: {_counts_text(mats.methods)}.",
        "",
        table,
    ]
    files = {
        "table": out_dir / "verification.md",
        "json": out_dir / "verification.json",
        "roc_cosine": out_dir / "roc-cosine.png",
        "roc_probe": out_dir / "roc-probe.png",
    }
    files["table"].write_text("\n".join(lines), encoding="utf-8")
    meta = {
        **_meta(settings, crop, extractors),
        "pairs": str(pairs.source),
        "n_pairs": int(len(labels)),
        "n_images": len(images),
        "crops": mats.methods,
        "missing": [{"line": m.line, "path": str(m.path)} for m in pairs.missing],
        "unreadable": unreadable,
        "probe": dataclasses.asdict(probe),
    }
    write_json(files["json"], {"meta": meta, "results": [r.to_dict() for r in results]})
    plot_roc({r.feature: r.roc("cosine") for r in results}, files["roc_cosine"], f"{name}: cosine similarity")
    plot_roc({r.feature: r.roc("probe") for r in results}, files["roc_probe"], f"{name}: linear probe")
    return RunReport(results, "\n".join(lines), files, meta)


def run_fer(
    train: LabeledImages,
    test: LabeledImages,
    feature_names: Sequence[str],
    settings: EvalSettings,
    *,
    probe: ProbeConfig = FER_PROBE,
    title: str = "expression recognition",
) -> RunReport:
    """Train the linear probe on ``train`` and score it on ``test`` for every feature set.

    Writes ``fer.md``, ``fer.json`` and one ``confusion-<feature>.png`` per feature set into
    ``settings.out_dir``. ``train`` and ``test`` must not share images and must use the same classes.
    """
    if list(train.classes) != list(test.classes):
        raise ValueError(f"train classes {train.classes} differ from test classes {test.classes}")
    check_disjoint(train, test)
    out_dir = Path(settings.out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    extractors = build_extractors(feature_names, settings.context)
    crop = resolve_crop(extractors, settings.crop)
    tr = compute_features(train.paths, extractors, crop, settings)
    te = compute_features(test.paths, extractors, crop, settings)
    for split, mats in (("train", tr), ("test", te)):
        if not mats.usable.all():
            warnings.warn(f"left out {int((~mats.usable).sum())} unreadable {split} image(s)", stacklevel=2)
    ytr, yte = train.labels[tr.usable], test.labels[te.usable]
    results: list[FERResult] = []
    files: dict[str, Path] = {"table": out_dir / "fer.md", "json": out_dir / "fer.json"}
    for ext in extractors:
        xtr, xte = tr.features[ext.name][tr.usable], te.features[ext.name][te.usable]
        res = evaluate_fer(xtr, ytr, xte, yte, train.classes, name=ext.name, probe=probe)
        res.extra = {"cached": tr.cached[ext.name] and te.cached[ext.name]}
        results.append(res)
        png = out_dir / f"confusion-{ext.name}.png"
        plot_confusion(res.confusion, res.classes, png, f"{title}: {ext.name}")
        files[f"confusion_{ext.name}"] = png
    table = fer_table(results)
    lines = [
        f"# Facial expression recognition: {title}",
        "",
        f"Linear probe (BatchNorm + Linear, Adam lr {probe.lr}, {probe.epochs} epochs) trained on "
        f"{len(ytr)} images, tested on {len(yte)} images; classes {', '.join(train.classes)}.",
        f"Crops: train {_counts_text(tr.methods)}; test {_counts_text(te.methods)}.",
        "",
        table,
    ]
    files["table"].write_text("\n".join(lines), encoding="utf-8")
    meta = {
        **_meta(settings, crop, extractors),
        "n_train": int(len(ytr)),
        "n_test": int(len(yte)),
        "train_counts": train.counts(),
        "test_counts": test.counts(),
        "crops": {"train": tr.methods, "test": te.methods},
        "probe": dataclasses.asdict(probe),
    }
    write_json(files["json"], {"meta": meta, "results": [r.to_dict() for r in results]})
    return RunReport(results, "\n".join(lines), files, meta)


__all__ = [
    "CropFunction",
    "EvalSettings",
    "FeatureMatrices",
    "RunReport",
    "build_extractors",
    "compute_features",
    "detection_crops",
    "resolve_crop",
    "run_fer",
    "run_verification",
]
