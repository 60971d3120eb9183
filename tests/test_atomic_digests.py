"""The one atomic writer and the one set of content hashes that every cache and model file uses."""

from __future__ import annotations

import stat
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from latentface_sdk.atomic import atomic_path, atomic_write, atomic_write_bytes, save_safetensors, save_torch
from latentface_sdk.digests import (
    array_digest,
    file_digest,
    files_digest,
    modules_digest,
    parts_digest,
    tensors_digest,
)


def test_a_failed_write_leaves_the_old_file_and_no_debris(tmp_path: Path) -> None:
    target = tmp_path / "sub" / "out.bin"
    atomic_write_bytes(target, b"old")
    assert stat.S_IMODE(target.stat().st_mode) == 0o644  # readable by others, like other tools

    def half_then_fail(fh: object) -> None:
        fh.write(b"half")  # type: ignore[attr-defined]
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError, match="disk full"):
        atomic_write(target, half_then_fail)
    assert target.read_bytes() == b"old"
    assert sorted(p.name for p in target.parent.iterdir()) == ["out.bin"]
    with pytest.raises(KeyError), atomic_path(target) as tmp:
        tmp.write_bytes(b"new")
        raise KeyError("x")
    assert target.read_bytes() == b"old" and sorted(p.name for p in target.parent.iterdir()) == ["out.bin"]


def test_savers_round_trip(tmp_path: Path) -> None:
    from safetensors.torch import load_file

    t = {"a": torch.arange(6.0).reshape(2, 3)}
    save_safetensors(t, tmp_path / "w.safetensors", {"k": "v"})
    torch.testing.assert_close(load_file(str(tmp_path / "w.safetensors"))["a"], t["a"])
    save_torch({"step": 3, "x": torch.ones(2)}, tmp_path / "s.pt")
    back = torch.load(tmp_path / "s.pt", weights_only=True)
    assert back["step"] == 3 and torch.equal(back["x"], torch.ones(2))


def test_digests_see_content_not_order(tmp_path: Path) -> None:
    a = {"x": torch.zeros(3), "y": torch.ones(2, dtype=torch.float16)}
    assert tensors_digest(a) == tensors_digest(dict(reversed(list(a.items()))))
    assert tensors_digest(a) != tensors_digest({"x": torch.zeros(3), "y": torch.ones(2)})  # dtype counts
    assert tensors_digest(a) != tensors_digest({"x": torch.zeros(3), "y": torch.tensor([1.0, 2.0]).half()})
    lin = nn.Linear(2, 2)
    assert modules_digest(lin) == modules_digest([lin]) != modules_digest([lin, lin])
    arr = np.arange(6, dtype=np.uint8)
    assert (array_digest(arr) != array_digest(arr.reshape(2, 3))
            and array_digest(arr) == array_digest(arr.copy()))
    assert parts_digest("ab", "c") != parts_digest("a", "bc")
    f = tmp_path / "f.txt"
    f.write_text("hello")
    assert file_digest(f) == "2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824"
    before = files_digest([f])
    f.write_text("hello!")
    assert files_digest([f]) != before and files_digest([tmp_path / "missing"]) != before
