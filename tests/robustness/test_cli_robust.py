"""The ``latentface`` command with broken files among good ones, and real processes killed half way.

The CLI's own tests interrupt it in-process; here a real ``latentface`` process is killed (SIGKILL: no
clean-up at all, possibly in the middle of writing a part) or interrupted (SIGINT) while it works, and
the rerun must give the same bytes as a run that was never stopped.
"""

from __future__ import annotations

import csv
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from latentface_sdk import cli

from .catalogue import jpeg_bytes, noise

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def folder(shared_data: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Real faces (CelebA and a photo, one with spaces and accents in its name) and three bad files."""
    root = tmp_path_factory.mktemp("inputs")
    celeba = sorted((shared_data / "celeba10k" / "images").glob("*.jpg"))[:10]
    for p in celeba:
        (root / p.name).write_bytes(p.read_bytes())
    (root / "sub dir").mkdir()
    (root / "sub dir" / "Obama petit é.JPG").write_bytes(
        (shared_data / "photos" / "obama_small.jpg").read_bytes()
    )
    (root / "000004b-truncated.jpg").write_bytes(jpeg_bytes(noise(128, 128))[:3000])
    (root / "000007b-text.png").write_text("not an image\n")
    (root / "000009b-empty.jpg").write_bytes(b"")
    return root


BAD = ["000004b-truncated.jpg", "000007b-text.png", "000009b-empty.jpg"]


def _main(*args: Any) -> int:
    return cli.main([str(a) for a in args] + ["--no-progress", "--threads", "1"])


def test_bad_files_among_good_ones(
    folder: Path, tiny_model: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "features.npz"
    assert _main("encode", folder, "-o", out, "--model", tiny_model, "--chunk-size", "4") == 1
    captured = capsys.readouterr()
    assert "14 input(s): 11 face(s) written" in captured.out and "3 failed" in captured.out
    for name in BAD:
        assert str(folder / name) in captured.err
    assert "truncated or corrupt" in captured.err and "not an image file" in captured.err
    assert "file is empty" in captured.err
    with np.load(out, allow_pickle=False) as z:
        names = [Path(n).name for n in z["names"]]
        ok = dict(zip(names, z["ok"].tolist(), strict=True))
        assert sorted(n for n, good in ok.items() if not good) == BAD
        assert ok["Obama petit é.JPG"] and sum(ok.values()) == 11
        assert np.isfinite(z["texture"][z["ok"]]).all() and np.isnan(z["texture"][~z["ok"]]).all()
        assert z["source"].tolist() == list(range(14))


def test_frontalize_writes_the_good_faces_and_lists_the_bad(
    folder: Path, tiny_model: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "front"
    assert _main("frontalize", folder, "-o", out, "--model", tiny_model, "--chunk-size", "5") == 1
    assert "3 failed" in capsys.readouterr().out
    with open(out / "index.csv", newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == 14
    for row in rows:
        good = row["ok"] == "True"
        assert (Path(row["input"]).name in BAD) != good
        if good:
            assert (out / row["png"]).is_file() and row["error"] == ""
        else:
            assert row["png"] == "" and row["error"].startswith(row["input"])
    assert len(list(out.rglob("*.png"))) == 11


def test_a_dangling_symlink_in_a_folder_is_reported(
    folder: Path, tiny_model: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = tmp_path / "links"
    root.mkdir()
    (root / "good.jpg").write_bytes(next(folder.glob("0*.jpg")).read_bytes())
    (root / "gone.jpg").symlink_to(tmp_path / "deleted.jpg")  # a photo moved away after linking
    code = _main("encode", root, "-o", tmp_path / "x.npz", "--model", tiny_model)
    assert code == 1 and "gone.jpg" in capsys.readouterr().err


def _default_sigint() -> None:
    # A shell without job control starts background jobs with SIGINT ignored, and a child inherits that:
    # Python then never raises KeyboardInterrupt. Give the CLI the disposition a terminal user's has.
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def _spawn(args: list[str], cwd: Path) -> subprocess.Popen[bytes]:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
    return subprocess.Popen(
        [sys.executable, "-m", "latentface_sdk.cli", *args, "--no-progress", "--threads", "1"],
        cwd=cwd,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        preexec_fn=_default_sigint,
    )


def _stop_after_parts(proc: subprocess.Popen[bytes], parts: Path, pattern: str, count: int, sig: int) -> int:
    """Send ``sig`` once ``count`` parts exist; return how many parts there were when it was sent."""
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        done = len(list(parts.glob(pattern))) if parts.is_dir() else 0
        if done >= count:
            proc.send_signal(sig)
            return done
        if proc.poll() is not None:
            _, err = proc.communicate()
            raise AssertionError(
                f"the run ended (code {proc.returncode}) before it could be stopped: {err.decode()}"
            )
        time.sleep(0.005)
    proc.kill()
    raise AssertionError("no part was written within 120 s")


@pytest.fixture(scope="module")
def long_folder(folder: Path, shared_data: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``folder`` plus 30 more faces: long enough that a run cannot finish between the signal and its
    delivery on a loaded machine (with 14 files it once did, and the test saw a finished run)."""
    import shutil

    root = tmp_path_factory.mktemp("long-inputs")
    shutil.copytree(folder, root, dirs_exist_ok=True)
    for p in sorted((shared_data / "celeba10k" / "images").glob("*.jpg"))[10:40]:
        (root / p.name).write_bytes(p.read_bytes())
    return root


@pytest.mark.parametrize(
    ("command", "sig"),
    [("encode", signal.SIGKILL), ("disentangle", signal.SIGINT)],
    ids=["encode-SIGKILL", "disentangle-SIGINT"],
)
@pytest.mark.slow
def test_a_killed_run_restarted_gives_the_same_bytes(
    command: str, sig: int, long_folder: Path, tiny_model: Path, tmp_path: Path
) -> None:
    folder = long_folder
    total = sum(1 for p in folder.rglob("*") if p.is_file())
    common = ["--model", str(tiny_model), "--chunk-size", "1"]
    whole = tmp_path / "whole.npz"
    assert _main(command, folder, "-o", whole, *common) == 1

    out = tmp_path / "stopped.npz"
    parts = tmp_path / "stopped.npz.parts"
    proc = _spawn([command, str(folder), "-o", str(out), *common], cwd=tmp_path)
    _stop_after_parts(proc, parts, "part-*.npz", 3, sig)
    _, err = proc.communicate(timeout=120)
    if sig == signal.SIGINT:
        assert proc.returncode == 130, err.decode()
        assert "interrupted; finished chunks are kept" in err.decode()
    else:
        assert proc.returncode == -signal.SIGKILL
    assert not out.exists()
    kept = sorted(parts.glob("part-*.npz"))
    assert 3 <= len(kept) < total, "the run was not stopped half way"
    # A torn part (as a kill during a non-atomic write would leave) is redone, not trusted.
    kept[-1].write_bytes(kept[-1].read_bytes()[:100])

    assert _main(command, folder, "-o", out, *common) == 1
    assert out.read_bytes() == whole.read_bytes()
    assert not parts.exists()
