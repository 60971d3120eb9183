"""The bundled weights' outputs are pinned (``tests/_pinned.py``): a refactor must leave them unchanged."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from _pinned import PINNED, outputs


def test_outputs_of_the_bundled_weights_are_unchanged(shared_data: Path) -> None:
    with np.load(PINNED) as z:
        want = {k: z[k] for k in z.files}
    got = outputs(shared_data)
    if str(got["checksum"]) != str(want["checksum"]):
        pytest.fail("the bundled weights changed since the outputs were pinned: check the new outputs, then "
                    "run `python tests/_pinned.py --write` and say so in the commit")
    assert set(got) == set(want)
    for key, expected in want.items():
        actual = got[key]
        assert actual.shape == expected.shape, key
        if expected.dtype == np.float16:  # stored at half precision: compare at its rounding
            scale = np.nan_to_num(np.abs(expected.astype(np.float32)), nan=0.0)
            tol = 2e-3 * scale + 2e-3
            diff = np.abs(np.nan_to_num(actual.astype(np.float32), nan=1e9) - np.nan_to_num(
                expected.astype(np.float32), nan=1e9))
            assert (diff <= tol).all(), f"{key}: max difference {diff.max():.4g}"
        else:
            np.testing.assert_array_equal(actual, expected, err_msg=key)
