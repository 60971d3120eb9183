"""Where the bundled checkpoints live, in an installed wheel and in a source or editable checkout.

A wheel carries them as package data in ``latentface_sdk/weights/<name>/`` (``pyproject.toml`` maps the
repository's top-level ``weights/`` folder there); a checkout keeps them in ``<repo>/weights/<name>/``.
"""

from __future__ import annotations

from pathlib import Path

from .config import CONFIG_NAME

PACKAGE_DIR: Path = Path(__file__).resolve().parent
"""The installed (or checked-out) ``latentface_sdk`` package folder; tests point it at a temporary tree."""


def _candidates(package_dir: Path) -> list[Path]:
    """Places the bundled weights may be, most specific first."""
    found = [package_dir / "weights"]
    repo = package_dir.parent
    # Only a real source checkout counts: a stray top-level ``weights/`` in site-packages must not.
    if (repo / "pyproject.toml").is_file():
        found.append(repo / "weights")
    return found


def bundled_weights_dir() -> Path:
    """The folder holding the bundled checkpoints (one sub-folder per model name).

    Looks in the installed package (``latentface_sdk/weights``) first, then in the source checkout
    (``<repo>/weights``, recognised by the ``pyproject.toml`` beside the package). When neither exists
    the installed location is returned anyway, so callers get a path that simply holds no models.
    """
    candidates = _candidates(PACKAGE_DIR)
    for folder in candidates:
        if folder.is_dir():
            return folder
    return candidates[0]


def list_bundled() -> list[str]:
    """Names of the bundled checkpoints: the sub-folders of :func:`bundled_weights_dir` with a
    ``config.json``.

    Sorted, so the answer does not depend on the file system's listing order; empty when none ship.
    """
    root = bundled_weights_dir()
    if not root.is_dir():
        return []
    return sorted(p.name for p in root.iterdir() if p.is_dir() and (p / CONFIG_NAME).is_file())
