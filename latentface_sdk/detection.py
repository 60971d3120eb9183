"""Face detection (MTCNN) and the crop policy, shared by training and inference.

One rule turns a face box into the network input, :func:`crop_face`:

1. the box is made square around its centre, side ``max(w, h) * (1 + margin)`` (:func:`square_box`);
2. the square is cut from the image at sub-pixel precision; where it leaves the image the border
   pixels are **replicated** (edge padding), never filled with black, so that a face near the border
   does not get a hard artificial edge that the photometric loss would try to explain;
3. it is resized to ``size x size`` with PIL's bilinear filter, which antialiases when shrinking.

Already aligned face crops (``detect=False``) go through :func:`crop_aligned`: the centred square of
side ``min(H, W)``, resized the same way.

:class:`FaceDetector` wraps :class:`latentface_sdk.mtcnn.MTCNN`: facenet-pytorch's MTCNN (its networks,
cascade and weights, which ship with the SDK: nothing is downloaded) without facenet-pytorch or
torchvision, finding the faces facenet-pytorch finds. Faces are returned largest first, in the
coordinates of the image passed in, keeping those whose score is at least ``crop.threshold``.
:func:`latentface_sdk.cropset.prepare_crops` applies all of this to a data set (through the pipeline).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal, TypeAlias

import numpy as np
import torch
from PIL import Image

from .config import CropConfig
from .errors import InvalidImageError
from .images import downscale_for_detection

logger = logging.getLogger(__name__)

#: Method codes stored in :attr:`CropSet.method`.
METHOD_MTCNN = "mtcnn"  #: largest MTCNN face, cropped with :func:`crop_face`
METHOD_CENTER = "center"  #: centre crop (``detect=False``, or no face found and ``fallback="center"``)
METHOD_NOFACE = "noface"  #: readable, but no face found and ``fallback="none"``
METHOD_FAILED = "failed"  #: the file could not be read as an image

#: How :meth:`FaceDetector.detect_batch` batches images of different sizes (see :class:`FaceDetector`).
MixedSizes: TypeAlias = Literal["auto", "group", "pad"]



@dataclass
class FaceBox:
    """One detected face.

    ``box`` is ``(x1, y1, x2, y2)`` in pixels of the original image (continuous coordinates: pixel
    ``i`` spans ``[i, i + 1)``), ``score`` the MTCNN probability, ``landmarks`` the five points
    (eyes, nose, mouth corners) as a ``(5, 2)`` array of ``(x, y)``, or ``None``.
    """

    box: tuple[float, float, float, float]
    score: float
    landmarks: np.ndarray | None = None

    @property
    def width(self) -> float:
        return self.box[2] - self.box[0]

    @property
    def height(self) -> float:
        return self.box[3] - self.box[1]

    @property
    def area(self) -> float:
        return max(self.width, 0.0) * max(self.height, 0.0)


class FaceDetector:
    """MTCNN face detector returning :class:`FaceBox` lists, largest face first.

    ``crop.min_face_size`` goes to MTCNN and ``crop.threshold`` filters the final scores. Images
    whose long side exceeds ``max_side`` are downscaled for detection and the boxes mapped back.
    Inference only; the wrapped MTCNN is a plain ``nn.Module`` (``self.mtcnn``).

    ``mixed_sizes`` says how :meth:`detect_batch` batches images: ``"group"`` runs facenet-pytorch's MTCNN
    cascade (:mod:`latentface_sdk.mtcnn`) on groups of equal-size images (``max_batch`` at a time);
    ``"pad"`` runs images of any sizes together, in size buckets of at most ``max_batch``
    (:func:`latentface_sdk.detection_batch.detect_mixed`: each image keeps its own pyramid and crops, so
    its faces are those of ``"group"`` up to float rounding, in a fixed number of kernels per stage
    instead of two per candidate box); ``"auto"`` (default) is ``"pad"`` on CUDA and ``"group"`` elsewhere
    (the CPU results stay those of facenet-pytorch itself, bit for bit).
    """

    def __init__(
        self,
        crop: CropConfig | None = None,
        device: str | torch.device = "cpu",
        *,
        max_side: int = 1280,
        max_batch: int = 32,
        mixed_sizes: MixedSizes = "auto",
    ) -> None:
        from .mtcnn import MTCNN  # reads the networks' weights: deferred until a detector is built

        if mixed_sizes not in ("auto", "group", "pad"):
            raise ValueError(f"mixed_sizes must be 'auto', 'group' or 'pad' (got {mixed_sizes!r})")
        self.crop = crop if crop is not None else CropConfig()
        self.crop.validate()
        self.device = torch.device(device)
        self.max_side = max_side
        self.max_batch = max_batch
        self.mixed_sizes: MixedSizes = mixed_sizes
        self.mtcnn = MTCNN(
            select_largest=True,
            min_face_size=self.crop.min_face_size,
            device=self.device,
        ).eval()

    def to(self, device: str | torch.device) -> FaceDetector:
        """Move the detector to ``device`` (returns ``self``)."""
        self.device = torch.device(device)
        self.mtcnn.device = self.device
        self.mtcnn.to(self.device)
        return self

    def detect(self, rgb: np.ndarray) -> list[FaceBox]:
        """Faces in one RGB ``uint8`` ``(H, W, 3)`` image, largest first (may be empty)."""
        return self.detect_batch([rgb])[0]

    @property
    def padded(self) -> bool:
        """Whether :meth:`detect_batch` takes the padded path (``mixed_sizes``, ``"auto"`` resolved)."""
        if self.mixed_sizes == "auto":
            return self.device.type == "cuda"
        return self.mixed_sizes == "pad"

    def detect_batch(self, rgbs: Sequence[np.ndarray]) -> list[list[FaceBox]]:
        """Faces in each image: same-size images go through MTCNN together (``mixed_sizes="group"``), or
        images of any sizes in size buckets (``"pad"``; see the class).

        Images larger than ``max_side`` are downscaled first and their boxes mapped back.
        """
        prepared: list[tuple[np.ndarray, float]] = []
        for i, rgb in enumerate(rgbs):
            if not (
                isinstance(rgb, np.ndarray) and rgb.dtype == np.uint8 and rgb.ndim == 3 and rgb.shape[2] == 3
            ):
                raise InvalidImageError(
                    f"item {i}: the detector takes RGB uint8 HxWx3 arrays "
                    f"(got {type(rgb).__name__} {getattr(rgb, 'shape', '')}); convert with images.to_rgb"
                )
            prepared.append(downscale_for_detection(rgb, self.max_side))
        results: list[list[FaceBox]] = [[] for _ in prepared]
        usable = [i for i, (small, _) in enumerate(prepared)
                  if min(small.shape[:2]) >= self.crop.min_face_size]  # smaller images cannot hold a face
        if self.padded:
            from .detection_batch import detect_mixed, size_buckets

            sizes = [(prepared[i][0].shape[0], prepared[i][0].shape[1]) for i in usable]
            for bucket in size_buckets(sizes, self.max_batch):
                chunk = [usable[j] for j in bucket]
                with torch.inference_mode():
                    raw = detect_mixed(self.mtcnn, [prepared[i][0] for i in chunk], self.device)
                for i, (bx, pt) in zip(chunk, raw, strict=True):
                    results[i] = _rescale(self._faces(bx[:, :4], bx[:, 4], pt), prepared[i][1])
            return results
        groups: dict[tuple[int, ...], list[int]] = {}
        for i in usable:
            groups.setdefault(prepared[i][0].shape, []).append(i)
        for indices in groups.values():
            for start in range(0, len(indices), self.max_batch):
                chunk = indices[start : start + self.max_batch]
                batch = np.stack([prepared[i][0] for i in chunk])
                for i, faces in zip(chunk, self._run(batch), strict=True):
                    results[i] = _rescale(faces, prepared[i][1])
        return results

    def _run(self, batch: np.ndarray) -> list[list[FaceBox]]:
        """One MTCNN call on a ``(B, H, W, 3)`` uint8 batch -> faces per image (small-image coords)."""
        with torch.inference_mode():
            boxes, probs, points = self.mtcnn.detect(batch, landmarks=True)
        return [self._faces(boxes[b], probs[b], points[b]) if boxes[b] is not None else []
                for b in range(batch.shape[0])]

    def _faces(self, boxes: np.ndarray, probs: np.ndarray, points: np.ndarray) -> list[FaceBox]:
        """One image's MTCNN output (boxes ``(n, 4)``, scores ``(n,)``, landmarks ``(n, 5, 2)``) as the
        faces scoring at least ``crop.threshold``, largest first."""
        bx = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
        pr = np.asarray(probs, dtype=np.float64).reshape(-1)
        pt = np.asarray(points, dtype=np.float64).reshape(-1, 5, 2)
        faces: list[FaceBox] = []
        for k in range(bx.shape[0]):
            if pr[k] >= self.crop.threshold and np.isfinite(bx[k]).all():
                box = (float(bx[k, 0]), float(bx[k, 1]), float(bx[k, 2]), float(bx[k, 3]))
                faces.append(FaceBox(box=box, score=float(pr[k]), landmarks=pt[k].copy()))
        return sorted(faces, key=lambda f: (-f.area, -f.score))


def _rescale(faces: list[FaceBox], scale: float) -> list[FaceBox]:
    if scale == 1.0:
        return faces
    out = []
    for f in faces:
        box = (f.box[0] / scale, f.box[1] / scale, f.box[2] / scale, f.box[3] / scale)
        marks = None if f.landmarks is None else f.landmarks / scale
        out.append(FaceBox(box=box, score=f.score, landmarks=marks))
    return out


# ------------------------------------------------------------------------------------ the crop policy


def square_box(box: Sequence[float], margin: float) -> tuple[float, float, float, float]:
    """The square around ``box``'s centre with side ``max(w, h) * (1 + margin)``."""
    x1, y1, x2, y2 = (float(v) for v in box)
    side = max(x2 - x1, y2 - y1) * (1.0 + margin)
    cx, cy = (x1 + x2) / 2.0, (y1 + y2) / 2.0
    half = side / 2.0
    return (cx - half, cy - half, cx + half, cy + half)


def crop_face(rgb: np.ndarray, box: Sequence[float], crop: CropConfig) -> np.ndarray:
    """Cut the face in ``box`` out of ``rgb`` as a ``uint8`` ``(size, size, 3)`` network input.

    The square of :func:`square_box` (with ``crop.margin``) is taken with edge-replicate padding
    where it leaves the image and resized with PIL bilinear (antialiased). Pure function.
    """
    x1, y1, x2, y2 = square_box(box, crop.margin)
    if not all(math.isfinite(v) for v in (x1, y1, x2, y2)) or x2 - x1 <= 0:
        raise ValueError(f"cannot crop a degenerate face box {tuple(box)}")
    return _resample_square(rgb, (x1, y1, x2, y2), crop.size)


def landmarks_in_crop(landmarks: np.ndarray, box: Sequence[float], margin: float) -> np.ndarray:
    """Map landmarks ``(K, 2)`` in image pixels to the crop of ``box`` in ``(u, v)`` coordinates.

    The crop of :func:`crop_face` spans ``[-1, 1]`` in both directions (the convention of
    :mod:`latentface_sdk.render.geometry`); the result is ``float32 (K, 2)``. Pure function.
    """
    x1, y1, x2, y2 = square_box(box, margin)
    pts = np.asarray(landmarks, dtype=np.float64).reshape(-1, 2)
    u = (pts[:, 0] - x1) / (x2 - x1) * 2.0 - 1.0
    v = (pts[:, 1] - y1) / (y2 - y1) * 2.0 - 1.0
    return np.stack([u, v], axis=1).astype(np.float32)


def crop_aligned(rgb: np.ndarray, size: int = 64) -> np.ndarray:
    """For already aligned faces: the centred square of side ``min(H, W)``, resized to ``size``."""
    h, w = rgb.shape[:2]
    side = float(min(h, w))
    left, top = (w - side) / 2.0, (h - side) / 2.0
    return _resample_square(rgb, (left, top, left + side, top + side), size)


def _resample_square(rgb: np.ndarray, square: tuple[float, float, float, float], size: int) -> np.ndarray:
    """Resample the (float) square of ``rgb`` to ``size x size``, replicating edges outside the image."""
    x1, y1, x2, y2 = square
    h, w = rgb.shape[:2]
    # Take an integer window a little larger than the square (the filter reaches ~side/size pixels
    # beyond it), replicate the image border into the parts outside, and let PIL resample the
    # float square inside that window.
    pad = int(math.ceil((x2 - x1) / size)) + 2
    wx1, wy1 = int(math.floor(x1)) - pad, int(math.floor(y1)) - pad
    wx2, wy2 = int(math.ceil(x2)) + pad, int(math.ceil(y2)) + pad
    rows = np.clip(np.arange(wy1, wy2), 0, h - 1)  # clipped indices = edge replication
    cols = np.clip(np.arange(wx1, wx2), 0, w - 1)
    window = rgb[rows[:, None], cols[None, :]]
    box = (x1 - wx1, y1 - wy1, x2 - wx1, y2 - wy1)
    out = Image.fromarray(np.ascontiguousarray(window)).resize(
        (size, size), Image.Resampling.BILINEAR, box=box
    )
    return np.ascontiguousarray(np.asarray(out))


def select_faces(boxes: Sequence[FaceBox], policy: Literal["largest", "all"] = "largest") -> list[FaceBox]:
    """Apply the several-faces policy: ``"largest"`` keeps the largest face, ``"all"`` keeps all.

    Either way the result is ordered largest first; an empty input gives an empty list.
    """
    ordered = sorted(boxes, key=lambda f: (-f.area, -f.score))
    if policy == "largest":
        return ordered[:1]
    if policy == "all":
        return ordered
    raise ValueError(f"unknown face policy {policy!r}; use 'largest' or 'all'")


__all__ = [
    "METHOD_CENTER",
    "METHOD_FAILED",
    "METHOD_MTCNN",
    "METHOD_NOFACE",
    "FaceBox",
    "FaceDetector",
    "MixedSizes",
    "crop_aligned",
    "crop_face",
    "landmarks_in_crop",
    "select_faces",
    "square_box",
]
