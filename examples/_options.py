"""What the examples share: the options of the protocol examples (``fer.py``, ``verify.py``: ``--quick``,
``--data``, ``--out``) and the held-out CelebA faces the picture examples show (``pictures.py``,
``frontal_photo.py``).

The examples import it by name: Python puts a script's own folder first on ``sys.path``, so
``python examples/fer.py`` finds it from any working directory.
"""

from __future__ import annotations

import argparse
import csv
from pathlib import Path


def example_parser(doc: str, quick: str, out: str) -> argparse.ArgumentParser:
    """A parser described by ``doc``'s first line: ``--quick`` (help ``quick``), ``--data`` (the shared
    data folder, default ``../shared/data``) and ``--out`` (default ``out``)."""
    parser = argparse.ArgumentParser(description=doc.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help=quick)
    parser.add_argument("--data", type=Path, default=Path("../shared/data"), help="the shared data folder")
    parser.add_argument("--out", type=Path, default=Path(out))
    return parser


def held_out_faces(celeba: Path, count: int) -> list[Path]:
    """The first image of each of the first ``count`` ``verify`` identities of celeba10k (held out)."""
    seen: set[str] = set()
    paths: list[Path] = []
    with open(celeba / "identity.csv", newline="", encoding="utf-8") as fh:
        for row in csv.DictReader(fh):
            if row["split"] == "verify" and row["identity"] not in seen:
                seen.add(row["identity"])
                paths.append(celeba / "images" / row["image"])
                if len(paths) == count:
                    break
    return paths
