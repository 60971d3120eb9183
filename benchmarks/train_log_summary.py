"""Medians of a stage-1 training log over step windows: how pose, depth and reconstruction developed.

    python benchmarks/train_log_summary.py runs/s1/train.log

Prints the markdown table of docs/training.md ("pose health of the training batches"): for each window
of steps, the median of the logged ``l1``, ``landmark``, ``yaw_r``, ``yaw_std``, ``nose_relief`` and
``cycle_light`` values (a key missing from the log shows as ``-``).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

KEYS = ("l1", "landmark", "yaw_r", "yaw_std", "nose_relief", "cycle_light")
WINDOWS = ((1, 100), (401, 500), (901, 1000), (1901, 2000), (2901, 3000), (3901, 4000), (4901, 5000))


def summarize(rows: list[dict[str, float]], windows: tuple[tuple[int, int], ...] = WINDOWS) -> list[str]:
    """Markdown lines: one row per window that holds logged steps."""
    lines = ["| steps | " + " | ".join(f"`{k}`" for k in KEYS) + " |", "|---|" + "---:|" * len(KEYS)]
    for lo, hi in windows:
        sel = [r for r in rows if lo <= r["step"] <= hi]
        if not sel:
            continue
        cells = []
        for k in KEYS:
            vals = [r[k] for r in sel if k in r]
            cells.append(f"{float(np.median(vals)):.3f}" if vals else "-")
        lines.append(f"| {lo}-{hi} | " + " | ".join(cells) + " |")
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("log", type=Path, help="a stage-1 train.log (one JSON object per line)")
    args = parser.parse_args(argv)
    rows = [json.loads(line) for line in args.log.read_text().splitlines() if line.strip()]
    print("\n".join(summarize(rows)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
