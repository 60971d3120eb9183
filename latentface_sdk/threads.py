"""How many CPU threads torch uses for each batch of :class:`~latentface_sdk.FaceEncoder` work.

``threads="auto"`` (the default) looks, before every batch, at how many other processes are running
right now (the runnable count in ``/proc/loadavg``) and uses the cores they leave free: all of them on
an idle machine, fewer when other busy processes share it, so that torch's threads do not wait on each
other for a core. Measured by ``benchmarks/contention.py`` (docs/benchmarks.md, section 6): on a 2-core
machine it keeps 83-100% of the best setting beside one competing process and 94-97% when idle; torch's
own default did about as well against the competitors tried there.
``auto`` never uses more threads than torch is set to (``torch.set_num_threads``, ``OMP_NUM_THREADS``),
so a lower setting of yours is kept. An integer fixes the count; ``None`` leaves torch's setting alone.
The previous setting is restored when the call returns.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Literal, TypeAlias

import torch

__all__ = ["Threads", "choose_threads", "free_cores", "thread_scope"]

logger = logging.getLogger("latentface_sdk")

#: ``"auto"``, a fixed count, or ``None`` (torch's setting).
Threads: TypeAlias = int | Literal["auto"] | None


def _cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # not Linux
        return os.cpu_count() or 1


def _runnable() -> int | None:
    """Runnable threads on the machine now, ours included (``/proc/loadavg``'s ``running/total``)."""
    try:
        with open("/proc/loadavg", encoding="ascii") as fh:
            return int(fh.read().split()[3].split("/")[0])
    except (OSError, ValueError, IndexError):
        return None


def _own_running() -> int:
    """Threads of this process that are running now (this one included): torch's pool may still spin."""
    count = 0
    try:
        for task in os.scandir("/proc/self/task"):
            try:
                with open(f"{task.path}/stat", encoding="ascii", errors="replace") as fh:
                    if fh.read().rsplit(")", 1)[1].split()[0] == "R":
                        count += 1
            except (OSError, IndexError):
                continue
    except OSError:
        return 1
    return max(count, 1)


def free_cores() -> int | None:
    """Cores not taken by other processes' running threads (at least 1), or None where the system does not
    say."""
    running = _runnable()
    if running is None:
        return None
    return max(1, _cores() - max(0, running - _own_running()))


def choose_threads(setting: Threads, cap: int | None = None) -> int | None:
    """The thread count for the next batch under ``setting`` (None: leave torch as it is).

    ``auto`` never goes above ``cap`` (default: torch's current setting).
    """
    if setting is None:
        return None
    if setting == "auto":
        free = free_cores()
        return None if free is None else min(free, torch.get_num_threads() if cap is None else cap)
    if isinstance(setting, bool) or not isinstance(setting, int) or setting < 1:
        raise ValueError(f"threads must be 'auto', a positive integer or None (got {setting!r})")
    return setting


@contextmanager
def thread_scope(setting: Threads) -> Iterator[Callable[[], None]]:
    """Run the block with :func:`choose_threads` of ``setting``; torch's previous setting is restored after.

    Yields a function that chooses again (call it before each batch: the load changes); ``auto`` never
    goes above the setting the block started with.
    """
    before = torch.get_num_threads()

    def refresh() -> None:
        chosen = choose_threads(setting, cap=before)  # capped by the setting the block started with
        if chosen is not None and chosen != torch.get_num_threads():
            logger.debug("latentface_sdk: %d torch CPU thread(s) for this batch (threads=%r)", chosen,
                         setting)
            torch.set_num_threads(chosen)

    refresh()
    try:
        yield refresh
    finally:
        if torch.get_num_threads() != before:
            torch.set_num_threads(before)
