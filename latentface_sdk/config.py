"""Versioned configuration dataclasses, saved as ``config.json`` beside ``model.safetensors``.

One :class:`ModelConfig` describes a whole LatentFace checkpoint: the stage-1 autoencoder
(:class:`AutoencoderConfig`), the two stage-2 representation diffusion models (:class:`RDMConfig`)
and the face-crop policy (:class:`CropConfig`). ``to_dict``/``from_dict`` are exact inverses;
unknown versions and unknown or ill-typed fields raise :class:`~latentface_sdk.errors.ConfigError`.

Format versions: 3 (this SDK writes it) added the ``heads`` section (:class:`HeadsConfig`: the identity
embedding and expression head shipped with the weights; absent in older files, which load without
heads). 2 dropped the autoencoder fields that could take only one value
(``AutoencoderConfig.RETIRED``): the input size and the pose and light sizes (fixed: :data:`IMAGE_SIZE`,
:data:`POSE_DIM`, :data:`LIGHT_DIM`, still readable as properties of :class:`AutoencoderConfig`) and two
stage-1 levers that were measured and dropped (``shared_trunk``, ``pose_init_scale``; docs/training.md,
"Stage-1 levers not adopted"); the stage-1 recipe lost the third (``coarse_steps``). Version 1 files and older
recipes that carry them are still read when they hold that one value; any other value is refused with a
:class:`~latentface_sdk.errors.ConfigError` that says why (:func:`drop_retired`).
"""

from __future__ import annotations

import dataclasses
import json
import math
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, NamedTuple, TypeVar

from .errors import ConfigError

#: The config format this version of the SDK writes (see the module docstring for what changed).
CONFIG_VERSION = 3
#: The formats it reads: version 1 may carry the retired fields (``AutoencoderConfig.RETIRED``).
READ_VERSIONS = (1, 2, 3)

#: The network's input side in pixels, and the sizes of the pose ``(tx, ty, tz, yaw, pitch, roll)`` and
#: light ``(ambient, diffuse, dx, dy)`` vectors: fixed by the architecture, not configurable.
IMAGE_SIZE = 64
POSE_DIM = 6
LIGHT_DIM = 4


#: The config's file name in a model folder (the weights file's, ``model.safetensors``, and the rest of the
#: folder's layout are :mod:`latentface_sdk.model_folder`'s).
CONFIG_NAME = "config.json"


class RetiredField(NamedTuple):
    """A field that config format 2 no longer has: the one value older files may hold, and why."""

    value: Any
    reason: str


#: Why the three levers went (their ``reason`` ends with it).
DROPPED_LEVER = "a stage-1 lever measured and dropped (docs/training.md, 'Stage-1 levers not adopted')"


def _same_value(value: Any, want: Any) -> bool:
    """``value`` is ``want`` read from JSON: a bool only as a bool, a number as an equal number."""
    if isinstance(want, bool) or isinstance(value, bool):
        return value is want
    return isinstance(value, (int, float)) and value == want


def drop_retired(kind: type, data: dict[str, Any], source: str) -> dict[str, Any]:
    """``data`` without the fields that ``kind`` lost in config format 2 (its ``RETIRED`` class attribute);
    a retired field that holds another value than its one value is refused with a :class:`ConfigError`
    saying why."""
    retired: dict[str, RetiredField] = getattr(kind, "RETIRED", {})
    for key in sorted(retired.keys() & data.keys()):
        value, reason = retired[key]
        if not _same_value(data[key], value):
            raise ConfigError(
                f"{source}.{key}: {data[key]!r} is not supported: the field was removed in config version 2 "
                f"({reason}); only {json.dumps(value)} is read from older files"
            )
    return {k: v for k, v in data.items() if k not in retired}


@dataclass
class AutoencoderConfig:
    """Stage 1: encoders, decoders, confidence network and renderer settings.

    ``width`` scales the four encoders and ``decoder_width`` the two map decoders and the confidence
    network (the paper-sized model uses 64 for both; the CPU-sized default 32 and 16, since the 64x64
    decoder layers dominate the cost of a training step on a CPU).
    Pose is ``(tx, ty, tz, yaw, pitch, roll)``: translations in units of the face depth,
    angles in degrees after the tanh output is scaled by ``max_rotation_deg``.
    Light is ``(ambient, diffuse, dx, dy)`` with ambient and diffuse in ``[0, 1]``.
    The input size and the pose and light sizes are fixed (:attr:`image_size`, :attr:`pose_dim`,
    :attr:`light_dim`; no longer fields, see :attr:`RETIRED`).
    """

    latent_dim: int = 256
    width: int = 32
    decoder_width: int = 16
    fov_deg: float = 10.0
    depth_min: float = 0.9
    depth_max: float = 1.1
    border_depth: float = 0.7
    #: relief of a fixed ellipsoidal face bump added to the decoded depth (in units of half the depth
    #: range; 0 = none, the paper). It starts stage 1 from a rounded face instead of a flat sheet, out of
    #: the flat/frontal saddle where neither depth nor yaw can explain a turned face's landmarks.
    depth_prior: float = 0.0
    max_rotation_deg: float = 60.0
    max_translation_xy: float = 0.1
    max_translation_z: float = 0.0

    #: Fields of config format 1 that could take one value only (:func:`drop_retired`).
    RETIRED: ClassVar[dict[str, RetiredField]] = {
        "image_size": RetiredField(IMAGE_SIZE, "the networks take 64x64 crops only"),
        "pose_dim": RetiredField(POSE_DIM, "pose is (tx, ty, tz, yaw, pitch, roll)"),
        "light_dim": RetiredField(LIGHT_DIM, "light is (ambient, diffuse, dx, dy)"),
        "shared_trunk": RetiredField(False, f"one encoder trunk with four heads was {DROPPED_LEVER}"),
        "pose_init_scale": RetiredField(0.0, f"a pose head at random weights was {DROPPED_LEVER}"),
    }

    @property
    def image_size(self) -> int:
        """Side of the square input crops in pixels (always :data:`IMAGE_SIZE`)."""
        return IMAGE_SIZE

    @property
    def pose_dim(self) -> int:
        """Size of the pose vector (always :data:`POSE_DIM`)."""
        return POSE_DIM

    @property
    def light_dim(self) -> int:
        """Size of the light vector (always :data:`LIGHT_DIM`)."""
        return LIGHT_DIM

    def validate(self) -> None:
        if self.latent_dim <= 0 or self.width <= 0:
            raise ConfigError("autoencoder.latent_dim and autoencoder.width must be positive")
        if self.width % 4 or self.decoder_width % 4 or self.decoder_width <= 0:
            raise ConfigError(
                f"autoencoder.width and decoder_width must be positive multiples of 4 "
                f"(got {self.width}, {self.decoder_width})"
            )
        if not 0.0 < self.fov_deg < 90.0:
            raise ConfigError(f"autoencoder.fov_deg must be in (0, 90) (got {self.fov_deg})")
        if not 0.0 < self.depth_min < self.depth_max:
            raise ConfigError("autoencoder.depth_min must be positive and below depth_max")

    @property
    def focal(self) -> float:
        """Focal length in normalised device units (image spans [-1, 1])."""
        return 1.0 / math.tan(math.radians(self.fov_deg) / 2.0)


@dataclass
class RDMConfig:
    """Stage 2: one representation diffusion model (the texture and the shape RDM share it).

    The denoiser takes the noisy latent concatenated with the condition ``Z_exp`` and predicts the
    clean identity latent (x0-prediction). ``channels`` are the widths of its down, middle and up
    blocks (paper: 512, 128, 256).
    """

    latent_dim: int = 256
    channels: tuple[int, int, int] = (512, 128, 256)
    time_embed_dim: int = 128
    num_train_timesteps: int = 1000
    beta_schedule: str = "linear"
    beta_start: float = 1e-4
    beta_end: float = 2e-2
    sample_steps: int = 5
    #: where DDIM starts: ``"noise"`` (``z_T ~ N(0, I)``, the paper) or ``"zero"`` (``z_T = 0``, the
    #: prior's mode: one deterministic sample near the mean of many, the default of ``disentangle``)
    sample_init: str = "noise"
    #: also let the condition scale and shift every residual layer's features (as the timestep does),
    #: besides entering with the noisy latent at the input (the paper's only path; issue 24's lever)
    cond_modulation: bool = False

    def validate(self) -> None:
        if len(self.channels) != 3 or min(self.channels) <= 0:
            raise ConfigError(f"rdm.channels must be three positive widths (got {self.channels})")
        if self.num_train_timesteps < 2 or not 1 <= self.sample_steps <= self.num_train_timesteps:
            raise ConfigError("rdm.sample_steps must be between 1 and num_train_timesteps")
        if self.sample_init not in ("noise", "zero"):
            raise ConfigError(f"rdm.sample_init must be 'noise' or 'zero' (got {self.sample_init!r})")


@dataclass
class CropConfig:
    """How a detected face box becomes the 64x64 network input (shared by training and inference).

    The MTCNN box is made square around its centre, enlarged by ``margin`` (a fraction of its side)
    and resized to ``size``. ``min_face_size`` (pixels) and ``threshold`` go to MTCNN.
    A margin of 0.1 keeps the whole face with little background: it matches the framing of aligned
    face sets (CelebA, UTKFace) best among the margins measured (0.0-0.3) in the detection tests' study.
    """

    size: int = 64
    margin: float = 0.1
    min_face_size: int = 20
    threshold: float = 0.9

    def validate(self) -> None:
        if self.size <= 0 or not 0.0 <= self.margin < 2.0:
            raise ConfigError("crop.size must be positive and crop.margin in [0, 2)")

    def to_dict(self) -> dict[str, Any]:
        """The crop settings as JSON values (what ``config.json``, the ONNX card and a training bundle's
        manifest hold)."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: Any, *, source: str = "crop") -> CropConfig:
        """The inverse of :meth:`to_dict`, checked and validated (:class:`ConfigError` naming ``source``)."""
        return config_from_dict(cls, data, source)


@dataclass
class HeadsConfig:
    """The answer heads shipped with the weights (:mod:`latentface_sdk.models.heads`); all absent by
    default (older weights, and the weights of a fresh stage 2).

    ``identity_dim`` > 0: an identity head maps ``identity_input`` features (``"latents"``: ``[Z_t, Z_s]``;
    ``"identity"``: ``[Z_id_t, Z_id_s]``; ``"verification"``: ``[Z_id_t, Z_id_s, Z_t, Z_s]``) to a unit
    embedding of that size; two faces whose embeddings have cosine ``>= identity_threshold`` are called the
    same person. ``expression_classes`` non-empty: an expression head gives probabilities over these
    classes from :meth:`~latentface_sdk.FaceEncoder.expression_features`. ``fitted`` says on what data and
    how they were fitted and measured (free-form, carried as is).
    """

    identity_dim: int = 0
    identity_input: str = "verification"
    identity_threshold: float = 0.5
    expression_classes: tuple[str, ...] = ()
    #: the expression head reads the crop turned grey (luma in all three channels): what it was trained on
    #: (FER-2013 is grey), so colour photos reach it as its training faces did
    expression_grey: bool = False
    fitted: dict[str, Any] = field(default_factory=dict)

    def validate(self) -> None:
        if self.identity_dim < 0:
            raise ConfigError(f"heads.identity_dim must be >= 0 (got {self.identity_dim})")
        if self.identity_input not in IDENTITY_INPUTS:
            raise ConfigError(f"heads.identity_input must be one of {IDENTITY_INPUTS} "
                              f"(got {self.identity_input!r})")
        if not -1.0 <= self.identity_threshold <= 1.0:
            raise ConfigError(f"heads.identity_threshold must be a cosine in [-1, 1] "
                              f"(got {self.identity_threshold})")
        if len(set(self.expression_classes)) != len(self.expression_classes):
            raise ConfigError(f"heads.expression_classes repeats a name: {list(self.expression_classes)}")


#: What the identity head may read (see :class:`HeadsConfig`).
IDENTITY_INPUTS = ("latents", "identity", "verification")


@dataclass
class ModelConfig:
    """The whole checkpoint: what ``config.json`` holds.

    ``checksum`` is the SHA-256 of ``model.safetensors``, verified at load when present.
    ``metadata`` is free-form (training recipe, data, steps) and is carried as is.
    ``version`` is always :data:`CONFIG_VERSION`: a version-1 file is upgraded as it is read (and so
    written back in the current format).
    """

    name: str = "latentface-cpu-small"
    version: int = CONFIG_VERSION
    autoencoder: AutoencoderConfig = field(default_factory=AutoencoderConfig)
    rdm: RDMConfig = field(default_factory=RDMConfig)
    crop: CropConfig = field(default_factory=CropConfig)
    heads: HeadsConfig = field(default_factory=HeadsConfig)
    checksum: str | None = None
    metadata: dict[str, Any] = field(default_factory=dict)

    def validate(self) -> None:
        if self.version != CONFIG_VERSION:
            raise ConfigError(
                f"config version {self.version!r} is not supported by this latentface-sdk "
                f"(it holds version {CONFIG_VERSION} and reads files of versions {_versions()}); "
                "upgrade the package or re-save the model"
            )
        self.autoencoder.validate()
        self.rdm.validate()
        self.crop.validate()
        self.heads.validate()
        if self.rdm.latent_dim != self.autoencoder.latent_dim:
            raise ConfigError("rdm.latent_dim must equal autoencoder.latent_dim")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any], *, source: str = "config") -> ModelConfig:
        if not isinstance(data, dict):
            raise ConfigError(f"{source}: expected a JSON object, got {type(data).__name__}")
        if "version" not in data:
            raise ConfigError(f"{source}: missing the 'version' field")
        version = data["version"]
        if isinstance(version, bool) or not isinstance(version, int) or version not in READ_VERSIONS:
            raise ConfigError(
                f"{source}: config version {version!r} is not supported "
                f"(this latentface-sdk reads versions {_versions()})"
            )
        name, checksum, metadata = data.get("name", cls.name), data.get("checksum"), data.get("metadata", {})
        if not isinstance(name, str):
            raise ConfigError(f"{source}: name: expected a string, got {name!r}")
        if checksum is not None and not (
            isinstance(checksum, str) and len(checksum) == 64
            and all(c in "0123456789abcdef" for c in checksum)
        ):
            raise ConfigError(f"{source}: checksum: expected a SHA-256 hex string or null, got {checksum!r}")
        if not isinstance(metadata, dict):
            raise ConfigError(f"{source}: metadata: expected an object, got {type(metadata).__name__}")
        try:
            cfg = cls(
                name=name,
                version=CONFIG_VERSION,
                autoencoder=build_config(AutoencoderConfig, data.get("autoencoder", {}),
                                         f"{source}: autoencoder"),
                rdm=build_config(RDMConfig, data.get("rdm", {}), f"{source}: rdm"),
                crop=build_config(CropConfig, data.get("crop", {}), f"{source}: crop"),
                heads=build_config(HeadsConfig, data.get("heads", {}), f"{source}: heads"),
                checksum=checksum,
                metadata=dict(metadata),
            )
        except (TypeError, ValueError) as exc:
            if isinstance(exc, ConfigError):
                raise
            raise ConfigError(f"{source}: {exc}") from exc
        unknown = set(data) - {f.name for f in dataclasses.fields(cls)}
        if unknown:
            raise ConfigError(f"{source}: unknown field(s) {sorted(unknown)}")
        try:
            cfg.validate()
        except ConfigError as exc:
            raise ConfigError(f"{source}: {exc}") from None
        return cfg

    def save(self, path: str | Path) -> Path:
        """Write the config as JSON to ``path`` (a file, or a folder that gets ``config.json``)."""
        p = Path(path)
        if p.is_dir():
            p = p / CONFIG_NAME
        p.write_text(json.dumps(self.to_dict(), indent=2, sort_keys=True) + "\n", encoding="utf-8")
        return p

    @classmethod
    def load(cls, path: str | Path) -> ModelConfig:
        """Read a config from ``path`` (a file or a folder holding ``config.json``)."""
        p = Path(path)
        if p.is_dir():
            p = p / CONFIG_NAME
        return cls.from_dict(read_json(p), source=str(p))


def _versions() -> str:
    names = [str(v) for v in READ_VERSIONS]
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]


def read_json(path: Path) -> Any:
    """The JSON value in a config or recipe file; every way of failing is a :class:`ConfigError` naming it."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such config file") from None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read ({exc})") from exc
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: not UTF-8 text, so not a config.json ({exc})") from exc
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise ConfigError(f"{path}: not valid JSON ({exc})") from exc


_T = TypeVar("_T")


def _field_default(f: dataclasses.Field[Any]) -> Any:
    if f.default is not dataclasses.MISSING:
        return f.default
    if f.default_factory is not dataclasses.MISSING:
        return f.default_factory()
    return dataclasses.MISSING


def _scalar_type(hint: Any, default: Any) -> Any:
    """The plain type a field holds (``int``, ``float``, ``str``, ``bool``, ``tuple``), or None when
    unknown."""
    if default is not None and default is not dataclasses.MISSING:
        return type(default)
    args = [a for a in typing.get_args(hint) if a is not type(None)] or [hint]
    return args[0] if len(args) == 1 and args[0] in (int, float, str, bool) else None


def _check_scalar(kind: Any, default: Any, value: Any, where: str, hint: Any = None) -> Any:
    if kind is tuple:
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{where}: expected a list, got {value!r}")
        if str in typing.get_args(hint):
            if any(not isinstance(v, str) for v in value):
                raise ConfigError(f"{where}: expected a list of strings, got {value!r}")
            return tuple(value)
        if any(isinstance(v, bool) or not isinstance(v, (int, float)) for v in value):
            raise ConfigError(f"{where}: expected a list of numbers, got {value!r}")
        item = type(default[0]) if default else float
        return tuple(item(v) for v in value)
    if kind is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{where}: expected true/false, got {value!r}")
    elif kind in (int, float):
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{where}: expected a number, got {value!r}")
        if kind is int and not float(value).is_integer():
            raise ConfigError(f"{where}: expected an integer, got {value!r}")
        return kind(value)
    elif kind is str and not isinstance(value, str):
        raise ConfigError(f"{where}: expected a string, got {value!r}")
    elif kind is dict and not isinstance(value, dict):
        raise ConfigError(f"{where}: expected an object, got {value!r}")
    return value


def build_config(kind: type[_T], data: Any, source: str = "config") -> _T:
    """A config dataclass ``kind`` from a JSON-like dict, with clear :class:`ConfigError` messages.

    Keys starting with ``_`` (``"_comment"``) document a recipe and are skipped; unknown keys, values of
    the wrong type and missing required fields are refused, naming ``source`` and the field. Fields
    retired in config format 2 are read at their one value and refused at any other
    (:func:`drop_retired`). Nested
    config dataclasses (and lists of them) are built the same way; fields left out keep their defaults.
    Values that are already config objects are kept. ``validate()`` is not called (see :func:`load_json`).
    """
    if isinstance(data, kind):
        return data
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: expected an object, got {type(data).__name__}")
    data = {k: v for k, v in data.items() if not (isinstance(k, str) and k.startswith("_"))}
    data = drop_retired(kind, data, source)
    fields = {f.name: f for f in dataclasses.fields(kind)}  # type: ignore[arg-type]
    unknown = set(data) - set(fields)
    if unknown:
        raise ConfigError(f"{source}: unknown field(s) {sorted(unknown)}")
    hints = typing.get_type_hints(kind)
    values: dict[str, Any] = {}
    for key, value in data.items():
        where, hint, default = f"{source}.{key}", hints[key], _field_default(fields[key])
        args = typing.get_args(hint)
        if value is None and type(None) in args:
            values[key] = None
        elif dataclasses.is_dataclass(default):
            values[key] = build_config(type(default), value, where)
        elif typing.get_origin(hint) is list and args and dataclasses.is_dataclass(args[0]):
            if not isinstance(value, list):
                raise ConfigError(f"{where}: expected a list, got {value!r}")
            item = typing.cast(type[Any], args[0])
            values[key] = [build_config(item, v, f"{where}[{i}]") for i, v in enumerate(value)]
        else:
            values[key] = _check_scalar(_scalar_type(hint, default), default, value, where, hint)
    missing = [n for n, f in fields.items() if n not in values and _field_default(f) is dataclasses.MISSING]
    if missing:
        raise ConfigError(f"{source}: missing field(s) {missing}")
    return kind(**values)


def config_from_dict(kind: type[_T], data: Any, source: str = "config") -> _T:
    """:func:`build_config`, then ``validate()`` when ``kind`` has it (its errors prefixed with
    ``source``)."""
    cfg = build_config(kind, data, source)
    validate = getattr(cfg, "validate", None)
    if callable(validate):
        try:
            validate()
        except ConfigError as exc:
            raise ConfigError(f"{source}: {exc}") from None
    return cfg


def load_json(kind: type[_T], path: str | Path) -> _T:
    """Read a JSON file into the config dataclass ``kind`` (:func:`config_from_dict`); unreadable files
    and bad JSON raise :class:`ConfigError` naming the file (:func:`read_json`)."""
    return config_from_dict(kind, read_json(Path(path)), str(path))
