"""MTCNN detection and the crop policy shared by training and inference."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from latentface_sdk.config import CropConfig
from latentface_sdk.detection import (
    FaceBox,
    FaceDetector,
    crop_aligned,
    crop_face,
    select_faces,
    square_box,
)
from latentface_sdk.detection_batch import (
    MAX_CANVAS_PIXELS,
    MAX_PADDING_RATIO,
    _area_resize,
    _integral,
    pyramid_scales,
    size_buckets,
)
from latentface_sdk.errors import InvalidImageError
from latentface_sdk.images import to_rgb

# ----------------------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def detector() -> Iterator[FaceDetector]:
    """One MTCNN for the module, built with the network switched off (its weights ship in the wheel)."""

    def refuse(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("FaceDetector tried to open a network connection")

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(socket.socket, "connect", refuse)
        mp.setattr(socket, "create_connection", refuse)
        yield FaceDetector(CropConfig())


@pytest.fixture(scope="module")
def two_people(shared_data: Path) -> np.ndarray:
    return to_rgb(shared_data / "photos" / "two_people.jpg")


@pytest.fixture(scope="module")
def two_people_faces(detector: FaceDetector, two_people: np.ndarray) -> list[FaceBox]:
    return detector.detect(two_people)


def _noise(h: int, w: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, size=(h, w, 3), dtype=np.uint8)


# ------------------------------------------------------------------------------------- pure geometry


def test_square_box_is_centred_and_enlarged() -> None:
    assert square_box((10, 20, 30, 60), 0.5) == pytest.approx((-10, 10, 50, 70))
    assert square_box((0, 0, 40, 10), 0.0) == pytest.approx((0, -15, 40, 25))


def test_crop_face_lands_the_known_square_where_expected() -> None:
    img = np.zeros((400, 400, 3), np.uint8)
    img[100:300, 100:300] = 255  # a white 200 px square
    tight = crop_face(img, (100, 100, 300, 300), CropConfig(size=64, margin=0.0))
    assert tight.shape == (64, 64, 3) and tight.dtype == np.uint8
    assert (tight[1:-1, 1:-1] == 255).all()
    # margin 1.0: the square spans 400 px around the centre, the white square its middle half
    wide = crop_face(img, (100, 100, 300, 300), CropConfig(size=64, margin=1.0))
    assert (wide[17:47, 17:47] == 255).all()
    assert (wide[:15] == 0).all() and (wide[49:] == 0).all()
    assert (wide[:, :15] == 0).all() and (wide[:, 49:] == 0).all()
    # an off-centre box moves the square in the crop: box centred 50 px right of the white square's centre
    shifted = crop_face(img, (150, 100, 350, 300), CropConfig(size=64, margin=1.0))
    cols = np.nonzero(shifted[32, :, 0] > 127)[0]
    assert cols.min() == pytest.approx(8, abs=1) and cols.max() == pytest.approx(39, abs=1)


def test_crop_face_replicates_edges_outside_the_image() -> None:
    img = np.zeros((100, 100, 3), np.uint8)
    img[:, :10] = (255, 0, 0)  # red left border
    img[:, 10:] = (0, 0, 255)
    out = crop_face(img, (-50, 20, 30, 100), CropConfig(size=64, margin=0.0))
    # the square spans x = -50..30: 60 of its 80 px (48 of 64 output columns) are red (border replicated, not
    # black)
    assert (out[:, :46] == (255, 0, 0)).all()
    assert (out[:, 50:] == (0, 0, 255)).all()
    # a box entirely outside still works (all replicated border)
    far = crop_face(img, (500, 500, 540, 540), CropConfig(size=8, margin=0.0))
    assert (far == (0, 0, 255)).all()


@settings(max_examples=60, deadline=None)
@given(
    h=st.integers(1, 40),
    w=st.integers(1, 40),
    x1=st.floats(-60, 60),
    y1=st.floats(-60, 60),
    bw=st.floats(0.5, 80),
    bh=st.floats(0.5, 80),
    margin=st.floats(0, 1.5),
    size=st.integers(1, 24),
)
def test_crop_face_any_box_gives_a_crop_within_the_image_range(
    h: int, w: int, x1: float, y1: float, bw: float, bh: float, margin: float, size: int
) -> None:
    img = np.random.default_rng(h * 41 + w).integers(20, 200, size=(h, w, 3), dtype=np.uint8)
    out = crop_face(img, (x1, y1, x1 + bw, y1 + bh), CropConfig(size=size, margin=margin))
    assert out.shape == (size, size, 3) and out.dtype == np.uint8 and out.flags.c_contiguous
    # bilinear resampling of edge-replicated pixels never leaves the image's value range (no black fill)
    assert out.min() >= img.min() and out.max() <= img.max()


def test_crop_face_refuses_degenerate_boxes() -> None:
    with pytest.raises(ValueError, match="degenerate"):
        crop_face(np.zeros((10, 10, 3), np.uint8), (5, 5, 5, 5), CropConfig())
    with pytest.raises(ValueError, match="degenerate"):
        crop_face(np.zeros((10, 10, 3), np.uint8), (np.nan, 0, 5, 5), CropConfig())


def test_crop_aligned_takes_the_centre_square() -> None:
    img = np.full((109, 89, 3), 100, np.uint8)  # CelebA-aligned size
    img[:10] = (0, 255, 0)  # rows outside the centre square (rows 10..98) are green
    img[99:] = (0, 255, 0)
    out = crop_aligned(img, 64)
    assert out.shape == (64, 64, 3) and out.dtype == np.uint8
    assert (out[1:-1] == 100).all()  # the filter (support ~1.4 px here) may only touch the first/last row
    assert (np.abs(out.astype(int) - 100) < 20).all()
    wide = np.full((50, 80, 3), 7, np.uint8)
    wide[:, :15] = 200
    wide[:, 65:] = 200
    assert (crop_aligned(wide, 32)[:, 1:-1] == 7).all()


def test_select_faces_policy() -> None:
    small = FaceBox((0, 0, 10, 10), 0.99)
    big = FaceBox((0, 0, 30, 30), 0.95)
    mid = FaceBox((5, 5, 25, 25), 0.999)
    assert select_faces([small, big, mid], "largest") == [big]
    assert select_faces([small, big, mid], "all") == [big, mid, small]
    assert select_faces([], "largest") == []
    with pytest.raises(ValueError, match="policy"):
        select_faces([small], "first")  # type: ignore[arg-type]


# ------------------------------------------------------------------------------------------- MTCNN


def test_two_people_gives_two_faces_largest_first(
    two_people: np.ndarray, two_people_faces: list[FaceBox]
) -> None:
    assert len(two_people_faces) == 2
    a, b = two_people_faces
    assert a.area >= b.area
    h, w = two_people.shape[:2]
    for f in two_people_faces:
        assert f.score >= CropConfig().threshold
        x1, y1, x2, y2 = f.box
        assert -0.1 * w < x1 < x2 < 1.1 * w and -0.1 * h < y1 < y2 < 1.1 * h
        assert f.landmarks is not None and f.landmarks.shape == (5, 2)
        assert x1 <= f.landmarks[:, 0].min() and f.landmarks[:, 0].max() <= x2
    assert (a.box[0] + a.box[2]) / 2 > w / 2 > (b.box[0] + b.box[2]) / 2  # one person on each side
    crop = crop_face(two_people, a.box, CropConfig())
    assert crop.shape == (64, 64, 3) and crop.dtype == np.uint8 and crop.std() > 10


def test_noise_and_tiny_images_have_no_face(detector: FaceDetector) -> None:
    assert detector.detect(_noise(200, 200)) == []
    assert detector.detect(np.zeros((5, 5, 3), np.uint8)) == []  # below min_face_size: no MTCNN call
    assert detector.detect(np.zeros((1, 1, 3), np.uint8)) == []


def test_detect_batch_groups_sizes_and_maps_downscaled_boxes_back(
    detector: FaceDetector, two_people: np.ndarray, two_people_faces: list[FaceBox]
) -> None:
    calls: list[tuple[int, ...]] = []
    run = detector._run

    def counting(batch: np.ndarray) -> list[list[FaceBox]]:
        calls.append(batch.shape)
        return run(batch)

    old_side = detector.max_side
    detector.max_side = 600  # forces a downscale of the 1126 px photo
    try:
        detector._run = counting  # type: ignore[method-assign]
        h, w = two_people.shape[:2]
        found = detector.detect_batch([two_people, _noise(h, w), np.zeros((3, 3, 3), np.uint8)])
    finally:
        detector.max_side = old_side
        del detector._run
    assert len(calls) == 1 and calls[0][0] == 2 and max(calls[0][1:3]) == 600  # one call, both photos
    assert len(found[0]) == 2 and found[1] == [] and found[2] == []
    for small, full in zip(found[0], two_people_faces, strict=True):
        side = full.width
        assert np.abs(np.subtract(small.box, full.box)).max() < 0.1 * side
        assert small.landmarks is not None and full.landmarks is not None
        assert np.abs(small.landmarks - full.landmarks).max() < 0.1 * side


def test_detector_refuses_unconverted_input(detector: FaceDetector) -> None:
    with pytest.raises(InvalidImageError, match="to_rgb"):
        detector.detect(np.zeros((30, 30), np.float32))


def test_face_is_found_in_an_exif_rotated_photo(
    detector: FaceDetector, shared_data: Path, tmp_path: Path
) -> None:
    from PIL import Image

    upright = Image.open(shared_data / "photos" / "obama_small.jpg").convert("RGB")
    stored = upright.transpose(Image.Transpose.ROTATE_90)  # lying on its side, as a phone stores it
    exif = stored.getexif()
    exif[0x0112] = 6  # "rotate 90 CW to display"
    path = tmp_path / "sideways.jpg"
    stored.save(path, exif=exif, quality=95)
    rgb = to_rgb(path)
    assert rgb.shape[:2] == (upright.height, upright.width)
    faces = detector.detect(rgb)
    assert len(faces) == 1
    reference = detector.detect(to_rgb(upright))[0]
    assert np.abs(np.subtract(faces[0].box, reference.box)).max() < 0.1 * reference.width


# ------------------------------------------------------------------ mixed sizes: the padded path


def _iou(a: tuple[float, ...], b: tuple[float, ...]) -> float:
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    return inter / ((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter)


@pytest.fixture(scope="module")
def mixed_photos(shared_data: Path) -> list[np.ndarray]:
    """Real photos of many sizes: the 9 of ``photos/`` (up to 2000 px, one RGBA, one 32-bit) and 8 each of
    CelebA (89x109), UTKFace (128x128) and CelebA in the wild (128x128), read in place."""
    paths = sorted((shared_data / "photos").iterdir())
    for folder in ("celeba10k/images", "utkface/images", "celeba_ids_wild/images"):
        paths += sorted((shared_data / folder).glob("*.jpg"))[:8]
    return [to_rgb(p) for p in paths]


def test_padded_path_finds_the_faces_of_the_grouped_path(mixed_photos: list[np.ndarray]) -> None:
    """Measured on this set (CPU, max_side 640): 37 faces, the same count for each of the 33 images, min IoU
    0.999999, landmarks within 2e-4 px, scores within 1e-7 (detection_batch: no padded pixel reaches a kept
    output, only float summation order differs). The bounds are looser than that, far tighter than a
    different face."""
    assert len({im.shape[:2] for im in mixed_photos}) >= 6
    grouped = FaceDetector(CropConfig(), max_side=640, mixed_sizes="group").detect_batch(mixed_photos)
    padded = FaceDetector(CropConfig(), max_side=640, mixed_sizes="pad").detect_batch(mixed_photos)
    n_faces = 0
    for i, (a, b) in enumerate(zip(grouped, padded, strict=True)):
        assert len(a) == len(b), f"image {i}: {len(a)} faces grouped, {len(b)} padded"
        for fa, fb in zip(a, b, strict=True):
            n_faces += 1
            assert _iou(fa.box, fb.box) >= 0.999
            assert fa.landmarks is not None and fb.landmarks is not None
            assert np.abs(fa.landmarks - fb.landmarks).max() <= 0.05
            assert abs(fa.score - fb.score) <= 1e-4
    assert n_faces >= 25


def test_padded_faces_do_not_depend_on_the_other_images(
    two_people: np.ndarray, mixed_photos: list[np.ndarray]
) -> None:
    pad = FaceDetector(CropConfig(), max_side=640, mixed_sizes="pad")
    alone = pad.detect(two_people)
    together = pad.detect_batch([mixed_photos[-1], two_people, _noise(300, 500), mixed_photos[-9]])[1]
    assert len(alone) == len(together) == 2
    for fa, fb in zip(alone, together, strict=True):
        assert _iou(fa.box, fb.box) >= 0.999


def test_mixed_sizes_option_resolves_auto_by_device() -> None:
    det = FaceDetector(CropConfig())
    assert det.mixed_sizes == "auto" and not det.padded  # CPU: facenet-pytorch's own grouped batches
    det.device = torch.device("cuda")  # only the attribute: no GPU is touched
    assert det.padded
    assert FaceDetector(CropConfig(), mixed_sizes="pad").padded
    assert not FaceDetector(CropConfig(), mixed_sizes="group").padded
    with pytest.raises(ValueError, match="mixed_sizes"):
        FaceDetector(CropConfig(), mixed_sizes="stack")  # type: ignore[arg-type]


def _one(v: int) -> torch.Tensor:
    return torch.tensor([v], dtype=torch.int64)


def test_area_resize_matches_torch_area_interpolation() -> None:
    rng = np.random.default_rng(1)
    images = [rng.integers(0, 256, (h, w, 3), dtype=np.uint8) for h, w in ((37, 53), (64, 20), (13, 13))]
    sat = _integral(images, torch.device("cpu"))
    for b, im in enumerate(images):
        ref_src = torch.from_numpy(im).permute(2, 0, 1)[None].float()
        for oh, ow in ((24, 24), (7, 30), (im.shape[0], im.shape[1]), (5, 3)):
            want = torch.nn.functional.interpolate(ref_src, size=(oh, ow), mode="area")
            got = _area_resize(sat, _one(b), _one(0), _one(im.shape[0]), _one(0), _one(im.shape[1]),
                               _one(oh), _one(ow), oh + 3, ow)
            assert torch.allclose(got[:, :, :oh], want, rtol=0, atol=1e-4)
            assert torch.equal(got[:, :, oh:], got[:, :, oh - 1 : oh].expand(-1, -1, 3, -1))
    # a sub-rectangle, as the RNet/ONet crops take
    sub = torch.from_numpy(images[0][5:30, 10:41]).permute(2, 0, 1)[None].float()
    want = torch.nn.functional.interpolate(sub, size=(24, 24), mode="area")
    got = _area_resize(sat, _one(0), _one(5), _one(30), _one(10), _one(41), _one(24), _one(24), 24, 24)
    assert torch.allclose(got, want, rtol=0, atol=1e-4)


def test_pyramid_scales_follow_detect_face() -> None:
    scales = pyramid_scales(100, 300, min_face_size=20, factor=0.709)
    assert scales[0] == pytest.approx(0.6) and len(scales) == 5  # 60 px short side, 12 px reached at 0.709^4
    assert pyramid_scales(300, 100, 20, 0.709) == scales  # the short side decides
    assert pyramid_scales(19, 500, 20, 0.709) == []
    longer = pyramid_scales(1000, 1000, 20, 0.709)
    assert longer[: len(scales)] == scales  # one sequence: a smaller image's pyramid is a prefix


@given(st.lists(st.tuples(st.integers(20, 2000), st.integers(20, 2000)), min_size=1, max_size=60),
       st.integers(1, 16))
@settings(max_examples=60, deadline=None)
def test_size_buckets_cover_every_image_once_within_the_limits(
    sizes: list[tuple[int, int]], max_batch: int
) -> None:
    buckets = size_buckets(sizes, max_batch)
    assert sorted(i for b in buckets for i in b) == list(range(len(sizes)))
    for b in buckets:
        assert 1 <= len(b) <= max_batch
        if len(b) > 1:
            canvas = len(b) * max(sizes[i][0] for i in b) * max(sizes[i][1] for i in b)
            assert canvas <= MAX_PADDING_RATIO * sum(sizes[i][0] * sizes[i][1] for i in b)
            assert canvas <= MAX_CANVAS_PIXELS
