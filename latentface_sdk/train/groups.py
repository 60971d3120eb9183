"""Identity groups for stage 2: sets of images that show one person (a video, or photos of one identity).

The representation diffusion model learns ``Z_id`` as the mean latent of several images of one person,
so stage 2 reads its data as *groups*. Every reader returns a :class:`GroupedImages` (absolute image
paths and a group label per image) and drops groups smaller than ``min_size``:

- :func:`read_group_manifest`: a CSV with columns ``path,group`` (any data set);
- :func:`celeba_identity_groups`: ``celeba10k/identity.csv`` (the ``train`` split; ``verify`` is refused
  unless asked for explicitly, since it is held out for verification);
- :func:`imfdb_groups`: ``imfdb/labels.csv`` (film stills of a few actors);
- :func:`labelled_groups`: any folder with ``labels.csv`` (image, identity) and ``images/``: the Taiwan
  corpus, the London set, ORL, the CelebA in-the-wild originals (the same person in several expressions);
- :func:`voxceleb_groups`: a VoxCeleb-layout tree ``<person>/<video>/<frame>.jpg`` (group = one video).
"""

from __future__ import annotations

import csv
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import DataError, read_data_text

__all__ = [
    "GroupedImages",
    "IMAGE_SUFFIXES",
    "read_group_manifest",
    "celeba_identity_groups",
    "imfdb_groups",
    "labelled_groups",
    "labelled_rows",
    "voxceleb_groups",
]

#: File name suffixes (lower case) treated as images when walking a folder tree.
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp")


@dataclass
class GroupedImages:
    """Image paths with one group label each (images of one group show one person).

    ``groups`` are strings (e.g. ``"celeba:2880"``, ``"id10001/1zcIwhmdeo4"``) or integer codes; they
    are compared for equality only. ``source`` is a free-form description of where the data came from.
    """

    paths: list[str]
    groups: Sequence[str | int]
    source: str = ""

    def __post_init__(self) -> None:
        self.paths = [str(p) for p in self.paths]
        self.groups = list(self.groups)
        if len(self.paths) != len(self.groups):
            raise DataError(f"{len(self.paths)} paths but {len(self.groups)} group labels")

    def __len__(self) -> int:
        return len(self.paths)

    @property
    def num_groups(self) -> int:
        """How many distinct groups there are."""
        return len(set(self.groups))

    def group_sizes(self) -> dict[str | int, int]:
        """Number of images per group."""
        return dict(Counter(self.groups))

    def group_indices(self) -> list[np.ndarray]:
        """Indices (into ``paths``) of each group's images, groups in order of first appearance."""
        index: dict[str | int, list[int]] = {}
        for i, g in enumerate(self.groups):
            index.setdefault(g, []).append(i)
        return [np.asarray(v, dtype=np.int64) for v in index.values()]

    def subset(self, keep: Sequence[int] | np.ndarray) -> GroupedImages:
        """The images at indices ``keep`` (in that order)."""
        idx = [int(i) for i in keep]
        return GroupedImages(
            [self.paths[i] for i in idx],
            [self.groups[i] for i in idx],
            source=self.source,
        )

    def filter_min_size(self, min_size: int) -> GroupedImages:
        """Drop the groups with fewer than ``min_size`` images (order of the rest kept)."""
        if min_size < 1:
            raise ValueError(f"min_size must be at least 1 (got {min_size})")
        sizes = Counter(self.groups)
        return self.subset([i for i, g in enumerate(self.groups) if sizes[g] >= min_size])

    def prefixed(self, prefix: str) -> GroupedImages:
        """The same images with group labels ``f"{prefix}:{group}"`` (to combine data sets safely)."""
        return GroupedImages(self.paths, [f"{prefix}:{g}" for g in self.groups], source=self.source)

    @staticmethod
    def concat(parts: Iterable[GroupedImages]) -> GroupedImages:
        """Several data sets as one (group labels must already be distinct across them)."""
        paths: list[str] = []
        groups: list[str | int] = []
        sources: list[str] = []
        for part in parts:
            paths.extend(part.paths)
            groups.extend(part.groups)
            if part.source:
                sources.append(part.source)
        return GroupedImages(paths, groups, source=" + ".join(sources))


def _read_csv(csv_path: Path, required: Sequence[str]) -> list[tuple[int, dict[str, str]]]:
    """Rows of a headed CSV as ``(line number, row)``; DataError naming the bad lines."""
    text = read_data_text(csv_path, encoding="utf-8-sig")
    reader = csv.reader(text.splitlines())
    try:
        header = [h.strip() for h in next(reader)]
    except StopIteration:
        raise DataError(f"{csv_path}: empty file (expected a header with columns "
                        f"{', '.join(required)})") from None
    missing = [c for c in required if c not in header]
    if missing:
        raise DataError(
            f"{csv_path}, line 1: header {header} lacks the column(s) {missing} "
            f"(expected {', '.join(required)})"
        )
    rows: list[tuple[int, dict[str, str]]] = []
    problems: list[str] = []
    for line_no, fields in enumerate(reader, start=2):
        if not fields or all(not f.strip() for f in fields):
            continue  # blank line
        if len(fields) != len(header):
            problems.append(f"line {line_no}: {len(fields)} fields, expected {len(header)}")
            continue
        row = {h: f.strip() for h, f in zip(header, fields, strict=True)}
        empty = [c for c in required if not row[c]]
        if empty:
            problems.append(f"line {line_no}: empty {', '.join(empty)}")
            continue
        rows.append((line_no, row))
    if problems:
        shown = "; ".join(problems[:10]) + (f"; ... ({len(problems) - 10} more)"
                                            if len(problems) > 10 else "")
        raise DataError(f"{csv_path}: {len(problems)} malformed row(s): {shown}")
    return rows


def _check_exist(paths: Sequence[str], lines: Sequence[int], where: Path) -> None:
    missing = [(ln, p) for ln, p in zip(lines, paths, strict=True) if not Path(p).is_file()]
    if missing:
        shown = "; ".join(f"line {ln}: {p}" for ln, p in missing[:5])
        more = f"; ... ({len(missing) - 5} more)" if len(missing) > 5 else ""
        raise DataError(f"{where}: {len(missing)} image(s) not found: {shown}{more}")


def read_group_manifest(csv_path: str | Path, *, min_size: int = 2,
                        check_exists: bool = True) -> GroupedImages:
    """Read a group manifest: a CSV with a header and the columns ``path`` and ``group`` (others ignored).

    Relative paths are resolved against the CSV's folder. Rows with a wrong number of fields or an
    empty path or group raise :class:`~latentface_sdk.errors.DataError` naming their line numbers, as do
    missing images when ``check_exists``. Groups with fewer than ``min_size`` images are dropped.
    """
    csv_path = Path(csv_path)
    rows = _read_csv(csv_path, ("path", "group"))
    if not rows:
        raise DataError(f"{csv_path}: no rows")
    base = csv_path.resolve().parent
    paths = [str(base / row["path"]) if not Path(row["path"]).is_absolute() else row["path"]
             for _, row in rows]
    if check_exists:
        _check_exist(paths, [ln for ln, _ in rows], csv_path)
    groups = [row["group"] for _, row in rows]
    return GroupedImages(paths, groups, source=f"manifest {csv_path}").filter_min_size(min_size)


def _dataset_dir(root: str | Path, name: str, marker: str) -> Path:
    """``root/name`` when ``root`` is the shared data folder, or ``root`` itself when it is that data set."""
    root = Path(root)
    if (root / marker).is_file():
        return root
    if (root / name / marker).is_file():
        return root / name
    raise DataError(f"{root}: neither {root / marker} nor {root / name / marker} exists")


def celeba_identity_groups(
    root: str | Path,
    split: str = "train",
    *,
    min_size: int = 2,
    allow_verify: bool = False,
    check_exists: bool = True,
) -> GroupedImages:
    """CelebA images grouped by identity, from ``celeba10k/identity.csv`` (columns image, identity, split).

    ``root`` is the shared data folder (holding ``celeba10k/``) or the ``celeba10k`` folder itself.
    ``split`` is ``"train"`` or ``"verify"``; the ``verify`` identities are held out for measuring face
    verification and must never be trained on, so reading them needs ``allow_verify=True`` (for
    evaluation code). Group labels are ``"celeba:<identity>"``.
    """
    if split not in ("train", "verify"):
        raise DataError(f"celeba split must be 'train' or 'verify' (got {split!r})")
    if split == "verify" and not allow_verify:
        raise DataError(
            "the celeba10k 'verify' identities are held out for evaluation and must not be used for "
            "training; pass allow_verify=True only to evaluate on them"
        )
    folder = _dataset_dir(root, "celeba10k", "identity.csv")
    rows = _read_csv(folder / "identity.csv", ("image", "identity", "split"))
    bad = [ln for ln, row in rows if row["split"] not in ("train", "verify")]
    if bad:
        raise DataError(f"{folder / 'identity.csv'}: unknown split on line(s) {bad[:10]}")
    chosen = [(ln, row) for ln, row in rows if row["split"] == split]
    paths = [str(folder / "images" / row["image"]) for _, row in chosen]
    if check_exists:
        _check_exist(paths, [ln for ln, _ in chosen], folder / "identity.csv")
    groups = [f"celeba:{row['identity']}" for _, row in chosen]
    return GroupedImages(paths, groups, source=f"celeba10k {split}").filter_min_size(min_size)


def imfdb_groups(root: str | Path, *, min_size: int = 2, check_exists: bool = True) -> GroupedImages:
    """IMFDB film stills grouped by actor, from ``imfdb/labels.csv`` (columns image, identity, expression).

    ``root`` is the shared data folder (holding ``imfdb/``) or the ``imfdb`` folder itself. Group labels
    are ``"imfdb:<identity>"``.
    """
    folder = _dataset_dir(root, "imfdb", "labels.csv")
    rows = _read_csv(folder / "labels.csv", ("image", "identity"))
    paths = [str(folder / "images" / row["image"]) for _, row in rows]
    if check_exists:
        _check_exist(paths, [ln for ln, _ in rows], folder / "labels.csv")
    groups = [f"imfdb:{row['identity']}" for _, row in rows]
    return GroupedImages(paths, groups, source="imfdb").filter_min_size(min_size)


def labelled_rows(folder: str | Path) -> list[tuple[str, str]]:
    """``(image path, identity)`` of each row of ``<folder>/labels.csv`` (columns image, identity; images
    in ``<folder>/images``), in file order."""
    base = Path(folder)
    return [(str(base / "images" / row["image"]), row["identity"]) for _, row in _labels(base)]


def _labels(base: Path) -> list[tuple[int, dict[str, str]]]:
    """The rows of ``<base>/labels.csv`` with their line numbers; DataError when there is none."""
    if not (base / "labels.csv").is_file():
        raise DataError(f"{base}: no labels.csv (expected a folder with labels.csv and images/)")
    return _read_csv(base / "labels.csv", ("image", "identity"))


def labelled_groups(folder: str | Path, *, holdout: Sequence[str] = (), min_size: int = 2,
                    check_exists: bool = True) -> GroupedImages:
    """A shared set's images grouped by person, from ``<folder>/labels.csv`` (:func:`labelled_rows`).

    Identities in ``holdout`` are left out (measured on, never trained on). Group labels are
    ``"<folder name>:<identity>"``.
    """
    base = Path(folder)
    held = set(holdout)
    rows = [(line, r) for line, r in _labels(base) if r["identity"] not in held]
    paths = [str(base / "images" / row["image"]) for _, row in rows]
    if check_exists:
        _check_exist(paths, [line for line, _ in rows], base / "labels.csv")
    groups = [f"{base.name}:{row['identity']}" for _, row in rows]
    return GroupedImages(paths, groups, source=base.name).filter_min_size(min_size)


def voxceleb_groups(root: str | Path, *, min_size: int = 2) -> GroupedImages:
    """Frames of a VoxCeleb-layout tree ``<root>/<person>/<video>/<frame>.jpg``, one group per video.

    Group labels are ``"<person>/<video>"``; frames are sorted by name within a video, videos and people
    by name. Files at other depths and non-image files are ignored; a tree with no frames at all raises
    :class:`~latentface_sdk.errors.DataError`.
    """
    root = Path(root)
    if not root.is_dir():
        raise DataError(f"{root}: not a folder (expected <person>/<video>/<frame>.jpg below it)")
    paths: list[str] = []
    groups: list[str] = []
    for person in sorted(p for p in root.iterdir() if p.is_dir()):
        for video in sorted(v for v in person.iterdir() if v.is_dir()):
            frames = sorted(f for f in video.iterdir() if f.is_file() and f.suffix.lower() in IMAGE_SUFFIXES)
            paths.extend(str(f) for f in frames)
            groups.extend([f"{person.name}/{video.name}"] * len(frames))
    if not paths:
        raise DataError(f"{root}: no frames found in the <person>/<video>/<frame>.jpg layout")
    return GroupedImages(paths, groups, source=f"voxceleb {root}").filter_min_size(min_size)
