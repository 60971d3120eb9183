"""What a newcomer trips on first (issue 37): a video given to an image command, install lines that do
nothing from a checkout, a white shading map, a list of commands that misses some, and a README set-up
that needs files outside the repository."""

from __future__ import annotations

import argparse
import ast
import csv
import re
import shlex
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from latentface_sdk import cli
from latentface_sdk._extras import EXTRAS, install_hint
from latentface_sdk.errors import InvalidImageError
from latentface_sdk.images import VideoFileError, to_rgb, video_kind

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"
REPO = Path(__file__).resolve().parents[1]
PACKAGE = REPO / "latentface_sdk"

#: First bytes of real containers: an MP4 ``ftyp`` box, a QuickTime one, Matroska's EBML magic, an AVI.
MP4_HEAD = b"\x00\x00\x00\x18ftypmp42\x00\x00\x00\x00mp42isom" + bytes(64)
MOV_HEAD = b"\x00\x00\x00\x14ftypqt  \x00\x00\x02\x00qt  " + bytes(64)
MKV_HEAD = b"\x1a\x45\xdf\xa3\x9f\x42\x86\x81\x01" + bytes(64)
AVI_HEAD = b"RIFF\x00\x10\x00\x00AVI LIST" + bytes(64)


def _pyproject_extras() -> set[str]:
    if sys.version_info >= (3, 11):
        import tomllib
    else:  # pragma: no cover
        tomllib = pytest.importorskip("tomli")
    data = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))
    return set(data["project"]["optional-dependencies"])


# ------------------------------------------------------------------------------ 1. a video, not an image


@pytest.mark.parametrize(("name", "head", "kind"), [
    ("clip.mp4", MP4_HEAD, "MP4"), ("clip.bin", MOV_HEAD, "QuickTime"), ("clip", MKV_HEAD, "Matroska/WebM"),
    ("clip.avi", AVI_HEAD, "AVI"), ("clip.mov", b"damaged, no header at all" * 4, "QuickTime"),
])
def test_a_video_file_is_refused_as_an_image_with_a_pointer_to_the_video_api(
    tmp_path: Path, name: str, head: bytes, kind: str
) -> None:
    path = tmp_path / name
    path.write_bytes(head)
    assert video_kind(path) == kind  # by its bytes, or by its extension when they say nothing
    with pytest.raises(VideoFileError, match="is a video file") as info:
        to_rgb(path)
    assert isinstance(info.value, InvalidImageError)  # callers catching InvalidImageError still do
    message = str(info.value)
    assert message.startswith(str(path)) and f"({kind})" in message
    assert "encode_video" in message and "latentface video" in message
    assert "PIL can identify" not in message


def test_video_bytes_and_look_alikes(tmp_path: Path) -> None:
    with pytest.raises(VideoFileError, match=r"item 0: is a video file \(MP4\)"):
        to_rgb(MP4_HEAD, name="item 0")  # bytes: known by their content alone
    # A real image with a video's extension is read as the image it is.
    png = tmp_path / "still.mp4"
    Image.fromarray(np.full((8, 8, 3), 7, np.uint8)).save(png, format="PNG")
    assert video_kind(png) is None and to_rgb(png).shape == (8, 8, 3)
    # A HEIF still (an ftyp box with an image brand) and a text file are not called videos.
    heif = tmp_path / "photo.heic"
    heif.write_bytes(b"\x00\x00\x00\x18ftypheic\x00\x00\x00\x00mif1heic" + bytes(32))
    text = tmp_path / "notes.txt"
    text.write_bytes(b"just some words, nothing else")
    for path in (heif, text):
        assert video_kind(path) is None
        with pytest.raises(InvalidImageError, match="not an image file PIL can identify") as info:
            to_rgb(path)
        assert not isinstance(info.value, VideoFileError)


def test_the_encoder_refuses_a_video_too(tmp_path: Path) -> None:
    from _tiny import tiny_config

    from latentface_sdk import FaceEncoder

    clip = tmp_path / "clip.mp4"
    clip.write_bytes(MP4_HEAD)
    enc = FaceEncoder.from_config(tiny_config("tiny-newcomer"))
    with pytest.raises(VideoFileError, match="encode_video"):
        enc.encode(clip, detect=False)
    batch = enc.encode([clip], detect=False)  # in a list: a marked row that says the same
    assert not bool(batch.ok[0]) and "latentface video" in str(batch.errors[0])


@pytest.mark.parametrize("command", ["encode", "disentangle", "frontalize", "mesh"])
def test_the_image_commands_send_a_video_to_latentface_video(
    command: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    clip = tmp_path / "clip.mp4"
    clip.write_bytes(MP4_HEAD)
    out = tmp_path / ("out.npz" if command in ("encode", "disentangle") else "out")
    # A usage error before any model loads (exit code 2, like a missing file), nothing written.
    assert cli.main([command, str(clip), "-o", str(out), "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert f"{clip}: is a video file (MP4)" in err and f"`latentface video {clip} -o rows.npz`" in err
    assert not out.exists()
    # A folder of videos alone: "no image files", and how to read the videos.
    folder = tmp_path / "clips"
    folder.mkdir()
    (folder / "a.mp4").write_bytes(MP4_HEAD)
    (folder / "b.MOV").write_bytes(MOV_HEAD)
    assert cli.main([command, str(folder), "-o", str(out), "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert "no image files found" in err and "2 video file(s) there: `latentface video" in err


def test_verify_refuses_a_video(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from _tiny import tiny_config

    from latentface_sdk import FaceEncoder

    model = FaceEncoder.from_config(tiny_config("tiny-newcomer")).save_pretrained(tmp_path / "model")
    clip = tmp_path / "clip.webm"
    clip.write_bytes(MKV_HEAD)
    photo = tmp_path / "face.png"
    Image.fromarray(np.full((64, 64, 3), 128, np.uint8)).save(photo)
    assert cli.main(["verify", str(photo), str(clip), "--model", str(model), "--device", "cpu"]) == 2
    err = capsys.readouterr().err
    assert f"{clip}: is a video file (Matroska/WebM)" in err and "latentface video" in err


# ---------------------------------------------------------------------- 2. installing an extra, two ways


def test_the_known_extras_are_pyprojects() -> None:
    assert set(EXTRAS) == _pyproject_extras()
    for extra in EXTRAS:
        hint = install_hint(extra)
        assert f"pip install 'latentface-sdk[{extra}]'" in hint and f"pip install -e '.[{extra}]'" in hint
    with pytest.raises(ValueError, match="unknown extra 'videos'"):
        install_hint("videos")


def _checked_suggestions(text: str, where: str) -> int:
    """Every ``latentface-sdk[X]`` in ``text`` names an extra and comes with ``-e '.[X]'`` (or ``".[X]"``);
    returns how many there were."""
    flat = " ".join(text.split())  # argparse wraps its help text
    extras = _pyproject_extras()
    found = re.findall(r"latentface-sdk\[([\w,-]+)\]", flat)
    for names in found:
        for extra in names.split(","):
            assert extra in extras, f"{where}: no extra {extra!r} in pyproject.toml"
        assert re.search(rf"""-e ['"]\.\[{re.escape(names)}\]['"]""", flat), (
            f"{where}: suggests 'latentface-sdk[{names}]' without the checkout form "
            f"pip install -e '.[{names}]'")
    return len(found)


def _docstring_nodes(tree: ast.AST) -> set[int]:
    nodes: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
            body = node.body
            if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
                nodes.add(id(body[0].value))
    return nodes


def test_every_install_suggestion_in_the_package_shows_the_checkout_form() -> None:
    """Strings of the package's code (not docstrings): what errors and help texts say."""
    count = 0
    for path in sorted(PACKAGE.rglob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        docstrings = _docstring_nodes(tree)
        for node in ast.walk(tree):
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docstrings:
                count += _checked_suggestions(node.value, f"{path.relative_to(REPO)}:{node.lineno}")
    assert count >= 1  # the PyTorch3D one at least is written out


def test_the_messages_that_ask_for_an_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    from latentface_sdk import video
    from latentface_sdk.deploy import export
    from latentface_sdk.integrations import demo, ray

    checks = [("av", video._av, "video"), ("gradio", demo.require_gradio, "demo"),
              ("ray", ray.require_ray, "ray"), ("onnx", lambda: export.require("onnx"), "onnx")]
    for module, call, extra in checks:
        with monkeypatch.context() as m:
            m.setitem(sys.modules, module, None)  # as if it were not installed
            with pytest.raises(ImportError) as info:
                call()
        assert install_hint(extra) in str(info.value), (module, str(info.value))
    # The command's help: every sub-command that needs an extra says how to get it, both ways.
    parser = cli.build_parser()
    count = 0
    for name, sub in _subcommands(parser).items():
        count += _checked_suggestions(sub.format_help(), f"latentface {name} --help")
    assert count >= 4  # video, demo, export-onnx, and --engine ray of encode/disentangle


def test_the_docs_install_lines_name_real_extras_and_the_checkout_form() -> None:
    docs = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md")),
            *sorted((REPO / "examples").rglob("*.md"))]
    extras = _pyproject_extras()
    for doc in docs:
        for k, paragraph in enumerate(re.split(r"\n\s*\n", doc.read_text(encoding="utf-8"))):
            if "pip install" not in paragraph:
                continue
            where = f"{doc.relative_to(REPO)} paragraph {k}"
            _checked_suggestions(paragraph, where)
            for names in re.findall(r"""pip install -e ['"]?\.\[([\w,-]+)\]""", paragraph):
                assert set(names.split(",")) <= extras, f"{where}: unknown extra in .[{names}]"


# ------------------------------------------------------------------------------ 3. a shading map one sees


def test_shading_png_is_divided_by_its_maximum_and_keeps_the_order() -> None:
    shading = torch.linspace(0.98, 1.59, 64 * 64).reshape(1, 64, 64)  # the range the white PNG had
    shading = shading[:, torch.randperm(64)][:, :, torch.randperm(64)]
    png = cli.shading_png(shading)
    assert png.dtype == np.uint8 and png.shape == (64, 64)
    assert png.max() == 255 and png.min() == round(0.98 / 1.59 * 255)
    values = shading[0].flatten().numpy()
    written = png.flatten().astype(int)
    assert np.all(np.diff(written[np.argsort(values, kind="stable")]) >= 0)  # brighter stays brighter
    np.testing.assert_allclose(written, values / values.max() * 255, atol=0.51)


def test_frontalize_maps_writes_a_shading_png_that_is_not_white(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], shared_data: Path
) -> None:
    """The bundled model on a real photo: the PNG is the API's shading over its maximum."""
    from latentface_sdk import FaceEncoder

    photo = shared_data / "photos" / "obama_small.jpg"
    out = tmp_path / "front"
    assert cli.main(["frontalize", str(photo), "-o", str(out), "--maps", "--device", "cpu", "--threads", "1",
                     "--no-progress"]) == 0
    with open(out / "index.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert [r["ok"] for r in rows] == ["True"]
    written = np.asarray(Image.open(out / "obama_small_shading.png")).astype(int)
    enc = FaceEncoder.from_pretrained(device="cpu", threads=1)
    shading = enc.frontalize(str(photo), maps=True, return_tensors=True).shading
    assert shading is not None
    values = shading[0, 0].numpy()
    assert values.max() > 1.0  # what clipping to 1 turned white
    assert written.max() == 255 and written.min() < 200 and len(np.unique(written)) > 20
    np.testing.assert_allclose(written, values / values.max() * 255, atol=1.01)
    capsys.readouterr()


# ------------------------------------------------------------------------ 4. the list of commands in docs


def _subcommands(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    action = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return dict(action.choices)


def test_install_md_lists_every_command_of_the_parser_in_its_order() -> None:
    text = (REPO / "docs" / "install.md").read_text(encoding="utf-8")
    start = text.index("<!-- commands:")
    table = text[start:].split("\n\n")[0]
    listed = re.findall(r"^\| `([\w-]+)` \|", table, flags=re.M)
    assert listed == list(_subcommands(cli.build_parser())), (
        "docs/install.md's table of commands differs from `latentface --help`")


# ------------------------------------------------------------------- 5. a set-up that runs on a bare clone


def _readme_block(tag: str) -> str:
    """The fenced block after ``<!-- ci:TAG`` (what .ci/run reads), or after the heading ``TAG``."""
    text = (REPO / "README.md").read_text(encoding="utf-8")
    start = text.index(tag)
    match = re.search(r"^```\w*\n(.*?)^```", text[start:], flags=re.S | re.M)
    assert match is not None, tag
    return match.group(1)


def _readme_photos(code: str) -> list[str]:
    """The photo paths a README block reads (string constants ending in an image suffix, or joined to a
    folder constant), without the files it writes and the deliberately missing one."""
    tree = ast.parse(code) if "import" in code else None
    if tree is None:  # the shell line: its words
        return [w for w in shlex.split(code) if w.lower().endswith((".jpg", ".jpeg", ".png"))]
    saved = {id(arg) for node in ast.walk(tree) if isinstance(node, ast.Call)
             and isinstance(node.func, ast.Attribute) and node.func.attr == "save" for arg in node.args}
    strings = [n for n in ast.walk(tree) if isinstance(n, ast.Constant) and isinstance(n.value, str)]
    folders = [n.value for n in strings if n.value.endswith("/")]
    names = [n.value for n in strings if id(n) not in saved
             and n.value.lower().endswith((".jpg", ".jpeg", ".png")) and n.value != "no_such_file.jpg"]
    return [name if "/" in name else folder + name for name in names
            for folder in ([""] if "/" in name else folders)]


def test_the_readme_reads_its_photos_from_the_shared_data_and_says_what_to_use_without_it() -> None:
    """The data's terms keep its photos out of the repository: the set-up line and the Python quickstart
    read them from ``../shared/data`` beside the clone (where CI puts it), and the text before the set-up
    line says what to run on a clone without it (a photo of one's own, with the whole command)."""
    line = _readme_block("<!-- ci:setup").strip()
    assert "\n" not in line
    words = shlex.split(line.split(" && ")[-1])
    assert words[:2] == [".venv/bin/latentface", "encode"]
    quick = _readme_block("## Quickstart (Python)")
    photos = _readme_photos(line) + _readme_photos(quick)
    assert len(photos) >= 4
    for photo in photos:
        assert photo.startswith("../shared/data/photos/"), photo
        assert not (REPO / photo.removeprefix("../")).exists()  # nothing of the data copied in
        if SHARED.is_dir():
            assert (REPO / photo).is_file(), f"README: {photo} is not in ../shared/data"
    text = (REPO / "README.md").read_text(encoding="utf-8")
    intro = text[:text.index("<!-- ci:setup")].rsplit("## ", 1)[-1]
    assert "without it" in intro and "latentface encode my_photo.jpg" in intro
    assert not (REPO / "examples" / "photos").exists()
