"""latentface-sdk: self-supervised 3D-aware facial representations (LatentFace).

The public surface: :class:`FaceEncoder` (load weights, then ``encode``, ``disentangle``, ``frontalize``,
``render``, ``expression_features``), its typed results (:class:`Encoding`, :class:`Disentangled`,
:class:`ExpressionFeatures`, :class:`Frontalized`) and the
errors (:class:`LatentFaceError` and its children).

``FaceEncoder`` and the result types are imported on first use, so that ``import latentface_sdk`` (and
``latentface --help``) stays light: torch and diffusers load only when the model is needed.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

from . import errors
from ._version import __version__
from .errors import *  # noqa: F403 - every error type, named once (in errors.__all__)

if TYPE_CHECKING:
    from .catalog import list_pretrained
    from .deploy.export import export_onnx
    from .deploy.runtime import OnnxFaceEncoder
    from .encoder import FaceEncoder
    from .results import Disentangled, Encoding, ExpressionFeatures, FaceMeshes, Frontalized
    from .video import VideoDecodeError, VideoEncoding

_LAZY = {
    "FaceEncoder": ".encoder",
    "OnnxFaceEncoder": ".deploy.runtime",
    "export_onnx": ".deploy.export",
    "list_pretrained": ".catalog",
    "Encoding": ".results",
    "Disentangled": ".results",
    "ExpressionFeatures": ".results",
    "Frontalized": ".results",
    "FaceMeshes": ".results",
    "VideoEncoding": ".video",
    "VideoDecodeError": ".video",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        value = getattr(import_module(_LAZY[name], __name__), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))


__all__ = [
    "__version__",
    "FaceEncoder",
    "OnnxFaceEncoder",
    "export_onnx",
    "list_pretrained",
    "Encoding",
    "Disentangled",
    "ExpressionFeatures",
    "Frontalized",
    "FaceMeshes",
    "VideoEncoding",
    "VideoDecodeError",
]
__all__ += errors.__all__  # LatentFaceError and its children, in the order errors.py lists them
