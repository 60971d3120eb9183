"""latentface_sdk.train.runtime: each rank's device (no GPU needed: CUDA is faked where it is asked for)."""

from __future__ import annotations

import pytest
import torch

from latentface_sdk.train import runtime


@pytest.mark.parametrize(("name", "world", "local_rank", "current", "expected"), [
    ("cuda", "1", None, 0, "cuda:0"),      # one process, bare device: the current GPU, with its index
    ("auto", "1", None, 2, "cuda:2"),      # 'auto' on a GPU machine is a bare 'cuda' too
    ("cuda", "2", "1", 0, "cuda:1"),       # torchrun: the local rank's GPU
    ("cuda:3", "1", None, 0, "cuda:3"),    # an explicit index is kept
])
def test_cuda_devices_always_carry_an_index(monkeypatch: pytest.MonkeyPatch, name: str, world: str,
                                            local_rank: str | None, current: int, expected: str) -> None:
    """torch.cuda.set_device (and NCCL, DDP's device_ids) refuse an index-less 'cuda': issue 25's crash."""
    chosen: list[torch.device] = []

    def fake_resolve(n: str | torch.device) -> torch.device:
        return torch.device("cuda" if n == "auto" else n)

    def fake_set_device(dev: torch.device | int) -> None:
        if isinstance(dev, torch.device) and dev.index is None:  # what the real one raises
            raise ValueError(f"Expected a torch.device with a specified index or an integer, but got:{dev}")
        chosen.append(torch.device(dev))

    monkeypatch.setattr(runtime, "resolve_device", fake_resolve)
    monkeypatch.setattr(torch.cuda, "set_device", fake_set_device)
    monkeypatch.setattr(torch.cuda, "current_device", lambda: current)
    monkeypatch.setenv("WORLD_SIZE", world)
    if local_rank is None:
        monkeypatch.delenv("LOCAL_RANK", raising=False)
    else:
        monkeypatch.setenv("LOCAL_RANK", local_rank)
    dev = runtime.rank_device(name)
    assert str(dev) == expected and dev.index is not None
    assert chosen == [dev]


def test_cpu_is_left_alone(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch.cuda, "set_device", lambda d: pytest.fail("set_device called for the CPU"))
    assert runtime.rank_device("cpu") == torch.device("cpu")
