"""FaceEncoder under bad input, awkward faces, threads and repetition; Hub ids while offline.

Uses a tiny random model folder (``tiny_model`` in this folder's conftest): what is checked here is the
pipeline's behaviour (typed errors, row bookkeeping, finiteness, determinism), not the quality of the
latents, so random weights serve as well as trained ones and keep the suite fast.
"""

from __future__ import annotations

import hashlib
import pickle
import re
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from hypothesis import event, given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from PIL import Image

from latentface_sdk.encoder import FaceEncoder
from latentface_sdk.errors import (
    ImageTooLargeError,
    InvalidImageError,
    NoFaceError,
    OfflineError,
    WeightsError,
)
from latentface_sdk.images import to_rgb
from latentface_sdk.model_folder import CONFIG_NAME, WEIGHTS_NAME
from latentface_sdk.results import Encoding

from ._budget import examples
from .catalogue import CASES, Case, pickle_bytes

FIELDS = ("texture", "shape", "pose", "light", "boxes", "scores")


def _equal(a: Encoding, b: Encoding, rows_a: Any = slice(None), rows_b: Any = slice(None)) -> None:
    for f in FIELDS:
        x, y = getattr(a, f)[rows_a], getattr(b, f)[rows_b]
        assert torch.equal(x.nan_to_num(123.0), y.nan_to_num(123.0)), f


def _finite_rows(r: Encoding) -> None:
    for f in ("texture", "shape", "pose", "light", "boxes"):
        values = getattr(r, f)
        assert torch.isfinite(values[r.ok]).all(), f
        assert torch.isnan(values[~r.ok]).all(), f


def _resized(rgb: np.ndarray, scale: float) -> np.ndarray:
    h, w = rgb.shape[:2]
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    return np.asarray(Image.fromarray(rgb).resize(size, Image.Resampling.BILINEAR))


# ----------------------------------------------------------------------------- the catalogue, encoded

# For the encoder a 4-D array/tensor is a batch and a Python list a list of images (see the next tests),
# so the catalogue rows about those shapes inside ``to_rgb`` do not apply to a whole ``encode`` input.
_BATCH_LIKE = {
    "4-D batch inside to_rgb (3,4,4,3)",
    "batch of 2 inside to_rgb (2,3,8,8)",
    "nested Python lists of pixels",
}
_REFUSED = [c for c in CASES if c.error is not None and not c.listed and c.label not in _BATCH_LIKE]


# One catalogue row carries a malformed EXIF block on purpose; PIL warns about it while reading.
pytestmark = pytest.mark.filterwarnings("ignore:Corrupt EXIF data:UserWarning")


@pytest.mark.parametrize("case", _REFUSED, ids=[c.label for c in _REFUSED])
def test_a_single_bad_input_raises_its_typed_error(encoder: FaceEncoder, case: Case, tmp_path: Path) -> None:
    value = case.make(tmp_path)
    kw = {} if case.max_pixels is None else {"max_pixels": case.max_pixels}
    with pytest.raises(InvalidImageError) as info:
        encoder.encode(value, detect=False, **kw)
    assert type(info.value) is case.error, str(info.value)
    assert re.search(case.match, str(info.value)), str(info.value)


def test_a_list_with_every_bad_input_keeps_the_good_rows_in_order(
    encoder: FaceEncoder, tmp_path: Path
) -> None:
    good = np.random.default_rng(0).integers(0, 256, (64, 64, 3), dtype=np.uint8)
    items: list[Any] = []
    refused = [c for c in _REFUSED if c.max_pixels is None]  # the default limit applies to a list
    for i, case in enumerate(refused):
        folder = tmp_path / str(i)
        folder.mkdir()
        items += [good, case.make(folder)]
    items.append(good)
    r = encoder.encode(items, detect=False, batch_size=7)
    n = len(items)
    assert len(r) == n and r.source.tolist() == list(range(n))
    assert r.ok.tolist() == [i % 2 == 0 for i in range(n)]
    for i in range(1, n, 2):
        assert r.errors[i] and r.errors[i].startswith(r.names[i]), r.errors[i]
    alone = encoder.encode(good, detect=False)
    for i in range(0, n, 2):
        _equal(r, alone, [i], [0])
    _finite_rows(r)


def test_batches_and_lists_as_the_whole_input(encoder: FaceEncoder) -> None:
    rng = np.random.default_rng(2)
    nhwc = rng.integers(0, 256, (3, 20, 24, 3), dtype=np.uint8)
    r = encoder.encode(nhwc, detect=False)
    assert len(r) == 3 and r.names == ["item 0", "item 1", "item 2"] and r.ok.all()
    _equal(r, encoder.encode(nhwc[1], detect=False), [1], [0])
    bchw = torch.from_numpy(nhwc).permute(0, 3, 1, 2).float() / 255
    _equal(r, encoder.encode(bchw, detect=False))
    nested = encoder.encode([[[0, 0, 0]]], detect=False)  # a list holding a list: one bad item
    assert nested.ok.tolist() == [False] and "unsupported input type list" in (nested.errors[0] or "")
    inner = encoder.encode([nhwc, nhwc[0]], detect=False)  # a batch inside a list: marked, not expanded
    assert inner.ok.tolist() == [False, True] and "whole input" in (inner.errors[0] or "")


def test_max_pixels_applies_to_encode(encoder: FaceEncoder) -> None:
    with pytest.raises(ImageTooLargeError, match="above the limit of 4,095"):
        encoder.encode(np.zeros((64, 64, 3), np.uint8), detect=False, max_pixels=4095)


def test_empty_inputs_raise(encoder: FaceEncoder) -> None:
    for empty in ([], (), torch.zeros(0, 3, 64, 64), np.zeros((0, 64, 64, 3), np.uint8)):
        with pytest.raises(InvalidImageError, match="empty"):
            encoder.encode(empty)


# ------------------------------------------------------------------------------------ real photos


def test_a_mixed_list_of_real_photos_and_broken_files(
    encoder: FaceEncoder, photos: Path, shared_data: Path, tmp_path: Path
) -> None:
    broken = tmp_path / "broken.jpg"
    broken.write_bytes((photos / "obama_small.jpg").read_bytes()[:5000])
    celeba = sorted((shared_data / "celeba10k" / "images").glob("*.jpg"))[:2]
    noise = np.random.default_rng(1).integers(0, 256, (160, 160, 3), dtype=np.uint8)
    items: list[Any] = [
        photos / "obama_small.jpg",
        broken,
        celeba[0],
        noise,
        tmp_path / "missing.png",
        Image.open(celeba[1]),
        photos / "two_people.jpg",
    ]
    r = encoder.encode(items, batch_size=3)
    assert r.ok.tolist() == [True, False, True, False, False, True, True]
    assert r.names == [
        str(items[0]),
        str(broken),
        str(celeba[0]),
        "item 3",
        str(items[4]),
        "item 5",
        str(items[6]),
    ]
    assert "truncated or corrupt" in (r.errors[1] or "")
    assert "no face found" in (r.errors[3] or "") and "detect=False" in (r.errors[3] or "")
    assert "no such file" in (r.errors[4] or "")
    _finite_rows(r)
    for i in (0, 2, 6):  # each good row equals encoding that input alone
        _equal(r, encoder.encode(items[i]), [i], [0])


def test_faces_none_several_tiny_and_cut_at_the_border(
    encoder: FaceEncoder, one_face: np.ndarray, photos: Path
) -> None:
    ref = encoder.encode(one_face)
    width = float(ref.boxes[0, 2] - ref.boxes[0, 0])
    # none: a single faceless image raises; in a list it is a marked row
    blank = np.full((160, 160, 3), 128, np.uint8)
    with pytest.raises(NoFaceError, match="no face found"):
        encoder.encode(blank)
    # several: the largest by default, all on request, largest first
    two = photos / "two_people.jpg"
    assert len(encoder.encode(two)) == 1 and len(encoder.encode(two, faces="all")) == 2
    # tiny: a ~6 px face is not found; a ~12 px one is (MTCNN goes below min_face_size=20) and encoded
    for target, found in ((6, False), (12, True)):
        canvas = blank.copy()
        small = _resized(one_face, target / width)
        canvas[40 : 40 + small.shape[0], 40 : 40 + small.shape[1]] = small
        r = encoder.encode([canvas])
        assert bool(r.ok[0]) is found, (target, r.errors[0])
        if found:
            assert float(r.boxes[0, 2] - r.boxes[0, 0]) < encoder.config.crop.min_face_size
    # cut at the border: a face cut a quarter of the way is found with a box leaving the image (the crop
    # replicates the edge); cut through the middle, it is not found
    x1, x2 = float(ref.boxes[0, 0]), float(ref.boxes[0, 2])
    quarter = np.ascontiguousarray(one_face[:, int(x1 + 0.25 * (x2 - x1)) :])
    r = encoder.encode(quarter)
    assert float(r.boxes[0, 0]) < 0 and torch.isfinite(r.texture).all()
    with pytest.raises(NoFaceError):
        encoder.encode(np.ascontiguousarray(one_face[:, int((x1 + x2) / 2) :]))
    partial = encoder.encode(photos / "obama_partial_face.jpg")
    assert float(partial.boxes[0, 0]) < 0 and torch.isfinite(partial.texture).all()


def test_profile_views(encoder: FaceEncoder, shared_data: Path) -> None:
    """Film stills in profile (IMFDB): two are found and encoded, a three-quarter-back one is not."""
    folder = shared_data / "imfdb" / "images"
    names = ["Jayamadhuri_192.jpg", "HrithikRoshan_79.jpg", "SharmilaTagore_49.jpg"]
    r = encoder.encode([folder / n for n in names])
    assert r.ok.tolist() == [True, True, False], r.errors
    assert (r.scores[:2] >= encoder.config.crop.threshold).all()
    _finite_rows(r)
    with pytest.raises(NoFaceError):
        encoder.encode(folder / names[2])


def test_exif_rotated_photo_is_encoded_as_displayed(
    encoder: FaceEncoder, one_face: np.ndarray, tmp_path: Path
) -> None:
    stored = Image.fromarray(one_face).transpose(
        Image.Transpose.ROTATE_90
    )  # on its side, as a phone stores it
    exif = stored.getexif()
    exif[0x0112] = 6  # "rotate 90 CW to display"
    path = tmp_path / "sideways.png"  # lossless: the displayed pixels equal the upright photo exactly
    stored.save(path, exif=exif)
    np.testing.assert_array_equal(to_rgb(path), one_face)
    _equal(encoder.encode(path), encoder.encode(one_face))


def test_a_6000x4000_photo_is_downscaled_before_detection(
    encoder: FaceEncoder, one_face: np.ndarray, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ref = encoder.encode(one_face)
    canvas = np.full((4000, 6000, 3), 90, np.uint8)
    big = _resized(one_face, 5.0)  # 1600x1200, the face ~550 px wide
    canvas[2000 : 2000 + big.shape[0], 3000 : 3000 + big.shape[1]] = big
    path = tmp_path / "big.jpg"
    Image.fromarray(canvas).save(path, quality=90)
    seen: list[tuple[int, ...]] = []
    run = encoder.detector._run

    def spy(batch: np.ndarray) -> Any:
        seen.append(batch.shape)
        return run(batch)

    monkeypatch.setattr(encoder.detector, "_run", spy)
    r = encoder.encode(path)
    assert seen and max(max(s[1:3]) for s in seen) <= encoder.detector.max_side
    expected = ref.boxes[0] * 5.0 + torch.tensor([3000.0, 2000.0, 3000.0, 2000.0])
    side = float(expected[2] - expected[0])
    assert float((r.boxes[0] - expected).abs().max()) < 0.1 * side, (r.boxes[0], expected)
    assert torch.isfinite(r.texture).all()


# -------------------------------------------------------------------------------------- concurrency


def test_encode_from_four_threads_equals_serial(
    encoder: FaceEncoder, photos: Path, shared_data: Path
) -> None:
    celeba = sorted((shared_data / "celeba10k" / "images").glob("*.jpg"))[:4]
    jobs: list[Any] = [
        photos / "obama_small.jpg",
        photos / "two_people.jpg",
        *celeba,
        np.zeros((8, 8, 3), np.uint8),
    ]
    serial = [encoder.encode([x]) for x in jobs]
    with ThreadPoolExecutor(4) as pool:
        for _ in range(2):
            parallel = list(pool.map(lambda x: encoder.encode([x]), jobs))
            for a, b in zip(serial, parallel, strict=True):
                _equal(a, b)
                assert a.ok.tolist() == b.ok.tolist() and a.errors == b.errors


def test_disentangle_from_four_threads_equals_serial(encoder: FaceEncoder, shared_data: Path) -> None:
    celeba = sorted((shared_data / "celeba10k" / "images").glob("*.jpg"))[4:8]
    serial = [encoder.disentangle(p, seed=5).verification_features for p in celeba]
    with ThreadPoolExecutor(4) as pool:
        parallel = list(pool.map(lambda p: encoder.disentangle(p, seed=5).verification_features, celeba))
    for a, b in zip(serial, parallel, strict=True):
        assert torch.equal(a, b)


def test_the_detector_is_built_once_under_concurrent_first_use(
    tiny_model: Path, one_face: np.ndarray
) -> None:
    fresh = FaceEncoder.from_pretrained(tiny_model, device="cpu")
    barrier = threading.Barrier(4)

    def first_use(_: int) -> int:
        barrier.wait()
        return id(fresh.detector)

    with ThreadPoolExecutor(4) as pool:
        ids = set(pool.map(first_use, range(4)))
    assert len(ids) == 1


# ------------------------------------------------------------------------------ numbers and repeats


@settings(max_examples=examples(30), deadline=None)
@given(
    image=st.integers(1, 90).flatmap(
        lambda h: st.integers(1, 90).flatmap(lambda w: arrays(np.uint8, (h, w, 3)))
    )
)
def test_outputs_are_finite_for_any_valid_crop(encoder: FaceEncoder, image: np.ndarray) -> None:
    r = encoder.encode(image, detect=False)
    assert r.ok.all() and all(
        torch.isfinite(getattr(r, f)).all() for f in ("texture", "shape", "pose", "light")
    )
    event("tiny (side < 8)" if min(image.shape[:2]) < 8 else "at least 8x8")


@pytest.mark.parametrize(
    "image",
    [
        np.zeros((64, 64, 3), np.uint8),
        np.full((64, 64, 3), 255, np.uint8),
        np.zeros((1, 1, 3), np.uint8),
        np.full((1, 300, 3), 255, np.uint8),
        np.indices((64, 64)).sum(0).astype(np.uint8)[..., None].repeat(3, 2) % 2 * 255,  # checkerboard
    ],
    ids=["black", "white", "1x1", "1x300 line", "checkerboard"],
)
def test_extreme_valid_crops_give_finite_outputs(encoder: FaceEncoder, image: np.ndarray) -> None:
    d = encoder.disentangle(image, detect=False, seed=0)
    assert torch.isfinite(d.verification_features).all() and torch.isfinite(d.fer_features).all()
    f = encoder.frontalize(image, detect=False, return_tensors=True)
    assert torch.isfinite(f.tensor).all() and (f.tensor >= 0).all() and (f.tensor <= 1).all()


def test_repeated_calls_give_identical_results(encoder: FaceEncoder, photos: Path) -> None:
    photo = photos / "two_people.jpg"
    first = encoder.encode(photo, faces="all")
    for _ in range(2):
        _equal(first, encoder.encode(photo, faces="all"))
    a = encoder.disentangle(photo, seed=11)
    b = encoder.disentangle(photo, seed=11)
    c = encoder.disentangle(photo, seed=12)
    assert torch.equal(a.identity_texture, b.identity_texture) and torch.equal(
        a.identity_shape, b.identity_shape
    )
    assert not torch.equal(a.identity_texture, c.identity_texture)
    torch.manual_seed(4)
    d = encoder.disentangle(photo)
    torch.manual_seed(4)
    e = encoder.disentangle(photo)
    assert torch.equal(d.identity_texture, e.identity_texture)


# ------------------------------------------------------------------------------------------ weights


def test_a_hub_id_while_offline_says_so_and_names_the_cache(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, no_network: None
) -> None:
    cache = tmp_path / "hub-cache"
    with pytest.raises(OfflineError) as info:
        FaceEncoder.from_pretrained("someone/latentface-not-cached", cache_dir=cache, local_files_only=True)
    message = str(info.value)
    assert (
        "'someone/latentface-not-cached'" in message and "offline mode" in message and str(cache) in message
    )
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))
    with pytest.raises(OfflineError, match="offline mode is on .*HF_HUB_OFFLINE=1") as info:
        FaceEncoder.from_pretrained("someone/latentface-not-cached", revision="v1")
    assert str(cache) in str(info.value) and "revision 'v1'" in str(info.value)
    assert isinstance(info.value, WeightsError) and isinstance(info.value, OSError)


@pytest.mark.parametrize("name", ["", "   ", "../nowhere", "a/b/c", "not a model"])
def test_names_that_are_nothing_are_refused(name: str, no_network: None) -> None:
    with pytest.raises(WeightsError):
        FaceEncoder.from_pretrained(name, device="cpu")


def _copy(folder: Path, dest: Path) -> Path:
    dest.mkdir()
    for n in (CONFIG_NAME, WEIGHTS_NAME):
        (dest / n).write_bytes((folder / n).read_bytes())
    return dest


def _recheck(folder: Path) -> None:
    import json

    cfg = json.loads((folder / CONFIG_NAME).read_text())
    cfg["checksum"] = hashlib.sha256((folder / WEIGHTS_NAME).read_bytes()).hexdigest()
    (folder / CONFIG_NAME).write_text(json.dumps(cfg))


def test_from_pretrained_never_unpickles(
    tiny_model: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = _copy(tiny_model, tmp_path / "hostile")
    marker = tmp_path / "PWNED"
    (folder / WEIGHTS_NAME).write_bytes(pickle_bytes(marker))
    _recheck(folder)
    calls: list[str] = []
    monkeypatch.setattr(torch, "load", lambda *a, **k: calls.append("torch.load"))
    monkeypatch.setattr(pickle, "loads", lambda *a, **k: calls.append("pickle.loads"))
    with pytest.raises(WeightsError, match="not safetensors; it was not loaded"):
        FaceEncoder.from_pretrained(folder, device="cpu")
    assert not marker.exists() and calls == []


def test_from_pretrained_refuses_nan_weights_and_wrong_shapes(tiny_model: Path, tmp_path: Path) -> None:
    from safetensors.torch import load_file, save_file

    state = load_file(str(tiny_model / WEIGHTS_NAME))
    key = next(k for k in sorted(state) if k.startswith("rdm_shape.") and state[k].is_floating_point())
    nan = _copy(tiny_model, tmp_path / "nan")
    save_file({**state, key: torch.full_like(state[key], float("nan"))}, str(nan / WEIGHTS_NAME))
    _recheck(nan)
    with pytest.raises(WeightsError, match="NaN or infinite") as info:
        FaceEncoder.from_pretrained(nan, device="cpu")
    assert key in str(info.value) and str(nan / WEIGHTS_NAME) in str(info.value)
    wrong = _copy(tiny_model, tmp_path / "wrong")
    key = next(k for k in sorted(state) if k.startswith("autoencoder.") and state[k].ndim == 4)
    save_file({**state, key: torch.zeros(1, *state[key].shape[1:])}, str(wrong / WEIGHTS_NAME))
    _recheck(wrong)
    with pytest.raises(WeightsError, match="shape mismatch") as info:
        FaceEncoder.from_pretrained(wrong, device="cpu")
    assert key in str(info.value)
