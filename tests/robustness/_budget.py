"""How many examples each property test of this suite runs.

The defaults keep the whole suite well under two minutes on one CPU thread. For a longer soak, scale
them all: ``ROBUSTNESS_SCALE=40 pytest tests/robustness --hypothesis-show-statistics``.
"""

from __future__ import annotations

import os

SCALE = float(os.environ.get("ROBUSTNESS_SCALE", "1"))


def examples(n: int) -> int:
    """``n`` examples, times ``$ROBUSTNESS_SCALE`` (at least 1)."""
    return max(1, round(n * SCALE))
