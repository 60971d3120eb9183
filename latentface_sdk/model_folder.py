"""The one place where model folders and the SDK's versioned JSON manifests are written and read.

**A model folder** holds ``config.json`` (a :class:`~latentface_sdk.config.ModelConfig`) and
``model.safetensors``: every network of a checkpoint in one safetensors file, each part under its own
key prefix: :data:`AUTOENCODER` (stage 1), :data:`RDM_TEXTURE` and :data:`RDM_SHAPE` (stage 2) and
:data:`HEADS` (the answer heads, when the config has them). The config records the SHA-256 of the
weights file; :func:`save_model_folder` fills it in and :func:`load_model_folder` verifies it. Nothing
here ever unpickles: pickled files are recognised (:func:`pickled_files`) only to be refused with a
reason. The prefixes are named here only (``tests/test_model_folder.py`` checks that no other module of
the package types them); the other modules join and split state dicts with :func:`prefixed`,
:func:`split_state`, :func:`with_prefix` and :func:`load_part`.

**A versioned JSON manifest** (:class:`ManifestFormat`) carries a ``format`` name and a version number
that are written by :meth:`ManifestFormat.stamp` and checked by :meth:`ManifestFormat.check`: a file of
another format, or of a version this package does not read, is refused with the format's own typed error.
Three formats use it: :data:`ONNX_CARD` (the ``config.json`` of an ONNX export,
:mod:`latentface_sdk.deploy.export`), :data:`TRAINING_BUNDLE` (``manifest.json`` in a stage-1 training
bundle, :mod:`latentface_sdk.train.bundle`) and :data:`CHECKPOINT_PARTS` (``checkpoint.index.json`` of a
checkpoint in parts, :mod:`latentface_sdk.train.parts`). The face-crop settings inside them are written and
read by :meth:`CropConfig.to_dict <latentface_sdk.config.CropConfig.to_dict>` and
:meth:`CropConfig.from_dict <latentface_sdk.config.CropConfig.from_dict>`.

Which folder a model *name* means (bundled, local or a Hub id) is :func:`latentface_sdk.hub.resolve`'s
question; this module starts from a folder.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from .atomic import atomic_path, atomic_write_bytes
from .config import CONFIG_NAME, ModelConfig
from .digests import file_digest
from .errors import ChecksumError, DataError, LatentFaceError, OnnxFormatError, WeightsError

__all__ = [
    "AUTOENCODER",
    "CARD_NAME",
    "CHECKPOINT_PARTS",
    "CONFIG_NAME",
    "HEADS",
    "ManifestFormat",
    "ONNX_CARD",
    "PICKLE_SUFFIXES",
    "PREFIXES",
    "RDM_SHAPE",
    "RDM_TEXTURE",
    "TRAINING_BUNDLE",
    "WEIGHTS_NAME",
    "check_model_folder",
    "is_model_folder",
    "load_model_folder",
    "load_part",
    "model_id",
    "pickled_files",
    "prefixed",
    "recorded_checksum",
    "save_model_folder",
    "split_state",
    "stray_keys",
    "with_prefix",
]

#: The weights file of a model folder (``CONFIG_NAME``, ``config.json``, is the config's own file name).
WEIGHTS_NAME = "model.safetensors"
#: The model card beside them (optional; the Hub shows it).
CARD_NAME = "README.md"

# ------------------------------------------------------------------------------------ state-dict prefixes

#: Key prefix of the stage-1 autoencoder's tensors.
AUTOENCODER = "autoencoder."
#: Key prefix of the texture representation diffusion model's tensors (stage 2).
RDM_TEXTURE = "rdm_texture."
#: Key prefix of the shape representation diffusion model's tensors (stage 2).
RDM_SHAPE = "rdm_shape."
#: Key prefix of the answer heads' tensors (identity embedding, expression head).
HEADS = "heads."
#: Every prefix a model folder's keys may start with.
PREFIXES = (AUTOENCODER, RDM_TEXTURE, RDM_SHAPE, HEADS)


def prefixed(module: nn.Module | Mapping[str, Tensor], prefix: str) -> dict[str, Tensor]:
    """``module``'s state dict (or a state dict) with ``prefix`` added to every key."""
    state = module.state_dict() if isinstance(module, nn.Module) else module
    return {prefix + k: v for k, v in state.items()}


def split_state(state: Mapping[str, Tensor], prefix: str) -> dict[str, Tensor]:
    """The tensors of one part, ``prefix`` stripped (what the part's module loads)."""
    return {k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)}


def with_prefix(state: Mapping[str, Tensor], prefix: str) -> dict[str, Tensor]:
    """The tensors of one part, keys kept whole (to carry a part into another model folder)."""
    return {k: v for k, v in state.items() if k.startswith(prefix)}


def stray_keys(state: Mapping[str, Tensor]) -> list[str]:
    """The keys (sorted) that start with none of :data:`PREFIXES`."""
    return sorted(k for k in state if not k.startswith(PREFIXES))


def _listed(keys: list[str]) -> str:
    return f"{keys[:5]}{' ...' if len(keys) > 5 else ''}"


def load_part(module: nn.Module, state: Mapping[str, Tensor], prefix: str, source: str) -> None:
    """Load one part into ``module``; name missing, unexpected and mis-shaped keys in the error.

    Floating-point tensors holding NaN or infinite values are refused too (naming the keys): they
    would load silently and turn every output into NaN.
    """
    part = split_state(state, prefix)
    if not part:
        raise WeightsError(f"{source}: no tensors with prefix {prefix!r}")
    own = module.state_dict()
    missing = sorted(set(own) - set(part))
    unexpected = sorted(set(part) - set(own))
    shapes = [f"{prefix}{k}: file {tuple(part[k].shape)} vs model {tuple(own[k].shape)}"
              for k in sorted(set(own) & set(part)) if own[k].shape != part[k].shape]
    if missing or unexpected or shapes:
        lines = []
        if missing:
            lines.append(f"missing {_listed([prefix + k for k in missing])}")
        if unexpected:
            lines.append(f"unexpected {_listed([prefix + k for k in unexpected])}")
        if shapes:
            lines.append("shape mismatch " + "; ".join(shapes[:5]))
        raise WeightsError(f"{source}: tensors do not match the model: " + ", ".join(lines))
    broken = [prefix + k for k in sorted(part) if part[k].is_floating_point()
              and not torch.isfinite(part[k]).all()]
    if broken:
        raise WeightsError(
            f"{source}: tensors hold NaN or infinite values: {_listed(broken)}; the weights are broken "
            "(saved from a diverged run?) and would give NaN outputs"
        )
    module.load_state_dict(part, strict=True)


# ------------------------------------------------------------------------------------------ model folders

_PICKLE_MAGIC = (b"\x80\x02", b"\x80\x03", b"\x80\x04", b"\x80\x05", b"PK\x03\x04")

#: File suffixes of pickled weights (PyTorch, pickle): recognised to be refused with a reason, never read.
PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".ckpt", ".pkl")


def pickled_files(folder: Path) -> list[str]:
    """Names of the files in ``folder`` that look like pickled weights (sorted)."""
    return sorted(p.name for p in folder.iterdir() if p.suffix in PICKLE_SUFFIXES)


def is_model_folder(folder: Path) -> bool:
    """True when ``folder`` holds both ``config.json`` and ``model.safetensors`` (nothing is read)."""
    return (folder / CONFIG_NAME).is_file() and (folder / WEIGHTS_NAME).is_file()


def check_model_folder(folder: Path, what: str = "folder") -> Path:
    """``folder`` when it holds ``config.json`` and ``model.safetensors``; otherwise a
    :class:`WeightsError` that says which file is missing (``what`` names the folder's role), and that
    pickled weights found instead are refused."""
    missing = [n for n in (CONFIG_NAME, WEIGHTS_NAME) if not (folder / n).is_file()]
    pickled = pickled_files(folder) if folder.is_dir() else []
    if WEIGHTS_NAME in missing and pickled:
        raise WeightsError(
            f"{folder}: {what} holds {', '.join(pickled)} but no {WEIGHTS_NAME}: pickled weights are refused "
            f"(loading them can run arbitrary code); convert them to safetensors"
        )
    if missing:
        raise WeightsError(
            f"{folder}: {what} lacks {' and '.join(missing)} (a model folder holds {CONFIG_NAME} and "
            f"{WEIGHTS_NAME}, as written by FaceEncoder.save_pretrained)"
        )
    return folder


def recorded_checksum(folder: Path) -> str | None:
    """The weights' SHA-256 that ``folder/config.json`` records, without validating the config (None when
    the file is unreadable or records none): for listing models cheaply."""
    try:
        value = json.loads((folder / CONFIG_NAME).read_text(encoding="utf-8")).get("checksum")
    except (OSError, ValueError, AttributeError):
        return None
    return value if isinstance(value, str) else None


def model_id(config: ModelConfig, folder: str | os.PathLike[str] | None = None) -> str:
    """``NAME@SHA256``: a model's name and its weights' digest (the checksum its config records, else the
    digest of ``folder``'s weights file; the name alone for a model that was never saved), as
    ``latentface encode`` and the Ray integration record it in their ``model`` column."""
    digest = config.checksum or (file_digest(Path(folder) / WEIGHTS_NAME) if folder is not None else None)
    return f"{config.name}@{digest}" if digest else config.name


def save_model_folder(folder: str | os.PathLike[str], config: ModelConfig,
                      state: Mapping[str, Tensor]) -> Path:
    """Write ``state`` and ``config`` (with the weights' checksum filled in, on ``config`` too) into
    ``folder``, each file atomically; returns the folder."""
    from safetensors.torch import save_file

    out = Path(folder)
    out.mkdir(parents=True, exist_ok=True)
    tensors = {k: v.detach().to("cpu").contiguous() for k, v in state.items()}
    # One metadata key only: safetensors writes its metadata map in hash order, so with several keys the
    # same weights could give different bytes (and checksums) from one save to the next.
    with atomic_path(out / WEIGHTS_NAME) as tmp:
        save_file(tensors, str(tmp), metadata={"format": "pt"})
        config.checksum = file_digest(tmp)
    with atomic_path(out / CONFIG_NAME) as tmp_cfg:
        config.save(tmp_cfg)
    return out


def load_model_folder(folder: str | os.PathLike[str], *,
                      verify_checksum: bool = True) -> tuple[ModelConfig, dict[str, Tensor]]:
    """Read a model folder: its config and its tensors (keys prefixed, see :data:`PREFIXES`).

    Raises :class:`WeightsError` subclasses that name the file and the problem: not a folder, a missing
    or pickled weights file, a weights file whose SHA-256 differs from the config's
    (:class:`ChecksumError`), an unreadable safetensors file, a bad config (:class:`ConfigError`).
    """
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    root = Path(folder)
    if not root.is_dir():
        raise WeightsError(f"{root}: not a folder (expected {CONFIG_NAME} and {WEIGHTS_NAME} inside)")
    config = ModelConfig.load(root / CONFIG_NAME)
    weights = root / WEIGHTS_NAME
    if not weights.is_file():
        others = pickled_files(root)
        hint = (f" (found {others}: pickled weights are refused; convert them to safetensors)" if others
                else "")
        raise WeightsError(f"{weights}: missing weights file{hint}")
    with open(weights, "rb") as fh:
        head = fh.read(8)
    if any(head.startswith(m) for m in _PICKLE_MAGIC):
        raise WeightsError(f"{weights}: this is a pickle/zip file, not safetensors; it was not loaded")
    if verify_checksum and config.checksum:
        actual = file_digest(weights)
        if actual != config.checksum:
            raise ChecksumError(
                f"{weights}: SHA-256 {actual[:16]}... does not match the checksum in {root / CONFIG_NAME} "
                f"({config.checksum[:16]}...); the file is corrupt or was replaced"
            )
    try:
        state = load_file(str(weights))
    except (SafetensorError, OSError, ValueError) as exc:
        raise WeightsError(f"{weights}: not a readable safetensors file ({exc})") from exc
    return config, state


# -------------------------------------------------------------------------------- versioned JSON manifests


@dataclass(frozen=True)
class ManifestFormat:
    """A JSON format that names itself: ``{"format": name, version_key: version, ...}``.

    ``what`` describes a file of the format in messages ("an ONNX export of latentface-sdk");
    ``error`` is the typed error raised for a file that is not one, or of a version not in
    ``reads`` (default: 1 up to ``version``). Every file is written as UTF-8 JSON with sorted keys.
    """

    name: str
    version: int
    what: str
    error: type[LatentFaceError]
    version_key: str = "version"
    reads: tuple[int, ...] = ()

    @property
    def read_versions(self) -> tuple[int, ...]:
        """The versions this package reads."""
        return self.reads or tuple(range(1, self.version + 1))

    def stamp(self, body: Mapping[str, Any]) -> dict[str, Any]:
        """``body`` with this format's name and current version (a body's own ``format``/version keys
        are overwritten)."""
        return {**body, "format": self.name, self.version_key: self.version}

    def dumps(self, body: Mapping[str, Any], *, indent: int | None = 1) -> str:
        """:meth:`stamp` ed ``body`` as JSON text (sorted keys; ``indent=None``: one compact line)."""
        text = json.dumps(self.stamp(body), indent=indent, sort_keys=True, ensure_ascii=False,
                          separators=None if indent is not None else (",", ":"))
        return text + "\n" if indent is not None else text

    def write(self, path: str | os.PathLike[str], body: Mapping[str, Any], *, indent: int | None = 1) -> Path:
        """Write :meth:`dumps` of ``body`` to ``path`` atomically; returns the path."""
        return atomic_write_bytes(path, self.dumps(body, indent=indent).encode("utf-8"))

    def check(self, data: Any, source: str) -> dict[str, Any]:
        """``data`` when it is a manifest of this format in a version this package reads; otherwise
        :attr:`error` naming ``source``, the format and the versions read."""
        if not isinstance(data, dict) or data.get("format") != self.name:
            found = data.get("format") if isinstance(data, dict) else type(data).__name__
            raise self.error(f"{source}: not {self.what} (format {self.name!r} expected, found {found!r})")
        version = data.get(self.version_key)
        if isinstance(version, bool) or not isinstance(version, int) or version not in self.read_versions:
            reads = ", ".join(str(v) for v in self.read_versions)
            newer = isinstance(version, int) and not isinstance(version, bool) and version > self.version
            why = ("is newer than this latentface-sdk reads; update latentface-sdk" if newer
                   else "is not one this latentface-sdk reads")
            raise self.error(f"{source}: {self.what}, {self.version_key} {version!r} {why} "
                             f"(it reads {reads})")
        return data

    def loads(self, text: str | bytes, source: str) -> dict[str, Any]:
        """Parse and :meth:`check` a manifest's text."""
        try:
            data = json.loads(text)
        except ValueError as exc:  # JSONDecodeError and UnicodeDecodeError
            raise self.error(f"{source}: not valid JSON ({exc})") from None
        return self.check(data, source)

    def read(self, path: str | os.PathLike[str]) -> dict[str, Any]:
        """Read and :meth:`check` the manifest file at ``path``."""
        try:
            text = Path(path).read_bytes()
        except OSError as exc:
            raise self.error(f"{path}: no readable {Path(path).name} ({exc.strerror or exc})") from None
        return self.loads(text, str(path))

    def recognises(self, path: str | os.PathLike[str]) -> bool:
        """True when ``path`` is a JSON file that says it is of this format (any version)."""
        try:
            data = json.loads(Path(path).read_bytes())
        except (OSError, ValueError):
            return False
        return isinstance(data, dict) and data.get("format") == self.name


#: The card (``config.json``) of an ONNX export folder (:mod:`latentface_sdk.deploy.export`).
ONNX_CARD = ManifestFormat("latentface-onnx", 1, "an ONNX export of latentface-sdk", OnnxFormatError,
                           version_key="format_version")
#: ``manifest.json`` of a stage-1 training bundle (:mod:`latentface_sdk.train.bundle`).
TRAINING_BUNDLE = ManifestFormat("latentface-stage1-bundle", 1, "a stage-1 training bundle", DataError)
#: ``checkpoint.index.json`` of a checkpoint in parts (:mod:`latentface_sdk.train.parts`).
CHECKPOINT_PARTS = ManifestFormat("latentface-checkpoint-parts", 1, "a checkpoint in parts", WeightsError)
