"""The options the protocol examples share (``fer.py``, ``verify.py``): ``--quick``, ``--data``, ``--out``.

The examples import it by name: Python puts a script's own folder first on ``sys.path``, so
``python examples/fer.py`` finds it from any working directory.
"""

from __future__ import annotations

import argparse
from pathlib import Path


def example_parser(doc: str, quick: str, out: str) -> argparse.ArgumentParser:
    """A parser described by ``doc``'s first line: ``--quick`` (help ``quick``), ``--data`` (the shared
    data folder, default ``../shared/data``) and ``--out`` (default ``out``)."""
    parser = argparse.ArgumentParser(description=doc.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help=quick)
    parser.add_argument("--data", type=Path, default=Path("../shared/data"), help="the shared data folder")
    parser.add_argument("--out", type=Path, default=Path(out))
    return parser
