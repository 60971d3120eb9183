"""latentface_sdk.cropset: a data set's face crops, marked rows, and the cache keyed by files and settings."""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import cast

import numpy as np
import pytest

from latentface_sdk.config import CropConfig
from latentface_sdk.cropset import CropSet, prepare_crops
from latentface_sdk.detection import FaceBox, FaceDetector, crop_aligned, crop_face
from latentface_sdk.images import to_rgb


@pytest.fixture(scope="module")
def detector() -> Iterator[FaceDetector]:
    yield FaceDetector(CropConfig())


def _noise(h: int, w: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


class _Counting:
    """Wraps a detector's ``detect_batch`` and counts the images it is asked to look at."""

    def __init__(self, inner: FaceDetector | None = None) -> None:
        self.inner = inner
        self.images = 0

    def detect_batch(self, rgbs: Sequence[np.ndarray]) -> list[list[FaceBox]]:
        self.images += len(rgbs)
        return self.inner.detect_batch(rgbs) if self.inner else [[] for _ in rgbs]


@pytest.fixture
def dataset(shared_data: Path, tmp_path: Path) -> list[str]:
    celeba = sorted((shared_data / "celeba10k" / "images").glob("*.jpg"))[:10]
    corrupt = tmp_path / "corrupt.jpg"
    corrupt.write_bytes(b"\xff\xd8\xff\xe0 definitely not a whole jpeg")
    noise = tmp_path / "noise.png"
    from PIL import Image

    Image.fromarray(_noise(109, 89)).save(noise)  # CelebA size: batched with them
    return [str(p) for p in celeba[:5]] + [str(corrupt)] + [str(p) for p in celeba[5:]] + [str(noise)]


def _assert_same(a: CropSet, b: CropSet) -> None:
    assert a.paths == b.paths and a.errors == b.errors
    for field in ("crops", "ok", "boxes", "scores", "method"):
        np.testing.assert_array_equal(getattr(a, field), getattr(b, field), err_msg=field)


def test_prepare_crops_marks_bad_files_and_reuses_its_cache(
    dataset: list[str], detector: FaceDetector, tmp_path: Path
) -> None:
    crop = CropConfig()
    cache = tmp_path / "cache" / "crops.npz"
    counter = _Counting(detector)
    first = prepare_crops(
        dataset, crop, cache_file=cache, progress=False, batch_size=6, detector=cast(FaceDetector, counter)
    )
    assert counter.images == 11  # every readable image was looked at once, the corrupt one never
    assert len(first) == 12 and first.paths == dataset
    assert first.crops.shape == (12, 64, 64, 3) and first.crops.dtype == np.uint8
    assert list(first.method) == ["mtcnn"] * 5 + ["failed"] + ["mtcnn"] * 5 + ["noface"]
    assert list(first.ok) == [True] * 5 + [False] + [True] * 5 + [False]
    assert first.n_failed == 1 and first.counts() == {"mtcnn": 10, "center": 0, "noface": 1, "failed": 1}
    assert "corrupt.jpg" in first.errors[5] and first.errors[0] == ""
    assert np.isnan(first.boxes[5]).all() and np.isnan(first.boxes[11]).all() and np.isnan(first.scores[5])
    assert np.isfinite(first.boxes[first.ok]).all() and (first.scores[first.ok] >= crop.threshold).all()
    assert (first.crops[5] == 0).all() and first.crops[0].std() > 10
    np.testing.assert_array_equal(first.crops[0], crop_face(to_rgb(dataset[0]), tuple(first.boxes[0]), crop))
    assert sorted(os.listdir(cache.parent)) == ["crops.npz"]  # the temporary file was renamed away

    again = prepare_crops(
        dataset, crop, cache_file=cache, progress=False, batch_size=6, detector=cast(FaceDetector, counter)
    )
    assert counter.images == 11  # loaded, not recomputed
    _assert_same(first, again)


def test_prepare_crops_cache_key_follows_settings_and_files(dataset: list[str], tmp_path: Path) -> None:
    cache = tmp_path / "aligned.npz"
    aligned = prepare_crops(dataset, CropConfig(), detect=False, cache_file=cache, progress=False)
    assert list(aligned.method) == ["center"] * 5 + ["failed"] + ["center"] * 6
    np.testing.assert_array_equal(aligned.crops[0], crop_aligned(to_rgb(dataset[0]), 64))
    assert np.isnan(aligned.boxes).all()

    stub = _Counting()  # would find no face anywhere: proves the detect=True run does not reuse the cache
    centred = prepare_crops(
        dataset,
        CropConfig(),
        fallback="center",
        cache_file=cache,
        progress=False,
        detector=cast(FaceDetector, stub),
    )
    assert stub.images == 11 and list(centred.method) == list(aligned.method)

    smaller = prepare_crops(dataset, CropConfig(size=32), detect=False, cache_file=cache, progress=False)
    assert smaller.crops.shape == (12, 32, 32, 3)

    cache.write_bytes(b"garbage")  # an unreadable cache is recomputed, not raised
    rebuilt = prepare_crops(dataset, CropConfig(), detect=False, cache_file=cache, progress=False)
    _assert_same(aligned, rebuilt)

    with np.load(cache, allow_pickle=False) as data:
        key_before = str(data["key"])
    os.utime(
        dataset[-1], ns=(0, 0)
    )  # a file changed (our own tmp file): the key changes, the cache is rewritten
    prepare_crops(dataset, CropConfig(), detect=False, cache_file=cache, progress=False)
    with np.load(cache, allow_pickle=False) as data:
        assert str(data["key"]) != key_before


def test_the_progress_bar_counts_only_the_rows_done(
    dataset: list[str], detector: FaceDetector, monkeypatch: pytest.MonkeyPatch
) -> None:
    """While cropping, the bar's counts cover the images processed so far: the rows still to come are not
    shown as failed (they start as "failed" in the result until their batch has run)."""
    from latentface_sdk import cropset

    shown: list[dict[str, int]] = []

    class Bar:
        def __init__(self, *args: object, **kwargs: object) -> None:
            pass

        def __enter__(self) -> Bar:
            return self

        def __exit__(self, *exc: object) -> None:
            pass

        def update(self, n: int) -> None:
            pass

        def set_postfix(self, counts: dict[str, int], refresh: bool = True) -> None:
            shown.append(dict(counts))

    monkeypatch.setattr(cropset, "tqdm", Bar)
    prepare_crops(dataset, CropConfig(), batch_size=6, detector=detector)
    assert shown[0] == {"mtcnn": 5, "center": 0, "noface": 0, "failed": 1}  # first batch: the corrupt file
    assert shown[-1] == {"mtcnn": 10, "center": 0, "noface": 1, "failed": 1}
