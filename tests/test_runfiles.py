"""latentface_sdk.runfiles: the files of a resumable ``latentface`` run, function by function (chunks,
the run key, parts, the byte-stable ``.npz``, the stored key, the summary).

The command-level behaviour (an interrupted run resumes to identical bytes, parts of another run are
discarded) is tested in tests/test_cli.py.
"""

from __future__ import annotations

import json
import os
import zipfile
from pathlib import Path

import numpy as np
import pytest

from latentface_sdk.runfiles import (
    PARTS_FORMAT,
    Summary,
    assemble_npz,
    chunks,
    part_done,
    prepare_parts,
    run_key,
    save_part,
    stored_key,
    summary_of,
    write_png,
)

# ---------------------------------------------------------------------------------------------- chunks


@pytest.mark.parametrize(("n", "size", "expected"), [
    (5, 2, [(0, 0, 2), (1, 2, 4), (2, 4, 5)]),
    (4, 2, [(0, 0, 2), (1, 2, 4)]),
    (3, 10, [(0, 0, 3)]),
    (0, 3, []),
    (1, 1, [(0, 0, 1)]),
])
def test_chunks_cover_every_row_once_in_order(
    n: int, size: int, expected: list[tuple[int, int, int]]
) -> None:
    got = list(chunks(n, size))
    assert got == expected
    assert [i for _, start, stop in got for i in range(start, stop)] == list(range(n))


# --------------------------------------------------------------------------------------------- run_key


def test_run_key_is_stable_and_changes_with_what_identifies_the_run(tmp_path: Path) -> None:
    a, b = tmp_path / "a.jpg", tmp_path / "b.jpg"
    a.write_bytes(b"aaaa")
    b.write_bytes(b"bb")
    paths = [str(a), str(b)]
    key = run_key("encode", {"detect": True, "faces": "all"}, "model@123", paths, 64)
    assert len(key) == 64 and int(key, 16) >= 0  # a SHA-256 in hex
    swapped = {"faces": "all", "detect": True}  # the options' order plays no part
    assert run_key("encode", swapped, "model@123", list(paths), 64) == key
    changed = [
        run_key("disentangle", {"detect": True, "faces": "all"}, "model@123", paths, 64),
        run_key("encode", {"detect": False, "faces": "all"}, "model@123", paths, 64),
        run_key("encode", {"detect": True, "faces": "all"}, "model@456", paths, 64),
        run_key("encode", {"detect": True, "faces": "all"}, "model@123", paths[::-1], 64),
        run_key("encode", {"detect": True, "faces": "all"}, "model@123", paths[:1], 64),
        run_key("encode", {"detect": True, "faces": "all"}, "model@123", paths, 32),
    ]
    assert len({key, *changed}) == 7
    st = os.stat(a)
    os.utime(a, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000_000))  # an input touched since
    touched = run_key("encode", {"detect": True, "faces": "all"}, "model@123", paths, 64)
    assert touched != key
    a.write_bytes(b"aaab")  # the same size, a new time: still another run
    os.utime(a, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000_000))
    same_stat = run_key("encode", {"detect": True, "faces": "all"}, "model@123", paths, 64)
    assert same_stat == touched  # the key reads each input's size and time, not its bytes
    a.write_bytes(b"aaaaaa")
    os.utime(a, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000_000))
    assert run_key("encode", {"detect": True, "faces": "all"}, "model@123", paths, 64) != touched
    missing = [str(tmp_path / "gone.jpg")]
    assert run_key("encode", {}, "m", missing, 1) == run_key("encode", {}, "m", missing, 1)  # no error
    assert PARTS_FORMAT == 1  # a change of the parts' layout bumps it, and so every key


# ------------------------------------------------------------------------------------- parts and npz


def _part(rows: list[int], names: list[str]) -> dict[str, np.ndarray]:
    r = np.asarray(rows)
    return {
        "texture": np.stack([r * 1.5, r * 2.5], axis=1).astype(np.float32),
        "source": r.astype(np.int64),
        "ok": r % 2 == 0,
        "names": np.asarray(names, dtype=str),
        "errors": np.asarray(["" if k % 2 == 0 else f"item {k}: broken" for k in rows], dtype=str),
    }


def _parts(folder: Path, cuts: list[list[int]]) -> list[Path]:
    folder.mkdir()
    out = []
    for i, rows in enumerate(cuts):
        path = folder / f"part-{i:05d}.npz"
        save_part(path, _part(rows, [f"{'x' * (k + 1)}.jpg" for k in rows]))  # string widths differ by part
        out.append(path)
    return out


def test_assemble_npz_concatenates_the_parts(tmp_path: Path) -> None:
    parts = _parts(tmp_path / "parts", [[0, 1], [2], [3, 4, 5]])
    assert all(part_done(p) for p in parts)
    out = tmp_path / "out.npz"
    assemble_npz(out, parts, {"run_key": np.asarray("k" * 64), "model": np.asarray("tiny@abc")})
    whole = _part(list(range(6)), [f"{'x' * (k + 1)}.jpg" for k in range(6)])
    with np.load(out, allow_pickle=False) as z:
        assert sorted(z.files) == ["errors", "model", "names", "ok", "run_key", "source", "texture"]
        for key, value in whole.items():
            np.testing.assert_array_equal(z[key], value)
            assert z[key].dtype == value.dtype, key
        assert z["names"][5] == "xxxxxx.jpg"  # the widest part's strings are not cut
        assert str(z["run_key"]) == "k" * 64 and str(z["model"]) == "tiny@abc"
    with zipfile.ZipFile(out) as zf:
        infos = zf.infolist()
    assert [i.filename for i in infos] == ["errors.npy", "names.npy", "ok.npy", "source.npy", "texture.npy",
                                           "model.npy", "run_key.npy"]  # columns sorted, then the extras
    assert {i.date_time for i in infos} == {(1980, 1, 1, 0, 0, 0)}
    assert {i.compress_type for i in infos} == {zipfile.ZIP_STORED}
    assert oct(out.stat().st_mode & 0o777) == oct(0o644)


def test_assemble_npz_is_byte_stable_however_the_rows_were_cut(tmp_path: Path) -> None:
    extra = {"run_key": np.asarray("abc")}
    outs = []
    for k, cuts in enumerate(([[0, 1, 2, 3, 4, 5]], [[0, 1], [2, 3], [4, 5]], [[0], [1, 2, 3, 4], [5]])):
        out = tmp_path / f"out{k}.npz"
        assemble_npz(out, _parts(tmp_path / f"parts{k}", cuts), extra)
        outs.append(out.read_bytes())
    again = tmp_path / "again.npz"
    assemble_npz(again, _parts(tmp_path / "parts-again", [[0, 1, 2], [3, 4, 5]]), extra)  # later: same bytes
    assert outs[0] == outs[1] == outs[2] == again.read_bytes()


def test_save_part_writes_atomically_and_part_done_reads_it(tmp_path: Path) -> None:
    path = tmp_path / "p" / "part-00000.npz"
    save_part(path, _part([0, 1], ["a", "b"]))
    assert part_done(path) and [p.name for p in path.parent.iterdir()] == ["part-00000.npz"]  # no temporary
    assert not part_done(tmp_path / "p" / "part-00001.npz")  # missing
    cut = tmp_path / "cut.npz"
    cut.write_bytes(path.read_bytes()[:100])  # a part cut short: redone
    assert not part_done(cut)
    np.savez(tmp_path / "no-ok.npz", texture=np.zeros(2))  # not a part of ours
    assert not part_done(tmp_path / "no-ok.npz")
    (tmp_path / "rows.json").write_text(json.dumps({"rows": 3}))
    (tmp_path / "bad.json").write_text("{")
    assert part_done(tmp_path / "rows.json") and not part_done(tmp_path / "bad.json")


def test_stored_key(tmp_path: Path) -> None:
    parts = _parts(tmp_path / "parts", [[0, 1]])
    keyed = tmp_path / "keyed.npz"
    assemble_npz(keyed, parts, {"run_key": np.asarray("the-key")})
    assert stored_key(keyed) == "the-key"
    plain = tmp_path / "plain.npz"
    assemble_npz(plain, parts, {})
    assert stored_key(plain) is None  # written without a key
    (tmp_path / "junk.npz").write_bytes(b"not a zip")
    assert stored_key(tmp_path / "junk.npz") is None and stored_key(tmp_path / "missing.npz") is None


def test_prepare_parts_keeps_this_runs_parts_only(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    parts = tmp_path / "out.npz.parts"
    prepare_parts(parts, "key-1")
    assert json.loads((parts / "manifest.json").read_text()) == {"run_key": "key-1"}
    save_part(parts / "part-00000.npz", _part([0], ["a"]))
    prepare_parts(parts, "key-1")  # the same run: kept
    assert (parts / "part-00000.npz").is_file() and capsys.readouterr().err == ""
    prepare_parts(parts, "key-2")  # another run: started afresh, and said so
    assert not (parts / "part-00000.npz").exists()
    assert json.loads((parts / "manifest.json").read_text()) == {"run_key": "key-2"}
    assert "different run" in capsys.readouterr().err
    (parts / "manifest.json").write_text("[1, 2]")  # an unreadable manifest counts as another run
    (parts / "stray.npz").write_bytes(b"x")
    prepare_parts(parts, "key-2")
    assert not (parts / "stray.npz").exists()


# ----------------------------------------------------------------------------------------- the summary


def test_summary_counts_and_report(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "run.npz"
    arrays = {"names": np.asarray(["a.jpg", "b.jpg", "c.jpg", "d.jpg"]),
              "ok": np.asarray([True, False, True, False]),
              "errors": np.asarray(["", "b.jpg: no face found (MTCNN ...)", "", "d.jpg: not an image"])}
    save_part(out, arrays)
    summary = summary_of(out, inputs=4)
    assert summary.names == ["a.jpg", "b.jpg", "c.jpg", "d.jpg"] and summary.ok == [True, False, True, False]
    assert summary.counts() == (2, 1, 1)
    assert summary.report("encode", "run.npz") == 1  # some inputs not written: exit 1
    captured = capsys.readouterr()
    assert "4 input(s): 2 face(s) written to run.npz, 1 without a face, 1 failed" in captured.out
    assert "2 input(s) not written" in captured.err and "d.jpg: not an image" in captured.err
    good = Summary(inputs=1, names=["a.jpg"], ok=[True], errors=[""])
    assert good.report("encode", "x.npz") == 0 and capsys.readouterr().err == ""


def test_write_png(tmp_path: Path) -> None:
    from PIL import Image

    image = np.arange(4 * 5 * 3, dtype=np.uint8).reshape(4, 5, 3)
    path = tmp_path / "faces" / "face0.png"
    write_png(path, image)
    with Image.open(path) as im:
        assert im.format == "PNG" and np.array_equal(np.asarray(im), image)
