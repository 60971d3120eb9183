"""Expression-recognition data sets (image folders, CSV) and the probe protocol's metrics."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from latentface_sdk.errors import DataError
from latentface_sdk.eval.datasets import (
    FER2013_CLASSES,
    LabeledImages,
    check_disjoint,
    read_image_folder,
    read_label_csv,
    read_split,
)
from latentface_sdk.eval.fer import confusion_matrix, evaluate_fer, macro_f1
from latentface_sdk.eval.probes import ProbeConfig


def _write(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("L", (8, 8), 100).save(path)


def test_image_folder(tmp_path: Path) -> None:
    for cls, n in {"happy": 3, "angry": 2, "sad": 1}.items():
        for i in range(n):
            _write(tmp_path / "Training" / cls / f"{i}.jpg")
    (tmp_path / "Training" / "happy" / "notes.txt").write_text("not an image")
    ds = read_split(tmp_path, "Training")
    assert ds.classes == ["angry", "happy", "sad"]  # sorted folder names
    assert ds.counts() == {"angry": 2, "happy": 3, "sad": 1}
    assert len(ds) == 6 and all(p.suffix == ".jpg" for p in ds.paths)
    assert [ds.classes[k] for k in ds.labels] == [p.parent.name for p in ds.paths]
    # a fixed class list keeps its order and may name classes with no folder
    fixed = read_image_folder(tmp_path / "Training", classes=["sad", "happy", "angry", "fear"])
    assert fixed.counts() == {"sad": 1, "happy": 3, "angry": 2, "fear": 0}
    with pytest.raises(DataError, match=r"\['sad'\] are not among"):
        read_image_folder(tmp_path / "Training", classes=["happy", "angry"])
    with pytest.raises(DataError, match="no such image folder"):
        read_split(tmp_path, "PrivateTest")


def test_limit_per_class_is_seeded_and_bounded(tmp_path: Path) -> None:
    labels = np.array([0] * 10 + [1] * 3 + [2] * 7)
    ds = LabeledImages([tmp_path / f"{i}.jpg" for i in range(20)], labels, ["a", "b", "c"])
    small = ds.limit_per_class(4)
    assert small.counts() == {"a": 4, "b": 3, "c": 4}
    assert [p.name for p in small.paths] == [p.name for p in ds.limit_per_class(4).paths]
    assert [p.name for p in small.paths] != [p.name for p in ds.limit_per_class(4, seed=1).paths]


def test_label_csv(tmp_path: Path) -> None:
    (tmp_path / "names.csv").write_text("path,label\nimg/a.jpg,happy\nimg/b.jpg,sad\n\nimg/c.jpg,happy\n")
    ds = read_label_csv(tmp_path / "names.csv")
    assert ds.classes == ["happy", "sad"] and ds.labels.tolist() == [0, 1, 0]
    assert ds.paths[0] == tmp_path / "img" / "a.jpg"
    (tmp_path / "ints.csv").write_text("x/1.png,3\nx/2.png,0\n")
    ints = read_label_csv(tmp_path / "ints.csv", root=tmp_path / "root", classes=FER2013_CLASSES)
    assert ints.labels.tolist() == [3, 0] and ints.classes == list(FER2013_CLASSES)
    assert ints.paths[1] == tmp_path / "root" / "x" / "2.png"
    (tmp_path / "bad.csv").write_text("a.jpg,happy\nb.jpg\n")
    with pytest.raises(DataError, match="bad.csv:2"):
        read_label_csv(tmp_path / "bad.csv")
    (tmp_path / "unknown.csv").write_text("a.jpg,happy\nb.jpg,bored\n")
    with pytest.raises(DataError, match=r"unknown.csv:2: unknown label 'bored'"):
        read_label_csv(tmp_path / "unknown.csv", classes=["happy", "sad"])


def test_train_and_test_must_be_disjoint(tmp_path: Path) -> None:
    a = LabeledImages([tmp_path / "1.jpg", tmp_path / "2.jpg"], np.array([0, 1]), ["x", "y"])
    b = LabeledImages([tmp_path / "3.jpg", tmp_path / "." / "2.jpg"], np.array([0, 1]), ["x", "y"])
    with pytest.raises(DataError, match="share 1 image"):
        check_disjoint(a, b)


def test_metrics_match_scikit_learn() -> None:
    from sklearn.metrics import confusion_matrix as sk_cm
    from sklearn.metrics import f1_score

    rng = np.random.default_rng(0)
    for _ in range(20):
        y = rng.integers(0, 5, 40)
        p = np.where(rng.random(40) < 0.5, y, rng.integers(0, 5, 40))
        p[p == 4] = 3  # a class never predicted
        cm = confusion_matrix(y, p, 6)  # class 5 never occurs at all
        np.testing.assert_array_equal(cm, sk_cm(y, p, labels=range(6)))
        assert macro_f1(cm) == pytest.approx(f1_score(y, p, average="macro", zero_division=0))


def test_fer_probe_on_separable_classes() -> None:
    rng = np.random.default_rng(0)
    centres = rng.normal(size=(7, 24)) * 4
    ytr, yte = rng.integers(0, 7, 1400), rng.integers(0, 7, 300)
    xtr = centres[ytr] + rng.normal(size=(1400, 24))
    xte = centres[yte] + rng.normal(size=(300, 24))
    res = evaluate_fer(xtr, ytr, xte, yte, FER2013_CLASSES, name="synthetic", probe=ProbeConfig(epochs=20))
    assert res.accuracy > 0.95 and res.macro_f1 > 0.95
    assert res.confusion.shape == (7, 7) and res.confusion.sum() == 300
    assert np.trace(res.confusion) == round(res.accuracy * 300)
    d = res.to_dict()
    assert d["n_train"] == 1400 and d["classes"] == list(FER2013_CLASSES) and d["dim"] == 24
