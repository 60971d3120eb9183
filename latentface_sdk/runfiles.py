"""The files of a resumable ``latentface`` run: parts written atomically one chunk at a time, the run key
that says whether parts belong to this run, the final ``.npz`` assembled from them byte-stably (fixed zip
timestamps, so an interrupted and an uninterrupted run give the same bytes), and the summary of a run.
"""

from __future__ import annotations

import io
import json
import os
import shutil
import sys
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np

from .atomic import atomic_write
from .digests import json_digest

__all__ = ["PARTS_FORMAT", "Summary", "assemble_npz", "chunks", "part_done", "prepare_parts", "progress_bar",
           "run_key", "save_part", "stored_key", "summary_of", "write_png"]

PARTS_FORMAT = 1
_ZIP_TIME = (1980, 1, 1, 0, 0, 0)  # fixed timestamps: the same arrays give the same bytes


def save_part(path: Path, arrays: dict[str, np.ndarray]) -> None:
    atomic_write(path, lambda fh: np.savez(fh, **arrays))  # type: ignore[arg-type]


@dataclass
class _Column:
    dtype: np.dtype
    tail: tuple[int, ...]


def assemble_npz(out: Path, parts: list[Path], extra: dict[str, np.ndarray]) -> None:
    """Concatenate the parts' arrays row-wise into ``out``, one part at a time (memory: one part's array).

    Written as an uncompressed ``.npz`` with fixed zip timestamps, so equal arrays give equal bytes.
    """
    rows = 0
    columns: dict[str, _Column] = {}
    for part in parts:
        with np.load(part, allow_pickle=False) as z:
            rows += int(z["ok"].shape[0])
            for key in z.files:
                a = z[key]
                col = columns.get(key)
                if col is None:
                    columns[key] = _Column(a.dtype, tuple(a.shape[1:]))
                elif a.dtype.kind == "U":  # widest string wins
                    col.dtype = max(col.dtype, a.dtype, key=lambda d: d.itemsize)

    def write(fh: BinaryIO) -> None:
        with zipfile.ZipFile(fh, "w", compression=zipfile.ZIP_STORED, allowZip64=True) as zf:
            for key in sorted(columns):
                col = columns[key]
                header = {"descr": np.lib.format.dtype_to_descr(col.dtype), "fortran_order": False,
                          "shape": (rows, *col.tail)}
                with zf.open(_zip_info(key), "w", force_zip64=True) as member:
                    np.lib.format.write_array_header_1_0(member, header)
                    for part in parts:
                        with np.load(part, allow_pickle=False) as z:
                            member.write(np.ascontiguousarray(z[key], dtype=col.dtype).tobytes())
            for key in sorted(extra):
                buf = io.BytesIO()
                np.lib.format.write_array(buf, np.asarray(extra[key]), allow_pickle=False)
                with zf.open(_zip_info(key), "w", force_zip64=True) as member:
                    member.write(buf.getvalue())

    atomic_write(out, write)


def _zip_info(key: str) -> zipfile.ZipInfo:
    info = zipfile.ZipInfo(key + ".npy", date_time=_ZIP_TIME)
    info.compress_type = zipfile.ZIP_STORED
    info.external_attr = 0o644 << 16
    return info


def run_key(command: str, options: dict[str, Any], model_id: str, paths: list[str], chunk: int) -> str:
    """What identifies a run: command, options, model and every input's path, size and modification time."""
    stats: list[Any] = []
    for path in paths:
        try:
            st = os.stat(path)
            stats.append([path, st.st_size, st.st_mtime_ns])
        except OSError:
            stats.append([path, None, None])
    payload = {"format": PARTS_FORMAT, "command": command, "options": options, "model": model_id,
               "inputs": stats, "chunk": chunk}
    return json_digest(payload)


def prepare_parts(parts_dir: Path, key: str) -> None:
    """Keep ``parts_dir`` when it belongs to this run, else start it afresh."""
    manifest = parts_dir / "manifest.json"
    if parts_dir.is_dir():
        try:
            same = json.loads(manifest.read_text())["run_key"] == key
        except (OSError, ValueError, KeyError, TypeError):
            same = False
        if same:
            return
        print(f"latentface: {parts_dir} holds parts of a different run; starting afresh", file=sys.stderr)
        shutil.rmtree(parts_dir)
    parts_dir.mkdir(parents=True)
    atomic_write(manifest, lambda fh: fh.write(json.dumps({"run_key": key}).encode()))


def part_done(path: Path) -> bool:
    if not path.is_file():
        return False
    try:
        if path.suffix == ".json":
            json.loads(path.read_text())
        else:
            with np.load(path, allow_pickle=False) as z:
                z["ok"]
        return True
    except Exception:  # noqa: BLE001 - an unreadable part is simply redone
        return False


@dataclass
class Summary:
    """What a run did, row by row."""

    inputs: int
    names: list[str]
    ok: list[bool]
    errors: list[str]

    def counts(self) -> tuple[int, int, int]:
        faces = sum(self.ok)
        noface = sum(1 for ok, e in zip(self.ok, self.errors, strict=True) if not ok and "no face found" in e)
        return faces, noface, len(self.ok) - faces - noface

    def report(self, command: str, target: str) -> int:
        faces, noface, failed = self.counts()
        print(f"latentface {command}: {self.inputs} input(s): {faces} face(s) written to {target}, "
              f"{noface} without a face, {failed} failed")
        bad = [(n, e) for n, ok, e in zip(self.names, self.ok, self.errors, strict=True) if not ok]
        if bad:
            print(f"latentface {command}: {len(bad)} input(s) not written:", file=sys.stderr)
            for _, err in bad:
                print(f"  {err}", file=sys.stderr)
            return 1
        return 0


def chunks(n: int, size: int) -> Iterator[tuple[int, int, int]]:
    for index, start in enumerate(range(0, n, size)):
        yield index, start, min(start + size, n)


def progress_bar(total: int, desc: str, enabled: bool) -> Any:
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=desc, unit="img", disable=not enabled, file=sys.stderr)


def stored_key(path: Path) -> str | None:
    try:
        with np.load(path, allow_pickle=False) as z:
            return str(z["run_key"]) if "run_key" in z.files else None
    except Exception:  # noqa: BLE001 - not ours or unreadable: recompute
        return None


def summary_of(path: Path, inputs: int) -> Summary:
    with np.load(path, allow_pickle=False) as z:
        return Summary(inputs, [str(n) for n in z["names"]], [bool(v) for v in z["ok"]],
                       [str(e) for e in z["errors"]])


def write_png(path: Path, array: np.ndarray) -> None:
    from PIL import Image

    def write(fh: BinaryIO) -> None:
        Image.fromarray(array).save(fh, format="PNG")

    atomic_write(path, write)
