"""End-to-end evaluation runs: feature cache, table/JSON/PNGs, missing and unreadable images, CLIs.

The library runs use a small centre-crop function defined here, so that they do not depend on the
detector; one CLI test goes through the real ``prepare_crops`` (centre crops, ``--no-detect``).
"""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from latentface_sdk.config import CropConfig
from latentface_sdk.digests import files_digest, parts_digest
from latentface_sdk.eval import EvalSettings, ProbeConfig, read_pairs, read_split, run_fer, run_verification
from latentface_sdk.eval.cache import FeatureCache
from latentface_sdk.eval.features import FeatureExtractor
from latentface_sdk.eval.runner import compute_features

REPO = Path(__file__).resolve().parents[1]
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
QUICK_PROBE = ProbeConfig(epochs=5, batch_size=64)  # the numbers are not under test here, the plumbing is
BASELINES = ["raw", "lbp", "hog"]
if importlib.util.find_spec("latentface_sdk.models.autoencoder") is not None:
    BASELINES.append("random-encoder")


def centre_crops(
    paths: list[Path], crop: CropConfig, *, detect: bool, cache_file: Path | None, progress: bool
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Centred square of each image resized to ``crop.size``; unreadable files are marked failed."""
    centre_crops.calls += 1  # type: ignore[attr-defined]
    out = np.zeros((len(paths), crop.size, crop.size, 3), dtype=np.uint8)
    ok = np.zeros(len(paths), dtype=bool)
    method = np.full(len(paths), "failed", dtype="<U6")
    for i, path in enumerate(paths):
        try:
            with Image.open(path) as im:
                img = im.convert("RGB")
        except OSError:
            continue
        w, h = img.size
        s = min(w, h)
        box = ((w - s) / 2, (h - s) / 2, (w + s) / 2, (h + s) / 2)
        out[i] = np.asarray(img.resize((crop.size, crop.size), Image.Resampling.BILINEAR, box=box))
        ok[i], method[i] = True, "center"
    return out, ok, method


centre_crops.calls = 0  # type: ignore[attr-defined]


def _settings(out: Path, cache: Path | None = None) -> EvalSettings:
    return EvalSettings(out_dir=out, cache_dir=cache, crop_fn=centre_crops, progress=False)


def _is_png(path: Path) -> bool:
    return path.is_file() and path.read_bytes()[:8] == PNG_MAGIC


@pytest.mark.slow
def test_verification_on_three_folds_of_celeba(shared_data: Path, tmp_path: Path) -> None:
    pairs = read_pairs(shared_data / "celeba10k" / "pairs_verify.txt").select_folds([0, 1, 2])
    assert len(pairs) == 660
    report = run_verification(pairs, BASELINES, _settings(tmp_path / "run"), probe=QUICK_PROBE)
    assert [r.feature for r in report.results] == BASELINES
    for r in report.results:
        assert r.folds == [0, 1, 2] and r.probe_accuracy.shape == (3,)
        assert np.all((r.probe_accuracy >= 0) & (r.probe_accuracy <= 1))
        assert 0.4 < r.cosine_mean_sem[0] < 0.9
    table = report.files["table"].read_text(encoding="utf-8")
    assert table == report.table
    for name in BASELINES:
        assert f"| {name} " in table
    assert "660 pairs (330 same, 330 different)" in table
    assert _is_png(report.files["roc_cosine"]) and _is_png(report.files["roc_probe"])
    saved = json.loads(report.files["json"].read_text(encoding="utf-8"))
    assert [r["feature"] for r in saved["results"]] == BASELINES
    assert saved["meta"]["n_pairs"] == 660 and saved["meta"]["crops"] == {"center": len(pairs.images())}
    assert all(not r["cached"] for r in saved["results"])

    # a rerun reads every feature set from the cache and gives the same numbers
    calls = centre_crops.calls  # type: ignore[attr-defined]
    again = run_verification(pairs, BASELINES, _settings(tmp_path / "run"), probe=QUICK_PROBE)
    assert all(r.extra["cached"] for r in again.results)
    assert centre_crops.calls == calls + 1  # type: ignore[attr-defined]  # crops still say which are usable
    for a, b in zip(report.results, again.results, strict=True):
        np.testing.assert_array_equal(a.probe_accuracy, b.probe_accuracy)
        np.testing.assert_array_equal(a.cosine_accuracy, b.cosine_accuracy)


@pytest.mark.slow
def test_fer_on_a_slice_of_fer2013(shared_data: Path, tmp_path: Path) -> None:
    train = read_split(shared_data / "fer2013", "Training").limit_per_class(20)
    test = read_split(shared_data / "fer2013", "PublicTest", train.classes).limit_per_class(10)
    assert len(train) == 140 and len(test) == 70
    report = run_fer(train, test, BASELINES, _settings(tmp_path / "fer"), title="fer2013 slice")
    for r in report.results:
        assert 0.0 <= r.accuracy <= 1.0 and 0.0 <= r.macro_f1 <= 1.0
        assert r.confusion.sum() == 70 and r.n_train == 140
        assert _is_png(report.files[f"confusion_{r.feature}"])
    table = report.files["table"].read_text(encoding="utf-8")
    assert "trained on 140 images, tested on 70 images" in table
    assert all(f"| {name} " in table for name in BASELINES)
    saved = json.loads(report.files["json"].read_text(encoding="utf-8"))
    assert saved["meta"]["test_counts"]["disgust"] == 10


def test_missing_and_unreadable_images_are_skipped(shared_data: Path, tmp_path: Path) -> None:
    lines = (shared_data / "celeba10k" / "pairs_verify.txt").read_text().splitlines()
    folds = [lines[1 + 220 * f : 1 + 220 * f + 220] for f in range(2)]
    # 2 folds of 4 same + 4 different pairs; one pair names a missing image, one an unreadable one
    body = [row for fold in folds for row in fold[:4] + fold[110:114]]
    same = body[0].split("\t")
    body[0] = "\t".join([same[0], same[1], "no_such_image.jpg"])
    broken = tmp_path / "images"
    broken.mkdir()
    (broken / "corrupt.jpg").write_bytes(b"not a jpeg")
    diff = body[12].split("\t")
    body[12] = "\t".join([diff[0], diff[1], diff[2], "corrupt.jpg"])
    for row in body:  # link the real images beside the corrupt one
        for name in (row.split("\t")[1], row.split("\t")[-1]):
            src = shared_data / "celeba10k" / "images" / name
            if src.is_file() and not (broken / name).exists():
                (broken / name).symlink_to(src)
    pairs_file = tmp_path / "pairs.txt"
    pairs_file.write_text("2\t4\n" + "\n".join(body) + "\n")
    with pytest.warns(UserWarning, match="missing image"):
        pairs = read_pairs(pairs_file)
    assert len(pairs) == 15 and [m.line for m in pairs.missing] == [2]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        report = run_verification(pairs, ["raw"], _settings(tmp_path / "out"))
    assert any("unreadable" in str(w.message) for w in caught)
    assert "Pairs skipped: 1 for missing images, 1 for unreadable ones" in report.table
    assert len(report.results[0].labels) == 14
    assert report.meta["missing"][0]["path"].endswith("no_such_image.jpg")
    assert report.meta["unreadable"][0].endswith("corrupt.jpg")


class _Counting(FeatureExtractor):
    def __init__(self, tag: str = "a") -> None:
        self.calls, self.tag = 0, tag
        self.name = self.cache_name = "counting"

    def identity(self) -> str:
        return f"counting:{self.tag}"

    def __call__(self, crops: np.ndarray, *, progress: bool = False) -> np.ndarray:
        self.calls += 1
        return crops.reshape(len(crops), -1)[:, :4].astype(np.float32)


def test_feature_cache_is_keyed_by_extractor_and_files(tmp_path: Path) -> None:
    paths = []
    for i in range(3):
        paths.append(tmp_path / f"{i}.png")
        Image.new("RGB", (20, 30), (i * 40, 0, 0)).save(paths[-1])
    settings = _settings(tmp_path / "out")
    ext = _Counting()
    first = compute_features(paths, [ext], CropConfig(), settings)
    second = compute_features(paths, [ext], CropConfig(), settings)
    assert ext.calls == 1 and second.cached["counting"] and not first.cached["counting"]
    np.testing.assert_array_equal(first.features["counting"], second.features["counting"])
    compute_features(paths, [_Counting("b")], CropConfig(), settings)  # another identity: a miss
    other = _Counting()
    compute_features(paths[:2], [other], CropConfig(), settings)  # another file list: a miss
    compute_features(paths, [other], CropConfig(margin=0.3), settings)  # another crop policy: a miss
    assert other.calls == 2
    # a cache file whose key does not match is ignored, with a warning
    cache = FeatureCache(tmp_path / "c")
    key = parts_digest("x", files_digest(paths))
    cache.save("x", key, np.ones((3, 2), np.float32), paths)
    np.testing.assert_array_equal(cache.load("x", key, 3), np.ones((3, 2)))
    with pytest.warns(UserWarning, match="stale"):
        assert cache.load("x", key, 4) is None
    (tmp_path / "c" / cache.path("x", key).name).write_bytes(b"garbage")
    with pytest.warns(UserWarning, match="unreadable"):
        assert cache.load("x", key, 3) is None


@pytest.mark.slow
def test_eval_command_line(shared_data: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from latentface_sdk.eval.cli import main

    # two folds, ~220 images: the real prepare_crops with centre crops (no MTCNN) and a 2-epoch probe
    pairs = shared_data / "celeba10k" / "pairs_verify.txt"
    args = ["verify", "--pairs", str(pairs), "--folds", "3,4", "--features", "raw", "--no-detect",
            "--no-progress"]
    assert main([*args, "--probe-epochs", "2", "--out", str(tmp_path / "v")]) == 0
    out = capsys.readouterr().out
    assert "| raw " in out and "440 pairs" in out
    assert _is_png(tmp_path / "v" / "roc-cosine.png")
    fer_args = ["fer", "--data", str(shared_data / "fer2013"), "--limit-per-class", "3", "--features", "raw"]
    assert main([*fer_args, "--no-detect", "--no-progress", "--epochs", "2", "--out",
                 str(tmp_path / "f")]) == 0
    assert "trained on 21 images, tested on 21 images" in capsys.readouterr().out
    assert _is_png(tmp_path / "f" / "confusion-raw.png")
    assert main([*fer_args, "--train-split", "PublicTest", "--out", str(tmp_path / "x")]) == 2
    assert "refusing to train on the test split" in capsys.readouterr().err
    assert main(["fer", "--out", str(tmp_path / "y")]) == 2
    assert main(["features"]) == 0 and "latentface-verify" in capsys.readouterr().out
    # --quick picks a small slice and the LBP baseline beside the model, unless told otherwise
    assert main(["fer", "--data", str(shared_data / "fer2013"), "--quick", "--features", "raw", "--no-detect",
                 "--no-progress", "--epochs", "1", "--out", str(tmp_path / "q")]) == 0
    assert "trained on 280 images, tested on 280 images" in capsys.readouterr().out
    # a bad file is a clear error and exit code 2, not a traceback
    assert main(["verify", "--pairs", str(tmp_path / "nope.txt"), "--out", str(tmp_path / "z")]) == 2
    assert "nope.txt" in capsys.readouterr().err


@pytest.mark.slow
def test_eval_module_runs_and_every_command_shows_an_example() -> None:
    for command in ("verify", "fer", "features"):
        proc = subprocess.run([sys.executable, "-m", "latentface_sdk.eval", command, "--help"],
                              capture_output=True, text=True, timeout=120, cwd=REPO)
        assert proc.returncode == 0, proc.stderr
        assert "example" in proc.stdout and f"python -m latentface_sdk.eval {command}" in proc.stdout
