"""Verification protocol: the cosine-threshold chooser, pair features, and the k-fold evaluation."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from latentface_sdk.errors import DataError
from latentface_sdk.eval.probes import ProbeConfig
from latentface_sdk.eval.verification import (
    choose_threshold,
    cosine_scores,
    evaluate_verification,
    mean_and_sem,
    pair_features,
    threshold_accuracy,
)


def test_threshold_separates_two_clusters() -> None:
    rng = np.random.default_rng(0)
    pos = rng.normal(0.7, 0.04, 300)
    neg = rng.normal(0.3, 0.04, 300)
    scores = np.concatenate([pos, neg])
    labels = np.concatenate([np.ones(300, bool), np.zeros(300, bool)])
    thr = choose_threshold(scores, labels)
    assert neg.max() < thr < pos.min()
    assert threshold_accuracy(scores, labels, thr) == 1.0


def test_threshold_handles_one_class_and_ties() -> None:
    assert threshold_accuracy(np.array([0.1, 0.5]), np.array([True, True]), choose_threshold(
        np.array([0.1, 0.5]), np.array([True, True])
    )) == 1.0  # fmt: skip
    assert choose_threshold(np.array([0.1, 0.5]), np.array([False, False])) >= 0.5
    # tied scores cannot be split: the best is to call all four "same" (3 of 4 right)
    scores, labels = np.array([0.2, 0.2, 0.2, 0.2]), np.array([True, True, True, False])
    assert threshold_accuracy(scores, labels, choose_threshold(scores, labels)) == 0.75


@settings(max_examples=60, deadline=None)
@given(
    st.lists(
        st.tuples(st.integers(-20, 20), st.booleans()),
        min_size=1,
        max_size=40,
    )
)
def test_threshold_is_optimal_by_brute_force(data: list[tuple[int, bool]]) -> None:
    scores = np.array([s / 20 for s, _ in data])  # coarse grid: many ties
    labels = np.array([b for _, b in data])
    best = max(
        threshold_accuracy(scores, labels, t) for t in np.concatenate([[scores.min() - 1], np.unique(scores)])
    )
    assert threshold_accuracy(scores, labels, choose_threshold(scores, labels)) == pytest.approx(best)


def test_pair_features_are_symmetric_and_scale_free() -> None:
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=(5, 8)), rng.normal(size=(5, 8))
    pf = pair_features(a, b)
    assert pf.shape == (5, 16)
    np.testing.assert_allclose(pf, pair_features(b, a), atol=1e-6)
    np.testing.assert_allclose(pf, pair_features(3 * a, 0.5 * b), atol=1e-6)
    np.testing.assert_allclose(cosine_scores(a, a), 1.0, atol=1e-9)
    np.testing.assert_allclose(cosine_scores(a, -a), -1.0, atol=1e-9)


def test_mean_and_sem() -> None:
    m, s = mean_and_sem(np.array([0.6, 0.7, 0.8, 0.9]))
    assert m == pytest.approx(0.75)
    assert s == pytest.approx(np.std([0.6, 0.7, 0.8, 0.9], ddof=1) / 2)
    assert mean_and_sem(np.array([0.5])) == (0.5, 0.0)


def _synthetic_pairs(noise: float, seed: int = 0) -> tuple[np.ndarray, ...]:
    """4 folds x (30 same + 30 different) pairs over per-identity feature vectors plus noise."""
    rng = np.random.default_rng(seed)
    n_ids, per_id, dim = 80, 4, 32
    centres = rng.normal(size=(n_ids, dim))
    feats = np.repeat(centres, per_id, axis=0) + noise * rng.normal(size=(n_ids * per_id, dim))
    rows: list[tuple[int, int, bool, int]] = []  # (image a, image b, same, fold)
    for fold in range(4):
        ids = np.arange(fold * 20, (fold + 1) * 20)  # identity-disjoint folds
        for k in range(30):
            i = int(ids[k % 20])
            rows.append((i * per_id, i * per_id + 1 + k % 3, True, fold))
        for k in range(30):
            i, j = int(ids[k % 20]), int(ids[(k + 7) % 20])
            rows.append((i * per_id + k % 4, j * per_id, False, fold))
    ia, ib, labels, folds = (np.array(col) for col in zip(*rows, strict=True))
    return feats, ia, ib, labels, folds


def test_kfold_verification_on_separable_identities() -> None:
    feats, ia, ib, labels, folds = _synthetic_pairs(noise=0.3)
    res = evaluate_verification(
        feats, ia, ib, labels, folds, name="synthetic", probe=ProbeConfig(epochs=30, batch_size=32)
    )
    assert res.folds == [0, 1, 2, 3]
    assert res.probe_accuracy.shape == res.cosine_accuracy.shape == (4,)
    assert res.cosine_mean_sem[0] > 0.95
    assert res.probe_mean_sem[0] > 0.9
    fpr, tpr, auc = res.roc("cosine")
    assert auc > 0.97 and fpr[0] == 0 and tpr[-1] == 1
    summary = res.to_dict()
    assert summary["dim"] == 32 and summary["n_pairs"] == 240
    assert len(summary["probe_accuracy"]["per_fold"]) == 4


def test_kfold_verification_on_noise_is_near_chance() -> None:
    feats, ia, ib, labels, folds = _synthetic_pairs(noise=0.3)
    rng = np.random.default_rng(1)
    noise = rng.normal(size=feats.shape)  # features unrelated to identity
    res = evaluate_verification(noise, ia, ib, labels, folds, probe=ProbeConfig(epochs=5, batch_size=32))
    assert 0.3 < res.cosine_mean_sem[0] < 0.7
    assert 0.3 < res.probe_mean_sem[0] < 0.7


def test_kfold_needs_two_folds() -> None:
    feats, ia, ib, labels, folds = _synthetic_pairs(noise=0.3)
    sel = folds == 0
    with pytest.raises(DataError, match="at least two folds"):
        evaluate_verification(feats, ia[sel], ib[sel], labels[sel], folds[sel])
