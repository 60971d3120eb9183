"""latentface_sdk.mtcnn: facenet-pytorch's MTCNN without facenet-pytorch or torchvision. Its weights are
the wheel's, its NMS is torchvision's, and it finds facenet-pytorch's faces bit for bit on the CPU."""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from latentface_sdk import mtcnn

README = Path(__file__).resolve().parents[1] / "weights" / "mtcnn" / "README.md"


def test_the_weights_file_is_the_one_the_readme_names() -> None:
    digest = hashlib.sha256(mtcnn.weights_path().read_bytes()).hexdigest()
    listed = re.search(r"`mtcnn\.safetensors` \(this folder\) \| `([0-9a-f]{64})`", README.read_text())
    assert listed is not None and digest == listed.group(1)
    for net in (mtcnn.PNet(), mtcnn.RNet(), mtcnn.ONet()):  # every tensor present, nothing left over
        assert all(p.dtype == torch.float32 for p in net.parameters())


def test_the_weights_are_facenet_pytorchs() -> None:
    facenet_pytorch = pytest.importorskip("facenet_pytorch")
    data = Path(facenet_pytorch.__file__).parent / "data"
    for name in ("pnet", "rnet", "onet"):
        theirs = torch.load(data / f"{name}.pt", map_location="cpu", weights_only=True)
        ours = mtcnn.mtcnn_state(name)
        assert sorted(ours) == sorted(theirs)
        assert all(torch.equal(ours[k], theirs[k]) for k in theirs), name


def boxes_and_scores(seed: int, n: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Random boxes with exact duplicates, integer corners and tied scores (the hard cases of NMS)."""
    g = torch.Generator().manual_seed(seed)
    xy = torch.rand(n, 2, generator=g) * 200
    boxes = torch.cat([xy, xy + torch.rand(n, 2, generator=g) * 60 + 1], 1)
    if seed % 2:
        boxes = boxes.round()
    boxes[n // 2:n // 2 + 5] = boxes[0]
    scores = torch.rand(n, generator=g)
    if seed % 3 == 0:
        scores = (scores * 10).round() / 10
    return boxes, scores, torch.randint(0, 4, (n,), generator=g)


@pytest.mark.parametrize("seed", range(12))
def test_nms_is_torchvisions(seed: int) -> None:
    ops = pytest.importorskip("torchvision.ops")
    n = [7, 300, 1500, 2500][seed % 4]  # 1500 and 2500 boxes: torchvision's per-image path (> 4,000 numbers)
    boxes, scores, idxs = boxes_and_scores(seed, n)
    for threshold in (0.3, 0.5, 0.7):
        assert torch.equal(mtcnn.nms(boxes, scores, threshold), ops.nms(boxes, scores, threshold))
        assert torch.equal(mtcnn.batched_nms(boxes, scores, idxs, threshold),
                           ops.batched_nms(boxes, scores, idxs, threshold))
    empty = torch.zeros(0, 4)
    assert mtcnn.nms(empty, torch.zeros(0), 0.5).shape == (0,)
    assert mtcnn.batched_nms(empty, torch.zeros(0), torch.zeros(0, dtype=torch.long), 0.5).shape == (0,)


def detections(detector: object, batch: np.ndarray) -> list[bytes | None]:
    """Every box, score and landmark ``detect`` returns for ``batch``, as exact bytes (None: no face)."""
    boxes, probs, points = detector.detect(batch, landmarks=True)  # type: ignore[attr-defined]
    if batch.ndim == 3:
        boxes, probs, points = [boxes], [probs], [points]
    out: list[bytes | None] = []
    for b, p, q in zip(boxes, probs, points, strict=True):
        out += [None] if b is None else [np.asarray(x, dtype=np.float64).tobytes() for x in (b, p, q)]
    return out


def test_faces_are_facenet_pytorchs_bit_for_bit(shared_data: Path) -> None:
    facenet_pytorch = pytest.importorskip("facenet_pytorch")
    theirs = facenet_pytorch.MTCNN(keep_all=True, select_largest=True, min_face_size=20)
    ours = mtcnn.MTCNN(min_face_size=20, select_largest=True)
    photos = sorted((shared_data / "photos").iterdir())
    assert len(photos) >= 8
    found = 0
    for path in photos:
        rgb = np.asarray(Image.open(path).convert("RGB"))
        if max(rgb.shape[:2]) > 1300:  # the detector downscales these first; keep the test short
            continue
        got = detections(ours, rgb)
        assert got == detections(theirs, rgb), path.name
        found += sum(x is not None for x in got) // 3
    rgb = np.asarray(Image.open(shared_data / "photos" / "two_people.jpg").convert("RGB"))
    batch = np.stack([rgb, rgb[:, ::-1].copy()])
    assert detections(ours, batch) == detections(theirs, batch)
    assert found >= 6
