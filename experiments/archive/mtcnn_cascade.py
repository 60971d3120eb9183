"""A prototype MTCNN cascade over images of any sizes, written to measure two levers of issue 15.

Not used by the SDK (``latentface_sdk.detection.FaceDetector`` runs ``facenet_pytorch.MTCNN.detect`` on
each group of same-size images). ``experiments/detection_levers.py`` times it against that, and counts the
faces it finds. Both levers were dropped; the prototype is archived here with the reasons
(``experiments/archive/README.md``) and is not run by the benchmark suite.

MTCNN (Zhang et al., 2016) proposes faces with a small fully convolutional P-net slid over an image
pyramid, then refines the proposals with the R-net (24 px inputs) and the O-net (48 px inputs, which also
gives five landmarks). :class:`Cascade` runs those stages with the networks and weights of
``facenet_pytorch.MTCNN`` and the same rules as its ``detect``: pyramid factor 0.709 from
``12 / min_face_size``, thresholds 0.6 / 0.7 / 0.7, NMS 0.5 within a pyramid level and 0.7 across levels,
box regression, squaring, clipping to the image, and the final "min" NMS (ties taken in the same order).
With ``pyramid="full"``, one image per call, it finds facenet-pytorch's faces with the same boxes (equal,
or a float32 rounding step apart: tests/test_mtcnn_cascade.py); several images per call batch the R-net
and O-net convolutions, which round differently. The two levers:

* **batching across sizes**: the R-net and the O-net run once per call on the candidates of every image;
  facenet-pytorch batches only images of one size, so each photo of its own size paid for its own calls;
* **a chained pyramid** (``pyramid="chained"``): each level area-resampled from the smallest level
  already made that is at least twice its size, instead of from the full image each time. Its pixels
  differ from the full-image pyramid's (area resampling with uneven bins), so the faces found can change.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torchvision.ops import batched_nms, nms

__all__ = ["Cascade", "Detections", "pyramid_scales"]

#: P-net's stride and receptive field (cell) on a pyramid level.
_STRIDE, _CELL = 2, 12


def pyramid_scales(height: int, width: int, min_face_size: int, factor: float = 0.709) -> list[float]:
    """The image scales P-net runs at: from ``12 / min_face_size`` down by ``factor`` while the short side
    stays at least 12 px (P-net's window)."""
    scale = 12.0 / min_face_size
    side = min(height, width) * scale
    scales = []
    while side >= 12:
        scales.append(scale)
        scale *= factor
        side *= factor
    return scales


def _normalise(x: Tensor) -> Tensor:
    return (x - 127.5) * 0.0078125


def _square(boxes: Tensor) -> Tensor:
    """Boxes ``(N, >=4)`` made square around their centres (side = the longer side); other columns kept."""
    out = boxes.clone()
    w = boxes[:, 2] - boxes[:, 0]
    h = boxes[:, 3] - boxes[:, 1]
    side = torch.maximum(w, h)
    out[:, 0] = boxes[:, 0] + w * 0.5 - side * 0.5
    out[:, 1] = boxes[:, 1] + h * 0.5 - side * 0.5
    out[:, 2] = out[:, 0] + side
    out[:, 3] = out[:, 1] + side
    return out


def _regress(boxes: Tensor, offsets: Tensor) -> Tensor:
    """Apply the R-net/O-net box offsets ``(N, 4)``, in units of the box's inclusive width and height."""
    out = boxes.clone()
    w = boxes[:, 2] - boxes[:, 0] + 1
    h = boxes[:, 3] - boxes[:, 1] + 1
    out[:, 0] = boxes[:, 0] + offsets[:, 0] * w
    out[:, 1] = boxes[:, 1] + offsets[:, 1] * h
    out[:, 2] = boxes[:, 2] + offsets[:, 2] * w
    out[:, 3] = boxes[:, 3] + offsets[:, 3] * h
    return out


def _nms_min(boxes: np.ndarray, scores: np.ndarray, threshold: float) -> np.ndarray:
    """Greedy NMS where overlap is the intersection over the *smaller* box (inclusive pixel areas).

    Boxes are taken in the reverse of NumPy's default ``argsort`` of the scores, as facenet-pytorch
    does: O-net scores of clear faces often tie at exactly 1.0, and the order among ties decides which
    of two overlapping boxes is kept.
    """
    x1, y1, x2, y2 = (boxes[:, k] for k in range(4))
    area = (x2 - x1 + 1) * (y2 - y1 + 1)
    order = np.argsort(scores)[::-1]
    keep: list[int] = []
    while order.size:
        i, rest = order[0], order[1:]
        keep.append(int(i))
        iw = np.maximum(0.0, np.minimum(x2[i], x2[rest]) - np.maximum(x1[i], x1[rest]) + 1)
        ih = np.maximum(0.0, np.minimum(y2[i], y2[rest]) - np.maximum(y1[i], y1[rest]) + 1)
        overlap = iw * ih / np.minimum(area[i], area[rest])
        order = rest[overlap <= threshold]
    return np.asarray(keep, dtype=np.int64)


@dataclass
class Detections:
    """One image's faces: ``boxes`` ``(K, 4)`` ``(x1, y1, x2, y2)``, ``scores`` ``(K,)``, ``landmarks``
    ``(K, 5, 2)`` (float32 NumPy, image pixels), in the cascade's final order."""

    boxes: np.ndarray
    scores: np.ndarray
    landmarks: np.ndarray


class Cascade:
    """MTCNN detection with ``pnet``, ``rnet`` and ``onet`` (facenet-pytorch's modules); see the module
    doc."""

    def __init__(self, pnet: nn.Module, rnet: nn.Module, onet: nn.Module, *, min_face_size: int = 20,
                 thresholds: tuple[float, float, float] = (0.6, 0.7, 0.7), factor: float = 0.709,
                 pyramid: Literal["chained", "full"] = "full") -> None:
        if pyramid not in ("chained", "full"):
            raise ValueError(f"pyramid must be 'chained' or 'full' (got {pyramid!r})")
        self.pnet, self.rnet, self.onet = pnet, rnet, onet
        self.min_face_size = int(min_face_size)
        self.thresholds = thresholds
        self.factor = factor
        self.pyramid = pyramid

    @torch.inference_mode()
    def detect(self, images: Sequence[np.ndarray]) -> list[Detections]:
        """Faces in each RGB ``uint8`` ``(H, W, 3)`` image (any sizes)."""
        device = next(self.pnet.parameters()).device
        tensors = [torch.from_numpy(np.array(im, copy=True)).to(device).permute(2, 0, 1)[None].float()
                   for im in images]
        proposals = [self._propose(x) for x in tensors]
        boxes, owner = self._refine(tensors, proposals)
        return self._finish(tensors, boxes, owner, len(images))

    # -- stage 1: P-net over the pyramid ----------------------------------------------------------------
    def _levels(self, x: Tensor) -> list[tuple[float, Tensor]]:
        h, w = x.shape[2], x.shape[3]
        levels: list[tuple[float, Tensor]] = []
        for scale in pyramid_scales(h, w, self.min_face_size, self.factor):
            size = (int(h * scale + 1), int(w * scale + 1))
            source = x
            if self.pyramid == "chained":
                big = [lv for _, lv in levels if lv.shape[2] >= 2 * size[0] and lv.shape[3] >= 2 * size[1]]
                source = big[-1] if big else x
            levels.append((scale, F.interpolate(source, size=size, mode="area")))
        return levels

    def _propose(self, x: Tensor) -> Tensor:
        """P-net proposals of one image ``(1, 3, H, W)``: squared boxes ``(K, 5)`` (with the score)."""
        found: list[Tensor] = []
        for scale, level in self._levels(x):
            offsets, probs = self.pnet(_normalise(level))
            face = probs[0, 1]
            where = (face >= self.thresholds[0]).nonzero()  # (K, 2) rows of (y, x)
            if where.shape[0] == 0:
                continue
            score = face[where[:, 0], where[:, 1]]
            reg = offsets[0][:, where[:, 0], where[:, 1]].T
            cell = where.flip(1).to(score.dtype)  # (x, y)
            top_left = ((_STRIDE * cell + 1) / scale).floor()
            bottom_right = ((_STRIDE * cell + _CELL) / scale).floor()
            boxes = torch.cat([top_left, bottom_right, score[:, None], reg], dim=1)
            found.append(boxes[nms(boxes[:, :4], boxes[:, 4], 0.5)])
        if not found:
            return x.new_zeros((0, 5))
        boxes = torch.cat(found)
        boxes = boxes[nms(boxes[:, :4], boxes[:, 4], 0.7)]
        w = boxes[:, 2] - boxes[:, 0]
        h = boxes[:, 3] - boxes[:, 1]
        moved = torch.stack([boxes[:, 0] + boxes[:, 5] * w, boxes[:, 1] + boxes[:, 6] * h,
                             boxes[:, 2] + boxes[:, 7] * w, boxes[:, 3] + boxes[:, 8] * h, boxes[:, 4]],
                            dim=1)
        return _square(moved)

    # -- cutting candidates ------------------------------------------------------------------------------
    @staticmethod
    def _cut(tensors: Sequence[Tensor], boxes: Tensor, owner: Tensor, size: int) -> tuple[Tensor, Tensor]:
        """Each box's pixels (clipped to its image, 1-based box corners as in MTCNN) area-resampled to
        ``size``; returns the stacked inputs and which boxes had pixels."""
        corners = boxes[:, :4].trunc().to(torch.int64).cpu().numpy()
        images = owner.cpu().numpy()
        cuts: list[Tensor] = []
        kept: list[int] = []
        for k, ((x, y, ex, ey), i) in enumerate(zip(corners, images, strict=True)):
            h, w = tensors[i].shape[2], tensors[i].shape[3]
            x, y, ex, ey = max(int(x), 1), max(int(y), 1), min(int(ex), w), min(int(ey), h)
            if ey > y - 1 and ex > x - 1:
                cuts.append(F.interpolate(tensors[i][:, :, y - 1:ey, x - 1:ex], size=(size, size),
                                          mode="area"))
                kept.append(k)
        keep = torch.as_tensor(kept, dtype=torch.long, device=boxes.device)
        if not cuts:
            return boxes.new_zeros((0, 3, size, size)), keep
        return _normalise(torch.cat(cuts)), keep

    # -- stage 2: R-net on every image's proposals at once ----------------------------------------------
    def _refine(self, tensors: Sequence[Tensor], proposals: Sequence[Tensor]) -> tuple[Tensor, Tensor]:
        boxes = torch.cat(list(proposals))
        owner = torch.cat([torch.full((p.shape[0],), i, dtype=torch.long, device=p.device)
                           for i, p in enumerate(proposals)])
        inputs, keep = self._cut(tensors, boxes, owner, 24)
        if keep.numel() == 0:
            return boxes[:0], owner[:0]
        boxes, owner = boxes[keep], owner[keep]
        offsets, probs = self.rnet(inputs)
        score = probs[:, 1]
        ok = score > self.thresholds[1]
        boxes = torch.cat([boxes[ok, :4], score[ok, None]], dim=1)
        owner, offsets = owner[ok], offsets[ok]
        pick = batched_nms(boxes[:, :4], boxes[:, 4], owner, 0.7)
        return _square(_regress(boxes[pick], offsets[pick])), owner[pick]

    # -- stage 3: O-net, landmarks, final NMS -----------------------------------------------------------
    def _finish(self, tensors: Sequence[Tensor], boxes: Tensor, owner: Tensor,
                count: int) -> list[Detections]:
        empty = Detections(np.zeros((0, 4), np.float32), np.zeros((0,), np.float32),
                           np.zeros((0, 5, 2), np.float32))
        out = [empty] * count
        if boxes.shape[0] == 0:
            return out
        inputs, keep = self._cut(tensors, boxes, owner, 48)
        if keep.numel() == 0:
            return out
        boxes, owner = boxes[keep], owner[keep]
        offsets, points, probs = self.onet(inputs)
        score = probs[:, 1]
        ok = score > self.thresholds[2]
        boxes = torch.cat([boxes[ok, :4], score[ok, None]], dim=1)
        owner, offsets, points = owner[ok], offsets[ok], points[ok]
        w = (boxes[:, 2] - boxes[:, 0] + 1)[:, None]
        h = (boxes[:, 3] - boxes[:, 1] + 1)[:, None]
        marks = torch.stack([w * points[:, :5] + boxes[:, 0:1] - 1, h * points[:, 5:] + boxes[:, 1:2] - 1],
                            dim=2)
        boxes = _regress(boxes, offsets)
        b, m, o = boxes.cpu().numpy(), marks.cpu().numpy(), owner.cpu().numpy()
        for i in np.unique(o):
            rows = np.flatnonzero(o == i)
            pick = rows[_nms_min(b[rows, :4], b[rows, 4], 0.7)]
            out[int(i)] = Detections(b[pick, :4].astype(np.float32), b[pick, 4].astype(np.float32),
                                     m[pick].astype(np.float32))
        return out
