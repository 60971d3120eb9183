"""The expression-recognition linear-probe protocol on frozen features (paper section 3.4).

A :class:`~latentface_sdk.eval.probes.LinearProbe` (BatchNorm1d + Linear, Adam, lr 1e-3, 20 epochs)
is trained on the train split's features and scored on the test split: accuracy, macro-F1 and the
confusion matrix (rows: true class, columns: predicted class).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .probes import ProbeConfig, train_probe

#: The paper's FER probe: Adam, lr 1e-3, 20 epochs.
FER_PROBE = ProbeConfig(epochs=20, lr=1e-3, batch_size=256)


def confusion_matrix(y_true: np.ndarray, y_pred: np.ndarray, n_classes: int) -> np.ndarray:
    """``(K, K)`` counts: row = true class, column = predicted class."""
    cm = np.zeros((n_classes, n_classes), dtype=np.int64)
    np.add.at(cm, (np.asarray(y_true, dtype=np.int64), np.asarray(y_pred, dtype=np.int64)), 1)
    return cm


def macro_f1(cm: np.ndarray) -> float:
    """Unweighted mean over classes of F1, from a confusion matrix.

    Classes absent from both the truth and the predictions are left out of the mean; a class that is
    present in one but never right scores 0 (scikit-learn's ``f1_score(average="macro")`` behaviour on
    the labels that occur).
    """
    tp = np.diag(cm).astype(np.float64)
    support = cm.sum(1).astype(np.float64)
    predicted = cm.sum(0).astype(np.float64)
    occurs = (support + predicted) > 0
    denom = support + predicted
    f1 = np.where(denom > 0, 2 * tp / np.maximum(denom, 1), 0.0)
    return float(f1[occurs].mean()) if occurs.any() else 0.0


@dataclass
class FERResult:
    """Test-split scores of one feature set."""

    feature: str
    dim: int
    classes: list[str]
    accuracy: float
    macro_f1: float
    confusion: np.ndarray
    n_train: int
    n_test: int
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready summary (scores in [0, 1])."""
        return {
            "feature": self.feature,
            "dim": self.dim,
            "classes": self.classes,
            "accuracy": self.accuracy,
            "macro_f1": self.macro_f1,
            "confusion": self.confusion.tolist(),
            "n_train": self.n_train,
            "n_test": self.n_test,
            **self.extra,
        }


def evaluate_fer(
    train_x: np.ndarray,
    train_y: np.ndarray,
    test_x: np.ndarray,
    test_y: np.ndarray,
    classes: Sequence[str],
    *,
    name: str = "features",
    probe: ProbeConfig = FER_PROBE,
) -> FERResult:
    """Train the probe on ``(train_x, train_y)`` and score it on ``(test_x, test_y)``."""
    k = len(classes)
    model = train_probe(train_x, train_y, k, probe)
    pred = model.predict(np.asarray(test_x, dtype=np.float32))
    y = np.asarray(test_y, dtype=np.int64)
    cm = confusion_matrix(y, pred, k)
    return FERResult(
        feature=name,
        dim=int(np.asarray(train_x).shape[1]),
        classes=list(classes),
        accuracy=float(np.mean(pred == y)) if len(y) else 0.0,
        macro_f1=macro_f1(cm),
        confusion=cm,
        n_train=int(len(train_y)),
        n_test=int(len(y)),
    )


__all__ = ["FER_PROBE", "FERResult", "confusion_matrix", "evaluate_fer", "macro_f1"]
