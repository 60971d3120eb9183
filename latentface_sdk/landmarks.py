"""Pure functions on MTCNN's five facial landmarks (eyes, nose, mouth corners).

Landmarks are ``(..., 5, 2)`` arrays or tensors of ``(u, v)`` in a face crop's ``[-1, 1]``
coordinates (see :func:`latentface_sdk.detection.landmarks_in_crop`), in MTCNN's order: the eye
and the mouth corner on the image's left first (``0`` left eye, ``1`` right eye, ``2`` nose,
``3`` left mouth corner, ``4`` right mouth corner).

They serve three jobs: the stage-1 landmark reprojection loss (:func:`canonical_keypoints` gives the
fixed 3D anchor positions in the canonical face), the augmentation that mirrors crops
(:func:`mirror_landmarks`) and the pose checks (:func:`yaw_estimate`, :func:`roll_estimate`: a model's
head pose should agree with these model-free estimates).
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import Tensor

#: Index order of the five landmarks after a left-right mirror (the eyes and the mouth corners swap).
MIRROR_ORDER = (1, 0, 2, 4, 3)


def mirror_landmarks(points: Tensor) -> Tensor:
    """Landmarks (..., 5, 2) of the horizontally mirrored crop."""
    flipped = points[..., list(MIRROR_ORDER), :].clone()
    flipped[..., 0] = -flipped[..., 0]
    return flipped


def yaw_estimate(points: np.ndarray | Tensor) -> np.ndarray:
    """Model-free yaw proxy ``(eye_mid_u - nose_u) / interocular distance`` per face (..., 5, 2) -> (...).

    About 0 for a frontal face and growing to about +-0.5 at a profile-like turn. Its sign follows the
    model's yaw (:mod:`latentface_sdk.render.geometry`): a positive yaw turns the nose, which lies in
    front of the face's centre, towards the image's left, so the estimate is positive when the nose
    lies left of the eyes' midpoint. The offset is measured along the eye line, so a head that is
    also rolled (tilted in the image plane) gets the same estimate as upright.
    """
    p = np.asarray(points, dtype=np.float64)
    eye_mid = (p[..., 0, :] + p[..., 1, :]) / 2.0
    eye_line = p[..., 1, :] - p[..., 0, :]
    iod = np.maximum(np.linalg.norm(eye_line, axis=-1), 1e-6)
    along = ((eye_mid - p[..., 2, :]) * eye_line).sum(axis=-1) / iod
    return along / iod


def roll_estimate(points: np.ndarray | Tensor) -> np.ndarray:
    """Angle of the line from the left to the right eye in degrees (..., 5, 2) -> (...); 0 when level.

    Positive when the eye on the image's right is lower (v points down): the sign of the model's roll,
    which turns points on the right of the face downwards.
    """
    p = np.asarray(points, dtype=np.float64)
    d = p[..., 1, :] - p[..., 0, :]
    return np.degrees(np.arctan2(d[..., 1], d[..., 0]))


def canonical_keypoints(points: np.ndarray, max_abs_yaw: float = 0.05) -> np.ndarray:
    """The five canonical keypoint positions (5, 2): symmetrised mean landmarks of near-frontal faces.

    Faces whose :func:`yaw_estimate` is within ``max_abs_yaw`` and whose landmarks are finite are
    averaged (when there are none, the most frontal tenth of the faces); the mean and its mirror image
    are averaged again, so the result is exactly left-right symmetric (eyes and mouth corners mirror each
    other, the nose lies on ``u = 0``).
    """
    p = np.asarray(points, dtype=np.float64).reshape(-1, 5, 2)
    finite = np.asarray(np.isfinite(p).all(axis=(1, 2)), dtype=bool)
    yaw = yaw_estimate(np.where(finite[:, None, None], p, 0.0))
    if not finite.any():
        raise ValueError(f"no finite landmark sets among {len(p)}")
    frontal: np.ndarray = finite & (np.abs(yaw) <= max_abs_yaw)
    if not frontal.any():  # a small or turned set: its most frontal tenth (at least one face)
        order = np.argsort(np.where(finite, np.abs(yaw), np.inf))
        frontal = np.zeros(len(p), dtype=bool)
        frontal[order[: max(1, int(np.ceil(0.1 * finite.sum())))]] = True
    mean = p[frontal].mean(axis=0)
    mirrored = mirror_landmarks(torch.from_numpy(mean)).numpy()
    return ((mean + mirrored) / 2.0).astype(np.float32)


def pearson(a: np.ndarray, b: np.ndarray) -> float:
    """Pearson correlation of two 1-d arrays over the rows where both are finite (NaN if undefined)."""
    x, y = np.asarray(a, dtype=np.float64).ravel(), np.asarray(b, dtype=np.float64).ravel()
    keep = np.isfinite(x) & np.isfinite(y)
    x, y = x[keep], y[keep]
    if x.size < 3 or x.std() == 0 or y.std() == 0:
        return math.nan
    return float(np.corrcoef(x, y)[0, 1])
