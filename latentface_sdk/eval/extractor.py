"""The interface of a feature set: face crops in, one ``float32`` row per crop out.

Kept apart from the registry (:mod:`.features`) so that the baselines (:mod:`.baselines`) and the
registry both import it without importing each other.
"""

from __future__ import annotations

from abc import ABC, abstractmethod

import numpy as np

from ..config import CropConfig

__all__ = ["FeatureExtractor"]


class FeatureExtractor(ABC):
    """Computes one feature set from face crops."""

    #: the registry name (also names the cache files)
    name: str = ""
    #: extractors with the same ``cache_name`` compute identical features and share cache files
    cache_name: str = ""

    @abstractmethod
    def identity(self) -> str:
        """Everything the features depend on besides the crops (parameters, weights digest)."""

    def crop_config(self) -> CropConfig | None:
        """The crop policy this extractor was trained with, if it has one (models do)."""
        return None

    @abstractmethod
    def __call__(self, crops: np.ndarray, *, progress: bool = False) -> np.ndarray:
        """Features ``(N, D)`` ``float32`` of ``uint8`` crops ``(N, H, W, 3)``."""
