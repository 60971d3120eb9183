"""MTCNN, the face detector, as facenet-pytorch 2.5.3 runs it, without facenet-pytorch or torchvision.

The three networks (PNet, RNet, ONet), the cascade :func:`detect_face` and :class:`MTCNN`'s ``detect``
are facenet-pytorch's (``facenet_pytorch/models/mtcnn.py`` and ``models/utils/detect_face.py`` of
release 2.5.3), computing what they compute in the same order (bit for bit, ``tests/test_mtcnn.py``) and
trimmed of what the SDK does not call (face extraction, PIL inputs, saving crops). The networks are one
class, :class:`CascadeNet`, built from each one's table of layers with facenet-pytorch's module names
(the weights' keys); the cascade's second and third stages share their crop and score steps. Their
weights are facenet-pytorch's ``data/{pnet,rnet,onet}.pt``, converted to
``weights/mtcnn/mtcnn.safetensors`` (provenance and checksums in its ``README.md``).

The one part that was not facenet-pytorch's own is torchvision's ``batched_nms``, which the cascade calls
for every pyramid level and twice more per batch: :func:`nms` and :func:`batched_nms` here are that
function (torchvision 0.27: the coordinate-offset trick up to 4,000 box coordinates on the CPU and
100,000 elsewhere, one NMS per image above) with its CPU kernel's arithmetic (stable descending sort by
score; IoU in the boxes' dtype, compared with the threshold in double precision), run on the CPU
whatever the boxes' device. On the CPU the faces found are therefore bit for bit those of facenet-pytorch
with torchvision (``tests/test_mtcnn.py`` compares them on real photos where both are installed); on
CUDA, where torchvision compared the IoU in single precision on the GPU, a box whose IoU lies within
rounding of a threshold may be kept or dropped differently.

Why: facenet-pytorch requires torchvision, and every torchvision release requires one exact torch
release, so that installing the SDK beside a torch without torchvision made pip replace that torch
(issue 39); PyPI's torchvision also does not load beside a CPU-only torch.

facenet-pytorch's licence (the networks and the cascade are derived from it):

    MIT License

    Copyright (c) 2019 Timothy Esler

    Permission is hereby granted, free of charge, to any person obtaining a copy of this software and
    associated documentation files (the "Software"), to deal in the Software without restriction,
    including without limitation the rights to use, copy, modify, merge, publish, distribute, sublicense,
    and/or sell copies of the Software, and to permit persons to whom the Software is furnished to do so,
    subject to the following conditions:

    The above copyright notice and this permission notice shall be included in all copies or substantial
    portions of the Software.

    THE SOFTWARE IS PROVIDED "AS IS", WITHOUT WARRANTY OF ANY KIND, EXPRESS OR IMPLIED, INCLUDING BUT NOT
    LIMITED TO THE WARRANTIES OF MERCHANTABILITY, FITNESS FOR A PARTICULAR PURPOSE AND NONINFRINGEMENT. IN
    NO EVENT SHALL THE AUTHORS OR COPYRIGHT HOLDERS BE LIABLE FOR ANY CLAIM, DAMAGES OR OTHER LIABILITY,
    WHETHER IN AN ACTION OF CONTRACT, TORT OR OTHERWISE, ARISING FROM, OUT OF OR IN CONNECTION WITH THE
    SOFTWARE OR THE USE OR OTHER DEALINGS IN THE SOFTWARE.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn
from torch.nn.functional import interpolate

from .errors import WeightsError

__all__ = ["MTCNN", "CascadeNet", "ConvSpec", "PNet", "RNet", "ONet", "batched_nms", "detect_face",
           "mtcnn_state", "nms", "weights_path"]

#: The file of the three networks' weights, inside the bundled weights folder.
WEIGHTS_FILE = Path("mtcnn") / "mtcnn.safetensors"


def weights_path() -> Path:
    """Where the MTCNN weights are (``weights/mtcnn/mtcnn.safetensors`` of a checkout, or the installed
    package's copy)."""
    from ._paths import bundled_weights_dir

    return bundled_weights_dir() / WEIGHTS_FILE


@lru_cache(maxsize=1)
def _read_state() -> dict[str, Tensor]:
    from safetensors.torch import load_file

    path = weights_path()
    try:
        return load_file(str(path))
    except Exception as exc:  # a missing or unreadable file: say which
        raise WeightsError(f"{path}: cannot read the MTCNN weights ({exc})") from exc


def mtcnn_state(net: str) -> dict[str, Tensor]:
    """The state dict of ``net`` (``"pnet"``, ``"rnet"`` or ``"onet"``), keyed as its module's; fresh
    tensors on every call."""
    prefix = f"{net}."
    state = {k[len(prefix):]: v.clone() for k, v in _read_state().items() if k.startswith(prefix)}
    if not state:
        raise WeightsError(f"{weights_path()}: no weights for {net!r}")
    return state


# ------------------------------------------------------------------------------------------ networks


#: One convolution layer of a network: (in channels, out channels, kernel size, the max-pool after its
#: PReLU as (kernel, stride), or ``None``).
ConvSpec = tuple[int, int, int, tuple[int, int] | None]


class CascadeNet(nn.Module):
    """What PNet, RNet and ONet share, with facenet-pytorch's module names (the weights' keys).

    ``conv{i}``, ``prelu{i}`` and ``pool{i}`` for each of ``convs``; with ``dense`` = (inputs, width) a
    ``dense{k}`` + ``prelu{k}`` layer on the channels-last flattened maps (RNet, ONet); then the heads of
    ``heads`` (their output sizes): the first, with ``softmax{k}_1``, the face probability, the second the
    box regression, ONet's third the five landmarks (1x1 convolutions ``conv{k}_{j}`` without ``dense``,
    linear layers ``dense{k}_{j}`` with it). :meth:`forward` returns the heads from the second on, then the
    probability (facenet-pytorch's order). With ``pretrained`` the shipped weights of ``net`` are loaded.
    """

    def __init__(self, net: str, convs: Sequence[ConvSpec], dense: tuple[int, int] | None,
                 heads: Sequence[int], pretrained: bool = True) -> None:
        super().__init__()
        self._layers: list[str] = []  # the trunk, in order
        for i, (c_in, c_out, kernel, pool) in enumerate(convs, start=1):
            self.add_module(f"conv{i}", nn.Conv2d(c_in, c_out, kernel_size=kernel))
            self.add_module(f"prelu{i}", nn.PReLU(c_out))
            self._layers += [f"conv{i}", f"prelu{i}"]
            if pool is not None:
                self.add_module(f"pool{i}", nn.MaxPool2d(pool[0], pool[1], ceil_mode=True))
                self._layers.append(f"pool{i}")
        k, width = len(convs) + 1, convs[-1][1]
        self._dense: tuple[str, str] | None = None
        if dense is not None:
            self.add_module(f"dense{k}", nn.Linear(dense[0], dense[1]))
            self.add_module(f"prelu{k}", nn.PReLU(dense[1]))
            self._dense = (f"dense{k}", f"prelu{k}")
            k, width = k + 1, dense[1]
        self._heads: list[str] = []
        for j, size in enumerate(heads, start=1):
            name = f"dense{k}_{j}" if dense is not None else f"conv{k}_{j}"
            self.add_module(name, nn.Linear(width, size) if dense is not None
                            else nn.Conv2d(width, size, kernel_size=1))
            self._heads.append(name)
            if j == 1:
                self.add_module(f"softmax{k}_1", nn.Softmax(dim=1))
                self._softmax = f"softmax{k}_1"
        self.training = False
        if pretrained:
            self.load_state_dict(mtcnn_state(net))

    def forward(self, x: Tensor) -> tuple[Tensor, ...]:
        for name in self._layers:
            x = self.get_submodule(name)(x)
        if self._dense is not None:
            dense, prelu = (self.get_submodule(n) for n in self._dense)
            x = x.permute(0, 3, 2, 1).contiguous()
            x = prelu(dense(x.view(x.shape[0], -1)))
        prob = self.get_submodule(self._softmax)(self.get_submodule(self._heads[0])(x))
        return (*(self.get_submodule(name)(x) for name in self._heads[1:]), prob)


class PNet(CascadeNet):
    """MTCNN PNet (proposal network): ``(box regression, face probability)`` maps; with ``pretrained`` its
    shipped weights."""

    def __init__(self, pretrained: bool = True) -> None:
        super().__init__("pnet", [(3, 10, 3, (2, 2)), (10, 16, 3, None), (16, 32, 3, None)], None, (2, 4),
                         pretrained)


class RNet(CascadeNet):
    """MTCNN RNet (refinement network) on 24x24 crops: ``(box regression, face probability)``; with
    ``pretrained`` its shipped weights."""

    def __init__(self, pretrained: bool = True) -> None:
        super().__init__("rnet", [(3, 28, 3, (3, 2)), (28, 48, 3, (3, 2)), (48, 64, 2, None)], (576, 128),
                         (2, 4), pretrained)


class ONet(CascadeNet):
    """MTCNN ONet (output network) on 48x48 crops: ``(box regression, five landmarks, face probability)``;
    with ``pretrained`` its shipped weights."""

    def __init__(self, pretrained: bool = True) -> None:
        super().__init__("onet", [(3, 32, 3, (3, 2)), (32, 64, 3, (3, 2)), (64, 64, 3, (2, 2)),
                                  (64, 128, 2, None)], (1152, 256), (2, 4, 10), pretrained)


class MTCNN(nn.Module):
    """The three networks and facenet-pytorch's ``MTCNN.detect`` with the SDK's settings: every face is
    kept, with ``select_largest`` the largest first, else in the cascade's order."""

    def __init__(self, min_face_size: int = 20, thresholds: Sequence[float] = (0.6, 0.7, 0.7),
                 factor: float = 0.709, select_largest: bool = True,
                 device: str | torch.device | None = None) -> None:
        super().__init__()
        self.min_face_size = min_face_size
        self.thresholds = list(thresholds)
        self.factor = factor
        self.select_largest = select_largest
        self.pnet = PNet()
        self.rnet = RNet()
        self.onet = ONet()
        self.device = torch.device("cpu")
        if device is not None:
            self.device = torch.device(device)
            self.to(self.device)

    def to(self, *args: Any, **kwargs: Any) -> MTCNN:  # torch's stubs lack memory_format, which it takes
        """``nn.Module.to`` (devices, dtypes, ``memory_format=torch.channels_last``); returns ``self``."""
        return super().to(*args, **kwargs)

    def detect(self, img: np.ndarray | Tensor, landmarks: bool = False) -> tuple[Any, ...]:
        """Faces of a ``(H, W, 3)`` image or a ``(B, H, W, 3)`` batch of equal-size images (uint8 RGB).

        Returns ``(boxes, probs[, points])``: per image an ``(n, 4)`` array of ``(x1, y1, x2, y2)``, the
        ``(n,)`` scores and ``(n, 5, 2)`` landmarks, or ``None``, ``[None]``, ``None`` where no face was
        found; for a batch, object arrays of these per image (facenet-pytorch's return values)."""
        with torch.no_grad():
            batch_boxes, batch_points = detect_face(img, self.min_face_size, self.pnet, self.rnet, self.onet,
                                                    self.thresholds, self.factor, self.device)
        boxes: list[Any] = []
        probs: list[Any] = []
        points: list[Any] = []
        for box_in, point_in in zip(batch_boxes, batch_points, strict=True):
            box = np.array(box_in)
            point = np.array(point_in)
            if len(box) == 0:
                boxes.append(None)
                probs.append([None])
                points.append(None)
                continue
            if self.select_largest:
                box_order = np.argsort((box[:, 2] - box[:, 0]) * (box[:, 3] - box[:, 1]))[::-1]
                box = box[box_order]
                point = point[box_order]
            boxes.append(box[:, :4])
            probs.append(box[:, 4])
            points.append(point)
        out_boxes = np.array(boxes, dtype=object)
        out_probs = np.array(probs, dtype=object)
        out_points = np.array(points, dtype=object)
        if len(img.shape) != 4:
            out_boxes, out_probs, out_points = out_boxes[0], out_probs[0], out_points[0]
        if landmarks:
            return out_boxes, out_probs, out_points
        return out_boxes, out_probs


# ---------------------------------------------------------------------------------- torchvision's NMS


def nms(boxes: Tensor, scores: Tensor, iou_threshold: float) -> Tensor:
    """Indices of the boxes ``(N, 4)`` kept by greedy non-maximum suppression, highest score first: a box
    is dropped when its IoU with a kept higher-scoring box exceeds ``iou_threshold``.

    torchvision's ``ops.nms`` with its CPU kernel's arithmetic (see the module docstring), computed on
    the CPU; the result is on ``boxes.device``."""
    device = boxes.device
    if boxes.numel() == 0:
        return torch.empty((0,), dtype=torch.int64, device=device)
    dets = boxes.detach().cpu()
    x1, y1, x2, y2 = (dets[:, k].contiguous() for k in range(4))
    areas = ((x2 - x1) * (y2 - y1)).numpy()
    order = torch.sort(scores.detach().cpu(), stable=True, dim=0, descending=True)[1].numpy()
    x1n, y1n, x2n, y2n = x1.numpy(), y1.numpy(), x2.numpy(), y2.numpy()
    zero = np.zeros((), dtype=x1n.dtype)
    keep: list[int] = []
    rest = order
    while rest.size > 0:
        i = int(rest[0])
        keep.append(i)
        rest = rest[1:]
        if rest.size == 0:
            break
        w = np.maximum(zero, np.minimum(x2n[i], x2n[rest]) - np.maximum(x1n[i], x1n[rest]))
        h = np.maximum(zero, np.minimum(y2n[i], y2n[rest]) - np.maximum(y1n[i], y1n[rest]))
        inter = w * h
        ovr = inter / (areas[i] + areas[rest] - inter)
        rest = rest[~(ovr.astype(np.float64) > iou_threshold)]
    return torch.as_tensor(np.array(keep, dtype=np.int64), device=device)


def batched_nms(boxes: Tensor, scores: Tensor, idxs: Tensor, iou_threshold: float) -> Tensor:
    """:func:`nms` within each group of ``idxs`` (an image of the batch), as torchvision's
    ``ops.batched_nms``: kept indices sorted by decreasing score."""
    if boxes.numel() > (4000 if boxes.device.type == "cpu" else 100_000):
        keep_mask = torch.zeros_like(scores, dtype=torch.bool)
        for class_id in torch.unique(idxs):
            curr_indices = torch.where(idxs == class_id)[0]
            curr_keep_indices = nms(boxes[curr_indices], scores[curr_indices], iou_threshold)
            keep_mask[curr_indices[curr_keep_indices]] = True
        keep_indices = torch.where(keep_mask)[0]
        return keep_indices[scores[keep_indices].sort(descending=True)[1]]
    if boxes.numel() == 0:
        return torch.empty((0,), dtype=torch.int64, device=boxes.device)
    max_coordinate = boxes.max()
    offsets = idxs.to(boxes) * (max_coordinate + torch.tensor(1).to(boxes))
    boxes_for_nms = boxes + offsets[:, None]
    return nms(boxes_for_nms, scores, iou_threshold)


# ------------------------------------------------------------------------------ facenet's cascade


def fixed_batch_process(im_data: Tensor, model: Callable[[Tensor], tuple[Tensor, ...]]) -> tuple[Tensor, ...]:
    """``model(im_data)`` in chunks of 512 (facenet-pytorch's guard against running out of GPU memory)."""
    batch_size = 512
    out = []
    for i in range(0, len(im_data), batch_size):
        batch = im_data[i:(i + batch_size)]
        out.append(model(batch))
    return tuple(torch.cat(v, dim=0) for v in zip(*out, strict=True))


def detect_face(imgs: np.ndarray | Tensor, minsize: int, pnet: nn.Module, rnet: nn.Module, onet: nn.Module,
                threshold: Sequence[float], factor: float,
                device: torch.device) -> tuple[np.ndarray, np.ndarray]:
    """facenet-pytorch's three-stage cascade on an image ``(H, W, 3)`` or a batch ``(B, H, W, 3)`` of
    equal-size images: per image the boxes ``(n, 5)`` (the score last) and landmarks ``(n, 5, 2)``."""
    if isinstance(imgs, np.ndarray):
        imgs = torch.as_tensor(imgs.copy(), device=device)
    imgs = torch.as_tensor(imgs, device=device)
    if len(imgs.shape) == 3:
        imgs = imgs.unsqueeze(0)

    model_dtype = next(pnet.parameters()).dtype
    imgs = imgs.permute(0, 3, 1, 2).type(model_dtype)

    batch_size = len(imgs)
    h, w = imgs.shape[2:4]
    m = 12.0 / minsize
    minl = float(min(h, w))
    minl = minl * m

    # Create scale pyramid
    scale_i = m
    scales = []
    while minl >= 12:
        scales.append(scale_i)
        scale_i = scale_i * factor
        minl = minl * factor

    # First stage
    boxes_list = []
    image_inds_list = []
    scale_picks = []
    offset = 0
    for scale in scales:
        im_data = _normalise(imresample(imgs, (int(h * scale + 1), int(w * scale + 1))))
        reg, probs = pnet(im_data)

        boxes_scale, image_inds_scale = generateBoundingBox(reg, probs[:, 1], scale, threshold[0])
        boxes_list.append(boxes_scale)
        image_inds_list.append(image_inds_scale)

        pick = batched_nms(boxes_scale[:, :4], boxes_scale[:, 4], image_inds_scale, 0.5)
        scale_picks.append(pick + offset)
        offset += boxes_scale.shape[0]

    boxes = torch.cat(boxes_list, dim=0)
    image_inds = torch.cat(image_inds_list, dim=0)
    picks = torch.cat(scale_picks, dim=0)

    # NMS within each scale + image
    boxes, image_inds = boxes[picks], image_inds[picks]

    # NMS within each image
    pick = batched_nms(boxes[:, :4], boxes[:, 4], image_inds, 0.7)
    boxes, image_inds = boxes[pick], image_inds[pick]

    regw = boxes[:, 2] - boxes[:, 0]
    regh = boxes[:, 3] - boxes[:, 1]
    qq1 = boxes[:, 0] + boxes[:, 5] * regw
    qq2 = boxes[:, 1] + boxes[:, 6] * regh
    qq3 = boxes[:, 2] + boxes[:, 7] * regw
    qq4 = boxes[:, 3] + boxes[:, 8] * regh
    boxes = torch.stack([qq1, qq2, qq3, qq4, boxes[:, 4]]).permute(1, 0)
    boxes = rerec(boxes)

    # Second stage
    if len(boxes) > 0:
        # This is equivalent to out = rnet(im_data) to avoid GPU out of memory.
        out = fixed_batch_process(_stage_crops(imgs, boxes, image_inds, 24), rnet)
        boxes, image_inds, mv, _ = _passing(out, boxes, image_inds, threshold[1])

        # NMS within each image
        pick = batched_nms(boxes[:, :4], boxes[:, 4], image_inds, 0.7)
        boxes, image_inds, mv = boxes[pick], image_inds[pick], mv[pick]
        boxes = bbreg(boxes, mv)
        boxes = rerec(boxes)

    # Third stage
    points = torch.zeros(0, 5, 2, device=device)
    if len(boxes) > 0:
        # This is equivalent to out = onet(im_data) to avoid GPU out of memory.
        out = fixed_batch_process(_stage_crops(imgs, boxes, image_inds, 48), onet)
        boxes, image_inds, mv, ipass = _passing(out, boxes, image_inds, threshold[2])
        points = out[1].permute(1, 0)[:, ipass]

        w_i = boxes[:, 2] - boxes[:, 0] + 1
        h_i = boxes[:, 3] - boxes[:, 1] + 1
        points_x = w_i.repeat(5, 1) * points[:5, :] + boxes[:, 0].repeat(5, 1) - 1
        points_y = h_i.repeat(5, 1) * points[5:10, :] + boxes[:, 1].repeat(5, 1) - 1
        points = torch.stack((points_x, points_y)).permute(2, 1, 0)
        boxes = bbreg(boxes, mv)

        # NMS within each image using "Min" strategy
        pick = batched_nms_numpy(boxes[:, :4], boxes[:, 4], image_inds, 0.7, "Min")
        boxes, image_inds, points = boxes[pick], image_inds[pick], points[pick]

    boxes_np = boxes.cpu().numpy()
    points_np = points.cpu().numpy()
    inds = image_inds.cpu()

    batch_boxes = []
    batch_points = []
    for b_i in range(batch_size):
        b_i_inds = np.where(inds == b_i)
        batch_boxes.append(boxes_np[b_i_inds].copy())
        batch_points.append(points_np[b_i_inds].copy())

    return np.array(batch_boxes, dtype=object), np.array(batch_points, dtype=object)


def _normalise(im_data: Tensor) -> Tensor:
    """Pixel values as the networks take them."""
    return (im_data - 127.5) * 0.0078125


def _stage_crops(imgs: Tensor, boxes: Tensor, image_inds: Tensor, size: int) -> Tensor:
    """The squares ``boxes`` of the images ``imgs[image_inds]`` (clipped to them; empty ones left out),
    resampled to ``size x size`` and normalised: the input of RNet (24) or ONet (48)."""
    h, w = imgs.shape[2:4]
    y, ey, x, ex = pad(boxes, w, h)
    crops = []
    for k in range(len(y)):
        if ey[k] > (y[k] - 1) and ex[k] > (x[k] - 1):
            img_k = imgs[image_inds[k], :, (y[k] - 1):ey[k], (x[k] - 1):ex[k]].unsqueeze(0)
            crops.append(imresample(img_k, (size, size)))
    return _normalise(torch.cat(crops, dim=0))


def _passing(out: tuple[Tensor, ...], boxes: Tensor, image_inds: Tensor,
             threshold: float) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """The boxes whose face probability (``out[-1]``) is above ``threshold``, with it as their fifth
    column; their image indices and box regressions (``out[0]``); and which passed."""
    score = out[-1].permute(1, 0)[1, :]
    ipass = score > threshold
    boxes = torch.cat((boxes[ipass, :4], score[ipass].unsqueeze(1)), dim=1)
    return boxes, image_inds[ipass], out[0].permute(1, 0)[:, ipass].permute(1, 0), ipass


def bbreg(boundingbox: Tensor, reg: Tensor) -> Tensor:
    """Apply the box regression ``reg`` (n, 4) to ``boundingbox`` (n, >=4), in place."""
    if reg.shape[1] == 1:
        reg = torch.reshape(reg, (reg.shape[2], reg.shape[3]))

    w = boundingbox[:, 2] - boundingbox[:, 0] + 1
    h = boundingbox[:, 3] - boundingbox[:, 1] + 1
    b1 = boundingbox[:, 0] + reg[:, 0] * w
    b2 = boundingbox[:, 1] + reg[:, 1] * h
    b3 = boundingbox[:, 2] + reg[:, 2] * w
    b4 = boundingbox[:, 3] + reg[:, 3] * h
    boundingbox[:, :4] = torch.stack([b1, b2, b3, b4]).permute(1, 0)
    return boundingbox


def generateBoundingBox(reg: Tensor, probs: Tensor, scale: float, thresh: float) -> tuple[Tensor, Tensor]:
    """PNet's candidate boxes (x1, y1, x2, y2, score, 4 regression values) and their image indices."""
    stride = 2
    cellsize = 12

    reg = reg.permute(1, 0, 2, 3)

    mask = probs >= thresh
    mask_inds = mask.nonzero()
    image_inds = mask_inds[:, 0]
    score = probs[mask]
    reg = reg[:, mask].permute(1, 0)
    bb = mask_inds[:, 1:].type(reg.dtype).flip(1)
    q1 = ((stride * bb + 1) / scale).floor()
    q2 = ((stride * bb + cellsize - 1 + 1) / scale).floor()
    boundingbox = torch.cat([q1, q2, score.unsqueeze(1), reg], dim=1)
    return boundingbox, image_inds


def nms_numpy(boxes: np.ndarray, scores: np.ndarray, threshold: float, method: str) -> np.ndarray:
    """MTCNN's own NMS (``"Min"``: overlap over the smaller box; else IoU), pixel-inclusive areas."""
    if boxes.size == 0:
        return np.empty((0, 3))

    x1 = boxes[:, 0].copy()
    y1 = boxes[:, 1].copy()
    x2 = boxes[:, 2].copy()
    y2 = boxes[:, 3].copy()
    s = scores
    area = (x2 - x1 + 1) * (y2 - y1 + 1)

    order = np.argsort(s)
    pick = np.zeros_like(s, dtype=np.int16)
    counter = 0
    while order.size > 0:
        i = order[-1]
        pick[counter] = i
        counter += 1
        idx = order[0:-1]

        xx1 = np.maximum(x1[i], x1[idx]).copy()
        yy1 = np.maximum(y1[i], y1[idx]).copy()
        xx2 = np.minimum(x2[i], x2[idx]).copy()
        yy2 = np.minimum(y2[i], y2[idx]).copy()

        w = np.maximum(0.0, xx2 - xx1 + 1).copy()
        h = np.maximum(0.0, yy2 - yy1 + 1).copy()

        inter = w * h
        if method == "Min":
            o = inter / np.minimum(area[i], area[idx])
        else:
            o = inter / (area[i] + area[idx] - inter)
        order = order[np.where(o <= threshold)]

    return pick[:counter].copy()


def batched_nms_numpy(boxes: Tensor, scores: Tensor, idxs: Tensor, threshold: float, method: str) -> Tensor:
    """:func:`nms_numpy` within each image of the batch (boxes moved apart by a per-image offset)."""
    device = boxes.device
    if boxes.numel() == 0:
        return torch.empty((0,), dtype=torch.int64, device=device)
    max_coordinate = boxes.max()
    offsets = idxs.to(boxes) * (max_coordinate + 1)
    boxes_for_nms = (boxes + offsets[:, None]).cpu().numpy()
    keep = nms_numpy(boxes_for_nms, scores.cpu().numpy(), threshold, method)
    return torch.as_tensor(keep, dtype=torch.long, device=device)


def pad(boxes: Tensor, w: int, h: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The boxes' integer corners clipped to the image: ``(y, ey, x, ex)``, 1-based starts."""
    boxes_np = boxes.trunc().int().cpu().numpy()
    x = boxes_np[:, 0]
    y = boxes_np[:, 1]
    ex = boxes_np[:, 2]
    ey = boxes_np[:, 3]

    x[x < 1] = 1
    y[y < 1] = 1
    ex[ex > w] = w
    ey[ey > h] = h

    return y, ey, x, ex


def rerec(bbox_a: Tensor) -> Tensor:
    """Make the boxes square around their centres (side: the longer one), in place."""
    h = bbox_a[:, 3] - bbox_a[:, 1]
    w = bbox_a[:, 2] - bbox_a[:, 0]

    side = torch.max(w, h)
    bbox_a[:, 0] = bbox_a[:, 0] + w * 0.5 - side * 0.5
    bbox_a[:, 1] = bbox_a[:, 1] + h * 0.5 - side * 0.5
    bbox_a[:, 2:4] = bbox_a[:, :2] + side.repeat(2, 1).permute(1, 0)
    return bbox_a


def imresample(img: Tensor, sz: tuple[int, int]) -> Tensor:
    """Area resampling (adaptive average pooling) to ``sz``."""
    return interpolate(img, size=sz, mode="area")
