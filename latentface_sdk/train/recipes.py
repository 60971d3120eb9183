"""The trainers' recipes: typed config dataclasses read from JSON (``latentface_sdk/train/configs/``).

:class:`Stage1Config` (the 3D autoencoder run) nests an :class:`~latentface_sdk.config.AutoencoderConfig`
and a :class:`~latentface_sdk.config.CropConfig`; :class:`Stage2Config` (the RDM run) nests its
:class:`DataSource` list and an :class:`~latentface_sdk.config.RDMConfig`. All are read by the one
loader of :mod:`latentface_sdk.config` (:func:`~latentface_sdk.config.load_json`): ``_comment`` keys
document a recipe, unknown or ill-typed keys are refused with the field named.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from ..config import (
    DROPPED_LEVER,
    AutoencoderConfig,
    CropConfig,
    RDMConfig,
    RetiredField,
    build_config,
    config_from_dict,
    load_json,
)
from ..digests import json_digest
from ..errors import ConfigError

__all__ = ["DATA_KINDS", "DataSource", "Stage1Config", "Stage2Config"]

#: :data:`latentface_sdk.models.rdm.DEFAULT_SNR_GAMMA`, repeated so that reading a recipe does not import
#: diffusers (stage 1 trains without it; tests/test_bundle.py checks that the two agree).
DEFAULT_SNR_GAMMA = 5.0

#: Kinds of stage-2 data sources (identity groups).
DATA_KINDS = ("celeba", "imfdb", "labels", "manifest", "voxceleb")


@dataclass
class Stage1Config:
    """The stage-1 recipe (a JSON file; unknown keys are refused)."""

    sources: list[str] = field(default_factory=lambda: ["shared:utkface", "shared:celeba-train",
                                                        "shared:imfdb"])
    shared_root: str | None = None
    max_images: int | None = None
    model: AutoencoderConfig = field(default_factory=AutoencoderConfig)
    crop: CropConfig = field(default_factory=CropConfig)
    detect_min_face_size: int = 40
    batch_size: int = 16
    lr: float = 1e-4
    steps: int = 2000
    renderer: str = "auto"
    feature_net: str = "random-conv"
    vgg16_weights: str | None = None
    lambda_f: float = 1.0
    lambda_flip: float = 0.5
    lambda_smooth: float = 0.0
    #: weight of the five-landmark reprojection loss (not in the paper; 0 turns it off)
    lambda_landmark: float = 0.0
    #: weight of the light-cycle loss (not in the paper; 0 turns it off) and how many faces of each
    #: batch are re-rendered under random lights for it
    lambda_light_cycle: float = 0.0
    light_cycle_count: int = 8
    #: in-plane rotation augmentation (not in the paper; 0 turns it off): with probability
    #: ``augment_roll_p`` a crop and its landmarks turn by up to this many degrees either way
    augment_roll_deg: float = 0.0
    augment_roll_p: float = 0.5
    #: share of crops shown in grey (not in the paper)
    augment_grey_p: float = 0.0
    #: share of crops shrunk to 24-48 px and enlarged back (not in the paper): 48x48 expression data
    augment_low_res_p: float = 0.0
    #: extra weight of the photometric loss around the eyes, brows and mouth, located by each crop's
    #: landmarks (not in the paper; 0 turns it off): :func:`latentface_sdk.train.losses.region_weights`
    region_weight: float = 0.0
    #: the landmark loss reads the depth as a mean over this many pixels square instead of a point
    #: (1 = a point, the earlier recipes; a point loss digs pits at the five keypoints)
    keypoint_blur: int = 1
    #: False: the photometric loss ignores the learned confidence map (plain masked L1; an issue-24 lever:
    #: a confidence that discounts the mouth and eyes hides them). The feature loss keeps its own.
    photo_confidence: bool = True
    #: extra weight of the feature-level loss around the eyes, brows and mouth (0 = off; an issue-24
    #: lever: a feature loss at the landmark regions)
    feature_region_weight: float = 0.0
    #: start from the weights of this stage-1 model folder (a fine-tuning run; fresh optimizer, step 0).
    #: Ignored when ``--resume`` finds a checkpoint.
    init_from: str | None = None
    #: a training bundle (:mod:`latentface_sdk.train.bundle`: the crops and landmarks packed by
    #: ``latentface-train bundle``) to train on instead of ``sources`` (which then are not read)
    bundle: str | None = None
    #: "bf16": the networks run under bfloat16 autocast, the renderer and the loss in float32
    #: (:mod:`latentface_sdk.train.precision`); "off": float32 throughout
    amp: str = "off"
    #: store the weights and input batches channels-last (NHWC), for faster convolutions on GPUs
    channels_last: bool = False
    log_every: int = 10
    grid_every: int = 250
    checkpoint_every: int = 250
    seed: int = 0
    device: str = "auto"
    name: str = "latentface-cpu-small"

    #: Recipe fields of earlier versions that could take one value only
    #: (:func:`~latentface_sdk.config.drop_retired`).
    RETIRED: ClassVar[dict[str, RetiredField]] = {
        "coarse_steps": RetiredField(0, f"the 32 -> 64 px curriculum was {DROPPED_LEVER}"),
    }

    @classmethod
    def from_dict(cls, data: dict[str, Any], source: str = "stage-1 config") -> Stage1Config:
        """A recipe from a JSON-like dict (nested ``model`` and ``crop`` objects; unknown keys refused)."""
        return build_config(cls, data, source)

    @classmethod
    def load(cls, path: str | Path) -> Stage1Config:
        """Read a recipe file (``_comment`` keys document it; unknown or ill-typed keys are refused)."""
        return load_json(cls, path)



@dataclass
class DataSource:
    """One data set of identity groups: ``kind`` in celeba/imfdb/labels/manifest/voxceleb and its ``path``.

    ``path`` is the shared data folder for celeba and imfdb, a folder with ``labels.csv`` and ``images/``
    for labels (e.g. ``../shared/data/taiwan_tcce``), the CSV for a manifest, the tree root for voxceleb;
    relative paths are resolved against the current directory. ``split`` is used by celeba only and must
    be ``"train"`` (the ``verify`` identities are never trained on). ``holdout``: identities of a labels
    set that are never trained on (measured on).
    """

    kind: str
    path: str
    split: str = "train"
    holdout: list[str] = field(default_factory=list)

    def validate(self) -> None:
        if self.kind not in DATA_KINDS:
            raise ConfigError(f"data kind must be one of {DATA_KINDS} (got {self.kind!r})")
        if not self.path:
            raise ConfigError(f"data source {self.kind!r} has an empty path")
        if self.kind == "celeba" and self.split != "train":
            raise ConfigError("stage 2 trains on the celeba10k 'train' split only ('verify' is held out)")

    @classmethod
    def parse(cls, text: str) -> DataSource:
        """``"KIND=PATH"`` (command line form), e.g. ``celeba=../shared/data``."""
        kind, sep, path = text.partition("=")
        if not sep:
            raise ConfigError(f"--data expects KIND=PATH with KIND in {DATA_KINDS} (got {text!r})")
        src = cls(kind.strip(), path.strip())
        src.validate()
        return src


@dataclass
class Stage2Config:
    """The stage-2 training recipe (saved in the model's metadata and checked on resume).

    ``batch_groups`` groups per step with ``frames_per_group`` frames each (fewer for smaller groups);
    ``min_group_size`` drops smaller groups; ``max_groups`` (if set) keeps a random subset of the groups
    (for quick runs). ``snr_gamma`` clamps the SNR loss weight (``null`` = the paper's plain SNR).
    ``rdm`` is the :class:`~latentface_sdk.config.RDMConfig` trained (architecture, schedule, sampling
    defaults); a recipe lists only the fields it changes.
    ``detect``/``crop_fallback`` go to :func:`~latentface_sdk.cropset.prepare_crops`.
    """

    data: list[DataSource] = field(default_factory=list)
    steps: int = 5000
    batch_groups: int = 16
    frames_per_group: int = 16
    min_group_size: int = 2
    max_groups: int | None = None
    lr: float = 1e-4
    snr_gamma: float | None = DEFAULT_SNR_GAMMA
    seed: int = 0
    encode_batch_size: int = 128
    detect: bool = True
    crop_fallback: str = "center"
    checkpoint_every: int = 1000
    log_every: int = 50
    rdm: RDMConfig = field(default_factory=lambda: RDMConfig())

    def validate(self) -> None:
        for src in self.data:
            src.validate()
        positive = {
            "steps": self.steps,
            "batch_groups": self.batch_groups,
            "frames_per_group": self.frames_per_group,
            "encode_batch_size": self.encode_batch_size,
            "checkpoint_every": self.checkpoint_every,
            "log_every": self.log_every,
        }
        bad = [k for k, v in positive.items() if v < 1]
        if bad:
            raise ConfigError(f"stage-2 config: {', '.join(bad)} must be positive")
        if self.min_group_size < 2:
            raise ConfigError("stage-2 config: min_group_size must be at least 2 "
                              "(a group of one has no identity mean)")
        if self.max_groups is not None and self.max_groups < 1:
            raise ConfigError("stage-2 config: max_groups must be positive or null")
        if not self.lr > 0:
            raise ConfigError("stage-2 config: lr must be positive")
        if self.snr_gamma is not None and not self.snr_gamma > 0:
            raise ConfigError("stage-2 config: snr_gamma must be positive or null")
        if self.crop_fallback not in ("center", "none"):
            raise ConfigError("stage-2 config: crop_fallback must be 'center' or 'none'")
        self.rdm.validate()

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any], *, source: str = "stage-2 config") -> Stage2Config:
        """A validated recipe from a JSON-like dict (nested ``data`` sources and ``rdm``; unknown keys
        refused)."""
        return config_from_dict(cls, data, source)

    @classmethod
    def load(cls, path: str | Path) -> Stage2Config:
        """Read and validate a recipe file (``_comment`` keys document it)."""
        return load_json(cls, path)

    def recipe_hash(self) -> str:
        """Hash of the fields that must not change when a run is resumed (everything but steps/logging)."""
        d = self.to_dict()
        for k in ("steps", "checkpoint_every", "log_every", "encode_batch_size"):
            d.pop(k)
        return json_digest(d)
