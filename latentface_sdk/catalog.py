"""Which models can be loaded here: the bundled ones and those in the local Hugging Face cache.

:func:`list_pretrained` reads only files on disk (never the network) and describes each model by its
``config.json`` and the first sentence of its model card (``README.md``), as ``latentface models`` prints.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from . import _paths
from .hub import hub_cache_dir
from .model_folder import CARD_NAME, CONFIG_NAME, is_model_folder, recorded_checksum

__all__ = ["PretrainedModel", "list_pretrained", "card_summary"]


@dataclass(frozen=True)
class PretrainedModel:
    """One loadable model: the ``name`` to pass to ``FaceEncoder.from_pretrained`` (a bundled name or a Hub
    id), where it comes from, its folder, the weights' SHA-256 from ``config.json`` (None if unrecorded or
    unreadable) and the model card's first sentence (empty without a card)."""

    name: str
    source: Literal["bundled", "hub-cache"]
    path: Path
    checksum: str | None
    summary: str


def card_summary(readme: Path, limit: int = 160) -> str:
    """The first sentence of a model card's first paragraph of prose (front matter, headings and tables
    skipped), at most ``limit`` characters; ``""`` when there is none."""
    try:
        text = readme.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return ""
    if text.startswith("---"):
        end = text.find("\n---", 3)
        text = text[end + 4:] if end >= 0 else ""
    paragraph: list[str] = []
    fenced = False
    for line in text.splitlines():
        stripped = line.strip()
        if stripped.startswith(("```", "~~~")):  # a code block is never the summary
            fenced = not fenced
            if paragraph:
                break
            continue
        if fenced:
            continue
        if not stripped:
            if paragraph:
                break
            continue
        if stripped.startswith(("#", "|", "!", "<", "```", "-", "*", ">")) and not paragraph:
            continue
        paragraph.append(stripped)
    prose = " ".join(paragraph)
    match = re.match(r"(.+?[.!?])(\s|$)", prose)
    sentence = match.group(1) if match else prose
    return sentence if len(sentence) <= limit else sentence[: limit - 3].rstrip() + "..."


def _describe(name: str, source: Literal["bundled", "hub-cache"], folder: Path) -> PretrainedModel:
    return PretrainedModel(name, source, folder, recorded_checksum(folder), card_summary(folder / CARD_NAME))


def list_pretrained(cache_dir: str | os.PathLike[str] | None = None) -> list[PretrainedModel]:
    """The bundled models (sorted), then the Hub models in the local cache (``cache_dir``, default the SDK's
    Hub cache, :func:`latentface_sdk.hub.hub_cache_dir`) whose newest snapshot holds ``config.json`` and
    ``model.safetensors``. Reads only local files."""
    out = [_describe(n, "bundled", _paths.bundled_weights_dir() / n) for n in _paths.list_bundled()]
    root = hub_cache_dir(cache_dir)
    try:
        repos = sorted(p for p in root.iterdir() if p.is_dir() and p.name.startswith("models--"))
    except OSError:
        repos = []
    for repo in repos:
        snapshots = repo / "snapshots"
        try:
            folders = [p for p in snapshots.iterdir() if is_model_folder(p)]
        except OSError:
            continue
        if folders:
            newest = max(folders, key=lambda p: (p / CONFIG_NAME).stat().st_mtime)
            repo_id = repo.name[len("models--"):].replace("--", "/")
            out.append(_describe(repo_id, "hub-cache", newest))
    return out
