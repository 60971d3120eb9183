"""latentface-sdk: self-supervised 3D-aware facial representations (LatentFace)."""

from ._version import __version__
from .errors import (
    ChecksumError,
    ConfigError,
    DataError,
    ImageTooLargeError,
    InvalidImageError,
    LatentFaceError,
    NoFaceError,
    OfflineError,
    WeightsError,
)

__all__ = [
    "__version__",
    "LatentFaceError",
    "InvalidImageError",
    "ImageTooLargeError",
    "NoFaceError",
    "WeightsError",
    "ConfigError",
    "ChecksumError",
    "OfflineError",
    "DataError",
]
