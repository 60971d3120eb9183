"""Device choice and the one line it logs."""

from __future__ import annotations

import logging

import pytest
import torch

from latentface_sdk.devices import resolve_device


def test_auto_and_cpu_log_the_choice_at_info(caplog: pytest.LogCaptureFixture,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with caplog.at_level(logging.INFO, logger="latentface_sdk"):
        assert resolve_device("auto") == torch.device("cpu")
        assert resolve_device("cpu") == torch.device("cpu")
    levels = [r.levelno for r in caplog.records]
    assert levels == [logging.INFO, logging.INFO]
    assert "using device cpu (1 torch CPU threads)" in caplog.records[0].getMessage()  # conftest: one thread


def test_cpu_while_cuda_is_present_warns(caplog: pytest.LogCaptureFixture,
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    with caplog.at_level(logging.INFO, logger="latentface_sdk"):
        assert resolve_device("cpu") == torch.device("cpu")
    assert [r.levelno for r in caplog.records] == [logging.WARNING]
    assert "although CUDA is available" in caplog.records[0].getMessage()


def test_bad_devices_are_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(ValueError, match="unknown device"):
        resolve_device("gpu0")
    with pytest.raises(ValueError, match="CUDA is not available"):
        resolve_device("cuda")
