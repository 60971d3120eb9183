"""The BatchNorm + Linear probe: learns separable problems, is reproducible, leaves global state alone."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from latentface_sdk.eval.probes import LinearProbe, ProbeConfig, train_probe


def _separable(n: int, dim: int, classes: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Points labelled by the arg-max of a random linear map, kept only with a clear margin, on an
    offset, badly scaled input."""
    rng = np.random.default_rng(seed)
    w = rng.normal(size=(dim, classes))
    x = rng.normal(size=(4 * n, dim))
    logits = np.sort(x @ w, axis=1)
    x = x[logits[:, -1] - logits[:, -2] > 1.0][:n]
    assert len(x) == n
    y = (x @ w).argmax(1)
    scale = rng.uniform(0.1, 30.0, size=dim)  # the BatchNorm must cope with unnormalised features
    return (x * scale + 5.0).astype(np.float32), y


@pytest.mark.parametrize("classes", [2, 4])
def test_probe_learns_a_linearly_separable_problem(classes: int) -> None:
    x, y = _separable(3000, 16, classes, seed=classes)
    probe = train_probe(x[:2000], y[:2000], classes, ProbeConfig(epochs=20, batch_size=64))
    assert isinstance(probe, LinearProbe)
    accuracy = float(np.mean(probe.predict(x[2000:]) == y[2000:]))
    assert accuracy > 0.95, accuracy
    proba = probe.predict_proba(x[2000:2010])
    assert proba.shape == (10, classes)
    np.testing.assert_allclose(proba.sum(1), 1.0, rtol=1e-5)


def test_probe_cannot_learn_random_labels_on_held_out_data() -> None:
    rng = np.random.default_rng(1)
    x = rng.normal(size=(1200, 16)).astype(np.float32)
    y = rng.integers(0, 2, size=1200)
    probe = train_probe(x[:800], y[:800], 2, ProbeConfig(epochs=5, batch_size=64))
    assert 0.35 < float(np.mean(probe.predict(x[800:]) == y[800:])) < 0.65


def test_probe_is_reproducible_and_keeps_global_state() -> None:
    x, y = _separable(500, 8, 3, seed=0)
    threads = torch.get_num_threads()
    torch.manual_seed(123)
    expected_next = torch.rand(3)
    torch.manual_seed(123)
    a = train_probe(x, y, 3, ProbeConfig(epochs=3, seed=7))
    assert torch.equal(torch.rand(3), expected_next)  # the global generator did not move
    assert torch.get_num_threads() == threads
    b = train_probe(x, y, 3, ProbeConfig(epochs=3, seed=7))
    c = train_probe(x, y, 3, ProbeConfig(epochs=3, seed=8))
    assert torch.equal(a.linear.weight, b.linear.weight)
    assert not torch.equal(a.linear.weight, c.linear.weight)


def test_probe_rejects_bad_input() -> None:
    x = np.zeros((10, 4), dtype=np.float32)
    with pytest.raises(ValueError, match="labels must lie"):
        train_probe(x, np.full(10, 3), 2)
    with pytest.raises(ValueError, match=r"\(N, D\)"):
        train_probe(x, np.zeros(9, dtype=np.int64), 2)
    with pytest.raises(ValueError, match="invalid probe"):
        train_probe(x, np.zeros(10, dtype=np.int64), 2, ProbeConfig(epochs=0))
