"""CPU threads per batch: 'auto' leaves the cores other processes use, a count is kept, torch is restored."""

from __future__ import annotations

import subprocess
import sys
import time

import numpy as np
import pytest
import torch

from latentface_sdk import threads
from latentface_sdk.threads import choose_threads, free_cores, thread_scope


def test_auto_counts_other_running_processes(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(threads, "_cores", lambda: 4)
    monkeypatch.setattr(threads, "_own_running", lambda: 1)
    for running, free in [(1, 4), (2, 3), (3, 2), (9, 1)]:
        monkeypatch.setattr(threads, "_runnable", lambda r=running: r)
        assert free_cores() == free
    monkeypatch.setattr(threads, "_own_running", lambda: 3)  # our own pool still spinning is not "others"
    monkeypatch.setattr(threads, "_runnable", lambda: 3)
    assert free_cores() == 4
    monkeypatch.setattr(threads, "_runnable", lambda: None)  # no /proc: leave torch alone
    assert free_cores() is None and choose_threads("auto") is None


def test_scope_sets_restores_and_never_exceeds_the_users_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(threads, "_cores", lambda: 4)
    monkeypatch.setattr(threads, "_own_running", lambda: 1)
    monkeypatch.setattr(threads, "_runnable", lambda: 1)
    torch.set_num_threads(2)
    with thread_scope("auto") as refresh:
        assert torch.get_num_threads() == 2  # 4 free cores, but the user's setting is 2
        monkeypatch.setattr(threads, "_runnable", lambda: 4)
        refresh()
        assert torch.get_num_threads() == 1
        monkeypatch.setattr(threads, "_runnable", lambda: 1)  # the other process has finished
        refresh()
        assert torch.get_num_threads() == 2
    assert torch.get_num_threads() == 2
    with thread_scope(3):
        assert torch.get_num_threads() == 3
    with thread_scope(None):
        assert torch.get_num_threads() == 2
    assert torch.get_num_threads() == 2
    for bad in (0, -1, "many", 1.5, True):
        with pytest.raises(ValueError, match="threads must be"):
            choose_threads(bad)  # type: ignore[arg-type]


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_a_busy_process_on_this_machine_is_seen() -> None:
    idle = free_cores()
    assert idle is not None and 1 <= idle <= threads._cores()
    busy = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(threads._cores())]
    try:
        time.sleep(0.5)
        readings = [free_cores() for _ in range(5)]
    finally:
        for p in busy:
            p.kill()
            p.wait()
    assert min(r for r in readings if r is not None) == 1  # every core taken by a busy loop


def test_encoder_uses_its_setting_and_restores_torch(monkeypatch: pytest.MonkeyPatch) -> None:
    from _tiny import tiny_config

    from latentface_sdk import FaceEncoder
    from latentface_sdk import backends as backend_module

    enc = FaceEncoder.from_config(tiny_config())
    assert enc.threads == "auto"
    seen: list[int] = []
    original = backend_module.encode_crops  # what the PyTorch backend binds into its FacePipeline

    def spy(*args: object, **kwargs: object) -> object:
        seen.append(torch.get_num_threads())
        return original(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(backend_module, "encode_crops", spy)
    torch.set_num_threads(1)
    enc.threads = 2
    enc.encode(np.zeros((2, 64, 64, 3), np.uint8), detect=False, batch_size=1)
    assert seen == [2, 2] and torch.get_num_threads() == 1
    with pytest.raises(ValueError, match="threads must be"):
        FaceEncoder.from_pretrained(threads=0, device="cpu")
