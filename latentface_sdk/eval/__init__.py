"""Evaluation protocols of the paper with baselines side by side (``pip install latentface-sdk[eval]``).

* :mod:`.pairs` reads LFW-style pairs files; :mod:`.datasets` reads image folders and label CSVs.
* :mod:`.features` is the registry of feature sets by name (``raw``, ``lbp``, ``hog``,
  ``random-encoder``, ``latentface``, ``latentface-verify``, ``latentface-fer``, ...), built lazily;
  :mod:`.baselines` holds the hand-crafted and random-encoder baselines; :mod:`.cache` caches features.
* :mod:`.probes` is the paper's BatchNorm + Linear probe; :mod:`.verification` the k-fold verification
  protocol (probe and cosine threshold); :mod:`.fer` the expression-recognition protocol.
* :mod:`.report` and :mod:`.plots` write the markdown table, JSON and PNGs; :mod:`.runner` ties it all
  together; :mod:`.cli` is the command line (``python -m latentface_sdk.eval verify|fer``).

scikit-image, scikit-learn and matplotlib are imported only by the parts that need them.
"""

from __future__ import annotations

from .cache import FeatureCache
from .datasets import (
    FER2013_CLASSES,
    LabeledImages,
    read_image_folder,
    read_label_csv,
    read_split,
)
from .features import (
    FeatureContext,
    FeatureExtractor,
    available_features,
    build_extractor,
    parse_feature_names,
    register_feature,
)
from .fer import FER_PROBE, FERResult, evaluate_fer
from .pairs import MissingImage, Pair, PairSet, read_pairs
from .probes import LinearProbe, ProbeConfig, train_probe
from .runner import EvalSettings, RunReport, compute_features, run_fer, run_verification
from .verification import (
    VERIFY_PROBE,
    VerificationResult,
    choose_threshold,
    cosine_scores,
    evaluate_verification,
    pair_features,
)

__all__ = [
    "FER2013_CLASSES",
    "FER_PROBE",
    "VERIFY_PROBE",
    "EvalSettings",
    "FERResult",
    "FeatureCache",
    "FeatureContext",
    "FeatureExtractor",
    "LabeledImages",
    "LinearProbe",
    "MissingImage",
    "Pair",
    "PairSet",
    "ProbeConfig",
    "RunReport",
    "VerificationResult",
    "available_features",
    "build_extractor",
    "choose_threshold",
    "compute_features",
    "cosine_scores",
    "evaluate_fer",
    "evaluate_verification",
    "pair_features",
    "parse_feature_names",
    "read_image_folder",
    "read_label_csv",
    "read_pairs",
    "read_split",
    "register_feature",
    "run_fer",
    "run_verification",
    "train_probe",
]
