"""The k-fold face-verification protocol on precomputed per-image features (paper section 3.5).

For every fold in turn, the other folds train (a) the linear probe on pair features
``[|f1 - f2|, f1 * f2]`` of L2-normalised image features, and (b) a cosine-similarity threshold
(the one with the best training accuracy); both are scored on the held-out fold. Accuracies are
reported as the mean and standard error over folds, as in LFW's protocol and the paper's Table 2.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from ..errors import DataError
from .probes import ProbeConfig, train_probe

#: The verification probe trains on a few thousand pairs: smaller batches than the FER default.
VERIFY_PROBE = ProbeConfig(epochs=20, lr=1e-3, batch_size=64)


def l2_normalize(x: np.ndarray, eps: float = 1e-12) -> np.ndarray:
    """Rows of ``x`` scaled to unit length (zero rows stay zero)."""
    x = np.asarray(x, dtype=np.float64)
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), eps)


def pair_features(fa: np.ndarray, fb: np.ndarray) -> np.ndarray:
    """``[|a - b|, a * b]`` of the L2-normalised rows: symmetric in the two images, ``(P, 2D)``."""
    a, b = l2_normalize(fa), l2_normalize(fb)
    return np.concatenate([np.abs(a - b), a * b], axis=1).astype(np.float32)


def cosine_scores(fa: np.ndarray, fb: np.ndarray) -> np.ndarray:
    """Cosine similarity of each pair of rows, ``(P,)``."""
    return np.sum(l2_normalize(fa) * l2_normalize(fb), axis=1)


def choose_threshold(scores: np.ndarray, labels: np.ndarray) -> float:
    """The threshold ``t`` maximising the accuracy of ``score > t`` against ``labels`` (True = same).

    Candidates are the midpoints between consecutive distinct scores and the two ends; ties go to the
    lowest threshold with the best accuracy. Runs in ``O(n log n)``.
    """
    s = np.asarray(scores, dtype=np.float64)
    y = np.asarray(labels, dtype=bool)
    if s.ndim != 1 or s.shape != y.shape or len(s) == 0:
        raise ValueError(f"expected matching non-empty 1-D scores and labels, got {s.shape} and {y.shape}")
    order = np.argsort(s, kind="stable")
    s, y = s[order], y[order]
    # Cutting before position k (k = 0..n) predicts "same" for s[k:], "different" for s[:k].
    neg_below = np.concatenate([[0], np.cumsum(~y)])
    pos_above = int(y.sum()) - np.concatenate([[0], np.cumsum(y)])
    correct = neg_below + pos_above
    valid = np.ones(len(s) + 1, dtype=bool)
    valid[1:-1] = s[1:] > s[:-1]  # only cut between distinct scores
    correct = np.where(valid, correct, -1)
    k = int(np.argmax(correct))
    if k == 0:
        return float(s[0] - max(1e-6, abs(s[0]) * 1e-6))
    if k == len(s):
        return float(s[-1])
    return float((s[k - 1] + s[k]) / 2.0)


def threshold_accuracy(scores: np.ndarray, labels: np.ndarray, threshold: float) -> float:
    """Accuracy of predicting "same" when ``score > threshold``."""
    return float(np.mean((np.asarray(scores) > threshold) == np.asarray(labels, dtype=bool)))


def mean_and_sem(values: np.ndarray) -> tuple[float, float]:
    """Mean and standard error of the mean (``std(ddof=1) / sqrt(n)``; 0 for a single value)."""
    v = np.asarray(values, dtype=np.float64)
    if len(v) < 2:
        return float(v.mean()), 0.0
    return float(v.mean()), float(v.std(ddof=1) / np.sqrt(len(v)))


@dataclass
class VerificationResult:
    """Per-fold accuracies of both verifiers, and pooled out-of-fold scores for ROC curves."""

    feature: str
    dim: int
    folds: list[int]
    probe_accuracy: np.ndarray
    cosine_accuracy: np.ndarray
    thresholds: np.ndarray
    labels: np.ndarray
    cosine: np.ndarray
    probe_score: np.ndarray
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def probe_mean_sem(self) -> tuple[float, float]:
        return mean_and_sem(self.probe_accuracy)

    @property
    def cosine_mean_sem(self) -> tuple[float, float]:
        return mean_and_sem(self.cosine_accuracy)

    def roc(self, which: str = "cosine") -> tuple[np.ndarray, np.ndarray, float]:
        """``(fpr, tpr, auc)`` of the pooled out-of-fold ``"cosine"`` or ``"probe"`` scores."""
        from sklearn.metrics import roc_auc_score, roc_curve

        scores = self.cosine if which == "cosine" else self.probe_score
        fpr, tpr, _ = roc_curve(self.labels, scores)
        return fpr, tpr, float(roc_auc_score(self.labels, scores))

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready summary (accuracies in [0, 1])."""
        pm, ps = self.probe_mean_sem
        cm, cs = self.cosine_mean_sem
        return {
            "feature": self.feature,
            "dim": self.dim,
            "folds": self.folds,
            "n_pairs": int(len(self.labels)),
            "probe_accuracy": {"mean": pm, "sem": ps, "per_fold": self.probe_accuracy.tolist()},
            "cosine_accuracy": {"mean": cm, "sem": cs, "per_fold": self.cosine_accuracy.tolist()},
            "cosine_thresholds": self.thresholds.tolist(),
            "cosine_auc": self.roc("cosine")[2],
            "probe_auc": self.roc("probe")[2],
            **self.extra,
        }


def evaluate_verification(
    features: np.ndarray,
    index_a: np.ndarray,
    index_b: np.ndarray,
    labels: np.ndarray,
    folds: np.ndarray,
    *,
    name: str = "features",
    probe: ProbeConfig = VERIFY_PROBE,
) -> VerificationResult:
    """Run the leave-one-fold-out protocol over the folds present in ``folds``.

    ``features`` ``(N, D)`` holds one row per image; pair ``p`` compares rows ``index_a[p]`` and
    ``index_b[p]``; ``labels`` are True for same-person pairs. Needs at least two folds.
    """
    feats = np.asarray(features, dtype=np.float32)
    labels = np.asarray(labels, dtype=bool)
    folds = np.asarray(folds)
    if feats.ndim != 2:
        raise ValueError(f"features must be (N, D), got {feats.shape}")
    fold_ids = sorted(int(f) for f in np.unique(folds))
    if len(fold_ids) < 2:
        raise DataError(f"cross-validation needs at least two folds, got {fold_ids}")
    fa, fb = feats[index_a], feats[index_b]
    pair_x = pair_features(fa, fb)
    cos = cosine_scores(fa, fb)
    probe_score = np.zeros(len(labels), dtype=np.float64)
    probe_acc, cos_acc, thresholds = [], [], []
    for k, fold in enumerate(fold_ids):
        test = folds == fold
        train = ~test
        if len(np.unique(labels[train])) < 2:
            raise DataError(f"the training folds for fold {fold} hold only one kind of pair")
        cfg = replace(probe, seed=probe.seed + k)
        model = train_probe(pair_x[train], labels[train].astype(np.int64), 2, cfg)
        p_same = model.predict_proba(pair_x[test])[:, 1]
        probe_score[test] = p_same
        probe_acc.append(float(np.mean((p_same > 0.5) == labels[test])))
        thr = choose_threshold(cos[train], labels[train])
        thresholds.append(thr)
        cos_acc.append(threshold_accuracy(cos[test], labels[test], thr))
    return VerificationResult(
        feature=name,
        dim=int(feats.shape[1]),
        folds=fold_ids,
        probe_accuracy=np.array(probe_acc),
        cosine_accuracy=np.array(cos_acc),
        thresholds=np.array(thresholds),
        labels=labels,
        cosine=cos,
        probe_score=probe_score,
    )


__all__ = [
    "VERIFY_PROBE",
    "VerificationResult",
    "choose_threshold",
    "cosine_scores",
    "evaluate_verification",
    "l2_normalize",
    "mean_and_sem",
    "pair_features",
    "threshold_accuracy",
]
