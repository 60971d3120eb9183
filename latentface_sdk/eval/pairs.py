"""Read verification pairs files in the LFW ``pairs.txt`` layout.

Two line formats are understood, and may be mixed in one file:

* LFW's numeric format over ``<root>/<name>/<name>_%04d.jpg``:
  ``name i j`` (same person) and ``name1 i name2 j`` (different people);
* the file-name variant of ``celeba10k/pairs_verify.txt``, with images in one folder:
  ``identity imageA imageB`` and ``identityA imageA identityB imageB``.

The first line is the header: ``folds<TAB>n`` (``folds`` folds of ``n`` same-person pairs followed by
``n`` different-people pairs), or LFW's older single number ``n`` (one fold: ``n`` same, then ``n``
different). Fields may be separated by tabs or spaces; blank lines are ignored.

Malformed lines raise :class:`~latentface_sdk.errors.DataError` naming the file and line. Pairs that
name a missing image are counted, reported with a warning and skipped (see :attr:`PairSet.missing`).
"""

from __future__ import annotations

import warnings
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Literal

import numpy as np

from ..errors import DataError, read_data_text

LineFormat = Literal["auto", "lfw", "names"]


@dataclass(frozen=True)
class Pair:
    """One verification pair: two image paths, whether they show the same person, and its fold."""

    path_a: Path
    path_b: Path
    same: bool
    fold: int
    identity_a: str
    identity_b: str
    line: int


@dataclass(frozen=True)
class MissingImage:
    """A pairs line that was skipped because one of its images does not exist."""

    line: int
    path: Path
    fold: int


@dataclass
class PairSet:
    """The pairs of a pairs file, with their folds; pairs naming missing images are left out."""

    pairs: list[Pair]
    n_folds: int
    source: Path | None = None
    missing: list[MissingImage] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.pairs)

    @property
    def labels(self) -> np.ndarray:
        """``(P,)`` bool: True for same-person pairs."""
        return np.array([p.same for p in self.pairs], dtype=bool)

    @property
    def folds(self) -> np.ndarray:
        """``(P,)`` int: the fold of each pair."""
        return np.array([p.fold for p in self.pairs], dtype=np.int64)

    def fold_ids(self) -> list[int]:
        """The folds that hold at least one pair, sorted."""
        return sorted({p.fold for p in self.pairs})

    def images(self) -> list[Path]:
        """Every image named by a pair, once each, in order of first appearance."""
        return list(dict.fromkeys(path for p in self.pairs for path in (p.path_a, p.path_b)))

    def indices(self, images: Sequence[Path] | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Row indices of each pair's two images in ``images`` (default :meth:`images`)."""
        order = {path: i for i, path in enumerate(self.images() if images is None else images)}
        a = np.array([order[p.path_a] for p in self.pairs], dtype=np.int64)
        b = np.array([order[p.path_b] for p in self.pairs], dtype=np.int64)
        return a, b

    def select_folds(self, folds: Iterable[int]) -> PairSet:
        """Only the pairs of ``folds`` (for quick runs); unknown fold numbers raise DataError."""
        wanted = set(folds)
        unknown = wanted - set(range(self.n_folds))
        if unknown:
            raise DataError(f"no fold(s) {sorted(unknown)} in a file of {self.n_folds} folds (0-based)")
        kept = [p for p in self.pairs if p.fold in wanted]
        missing = [m for m in self.missing if m.fold in wanted]
        return replace(self, pairs=kept, missing=missing)

    def fold_identities(self) -> dict[int, set[str]]:
        """The identities that appear in each fold (LFW's folds are identity-disjoint)."""
        out: dict[int, set[str]] = {}
        for p in self.pairs:
            out.setdefault(p.fold, set()).update((p.identity_a, p.identity_b))
        return out


def read_pairs(
    path: str | Path,
    root: str | Path | None = None,
    *,
    image_dir: str | Path | None = None,
    line_format: LineFormat = "auto",
    check_files: bool = True,
) -> PairSet:
    """Parse a pairs file into a :class:`PairSet`.

    ``root`` (default: the pairs file's folder) holds LFW's ``<name>/<name>_%04d.jpg`` images; images
    named by file name are looked up in ``image_dir``, else ``<root>/images`` when that folder exists,
    else ``root`` itself. ``line_format`` forces ``"lfw"`` (numeric) or ``"names"`` lines; ``"auto"``
    decides per line (numeric when the image fields are integers). With ``check_files`` (default), pairs
    naming a missing image are skipped, recorded in :attr:`PairSet.missing` and reported by a warning.
    """
    source = Path(path)
    text = read_data_text(source, "pairs file")
    base = Path(root) if root is not None else source.parent
    if image_dir is not None:
        names_dir = Path(image_dir)
    else:
        names_dir = base / "images" if (base / "images").is_dir() else base

    numbered = [(i + 1, line.split()) for i, line in enumerate(text.splitlines())]
    numbered = [(n, toks) for n, toks in numbered if toks]
    if not numbered:
        raise DataError(f"{source}: empty pairs file")
    header_line, header = numbered[0]
    n_folds, per_fold = _parse_header(header, source, header_line)
    body = numbered[1:]
    expected = n_folds * 2 * per_fold
    if len(body) != expected:
        raise DataError(
            f"{source}: the header announces {n_folds} fold(s) of {per_fold} same + {per_fold} different "
            f"pairs ({expected} lines) but the file has {len(body)} pair lines"
        )

    pairs: list[Pair] = []
    for k, (line_no, toks) in enumerate(body):
        fold = k // (2 * per_fold)
        pairs.append(_parse_line(toks, line_format, base, names_dir, fold, source, line_no))

    missing: list[MissingImage] = []
    if check_files:
        exists: dict[Path, bool] = {}
        kept: list[Pair] = []
        for p in pairs:
            absent = [q for q in (p.path_a, p.path_b) if not exists.setdefault(q, q.is_file())]
            if absent:
                missing.extend(MissingImage(p.line, q, p.fold) for q in absent)
            else:
                kept.append(p)
        if missing:
            skipped = len(pairs) - len(kept)
            shown = ", ".join(f"line {m.line}: {m.path}" for m in missing[:5])
            more = f" (and {len(missing) - 5} more)" if len(missing) > 5 else ""
            warnings.warn(
                f"{source}: skipped {skipped} pair(s) naming {len(missing)} missing image(s): {shown}{more}",
                stacklevel=2,
            )
        pairs = kept
    return PairSet(pairs=pairs, n_folds=n_folds, source=source, missing=missing)


def _parse_header(toks: list[str], source: Path, line_no: int) -> tuple[int, int]:
    try:
        values = [int(t) for t in toks]
    except ValueError:
        values = []
    if len(values) == 2 and values[0] >= 1 and values[1] >= 1:
        return values[0], values[1]
    if len(values) == 1 and values[0] >= 1:
        return 1, values[0]
    raise DataError(
        f"{source}:{line_no}: expected a header 'folds<TAB>pairs_per_fold' or 'pairs_per_class', "
        f"got {' '.join(toks)!r}"
    )


def _is_index(token: str) -> bool:
    return token.isdigit()


def _parse_line(
    toks: list[str],
    line_format: LineFormat,
    root: Path,
    names_dir: Path,
    fold: int,
    source: Path,
    line_no: int,
) -> Pair:
    where = f"{source}:{line_no}"
    if len(toks) == 3:
        ida, a, b = toks
        idb = ida
        same = True
    elif len(toks) == 4:
        ida, a, idb, b = toks
        same = False
    else:
        raise DataError(
            f"{where}: expected 'name A B' or 'nameA A nameB B' (3 or 4 fields), got {len(toks)} field(s): "
            f"{' '.join(toks)!r}"
        )
    numeric = _is_index(a) and _is_index(b)
    if line_format == "lfw" and not numeric:
        raise DataError(f"{where}: expected image numbers in LFW's numeric format, got {a!r} and {b!r}")
    if line_format == "names" or (line_format == "auto" and not numeric):
        if _is_index(a) != _is_index(b) and line_format == "auto":
            raise DataError(f"{where}: mixes an image number and a file name ({a!r}, {b!r})")
        return Pair(names_dir / a, names_dir / b, same, fold, ida, idb, line_no)
    ia, ib = int(a), int(b)
    if ia < 1 or ib < 1:
        raise DataError(f"{where}: LFW image numbers start at 1, got {ia} and {ib}")
    return Pair(_lfw_path(root, ida, ia), _lfw_path(root, idb, ib), same, fold, ida, idb, line_no)


def _lfw_path(root: Path, name: str, index: int) -> Path:
    return root / name / f"{name}_{index:04d}.jpg"


__all__ = ["Pair", "PairSet", "MissingImage", "read_pairs"]
