"""The ``latentface`` command: outputs, failures and exit codes, streaming parts and resuming."""

from __future__ import annotations

import csv
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from _close import assert_close_to_scale
from _tiny import tiny_config
from PIL import Image

from latentface_sdk import FaceEncoder, cli, runfiles

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    torch.manual_seed(3)
    cfg = tiny_config("tiny-cli")
    return FaceEncoder.from_config(cfg).save_pretrained(tmp_path_factory.mktemp("cli-model"))


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Seven face-crop PNGs (one in a sub-folder), an unreadable .jpg and a text file."""
    root = tmp_path_factory.mktemp("images")
    rng = np.random.default_rng(0)
    for i in range(6):
        Image.fromarray(rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)).save(root / f"face{i}.png")
    (root / "sub").mkdir()
    Image.fromarray(rng.integers(0, 256, (80, 64, 3), dtype=np.uint8)).save(root / "sub" / "face6.png")
    (root / "broken.jpg").write_bytes(b"this is not a jpeg")
    (root / "notes.txt").write_text("not an image, not searched")
    return root


def _run(*args: Any) -> int:
    return cli.main([str(a) for a in args] + ["--no-progress"])


def test_collect_inputs_is_sorted_recursive_and_deduplicated(folder: Path) -> None:
    found = cli.collect_inputs([str(folder / "face3.png"), str(folder)])
    paths = [Path(f.path).relative_to(folder).as_posix() for f in found]
    assert paths == ["face3.png", "broken.jpg", "face0.png", "face1.png", "face2.png", "face4.png",
                     "face5.png", "sub/face6.png"]
    assert [f.base for f in found][:3] == ["face3", "broken", "face0"] and found[-1].base == "sub/face6"
    with pytest.raises(cli.UsageError, match="no such file or folder"):
        cli.collect_inputs([str(folder / "missing")])
    empty = folder / "sub" / "empty"
    empty.mkdir(exist_ok=True)
    with pytest.raises(cli.UsageError, match="no image files found"):
        cli.collect_inputs([str(empty)])


def test_encode_writes_good_reports_bad_exit_1(
    folder: Path, model_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "feat.npz"
    assert _run("encode", folder, "-o", out, "--model", model_dir, "--no-detect", "--chunk-size", "3") == 1
    captured = capsys.readouterr()
    assert "7 face(s) written" in captured.out and "1 failed" in captured.out
    assert "broken.jpg" in captured.err and "not an image" in captured.err
    assert not out.with_name("feat.npz.parts").exists()  # parts are removed once assembled
    with np.load(out, allow_pickle=False) as z:
        names = [Path(n).name for n in z["names"]]
        assert names == ["broken.jpg", *[f"face{i}.png" for i in range(6)], "face6.png"]
        assert z["ok"].tolist() == [False] + [True] * 7 and z["source"].tolist() == list(range(8))
        assert z["texture"].shape == (8, 256) and np.isnan(z["texture"][0]).all()
        assert z["errors"][0].startswith(str(folder / "broken.jpg")) and z["errors"][1] == ""
        assert z["inputs"].tolist() == list(z["names"]) and str(z["model"]).startswith("tiny-cli@")
        texture = z["texture"]
    enc = FaceEncoder.from_pretrained(model_dir, device="cpu")
    api = enc.encode([folder / f"face{i}.png" for i in range(6)], detect=False)
    np.testing.assert_array_equal(texture[1:7], api.texture.numpy())  # the CLI is the API


def test_all_good_exits_0_and_rerun_is_a_no_op(
    folder: Path, model_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "ok.npz"
    args = ["encode", folder / "face0.png", folder / "face1.png", "-o", out, "--model", model_dir,
            "--no-detect"]
    assert _run(*args) == 0
    first = out.read_bytes()
    capsys.readouterr()
    assert _run(*args) == 0
    assert "already complete" in capsys.readouterr().err and out.read_bytes() == first


def _interrupt_after(monkeypatch: pytest.MonkeyPatch, parts: int) -> None:
    real = runfiles.save_part
    calls = {"n": 0}

    def flaky(path: Path, arrays: dict[str, np.ndarray]) -> None:
        if calls["n"] == parts:
            raise KeyboardInterrupt
        calls["n"] += 1
        real(path, arrays)

    monkeypatch.setattr(runfiles, "save_part", flaky)


@pytest.mark.parametrize("command", ["encode", "disentangle"])
def test_interrupted_run_resumes_to_identical_bytes(
    command: str, folder: Path, model_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    common = ["--model", model_dir, "--no-detect", "--chunk-size", "2"]
    whole = tmp_path / "whole.npz"
    assert _run(command, folder, "-o", whole, *common) == 1
    out = tmp_path / "resumed.npz"
    with monkeypatch.context() as m:
        _interrupt_after(m, parts=2)
        assert _run(command, folder, "-o", out, *common) == 130
    parts = out.with_name("resumed.npz.parts")
    assert not out.exists() and sorted(p.name for p in parts.glob("part-*.npz")) == [
        "part-000000.npz", "part-000001.npz"]
    seen: list[int] = []
    method = getattr(FaceEncoder, command)

    def spy(self: FaceEncoder, images: list[str], **kw: Any) -> Any:
        seen.append(len(images))
        return method(self, images, **kw)

    monkeypatch.setattr(FaceEncoder, command, spy)
    assert _run(command, folder, "-o", out, *common) == 1
    assert seen == [2, 2]  # only the two chunks not done before
    assert out.read_bytes() == whole.read_bytes()
    assert not parts.exists()


def test_parts_of_another_run_are_discarded(
    folder: Path, model_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "x.npz"
    common = ["--model", model_dir, "--no-detect", "--chunk-size", "2"]
    with monkeypatch.context() as m:
        _interrupt_after(m, parts=1)
        assert _run("disentangle", folder, "-o", out, "--seed", "1", *common) == 130
    assert _run("disentangle", folder, "-o", out, "--seed", "2", *common) == 1
    assert "different run" in capsys.readouterr().err
    ref = tmp_path / "ref.npz"
    assert _run("disentangle", folder, "-o", ref, "--seed", "2", *common) == 1
    assert out.read_bytes() == ref.read_bytes()


def test_disentangle_arrays_match_the_api(folder: Path, model_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "d.npz"
    files = [folder / "face0.png", folder / "face1.png"]
    assert _run("disentangle", *files, "-o", out, "--model", model_dir, "--no-detect", "--seed", "4") == 0
    enc = FaceEncoder.from_pretrained(model_dir, device="cpu")
    d = enc.disentangle(files, detect=False, seed=4)
    with np.load(out, allow_pickle=False) as z:
        for key in ("identity_texture", "identity_shape", "expression_texture", "expression_shape",
                    "texture"):
            # the command may run on more threads than the API here: float32 rounding (tests/_close.py)
            assert_close_to_scale(z[key], getattr(d, key).numpy(), msg=key)
        ver = np.concatenate([z["identity_texture"], z["identity_shape"], z["texture"], z["shape"]], axis=1)
        assert_close_to_scale(ver, d.verification_features.numpy())


def test_frontalize_writes_pngs_and_an_index(folder: Path, model_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "front"
    assert _run("frontalize", folder, "-o", out, "--model", model_dir, "--no-detect", "--maps",
                "--chunk-size", "3") == 1
    with open(out / "index.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == 8 and rows[0]["ok"] == "False" and "not an image" in rows[0]["error"]
    assert rows[-1]["png"] == "sub/face6.png"
    for row in rows[1:]:
        png = Image.open(out / row["png"])
        assert png.size == (64, 64) and png.mode == "RGB"
        assert (out / row["png"].replace(".png", "_depth.png")).is_file()
    assert not (out / ".latentface-parts").exists()


def test_frontalize_to_an_image_name_writes_that_one_image(
    folder: Path, model_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    for name in ("out.png", "out.JPG"):
        out = tmp_path / name
        assert _run("frontalize", folder / "face1.png", "-o", out, "--model", model_dir, "--no-detect") == 0
        assert out.is_file() and not out.is_dir()
        with Image.open(out) as img:
            assert img.size == (64, 64) and img.format == ("PNG" if name.endswith("png") else "JPEG")
    # Several inputs (or faces) cannot go into one image: a usage error that names the fix; nothing written.
    many = tmp_path / "many.png"
    assert _run("frontalize", folder, "-o", many, "--model", model_dir, "--no-detect") == 2
    assert "give a folder" in capsys.readouterr().err and not many.exists()
    # An unreadable input: exit 1 with the reason, no file.
    bad = tmp_path / "bad.png"
    assert _run("frontalize", folder / "broken.jpg", "-o", bad, "--model", model_dir, "--no-detect") == 1
    assert not bad.exists()


def test_faces_all_in_frontalize_names_each_face(model_dir: Path, tmp_path: Path, shared_data: Path) -> None:
    out = tmp_path / "front"
    assert _run("frontalize", shared_data / "photos" / "two_people.jpg", "-o", out, "--model", model_dir,
                "--faces", "all") == 0
    assert sorted(p.name for p in out.glob("*.png")) == ["two_people_face0.png", "two_people_face1.png"]


def test_usage_errors_exit_2(folder: Path, model_dir: Path, tmp_path: Path,
                             capsys: pytest.CaptureFixture[str]) -> None:
    assert _run("encode", tmp_path / "missing.jpg", "-o", tmp_path / "o.npz", "--model", model_dir) == 2
    assert "no such file or folder" in capsys.readouterr().err
    assert _run("encode", folder, "-o", tmp_path / "o.npz", "--model", tmp_path / "no-model") == 2
    assert "cannot load the model" in capsys.readouterr().err
    assert _run("encode", folder, "-o", tmp_path, "--model", model_dir, "--no-detect") == 2
    assert "is a folder" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exc:
        cli.main(["encode", str(folder), "-o", "x.npz", "--batch-size", "0"])
    assert exc.value.code == 2
    with pytest.raises(SystemExit) as exc:
        cli.main(["explode", str(folder)])
    assert exc.value.code == 2


@pytest.mark.slow
def test_console_script_on_the_readme_photo(model_dir: Path, tmp_path: Path, shared_data: Path) -> None:
    """The README's command (with a stand-in model until the bundled weights land), as a real process."""
    exe = Path(sys.executable).with_name("latentface")
    if not exe.is_file():
        pytest.skip(f"the latentface console script is not installed beside {sys.executable}")
    out = tmp_path / "two_people.npz"
    proc = subprocess.run(
        [str(exe), "encode", str(shared_data / "photos" / "two_people.jpg"), "-o", str(out),
         "--model", str(model_dir), "--threads", "1"],
        capture_output=True, text=True, timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    assert "1 face(s) written" in proc.stdout
    with np.load(out, allow_pickle=False) as z:
        assert z["ok"].tolist() == [True] and np.isfinite(z["texture"]).all()


def test_missing_extras_are_usage_errors_that_name_the_extra(folder: Path, model_dir: Path, tmp_path: Path,
                                                             monkeypatch: pytest.MonkeyPatch,
                                                             capsys: pytest.CaptureFixture[str]) -> None:
    import sys

    monkeypatch.setitem(sys.modules, "ray", None)  # as if the [ray] extra were not installed
    monkeypatch.setitem(sys.modules, "gradio", None)  # ... nor the [demo] one
    assert _run("encode", folder, "-o", tmp_path / "rows", "--model", model_dir, "--engine", "ray") == 2
    assert "pip install 'latentface-sdk[ray]'" in capsys.readouterr().err
    assert cli.main(["demo"]) == 2
    assert "pip install 'latentface-sdk[demo]'" in capsys.readouterr().err


@pytest.mark.slow
def test_export_onnx_writes_a_folder_and_refuses_to_clobber(tiny_onnx: tuple[Path, Path], tmp_path: Path,
                                                            capsys: pytest.CaptureFixture[str]) -> None:
    model_dir, _ = tiny_onnx
    out = tmp_path / "exported"
    assert cli.main(["export-onnx", "--model", str(model_dir), "--out", str(out)]) == 0
    assert {p.name for p in out.iterdir()} == {"encoder.onnx", "disentangle.onnx", "config.json", "README.md"}
    assert "tiny-onnx" in capsys.readouterr().err
    assert cli.main(["export-onnx", "--model", str(model_dir), "--out", str(out)]) == 2
    assert "--overwrite" in capsys.readouterr().err
    assert cli.main(["export-onnx", "--model", str(model_dir), "--out", str(out), "--overwrite"]) == 0
    assert cli.main(["export-onnx", "--model", str(tmp_path / "nope"), "--out", str(tmp_path / "o2")]) == 2
    assert "cannot export the model" in capsys.readouterr().err


def test_models_lists_the_bundled_model(capsys: pytest.CaptureFixture[str]) -> None:
    import json

    assert cli.main(["models"]) == 0
    assert "latentface-cpu-small" in capsys.readouterr().out
    assert cli.main(["models", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    bundled = [r for r in rows if r["source"] == "bundled"]
    assert bundled and bundled[0]["name"] == "latentface-cpu-small" and len(bundled[0]["checksum"]) == 64
