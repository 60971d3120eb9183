"""Typed errors raised by latentface-sdk.

Every failure the SDK can foresee is a subclass of :class:`LatentFaceError`, so that callers can
catch them all at once, or one kind at a time. Each also derives from the closest built-in error
(``ValueError``, ``FileNotFoundError``, ...) so that generic handlers keep working.
:func:`read_data_text` reads a data file (pairs file, CSV): a missing or unreadable one is a
:class:`DataError`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pathlib import Path


class LatentFaceError(Exception):
    """Base class of every error raised on purpose by latentface-sdk."""


class InvalidImageError(LatentFaceError, ValueError):
    """An input could not be read or interpreted as an image (says which input and why)."""


class VideoFileError(InvalidImageError):
    """A video file was given where an image is expected; the message names the video API
    (:meth:`~latentface_sdk.FaceEncoder.encode_video`, ``latentface video``)."""


class ImageTooLargeError(InvalidImageError):
    """An image has more pixels than the configured limit (decompression-bomb guard)."""


class NoFaceError(LatentFaceError):
    """No face was found in an image that must contain one."""


class WeightsError(LatentFaceError):
    """Model weights or their config are missing, corrupt, unsafe or do not match the model."""


class ConfigError(WeightsError, ValueError):
    """A ``config.json`` is unreadable, has an unknown version or an invalid field."""


class ChecksumError(WeightsError):
    """A weights file does not match the checksum recorded in its config."""


class OfflineError(WeightsError, OSError):
    """Weights were requested from the Hugging Face Hub but are not cached and the Hub cannot be reached."""


class OnnxFormatError(WeightsError, ValueError):
    """A folder that is not a usable ONNX export: no card, another format, a missing or altered graph."""


class UnsupportedOperationError(LatentFaceError, NotImplementedError):
    """An operation the runtime behind an encoder cannot do (e.g. rendering on an ONNX export, which holds
    the encoders, the RDMs and the heads but not the decoders); the message says what to use instead."""


class DataError(LatentFaceError, ValueError):
    """A data set, manifest or pairs file used for training or evaluation is malformed."""


def read_data_text(path: Path, what: str = "", *, encoding: str = "utf-8") -> str:
    """The text of a data file (pairs file, CSV, ...); a :class:`DataError` naming it when it is missing or
    unreadable. ``what`` names the kind of file in the message (``"pairs file"``: "no such pairs file",
    "cannot read the pairs file (...)"; empty: "no such file", "cannot read (...)")."""
    try:
        return path.read_text(encoding=encoding)
    except FileNotFoundError:
        raise DataError(f"{path}: no such {what or 'file'}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise DataError(f"{path}: cannot read {f'the {what} ' if what else ''}({exc})") from exc


__all__ = [
    "LatentFaceError",
    "InvalidImageError",
    "VideoFileError",
    "ImageTooLargeError",
    "NoFaceError",
    "WeightsError",
    "ConfigError",
    "ChecksumError",
    "OfflineError",
    "OnnxFormatError",
    "UnsupportedOperationError",
    "DataError",
]
