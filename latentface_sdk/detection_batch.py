"""MTCNN over a batch of differently sized images: the ``mixed_sizes="pad"`` path of
:class:`~latentface_sdk.detection.FaceDetector`.

facenet-pytorch's ``detect_face`` takes one stack of equal-size images and, in its second and third
stages, cuts and resizes every candidate box in a Python loop (two small kernels per box: on a GPU the
launches, not the arithmetic, set the speed). This module runs the same three networks with the same
rules on images of any sizes at once, in a fixed number of tensor operations per stage:

* **Pyramid.** Each image keeps its own scale pyramid (``12 / min_face_size`` times ``factor`` per level,
  while the short side stays >= 12 px: the rule of ``detect_face``; the scales form one sequence, so an
  image's pyramid is a prefix of it). At level ``k`` every image that has that level is resized on its
  own to ``(int(h * s + 1), int(w * s + 1))``, the size ``detect_face`` uses, and placed at the top left
  of a shared zero canvas (bottom/right padding: no coordinate shifts).
* **Area resizing from integral images.** ``detect_face`` resizes with ``interpolate(mode="area")``
  (adaptive average pooling: output pixel ``i`` averages input rows ``floor(i * H / h)`` to
  ``ceil((i + 1) * H / h)``). Here the same windows are summed exactly from a per-image integer
  summed-area table and divided by the window size, for whole images (the pyramid) and for every
  candidate box (24x24 for RNet, 48x48 for ONet) in one gather each.
* **PNet without the padding.** PNet's first max-pool has ``ceil_mode``: an odd-sized map ends in a
  one-pixel window. The first layer's outputs past each image's own extent are set to ``-inf`` before
  that pool, so every kept output sees only the image's pixels; outputs past the image are discarded.
* **Boxes clipped to their own image.** The crops of stages 2 and 3 are clipped to the box's image
  (``detect_face``'s ``pad`` with that image's width and height), never to the canvas, and each image's
  final "Min" NMS runs alone.

So no padded pixel reaches a network output that is kept, and an image's faces do not depend on the
other images of the batch, up to float rounding (batched convolutions may sum in another order).
The helpers of facenet-pytorch's ``detect_face`` (box generation, regression, squaring, NMS; in
:mod:`latentface_sdk.mtcnn`) are reused as they are.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from .mtcnn import batched_nms, batched_nms_numpy, bbreg, generateBoundingBox, rerec

__all__ = ["detect_mixed", "pyramid_scales", "size_buckets"]

#: At most this many canvas pixels (batch x height x width) per MTCNN call of the padded path.
MAX_CANVAS_PIXELS = 48_000_000
#: A bucket's canvas may hold at most this many times the pixels of its images.
MAX_PADDING_RATIO = 1.5


def pyramid_scales(height: int, width: int, min_face_size: int, factor: float) -> list[float]:
    """The PNet scales ``detect_face`` uses for an image of this size (same arithmetic, same order)."""
    m = 12.0 / min_face_size
    minl = min(height, width) * m
    scale = m
    scales: list[float] = []
    while minl >= 12:
        scales.append(scale)
        scale = scale * factor
        minl = minl * factor
    return scales


def size_buckets(
    sizes: Sequence[tuple[int, int]], max_batch: int, *, max_ratio: float = MAX_PADDING_RATIO,
    max_pixels: int = MAX_CANVAS_PIXELS,
) -> list[list[int]]:
    """Indices of ``(height, width)`` sizes grouped so that each group's shared canvas stays small.

    Images are taken portrait/landscape apart, largest first; a group grows while it holds fewer than
    ``max_batch`` images, its canvas (count x max height x max width) is at most ``max_ratio`` times
    the pixels of its images and at most ``max_pixels`` (a single image is always accepted).
    """
    order = sorted(range(len(sizes)), key=lambda i: (sizes[i][0] >= sizes[i][1], sizes[i][0] * sizes[i][1]),
                   reverse=True)
    buckets: list[list[int]] = []
    current: list[int] = []
    ch = cw = area = 0
    for i in order:
        h, w = sizes[i]
        nh, nw, narea = max(ch, h), max(cw, w), area + h * w
        canvas = (len(current) + 1) * nh * nw
        if current and (len(current) >= max_batch or canvas > max_ratio * narea or canvas > max_pixels):
            buckets.append(current)
            current, nh, nw, narea = [], h, w, h * w
        current.append(i)
        ch, cw, area = nh, nw, narea
    if current:
        buckets.append(current)
    return buckets


def _integral(images: Sequence[np.ndarray], device: torch.device) -> Tensor:
    """``(B, H + 1, W + 1, 3)`` integer summed-area tables of uint8 RGB images on a shared zero canvas."""
    hmax = max(im.shape[0] for im in images)
    wmax = max(im.shape[1] for im in images)
    canvas = np.zeros((len(images), hmax, wmax, 3), dtype=np.uint8)
    for b, im in enumerate(images):
        canvas[b, : im.shape[0], : im.shape[1]] = im
    dtype = torch.int32 if 255 * hmax * wmax < 2**31 else torch.int64  # exact either way
    x = torch.from_numpy(canvas).to(device).to(dtype)
    sat = x.cumsum(1, dtype=dtype).cumsum(2, dtype=dtype)
    return F.pad(sat, (0, 0, 1, 0, 1, 0))


def _area_resize(
    sat: Tensor, image: Tensor, y0: Tensor, y1: Tensor, x0: Tensor, x1: Tensor,
    out_h: Tensor, out_w: Tensor, height: int, width: int,
) -> Tensor:
    """Rectangles ``[y0, y1) x [x0, x1)`` of images ``image`` area-resized to ``(out_h, out_w)`` each.

    All arguments but ``sat``, ``height`` and ``width`` are ``(N,)`` integer tensors. Returns float32
    ``(N, 3, height, width)``; rows/columns past a rectangle's own output size repeat its last ones.
    The windows are those of ``adaptive_avg_pool2d``; sums are exact (integers), then divided by the
    window's height and width.
    """
    dev = sat.device

    def windows(start: Tensor, stop: Tensor, n_out: Tensor, size: int) -> tuple[Tensor, Tensor]:
        i = torch.arange(size, device=dev)[None, :]
        n = n_out[:, None]
        span = (stop - start)[:, None]
        i = torch.minimum(i, n - 1)
        lo = start[:, None] + torch.div(i * span, n, rounding_mode="floor")
        hi = start[:, None] + torch.div((i + 1) * span + n - 1, n, rounding_mode="floor")
        return lo, hi

    rs, re = windows(y0, y1, out_h, height)  # (N, height)
    cs, ce = windows(x0, x1, out_w, width)  # (N, width)
    b = image[:, None, None]

    def at(r: Tensor, c: Tensor) -> Tensor:
        return sat[b, r[:, :, None], c[:, None, :]]  # (N, height, width, 3)

    sums = at(re, ce) - at(rs, ce) - at(re, cs) + at(rs, cs)
    kh = (re - rs).to(torch.float32)[:, :, None, None]
    kw = (ce - cs).to(torch.float32)[:, None, :, None]
    return (sums.to(torch.float32) / kh / kw).permute(0, 3, 1, 2)


def _normalise(x: Tensor) -> Tensor:
    return (x - 127.5) * 0.0078125


def _pnet(pnet: Any, x: Tensor, out_h: Tensor, out_w: Tensor) -> tuple[Tensor, Tensor]:
    """PNet on a padded ``(n, 3, H, W)`` canvas whose images are ``out_h x out_w`` at its top left.

    Returns the box regression ``(n, 4, h', w')`` and the face probability ``(n, h', w')``, the latter
    zero wherever the output's receptive field leaves the image.
    """
    dev = x.device
    y = pnet.prelu1(pnet.conv1(x))
    ch, cw = out_h - 2, out_w - 2  # each image's own extent after the 3x3 convolution
    rows = torch.arange(y.shape[2], device=dev)[None, :, None] < ch[:, None, None]
    cols = torch.arange(y.shape[3], device=dev)[None, None, :] < cw[:, None, None]
    y = y.masked_fill(~(rows & cols)[:, None], float("-inf"))
    y = pnet.pool1(y)
    ph, pw = torch.div(ch + 1, 2, rounding_mode="floor"), torch.div(cw + 1, 2, rounding_mode="floor")
    rows = torch.arange(y.shape[2], device=dev)[None, :, None] < ph[:, None, None]
    cols = torch.arange(y.shape[3], device=dev)[None, None, :] < pw[:, None, None]
    y = y.masked_fill(~(rows & cols)[:, None], 0.0)  # windows wholly past the image: -inf -> 0
    y = pnet.prelu3(pnet.conv3(pnet.prelu2(pnet.conv2(y))))
    reg = pnet.conv4_2(y)
    prob = pnet.softmax4_1(pnet.conv4_1(y))[:, 1]
    rows = torch.arange(prob.shape[1], device=dev)[None, :, None] < (ph - 4)[:, None, None]
    cols = torch.arange(prob.shape[2], device=dev)[None, None, :] < (pw - 4)[:, None, None]
    return reg, prob.masked_fill(~(rows & cols), 0.0)


def _crops(sat: Tensor, boxes: Tensor, image: Tensor, hw: Tensor, size: int) -> tuple[Tensor, Tensor]:
    """The normalised ``size x size`` network inputs of ``boxes`` (clipped to their own image, as
    ``detect_face``'s ``pad``) and the mask of the boxes kept (those whose clipped crop is not empty)."""
    q = boxes[:, :4].trunc().to(torch.int64)
    h, w = hw[image, 0], hw[image, 1]
    x0 = q[:, 0].clamp(min=1) - 1
    y0 = q[:, 1].clamp(min=1) - 1
    x1 = torch.minimum(q[:, 2], w)
    y1 = torch.minimum(q[:, 3], h)
    keep = (y1 > y0) & (x1 > x0)
    n = int(keep.sum())
    if n == 0:
        return torch.zeros((0, 3, size, size), device=sat.device), keep
    full = torch.full((n,), size, dtype=torch.int64, device=sat.device)
    x = _area_resize(sat, image[keep], y0[keep], y1[keep], x0[keep], x1[keep], full, full, size, size)
    return _normalise(x), keep


def _run_chunks(net: Any, x: Tensor, chunk: int = 4096) -> tuple[Tensor, ...]:
    """``net`` on ``x`` in chunks of rows (bounded memory), outputs concatenated."""
    parts = [net(x[s : s + chunk]) for s in range(0, x.shape[0], chunk)]
    return tuple(torch.cat(v, dim=0) for v in zip(*parts, strict=True))


def detect_mixed(
    mtcnn: Any, images: Sequence[np.ndarray], device: torch.device,
) -> list[tuple[np.ndarray, np.ndarray]]:
    """MTCNN on uint8 RGB ``(H_i, W_i, 3)`` images of any sizes in one pass.

    ``mtcnn`` is a :class:`latentface_sdk.mtcnn.MTCNN` (its networks, ``min_face_size``, ``thresholds`` and
    ``factor`` are used). Returns per image ``(boxes, points)`` like ``detect_face``: float32 ``(n, 5)``
    (``x1, y1, x2, y2, score``) and ``(n, 5, 2)``, in no particular order.
    """
    pnet, rnet, onet = mtcnn.pnet, mtcnn.rnet, mtcnn.onet
    thresholds: Sequence[float] = mtcnn.thresholds
    n_img = len(images)
    if n_img == 0:
        return []
    sat = _integral(images, device)
    sizes = [(int(im.shape[0]), int(im.shape[1])) for im in images]
    hw = torch.tensor(sizes, dtype=torch.int64, device=device)
    pyramids = [pyramid_scales(h, w, mtcnn.min_face_size, mtcnn.factor) for h, w in sizes]

    # Stage 1: PNet over each level of the pyramids, the images that have the level together.
    found: list[Tensor] = []
    owners: list[Tensor] = []
    for level in range(max((len(p) for p in pyramids), default=0)):
        members = [i for i, p in enumerate(pyramids) if len(p) > level]
        scale = pyramids[members[0]][level]
        out = [(int(sizes[i][0] * scale + 1), int(sizes[i][1] * scale + 1)) for i in members]
        idx = torch.tensor(members, dtype=torch.int64, device=device)
        oh = torch.tensor([o[0] for o in out], dtype=torch.int64, device=device)
        ow = torch.tensor([o[1] for o in out], dtype=torch.int64, device=device)
        zero = torch.zeros_like(idx)
        x = _area_resize(sat, idx, zero, hw[idx, 0], zero, hw[idx, 1], oh, ow,
                         max(o[0] for o in out), max(o[1] for o in out))
        reg, prob = _pnet(pnet, _normalise(x), oh, ow)
        boxes, local = generateBoundingBox(reg, prob, scale, thresholds[0])
        pick = batched_nms(boxes[:, :4], boxes[:, 4], local, 0.5)
        found.append(boxes[pick])
        owners.append(idx[local[pick]])
    if not found:
        return [(np.zeros((0, 5), np.float32), np.zeros((0, 5, 2), np.float32)) for _ in images]
    boxes = torch.cat(found)
    image = torch.cat(owners)
    pick = batched_nms(boxes[:, :4], boxes[:, 4], image, 0.7)
    boxes, image = boxes[pick], image[pick]
    regw = boxes[:, 2] - boxes[:, 0]
    regh = boxes[:, 3] - boxes[:, 1]
    boxes = torch.stack([boxes[:, 0] + boxes[:, 5] * regw, boxes[:, 1] + boxes[:, 6] * regh,
                         boxes[:, 2] + boxes[:, 7] * regw, boxes[:, 3] + boxes[:, 8] * regh, boxes[:, 4]],
                        dim=1)
    boxes = rerec(boxes)

    # Stage 2: RNet on 24x24 crops.
    if len(boxes):
        x, keep = _crops(sat, boxes, image, hw, 24)
        boxes, image = boxes[keep], image[keep]
        reg, prob = _run_chunks(rnet, x)
        score = prob[:, 1]
        ipass = score > thresholds[1]
        boxes = torch.cat((boxes[ipass, :4], score[ipass, None]), dim=1)
        image, reg = image[ipass], reg[ipass]
        pick = batched_nms(boxes[:, :4], boxes[:, 4], image, 0.7)
        boxes = rerec(bbreg(boxes[pick], reg[pick]))
        image = image[pick]

    # Stage 3: ONet on 48x48 crops: scores, box regression and the five landmarks.
    points = torch.zeros((0, 5, 2), device=device)
    if len(boxes):
        x, keep = _crops(sat, boxes, image, hw, 48)
        boxes, image = boxes[keep], image[keep]
        reg, marks, prob = _run_chunks(onet, x)
        score = prob[:, 1]
        ipass = score > thresholds[2]
        boxes = torch.cat((boxes[ipass, :4], score[ipass, None]), dim=1)
        image, reg, marks = image[ipass], reg[ipass], marks[ipass]
        w_i = (boxes[:, 2] - boxes[:, 0] + 1)[:, None]
        h_i = (boxes[:, 3] - boxes[:, 1] + 1)[:, None]
        px = w_i * marks[:, :5] + boxes[:, 0:1] - 1
        py = h_i * marks[:, 5:10] + boxes[:, 1:2] - 1
        points = torch.stack((px, py), dim=2)
        boxes = bbreg(boxes, reg)

    boxes_np = boxes.detach().cpu()
    points_np = points.detach().cpu()
    image_np = image.detach().cpu().numpy() if len(boxes) else np.zeros(0, dtype=np.int64)
    results: list[tuple[np.ndarray, np.ndarray]] = []
    for b in range(n_img):
        sel = np.flatnonzero(image_np == b)
        bx, pt = boxes_np[sel], points_np[sel]
        if len(sel):  # each image's final NMS alone ("Min" overlap, as detect_face)
            keep_b = batched_nms_numpy(bx[:, :4], bx[:, 4], torch.zeros(len(sel), dtype=torch.int64), 0.7,
                                       "Min")
            bx, pt = bx[keep_b], pt[keep_b]
        results.append((bx.numpy().reshape(-1, 5), pt.numpy().reshape(-1, 5, 2)))
    return results
