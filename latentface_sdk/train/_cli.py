"""What the ``latentface-train`` commands share: their parsers, the stage-1 data options, the error exit."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .recipes import Stage1Config


def command_parser(command: str, description: str | None, epilog: str) -> argparse.ArgumentParser:
    """The parser of ``latentface-train COMMAND``, its examples (``epilog``) printed as written."""
    return argparse.ArgumentParser(prog=f"latentface-train {command}", description=description, epilog=epilog,
                                   formatter_class=argparse.RawDescriptionHelpFormatter)


def add_data_options(parser: argparse.ArgumentParser, *, cache_default: Path | None, cache_note: str,
                     sample_note: str) -> None:
    """``--shared-root``, ``--cache-dir`` and ``--max-images``, which :func:`stage1_recipe` applies."""
    parser.add_argument("--shared-root", type=Path,
                        help="folder of the shared data sets (for shared:* sources)")
    parser.add_argument("--cache-dir", type=Path, default=cache_default,
                        help=f"where face crops are cached ({cache_note})")
    parser.add_argument("--max-images", type=int, help=f"use only the first N images ({sample_note})")


def stage1_recipe(args: argparse.Namespace) -> Stage1Config:
    """The stage-1 recipe of ``--config`` (else the built-in one) with ``--shared-root`` and
    ``--max-images`` applied."""
    from .recipes import Stage1Config

    cfg = Stage1Config.load(args.config) if args.config else Stage1Config()
    if args.shared_root is not None:
        cfg.shared_root = str(args.shared_root)
    if args.max_images is not None:
        cfg.max_images = args.max_images
    return cfg


def error_exit(exc: Exception) -> int:
    """Print ``error: <exc>`` to stderr; the exit code of a command that failed on its inputs (2)."""
    print(f"error: {exc}", file=sys.stderr)
    return 2
