"""The examples run as a user runs them: ``python examples/<name>.py --quick`` from the repository root,
a subprocess on one thread, with the bundled model and ``../shared/data``; each must exit 0 and print
its real output (the pair or face by hand, then the protocol's table with the expected rows).

examples/onnx_crop.py runs in tests/test_deploy_runtime.py (on a tiny ONNX export, without torch) and
examples/pictures.py in tests/test_pictures_example.py. ``--out`` goes to a temporary folder, so nothing is
cached between runs: each takes about 10-30 s on a 2-core CPU (the examples' docstrings time them).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]

pytestmark = [pytest.mark.slow, pytest.mark.data]


def _run_quick(script: str, out: Path) -> str:
    """stdout of ``examples/<script> --quick --out <out>`` run from the repository root (exit 0 asserted)."""
    proc = subprocess.run([sys.executable, str(Path("examples") / script), "--quick", "--out", str(out)],
                          cwd=REPO, capture_output=True, text=True, timeout=300,
                          env={**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"})
    assert proc.returncode == 0, f"{script} --quick exited {proc.returncode}:\n{proc.stderr[-3000:]}"
    return proc.stdout


def _table(stdout: str) -> dict[str, list[str]]:
    """The Markdown table's rows, keyed by their first cell (the feature set); header and rule left out."""
    rows = [[c.strip() for c in line.strip().strip("|").split("|")] for line in stdout.splitlines()
            if line.startswith("|")]
    assert len(rows) >= 3 and rows[0][0] == "features" and set(rows[1][0]) <= set(":-"), stdout
    return {r[0]: r[1:] for r in rows[2:]}


def _percent(cell: str) -> float:
    """``"63.86 ± 2.95"`` or ``"21.07"`` -> the first number, which must be a percentage."""
    value = float(cell.split()[0])
    assert 0.0 <= value <= 100.0, cell
    return value


def test_verify_quick(shared_data: Path, tmp_path: Path) -> None:
    out = tmp_path / "verify"
    stdout = _run_quick("verify.py", out)
    # 1. one pair by hand
    for label in ("same person", "two people"):
        line = re.search(rf"^{label}\s+(\S+\.jpg) vs (\S+\.jpg): cosine ([-+]\d\.\d{{3}}) -> "
                         r"(same|different) \(threshold (\d\.\d{3})\)$", stdout, re.M)
        assert line is not None, stdout
        assert -1.0 <= float(line.group(3)) <= 1.0
        assert (line.group(4) == "same") == (float(line.group(3)) >= float(line.group(5)))
    # 2. the protocol on 2 folds: LBP beside LatentFace's verification features
    assert "folds [0, 1]" in stdout and "Pairs skipped: 0 for missing images" in stdout
    table = _table(stdout)
    assert list(table) == ["lbp", "latentface-verify", "latentface-embedding"]
    assert table["lbp"][0] == "640" and table["latentface-verify"][0] == "1024"  # dims
    accuracy = {name: _percent(cells[1]) for name, cells in table.items()}  # probe accuracy
    assert accuracy["latentface-verify"] > 55.0, accuracy  # well above chance (50%) on these 440 pairs
    report = json.loads((out / "verification.json").read_text())
    assert [r["feature"] for r in report["results"]] == ["lbp", "latentface-verify", "latentface-embedding"]
    written = report["results"][1]["probe_accuracy"]["mean"] * 100
    assert written == pytest.approx(accuracy["latentface-verify"], abs=0.01)
    assert {p.name for p in out.iterdir()} >= {"verification.json", "verification.md", "roc-probe.png"}


def test_fer_quick(shared_data: Path, tmp_path: Path) -> None:
    out = tmp_path / "fer"
    stdout = _run_quick("fer.py", out)
    # 1. one face by hand: its expression features and the identity/expression split of its latents
    face = re.search(r"^(\S+\.(?:jpg|png)) \((\w+)\): expression features \(1, (\d+)\), "
                     r"parts \['texture', 'shape',", stdout, re.M)
    assert face is not None, stdout
    assert face.group(2) in {"angry", "disgust", "fear", "happy", "neutral", "sad", "surprise"}
    norms = re.search(r"expression texture norm (\d+\.\d\d), identity texture norm (\d+\.\d\d)", stdout)
    assert norms is not None and float(norms.group(1)) > 0 and float(norms.group(2)) > 0, stdout
    # 2. the protocol on 40 images per class: LBP and HOG beside LatentFace's expression features
    assert "trained on 280 images, tested on 280 images" in stdout
    table = _table(stdout)
    assert list(table) == ["lbp", "hog", "latentface-expression"]
    assert table["latentface-expression"][0] == face.group(3)  # the table's dim is the vector printed above
    for name, cells in table.items():
        assert _percent(cells[1]) > 100.0 / 7, (name, cells)  # above chance on 7 classes
        _percent(cells[2])  # macro-F1
    report = json.loads((out / "fer.json").read_text())
    assert report["meta"]["n_train"] == 280 and report["meta"]["n_test"] == 280
    assert {p.name for p in out.iterdir()} >= {"fer.json", "fer.md", "confusion-latentface-expression.png"}
