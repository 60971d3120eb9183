"""Every input of the catalogue gets its documented outcome: a typed, named error or a stated conversion."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest

from latentface_sdk.errors import LatentFaceError

from .catalogue import CASES, Case, run, table

# One catalogue row carries a malformed EXIF block on purpose; PIL warns about it while reading.
pytestmark = pytest.mark.filterwarnings("ignore:Corrupt EXIF data:UserWarning")


@pytest.mark.parametrize("case", CASES, ids=[c.label for c in CASES])
def test_input_gets_its_documented_outcome(case: Case, tmp_path: Path) -> None:
    got = run(case, tmp_path)
    if case.error is not None:
        assert got.error is not None, f"{case.label}: expected {case.error.__name__}, the input was accepted"
        assert type(got.error) is case.error, f"{case.label}: got {type(got.error).__name__}: {got.error}"
        assert isinstance(got.error, LatentFaceError) and isinstance(got.error, ValueError)
        message = str(got.error)
        assert re.search(case.match, message), message
        if case.group == "file":
            assert message.startswith(str(tmp_path)), message  # names the file
        elif not case.listed:
            assert message.startswith("image: "), message  # names the input
        return
    assert got.error is None, f"{case.label}: refused: {got.error}"
    if case.listed:
        assert got.items is not None and case.check_items is not None
        assert case.check_items(got.items), [(x.name, x.ok, str(x.error)) for x in got.items]
        for x in got.items:
            assert (x.rgb is None) != (x.error is None)
        return
    assert got.rgb is not None and case.check is not None
    assert got.rgb.dtype == np.uint8 and got.rgb.ndim == 3 and got.rgb.shape[2] == 3
    assert got.rgb.flags.c_contiguous
    assert case.check(got.rgb), f"{case.label}: {got.rgb.shape} first pixel {got.rgb.reshape(-1, 3)[0]}"


def test_the_pickle_named_png_was_never_unpickled(tmp_path: Path) -> None:
    case = next(c for c in CASES if "pickle" in c.label)
    got = run(case, tmp_path)
    assert got.error is not None
    assert not (tmp_path / "PWNED").exists()


def test_catalogue_table_renders_every_case() -> None:
    text = table()
    assert text.count("\n") == len(CASES) + 1
    assert "Traceback" not in text
