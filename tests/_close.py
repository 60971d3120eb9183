"""Comparing float32 results of two computations of the same thing (ONNX Runtime against PyTorch, a batch
against its rows alone, one code path against another) with a tolerance scaled to the values' magnitude.

Two correct float32 computations differ by rounding: another summation order (another CPU's SIMD width,
another BLAS or oneDNN kernel, another ONNX Runtime build, another batch size) moves a result by a few units
in the last place *of the largest terms that were summed*, i.e. by about ``1e-7 * magnitude`` per operation,
accumulated over the network's layers. An absolute tolerance such as ``1e-4`` is then 400 ulps for values
near 1 but under one ulp for latents of magnitude ~230, where it fails on another machine for no fault in
the code. :func:`assert_close_to_scale` allows ``rel`` times the largest magnitude of the expected values
(at least 1), which holds on any x86 CPU yet stays orders of magnitude below what a real mistake gives (a
wrong weight, layer, normalisation or seed moves results by percents of their magnitude).
"""

from __future__ import annotations

import numpy as np
import torch

#: Default relative tolerance: ~80 float32 ulps of the largest value (eps = 1.2e-7). Measured differences
#: between ONNX Runtime and PyTorch here are 1e-7 to 5e-7 of the magnitude; 1e-5 leaves room for other
#: CPUs and builds while a wrong computation (errors of 1e-2 of the magnitude and more) still fails.
REL = 1e-5


def scale_of(expected: torch.Tensor | np.ndarray) -> float:
    """The largest finite magnitude in ``expected``, at least 1 (values below 1 are compared at the
    resolution of 1: rounding of intermediate terms of order 1 is what they carry)."""
    t = torch.as_tensor(np.asarray(expected) if not isinstance(expected, torch.Tensor) else expected)
    t = t.detach().double()
    finite = t[torch.isfinite(t)]
    return max(float(finite.abs().max()) if finite.numel() else 0.0, 1.0)


def assert_close_to_scale(actual: torch.Tensor | np.ndarray, expected: torch.Tensor | np.ndarray,
                          rel: float = REL, scale: float | None = None, msg: str | None = None) -> None:
    """``actual`` equals ``expected`` to within ``rel * scale`` element-wise (NaNs in the same places),
    with shapes and dtypes as :func:`torch.testing.assert_close` checks them.

    ``scale`` defaults to :func:`scale_of` ``(expected)``; pass the magnitude of the terms a result was
    computed from when it is a difference of larger values (``expression = latent - identity``)."""
    a = torch.as_tensor(actual) if isinstance(actual, torch.Tensor) else torch.from_numpy(np.asarray(actual))
    e = torch.as_tensor(expected) if isinstance(expected, torch.Tensor) else torch.from_numpy(
        np.asarray(expected))
    atol = rel * (scale_of(e) if scale is None else max(scale, 1.0))
    torch.testing.assert_close(a, e, rtol=0, atol=atol, equal_nan=True,
                               msg=None if msg is None else (lambda m: f"{msg}: {m} (atol={atol:.3g})"))
