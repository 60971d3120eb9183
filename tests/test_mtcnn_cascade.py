"""The prototype cascade behind issue 15's detection levers (experiments/archive/mtcnn_cascade.py) is MTCNN.

Image by image, with facenet-pytorch's full-image pyramid, it must find facenet-pytorch's faces with the same
boxes, scores and landmarks (up to float rounding); otherwise the speed it measures would be that of another
detector.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from _close import assert_close_to_scale

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "experiments" / "archive"))

from mtcnn_cascade import Cascade, pyramid_scales  # noqa: E402

from latentface_sdk.images import downscale_for_detection, to_rgb  # noqa: E402

PHOTOS = Path(__file__).resolve().parents[2] / "shared" / "data" / "photos"


def test_pyramid_scales_follow_mtcnn() -> None:
    scales = pyramid_scales(100, 200, 20)
    assert scales[0] == pytest.approx(0.6) and all(b == pytest.approx(a * 0.709)
                                                   for a, b in zip(scales, scales[1:], strict=False))
    assert 100 * scales[-1] >= 12 > 100 * scales[-1] * 0.709


@pytest.mark.skipif(not PHOTOS.is_dir(), reason="needs ../shared/data/photos")
def test_full_pyramid_cascade_finds_facenet_pytorchs_faces() -> None:
    from facenet_pytorch import MTCNN

    mtcnn = MTCNN(keep_all=True, min_face_size=20, device="cpu").eval()
    cascade = Cascade(mtcnn.pnet, mtcnn.rnet, mtcnn.onet, pyramid="full")
    names = ["two_people.jpg", "obama_small.jpg", "alex-lacamoire.png"]
    images = [downscale_for_detection(to_rgb(str(PHOTOS / n)), 640)[0] for n in names]
    total = 0
    for rgb in images:
        with torch.inference_mode():
            boxes, probs, points = mtcnn.detect(rgb[None], landmarks=True)
        mine = cascade.detect([rgb])[0]
        ref_order = np.argsort(np.asarray(boxes[0])[:, 0])
        order = np.argsort(mine.boxes[:, 0])
        # pixel coordinates up to ~540 here: float32 rounding at their magnitude (tests/_close.py)
        assert_close_to_scale(mine.boxes[order], np.asarray(boxes[0], np.float32)[ref_order], msg="boxes")
        np.testing.assert_allclose(mine.scores[order], np.asarray(probs[0], np.float32)[ref_order], atol=1e-6,
                                   rtol=0)
        assert_close_to_scale(mine.landmarks[order], np.asarray(points[0], np.float32)[ref_order],
                              msg="landmarks")
        total += len(order)
    assert total >= 4  # two people, one, one
    both = cascade.detect(images)  # R-net and O-net batched across the three sizes: same faces
    assert [len(d.boxes) for d in both] == [len(cascade.detect([im])[0].boxes) for im in images]
    with pytest.raises(ValueError, match="pyramid"):
        Cascade(mtcnn.pnet, mtcnn.rnet, mtcnn.onet, pyramid="fast")  # type: ignore[arg-type]
