"""Side-by-side markdown tables and JSON files of evaluation results."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from .fer import FERResult
from .verification import VerificationResult


def markdown_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """A GitHub-flavoured markdown table; the first column left-aligned, the others right-aligned."""
    widths = [max(len(str(c)) for c in col) for col in zip(header, *rows, strict=True)]

    def line(cells: Sequence[str]) -> str:
        padded = [
            str(c).rjust(w) if i else str(c).ljust(w)
            for i, (c, w) in enumerate(zip(cells, widths, strict=True))
        ]
        return "| " + " | ".join(padded) + " |"

    rule = (
        "|"
        + "|".join(("-" * (w + 1) + ":") if i else ":" + "-" * (w + 1) for i, w in enumerate(widths))
        + "|"
    )
    return "\n".join([line(header), rule, *(line(r) for r in rows)]) + "\n"


def _pm(mean: float, sem: float) -> str:
    return f"{100 * mean:.2f} ± {100 * sem:.2f}"


def verification_table(results: Sequence[VerificationResult]) -> str:
    """Features, dimension, probe accuracy, cosine accuracy (% mean ± s.e. over folds), AUCs."""
    rows = []
    for r in results:
        rows.append(
            [
                r.feature,
                str(r.dim),
                _pm(*r.probe_mean_sem),
                _pm(*r.cosine_mean_sem),
                f"{r.roc('probe')[2]:.3f}",
                f"{r.roc('cosine')[2]:.3f}",
            ]
        )
    header = ["features", "dim", "probe acc (%)", "cosine acc (%)", "probe AUC", "cosine AUC"]
    return markdown_table(header, rows)


def fer_table(results: Sequence[FERResult]) -> str:
    """Features, dimension, test accuracy and macro-F1 (%)."""
    rows = [[r.feature, str(r.dim), f"{100 * r.accuracy:.2f}", f"{100 * r.macro_f1:.2f}"] for r in results]
    return markdown_table(["features", "dim", "accuracy (%)", "macro-F1 (%)"], rows)


def write_json(path: str | Path, payload: Any) -> Path:
    """Write ``payload`` as indented JSON (UTF-8)."""
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(payload, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    return out


__all__ = ["fer_table", "markdown_table", "verification_table", "write_json"]
