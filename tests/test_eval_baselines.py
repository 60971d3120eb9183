"""Baseline features (raw, LBP, HOG, random encoder) and the lazy feature-set registry."""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest

from latentface_sdk.eval.baselines import hog_features, lbp_histograms, raw_pixels, to_grey
from latentface_sdk.eval.features import (
    FeatureContext,
    available_features,
    build_extractor,
    parse_feature_names,
)


@pytest.fixture(scope="module")
def crops() -> np.ndarray:
    rng = np.random.default_rng(0)
    return rng.integers(0, 256, size=(5, 64, 64, 3), dtype=np.uint8)


def test_grey_is_bt601_luma() -> None:
    img = np.zeros((1, 2, 2, 3), dtype=np.uint8)
    img[0, 0, 0] = (255, 0, 0)
    img[0, 0, 1] = (0, 255, 0)
    img[0, 1, 0] = (0, 0, 255)
    img[0, 1, 1] = (255, 255, 255)
    assert to_grey(img)[0].tolist() == [[76, 150], [29, 255]]


def test_raw_pixels(crops: np.ndarray) -> None:
    f = raw_pixels(crops)
    assert f.shape == (5, 32 * 32) and f.dtype == np.float32
    assert 0.0 <= f.min() and f.max() <= 1.0
    flat = np.full((1, 64, 64, 3), 128, dtype=np.uint8)
    np.testing.assert_allclose(raw_pixels(flat), 128 / 255, rtol=1e-6)
    assert raw_pixels(crops, pool=1).shape == (5, 4096)


def test_lbp_histograms(crops: np.ndarray) -> None:
    f = lbp_histograms(crops)
    assert f.shape == (5, 8 * 8 * 10) and f.dtype == np.float32
    np.testing.assert_allclose(f.reshape(5, 64, 10).sum(-1), 1.0, rtol=1e-6)  # one histogram per cell
    np.testing.assert_array_equal(f, lbp_histograms(crops))  # deterministic
    # inside a flat image every pixel has the same uniform code (all neighbours >= centre)
    flat = lbp_histograms(np.full((1, 64, 64, 3), 90, dtype=np.uint8)).reshape(8, 8, 10)
    assert np.all(flat[1:-1, 1:-1].max(-1) == 1.0)
    assert len(set(flat[1:-1, 1:-1].argmax(-1).ravel().tolist())) == 1
    assert lbp_histograms(crops[:1], points=8, grid=4).shape == (1, 4 * 4 * 10)


def test_hog(crops: np.ndarray) -> None:
    f = hog_features(crops)
    assert f.shape == (5, 7 * 7 * 2 * 2 * 9) and f.dtype == np.float32
    np.testing.assert_array_equal(f, hog_features(crops))
    assert np.all(hog_features(np.full((1, 64, 64, 3), 77, dtype=np.uint8)) == 0)  # no gradients
    assert not np.allclose(f[0], f[1])


def test_registry_lists_and_validates_names() -> None:
    names = available_features()
    for expected in (
        "raw",
        "lbp",
        "hog",
        "random-encoder",
        "latentface",
        "latentface-verify",
        "latentface-fer",
    ):
        assert expected in names and names[expected]
    assert parse_feature_names(" raw, lbp,hog ") == ["raw", "lbp", "hog"]
    with pytest.raises(ValueError, match="unknown feature set"):
        parse_feature_names("raw,sift")
    with pytest.raises(ValueError, match="twice"):
        parse_feature_names("raw,raw")
    with pytest.raises(ValueError, match="unknown feature set"):
        build_extractor("sift")


def test_registered_baselines_match_the_functions(crops: np.ndarray) -> None:
    for name, fn in (("raw", raw_pixels), ("lbp", lbp_histograms), ("hog", hog_features)):
        ext = build_extractor(name)
        assert ext.name == name and ext.cache_name == name
        assert ext.crop_config() is None and ext.identity()
        np.testing.assert_array_equal(ext(crops), fn(crops))


def test_model_features_need_no_model_until_requested() -> None:
    # Building a baseline never touches the model loader.
    ctx = FeatureContext(model="/nonexistent/model")
    build_extractor("hog", ctx)
    assert ctx._encoder is None


@pytest.mark.skipif(
    importlib.util.find_spec("latentface_sdk.models.autoencoder") is None,
    reason="needs latentface_sdk.models.autoencoder (not written yet)",
)
def test_random_encoder_is_seeded_and_deterministic(crops: np.ndarray) -> None:
    a = build_extractor("random-encoder", FeatureContext(seed=0, batch_size=2))
    b = build_extractor("random-encoder", FeatureContext(seed=0, batch_size=4))
    c = build_extractor("random-encoder", FeatureContext(seed=1))
    fa = a(crops)
    assert fa.ndim == 2 and fa.shape[0] == 5 and fa.dtype == np.float32
    assert np.all(np.isfinite(fa))
    np.testing.assert_allclose(fa, b(crops), rtol=1e-4, atol=1e-5)  # eval mode: batch-independent
    assert a.identity() == b.identity() != c.identity()
    assert not np.allclose(fa, c(crops))
