"""The paper's linear probe: BatchNorm1d followed by one Linear layer, trained on frozen features.

Section 3.2 of the paper: "we freeze the backbone [...] and train a batch normalization layer followed
by a linear layer [...] with Adam and a learning rate of 1e-3" (20 epochs for expression recognition).
Training is seeded and leaves the global torch random state untouched. On the CPU it runs on one
thread: the probe's operations are tiny, and on a busy machine the thread pool's synchronisation
costs far more (x50 measured) than it saves.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn


@dataclass(frozen=True)
class ProbeConfig:
    """Hyper-parameters of :func:`train_probe` (defaults: the paper's FER probe)."""

    epochs: int = 20
    lr: float = 1e-3
    batch_size: int = 256
    weight_decay: float = 0.0
    seed: int = 0
    device: str = "cpu"

    def validate(self) -> None:
        if self.epochs < 1 or self.batch_size < 1 or self.lr <= 0 or self.weight_decay < 0:
            raise ValueError(f"invalid probe settings: {self}")


@contextmanager
def _single_thread(device: torch.device) -> Iterator[None]:
    """Run tiny CPU work on one intra-op thread, restoring the caller's setting afterwards."""
    if device.type != "cpu":
        yield
        return
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


class LinearProbe(nn.Module):
    """``BatchNorm1d(dim) -> Linear(dim, n_classes)``: logits from frozen features."""

    def __init__(self, dim: int, n_classes: int) -> None:
        super().__init__()
        self.norm = nn.BatchNorm1d(dim)
        self.linear = nn.Linear(dim, n_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear(self.norm(x))

    @torch.no_grad()
    def predict_proba(self, x: np.ndarray, batch_size: int = 4096) -> np.ndarray:
        """Class probabilities ``(N, n_classes)`` for features ``x`` ``(N, dim)`` (eval mode)."""
        self.eval()
        device = next(self.parameters()).device
        with _single_thread(device):
            out = [
                torch.softmax(
                    self(torch.as_tensor(x[i : i + batch_size], dtype=torch.float32, device=device)), 1
                )
                for i in range(0, len(x), batch_size)
            ]
        if not out:
            return np.zeros((0, self.linear.out_features), dtype=np.float32)
        return torch.cat(out).cpu().numpy()

    def predict(self, x: np.ndarray) -> np.ndarray:
        """The most probable class of each row of ``x``."""
        return self.predict_proba(x).argmax(1)


def train_probe(
    x: np.ndarray,
    y: np.ndarray,
    n_classes: int | None = None,
    config: ProbeConfig | None = None,
) -> LinearProbe:
    """Train a :class:`LinearProbe` on features ``x`` ``(N, D)`` and integer labels ``y`` ``(N,)``.

    Cross-entropy, Adam, mini-batches reshuffled every epoch by a generator seeded with
    ``config.seed``; the weights are initialised under the same seed, so the result is reproducible.
    """
    cfg = config or ProbeConfig()
    cfg.validate()
    x = np.asarray(x, dtype=np.float32)
    y = np.asarray(y, dtype=np.int64)
    if x.ndim != 2 or y.shape != (len(x),):
        raise ValueError(f"expected features (N, D) and labels (N,), got {x.shape} and {y.shape}")
    if len(x) < 2:
        raise ValueError("a probe needs at least two training samples")
    k = int(n_classes if n_classes is not None else y.max() + 1)
    if y.min() < 0 or y.max() >= k:
        raise ValueError(f"labels must lie in [0, {k}), got [{y.min()}, {y.max()}]")
    device = torch.device(cfg.device)
    with _single_thread(device):
        return _train(x, y, k, cfg, device)


def _train(x: np.ndarray, y: np.ndarray, k: int, cfg: ProbeConfig, device: torch.device) -> LinearProbe:
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(cfg.seed)
        probe = LinearProbe(x.shape[1], k).to(device)
    gen = torch.Generator().manual_seed(cfg.seed)
    xt = torch.from_numpy(x).to(device)
    yt = torch.from_numpy(y).to(device)
    opt = torch.optim.Adam(probe.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    loss_fn = nn.CrossEntropyLoss()
    probe.train()
    for _ in range(cfg.epochs):
        order = torch.randperm(len(x), generator=gen).to(device)
        for start in range(0, len(x), cfg.batch_size):
            idx = order[start : start + cfg.batch_size]
            if len(idx) < 2:  # BatchNorm needs two samples in training mode
                continue
            opt.zero_grad(set_to_none=True)
            loss = loss_fn(probe(xt[idx]), yt[idx])
            loss.backward()
            opt.step()
    probe.eval()
    return probe


__all__ = ["ProbeConfig", "LinearProbe", "train_probe"]
