"""Labelled image sets for expression recognition: image folders and ``path,label`` CSV files.

An image folder is ``<root>/<split>/<class>/*.jpg`` (FER-2013, RAF-DB's aligned release); the class
names are the sub-folder names, sorted, unless given. A CSV lists ``path,label`` rows (an optional
header row ``path,label``); paths are relative to the CSV's folder unless ``root`` is given, and labels
are class names or integer class indices.
"""

from __future__ import annotations

import csv
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import DataError

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".webp")

#: FER-2013's seven expressions, in the (alphabetical) order of its folders.
FER2013_CLASSES = ("angry", "disgust", "fear", "happy", "neutral", "sad", "surprise")


@dataclass
class LabeledImages:
    """Image paths with integer labels into ``classes``."""

    paths: list[Path]
    labels: np.ndarray
    classes: list[str]

    def __len__(self) -> int:
        return len(self.paths)

    def counts(self) -> dict[str, int]:
        """How many images each class holds."""
        return {c: int(np.sum(self.labels == i)) for i, c in enumerate(self.classes)}

    def limit_per_class(self, n: int, seed: int = 0) -> LabeledImages:
        """At most ``n`` images per class, drawn by a seeded generator (order kept)."""
        if n < 1:
            raise ValueError(f"limit per class must be positive, got {n}")
        rng = np.random.default_rng(seed)
        keep: list[int] = []
        for i in range(len(self.classes)):
            idx = np.flatnonzero(self.labels == i)
            if len(idx) > n:
                idx = np.sort(rng.choice(idx, size=n, replace=False))
            keep.extend(int(j) for j in idx)
        keep.sort()
        return LabeledImages([self.paths[j] for j in keep], self.labels[keep], list(self.classes))


def read_image_folder(
    folder: str | Path,
    classes: Sequence[str] | None = None,
    *,
    extensions: Sequence[str] = IMAGE_EXTENSIONS,
) -> LabeledImages:
    """Read ``<folder>/<class>/<image>``; ``classes`` fixes the label order (and must all be known).

    Without ``classes``, every sub-folder is a class, in sorted order. A sub-folder that is not in
    ``classes`` raises :class:`DataError` (an image would otherwise go silently unlabelled).
    """
    root = Path(folder)
    if not root.is_dir():
        raise DataError(f"{root}: no such image folder")
    found = sorted(d.name for d in root.iterdir() if d.is_dir() and not d.name.startswith("."))
    names = list(classes) if classes is not None else found
    unknown = sorted(set(found) - set(names))
    if unknown:
        raise DataError(f"{root}: class folder(s) {unknown} are not among the classes {names}")
    exts = {e.lower() for e in extensions}
    paths: list[Path] = []
    labels: list[int] = []
    for i, name in enumerate(names):
        d = root / name
        if not d.is_dir():
            continue
        files = sorted(p for p in d.iterdir() if p.is_file() and p.suffix.lower() in exts)
        paths.extend(files)
        labels.extend([i] * len(files))
    if not paths:
        raise DataError(f"{root}: no images found in its class folders")
    return LabeledImages(paths, np.array(labels, dtype=np.int64), names)


def read_label_csv(
    path: str | Path,
    root: str | Path | None = None,
    classes: Sequence[str] | None = None,
) -> LabeledImages:
    """Read a ``path,label`` CSV; see the module docstring. Malformed rows raise :class:`DataError`."""
    source = Path(path)
    base = Path(root) if root is not None else source.parent
    try:
        with source.open(newline="", encoding="utf-8") as fh:
            rows = [(i + 1, row) for i, row in enumerate(csv.reader(fh)) if any(c.strip() for c in row)]
    except FileNotFoundError:
        raise DataError(f"{source}: no such CSV file") from None
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise DataError(f"{source}: cannot read ({exc})") from exc
    if rows and [c.strip().lower() for c in rows[0][1]] == ["path", "label"]:
        rows = rows[1:]
    if not rows:
        raise DataError(f"{source}: no rows")
    for line, row in rows:
        if len(row) != 2 or not row[0].strip() or not row[1].strip():
            raise DataError(f"{source}:{line}: expected 'path,label', got {row!r}")
    raw = [row[1].strip() for _, row in rows]
    numeric = all(r.lstrip("-").isdigit() for r in raw)
    if classes is not None:
        names = list(classes)
    elif numeric:
        names = [str(i) for i in range(max(int(r) for r in raw) + 1)]
    else:
        names = sorted(set(raw))
    lookup = {n: i for i, n in enumerate(names)}
    labels: list[int] = []
    for (line, _), r in zip(rows, raw, strict=True):
        if r in lookup:
            labels.append(lookup[r])
        elif numeric and 0 <= int(r) < len(names):
            labels.append(int(r))
        else:
            raise DataError(f"{source}:{line}: unknown label {r!r} (classes: {names})")
    paths = [base / row[0].strip() for _, row in rows]
    return LabeledImages(paths, np.array(labels, dtype=np.int64), names)


def read_split(
    source: str | Path,
    split: str | None = None,
    classes: Sequence[str] | None = None,
) -> LabeledImages:
    """A split given as ``<source>/<split>`` image folder, or as a CSV file ``source``."""
    src = Path(source)
    if src.suffix.lower() == ".csv":
        return read_label_csv(src, classes=classes)
    return read_image_folder(src / split if split else src, classes=classes)


def check_disjoint(train: LabeledImages, test: LabeledImages) -> None:
    """Refuse a train set that shares images with the test set."""
    shared = {p.resolve() for p in train.paths} & {p.resolve() for p in test.paths}
    if shared:
        example = sorted(shared)[0]
        raise DataError(f"the train and test sets share {len(shared)} image(s), e.g. {example}")


__all__ = [
    "FER2013_CLASSES",
    "IMAGE_EXTENSIONS",
    "LabeledImages",
    "check_disjoint",
    "read_image_folder",
    "read_label_csv",
    "read_split",
]
